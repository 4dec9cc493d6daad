/* addr: see addr.h. */
#include "addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t v4_prefix[12] = {[10] = 0xff, [11] = 0xff};

void addr_from_sockaddr(const struct sockaddr_storage *sa, uint8_t out[16])
{
	memset(out, 0, 16);
	if (sa->ss_family == AF_INET) {
		memcpy(out, v4_prefix, 12);
		memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->ss_family == AF_INET6) {
		memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	}
}

int addr_parse(struct hs_str s, uint8_t out[16])
{
	char tmp[INET6_ADDRSTRLEN];

	if (!s.p || s.n == 0 || s.n >= sizeof(tmp))
		return -1;
	memcpy(tmp, s.p, s.n);
	tmp[s.n] = '\0';
	memset(out, 0, 16);
	if (inet_pton(AF_INET, tmp, out + 12) == 1) {
		memcpy(out, v4_prefix, 12);
		return 0;
	}
	return inet_pton(AF_INET6, tmp, out) == 1 ? 0 : -1;
}

int addr_is_loopback(const uint8_t a[16])
{
	static const uint8_t v6lo[16] = {[15] = 1};

	return memcmp(a, v6lo, 16) == 0 || (memcmp(a, v4_prefix, 12) == 0 && a[12] == 127);
}

void addr_client(uint8_t key[16], const struct hs_req *req, const uint8_t (*trusted)[16], int n)
{
	uint8_t a[16];
	int i;

	for (i = 0; i < n && memcmp(trusted[i], key, 16) != 0; i++)
		;
	if (i == n)
		return; /* an untrusted peer's headers say nothing */
	if (addr_parse(req->real_ip, a) == 0) {
		memcpy(key, a, 16);
		return;
	}
	if (req->forwarded_for.p) {
		/* the last entry: the one the trusted proxy appended */
		const char *p = req->forwarded_for.p, *e = p + req->forwarded_for.n, *last = p;
		struct hs_str s;

		for (; p < e; p++)
			if (*p == ',')
				last = p + 1;
		while (last < e && (*last == ' ' || *last == '\t'))
			last++;
		s = (struct hs_str){last, (size_t)(e - last)};
		while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t'))
			s.n--;
		if (addr_parse(s, a) == 0)
			memcpy(key, a, 16);
	}
}

const char *addr_text(const uint8_t a[16], char *out, size_t size)
{
	if (memcmp(a, v4_prefix, 12) == 0)
		return inet_ntop(AF_INET, a + 12, out, (socklen_t)size);
	return inet_ntop(AF_INET6, a, out, (socklen_t)size);
}
