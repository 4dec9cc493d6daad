/* th-mailer: mail_outbox -> SMTP.
 *
 * Several may run (on one host or many): each claims a batch of due rows for
 * a lease (UPDATE ... FOR UPDATE SKIP LOCKED), so a row is out at one sender
 * at a time; a sender that died leaves its batch to the others when the
 * lease ends.  The lease covers every send of the batch at its longest
 * (TH_SMTP_TIMEOUT_S each, plus a margin); a sender that finds its lease
 * nearly spent (a stall) sends nothing more and gives the rest back, so no
 * other sender can take a row it is still sending.  A mail is sent again
 * only when a sender dies between the server's acceptance and the row's
 * deletion (at least once).
 *
 * After a failed attempt the row waits a jittered exponential backoff
 * (TH_MAIL_RETRY_BASE_MS doubling up to TH_MAIL_RETRY_MAX_MS, a uniform
 * draw in [d/2, d]); after TH_MAIL_MAX_ATTEMPTS, or at once when the server
 * refused it for good (5xx) or it cannot be rendered, it is marked failed
 * and counted.  Woken by pg_notify(MAIL_CHANNEL) at each queued mail's
 * commit, and every TH_MAIL_POLL_MS for the retries that came due.
 *
 * Metrics ($TH_VAR_DIR/run/mailer.metrics, served by the auth pool at
 * /metrics/mailer): mail_sent_total, mail_failed_total, mail_retried_total,
 * mail_dropped_total (kind none), mail_queue_depth (rows not sent and not
 * failed), and the "send" histogram of SMTP exchanges. */
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "mail.h"
#include "mailer.h"
#include "metrics.h"
#include "mono.h"

#define LEASE_MARGIN_S 10

static volatile sig_atomic_t stopping;
static char sender_id[128];
static const char *public_url, *mail_from, *from_name, *msgid_domain;
static long batch_max, max_attempts, base_ms, cap_ms, poll_ms, lease_s;
static int c_sent = -1, c_failed = -1, c_retried = -1, c_dropped = -1, c_depth = -1;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static int url_ok(const char *u)
{
	if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)
		return 0;
	for (; *u; u++)
		if ((unsigned char)*u <= 0x20 || (unsigned char)*u >= 0x7f ||
		    strchr("\"'<>\\`", *u))
			return 0;
	return u[-1] != '/';
}

static int settings(void)
{
	char host[64] = "host";

	public_url = cfg_str("TH_PUBLIC_URL", NULL);
	if (!public_url || !url_ok(public_url)) {
		fprintf(stderr, "mailer: TH_PUBLIC_URL must be http(s)://host[:port][/path] "
				"without a trailing slash, quotes or spaces\n");
		return -1;
	}
	mail_from = cfg_str("TH_MAIL_FROM", "noreply@townhall.localhost");
	from_name = cfg_str("TH_MAIL_FROM_NAME", "Townhall");
	if (!mail_addr_ok(mail_from) || !mail_header_safe(from_name, 64)) {
		fprintf(stderr, "mailer: TH_MAIL_FROM is no plain address or TH_MAIL_FROM_NAME "
				"has a control byte\n");
		return -1;
	}
	msgid_domain = strchr(mail_from, '@') + 1;
	batch_max = (long)cfg_int("TH_MAIL_BATCH", 10, 1, 100);
	max_attempts = (long)cfg_int("TH_MAIL_MAX_ATTEMPTS", 8, 1, 100);
	base_ms = (long)cfg_int("TH_MAIL_RETRY_BASE_MS", 5000, 10, 3600000);
	cap_ms = (long)cfg_int("TH_MAIL_RETRY_MAX_MS", 3600000, 10, 86400000);
	poll_ms = (long)cfg_int("TH_MAIL_POLL_MS", 1000, 10, 60000);
	gethostname(host, sizeof(host) - 1);
	snprintf(sender_id, sizeof(sender_id), "%s", cfg_str("TH_MAILER_ID", ""));
	if (!sender_id[0])
		snprintf(sender_id, sizeof(sender_id), "mailer-%s-%ld", host, (long)getpid());
	return 0;
}

