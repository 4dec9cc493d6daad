/* ids: integer and UUID ids as text. */
#include <string.h>

#include "ids.h"

const char *ids_text(char buf[24], int64_t id)
{
	char tmp[24], *p = tmp + sizeof(tmp);
	uint64_t u = id < 0 ? 0 - (uint64_t)id : (uint64_t)id;

	*--p = '\0';
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (id < 0)
		*--p = '-';
	memcpy(buf, p, (size_t)(tmp + sizeof(tmp) - p));
	return buf;
}

int ids_array(char *buf, size_t size, const int64_t *ids, size_t n)
{
	size_t len = 0;

	if (size < 3)
		return -1;
	if (size < IDS_ARRAY_SIZE(n)) {
		memcpy(buf, "{}", 3);
		return -1;
	}
	buf[len++] = '{';
	for (size_t i = 0; i < n; i++) {
		char one[24];
		size_t k = strlen(ids_text(one, ids[i]));

		if (i)
			buf[len++] = ',';
		memcpy(buf + len, one, k);
		len += k;
	}
	buf[len++] = '}';
	buf[len] = '\0';
	return (int)len;
}

static int hex_ok(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

int ids_uuid_ok(const char *s, size_t n)
{
	if (!s || n != IDS_UUID_LEN)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!hex_ok(s[i])) {
			return 0;
		}
	}
	return 1;
}

void ids_uuid_lower(char out[IDS_UUID_LEN + 1], const char *s)
{
	for (size_t i = 0; i < IDS_UUID_LEN; i++)
		out[i] = (char)((s[i] >= 'A' && s[i] <= 'F') ? s[i] + ('a' - 'A') : s[i]);
	out[IDS_UUID_LEN] = '\0';
}
