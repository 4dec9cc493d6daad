/* templates: what each kind of mail says.
 *
 * Every value from the row (a name, an address) is escaped in the HTML and
 * never reaches a header (the subjects are fixed); links are the configured
 * public URL plus a fixed path and the token, which is base64url (checked
 * here: nothing else may ride in the link). */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail.h"
#include "mailer.h"

struct kind {
	const char *name;
	const char *subject;
	const char *path;  /* the link's path + "?token=", NULL: no link */
	const char *lead;  /* what the mail is for */
	const char *after; /* after the link: lifetime, or what to do if not you */
};

static const struct kind kinds[] = {
	{"verify_email", "Confirm your email address", "/verify-email?token=",
	 "Please confirm that this address belongs to your Townhall account by opening this "
	 "link:",
	 "The link works once, within 24 hours. If you did not ask for it, ignore this mail."},
	{"password_reset", "Reset your Townhall password", "/reset-password?token=",
	 "Someone (hopefully you) asked to reset the password of your Townhall account. Choose a "
	 "new password here:",
	 "The link works once, within 1 hour. If you did not ask for it, ignore this mail: your "
	 "password stays as it is."},
	{"email_change_notice", "Your Townhall email address is being changed", NULL,
	 "A change of the email address of your Townhall account was requested. The new address "
	 "takes over once it is confirmed:",
	 "If this was not you, change your password now: it signs out every other session."},
	{"password_changed", "Your Townhall password was changed", NULL,
	 "The password of your Townhall account was just changed, and every other session was "
	 "signed out.",
	 "If this was not you, reset your password now with \"Forgot password\"."},
};

static const char *param(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int token_ok(const char *t)
{
	size_t n = strlen(t);

	if (n < 16 || n > 128)
		return 0;
	for (; *t; t++)
		if (!((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') ||
		      (*t >= '0' && *t <= '9') || *t == '-' || *t == '_'))
			return 0;
	return 1;
}

int tmpl_render(const char *kind, const char *params_json, const char *public_url, char **subject,
		char **text, char **html)
{
	const struct kind *k = NULL;
	struct json_object *o = NULL;
	const char *name, *token = NULL, *extra = NULL;
	char *link = NULL, *h_name = NULL, *h_link = NULL, *h_extra = NULL, *mid = NULL;
	size_t i;
	int ret = -1, rc;

	*subject = *text = *html = NULL;
	if (strcmp(kind, "none") == 0)
		return 1;
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kinds[i].name, kind) == 0)
			k = &kinds[i];
	o = json_tokener_parse(params_json);
	if (!k || !o || !json_object_is_type(o, json_type_object))
		goto out;
	name = param(o, "name");
	if (!name)
		name = "";
	if (k->path) {
		token = param(o, "token");
		if (!token || !token_ok(token))
			goto out;
		if (asprintf(&link, "%s%s%s", public_url, k->path, token) < 0) {
			link = NULL;
			goto out;
		}
	}
	if (strcmp(kind, "email_change_notice") == 0) {
		extra = param(o, "new_email");
		if (!extra)
			goto out;
	}
	h_name = mail_html_escape(name);
	h_link = mail_html_escape(link ? link : "");
	h_extra = mail_html_escape(extra ? extra : "");
	*subject = strdup(k->subject);
	if (!h_name || !h_link || !h_extra || !*subject)
		goto out;
	if (asprintf(text, "Hello %s,\r\n\r\n%s\r\n\r\n%s%s%s%s\r\n\r\n-- \r\nTownhall\r\n", name,
		     k->lead, link ? link : "", extra ? extra : "",
		     (link || extra) ? "\r\n\r\n" : "", k->after) < 0) {
		*text = NULL;
		goto out;
	}
	rc = link ? asprintf(&mid, "<p><a href=\"%s\">%s</a></p>\r\n", h_link, h_link)
		  : asprintf(&mid, "%s%s%s", extra ? "<p>" : "", h_extra, extra ? "</p>\r\n" : "");
	if (rc < 0) {
		mid = NULL;
		goto out;
	}
	if (asprintf(html,
		     "<!DOCTYPE html>\r\n<html><body>\r\n<p>Hello %s,</p>\r\n<p>%s</p>\r\n%s"
		     "<p>%s</p>\r\n<p>&mdash; Townhall</p>\r\n</body></html>\r\n",
		     h_name, k->lead, mid, k->after) < 0) {
		*html = NULL;
		goto out;
	}
	ret = 0;
out:
	json_object_put(o);
	free(link);
	free(h_name);
	free(h_link);
	free(h_extra);
	free(mid);
	return ret;
}
