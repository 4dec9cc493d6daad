/* fuzz_mail: the composition of a mail (lib/mail.c), which takes values a
 * user typed (a display name, an address) and the subjects of templates.
 *
 * Input: subject, NUL, from name, NUL, recipient, NUL, body.  Checks: a
 * message is composed only from plain addresses; its header block (up to
 * the first empty line) is CRLF lines only, each a header this module
 * writes or a folded continuation, so no value can add a header; encoded
 * words are at most 75 bytes. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "mail.h"

static const char *const names[] = {"From: ",           "To: ",          "Subject: ",
				    "Date: ",           "Message-ID: ",  "MIME-Version: ",
				    "Auto-Submitted: ", "Content-Type: "};

static void check_headers(const char *msg, size_t len)
{
	const char *end = strstr(msg, "\r\n\r\n"), *p = msg;

	FZ_CHECK(end && (size_t)(end - msg) < len);
	while (p < end + 2) {
		const char *nl = strstr(p, "\r\n");
		size_t i;
		int known = p[0] == ' ';

		FZ_CHECK(nl && nl <= end);
		FZ_CHECK(!memchr(p, '\n', (size_t)(nl - p)) && !memchr(p, '\r', (size_t)(nl - p)));
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strncmp(p, names[i], strlen(names[i])) == 0)
				known = 1;
		FZ_CHECK(known);
		p = nl + 2;
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return sodium_init() < 0 ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	char *subject = fz_str(&f, NULL), *from_name = fz_str(&f, NULL), *to = fz_str(&f, NULL);
	size_t blen, len = 0;
	char *body = fz_rest(&f, &blen), *enc, *msg;
	const char *why;
	struct mail_msg m = {.from = "noreply@th.example",
			     .from_name = from_name,
			     .to = to,
			     .subject = subject,
			     .text = body,
			     .html = body,
			     .msgid_domain = "th.example",
			     .date = 0};

	enc = mail_subject_encode(subject);
	if (enc) {
		char *save = NULL;

		FZ_CHECK(mail_header_safe(subject, 998));
		if (strncmp(enc, "=?", 2) == 0)
			for (char *w = strtok_r(enc, "\r\n ", &save); w;
			     w = strtok_r(NULL, "\r\n ", &save))
				FZ_CHECK(strlen(w) <= 75);
	}
	free(enc);
	msg = mail_compose(&m, &len, &why);
	if (msg) {
		FZ_CHECK(mail_addr_ok(to));
		FZ_CHECK(len == strlen(msg));
		check_headers(msg, len);
	}
	free(msg);
	free(subject);
	free(from_name);
	free(to);
	free(body);
	return 0;
}
