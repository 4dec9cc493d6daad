/* erase: DELETE /api/auth/me {password, totp?} (API.md, v1.1: Account
 * lifecycle).
 *
 * The password is checked like POST /api/auth/password (the caller's budget
 * of password checks, one argon2id verification whatever the answer); an
 * account with TOTP on also gives `totp` (a code or an unused recovery code:
 * without it 401 totp_required, as at login), so a stolen session and
 * password alone cannot erase it.  Then account_erase() (migration 0032) does
 * the database side in one transaction, after the account's content in
 * committed batches (account_erase_content(): a large account's content
 * would outlast the statement timeout in one statement).  After the commit
 * every session it revoked is published (workers refuse its tokens at once, the brokers close
 * its sockets within their sweep) and the answer is 202: the account can no
 * longer be used.  Its memberships' retained presence is cleared on every
 * broker: their deletion (the user row's cascade) queued the clears in the
 * same transaction (a trigger, migration 0046).  The media bytes follow within a minute: th-media-gc
 * --erased (scripts/media-gc, its timer) removes the hashes the erasure
 * queued.  A repeat (or a race of two) finds no account: 401, nothing done
 * twice. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "ids.h"
#include "jh.h"
#include "log.h"
#include "mono.h"
#include "mirror.h"
#include "password.h"
#include "reply.h"
#include "revoke.h"
#include "vcache.h"

/* rows of each kind a batch of account_erase_content() changes, and how long
 * the batches may run in one request (nginx gives it 60 s) */
#define ERASE_BATCH_SQL "2000"
#define ERASE_SECONDS 40

/* 1 when password (and code, for a TOTP account) are the caller's; 0 replied
 * 401; -1 replied otherwise. */
static int erase_check(struct http_req *req, const char *password, const char *code)
{
	char uid[24];
	const char *p[] = {ids_text(uid, req->user_id)};
	struct db_res *r;
	int ok;

	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT password_hash, totp_enabled_at IS NOT NULL FROM users "
			     "WHERE id = $1",
			     1, p);
	if (!r)
		return -1;
	if (db_res_rows(r) != 1) {
		http_reply_error(req, TH_EUNAUTHORIZED, "account no longer exists", NULL);
		return 0;
	}
	ok = password_verify(db_res_get(r, 0, 0), password);
	if (ok == PASSWORD_BUSY) {
		http_reply_error(req, TH_EUNAVAILABLE, "too many password checks at once", NULL);
		return -1;
	}
	if (!ok) {
		http_reply_error(req, TH_EUNAUTHORIZED, "wrong password", "password");
		return 0;
	}
	if (strcmp(db_res_get(r, 0, 1), "t") != 0)
		return 1;
	if (!code) {
		totp_check_login(req, 0, NULL); /* 401 totp_required */
		return 0;
	}
	ok = totp_check_login(req, req->user_id, code);
	if (ok == 0)
		http_reply_error(req, TH_EUNAUTHORIZED, "wrong or used one-time code", "totp");
	return ok;
}

/* After the commit, one row of account_erase(): a revoked session reaches
 * every worker and broker; a community's cached feed and access verdicts
 * (the community app's feedcache.c keys) become unreachable, so readers see
 * the empty bodies and the member gone on their next request; the broker's
 * membership mirror (lib/mirror.h) follows the memberships, owners and DM
 * states the erasure changed. */
static void erase_publish(int64_t uid, const struct db_res *r, int row)
{
	const char *what = db_res_get(r, row, 0);
	int64_t ref = strtoll(db_res_get(r, row, 1), NULL, 10);
	int64_t ref2 = strtoll(db_res_get(r, row, 2), NULL, 10);
	char key[48];

	if (strcmp(what, "session") == 0) {
		revoke_publish(ref);
	} else if (strcmp(what, "community") == 0) {
		snprintf(key, sizeof(key), "th:feedver:{c%lld}", (long long)ref);
		vcache_bump(key);
		snprintf(key, sizeof(key), "th:accver:{c%lld}", (long long)ref);
		vcache_bump(key);
	} else if (strcmp(what, "member_gone") == 0) {
		mirror_member_gone(ref, uid);
	} else if (strcmp(what, "owner") == 0) {
		mirror_member(ref, ref2, "owner");
	} else if (strcmp(what, "community_gone") == 0) {
		/* its channel keys name a community that is no more: harmless,
		 * and gone at the next scripts/mirror-rebuild */
		mirror_community_gone(ref, NULL, 0);
	} else if (strcmp(what, "dm_gone") == 0) {
		mirror_dm_member_gone(ref, uid);
	} else if (strcmp(what, "dm_member") == 0) {
		mirror_dm_member(ref, ref2, strcmp(db_res_get(r, row, 3), "t") == 0);
	}
}

