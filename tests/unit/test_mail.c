/* Unit tests for mail's composition: header safety, RFC 2047 subjects, HTML
 * escaping and the multipart message (lib/mail.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail.h"

static void test_addr(void **state)
{
	(void)state;
	assert_true(mail_addr_ok("a@b.c"));
	assert_true(mail_addr_ok("first.last+tag@example.org"));
	assert_false(mail_addr_ok(NULL));
	assert_false(mail_addr_ok("ab"));
	assert_false(mail_addr_ok("no-at.example"));
	assert_false(mail_addr_ok("@b.c"));
	assert_false(mail_addr_ok("a@"));
	assert_false(mail_addr_ok("a@b@c"));
	assert_false(mail_addr_ok("a@b.c\r\nBcc: x@y.z"));
	assert_false(mail_addr_ok("a b@c.d"));
	assert_false(mail_addr_ok("a@b.c>"));
	assert_false(mail_addr_ok("\xc3\xa9@b.c"));
}

static void test_header_safe(void **state)
{
	(void)state;
	assert_true(mail_header_safe("Hello", 10));
	assert_true(mail_header_safe("caf\xc3\xa9", 10));
	assert_false(mail_header_safe("a\r\nBcc: x", 100));
	assert_false(mail_header_safe("a\nb", 100));
	assert_false(mail_header_safe("a\tb", 100));
	assert_false(mail_header_safe("toolong", 3));
}

static void test_subject(void **state)
{
	char *s;

	(void)state;
	s = mail_subject_encode("Plain subject");
	assert_string_equal(s, "Plain subject");
	free(s);
	/* looks like an encoded word: encoded, never passed through */
	s = mail_subject_encode("=?UTF-8?B?eA==?=");
	assert_non_null(s);
	assert_true(strncmp(s, "=?UTF-8?B?", 10) == 0);
	assert_string_not_equal(s, "=?UTF-8?B?eA==?=");
	free(s);
	s = mail_subject_encode("Caf\xc3\xa9");
	assert_string_equal(s, "=?UTF-8?B?Q2Fmw6k=?=");
	free(s);
	assert_null(mail_subject_encode("a\r\nBcc: x@y.z"));
	assert_null(mail_subject_encode("bad \xc3"));
	{
		/* 40 two-byte characters: split into words of at most 75 bytes,
		 * never inside a character */
		char in[81], *w;
		int words = 0;

		for (int i = 0; i < 40; i++)
			memcpy(in + 2 * i, "\xc3\xa9", 2);
		in[80] = '\0';
		s = mail_subject_encode(in);
		assert_non_null(s);
		for (w = strtok(s, "\r\n "); w; w = strtok(NULL, "\r\n ")) {
			assert_true(strlen(w) <= 75);
			assert_true(strncmp(w, "=?UTF-8?B?", 10) == 0);
			words++;
		}
		assert_int_equal(words, 2);
		free(s);
	}
}

static void test_html_escape(void **state)
{
	char *s = mail_html_escape("<a href=\"x\">'&'</a>");

	(void)state;
	assert_string_equal(s, "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
	free(s);
}

static void test_compose(void **state)
{
	struct mail_msg m = {.from = "noreply@th.example",
			     .from_name = "Townhall",
			     .to = "bob@example.org",
			     .subject = "Hi \xc3\xa9",
			     .text = "text body https://x/y?token=abc",
			     .html = "<p>html</p>",
			     .msgid_domain = "th.example",
			     .date = 0};
	const char *why;
	size_t len = 0;
	char *msg;

	(void)state;
	msg = mail_compose(&m, &len, &why);
	assert_non_null(msg);
	assert_int_equal(len, strlen(msg));
	assert_non_null(strstr(msg, "To: <bob@example.org>\r\n"));
	assert_non_null(strstr(msg, "Subject: =?UTF-8?B?"));
	assert_non_null(strstr(msg, "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n"));
	assert_non_null(strstr(msg, "Content-Type: multipart/alternative; boundary="));
	assert_non_null(strstr(msg, "Content-Type: text/plain; charset=utf-8"));
	assert_non_null(strstr(msg, "Content-Type: text/html; charset=utf-8"));
	/* every line ends in CRLF, none longer than 998 */
	for (char *p = msg, *nl; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		assert_non_null(nl);
		assert_true(nl > p ? nl[-1] == '\r' : 0);
		assert_true(nl - p <= 998);
	}
	free(msg);
	m.to = "bob@example.org\r\nBcc: eve@example.org";
	assert_null(mail_compose(&m, &len, &why));
	assert_string_equal(why, "address");
	m.to = "bob@example.org";
	m.subject = "x\r\nBcc: eve@example.org";
	assert_null(mail_compose(&m, &len, &why));
	assert_string_equal(why, "subject");
	m.subject = "ok";
	m.from_name = "Eve\r\nBcc: x@y.z";
	assert_null(mail_compose(&m, &len, &why));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr),    cmocka_unit_test(test_header_safe),
		cmocka_unit_test(test_subject), cmocka_unit_test(test_html_escape),
		cmocka_unit_test(test_compose),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
