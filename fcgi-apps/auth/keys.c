/* keys: the JWKS that lets anyone verify our access tokens. */
#include <json-c/json.h>

#include "auth.h"
#include "token.h"

void jwks_handler(struct http_req *req)
{
	http_reply_json(req, 200, token_jwks());
	/* keys change only with a deploy; let clients and proxies keep them */
	http_add_header(req, "Cache-Control", "public, max-age=300");
}
