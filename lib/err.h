/* err: the one return vocabulary of Townhall's C code, and its mapping to HTTP.
 *
 * Every module that can fail for a reason a client must hear about returns (or
 * records) an enum th_err.  th_err_status() and th_err_code() turn it into the
 * status and the `error.code` string of API.md, so no handler spells a status
 * number or an error code by hand. */
#ifndef TH_ERR_H
#define TH_ERR_H

enum th_err {
	TH_OK = 0,
	TH_EBADJSON,      /* 400 bad_json: body is not JSON of the right shape */
	TH_EVALIDATION,   /* 400 validation_failed: a field breaks its rule */
	TH_EUNAUTHORIZED, /* 401 unauthorized */
	TH_EFORBIDDEN,    /* 403 forbidden */
	TH_EBANNED,       /* 403 banned */
	TH_ENOTFOUND,     /* 404 not_found */
	TH_EMETHOD,       /* 405 method_not_allowed */
	TH_ECONFLICT,     /* 409 conflict */
	TH_ETOOLARGE,     /* 413 too_large */
	TH_EUNSUPPORTED,  /* 415 unsupported_media_type */
	TH_ERATELIMITED,  /* 429 rate_limited */
	TH_EINTERNAL,     /* 500 internal: a bug or an unexpected server answer */
	TH_EUNAVAILABLE,  /* 503 unavailable: a dependency is down */
	TH_ETOTP,         /* 401 totp_required: the password was right, a second factor is due */
	TH_ESUSPENDED,    /* 403 suspended: a site admin suspended the account */
	TH_ERR_COUNT
};

/* HTTP status for an error (200 for TH_OK). */
int th_err_status(enum th_err e);
/* The API.md error code ("bad_json", ...); "ok" for TH_OK.  Static string. */
const char *th_err_code(enum th_err e);
/* A short default message for the error.  Static string. */
const char *th_strerror(enum th_err e);

#endif
