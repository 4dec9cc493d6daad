/* pid: is a process alive (pid.h) */
#include "pid.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

int pid_alive(pid_t pid)
{
	char path[64], stat[256];
	const char *rp;
	FILE *f;
	size_t n;

	if (pid <= 0)
		return 0;
	if (kill(pid, 0) < 0)
		return errno != ESRCH;
	/* kill() succeeds on a zombie: its state tells */
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	f = fopen(path, "r");
	if (!f)
		return errno != ENOENT; /* reaped meanwhile, or no /proc: alive */
	n = fread(stat, 1, sizeof(stat) - 1, f);
	fclose(f);
	stat[n] = '\0';
	/* "pid (comm) S ...": the state follows the last ')' (comm may hold one) */
	rp = strrchr(stat, ')');
	return !(rp && rp[1] == ' ' && rp[2] == 'Z');
}
