/*
 * The inside of struct bistore, shared by the files of stores/ that make
 * it up (writer.c, commit.c, apply.c, orphans.c, reads.c). Not for
 * handlers.
 */
#ifndef BISTORE_INTERNAL_H
#define BISTORE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "stores/bistore.h"
#include "stores/engine/spare.h"
#include "stores/neo4j/cypher.h"
#include "stores/neo4j/neo4j.h"
#include "stores/sqlite/sqlite.h"

#define ORPHANS_MAX 64
#define REASON_MAX 1024
#define REL_TYPES_MAX 4096
#define READ_CLIENTS_MAX 8

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

/* A client transaction (or a function) waiting for the writer. */
struct write_job {
    struct bs_txn *txn;
    int (*fn)(struct bistore *bs, void *arg, struct bs_error *err); /* instead of txn */
    void *fn_arg;
    bool sqlite_only; /* fn: bookkeeping on wconn only (writer_call_sqlite) */
    bool while_stuck; /* fn runs even while an intent is refused (a resolution) */
    const char *rid;
    struct bistore_outcome *out;
    bool done;
    pthread_cond_t done_cond;
    struct write_job *next;
};

struct bistore {
    char *sqlite_path;
    char *neo4j_url, *neo4j_database, *neo4j_user, *neo4j_password;
    struct neo4j_config neo4j_cfg;
    size_t max_queue;
    struct sql_pool readers;
    char store_id[UUID_STR_LEN];

    /* Writer thread only. */
    struct sql_conn *wconn;
    struct neo4j_client *neo4j;
    struct orphan_log orphans;
    int64_t last_seq;               /* highest seq committed in SQLite */
    int64_t applied_seq;            /* highest seq known to be in Neo4j */
    bool recovered;                 /* recovery ran since the writer (re)started talking to Neo4j */
    char *rel_types[REL_TYPES_MAX]; /* relationship types whose constraint exists */
    struct spare spare;             /* empty Neo4j transactions opened ahead */
    size_t n_rel_types;

    /* Shared, under lock. */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct write_job *head, *tail;
    size_t queued;
    bool stopping;
    bool writer_exit; /* set by bistore_close once nothing may queue a job any more */
    bool ready;
    char reason[REASON_MAX];
    int64_t stuck_seq;    /* an intent Neo4j refuses on replay, until resolved; 0: none */
    int64_t last_ping_ms; /* when readiness last saw Neo4j answer */
    pthread_t writer;
    bool writer_started;
    struct recon_run *recon; /* the reconciliation running or finished, not yet joined */
    bool recon_done;
    bool recon_starting;           /* a start has claimed the one run and is setting it up */
    pthread_t validator;           /* periodic validation, when configured */
    pthread_cond_t validator_wake; /* its own: `wake` is the writer's alone */
    bool validator_started;
    unsigned validate_interval_s;
    struct neo4j_client *read_clients[READ_CLIENTS_MAX]; /* idle, for verify */
    size_t n_read_clients;
};

/* writer.c */
/* Runs fn in the writer thread, between transactions, once nothing is
 * pending (both stores hold the same committed state): reconciliation
 * re-checks and repairs. 503 when Neo4j is unavailable. */
int writer_call(struct bistore *bs, int (*fn)(struct bistore *bs, void *arg, struct bs_error *err),
                void *arg, struct bs_error *err);
/* Runs fn in the writer thread between transactions, for bookkeeping that
 * needs SQLite only (reconciliation runs and findings): fn works on wconn,
 * never talks to Neo4j, and keeps any transaction it opens short (DESIGN.md
 * invariant 7). Unlike writer_call it also runs while Neo4j is unavailable,
 * while intents are pending and while the gateway is stopping (until the
 * writer exits), so a run can always record how it ended. */
int writer_call_sqlite(struct bistore *bs,
                       int (*fn)(struct bistore *bs, void *arg, struct bs_error *err), void *arg,
                       struct bs_error *err);
