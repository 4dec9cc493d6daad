/* mail: the mail outbox (queued by the apps) and the composition of one
 * RFC 5322 message (used by th-mailer, fcgi-apps/mail).
 *
 * mail_queue() writes a row of mail_outbox in the caller's transaction and
 * wakes the senders (pg_notify(MAIL_CHANNEL) delivered at commit): the mail
 * exists exactly when the action that needs it committed.  The sender claims
 * rows for a lease, renders the kind's template and sends over SMTP
 * (db/migrations/0022_mail.sql tells the row's life).
 *
 * mail_compose() builds the message: headers refuse CR, LF and other control
 * bytes in every value (no header injection), a non-ASCII subject becomes
 * RFC 2047 encoded words, the body is multipart/alternative (text/plain and
 * text/html, each UTF-8 in base64, lines of 76). */
#ifndef TH_MAIL_H
#define TH_MAIL_H
#include <stddef.h>
#include <stdint.h>

#define MAIL_CHANNEL "townhall_mail"
#define MAIL_PARAMS_MAX 4096 /* the row's params (CHECK in the migration) */
#define MAIL_ADDR_MAX 254

/* kinds: verify_email, password_reset, email_change_notice,
 * password_changed, none (dropped by the sender).  to: the recipient;
 * user_id: the account (0: none); params_json: a JSON object the template
 * reads (may be NULL: {}).  In the caller's transaction.  0, or -1
 * (db_last_err() says why; an address with a control byte: TH_EVALIDATION). */
int mail_queue(const char *kind, const char *to, int64_t user_id, const char *params_json);

/* 1 when s may stand in a header: printable, no CR/LF or other control
 * byte (UTF-8 bytes >= 0x80 allowed), at most max bytes. */
int mail_header_safe(const char *s, size_t max);

/* 1 when addr is a plain address usable in To and RCPT TO: ASCII, no
 * space, control byte or any of <>()[],;:\" , one '@' with text on both
 * sides, at most MAIL_ADDR_MAX bytes. */
int mail_addr_ok(const char *addr);

/* The subject as one header value: itself when ASCII, else RFC 2047 "B"
 * encoded words of at most 75 bytes each, split between UTF-8 characters,
 * joined by CRLF SP.  Returns a malloc'd string (caller frees), or NULL
 * (control byte, invalid UTF-8, or memory). */
char *mail_subject_encode(const char *subject);

/* s with & < > " ' escaped for HTML text and attribute values; malloc'd
 * (caller frees), NULL on memory. */
char *mail_html_escape(const char *s);

struct mail_msg {
	const char *from;         /* address (mail_addr_ok) */
	const char *from_name;    /* display name, ASCII or UTF-8, may be NULL */
	const char *to;           /* address (mail_addr_ok) */
	const char *subject;      /* UTF-8 */
	const char *text;         /* text/plain body, UTF-8 */
	const char *html;         /* text/html body, UTF-8 */
	const char *msgid_domain; /* the right side of Message-ID */
	long long date;           /* seconds since the epoch (Date header) */
};

/* The whole message with CRLF line ends into a malloc'd buffer (caller
 * frees), its length in *len.  NULL when a header value is not safe or an
 * address is not plain (then *why says which), or memory is short. */
char *mail_compose(const struct mail_msg *m, size_t *len, const char **why);

#endif
