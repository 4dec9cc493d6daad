/* th-mailer: drains mail_outbox over SMTP (db/migrations/0022_mail.sql).
 * main.c: the loop (claim, send, settle) and its settings; templates.c:
 * the subject and bodies of each kind; smtp.c: one message over libcurl. */
#ifndef TH_MAILER_H
#define TH_MAILER_H
#include <stddef.h>

/* The subject, text and HTML of a mail of kind to `to` with the row's params
 * (a JSON object), links built on public_url.  Each out string is malloc'd
 * (caller frees, also on failure: they are NULL or set).  0: rendered;
 * 1: the kind sends nothing ("none"); -1: unknown kind or missing params
 * (the row can never be sent). */
int tmpl_render(const char *kind, const char *params_json, const char *public_url, char **subject,
		char **text, char **html);

/* SMTP settings: from the environment once (smtp_init exits the process
 * with a message on a bad value, as cfg_* do). */
int smtp_init(void);
void smtp_fini(void);
/* TH_SMTP_TIMEOUT_S: the bound of one smtp_send() */
long smtp_timeout_s(void);
/* Sends msg (len bytes, CRLF lines) from `from` to `to`.  0: the server
 * accepted it; 1: refused for good (a 5xx answer); -1: try again later
 * (connection, TLS, timeout, 4xx).  err gets a one-line reason. */
int smtp_send(const char *from, const char *to, const char *msg, size_t len, char *err,
	      size_t errsize);

#endif
