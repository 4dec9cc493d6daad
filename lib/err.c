/* err: status and code of each th_err, in one table. */
#include "err.h"

static const struct {
	int status;
	const char *code;
	const char *message;
} err_table[TH_ERR_COUNT] = {
	[TH_OK] = {200, "ok", "ok"},
	[TH_EBADJSON] = {400, "bad_json", "request body is not valid JSON"},
	[TH_EVALIDATION] = {400, "validation_failed", "a field is invalid"},
	[TH_EUNAUTHORIZED] = {401, "unauthorized", "authentication required"},
	[TH_EFORBIDDEN] = {403, "forbidden", "not allowed"},
	[TH_EBANNED] = {403, "banned", "banned from this community"},
	[TH_ENOTFOUND] = {404, "not_found", "no such resource"},
	[TH_EMETHOD] = {405, "method_not_allowed", "method not allowed"},
	[TH_ECONFLICT] = {409, "conflict", "conflict"},
	[TH_ETOOLARGE] = {413, "too_large", "request body too large"},
	[TH_EUNSUPPORTED] = {415, "unsupported_media_type", "unsupported media type"},
	[TH_ERATELIMITED] = {429, "rate_limited", "too many requests"},
	[TH_EINTERNAL] = {500, "internal", "internal error"},
	[TH_EUNAVAILABLE] = {503, "unavailable", "service temporarily unavailable"},
	[TH_ETOTP] = {401, "totp_required", "a one-time code is required"},
	[TH_ESUSPENDED] = {403, "suspended", "the account is suspended"},
};

static int err_valid(enum th_err e)
{
	return (int)e >= 0 && e < TH_ERR_COUNT;
}

int th_err_status(enum th_err e)
{
	return err_valid(e) ? err_table[e].status : 500;
}

const char *th_err_code(enum th_err e)
{
	return err_valid(e) ? err_table[e].code : "internal";
}

const char *th_strerror(enum th_err e)
{
	return err_valid(e) ? err_table[e].message : "internal error";
}
