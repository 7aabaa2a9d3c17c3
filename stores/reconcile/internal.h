/*
 * Inside the reconciliation (stores/reconcile/): the scan (scan.c), the
 * classification (classify.c) and point re-read (reread.c) shared by the
 * scan, its re-check and repair, a gateway's runs (reconciler.c, run.c).
 */
#ifndef BISTORE_RECON_INTERNAL_H
#define BISTORE_RECON_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "common/ids.h"
#include "stores/neo4j/neo4j.h"
#include "stores/reconcile/reconcile.h"
#include "stores/sqlite/sqlite.h"

#define RECON_RECHECK_BATCH 256

/*
 * A group: what both stores hold for one id,
 *   {"object": "entity"|"relationship", "id", "type" (relationships),
 *    "sqlite": row | null, "neo4j": [rows]}
 * rows: SQLite entity {"id","type","version","hash","properties"?},
 *       Neo4j entity  {"id","_v","_h","element_id","labels"?,"properties"?},
 *       SQLite relationship {"id","type","source","target","version","hash",
 *                            "properties"?},
 *       Neo4j relationship  {"id","type","source","target","_v","_h",
 *                            "element_id","properties"?}.
 * A finding: {"kind","object","id","sqlite","neo4j","action"}.
 */

struct recon_hooks {
    /* Re-reads a batch of candidate findings (at most RECON_RECHECK_BATCH),
     * records those still true (a gateway stores them, `bistore check`
     * prints them) and returns them (new array) for the summary. */
    int (*confirm)(void *arg, json_t *candidates, json_t **confirmed, struct bs_error *err);
    /* Progress: rows scanned of total (an estimate from counts). Non-zero
     * stops the scan (the gateway is shutting down). */
    int (*progress)(void *arg, int64_t scanned, int64_t total);
    void *arg;
    /* The summary changed (a batch of findings counted); NULL: no one
     * reads it before the end. */
    void (*counted)(void *arg);
};

/* The Neo4j settings of a scan: the gateway's, with a timeout of at least
 * RECON_NEO4J_TIMEOUT_MS (a page of a large store can take seconds). */
#define RECON_NEO4J_TIMEOUT_MS 120000
struct neo4j_config recon_neo4j_config(const struct neo4j_config *base);

/* A scan under way (scan.c, ranges.c). */
struct recon_scan {
    struct sql_conn *sql;
    struct neo4j_client *neo4j;
    struct neo4j_client *neo4j_side; /* a second connection for range checksums, or NULL */
    const struct recon_options *opt;
    const struct recon_hooks *hooks;
    struct recon_summary *sum;
    bool deep;
    int page;
    const char *rel_type; /* the type being scanned, or NULL for entities */
    json_t *batch;        /* candidates waiting for their re-check */
    int64_t scanned, total;
    int64_t neo4j_entities; /* nodes labelled Entity, from the count store */
};

/* Merge-joins both stores' rows of the current kind with ids in [lo, hi)
 * (hi NULL: no end), row by row, counting them into *n_sqlite and *n_neo4j;
 * every disagreement becomes a candidate finding. */
int recon_merge(struct recon_scan *sc, const char *lo, const char *hi, int64_t *n_sqlite,
                int64_t *n_neo4j, struct bs_error *err);
/* The fast scan of the current kind: range checksums, and recon_merge on
 * the smallest ranges that differ (ranges.c). */
int recon_ranges(struct recon_scan *sc, int64_t *n_sqlite, int64_t *n_neo4j, struct bs_error *err);
/* Reports sc->scanned of sc->total; -1 when the gateway stops the scan. */
int recon_progress(struct recon_scan *sc, struct bs_error *err);

/* The whole scan; fills sum (all but repaired). neo4j_side, when not NULL,
 * is a second connection: the fast scan sends range checksums on both side
 * by side. */
int recon_scan(struct sql_conn *sql, struct neo4j_client *neo4j, struct neo4j_client *neo4j_side,
               const struct recon_options *opt, const struct recon_hooks *hooks,
               struct recon_summary *sum, struct bs_error *err);

/* Reads the groups of the findings' ids again, point-wise (deep: with
 * properties), from both stores: a new array of groups in the same order. */
int recon_reread(struct sql_conn *sql, struct neo4j_client *neo4j, bool deep, json_t *findings,
                 json_t **groups, struct bs_error *err);

/* The finding a group amounts to, or NULL when the stores agree on it. */
json_t *recon_classify(const json_t *group, bool deep);

/* Re-reads and re-classifies: the findings still true (new array). */
int recon_confirm(struct sql_conn *sql, struct neo4j_client *neo4j, bool deep, json_t *findings,
                  json_t **confirmed, struct bs_error *err);

/* ---- a gateway's runs ---- */

struct recon_run;

struct reconciler {
    struct engine *engine;
    struct sql_pool *readers;
    const char *sqlite_path;
    struct neo4j_config neo4j; /* with the scan's timeout (recon_neo4j_config) */
    unsigned validate_interval_s;
    pthread_mutex_t lock;
    pthread_cond_t validator_wake;
    pthread_t validator;
    bool validator_started;
    /* under lock */
    bool stopping;
    struct recon_run *run; /* running or finished, not joined yet */
    bool run_done;
    bool starting; /* a start has claimed the one run and is setting it up */
};

/* One run, in a thread of its own (run.c). */
struct recon_run {
    struct reconciler *owner;
    char id[UUID_STR_LEN];
    int64_t n; /* its row number */
    struct recon_options opt;
    struct sql_conn *reader; /* the scan's (read-only) */
    struct neo4j_client *neo4j;
    struct neo4j_client *neo4j_side; /* the fast scan's second connection */
    struct recon_summary sum;        /* the run's thread's, as it counts */
    /* sum as of the last page (or repair batch), for GET while it runs:
     * under owner->lock (run_publish) */
    struct recon_summary live_sum;
    int64_t next_finding; /* number of the last stored finding (writer thread) */
    _Atomic int64_t scanned, total;
    pthread_t thread;
};

/* A new run of opt: its connections open, its row stored (through the
 * writer). NULL with err on failure. */
struct recon_run *run_new(struct reconciler *r, const struct recon_options *opt,
                          struct bs_error *err);
/* The run's thread: scan, repair, record the end. */
void *run_main(void *arg);
/* Records the run's state and summary through the writer. */
int run_save(struct recon_run *run, const char *state, const char *error, struct bs_error *err);
void run_free(struct recon_run *run);
/* Whether the reconciler stops (the run then stops at its next page). */
bool reconciler_stopping(struct reconciler *r);
/* The run is over, for the next start (before its end is stored). */
void reconciler_run_done(struct reconciler *r);

#endif