void writer_set_ready(struct bistore *bs, bool ready, const char *reason_fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Intent seq is refused by Neo4j (reason says so; logged by the caller):
 * not ready, and no replay is tried until writer_clear_stuck. */
void writer_set_stuck(struct bistore *bs, int64_t seq, const char *reason);
void writer_clear_stuck(struct bistore *bs);
/* The intent Neo4j refuses, or 0. */
int64_t writer_stuck_seq(struct bistore *bs);
/* writer_call for a job that runs while an intent is refused (a resolution):
 * needs SQLite and Neo4j's answer, not a clean state. */
int writer_call_while_stuck(struct bistore *bs,
                            int (*fn)(struct bistore *bs, void *arg, struct bs_error *err),
                            void *arg, struct bs_error *err);

/* commit.c: the commit protocol. */
int commit_recover(struct bistore *bs, struct bs_error *err);
int commit_replay_pending(struct bistore *bs, struct bs_error *err);
void commit_txn(struct bistore *bs, struct bs_txn *txn, const char *rid,
                struct bistore_outcome *out);
/* A group of client transactions through the protocol together (group
 * commit): one SQLite transaction (a SAVEPOINT each), one Neo4j transaction,
 * one fsync. Each item gets its own outcome. */
struct commit_item {
    struct bs_txn *txn;
    const char *rid;
    struct bistore_outcome *out;
};
void commit_group(struct bistore *bs, struct commit_item *items, size_t n);

/* apply.c: one transaction's rows in SQLite and its Cypher. */
struct apply_state {
    struct cypher_batch cypher;
    json_t *results;       /* [{"op","id","version"?}] */
    json_t *records;       /* full records, null for deletes; empty when skipped */
    bool skip_records;     /* set by apply_txn: no one will read records */
    size_t *stmt_first_op; /* first operation of each Cypher statement */
    size_t n_stmt_first_op;
    const char *new_rel_types[64]; /* types first seen in this transaction */
    size_t n_new_rel_types;
    char now[TIMESTAMP_LEN];
    /* Called after each operation, or NULL: a pipelined commit ships the
     * statements built so far (commit.c). -1 stops with err set. */
    int (*after_op)(void *arg, struct apply_state *st, struct bs_error *err);
    void *after_op_arg;
    struct buf properties; /* canonical JSON of the properties of one create */
    struct buf record;     /* the canonical record being hashed */
};
int apply_init(struct apply_state *st);
void apply_free(struct apply_state *st);
/* Applies every operation to SQLite (inside the caller's transaction) and
 * builds the Cypher. On a client error err names the operation. */
int apply_txn(struct bistore *bs, struct bs_txn *txn, struct apply_state *st, struct bs_error *err);
/* Notes type as new to Neo4j in st unless its constraint is known to exist. */
void apply_note_rel_type(struct bistore *bs, struct apply_state *st, const char *type);
/* A transaction of this many operations or more is committed alone and
 * pipelined (commit.c). */
#define PIPELINE_MIN_OPS 1000

/* reads.c: Neo4j clients for reader threads (new when the pool is empty). */
struct neo4j_client *read_client_get(struct bistore *bs);
void read_client_put(struct bistore *bs, struct neo4j_client *c);

/* recon_run.c */
struct recon_run;
/* Joins the run thread if it finished (or, with wait, waits for it). */
void recon_reap(struct bistore *bs, bool wait);
/* Starts the periodic validation thread when configured. */
int recon_start_validator(struct bistore *bs);
/* Marks runs left "running" by a stopped gateway as failed. */
int recon_mark_interrupted(struct sql_conn *c, struct bs_error *err);

/* orphans.c */
int orphans_open(struct orphan_log *log, const char *sqlite_path);
void orphans_close(struct orphan_log *log);
int orphans_add(struct orphan_log *log, const char *tx_path);
void orphans_remove(struct orphan_log *log, const char *tx_path);
/* DELETEs every recorded transaction; 0 when none is left, -1 otherwise. */
int orphans_rollback_all(struct orphan_log *log, struct neo4j_client *neo4j);

#endif
