/*
 * bistore: the two stores as one. The public face of stores/ for the
 * handlers and main: open/close, submitting write transactions to the
 * single writer, readiness, and reads.
 *
 * Writes go through one writer thread (stores/writer.c) that runs the
 * commit protocol of DESIGN.md section 4 (stores/commit.c). Reads go
 * straight to SQLite through a pool of read-only connections.
 */
#ifndef BISTORE_BISTORE_H
#define BISTORE_BISTORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/result.h"
#include "stores/model/model.h"
#include "stores/neo4j/neo4j.h"

struct bistore_config {
    const char *sqlite_path;
    struct neo4j_config neo4j;
    size_t max_queue; /* write transactions waiting at most; more: 503 */
    size_t read_connections;
    unsigned validate_interval_s; /* periodic fast validation; 0: off */
};

/*
 * The outcome of a submitted transaction. On success `result` is
 *   {"tx_id", "results": [{"op","id","version"?}...], "records": [entity or
 *    relationship JSON, or null for deletes]}
 * ("records" is empty for a txn with results_only and no Idempotency-Key).
 * result is owned by the caller (json_decref it): the writer keeps no part
 * of it, so the caller may change it (values shared with txn's ops are the
 * caller's already). neo4j_applied tells whether Neo4j has it yet, and
 * replayed is true when an Idempotency-Key returned a stored result.
 */
struct bistore_outcome {
    json_t *result;
    bool neo4j_applied;
    bool replayed;
    struct bs_error err;
};

struct bistore;

/* Opens SQLite (schema, store id). NULL on failure. Quiet: logs nothing. */
struct bistore *bistore_open(const struct bistore_config *cfg, struct bs_error *err);
/* Starts the writer, which recovers in the background; readiness tells
 * when it is done. Writes submitted before that wait or fail with 503. */
int bistore_start(struct bistore *bs, struct bs_error *err);
/* Stops the writer (finishing the transaction under way) and closes all. */
void bistore_close(struct bistore *bs);

/* Runs txn through the commit protocol and waits for its outcome. The
 * txn stays the caller's. rid: request id for the logs. */
void bistore_submit(struct bistore *bs, struct bs_txn *txn, const char *rid,
                    struct bistore_outcome *out);
void bistore_outcome_clear(struct bistore_outcome *out);

/* True once SQLite is open, Neo4j answers and recovery has finished;
 * otherwise false with the reason. */
bool bistore_ready(struct bistore *bs, char *reason, size_t cap);

/* Reads: 0 found (*out owned by the caller), 1 not found, -1 error (err). */
int bistore_get_entity(struct bistore *bs, const char *id, json_t **out, struct bs_error *err);
int bistore_get_relationship(struct bistore *bs, const char *id, json_t **out,
                             struct bs_error *err);
int bistore_get_transaction(struct bistore *bs, const char *tx_id, json_t **out,
                            struct bs_error *err);
/* The entity with "consistency": {"status": "consistent" | "mismatch" |
 * "missing_in_neo4j", "details": [{"field", "sqlite", "neo4j"}...]},
 * comparing its SQLite row with Neo4j's node. 503 when Neo4j is away. */
int bistore_verify_entity(struct bistore *bs, const char *id, json_t **out, struct bs_error *err);
/* Reconciliation (stores/reconcile.h): starts a run in the background
 * (409 reconciliation_running when one runs); id gets its id. */
struct recon_options;
int bistore_reconcile_start(struct bistore *bs, const struct recon_options *opt, char *id,
                            struct bs_error *err);
/* {"id","state","mode","repair","dry_run","started_at","finished_at",
 *  "progress": {"scanned","total"}, "summary": {...}, "error"} */
int bistore_reconcile_get(struct bistore *bs, const char *id, json_t **out, struct bs_error *err);
/* Newest first. */
int bistore_reconcile_list(struct bistore *bs, const char *after, int limit, json_t **items,
                           char **next, struct bs_error *err);
/* 1 when the run does not exist. kind may be NULL. */
int bistore_findings_list(struct bistore *bs, const char *run_id, const char *kind,
                          const char *after, int limit, json_t **items, char **next,
                          struct bs_error *err);

/* Lists: items appended to *items (a new array); *next the cursor of the
 * next page or NULL (free() it). */
int bistore_list_entities(struct bistore *bs, const char *type, const char *after, int limit,
                          json_t **items, char **next, struct bs_error *err);
int bistore_list_transactions(struct bistore *bs, const char *state, const char *after, int limit,
                              json_t **items, char **next, struct bs_error *err);

#endif
