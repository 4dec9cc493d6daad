/* config: settings from the environment (TH_*), read at start-up.
 *
 * Getters validate and exit the process with a clear message on a bad value:
 * a misconfigured worker must fail at start, not at its first request. */
#ifndef TH_CONFIG_H
#define TH_CONFIG_H

#include <stdbool.h>

/* The value of name, or dflt when unset or empty.  Not copied: the pointer is
 * the environment's (or dflt). */
const char *cfg_str(const char *name, const char *dflt);
/* An integer in [min, max]; dflt when unset.  Exits(2) when malformed or out
 * of range. */
long long cfg_int(const char *name, long long dflt, long long min, long long max);
/* 1/0, true/false, yes/no, on/off; dflt when unset.  Exits(2) otherwise. */
bool cfg_bool(const char *name, bool dflt);

/* Parses a whole decimal integer in [min, max] (no sign for min >= 0, no
 * spaces, no trailing bytes).  Returns 0 and sets *out, or -1. */
int cfg_parse_int(const char *s, long long min, long long max, long long *out);
/* Parses a boolean word as cfg_bool does.  Returns 0 and sets *out, or -1. */
int cfg_parse_bool(const char *s, bool *out);

#endif
