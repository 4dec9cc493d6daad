/* metrics: a fixed-layout shared file, initialized under flock. */
#include "metrics.h"

#include "pid.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define METRICS_MAGIC 0x54484d31u /* "THM1" */
#define METRICS_VERSION 1u

struct m_route {
	char label[METRICS_LABEL];
	uint64_t by_class[5]; /* 1xx..5xx */
	uint64_t buckets[METRICS_BUCKETS];
	uint64_t sum_us;
	uint64_t count;
};

struct m_slot {
	int32_t pid;
	int32_t pad;
	int64_t started;
	uint64_t requests;
};

struct m_counter {
	char name[METRICS_COUNTER_NAME];
	uint64_t value;
};

struct m_file {
	uint32_t magic;
	uint32_t version;
	char pool[32];
	struct m_slot slots[METRICS_SLOTS];
	struct m_counter counters[METRICS_COUNTERS];
	struct m_route routes[METRICS_MAX_ROUTES];
};

const uint64_t metrics_bounds_us[METRICS_BUCKETS] = {
	500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 5000000,
};

static struct m_file *mf;
static int my_slot = -1;
static int mf_fd = -1;
static uint64_t worker_requests; /* mirror of the slot, to survive a reclaim */

static void file_reset(struct m_file *f, const char *pool)
{
	memset(f, 0, sizeof(*f));
	f->magic = METRICS_MAGIC;
	f->version = METRICS_VERSION;
	snprintf(f->pool, sizeof(f->pool), "%s", pool);
}

int metrics_open(const char *path, const char *pool, const char *const *labels, size_t n)
{
	struct stat st;
	size_t i;
	int fd;

	if (n > METRICS_MAX_ROUTES)
		return -1;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX) < 0)
		goto fail;
	if (fstat(fd, &st) < 0)
		goto fail_locked;
	if ((size_t)st.st_size != sizeof(struct m_file) && ftruncate(fd, sizeof(struct m_file)) < 0)
		goto fail_locked;
	mf = mmap(NULL, sizeof(struct m_file), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (mf == MAP_FAILED) {
		mf = NULL;
		goto fail_locked;
	}
	if (mf->magic != METRICS_MAGIC || mf->version != METRICS_VERSION)
		file_reset(mf, pool);
	for (i = 0; i < n; i++) {
		if (strncmp(mf->routes[i].label, labels[i], METRICS_LABEL - 1) != 0) {
			memset(&mf->routes[i], 0, sizeof(mf->routes[i]));
			snprintf(mf->routes[i].label, METRICS_LABEL, "%s", labels[i]);
		}
	}
	for (i = 0; i < METRICS_SLOTS; i++) {
		if (!pid_alive(mf->slots[i].pid)) {
			my_slot = (int)i;
			mf->slots[i].pid = (int32_t)getpid();
			mf->slots[i].started = (int64_t)time(NULL);
			mf->slots[i].requests = 0;
			worker_requests = 0;
			break;
		}
	}
	flock(fd, LOCK_UN);
	mf_fd = fd;
	return 0;

fail_locked:
	flock(fd, LOCK_UN);
fail:
	close(fd);
	return -1;
}

void metrics_close(void)
{
	if (!mf)
		return;
	if (my_slot >= 0 && mf->slots[my_slot].pid == (int32_t)getpid())
		__atomic_store_n(&mf->slots[my_slot].pid, 0, __ATOMIC_RELAXED);
	munmap(mf, sizeof(*mf));
	mf = NULL;
	my_slot = -1;
	if (mf_fd >= 0)
		close(mf_fd);
	mf_fd = -1;
}

static void add(uint64_t *p, uint64_t n)
{
	__atomic_fetch_add(p, n, __ATOMIC_RELAXED);
}

