/*
 * bistore: the two stores as one. The facade of stores/ for the handlers
 * and main, and the only header of stores/ they include: the gateway's
 * lifecycle (open, start, close), submitting write transactions, readiness,
 * reads, verify, reconciliation, check and resolve. Its implementation
 * (bistore.c, reads.c, verify.c) wires the layers below:
 *
 *   stores/reconcile/  scan, classify, re-read, runs, repair, check, resolve
 *   stores/engine/     the writer, the commit protocol, replay, readiness
 *   stores/sqlite/     all SQL          stores/neo4j/  all Cypher
 *   stores/model/      the data model, canonical records and hashes
 *
 * Writes go through one writer thread (stores/engine/writer.c) that runs
 * the commit protocol of DESIGN.md section 4 (stores/engine/commit.c).
 * Reads go straight to SQLite through a pool of read-only connections.
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
#include "stores/reconcile/reconcile.h"

struct bistore_config {
    const char *sqlite_path;
    struct neo4j_config neo4j;
    size_t max_queue;     /* write transactions waiting at most; more: 503 */
    size_t max_rel_types; /* relationship types the stores may hold; more: 400 */
    /* Litestream's control socket (NULL: no replica): every write waits
     * until the replica holds it (stores/replica/replica.h). */
    const char *replica_socket;
    unsigned replica_timeout_s;
    /* model_set_limits (stores/model/model.h), set by bistore_open for the
     * whole process; 0: the default. */
    size_t max_properties, max_string_bytes;
    size_t read_connections;
    /* A page of entities or transactions ends early (with a next cursor)
     * once its rows pass this many bytes; one row at least. 0: 8 MiB. */
    size_t max_page_bytes;
    unsigned validate_interval_s; /* periodic fast validation; 0: off */
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
/* The gateway's role (README "Replication"): fenced once a promotion of
 * another copy deposed it, else primary; and the epoch it writes under. */
bool bistore_fenced(struct bistore *bs);
int64_t bistore_epoch(struct bistore *bs);

/* Reads by id: *out owned by the caller when found. */
enum lookup bistore_get_entity(struct bistore *bs, const char *id, json_t **out,
                               struct bs_error *err);
enum lookup bistore_get_relationship(struct bistore *bs, const char *id, json_t **out,
                                     struct bs_error *err);
enum lookup bistore_get_transaction(struct bistore *bs, const char *tx_id, json_t **out,
                                    struct bs_error *err);
/* The entity with "consistency": {"status": "consistent" | "mismatch" |
 * "missing_in_neo4j", "details": [{"field", "sqlite", "neo4j"}...]},
 * comparing its SQLite row with Neo4j's node. 503 when Neo4j is away. */
enum lookup bistore_verify_entity(struct bistore *bs, const char *id, json_t **out,
                                  struct bs_error *err);

/* Reconciliation (stores/reconcile/reconcile.h has the forms): starts a run
 * in the background (409 reconciliation_running when one runs); id gets
 * its id. */
int bistore_reconcile_start(struct bistore *bs, const struct recon_options *opt, char *id,
                            struct bs_error *err);
enum lookup bistore_reconcile_get(struct bistore *bs, const char *id, json_t **out,
                                  struct bs_error *err);
/* Newest first. */
int bistore_reconcile_list(struct bistore *bs, const char *after, int limit, json_t **items,
                           char **next, struct bs_error *err);
/* kind may be NULL. */
enum lookup bistore_findings_list(struct bistore *bs, const char *run_id, const char *kind,
                                  const char *after, int limit, json_t **items, char **next,
                                  struct bs_error *err);

/* `bistore check`: scans both stores read-only, without a gateway. */
int bistore_check(const struct bistore_config *cfg, const struct recon_options *opt,
                  const struct check_hooks *hooks, struct recon_summary *sum, struct bs_error *err);

/* `bistore migrate` (stores/reconcile/reconcile.h: recon_migrate). */
/* bistore promote: the store's watermark fenced at a new epoch, which this
 * SQLite file takes (engine_promote). */
int bistore_promote(const struct bistore_config *cfg, int64_t *epoch, struct bs_error *err);
/* A standby's promotion in its steps (stores/engine/engine.h:
 * engine_identity, engine_fence (strict), engine_adopt); cfg names the
 * copy. */
int bistore_identity(const char *sqlite_path, char *store_id, size_t cap, int64_t *epoch,
                     struct bs_error *err);
int bistore_fence(const struct bistore_config *cfg, const char *store_id, int64_t file_epoch,
                  int64_t *epoch, int64_t *seq, struct bs_error *err);
int bistore_adopt(const struct bistore_config *cfg, const char *store_id, int64_t epoch,
                  int64_t seq, struct bs_error *err);
int bistore_migrate(const struct bistore_config *cfg, const struct migrate_hooks *hooks,
                    struct migrate_summary *sum, struct bs_error *err);

/* `bistore resolve` (stores/reconcile/reconcile.h: recon_resolve_intent). */
int bistore_resolve_intent(struct bistore *bs, int64_t seq, enum recon_repair policy, bool dry_run,
                           json_t **report, struct bs_error *err);
/* The intent Neo4j refuses: {"seq","tx_id","operations","refused"}. */
enum lookup bistore_refused_intent(struct bistore *bs, json_t **out, struct bs_error *err);

/* Lists: items appended to *items (a new array); *next the cursor of the
 * next page or NULL (free() it). */
int bistore_list_entities(struct bistore *bs, const char *type, const char *after, int limit,
                          json_t **items, char **next, struct bs_error *err);
int bistore_list_transactions(struct bistore *bs, const char *state, const char *after, int limit,
                              json_t **items, char **next, struct bs_error *err);

#endif
