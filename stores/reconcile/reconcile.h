/*
 * Validation and reconciliation of the two stores (DESIGN.md section 5).
 *
 * A run streams entities (ordered by id) and relationships (per type,
 * ordered by id) from both stores in pages (keyset pagination on indexed
 * ids, never OFFSET) and merge-joins them, in memory bounded by the page
 * size whatever the store size. Each disagreement found is a candidate;
 * candidates are re-read point-wise in small batches (in the writer
 * thread when a gateway runs, so no write is in flight) before they become
 * findings, so a write racing the scan is not reported.
 *
 *   fast  compares stored versions and hashes (and relationship endpoints);
 *   deep  also recomputes both hashes from the content each store holds
 *         and checks the Neo4j labels, which catches edits made behind the
 *         gateway's back on either side.
 *
 * Repair (sqlite_wins / neo4j_wins) goes through the commit protocol in
 * batches: atomic, audited in GET /v1/transactions, replayed after a
 * crash like any other write (stores/repair.c).
 */
#ifndef BISTORE_RECONCILE_H
#define BISTORE_RECONCILE_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/result.h"

enum recon_mode { RECON_FAST, RECON_DEEP };
enum recon_repair { REPAIR_NONE, REPAIR_SQLITE_WINS, REPAIR_NEO4J_WINS };

struct recon_options {
    enum recon_mode mode;
    enum recon_repair repair;
    bool dry_run;
};

struct recon_summary {
    int64_t entities_sqlite, entities_neo4j, relationships_sqlite, relationships_neo4j;
    int64_t only_in_sqlite, only_in_neo4j, mismatched, duplicate_ids, missing_ids, repaired;
};

const char *recon_mode_name(enum recon_mode m);
const char *recon_repair_name(enum recon_repair r);
bool recon_mode_parse(const char *s, enum recon_mode *m);
bool recon_repair_parse(const char *s, enum recon_repair *r);
json_t *recon_summary_json(const struct recon_summary *s);
/* true when the summary shows any disagreement */
bool recon_summary_dirty(const struct recon_summary *s);

#endif
