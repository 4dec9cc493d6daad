/* th-bench: the bare FastCGI responder behind /bench/fcgi.
 *
 * Deliberately nothing but libfcgi: it measures what the transport (nginx ->
 * unix socket -> FastCGI -> worker) costs, the floor under every route of
 * ours.  Benchmarks of real routes report their ratio to this. */
#include <fcgiapp.h>
#include <signal.h>
#include <stdlib.h>

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
		FCGX_PutStr(reply, sizeof(reply) - 1, req.out);
		FCGX_Finish_r(&req);
	}
	return 0;
}
