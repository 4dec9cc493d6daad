/* fuzz_mediaurl: the signed media URLs of lib/mediaurl.
 *
 * A key is made at start.  Input: id, NUL, variant, NUL, exp, NUL, sig, NUL,
 * a second id, NUL, a second variant.  Checks: a made-up signature never
 * passes; a URL we sign passes for its own id, variant and expiry and for
 * no other (the signed text must name exactly one of each). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "mediaurl.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[] = "/tmp/th-fuzz-mediaurl.XXXXXX", path[64];
	FILE *fp;

	(void)argc;
	(void)argv;
	FZ_CHECK(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/secret", dir);
	fp = fopen(path, "w");
	FZ_CHECK(fp);
	fprintf(fp, "fuzz-key-%ld-0123456789abcdef0123456789abcdef\n", (long)getpid());
	fclose(fp);
	setenv("TH_MEDIA_URL_SECRET_FILE", path, 1);
	FZ_CHECK(mediaurl_init() == 0);
	unlink(path);
	rmdir(dir);
	return 0;
}

/* exp and sig of a signed URL ("...?exp=E&sig=S"), in place. */
static int split_url(char *url, char **exp, char **sig)
{
	char *q = strrchr(url, '?');

	if (!q || strncmp(q, "?exp=", 5) != 0)
		return -1;
	*exp = q + 5;
	q = strchr(*exp, '&');
	if (!q || strncmp(q, "&sig=", 5) != 0)
		return -1;
	*q = '\0';
	*sig = q + 5;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	char *id = fz_str(&f, NULL), *variant = fz_str(&f, NULL), *exp = fz_str(&f, NULL);
	char *sig = fz_str(&f, NULL), *id2 = fz_str(&f, NULL), *variant2 = fz_str(&f, NULL);
	char buf[256], later[24], *e, *s;

	/* a guessed signature: 2^-256 */
	FZ_CHECK(mediaurl_check(id, variant, exp, sig) == -1);
	FZ_CHECK(mediaurl_check(id, variant, NULL, sig) == -1);
	FZ_CHECK(mediaurl_check(id, variant, exp, NULL) == -1);
	if (mediaurl_write(buf, sizeof(buf), id, variant, 0)) {
		FZ_CHECK(split_url(buf, &e, &s) == 0);
		FZ_CHECK(mediaurl_check(id, variant, e, s) == 1);
		/* nor for a later expiry */
		snprintf(later, sizeof(later), "%lld", atoll(e) + 86400);
		FZ_CHECK(mediaurl_check(id, variant, later, s) == -1);
		if (strcmp(id, id2) != 0 || strcmp(variant, variant2) != 0)
			FZ_CHECK(mediaurl_check(id2, variant2, e, s) == -1);
	}
	if (mediaurl_write(buf, sizeof(buf), id, variant, 1))
		FZ_CHECK(!strchr(buf, '?') || strchr(id, '?') || strchr(variant, '?'));
	free(id);
	free(variant);
	free(exp);
	free(sig);
	free(id2);
	free(variant2);
	return 0;
}
