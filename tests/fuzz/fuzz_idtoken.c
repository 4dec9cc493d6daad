/* fuzz_idtoken: OIDC ID tokens and key sets from a provider (lib/idtoken).
 *
 * Input: a JWKS document, NUL, a token.  The document is parsed into a key
 * set and the token verified against it (an issuer, client id and nonce
 * fixed here).  Checks: a key set holds at most IDT_MAX_KEYS keys, each with
 * a key and a known algorithm; the fuzzer may bring its own key and sign
 * with it, so a token may pass, but then only with our issuer and nonce
 * and a subject. */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fuzz.h"
#include "idtoken.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	size_t jlen, tlen;
	char *doc = fz_str(&f, &jlen), *tok = fz_rest(&f, &tlen);
	struct idt_keys keys = {0};
	struct idt_expect e = {.issuer = "https://idp.example",
			       .client_id = "client-1",
			       .nonce = "n-1",
			       .now = (int64_t)time(NULL),
			       .leeway_s = 60};
	struct json_object *claims = NULL;

	if (idt_keys_parse(doc, jlen, &keys) == 0) {
		FZ_CHECK(keys.n >= 0 && keys.n <= IDT_MAX_KEYS);
		for (int i = 0; i < keys.n; i++)
			FZ_CHECK(keys.keys[i].pkey &&
				 (keys.keys[i].alg == IDT_RS256 || keys.keys[i].alg == IDT_ES256));
	}
	if (idt_verify(tok, tlen, &keys, &e, &claims) == IDT_OK) {
		FZ_CHECK(claims);
		FZ_CHECK(strcmp(idt_claim_str(claims, "iss"), e.issuer) == 0);
		FZ_CHECK(strcmp(idt_claim_str(claims, "nonce"), e.nonce) == 0);
		FZ_CHECK(idt_claim_str(claims, "sub") && *idt_claim_str(claims, "sub"));
	} else {
		FZ_CHECK(!claims);
	}
	json_object_put(claims);
	idt_keys_clear(&keys);
	free(doc);
	free(tok);
	return 0;
}
