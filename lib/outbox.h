/* outbox: the sender loop shared by th-mailer (mail_outbox) and th-pusher
 * (push_outbox): claim due rows for a lease, hand each to the sender's
 * callback, settle it (done, or failed with a backoff), keep metrics.
 *
 * A table has the columns id, attempts, next_at, claimed_by, claimed_until,
 * failed_at, last_error (db/migrations/0022_mail.sql, 0026_push.sql).
 * Several senders may run (on one host or many): each claims a batch of due
 * rows for a lease (UPDATE ... FOR UPDATE SKIP LOCKED), so a row is out at
 * one sender at a time; a sender that died leaves its batch to the others
 * when the lease ends.  The lease covers every send of the batch at its
 * longest (send_timeout_s each, plus a margin); a sender that finds its
 * lease nearly spent (a stall) sends nothing more and gives the rest back.
 * A row is sent again only when a sender dies between the far side's
 * acceptance and the row's deletion (at least once).
 *
 * After a failed attempt the row waits a jittered exponential backoff
 * (<env>_RETRY_BASE_MS doubling up to <env>_RETRY_MAX_MS, a uniform draw in
 * [d/2, d]); after <env>_MAX_ATTEMPTS, or at once when the failure is final,
 * it is marked failed (or deleted: drop_failed) and counted.  Woken by pg_notify(channel) at each
 * queued row's commit, and every <env>_POLL_MS for retries that came due.
 * A failed row is kept <env>_FAILED_KEEP_S (7 days), then deleted (counted
 * in <metric>_purged_total).
 *
 * Metrics ($TH_VAR_DIR/run/<name>.metrics): <metric>_sent_total,
 * _failed_total, _retried_total, _dropped_total, _queue_depth (rows not
 * settled and not failed) and the "send" histogram; a sender may add its
 * own counters (outbox_counter) before outbox_run. */
#ifndef TH_OUTBOX_H
#define TH_OUTBOX_H

struct outbox;

/* One claimed row: id, the attempts made before, and the sender's columns
 * (cfg.cols, in order).  The callback settles it with outbox_done or
 * outbox_failed (a row left unsettled comes back when its lease ends). */
typedef void (*outbox_send_fn)(struct outbox *ob, const char *id, long attempts,
			       const char *const *cols, void *arg);

struct outbox_cfg {
	const char *name;     /* "mailer": logs, metrics file, TH_<NAME>_ID */
	const char *metric;   /* "mail": the counters' prefix */
	const char *env;      /* "TH_MAIL": <env>_BATCH, _MAX_ATTEMPTS, ... */
	const char *table;    /* "mail_outbox" (a constant, never input) */
	const char *cols;     /* the sender's columns, "kind, to_addr, params::text" */
	int ncols;            /* how many */
	const char *fail_set; /* more SET on a final failure ("params = '{}'"), or NULL */
	int drop_failed;      /* 1: a row failed for good is deleted (counted), not kept */
	const char *channel;  /* the pg_notify channel */
	long send_timeout_s;  /* the bound of one send */
	outbox_send_fn send;
	void *arg;
};

/* Reads the settings, connects (TH_DB_CONNINFO), opens the metrics.  NULL
 * with a message on stderr when a setting is bad or the database unset. */
struct outbox *outbox_open(const struct outbox_cfg *cfg);
/* Claims and sends until SIGTERM or SIGINT; then closes everything. */
int outbox_run(struct outbox *ob);

/* The row was sent: it goes; counted as sent. */
void outbox_done(struct outbox *ob, const char *id);
/* The row needs no send (kind none, the user is online...): it goes;
 * counted as dropped. */
void outbox_drop(struct outbox *ob, const char *id);
/* Not now: the row is claimable again after delay_ms, no attempt counted
 * (the pusher asks again whether its user is still online). */
void outbox_later(struct outbox *ob, const char *id, long delay_ms);
/* An attempt failed: again after a backoff, or failed for good (final, or
 * the attempts are spent).  why: one line, kept in last_error. */
void outbox_failed(struct outbox *ob, const char *id, long attempts, int final, const char *why);
/* A counter of the sender's own (metrics_counter index, -1 when none). */
int outbox_counter(struct outbox *ob, const char *name);
/* Observes one send in the "send" histogram. */
void outbox_observe(struct outbox *ob, int status, unsigned long long duration_us);
/* The sender's id (logs). */
const char *outbox_id(const struct outbox *ob);

#endif
