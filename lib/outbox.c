/* outbox: claim, send, settle; the loop of th-mailer and th-pusher. */
#include "outbox.h"

#include <ctype.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "mono.h"

#define LEASE_MARGIN_S 10
#define SQL_MAX 1024
/* failed rows older than <env>_FAILED_KEEP_S go, this many at a time, every
 * PURGE_EVERY_MS */
#define PURGE_BATCH 1000
#define PURGE_EVERY_MS 10000

static volatile sig_atomic_t stopping;

struct outbox {
	struct outbox_cfg cfg;
	char id[128];
	long batch_max, max_attempts, base_ms, cap_ms, poll_ms, lease_s, failed_keep_s;
	int c_sent, c_failed, c_retried, c_dropped, c_depth, c_purged;
	/* the statements, built once from the table's name */
	char sql_claim[SQL_MAX], sql_delete[SQL_MAX], sql_failed[SQL_MAX], sql_release[SQL_MAX],
		sql_later[SQL_MAX], sql_depth[SQL_MAX], sql_purge[SQL_MAX];
};

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static long setting(const struct outbox *ob, const char *suffix, long dflt, long min, long max)
{
	char name[64];

	snprintf(name, sizeof(name), "%s_%s", ob->cfg.env, suffix);
	return (long)cfg_int(name, dflt, min, max);
}

static int metrics_setup(struct outbox *ob)
{
	static const char *const labels[] = {"send"};
	char path[4096];
	const char *var = cfg_str("TH_VAR_DIR", NULL);

	ob->c_sent = ob->c_failed = ob->c_retried = ob->c_dropped = ob->c_depth = ob->c_purged = -1;
	if (!var)
		return 0;
	snprintf(path, sizeof(path), "%s/run/%s.metrics", var, ob->cfg.name);
	if (metrics_open(path, ob->cfg.name, labels, 1) < 0)
		return -1;
	ob->c_sent = outbox_counter(ob, "sent_total");
	ob->c_failed = outbox_counter(ob, "failed_total");
	ob->c_retried = outbox_counter(ob, "retried_total");
	ob->c_dropped = outbox_counter(ob, "dropped_total");
	ob->c_depth = outbox_counter(ob, "queue_depth");
	ob->c_purged = outbox_counter(ob, "purged_total");
	return 0;
}

static void build_sql(struct outbox *ob)
{
	const char *t = ob->cfg.table;

	snprintf(ob->sql_claim, SQL_MAX,
		 "UPDATE %s m SET claimed_by = $1, "
		 "claimed_until = now() + $2::bigint * interval '1 second' "
		 "WHERE m.id IN (SELECT id FROM %s WHERE failed_at IS NULL "
		 "AND next_at <= now() AND (claimed_until IS NULL OR claimed_until < now()) "
		 "ORDER BY next_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) "
		 "RETURNING m.id, m.attempts, %s",
		 t, t, ob->cfg.cols);
	snprintf(ob->sql_delete, SQL_MAX, "DELETE FROM %s WHERE id = $1 AND claimed_by = $2", t);
	snprintf(ob->sql_failed, SQL_MAX,
		 "UPDATE %s SET attempts = attempts + 1, claimed_by = NULL, "
		 "claimed_until = NULL, last_error = left($5, 512), "
		 "next_at = now() + $3::bigint * interval '1 millisecond', "
		 "failed_at = CASE WHEN $4 = '1' THEN now() END%s%s "
		 "WHERE id = $1 AND claimed_by = $2",
		 t, ob->cfg.fail_set ? ", " : "", ob->cfg.fail_set ? ob->cfg.fail_set : "");
	snprintf(ob->sql_release, SQL_MAX,
		 "UPDATE %s SET claimed_by = NULL, claimed_until = NULL "
		 "WHERE id = $1 AND claimed_by = $2",
		 t);
	snprintf(ob->sql_later, SQL_MAX,
		 "UPDATE %s SET claimed_by = NULL, claimed_until = NULL, "
		 "next_at = now() + $3::bigint * interval '1 millisecond' "
		 "WHERE id = $1 AND claimed_by = $2",
		 t);
	snprintf(ob->sql_depth, SQL_MAX, "SELECT count(*) FROM %s WHERE failed_at IS NULL", t);
	snprintf(ob->sql_purge, SQL_MAX,
		 "DELETE FROM %s WHERE id IN (SELECT id FROM %s WHERE failed_at < now() - "
		 "$1::bigint * interval '1 second' ORDER BY failed_at LIMIT %d)",
		 t, t, PURGE_BATCH);
}

