/* mlog: follows the apps' log of mirror changes, th:mirror:log (a Redis
 * stream, lib/mirror.h), so the ACL cache forgets only the answers a change
 * made old (acl_forget_change) instead of every answer at every change.
 *
 * mwatch.c calls it once a second, after it found the mirror's marker
 * current.  The entries added since the last one read are read with one
 * XRANGE (exclusive start, at most MLOG_READ_MAX); a log that moved further
 * in a second, or that was trimmed past the last entry read (the broker was
 * away or slow), or an entry that asks for it, or Redis not answering, can
 * no longer be followed key by key: the caller then moves the ACL cache's
 * generation (every answer is asked again) and starts from the log's end
 * (mlog_reset).  An app writes its entry after its keys, so an answer read
 * before a change is forgotten at the tick that reads its entry. */
#ifndef TH_MLOG_H
#define TH_MLOG_H

/* entries read in one tick, at most; more: every answer is forgotten */
#define MLOG_READ_MAX 1000

/* Starts from the log's last entry (every answer was just forgotten): 0, or
 * -1 when Redis does not answer (call it again before following). */
int mlog_reset(void);

/* Reads the entries added since the last one read and forgets what they
 * name: their count, or -1 when the caller must forget every answer and
 * mlog_reset(). */
int mlog_follow(void);

#endif
