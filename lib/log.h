/* log: one line per request and levelled diagnostics, to stderr.
 *
 * The pool's stderr is its log file (scripts/stack redirects it).  A line is
 * written with a single write(2) so lines of concurrent workers never
 * interleave.  Untrusted text is passed through log_clean() first: control
 * bytes become '?', and it is cut at a bound. */
#ifndef TH_LOG_H
#define TH_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* name: the program's name in each line (the pool).  level from TH_LOG_LEVEL. */
void log_init(const char *name);
void log_set_level(enum log_level level);
/* Parses "debug|info|warn|error"; -1 when unknown. */
int log_parse_level(const char *s);

extern enum log_level log_level_now;

/* Sends every line to fn instead of stderr (the broker plugin logs through
 * the broker).  The line has no timestamp and no newline. */
void log_set_sink(void (*fn)(int level, const char *line));

void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Cheap when the level is off: the arguments are not even evaluated. */
#define log_debug(...)                                     \
	do {                                               \
		if (log_level_now <= LOG_DEBUG)            \
			log_write(LOG_DEBUG, __VA_ARGS__); \
	} while (0)
#define log_info(...)                                     \
	do {                                              \
		if (log_level_now <= LOG_INFO)            \
			log_write(LOG_INFO, __VA_ARGS__); \
	} while (0)
#define log_warn(...)                                     \
	do {                                              \
		if (log_level_now <= LOG_WARN)            \
			log_write(LOG_WARN, __VA_ARGS__); \
	} while (0)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

/* The access line: method, path, status, duration, request id. */
void log_request(const char *method, const char *path, int status, unsigned long long duration_us,
		 const char *request_id);

/* Copies at most dstsize-1 bytes of src into dst, replacing bytes below 0x20
 * and 0x7f with '?', and marks a cut with "...".  Returns dst. */
char *log_clean(char *dst, size_t dstsize, const char *src);

#endif