void metrics_observe(size_t idx, int status, uint64_t duration_us)
{
	struct m_route *r;
	int cls = status / 100;
	size_t b;

	if (!mf)
		return;
	worker_requests++;
	if (my_slot >= 0)
		__atomic_store_n(&mf->slots[my_slot].requests, worker_requests, __ATOMIC_RELAXED);
	if (idx >= METRICS_MAX_ROUTES)
		return;
	r = &mf->routes[idx];
	if (cls >= 1 && cls <= 5)
		add(&r->by_class[cls - 1], 1);
	for (b = 0; b < METRICS_BUCKETS; b++) {
		if (duration_us <= metrics_bounds_us[b]) {
			add(&r->buckets[b], 1);
			break;
		}
	}
	add(&r->sum_us, duration_us);
	add(&r->count, 1);
}

int metrics_counter(const char *name)
{
	int i, found = -1;

	if (!mf || mf_fd < 0 || flock(mf_fd, LOCK_EX) < 0)
		return -1;
	for (i = 0; i < METRICS_COUNTERS; i++) {
		if (strcmp(mf->counters[i].name, name) == 0) {
			found = i;
			break;
		}
		if (!mf->counters[i].name[0]) {
			snprintf(mf->counters[i].name, METRICS_COUNTER_NAME, "%s", name);
			mf->counters[i].value = 0;
			found = i;
			break;
		}
	}
	flock(mf_fd, LOCK_UN);
	return found;
}

void metrics_set(int counter, uint64_t value)
{
	if (mf && counter >= 0 && counter < METRICS_COUNTERS)
		__atomic_store_n(&mf->counters[counter].value, value, __ATOMIC_RELAXED);
}

void metrics_add(int counter, uint64_t n)
{
	if (mf && counter >= 0 && counter < METRICS_COUNTERS)
		add(&mf->counters[counter].value, n);
}

/* A growable text buffer in the arena. */
struct mbuf {
	struct arena *a;
	char *p;
	size_t len, cap;
	int oom;
};

static void mb_printf(struct mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void mb_printf(struct mbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t ncap = (b->cap + (size_t)n + 1) * 2;
		char *np = arena_alloc(b->a, ncap);

		if (!np) {
			b->oom = 1;
			return;
		}
		memcpy(np, b->p, b->len);
		b->p = np;
		b->cap = ncap;
	}
}

static uint64_t ld(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Route labels are ours ("GET /api/x/:id"), but escape anyway: a label with
 * a quote or backslash must not break the exposition format. */
static const char *esc(char *dst, size_t size, const char *s)
{
	size_t n = 0;

	for (; *s && n + 3 < size; s++) {
		if (*s == '"' || *s == '\\')
			dst[n++] = '\\';
		dst[n++] = *s == '\n' ? ' ' : *s;
	}
	dst[n] = '\0';
	return dst;
}

static char *render(struct m_file *f, struct arena *a, size_t *len);

char *metrics_render(struct arena *a, size_t *len)
{
	return mf ? render(mf, a, len) : NULL;
}

char *metrics_render_file(struct arena *a, const char *path, size_t *len)
{
	struct m_file *f;
	struct stat st;
	char *out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) == 0 && (size_t)st.st_size >= sizeof(*f)) {
		f = mmap(NULL, sizeof(*f), PROT_READ, MAP_SHARED, fd, 0);
		if (f != MAP_FAILED) {
			if (f->magic == METRICS_MAGIC)
				out = render(f, a, len);
			munmap(f, sizeof(*f));
		}
	}
	close(fd);
	return out;
}

