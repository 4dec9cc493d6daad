/* webpsize: the pixels a WebP file decodes to, from its container alone.
 *
 * ImageMagick 6.9.11's WebP coder has no ping: MagickPingImage decodes every
 * frame in full through libwebp's own allocator, outside ImageMagick's
 * memory, area and frame-count limits, and its progress callback is asked
 * once a frame and not obeyed.  A 38-byte lossless WebP of 16383 x 16383 in
 * one colour took 2.3 s and 1.1 GiB to "ping"; 1,000 such frames muxed into
 * 50 KB would take tens of minutes, twice (the upload pings before its host
 * slot and again when it processes).  libwebp's demuxer reads the canvas and
 * each frame's size from the RIFF chunks without decoding anything, so a
 * WebP over the pixel limit is refused before ImageMagick sees it. */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <webp/demux.h>

#include "media.h"

int webpsize_pixels(const char *path, unsigned long long *pixels)
{
	struct stat st;
	WebPData data;
	WebPDemuxer *dmux;
	WebPIterator it;
	void *map;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -1;

	*pixels = 0;
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || st.st_size <= 0) {
		close(fd);
		return -1;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return -1;
	data.bytes = map;
	data.size = (size_t)st.st_size;
	dmux = WebPDemux(&data);
	if (dmux) {
		unsigned long long sum = 0;
		uint32_t frames = WebPDemuxGetI(dmux, WEBP_FF_FRAME_COUNT);

		/* no more frames than ImageMagick's list limit (image.c) would
		 * take, so the walk below is bounded too */
		if (frames >= 1 && frames <= IMAGE_FRAMES_MAX && WebPDemuxGetFrame(dmux, 1, &it)) {
			do {
				sum += (unsigned long long)it.width * (unsigned long long)it.height;
			} while (WebPDemuxNextFrame(&it));
			WebPDemuxReleaseIterator(&it);
			*pixels = sum;
			rc = 0;
		} else if (frames > IMAGE_FRAMES_MAX) {
			*pixels = ~0ULL; /* over any limit */
			rc = 0;
		}
		WebPDemuxDelete(dmux);
	}
	munmap(map, (size_t)st.st_size);
	return rc;
}
