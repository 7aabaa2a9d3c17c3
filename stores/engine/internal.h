/*
 * Inside the engine (stores/engine/): struct engine, shared by its files,
 * and what they call of each other. Not for the layers above, which use
 * stores/engine/engine.h.
 */
#ifndef BISTORE_ENGINE_INTERNAL_H
#define BISTORE_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/log.h"
#include "stores/engine/apply.h"
#include "stores/engine/engine.h"
#include "stores/engine/spare.h"

#define ORPHANS_MAX 64
#define REASON_MAX 1024
#define REL_TYPES_MAX 4096

/* A transaction of this many operations or more is committed alone and
 * pipelined (pipeline.c). */
#define PIPELINE_MIN_OPS 1000

/* Most client transactions, and operations, that one group takes. */
#define GROUP_MAX_TXNS 128
#define GROUP_MAX_OPS 20000
/* And bytes of requests: a group is one Neo4j request, which 128 writes of
 * 16 MiB would otherwise make 2 GiB. A transaction over it goes alone. */
#define GROUP_MAX_BYTES ((size_t)32 << 20)

/*
 * The Neo4j transactions this gateway opened and has not seen finish, kept
 * in a file beside the SQLite database (<sqlite>.neo4j-tx) so that a
 * gateway killed mid-transaction finds them at its next start and rolls
 * them back instead of waiting out Neo4j's idle timeout (DESIGN.md s. 4).
 */
struct orphan_log {
    int fd;
    size_t n;
    size_t file_len; /* bytes in the file */
    char paths[ORPHANS_MAX][NEO4J_TX_PATH_MAX];
};

/* A client transaction (or a function of a layer above) waiting for the writer. */
struct write_job {
    struct bs_txn *txn;
    writer_job fn; /* instead of txn */
    void *fn_arg;
    bool sqlite_only; /* fn: bookkeeping on the write connection only (writer_call_sqlite) */
    bool while_stuck; /* fn runs even while an intent is refused (a resolution) */
    const char *rid;
    struct bistore_outcome *out;
    bool done;
    pthread_cond_t done_cond;
    struct write_job *next;
};

/*
 * A group's Neo4j commit in flight (committer.c): after SQLite's commit the
 * writer hands the commit to a thread of its own and goes on with the next
 * group, whose statements queue in Neo4j behind this one's watermark lock.
 * The thread answers the group's clients when Neo4j answers if the writer
 * is busy behind it (behind); otherwise the writer does, after the mark.
 * The writer takes the outcome (flight_land) before anything that needs to
 * know it.
 */
struct flight {
    /* the writer's */
    bool active;            /* a commit was handed over, not landed yet */
    int64_t first_seq, seq; /* its intents */
    /* answered by the thread (behind), or moved to unanswered by flight_land */
    struct write_job *jobs[GROUP_MAX_TXNS];
    size_t n_jobs;
    /* told whether Neo4j has it: its members, and (under lock) repeats of
     * them (an Idempotency-Key) in the group behind it */
    struct bistore_outcome *outs[2 * GROUP_MAX_TXNS];
    size_t n_outs;
    /* the thread's; sent, done and committed under the engine's lock */
    struct neo4j_client *client;
    pthread_t thread;
    bool started, stopping;
    pthread_cond_t go;
    bool sent, done, committed;
    bool behind; /* the writer went on with the next group before it was done */
    char path[NEO4J_TX_PATH_MAX];
    char at[TIMESTAMP_LEN]; /* when Neo4j answered the commit */
    const char *rid;
    /* Neo4j's failure, when not committed (as long as a neo4j_result's) */
    char message[sizeof((struct neo4j_result *)0)->message];
};

struct engine {
    /* Configuration, borrowed (engine_config). */
    const char *sqlite_path;
    struct neo4j_config neo4j_cfg;
    size_t max_queue;
    size_t max_rel_types; /* relationship types the stores may hold */
    struct neo4j_pool *readiness_pool;
    char store_id[UUID_STR_LEN];
    int64_t epoch; /* the fencing token this store writes under (meta "epoch"; 0: never promoted) */
    int64_t watermark_epoch; /* the watermark's, as last read (writer thread) */

    /* The writer thread's own (before it starts: the opener's). */
    struct sql_conn *wconn; /* through writer_sql() only, which asserts the owner */
    pthread_t wconn_owner;  /* the one thread that may use wconn and neo4j */
    struct neo4j_client *neo4j;
    struct replica *replica;    /* Litestream's control socket; NULL: no replica */
    int64_t replicated_changes; /* sql_total_changes when the writer's last wait began */
    int64_t replicated_seq;     /* highest seq the replica is known to hold; -1: unknown */
    bool replica_failed;        /* the last wait for it failed: the reason is its */
    struct orphan_log orphans;
    int64_t last_seq;               /* highest seq committed in SQLite */
    int64_t applied_seq;            /* highest seq known to be in Neo4j; -1: unknown */
    int64_t marked_seq;             /* highest seq marked applied in SQLite (a saving only) */
    int open_neo4j_txs;             /* opened by the job under way, not finished yet */
    char *rel_types[REL_TYPES_MAX]; /* relationship types whose constraint exists */
    size_t n_rel_types;
    struct spare spare; /* empty Neo4j transactions opened ahead */
    struct flight flight;
    char applied_at[TIMESTAMP_LEN]; /* when applied_seq landed, for its mark */
    /* A landed flight's jobs the committer left to the writer: answered
     * after the mark, at the end of the writer's job (settle). */
    struct write_job *unanswered[GROUP_MAX_TXNS];
    size_t n_unanswered;