struct outbox *outbox_open(const struct outbox_cfg *cfg)
{
	char host[64] = "host", idvar[64];
	struct outbox *ob = calloc(1, sizeof(*ob));
	size_t i;

	if (!ob)
		return NULL;
	ob->cfg = *cfg;
	ob->batch_max = setting(ob, "BATCH", 10, 1, 100);
	ob->max_attempts = setting(ob, "MAX_ATTEMPTS", 8, 1, 100);
	ob->base_ms = setting(ob, "RETRY_BASE_MS", 5000, 10, 3600000);
	ob->cap_ms = setting(ob, "RETRY_MAX_MS", 3600000, 10, 86400000);
	ob->poll_ms = setting(ob, "POLL_MS", 1000, 10, 60000);
	ob->failed_keep_s = setting(ob, "FAILED_KEEP_S", 7 * 86400, 1, 366 * 86400);
	/* every send of a batch at its longest, and a margin */
	ob->lease_s = ob->batch_max * (cfg->send_timeout_s + 5) + 2 * LEASE_MARGIN_S;
	gethostname(host, sizeof(host) - 1);
	snprintf(idvar, sizeof(idvar), "TH_%s_ID", cfg->name);
	for (i = 3; idvar[i]; i++)
		idvar[i] = (char)toupper((unsigned char)idvar[i]);
	snprintf(ob->id, sizeof(ob->id), "%s", cfg_str(idvar, ""));
	if (!ob->id[0])
		snprintf(ob->id, sizeof(ob->id), "%s-%s-%ld", cfg->name, host, (long)getpid());
	build_sql(ob);
	if (!cfg_str("TH_DB_CONNINFO", NULL) ||
	    db_init(cfg_str("TH_DB_CONNINFO", NULL), NULL, 10000) < 0) {
		fprintf(stderr, "%s: TH_DB_CONNINFO is not set\n", cfg->name);
		free(ob);
		return NULL;
	}
	if (metrics_setup(ob) < 0) {
		db_close();
		free(ob);
		return NULL;
	}
	return ob;
}

const char *outbox_id(const struct outbox *ob)
{
	return ob->id;
}

int outbox_counter(struct outbox *ob, const char *name)
{
	char full[96];

	snprintf(full, sizeof(full), "%s_%s", ob->cfg.metric, name);
	return metrics_counter(full);
}

void outbox_observe(struct outbox *ob, int status, unsigned long long duration_us)
{
	(void)ob;
	metrics_observe(0, status, duration_us);
}

/* the delay before attempt n + 1 (n >= 1 failed so far), jittered */
static long backoff_ms(const struct outbox *ob, long n)
{
	long d = ob->base_ms;

	while (--n > 0 && d < ob->cap_ms)
		d *= 2;
	if (d > ob->cap_ms)
		d = ob->cap_ms;
	return d / 2 + (long)randombytes_uniform((uint32_t)(d / 2 + 1));
}

static void settle_delete(struct outbox *ob, const char *id)
{
	const char *p[] = {id, ob->id};
	struct db_res *r = db_exec(DB_PRIMARY, ob->sql_delete, 2, p);

	if (!r)
		log_error("%s: row %s: cannot delete it: %s", ob->cfg.name, id, db_last_error());
	db_res_free(r);
}

void outbox_done(struct outbox *ob, const char *id)
{
	settle_delete(ob, id);
	metrics_add(ob->c_sent, 1);
}

void outbox_drop(struct outbox *ob, const char *id)
{
	settle_delete(ob, id);
	metrics_add(ob->c_dropped, 1);
}

void outbox_later(struct outbox *ob, const char *id, long delay_ms)
{
	char delay[24];
	const char *p[] = {id, ob->id, delay};
	struct db_res *r;

	snprintf(delay, sizeof(delay), "%ld", delay_ms);
	r = db_exec(DB_PRIMARY, ob->sql_later, 3, p);
	if (!r)
		log_error("%s: row %s: cannot put it off: %s", ob->cfg.name, id, db_last_error());
	db_res_free(r);
}

void outbox_failed(struct outbox *ob, const char *id, long attempts, int final, const char *why)
{
	char delay[24], fin[2];
	const char *p[] = {id, ob->id, delay, fin, why};
	struct db_res *r;

	attempts++;
	if (attempts >= ob->max_attempts)
		final = 1;
	snprintf(delay, sizeof(delay), "%ld", final ? 0 : backoff_ms(ob, attempts));
	snprintf(fin, sizeof(fin), "%d", final);
	if (final && ob->cfg.drop_failed)
		r = db_exec(DB_PRIMARY, ob->sql_delete, 2, p); /* id, sender id */
	else
		r = db_exec(DB_PRIMARY, ob->sql_failed, 5, p);
	if (!r)
		log_error("%s: row %s: cannot record the failure: %s", ob->cfg.name, id,
			  db_last_error());
	db_res_free(r);
	if (final) {
		metrics_add(ob->c_failed, 1);
		log_warn("%s: row %s failed for good after %ld attempts: %s", ob->cfg.name, id,
			 attempts, why);
	} else {
		metrics_add(ob->c_retried, 1);
		log_info("%s: row %s attempt %ld failed, retried in %s ms: %s", ob->cfg.name, id,
			 attempts, delay, why);
	}
}

