/*
 * Inside the reconciliation: the scan (recon_scan.c), the point re-read and
 * classification shared by the scan, its re-check and repair, and the run
 * bookkeeping (recon_run.c). Not for handlers.
 */
#ifndef BISTORE_RECON_INTERNAL_H
#define BISTORE_RECON_INTERNAL_H

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
};

/* The Neo4j settings of a scan: the gateway's, with a timeout of at least
 * RECON_NEO4J_TIMEOUT_MS (a page of a large store can take seconds). */
#define RECON_NEO4J_TIMEOUT_MS 120000
struct neo4j_config recon_neo4j_config(const struct neo4j_config *base);

/* The whole scan; fills sum (all but repaired). */
int recon_scan(struct sql_conn *sql, struct neo4j_client *neo4j, const struct recon_options *opt,
               const struct recon_hooks *hooks, struct recon_summary *sum, struct bs_error *err);

/* Reads the groups of the findings' ids again, point-wise (deep: with
 * properties), from both stores: a new array of groups in the same order. */
int recon_reread(struct sql_conn *sql, struct neo4j_client *neo4j, bool deep, json_t *findings,
                 json_t **groups, struct bs_error *err);

/* The finding a group amounts to, or NULL when the stores agree on it. */
json_t *recon_classify(const json_t *group, bool deep);

/* Re-reads and re-classifies: the findings still true (new array). */
int recon_confirm(struct sql_conn *sql, struct neo4j_client *neo4j, bool deep, json_t *findings,
                  json_t **confirmed, struct bs_error *err);

#endif