    /* The queue, under lock. */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct write_job *head, *tail;
    size_t queued;
    bool stopping;    /* engine_stop: client writes refused */
    bool writer_exit; /* engine_close: the writer exits once its queue is empty */
    pthread_t writer;
    bool writer_started;

    /* Readiness, under lock. */
    bool ready;
    char reason[REASON_MAX];
    int64_t stuck_seq;        /* an intent Neo4j refuses on replay, until resolved; 0: none */
    struct sql_landed landed; /* answered as applied, maybe not marked yet */
    int64_t last_ping_ms;     /* when readiness last saw Neo4j answer */
    bool fenced;              /* the watermark moved to a later epoch: deposed */
};

/* True when no Neo4j transaction of ours is open and nothing is pending:
 * a new transaction may start (writer thread). */
bool writer_clean(const struct engine *e);

/* out answers err: its result (if any) dropped, not a replayed one. */
void outcome_fail(struct bistore_outcome *out, const struct bs_error *err);

/*
 * With a replica: waits until it holds every intent up to seq, all
 * committed to SQLite before the call, so that Neo4j never holds an intent
 * the replica lacks (a standby restored from it replays what Neo4j is
 * missing, and never finds Neo4j ahead of it). 0; or -1 with err
 * (replication_unavailable) and the gateway not ready. Without one: 0.
 */
int writer_replicated(struct engine *e, int64_t seq, struct bs_error *err);

/* A file's fencing token (meta "epoch"; 0 when never promoted) into *epoch. */
int engine_read_epoch(struct sql_conn *sql, int64_t *epoch, struct bs_error *err);

/* After the guard refused: true when the watermark moved to another epoch
 * (a promotion fenced this gateway; readiness says so), false when not or
 * when it cannot be read. Writer thread. */
bool replay_fenced(struct engine *e);

/* ---- the commit protocol (commit.c, pipeline.c) ---- */

/* One client transaction (or one of the gateway's own) of a group. */
struct commit_item {
    const struct bs_txn *txn;
    apply_hook apply; /* a transaction of the gateway's own, or NULL */
    void *apply_ctx;
    const char *rid;
    struct bistore_outcome *out;
    struct write_job *job; /* the writer's job, or NULL: then never in flight */
};
/* How commit_group left its items. */
enum commit_end {
    COMMIT_ANSWERED,  /* every item has its outcome */
    COMMIT_IN_FLIGHT, /* committed in SQLite, Neo4j's commit in flight (e->flight): its
                         jobs are answered when Neo4j answers (by the committer, or by
                         the writer once it lands) */
    COMMIT_REQUEUE,   /* the flight before it failed to land: nothing of these was
                         written; run them again after the replay */
};
/* The protocol for a group of transactions (group commit): one SQLite
 * transaction (a SAVEPOINT each), one Neo4j transaction, one fsync; each
 * item gets its own outcome. Writer thread, nothing pending but the flight.
 * With may_fly (every item has its job), Neo4j's commit may be left in
 * flight. */
enum commit_end commit_group(struct engine *e, struct commit_item *items, size_t n, bool may_fly);

/* ---- the commit in flight (committer.c) ---- */

struct neo4j_tx;

/* Starts the committer thread: 0, or -1 (then every commit is the writer's). */
int flight_start(struct engine *e);
/* Stops it (nothing may be in flight). */
void flight_stop(struct engine *e);
/* Hands tx's commit to the thread (flight.started), intents first..seq,
 * once flight.jobs and .outs say whom it answers. rid: the first member's
 * request id (valid until its jobs are answered). */
void flight_send(struct engine *e, struct neo4j_tx *tx, int64_t first, int64_t seq,
                 const char *rid);
/* Waits for the flight to land and takes its outcome (applied_seq, the
 * orphan record). proven: the next group's guard passed, so Neo4j has it
 * whatever the answer said. True when Neo4j has it, or nothing was in
 * flight. */
bool flight_land(struct engine *e, bool proven);
/* Under lock: the flight's answer is in. */
bool flight_done_locked(const struct engine *e);
/* The writer goes on with the next group behind the flight: true, and the
 * committer answers the flight's clients; false when its answer is in
 * already (land it first, then). */
bool flight_go_behind(struct engine *e);
/* An Idempotency-Key repeat of a member of the flight (out, whose first was
 * pending when read): its answer says the flight's outcome. */