/* Claims and sends one batch.  Returns the rows claimed, or -1 (database). */
static int run_batch(struct outbox *ob)
{
	char lease[24], batch[24];
	const char *p[] = {ob->id, lease, batch};
	const char *cols[16];
	struct db_res *r;
	uint64_t deadline;
	int i, j, n;

	snprintf(lease, sizeof(lease), "%ld", ob->lease_s);
	snprintf(batch, sizeof(batch), "%ld", ob->batch_max);
	r = db_exec(DB_PRIMARY, ob->sql_claim, 3, p);
	if (!r) {
		log_error("%s: claim: %s", ob->cfg.name, db_last_error());
		return -1;
	}
	/* the lease began at the server a little before now */
	deadline = mono_ms() +
		   (uint64_t)(ob->lease_s - LEASE_MARGIN_S - ob->cfg.send_timeout_s) * 1000;
	n = db_res_rows(r);
	for (i = 0; i < n && !stopping; i++) {
		if (mono_ms() > deadline)
			break;
		for (j = 0; j < ob->cfg.ncols && j < 16; j++)
			cols[j] = db_res_get(r, i, 2 + j);
		ob->cfg.send(ob, db_res_get(r, i, 0), strtol(db_res_get(r, i, 1), NULL, 10), cols,
			     ob->cfg.arg);
	}
	for (; i < n; i++) {
		/* not sent (stopping, or the lease nearly spent): back at once */
		const char *q[] = {db_res_get(r, i, 0), ob->id};

		db_res_free(db_exec(DB_PRIMARY, ob->sql_release, 2, q));
	}
	db_res_free(r);
	return n;
}

static void depth_update(struct outbox *ob)
{
	struct db_res *r = db_exec(DB_PRIMARY, ob->sql_depth, 0, NULL);

	if (r && db_res_rows(r) == 1)
		metrics_set(ob->c_depth, strtoull(db_res_get(r, 0, 0), NULL, 10));
	db_res_free(r);
}

/* A failed row is kept for an operator to look at, not for ever: it names
 * an address (and a user), and nothing retries it. */
static void purge_failed(struct outbox *ob)
{
	char keep[24];
	const char *p[] = {keep};
	struct db_res *r;

	snprintf(keep, sizeof(keep), "%ld", ob->failed_keep_s);
	r = db_exec(DB_PRIMARY, ob->sql_purge, 1, p);
	if (!r) {
		log_warn("%s: purging failed rows: %s", ob->cfg.name, db_last_error());
		return;
	}
	if (db_res_affected(r) > 0) {
		metrics_add(ob->c_purged, (unsigned long long)db_res_affected(r));
		log_info("%s: %lld failed row(s) older than %ld s purged", ob->cfg.name,
			 db_res_affected(r), ob->failed_keep_s);
	}
	db_res_free(r);
}

int outbox_run(struct outbox *ob)
{
	uint64_t next_depth = 0, next_purge = 0;
	int listening = 0;

	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	log_info("%s: %s started (batch %ld, lease %ld s)", ob->cfg.name, ob->id, ob->batch_max,
		 ob->lease_s);
	while (!stopping) {
		struct pollfd pfd = {.fd = -1, .events = POLLIN};
		int n;

		if (!listening)
			listening = db_listen(ob->cfg.channel) == 0;
		n = run_batch(ob);
		if (mono_ms() >= next_depth) {
			depth_update(ob);
			next_depth = mono_ms() + 1000;
		}
		if (mono_ms() >= next_purge) {
			purge_failed(ob);
			next_purge = mono_ms() + PURGE_EVERY_MS;
		}
		if (n == ob->batch_max)
			continue; /* more may be due */
		pfd.fd = listening ? db_listen_fd() : -1;
		if (poll(&pfd, pfd.fd >= 0 ? 1 : 0, n < 0 ? 1000 : (int)ob->poll_ms) > 0 &&
		    db_listen_drain() < 0)
			listening = 0;
	}
	log_info("%s: %s stopping", ob->cfg.name, ob->id);
	metrics_close();
	db_close();
	free(ob);
	return 0;
}
