/*
 * Litestream as the gateway runs it (--replica-dir; README "Replication"):
 * `litestream replicate` of a primary's SQLite file into a file replica,
 * with its control socket in a private folder (the writer waits on it,
 * stores/replica), and for a standby `litestream restore -f`, which keeps
 * a copy following a replica. Each runs as a child process that dies with
 * the gateway (a gateway killed takes its Litestream with it, as a machine
 * that dies does), logging into <sqlite>.litestream.log. One-shot commands
 * (restore, ltx) run to their end here.
 */
#ifndef BISTORE_LITESTREAM_H
#define BISTORE_LITESTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct litestream;

/* A Litestream for the SQLite file at db_path (not started): its socket
 * path is known from here on. NULL with msg. */
struct litestream *litestream_new(const char *binary, const char *db_path, char *msg, size_t cap);
/* The control socket `replicate` listens on. */
const char *litestream_socket(const struct litestream *ls);
/* Starts `litestream replicate` of the file into the folder replica and
 * waits (20 s at most) until its socket answers. 0, or -1 with msg. */
int litestream_replicate(struct litestream *ls, const char *replica, char *msg, size_t cap);
/* Starts `litestream restore -f` of the folder replica into the file (a
 * new one, or a copy it followed before, which it resumes). 0 or -1. */
int litestream_follow(struct litestream *ls, const char *replica, char *msg, size_t cap);
/* The child runs; when it exited, it is started again with the same
 * arguments (true when it was, *restarted set). */
bool litestream_keep(struct litestream *ls, bool *restarted, char *msg, size_t cap);
/* The child stopped (SIGTERM; SIGKILL after 10 s); ls can be started
 * again. False when it had to be killed (a follower may have stopped in
 * the middle of writing its copy). */
bool litestream_halt(struct litestream *ls);
/* litestream_halt, and ls freed with its socket folder. */
void litestream_free(struct litestream *ls);

/* `litestream restore` of the folder replica into out (must not exist):
 * 0, or -1 with msg (what it printed). */
int litestream_restore(const char *binary, const char *replica, const char *out, char *msg,
                       size_t cap);
/* The newest transaction id the folder replica holds (`litestream ltx`;
 * 0 when none): 0, or -1 with msg. */
int litestream_replica_txid(const char *binary, const char *replica, uint64_t *txid, char *msg,
                            size_t cap);

#endif
