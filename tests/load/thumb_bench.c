/* th-thumb_bench: image processing of the media app, in process.
 *
 *   th-thumb_bench FILE SECONDS [PROCS]
 *
 * Calls image_process() (fcgi-apps/media/image.c, the code an upload runs)
 * on FILE over and over for SECONDS in each of PROCS processes (default 1),
 * each with the worker's own ImageMagick settings (image_init: one thread,
 * the same resource limits), and removes what each call wrote.  One call
 * is what one image upload costs in CPU: ping, decode, orient + strip,
 * re-encode of the original, the thumb (fits 320x320) and the medium (fits
 * 1280x1280), and the SHA-256 of the three.  One process is one core's
 * worth: media workers are single-threaded processes.
 *
 * Needs TH_VAR_DIR (the temporaries go to $TH_VAR_DIR/media/tmp, as in the
 * app).  Prints, on one line: procs, images done, seconds, images/s in all,
 * images/s per process, mean ms per image; then the variants' sizes.  Exit 1
 * when a call fails. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "config.h"
#include "log.h"
#include "media.h"

#define MAX_PROCS 64
#define MAX_IMAGES 10000000 /* per process: a bound besides the clock */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One process's loop: images done in *n, seconds in *secs; -1 on a failure. */
static int run(const char *file, const char *mime, double seconds, long long *n, double *secs,
	       struct img_out *last)
{
	char msg[160];
	double t0, t;
	enum th_err e;
	struct arena a; /* one image's, as a request's arena is */
	int rc = -1;

	if (image_init() < 0)
		return -1;
	arena_init(&a);
	*n = 0;
	t0 = now_s();
	do {
		e = image_process(&a, file, mime, last, msg, sizeof(msg));
		arena_reset(&a);
		if (e != TH_OK) {
			fprintf(stderr, "thumb_bench: image_process: %s (%s)\n", msg,
				th_strerror(e));
			goto out;
		}
		image_out_unlink(last);
		(*n)++;
		t = now_s();
	} while (t - t0 < seconds && *n < MAX_IMAGES);
	*secs = t - t0;
	rc = 0;
out:
	arena_free(&a);
	image_fini();
	return rc;
}

int main(int argc, char **argv)
{
	long long seconds, procs, total = 0;
	const char *mime, *kind;
	int fds[MAX_PROCS][2];
	pid_t pids[MAX_PROCS];
	double wall = 0;
	struct img_out out;
	int failed = 0;

	if (argc < 3 || argc > 4 || cfg_parse_int(argv[2], 1, 3600, &seconds) < 0 ||
	    (argc == 4 && cfg_parse_int(argv[3], 1, MAX_PROCS, &procs) < 0)) {
		fprintf(stderr, "usage: th-thumb_bench FILE SECONDS(1..3600) [PROCS(1..%d)]\n",
			MAX_PROCS);
		return 2;
	}
	if (argc == 3)
		procs = 1;
	log_init("thumb_bench");
	if (media_settings_load() < 0)
		return 2;
	if (mkdir(media_cfg.tmp_dir, 0755) < 0 && access(media_cfg.tmp_dir, W_OK) < 0) {
		fprintf(stderr, "thumb_bench: %s is not a writable directory\n", media_cfg.tmp_dir);
		return 2;
	}
	/* the app decides the type from the bytes, so does this */
	if (detect_init() < 0 || detect_file(argv[1], &mime, &kind) != TH_OK ||
	    strcmp(kind, "image") != 0) {
		fprintf(stderr, "thumb_bench: %s is not an image the media app accepts\n", argv[1]);
		return 2;
	}
	detect_fini();
	signal(SIGPIPE, SIG_IGN);
	for (long long i = 0; i < procs; i++) {
		if (pipe(fds[i]) < 0 || (pids[i] = fork()) < 0) {
			perror("thumb_bench: pipe/fork");
			return 1;
		}
		if (pids[i] == 0) {
			long long n = 0;
			double secs = 0;
			char line[256];
			int len;

			close(fds[i][0]);
			if (run(argv[1], mime, (double)seconds, &n, &secs, &out) < 0)
				_exit(1);
			/* the last call's variants: the dimensions a reader can check */
			len = snprintf(line, sizeof(line), "%lld %.6f %lld %d %d %lld %d %d\n", n,
				       secs, out.thumb.size, out.thumb.width, out.thumb.height,
				       out.medium.size, out.medium.width, out.medium.height);
			if (write(fds[i][1], line, (size_t)len) != len)
				_exit(1);
			_exit(0);
		}
		close(fds[i][1]);
	}
	for (long long i = 0; i < procs; i++) {
		char line[256] = "";
		ssize_t r = read(fds[i][0], line, sizeof(line) - 1);
		long long n = 0, tsize = 0, msize = 0;
		double secs = 0;
		int st = 0, tw = 0, th = 0, mw = 0, mh = 0;

		close(fds[i][0]);
		if (waitpid(pids[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 ||
		    r <= 0 ||
		    sscanf(line, "%lld %lf %lld %d %d %lld %d %d", &n, &secs, &tsize, &tw, &th,
			   &msize, &mw, &mh) != 8) {
			failed = 1;
			continue;
		}
		total += n;
		if (secs > wall)
			wall = secs;
		if (i == 0)
			fprintf(stderr,
				"thumb_bench: thumb %dx%d %lld bytes, medium %dx%d %lld bytes\n",
				tw, th, tsize, mw, mh, msize);
	}
	if (failed || wall <= 0) {
		fprintf(stderr, "thumb_bench: a process failed\n");
		return 1;
	}
	printf("procs=%lld images=%lld seconds=%.3f rate=%.3f rate_per_proc=%.3f mean_ms=%.1f\n",
	       procs, total, wall, (double)total / wall, (double)total / wall / (double)procs,
	       wall * 1000.0 * (double)procs / (double)total);
	return 0;
}
