/* th-bench: the bare FastCGI responder behind /bench/fcgi.
 *
 * Deliberately nothing but libfcgi: it measures what the transport (nginx ->
 * unix socket -> FastCGI -> worker) costs, the floor under every route of
 * ours.  Benchmarks of real routes report their ratio to this.
 *
 * /bench/fcgi?bytes=N (12 <= N <= BENCH_BYTES_MAX) answers a JSON body of
 * exactly N bytes ({"pad":"xxx..."}) made once and kept: the floor for a
 * route whose answer is that large (GET /api/me/unread with 1,000 channels
 * is ~88 KB), so a benchmark can tell what the bytes cost from what the
 * route costs.  Anything else in the query: the 11-byte {"ok":true}. */
#include <fcgiapp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_BYTES_MAX (1024 * 1024)

/* The reply for ?bytes=N (a static buffer, remade when N changes), or NULL
 * when the query asks for no size or a size out of bounds. */
static const char *sized(const char *query, size_t *len)
{
	static char *buf;
	static long have;
	static size_t have_len;
	char *end, *b;
	long n;
	int head;

	if (!query || strncmp(query, "bytes=", 6) != 0)
		return NULL;
	n = strtol(query + 6, &end, 10);
	if (*end != '\0' || n < 12 || n > BENCH_BYTES_MAX)
		return NULL;
	if (n != have) {
		b = malloc((size_t)n + 128);
		if (!b)
			return NULL;
		/* head ends with the body's first 8 bytes, {"pad":" */
		head = snprintf(b, 128,
				"Status: 200 OK\r\nContent-Type: application/json\r\n"
				"Content-Length: %ld\r\n\r\n{\"pad\":\"",
				n);
		memset(b + head, 'x', (size_t)n - 10);
		memcpy(b + head + n - 10, "\"}", 2);
		free(buf);
		buf = b;
		have = n;
		have_len = (size_t)head + (size_t)n - 8;
	}
	*len = have_len;
	return buf;
}

int main(void)
{
	static const char reply[] = "Status: 200 OK\r\n"
				    "Content-Type: application/json\r\n"
				    "Content-Length: 11\r\n\r\n"
				    "{\"ok\":true}";
	FCGX_Request req;

	signal(SIGPIPE, SIG_IGN);
	if (FCGX_Init() != 0 || FCGX_InitRequest(&req, 0, 0) != 0)
		return 1;
	while (FCGX_Accept_r(&req) >= 0) {
		size_t len;
		const char *big = sized(FCGX_GetParam("QUERY_STRING", req.envp), &len);

		if (big)
			FCGX_PutStr(big, (int)len, req.out);
		else
			FCGX_PutStr(reply, sizeof(reply) - 1, req.out);
		FCGX_Finish_r(&req);
	}
	return 0;
}