void flight_follow(struct engine *e, struct bistore_outcome *out);
/* Under lock: a job has its outcome; its client goes on. */
void job_finish_locked(struct write_job *job);

/* ---- recovery and replay (replay.c) ---- */

/* Start-up, and after Neo4j came back: schema, the watermark, pending
 * intents. 0 when nothing is pending any more. */
int replay_recover(struct engine *e, struct bs_error *err);
/* Rolls back recorded open transactions, reads the watermark and replays
 * what Neo4j lacks, in order. 0 when nothing is pending any more. */
int replay_pending(struct engine *e, struct bs_error *err);
/* The mark-applied step: intents up to seq `upto` are in Neo4j, since
 * `at` (NULL: now). */
int mark_applied(struct engine *e, int64_t upto, const char *at, struct bs_error *err);
/* mark_applied where a failure only costs work (the watermark stays the
 * truth): logged; true when marked. */
bool mark_applied_or_warn(struct engine *e, int64_t upto, const char *at);

/* ---- readiness (readiness.c) ---- */

/* Intent seq is refused by Neo4j (reason says so; logged by the caller):
 * not ready, and no replay is tried until readiness_clear_stuck. */
void readiness_set_stuck(struct engine *e, int64_t seq, const char *reason);
/* Neo4j answered just now. */
void readiness_note_ping(struct engine *e);
/* Under lock, cheap: whether the writer last said ready. */
bool readiness_is_ready(struct engine *e);

/* ---- the writer's Neo4j transactions (neo4j_tx.c) ---- */

/*
 * The Neo4j transaction a group writes in: opened empty (the spare, or a
 * new one) and recorded in the orphan log before anything runs in it
 * (DESIGN.md section 4); then committed, or abandoned (DELETE). One whose
 * commit or DELETE got no answer stays recorded, and recovery rolls it
 * back before the next transaction. A job ends with none open
 * (open_neo4j_txs, asserted by the writer).
 */
struct neo4j_tx {
    char path[NEO4J_TX_PATH_MAX]; /* "" when none is open */
    bool was_spare;
};
/* Opens tx (with allow_spare, the spare when one is ready). NEO4J_OK, or
 * the failure in r. */
enum neo4j_status neo4j_tx_open(struct engine *e, struct neo4j_tx *tx, bool allow_spare,
                                struct neo4j_result *r);
/* Runs statements in tx; a spare that expired is replaced by a fresh
 * transaction once. */
enum neo4j_status neo4j_tx_run(struct engine *e, struct neo4j_tx *tx, json_t *statements,
                               struct neo4j_result *r);
/* Commits tx: true when Neo4j has it. */
bool neo4j_tx_commit(struct engine *e, struct neo4j_tx *tx, struct neo4j_result *r);
/* DELETEs tx, when one is open (best effort: a failure leaves it recorded). */
void neo4j_tx_abandon(struct engine *e, struct neo4j_tx *tx);
/* Neo4j's failure as err: neo4j_unavailable for no answer or a transient
 * error, neo4j_error otherwise; what names the request. Returns the code. */
enum bs_code neo4j_failure(struct bs_error *err, const struct neo4j_result *r, const char *what);
/* A Neo4j rejection of data statements as the error of a member: a taken
 * id (the constraint) as entity_exists / relationship_exists, a moved
 * watermark as neo4j_unavailable, else neo4j_failure. */
void statement_failure(const struct neo4j_result *r, long op_index, struct bs_error *err);
/* Neo4j refused a client's own Cypher (operation op_index, a "cypher"
 * operation): a client error is 400 neo4j_error naming its statement;
 * no answer or a transient error as neo4j_failure. */
void client_statement_failure(const struct neo4j_result *r, long op_index, struct bs_error *err);
/* The guard refused the transaction: the watermark is not where we expect. */
bool guard_refused(const struct neo4j_result *r);
/* Creates the uniqueness constraint of each relationship type of state new
 * to the gateway (autocommit schema statements) and remembers them. */
int create_rel_constraints(struct engine *e, struct apply_state *state, struct bs_error *err);
/* True (with err set) when a statement's count v is not the want rows SQLite touched. */
bool count_differs(json_t *v, size_t want, struct bs_error *err);

/* ---- orphans.c ---- */

#define ORPHANS_BUSY (-2) /* another process has the store open (flock) */
/* Opens (and locks) the record beside the SQLite file: 0, ORPHANS_BUSY, or
 * -1 (logged). */
int orphans_open(struct orphan_log *log, const char *sqlite_path);
void orphans_close(struct orphan_log *log);
int orphans_add(struct orphan_log *log, const char *tx_path);
void orphans_remove(struct orphan_log *log, const char *tx_path);
/* DELETEs every recorded transaction; 0 when none is left, -1 otherwise. */
int orphans_rollback_all(struct orphan_log *log, struct neo4j_client *neo4j);

#endif
