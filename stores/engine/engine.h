/*
 * The engine: the single writer (a queue of jobs and the thread that runs
 * them), the commit protocol it runs (commit.c, pipeline.c), recovery and
 * replay (replay.c) and readiness (readiness.c). This is what the layers
 * above use; stores/engine/internal.h is the inside.
 *
 * Every write of the gateway goes through the writer thread, one job at a
 * time: client transactions (engine_submit), and functions of the layers
 * above (writer_call*) that need the writer's own SQLite connection and
 * Neo4j client, which only that thread may use (writer_sql and
 * writer_neo4j assert it).
 */
#ifndef BISTORE_ENGINE_H
#define BISTORE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/result.h"
#include "stores/model/model.h"
#include "stores/neo4j/neo4j.h"
#include "stores/sqlite/sqlite.h"

struct engine;
struct apply_state; /* stores/engine/apply.h */

struct engine_config {
    /* Borrowed: the strings here must outlive the engine. */
    const char *sqlite_path;
    struct neo4j_config neo4j;
    size_t max_queue;                  /* jobs waiting at most; more: 503 */
    size_t max_rel_types;              /* relationship types at most (0: REL_TYPES_MAX) */
    struct neo4j_pool *readiness_pool; /* clients for readiness pings (from any thread) */
    const char *replica_socket;        /* Litestream's control socket; NULL: no replica */
    unsigned replica_timeout_s;        /* each wait for it (0: REPLICA_TIMEOUT_S_DEFAULT) */
};

/* Opens the write connection (the schema, the store id) and the record of
 * open Neo4j transactions. NULL on failure, with err. Quiet: logs nothing. */
struct engine *engine_open(const struct engine_config *cfg, struct bs_error *err);
/*
 * Promotion (stores/engine/fence.c): moves the watermark of the store at
 * cfg's SQLite file to a new epoch, terminating the Neo4j transactions that
 * hold its lock, and gives the file that epoch: a gateway on any other
 * copy of the store is fenced from then on. 0 with *epoch, or -1 with err.
 * Not beside a running gateway on the same file. 1 (err says why) when
 * Neo4j holds intents this copy lacks: restore it again, then promote.
 */
int engine_promote(const struct engine_config *cfg, int64_t *epoch, struct bs_error *err);
/*
 * engine_promote in its three steps, for a standby whose copy another
 * process (Litestream's follower) writes until the last moment:
 * engine_identity reads the copy's store id and epoch read-only;
 * engine_fence moves the store's watermark past that epoch (*epoch the new
 * one, *seq the last intent Neo4j holds; strict: only from the copy's
 * epoch, and only an existing watermark, else 1 with err: nothing fenced,
 * the copy is of an older epoch or another store); engine_adopt gives the copy, now
 * written by no one else, the new epoch when its log reaches seq (0), or
 * answers 1 when it is behind (restore it again and adopt again).
 */
int engine_identity(const char *sqlite_path, char *store_id, size_t cap, int64_t *epoch,
                    struct bs_error *err);
int engine_fence(const struct neo4j_config *ncfg, const char *store_id, int64_t file_epoch,
                 bool strict, int64_t *epoch, int64_t *seq, struct bs_error *err);
int engine_adopt(const struct engine_config *cfg, const char *store_id, int64_t epoch, int64_t seq,
                 struct bs_error *err);
/* Deposed: a later epoch fenced this gateway's store (readiness says so). */
bool engine_fenced(struct engine *e);
/* The epoch this gateway writes under. */
int64_t engine_epoch(const struct engine *e);
/* Starts the writer thread, which recovers in the background; readiness
 * says when it is done. */
int engine_start(struct engine *e, struct bs_error *err);
/* Stops taking client writes (they answer 503); bookkeeping jobs
 * (writer_call_sqlite) still run until engine_close. */
void engine_stop(struct engine *e);
/* The writer finishes its job and exits; Neo4j transactions still open
 * are rolled back; everything is closed and freed. */
void engine_close(struct engine *e);

/* Runs txn through the commit protocol in the writer thread and waits for
 * its outcome (out, cleared first). txn stays the caller's. rid: the
 * request id for the logs. */
void engine_submit(struct engine *e, struct bs_txn *txn, const char *rid,
                   struct bistore_outcome *out);

/* ---- jobs of the layers above, in the writer thread ---- */

/* A job: 0, or -1 with err. */
typedef int (*writer_job)(struct engine *e, void *arg, struct bs_error *err);
/* Runs job between transactions once nothing is pending (both stores hold
 * the same committed state): reconciliation re-checks and repairs. 503
 * when Neo4j is unavailable or the engine stops. */
int writer_call(struct engine *e, writer_job job, void *arg, struct bs_error *err);
/* Runs job between transactions for bookkeeping that needs SQLite only:
 * job works on writer_sql, never talks to Neo4j, and keeps any transaction
 * it opens short (DESIGN.md invariant 7). Unlike writer_call it also runs
 * while Neo4j is unavailable, while intents are pending and after
 * engine_stop (until the writer exits), so a run can always record how it
 * ended. */
int writer_call_sqlite(struct engine *e, writer_job job, void *arg, struct bs_error *err);
/* writer_call for a job that runs while an intent is refused (a
 * resolution): it needs SQLite and Neo4j's answer, not a clean state. */
int writer_call_while_stuck(struct engine *e, writer_job job, void *arg, struct bs_error *err);

/* Inside a job (or before engine_start, in the thread that opened the
 * engine): the write connection and the writer's Neo4j client. Any other
 * thread is a bug: asserted. */
struct sql_conn *writer_sql(struct engine *e);
struct neo4j_client *writer_neo4j(struct engine *e);
/* The store id that pairs this SQLite file with its watermark node. */
const char *engine_store_id(const struct engine *e);
/* The intents answered as applied whose mark may not be written yet (for
 * the audit trail's reads, sql_tx_get). */
void engine_landed(struct engine *e, struct sql_landed *out);

/*
 * Inside a writer_call job: a transaction of the gateway's own (a repair)
 * through the commit protocol. apply writes its rows on writer_sql and
 * appends its Cypher to the state (stores/engine/apply.h) instead of a
 * client's operations; provenance (may be NULL) goes into the audit.
 * out is cleared first; out->result is the caller's.
 */
typedef int (*apply_hook)(struct engine *e, void *ctx, struct apply_state *state,
                          struct bs_error *err);
void engine_commit_internal(struct engine *e, apply_hook apply, void *ctx, json_t *provenance,
                            const char *rid, struct bistore_outcome *out);

/* ---- readiness (readiness.c) ---- */

/* True once SQLite is open, Neo4j answers and recovery has finished;
 * otherwise false with the reason. Asks Neo4j at most once a second. */
bool engine_ready(struct engine *e, char *reason, size_t cap);
/* Sets readiness and its reason (printf-style); logs a change. */
void readiness_set(struct engine *e, bool ready, const char *reason_fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The intent Neo4j refuses on replay, or 0; and its resolution. */
int64_t readiness_stuck_seq(struct engine *e);
void readiness_clear_stuck(struct engine *e);

#endif
