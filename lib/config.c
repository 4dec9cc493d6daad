/* config: environment getters that fail fast. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *cfg_str(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return (v && *v) ? v : dflt;
}

int cfg_parse_int(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	if (!s || !*s || s[0] == ' ' || s[0] == '+')
		return -1;
	if (s[0] == '-' && min >= 0)
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int cfg_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"1", "true", "yes", "on"};
	static const char *const no[] = {"0", "false", "no", "off"};
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

long long cfg_int(const char *name, long long dflt, long long min, long long max)
{
	const char *v = cfg_str(name, NULL);
	long long out;

	if (!v)
		return dflt;
	if (cfg_parse_int(v, min, max, &out) < 0) {
		fprintf(stderr, "config: %s must be an integer in [%lld, %lld]\n", name, min, max);
		exit(2);
	}
	return out;
}

bool cfg_bool(const char *name, bool dflt)
{
	const char *v = cfg_str(name, NULL);
	bool out;

	if (!v)
		return dflt;
	if (cfg_parse_bool(v, &out) < 0) {
		fprintf(stderr, "config: %s must be a boolean (1/0, true/false)\n", name);
		exit(2);
	}
	return out;
}
