/* keyfile: a secret read at start-up from a file beside the stack's other
 * keys (scripts/stack creates them under $TH_VAR_DIR/keys).  One reader, so
 * every key file means the same thing: its path from a setting or the
 * default name, its bytes as written less a trailing newline (the files are
 * text: hex or base64), and a floor on its length. */
#ifndef TH_KEYFILE_H
#define TH_KEYFILE_H

#include <stddef.h>
#include <sys/types.h>

/* Reads the file named by the setting var (default $TH_VAR_DIR/keys/name)
 * into buf (cap bytes): its length, or -1 with the reason on stderr, named by
 * what ("media URLs: ..."), when it cannot be opened or holds fewer than min
 * bytes.  A file longer than cap is cut at cap. */
ssize_t keyfile_read(const char *what, const char *var, const char *name, unsigned char *buf,
		     size_t cap, size_t min);

#endif
