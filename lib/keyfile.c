/* keyfile: secrets read from key files (keyfile.h). */
#include "keyfile.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "config.h"

ssize_t keyfile_read(const char *what, const char *var, const char *name, unsigned char *buf,
		     size_t cap, size_t min)
{
	char dflt[4096];
	const char *path;
	ssize_t n;
	int fd;

	snprintf(dflt, sizeof(dflt), "%s/keys/%s", cfg_str("TH_VAR_DIR", "."), name);
	path = cfg_str(var, dflt);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "%s: cannot open the key %s (%s; scripts/stack creates it)\n", what,
			path, var);
		return -1;
	}
	n = read(fd, buf, cap);
	close(fd);
	/* a trailing newline is not part of the key */
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n < 0 || (size_t)n < min) {
		fprintf(stderr, "%s: the key %s holds fewer than %zu bytes\n", what, path, min);
		return -1;
	}
	return n;
}
