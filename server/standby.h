/*
 * A standby gateway (`bistore serve --standby-of URL --replica-dir DIR`;
 * README "Replication"): Litestream's follower keeps a copy of the newest
 * replica under DIR in --sqlite while the standby watches the primary's
 * /readyz. When the primary has not answered (or answers as fenced) for
 * the lease timeout (or on
 * demand), the standby takes over: it fences the store's watermark at a new
 * epoch (the old primary can apply nothing more to Neo4j, so it can
 * acknowledge nothing more), lets the follower catch up with the replica,
 * stops it, checks that the copy holds every intent Neo4j has (else
 * restores the replica again) and gives the copy the new epoch. Then the
 * gateway serves it as the primary. Main thread only, but for
 * standby_note.
 */
#ifndef BISTORE_STANDBY_H
#define BISTORE_STANDBY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stores/bistore.h"

struct standby_config {
    const char *litestream;  /* the binary */
    const char *replica_dir; /* the folders epoch-<n>, one per primary's epoch */
    const char *primary_url; /* its /readyz is the lease */
    unsigned lease_timeout_s;
    const struct bistore_config *store; /* the copy (sqlite_path) and Neo4j */
};

struct standby;

/* Starts following (when a replica is there). NULL with msg when the
 * copy's path holds a file that is not a standby's copy. */
struct standby *standby_start(const struct standby_config *cfg, char *msg, size_t cap);
/* One step: follow the newest replica, ask the primary, take over when its
 * lease ran out or now is true. True once promoted: *epoch is the epoch
 * the copy now has, and the copy is the primary's file. */
bool standby_step(struct standby *s, bool now, int64_t *epoch);
/* Once the promoted gateway serves: the copy's standby files go (until
 * then a restart resumes the takeover from the copy). */
void standby_served(struct standby *s);
/* sqlite_path is a standby's copy (its .standby file is there). */
bool standby_copy_exists(const char *sqlite_path);
/* What the standby does now, for /readyz (any thread). */
void standby_note(void *standby, char *out, size_t cap);
void standby_free(struct standby *s);

/* The replica folder of epoch under dir into out. */
int standby_replica_path(const char *dir, int64_t epoch, char *out, size_t cap);

#endif
