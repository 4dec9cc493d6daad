/* slots: a robust process-shared mutex and a futex word in a mapped file,
 * initialized under flock by the first opener.
 *
 * Waiters sleep on a futex (the generation word) rather than a
 * process-shared condition variable: a process that dies inside
 * pthread_cond_wait leaves glibc's condvar state behind, which can hold up
 * later signallers; a dead futex waiter simply leaves the kernel's queue. */
#include "slots.h"

#include "mono.h"
#include "pid.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SLOTS_MAGIC 0x54485331u /* "THS1" */
#define SLOTS_VERSION 1u

struct slots_file {
	uint32_t magic;
	uint32_t version;
	pthread_mutex_t mu;
	uint32_t gen;              /* bumped by every release; waiters sleep on it */
	int32_t holder[SLOTS_MAX]; /* pid of the holder, 0: free */
};

struct slots {
	struct slots_file *f;
	int limit;
};

static int file_init(struct slots_file *f)
{
	pthread_mutexattr_t ma;
	int rc;

	memset(f, 0, sizeof(*f));
	if (pthread_mutexattr_init(&ma) != 0)
		return -1;
	rc = pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED) ||
	     pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST) ||
	     pthread_mutex_init(&f->mu, &ma);
	pthread_mutexattr_destroy(&ma);
	if (rc)
		return -1;
	f->version = SLOTS_VERSION;
	f->magic = SLOTS_MAGIC; /* last: the file is usable from here on */
	return 0;
}

struct slots *slots_open(const char *path, int limit)
{
	struct slots *s;
	struct stat st;
	void *m = MAP_FAILED;
	int fd, e;

	if (limit < 1 || limit > SLOTS_MAX) {
		errno = EINVAL;
		return NULL;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return NULL;
	/* the first opener sizes and initializes the file; the others wait for
	 * it here and then find the magic in place */
	if (flock(fd, LOCK_EX) < 0)
		goto fail;
	if (fstat(fd, &st) < 0)
		goto fail;
	if ((size_t)st.st_size != sizeof(struct slots_file) &&
	    ftruncate(fd, sizeof(struct slots_file)) < 0)
		goto fail;
	m = mmap(NULL, sizeof(struct slots_file), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		goto fail;
	if ((((struct slots_file *)m)->magic != SLOTS_MAGIC ||
	     ((struct slots_file *)m)->version != SLOTS_VERSION) &&
	    file_init(m) < 0) {
		errno = EINVAL;
		goto fail;
	}
	s = malloc(sizeof(*s));
	if (!s)
		goto fail;
	s->f = m;
	s->limit = limit;
	flock(fd, LOCK_UN);
	close(fd); /* the mapping stays */
	return s;

fail:
	e = errno;
	if (m != MAP_FAILED)
		munmap(m, sizeof(struct slots_file));
	close(fd); /* also drops the flock */
	errno = e;
	return NULL;
}

void slots_close(struct slots *s)
{
	if (!s)
		return;
	munmap(s->f, sizeof(struct slots_file));
	free(s);
}

/* 0 with the mutex held, or -1 with errno. */
static int lock(struct slots_file *f)
{
	int rc = pthread_mutex_lock(&f->mu);

	if (rc == EOWNERDEAD) /* a process died holding it; the holder table is
				 always consistent, so just go on */
		rc = pthread_mutex_consistent(&f->mu);
	if (rc != 0) {
		errno = rc;
		return -1;
	}
	return 0;
}

/* Live holders, with the mutex held.  Dead ones are dropped only when
 * `reclaim` (each check is a syscall; a waiter does it, the fast path not). */
static int count(struct slots_file *f, int reclaim)
{
	int i, n = 0;

	for (i = 0; i < SLOTS_MAX; i++) {
		if (!f->holder[i])
			continue;
		if (reclaim && !pid_alive(f->holder[i])) {
			f->holder[i] = 0;
			continue;
		}
		n++;
	}
	return n;
}

/* Sleeps until *word is no longer val, a wake-up, or ms milliseconds.
 * Shared (not FUTEX_PRIVATE): the word is in a mapping of several processes. */
static void futex_wait_ms(uint32_t *word, uint32_t val, uint64_t ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000u),
			      .tv_nsec = (long)(ms % 1000u) * 1000000L};

	/* EAGAIN (the word moved), EINTR, ETIMEDOUT: all mean "look again" */
	(void)syscall(SYS_futex, word, FUTEX_WAIT, val, &ts, NULL, 0);
}

int slots_acquire(struct slots *s, long timeout_ms, int *waited)
{
	struct slots_file *f = s->f;
	uint64_t deadline = mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0), now;
	uint32_t gen;
	int i;

	if (waited)
		*waited = 0;
	if (lock(f) < 0)
		return -1;
	/* dead holders are looked for only when the table looks full */
	while (count(f, 0) >= s->limit && count(f, 1) >= s->limit) {
		now = mono_ms();
		if (now >= deadline) {
			pthread_mutex_unlock(&f->mu);
			errno = ETIMEDOUT;
			return -1;
		}
		if (waited)
			*waited = 1;
		/* read under the mutex: a release after the unlock changes it,
		 * and then the wait returns at once (no lost wake-up) */
		gen = __atomic_load_n(&f->gen, __ATOMIC_ACQUIRE);
		pthread_mutex_unlock(&f->mu);
		/* at most SLOTS_RECHECK_MS: a holder that died never wakes us */
		futex_wait_ms(&f->gen, gen,
			      deadline - now < SLOTS_RECHECK_MS ? deadline - now
								: SLOTS_RECHECK_MS);
		if (lock(f) < 0)
			return -1;
	}
	/* live holders < limit <= SLOTS_MAX: a free entry exists */
	for (i = 0; i < SLOTS_MAX; i++) {
		if (!f->holder[i]) {
			f->holder[i] = (int32_t)getpid();
			pthread_mutex_unlock(&f->mu);
			return i;
		}
	}
	pthread_mutex_unlock(&f->mu);
	errno = EAGAIN; /* unreachable unless the file was corrupted */
	return -1;
}

void slots_release(struct slots *s, int slot)
{
	struct slots_file *f = s->f;

	if (slot < 0 || slot >= SLOTS_MAX)
		return;
	if (lock(f) < 0) {
		/* only a corrupted file gets here: the slot stays taken until
		 * this process exits, and waiters then reclaim it */
		return;
	}
	if (f->holder[slot] == (int32_t)getpid())
		f->holder[slot] = 0;
	__atomic_add_fetch(&f->gen, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&f->mu);
	(void)syscall(SYS_futex, &f->gen, FUTEX_WAKE, 1, NULL, NULL, 0);
}

int slots_busy(struct slots *s)
{
	int n;

	if (lock(s->f) < 0)
		return -1;
	n = count(s->f, 1);
	pthread_mutex_unlock(&s->f->mu);
	return n;
}
