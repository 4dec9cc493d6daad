/* pid: whether a process some shared state names (a slot holder, a worker's
 * metrics slot, a media job's hold) still runs, so that state of a process
 * that died without giving it back can be taken back. */
#ifndef TH_PID_H
#define TH_PID_H

#include <sys/types.h>

/* 1 when a process pid runs (another user's counts: EPERM), 0 when none
 * has the pid or it is a zombie: dead, its parent has not reaped it yet, so
 * it holds nothing any more.  pid <= 0 is never alive (kill() would name a
 * process group). */
int pid_alive(pid_t pid);

#endif
