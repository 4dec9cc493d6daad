/* dbres: what a call of the db module gives back: a result and its
 * accessors, or the reason it failed (the last error, per process). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "db.h"
#include "dbpriv.h"
#include "log.h"

struct db_res {
	PGresult *res;
	/* a result owned by an arena (db_res_own): the slot its arena cleanup
	 * frees it through; db_res_free() empties the slot.  NULL otherwise. */
	struct db_res **slot;
};

static enum th_err last_err;
static char last_msg[256];
static char last_state[6];
static char last_constraint[64];

void dbres_set_err(enum th_err e, const char *msg, const char *state)
{
	last_err = e;
	log_clean(last_msg, sizeof(last_msg), msg ? msg : "");
	/* libpq messages end with a newline, which log_clean turned into '?' */
	for (size_t n = strlen(last_msg); n && last_msg[n - 1] == '?'; n--)
		last_msg[n - 1] = '\0';
	snprintf(last_state, sizeof(last_state), "%s", state ? state : "");
}

void dbres_set_code(enum th_err e)
{
	last_err = e;
}

void dbres_set_constraint(const char *name)
{
	snprintf(last_constraint, sizeof(last_constraint), "%s", name ? name : "");
}

struct db_res *dbres_wrap(PGresult *r)
{
	struct db_res *out = malloc(sizeof(*out));

	if (!out) {
		PQclear(r);
		dbres_set_err(TH_EINTERNAL, "out of memory", NULL);
		return NULL;
	}
	out->res = r;
	out->slot = NULL;
	last_err = TH_OK;
	return out;
}

static void res_cleanup(void *p)
{
	struct db_res **slot = p;

	db_res_free(*slot); /* NULL when the owner freed it already */
}

struct db_res *db_res_own(struct arena *a, struct db_res *r)
{
	struct db_res **slot;

	if (!r)
		return NULL;
	slot = arena_alloc(a, sizeof(*slot));
	if (!slot) {
		db_res_free(r);
		dbres_set_err(TH_EINTERNAL, "out of memory", NULL);
		return NULL;
	}
	*slot = r;
	r->slot = slot;
	/* on failure arena_defer has run the cleanup: r is freed */
	if (arena_defer(a, res_cleanup, slot) < 0) {
		dbres_set_err(TH_EINTERNAL, "out of memory", NULL);
		return NULL;
	}
	return r;
}

enum th_err db_last_err(void)
{
	return last_err;
}
const char *db_last_error(void)
{
	return last_msg;
}
const char *db_last_sqlstate(void)
{
	return last_state;
}
const char *db_last_constraint(void)
{
	return last_constraint;
}

int db_res_rows(const struct db_res *r)
{
	return r ? PQntuples(r->res) : 0;
}
int db_res_cols(const struct db_res *r)
{
	return r ? PQnfields(r->res) : 0;
}

const char *db_res_get(const struct db_res *r, int row, int col)
{
	if (!r || row < 0 || col < 0 || row >= PQntuples(r->res) || col >= PQnfields(r->res))
		return "";
	return PQgetvalue(r->res, row, col);
}

int db_res_isnull(const struct db_res *r, int row, int col)
{
	if (!r || row < 0 || col < 0 || row >= PQntuples(r->res) || col >= PQnfields(r->res))
		return 1;
	return PQgetisnull(r->res, row, col);
}

long long db_res_affected(const struct db_res *r)
{
	const char *s = r ? PQcmdTuples(r->res) : "";

	return *s ? atoll(s) : 0;
}

void db_res_free(struct db_res *r)
{
	if (!r)
		return;
	if (r->slot)
		*r->slot = NULL;
	PQclear(r->res);
	free(r);
}