static int metrics_setup(void)
{
	static const char *const labels[] = {"send"};
	char path[4096];
	const char *var = cfg_str("TH_VAR_DIR", NULL);

	if (!var)
		return 0;
	snprintf(path, sizeof(path), "%s/run/mailer.metrics", var);
	if (metrics_open(path, "mailer", labels, 1) < 0)
		return -1;
	c_sent = metrics_counter("mail_sent_total");
	c_failed = metrics_counter("mail_failed_total");
	c_retried = metrics_counter("mail_retried_total");
	c_dropped = metrics_counter("mail_dropped_total");
	c_depth = metrics_counter("mail_queue_depth");
	return 0;
}

/* the delay before attempt n + 1 (n >= 1 failed so far), jittered */
static long backoff_ms(long n)
{
	long d = base_ms;

	while (--n > 0 && d < cap_ms)
		d *= 2;
	if (d > cap_ms)
		d = cap_ms;
	return d / 2 + (long)randombytes_uniform((uint32_t)(d / 2 + 1));
}

/* The row was sent (or dropped): it goes. */
static void settle_done(const char *id)
{
	const char *p[] = {id, sender_id};

	db_res_free(db_exec(DB_PRIMARY, "DELETE FROM mail_outbox WHERE id = $1 AND claimed_by = $2",
			    2, p));
}

/* An attempt failed: again after a backoff, or failed for good (final, or
 * the attempts are spent); params cleared then (they may hold a token). */
static void settle_failed(const char *id, long attempts, int final, const char *why)
{
	char delay[24], fin[2];
	const char *p[] = {id, sender_id, delay, fin, why};
	struct db_res *r;

	attempts++;
	if (attempts >= max_attempts)
		final = 1;
	snprintf(delay, sizeof(delay), "%ld", final ? 0 : backoff_ms(attempts));
	snprintf(fin, sizeof(fin), "%d", final);
	r = db_exec(DB_PRIMARY,
		    "UPDATE mail_outbox SET attempts = attempts + 1, claimed_by = NULL, "
		    "claimed_until = NULL, last_error = left($5, 512), "
		    "next_at = now() + $3::bigint * interval '1 millisecond', "
		    "failed_at = CASE WHEN $4 = '1' THEN now() END, "
		    "params = CASE WHEN $4 = '1' THEN '{}'::jsonb ELSE params END "
		    "WHERE id = $1 AND claimed_by = $2",
		    5, p);
	if (!r)
		log_error("mailer: mail %s: cannot record the failure: %s", id, db_last_error());
	db_res_free(r);
	if (final) {
		metrics_add(c_failed, 1);
		log_warn("mailer: mail %s failed for good after %ld attempts: %s", id, attempts,
			 why);
	} else {
		metrics_add(c_retried, 1);
		log_info("mailer: mail %s attempt %ld failed, retried in %s ms: %s", id, attempts,
			 delay, why);
	}
}

/* Renders, composes and sends one claimed row. */
static void send_one(const char *id, const char *kind, const char *to, const char *params,
		     long attempts)
{
	char *subject = NULL, *text = NULL, *html = NULL, *msg = NULL, err[512] = "";
	const char *why = NULL;
	size_t len = 0;
	uint64_t t0;
	int rc;

	rc = tmpl_render(kind, params, public_url, &subject, &text, &html);
	if (rc == 1) {
		settle_done(id);
		metrics_add(c_dropped, 1);
		goto out;
	}
	if (rc < 0) {
		settle_failed(id, attempts, 1, "cannot render: unknown kind or bad params");
		goto out;
	}
	{
		struct mail_msg m = {.from = mail_from,
				     .from_name = from_name,
				     .to = to,
				     .subject = subject,
				     .text = text,
				     .html = html,
				     .msgid_domain = msgid_domain,
				     .date = (long long)time(NULL)};

		msg = mail_compose(&m, &len, &why);
	}
	if (!msg) {
		snprintf(err, sizeof(err), "cannot compose: bad %s", why ? why : "?");
		settle_failed(id, attempts, 1, err);
		goto out;
	}
	t0 = mono_us();
	rc = smtp_send(mail_from, to, msg, len, err, sizeof(err));
	metrics_observe(0, rc == 0 ? 200 : 503, mono_us() - t0);
	if (rc == 0) {
		settle_done(id);
		metrics_add(c_sent, 1);
		log_info("mailer: mail %s (%s) sent", id, kind);
	} else {
		settle_failed(id, attempts, rc == 1, err);
	}
out:
	free(subject);
	free(text);
	free(html);
	free(msg);
}

