/* linger: when a batch goes (linger.h). */
#include <stddef.h>

#include "linger.h"

/* ms from then until now, 0 when the clock reads earlier (it never should) */
static uint64_t since_ms(uint64_t then_us, uint64_t now_us)
{
	return now_us > then_us ? (now_us - then_us) / 1000 : 0;
}

int linger_left_ms(const struct linger_rule *l, size_t n, uint64_t first_us, uint64_t last_us,
		   uint64_t now_us)
{
	uint64_t quiet = since_ms(last_us, now_us), age = since_ms(first_us, now_us);
	uint64_t left_quiet, left_age;

	if (n == 0 || n >= (size_t)l->max)
		return 0;
	if (quiet >= (uint64_t)l->wait_ms || age >= (uint64_t)l->linger_ms)
		return 0;
	left_quiet = (uint64_t)l->wait_ms - quiet;
	left_age = (uint64_t)l->linger_ms - age;
	return (int)(left_quiet < left_age ? left_quiet : left_age);
}
