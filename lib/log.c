/* log: formatting into one stack buffer, then one write(2). */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048

enum log_level log_level_now = LOG_INFO;
static char log_name[32] = "townhall";
/* The pid of every line, asked once: a worker writes a line a request, and on
 * a virtual machine each system call costs as much as a small request's own
 * work.  A forked child asks again (log_forked). */
static pid_t log_pid;
static int atfork_done;

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static void (*sink)(int level, const char *line);

void log_set_sink(void (*fn)(int level, const char *line))
{
	sink = fn;
}

static void log_forked(void)
{
	log_pid = 0;
}

void log_init(const char *name)
{
	const char *lv = getenv("TH_LOG_LEVEL");
	int l;

	if (!atfork_done && pthread_atfork(NULL, NULL, log_forked) == 0)
		atfork_done = 1;
	log_pid = 0;
	snprintf(log_name, sizeof(log_name), "%s", name);
	if (lv && *lv) {
		l = log_parse_level(lv);
		if (l >= 0)
			log_level_now = (enum log_level)l;
	}
}

void log_set_level(enum log_level level)
{
	log_level_now = level;
}

int log_parse_level(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	return -1;
}

char *log_clean(char *dst, size_t dstsize, const char *src)
{
	size_t i, n = 0;

	if (dstsize == 0)
		return dst;
	if (!src)
		src = "-";
	for (i = 0; src[i] && n + 1 < dstsize; i++) {
		unsigned char c = (unsigned char)src[i];

		dst[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	dst[n] = '\0';
	if (src[i] && dstsize > 4)
		memcpy(dst + dstsize - 4, "...", 4);
	return dst;
}

/* "2026-11-27T17:32:48.123Z" */
static size_t log_stamp(char *buf, size_t size)
{
	struct timeval tv;
	struct tm tm;
	size_t n;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(buf + n, size - n, ".%03dZ", (int)(tv.tv_usec / 1000));
	return n;
}

static void log_emit(char *line, size_t n)
{
	ssize_t w;

	if (n >= LOG_LINE_MAX)
		n = LOG_LINE_MAX - 1;
	line[n++] = '\n';
	w = write(STDERR_FILENO, line, n);
	(void)w; /* nowhere to report a failed log write */
}

void log_write(enum log_level level, const char *fmt, ...)
{
	char line[LOG_LINE_MAX + 1];
	size_t n;
	int m;
	va_list ap;

	if (sink) {
		va_start(ap, fmt);
		vsnprintf(line, sizeof(line), fmt, ap);
		va_end(ap);
		sink((int)level, line);
		return;
	}
	if (!log_pid || !atfork_done)
		log_pid = getpid();
	n = log_stamp(line, LOG_LINE_MAX);
	m = snprintf(line + n, LOG_LINE_MAX - n, " %s[%d] %s ", log_name, (int)log_pid,
		     level_names[level]);
	if (m > 0)
		n += (size_t)m;
	if (n < LOG_LINE_MAX) {
		va_start(ap, fmt);
		m = vsnprintf(line + n, LOG_LINE_MAX - n, fmt, ap);
		va_end(ap);
		if (m > 0)
			n += (size_t)m;
	}
	log_emit(line, n);
}

void log_request(const char *method, const char *path, int status, unsigned long long duration_us,
		 const char *request_id)
{
	char m[16], p[512], rid[64];

	if (log_level_now > LOG_INFO)
		return;
	log_write(LOG_INFO, "%s %s %d %llu.%03llums rid=%s", log_clean(m, sizeof(m), method),
		  log_clean(p, sizeof(p), path), status, duration_us / 1000, duration_us % 1000,
		  log_clean(rid, sizeof(rid), request_id));
}