/* Claims and sends one batch.  Returns the rows claimed, or -1 (database). */
static int run_batch(void)
{
	char lease[24], batch[24];
	const char *p[] = {sender_id, lease, batch};
	struct db_res *r;
	uint64_t deadline;
	int i, n;

	snprintf(lease, sizeof(lease), "%ld", lease_s);
	snprintf(batch, sizeof(batch), "%ld", batch_max);
	r = db_exec(DB_PRIMARY,
		    "UPDATE mail_outbox m SET claimed_by = $1, "
		    "claimed_until = now() + $2::bigint * interval '1 second' "
		    "WHERE m.id IN (SELECT id FROM mail_outbox WHERE failed_at IS NULL "
		    "AND next_at <= now() AND (claimed_until IS NULL OR claimed_until < now()) "
		    "ORDER BY next_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) "
		    "RETURNING m.id, m.kind, m.to_addr, m.params::text, m.attempts",
		    3, p);
	if (!r) {
		log_error("mailer: claim: %s", db_last_error());
		return -1;
	}
	/* the lease began at the server a little before now */
	deadline = mono_ms() + (uint64_t)(lease_s - LEASE_MARGIN_S - smtp_timeout_s()) * 1000;
	n = db_res_rows(r);
	for (i = 0; i < n && !stopping; i++) {
		if (mono_ms() > deadline)
			break;
		send_one(db_res_get(r, i, 0), db_res_get(r, i, 1), db_res_get(r, i, 2),
			 db_res_get(r, i, 3), strtol(db_res_get(r, i, 4), NULL, 10));
	}
	for (; i < n; i++) {
		/* not sent (stopping, or the lease nearly spent): back at once */
		const char *q[] = {db_res_get(r, i, 0), sender_id};

		db_res_free(
			db_exec(DB_PRIMARY,
				"UPDATE mail_outbox SET claimed_by = NULL, claimed_until = NULL "
				"WHERE id = $1 AND claimed_by = $2",
				2, q));
	}
	db_res_free(r);
	return n;
}

static void depth_update(void)
{
	struct db_res *r = db_exec(DB_PRIMARY,
				   "SELECT count(*) FROM mail_outbox WHERE failed_at IS NULL", 0,
				   NULL);

	if (r && db_res_rows(r) == 1)
		metrics_set(c_depth, strtoull(db_res_get(r, 0, 0), NULL, 10));
	db_res_free(r);
}

int main(void)
{
	uint64_t next_depth = 0;
	int listening = 0;

	log_init("mailer");
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0 || settings() < 0 || smtp_init() < 0)
		return 1;
	/* every send of a batch at its longest, and a margin */
	lease_s = batch_max * (smtp_timeout_s() + 5) + 2 * LEASE_MARGIN_S;
	if (!cfg_str("TH_DB_CONNINFO", NULL) ||
	    db_init(cfg_str("TH_DB_CONNINFO", NULL), NULL, 10000) < 0) {
		fprintf(stderr, "mailer: TH_DB_CONNINFO is not set\n");
		return 1;
	}
	if (metrics_setup() < 0)
		return 1;
	log_info("mailer: %s started (SMTP %s, batch %ld, lease %ld s)", sender_id,
		 cfg_str("TH_SMTP_URL", ""), batch_max, lease_s);
	while (!stopping) {
		struct pollfd pfd = {.fd = -1, .events = POLLIN};
		int n;

		if (!listening)
			listening = db_listen(MAIL_CHANNEL) == 0;
		n = run_batch();
		if (mono_ms() >= next_depth) {
			depth_update();
			next_depth = mono_ms() + 1000;
		}
		if (n == batch_max)
			continue; /* more may be due */
		pfd.fd = listening ? db_listen_fd() : -1;
		if (poll(&pfd, pfd.fd >= 0 ? 1 : 0, n < 0 ? 1000 : (int)poll_ms) > 0 &&
		    db_listen_drain() < 0)
			listening = 0;
	}
	log_info("mailer: %s stopping", sender_id);
	metrics_close();
	db_close();
	smtp_fini();
	return 0;
}
