/* th-mailer: mail_outbox -> SMTP.
 *
 * The loop (claim with a lease, backoff, bounded attempts, metrics) is the
 * core's outbox module (lib/outbox.h), shared with th-pusher; here: the
 * settings of mail and the send of one row.  A row is rendered, composed
 * and sent; it fails for good at once when the server refused it (5xx) or
 * it cannot be rendered; kind none is dropped unsent.  Its params are
 * cleared when it failed for good (they may hold a token).
 *
 * Settings: TH_MAIL_BATCH, TH_MAIL_MAX_ATTEMPTS, TH_MAIL_RETRY_BASE_MS,
 * TH_MAIL_RETRY_MAX_MS, TH_MAIL_POLL_MS, TH_MAILER_ID (lib/outbox.h).
 * Metrics ($TH_VAR_DIR/run/mailer.metrics, served by the auth pool at
 * /metrics/mailer): mail_sent_total, mail_failed_total, mail_retried_total,
 * mail_dropped_total (kind none), mail_queue_depth (rows not sent and not
 * failed), and the "send" histogram of SMTP exchanges. */
#include <json-c/json.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "mail.h"
#include "mailer.h"
#include "mono.h"
#include "outbox.h"

static const char *public_url, *mail_from, *from_name, *msgid_domain;

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
	return 0;
}

/* Renders, composes and sends one claimed row: cols kind, to_addr, params. */
static void send_one(struct outbox *ob, const char *id, long attempts, const char *const *cols,
		     void *arg)
{
	const char *kind = cols[0], *to = cols[1], *params = cols[2];
	char *subject = NULL, *text = NULL, *html = NULL, *msg = NULL, err[512] = "";
	const char *why = NULL;
	size_t len = 0;
	uint64_t t0;
	int rc;

	(void)arg;
	rc = tmpl_render(kind, params, public_url, &subject, &text, &html);
	if (rc == 1) {
		outbox_drop(ob, id);
		goto out;
	}
	if (rc < 0) {
		outbox_failed(ob, id, attempts, 1, "cannot render: unknown kind or bad params");
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
		outbox_failed(ob, id, attempts, 1, err);
		goto out;
	}
	t0 = mono_us();
	rc = smtp_send(mail_from, to, msg, len, err, sizeof(err));
	outbox_observe(ob, rc == 0 ? 200 : 503, mono_us() - t0);
	if (rc == 0) {
		outbox_done(ob, id);
		log_info("mailer: mail %s (%s) sent", id, kind);
	} else {
		outbox_failed(ob, id, attempts, rc == 1, err);
	}
out:
	free(subject);
	free(text);
	free(html);
	free(msg);
}

int main(void)
{
	struct outbox_cfg cfg = {.name = "mailer",
				 .metric = "mail",
				 .env = "TH_MAIL",
				 .table = "mail_outbox",
				 .cols = "m.kind, m.to_addr, m.params::text",
				 .ncols = 3,
				 .fail_set = "params = CASE WHEN $4 = '1' THEN '{}'::jsonb "
					     "ELSE params END",
				 .channel = MAIL_CHANNEL,
				 .send = send_one};
	struct outbox *ob;
	int rc;

	log_init("mailer");
	if (sodium_init() < 0 || settings() < 0 || smtp_init() < 0)
		return 1;
	cfg.send_timeout_s = smtp_timeout_s();
	ob = outbox_open(&cfg);
	if (!ob) {
		smtp_fini();
		return 1;
	}
	log_info("mailer: SMTP %s", cfg_str("TH_SMTP_URL", ""));
	rc = outbox_run(ob);
	smtp_fini();
	return rc;
}