/* Publishes every row of r; the count of the ('content', n) row, or 0. */
static long long erase_publish_all(int64_t uid, const struct db_res *r)
{
	long long content = 0;
	int i, n = db_res_rows(r);

	for (i = 0; i < n; i++) {
		if (strcmp(db_res_get(r, i, 0), "content") == 0)
			content += strtoll(db_res_get(r, i, 1), NULL, 10);
		else
			erase_publish(uid, r, i);
	}
	return content;
}

/* The content in committed batches of ERASE_BATCH rows of each kind, so
 * that no statement of a large account outlasts the statement timeout
 * (each batch is about 0.1 s a thousand rows).  0 when all of it is done;
 * -1 replied: the database failed, or ERASE_SECONDS went by (503: the work
 * done stays, the next DELETE goes on from there). */
static int erase_content(struct http_req *req, const char *const *p)
{
	uint64_t deadline = mono_ms() + ERASE_SECONDS * 1000;
	struct db_res *r;
	long long n;

	do {
		if (mono_ms() >= deadline) {
			http_reply_error(req, TH_EUNAVAILABLE,
					 "a large account: part of it is erased, send the request "
					 "again to go on",
					 NULL);
			http_set_header(req, "Retry-After", "1");
			return -1;
		}
		/* a transaction of the user's own: the doomed communities'
		 * content it deletes (other members' posts too) is the user's
		 * action, and the modlog's triggers want its actor (0033) */
		if (db_begin_or_reply(req) < 0)
			return -1;
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT what, ref, ref2, flag FROM "
				     "account_erase_content($1, " ERASE_BATCH_SQL ")",
				     1, p);
		if (!r || db_commit_or_reply(req) < 0)
			return -1;
		n = erase_publish_all(req->user_id, r);
	} while (n > 0);
	return 0;
}

void erase_handler(struct http_req *req)
{
	const char *password, *code = NULL;
	char uid[24];
	const char *p[] = {ids_text(uid, req->user_id)};
	struct db_res *r;

	if (jh_string_or_400(req, req->json, "password", 1, 128, JH_REQUIRED, &password) < 0 ||
	    jh_string_or_400(req, req->json, "totp", 1, 64, 0, &code) < 0)
		return;
	if (acct_pwcheck_budget_or_reply(req) < 0)
		return;
	if (erase_check(req, password, code) <= 0 || erase_content(req, p) < 0)
		return;
	if (db_begin_or_reply(req) < 0)
		return;
	/* Before the user row goes (reporter_id is SET NULL with it): the
	 * notes of the reports the account wrote are its words; reports of the
	 * account itself lose their target, as its modlog entries do. */
	if (!db_exec_or_reply(req, DB_PRIMARY,
			      "UPDATE reports SET note = '' WHERE reporter_id = $1 AND note <> ''",
			      1, p) ||
	    !db_exec_or_reply(req, DB_PRIMARY,
			      "UPDATE reports SET target_id = NULL WHERE target_type = 'user' "
			      "AND target_id = $1::text",
			      1, p))
		return;
	r = db_exec_or_reply(req, DB_PRIMARY, "SELECT what, ref, ref2, flag FROM account_erase($1)",
			     1, p);
	if (!r)
		return;
	/* After: account_erase()'s own changes (the heir's role notification)
	 * queued events that name the account as their actor */
	if (!db_exec_or_reply(req, DB_PRIMARY,
			      "UPDATE event_outbox SET payload = jsonb_set(payload, "
			      "'{notification,actor}', 'null') WHERE payload -> 'notification' "
			      "-> 'actor' ->> 'id' = $1::text",
			      1, p) ||
	    db_commit_or_reply(req) < 0)
		return;
	erase_publish_all(req->user_id, r);
	me_cache_forget(req->user_id);
	log_info("audit: user %s erased the account", uid);
	http_reply_empty(req, 202);
}
