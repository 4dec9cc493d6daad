/* video: uploaded videos lose their metadata, like images do.
 *
 * A phone's MP4 carries where it was shot (the QuickTime/ISO "location"
 * tag, ©xyz) and the device in its global and per-stream metadata; a WebM
 * its tags.  The stored original is a stream copy (no re-encoding: the
 * frames are the uploader's, bit for bit) with every metadata block and
 * chapter dropped:
 *
 *   ffmpeg -nostdin -v error -y -protocol_whitelist file -f mov|matroska
 *          -i SRC -map 0:v? -map 0:a? -map_metadata -1
 *          -map_metadata:s -1 -map_chapters -1 -c copy -f mp4|webm DST
 *
 * Video and audio streams only: a data or subtitle track is not copied (an
 * action camera's telemetry track, GoPro's GPMF or a "camm" track, carries
 * GPS fixes frame by frame, which no metadata option removes).
 *
 * ffmpeg runs as a child process (fork + execvp, argv, no shell), with
 * /dev/null for its standard streams and none of the worker's other file
 * descriptors, a CPU-time and a file-size limit, and a wall-clock deadline
 * (TH_MEDIA_VIDEO_TIMEOUT_S, default 120): past it, it is killed and the
 * upload refused.  A file ffmpeg cannot read is not a video we serve: 400. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "media.h"
#include "mono.h"

#define VIDEO_POLL_MS 10

static const char *ffmpeg_bin;
static long long timeout_ms;

int video_init(void)
{
	ffmpeg_bin = cfg_str("TH_FFMPEG", "ffmpeg");
	timeout_ms = cfg_int("TH_MEDIA_VIDEO_TIMEOUT_S", 120, 1, 3600) * 1000;
	return 0;
}

/* The containers detect.c lets through, each read with the demuxer named
 * here and written with the muxer of its own kind.  ffmpeg is never left to
 * guess the input's format from its bytes: its probe scores every demuxer it
 * has, and some of them read other files or URLs a file names (HLS, DASH,
 * concat, SDP).  A file libmagic calls WebM (an EBML header, "webm" in it)
 * whose header length runs past the probe buffer and which carries "<MPD"
 * and a DASH profile further on is probed as DASH by ffmpeg 5.1, not as
 * Matroska. */
static const struct {
	const char *mime;
	const char *demuxer;
	const char *muxer;
} formats[] = {
	{"video/mp4", "mov", "mp4"},
	{"video/webm", "matroska", "webm"},
};

static int format_of(const char *mime)
{
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (strcmp(mime, formats[i].mime) == 0)
			return (int)i;
	return -1;
}

/* In the child: standard streams on /dev/null, nothing else inherited, then
 * limits, then ffmpeg.  Never returns. */
static void child_exec(char *const argv[])
{
	struct rlimit cpu = {.rlim_cur = (rlim_t)(timeout_ms / 1000 + 1),
			     .rlim_max = (rlim_t)(timeout_ms / 1000 + 2)};
	/* a stream copy never grows a file much: twice the upload limit */
	struct rlimit fsize = {.rlim_cur = (rlim_t)media_cfg.max_bytes * 2,
			       .rlim_max = (rlim_t)media_cfg.max_bytes * 2};
	sigset_t none;
	int fd = open("/dev/null", O_RDWR);

	if (fd < 0 || dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
		_exit(126);
	closefrom(3);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL); /* the worker blocks SIGTERM */
	signal(SIGPIPE, SIG_DFL);
	if (setrlimit(RLIMIT_CPU, &cpu) < 0 || setrlimit(RLIMIT_FSIZE, &fsize) < 0)
		_exit(126);
	execvp(argv[0], argv);
	_exit(127);
}

/* Waits for pid until the deadline; kills it past it.  The exit status, or
 * -1 when it was killed or could not be waited for. */
static int wait_bounded(pid_t pid)
{
	uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;
	struct timespec nap = {.tv_sec = 0, .tv_nsec = VIDEO_POLL_MS * 1000000L};
	int st = 0;
	pid_t r;

	for (;;) {
		r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		if (r < 0 && errno != EINTR)
			return -1;
		if (mono_ms() >= deadline) {
			log_warn("video: ffmpeg (pid %d) still running after %lld ms: killed",
				 (int)pid, timeout_ms);
			kill(pid, SIGKILL);
			while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
				;
			return -1;
		}
		nanosleep(&nap, NULL);
	}
}

enum th_err video_strip(const char *src, const char *mime, char out[4096], char *msg,
			size_t msgsize)
{
	int f = format_of(mime);
	const char *fmt = f >= 0 ? formats[f].muxer : NULL;
	char *argv[32];
	int fd, rc, n = 0;
	pid_t pid;

	out[0] = '\0';
	snprintf(msg, msgsize, "cannot process the video");
	if (!fmt)
		return TH_EINTERNAL;
	snprintf(out, 4096, "%s/vid-XXXXXX", media_cfg.tmp_dir);
	fd = mkstemp(out);
	if (fd < 0) {
		log_error("video: mkstemp in %s: %s", media_cfg.tmp_dir, strerror(errno));
		out[0] = '\0';
		return TH_EUNAVAILABLE;
	}
	close(fd);
	argv[n++] = (char *)ffmpeg_bin;
	argv[n++] = "-nostdin";
	argv[n++] = "-v";
	argv[n++] = "error";
	argv[n++] = "-y";
	/* the input is the upload and nothing else: no protocol but file (no
	 * http, no data: or subfile: URL a playlist could name), and the
	 * demuxer of the type detect.c found (formats[] above) */
	argv[n++] = "-protocol_whitelist";
	argv[n++] = "file";
	argv[n++] = "-f";
	argv[n++] = (char *)formats[f].demuxer;
	argv[n++] = "-i";
	argv[n++] = (char *)src;
	argv[n++] = "-map";
	argv[n++] = "0:v?";
	argv[n++] = "-map";
	argv[n++] = "0:a?";
	argv[n++] = "-map_metadata";
	argv[n++] = "-1";
	argv[n++] = "-map_metadata:s";
	argv[n++] = "-1";
	argv[n++] = "-map_chapters";
	argv[n++] = "-1";
	argv[n++] = "-c";
	argv[n++] = "copy";
	/* no "encoder" tag of ours either */
	argv[n++] = "-fflags";
	argv[n++] = "+bitexact";
	argv[n++] = "-f";
	argv[n++] = (char *)fmt;
	argv[n++] = out;
	argv[n] = NULL;
	pid = fork();
	if (pid < 0) {
		log_error("video: fork: %s", strerror(errno));
		unlink(out);
		out[0] = '\0';
		return TH_EUNAVAILABLE;
	}
	if (pid == 0)
		child_exec(argv);
	rc = wait_bounded(pid);
	if (rc != 0) {
		log_info("video: ffmpeg failed (%d) on a %s upload", rc, fmt);
		unlink(out);
		out[0] = '\0';
		if (rc == 127 || rc == 126) {
			log_error("video: cannot run %s", ffmpeg_bin);
			return TH_EUNAVAILABLE;
		}
		snprintf(msg, msgsize,
			 "the video cannot be read: corrupt, truncated, or too long "
			 "to process");
		return TH_EVALIDATION;
	}
	msg[0] = '\0';
	return TH_OK;
}