/* f is the file being rendered (this process's, or another's). */
static char *render(struct m_file *f, struct arena *a, size_t *len)
{
	struct mbuf b = {.a = a, .cap = 8192};
	char pool[64], label[2 * METRICS_LABEL];
	size_t i, k;
	int workers = 0;

	b.p = arena_alloc(a, b.cap);
	if (!b.p)
		return NULL;
	esc(pool, sizeof(pool), f->pool);

	mb_printf(&b, "# HELP th_http_requests_total Requests by route and status class.\n"
		      "# TYPE th_http_requests_total counter\n");
	for (i = 0; i < METRICS_MAX_ROUTES; i++) {
		struct m_route *r = &f->routes[i];

		if (!r->label[0])
			continue;
		esc(label, sizeof(label), r->label);
		for (k = 0; k < 5; k++)
			mb_printf(&b,
				  "th_http_requests_total{pool=\"%s\",route=\"%s\",class=\"%zuxx\"}"
				  " %llu\n",
				  pool, label, k + 1, (unsigned long long)ld(&r->by_class[k]));
	}
	mb_printf(&b, "# HELP th_http_request_duration_seconds Request latency by route.\n"
		      "# TYPE th_http_request_duration_seconds histogram\n");
	for (i = 0; i < METRICS_MAX_ROUTES; i++) {
		struct m_route *r = &f->routes[i];
		uint64_t cum = 0, count;

		if (!r->label[0])
			continue;
		esc(label, sizeof(label), r->label);
		count = ld(&r->count);
		for (k = 0; k < METRICS_BUCKETS; k++) {
			cum += ld(&r->buckets[k]);
			mb_printf(&b,
				  "th_http_request_duration_seconds_bucket{pool=\"%s\",route=\"%"
				  "s\",le=\"%g\"} %llu\n",
				  pool, label, (double)metrics_bounds_us[k] / 1e6,
				  (unsigned long long)cum);
		}
		mb_printf(&b,
			  "th_http_request_duration_seconds_bucket{pool=\"%s\",route=\"%s\",le=\"+"
			  "Inf\"} %llu\n",
			  pool, label, (unsigned long long)count);
		mb_printf(&b,
			  "th_http_request_duration_seconds_sum{pool=\"%s\",route=\"%s\"} %.6f\n",
			  pool, label, (double)ld(&r->sum_us) / 1e6);
		mb_printf(&b,
			  "th_http_request_duration_seconds_count{pool=\"%s\",route=\"%s\"} %llu\n",
			  pool, label, (unsigned long long)count);
	}
	for (i = 0; i < METRICS_COUNTERS; i++) {
		struct m_counter *c = &f->counters[i];

		if (!c->name[0])
			continue;
		esc(label, sizeof(label), c->name);
		{
			size_t nl = strlen(label);
			int is_counter = nl > 6 && strcmp(label + nl - 6, "_total") == 0;

			mb_printf(&b, "# TYPE th_%s %s\nth_%s{pool=\"%s\"} %llu\n", label,
				  is_counter ? "counter" : "gauge", label, pool,
				  (unsigned long long)ld(&c->value));
		}
	}
	mb_printf(&b, "# HELP th_worker_requests_total Requests served by each live worker.\n"
		      "# TYPE th_worker_requests_total counter\n");
	for (i = 0; i < METRICS_SLOTS; i++) {
		struct m_slot *s = &f->slots[i];
		int32_t pid = __atomic_load_n(&s->pid, __ATOMIC_RELAXED);

		if (!pid_alive(pid))
			continue;
		workers++;
		mb_printf(&b, "th_worker_requests_total{pool=\"%s\",pid=\"%d\"} %llu\n", pool,
			  (int)pid, (unsigned long long)ld(&s->requests));
	}
	mb_printf(&b,
		  "# HELP th_pool_workers Live workers of the pool.\n"
		  "# TYPE th_pool_workers gauge\nth_pool_workers{pool=\"%s\"} %d\n",
		  pool, workers);
	if (b.oom)
		return NULL;
	*len = b.len;
	return b.p;
}

int metrics_workers(const char *path,
		    void (*fn)(int pid, int64_t started, uint64_t requests, void *ctx), void *ctx)
{
	struct m_file *f;
	struct stat st;
	int fd, n = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || (size_t)st.st_size < sizeof(*f)) {
		close(fd);
		return -1;
	}
	f = mmap(NULL, sizeof(*f), PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (f == MAP_FAILED)
		return -1;
	if (f->magic == METRICS_MAGIC) {
		for (size_t i = 0; i < METRICS_SLOTS; i++) {
			int32_t pid = f->slots[i].pid;

			if (!pid_alive(pid))
				continue;
			n++;
			fn(pid, f->slots[i].started, f->slots[i].requests, ctx);
		}
	}
	munmap(f, sizeof(*f));
	return n;
}
