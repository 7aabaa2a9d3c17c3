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
 * crash like any other write (repair.c).
 *
 * In a gateway, runs belong to its reconciler (reconciler.c): one at a
 * time, each in a thread of its own (run.c), kept in SQLite so a report
 * survives a restart. Without a gateway, recon_check scans read-only.
 */
#ifndef BISTORE_RECONCILE_H
#define BISTORE_RECONCILE_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/result.h"
#include "stores/neo4j/neo4j.h"

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

struct engine;
struct sql_pool;

/* ---- a gateway's runs (reconciler.c) ---- */

struct reconciler_config {
    struct engine *engine;        /* re-checks, repairs and bookkeeping go through its writer */
    struct sql_pool *readers;     /* reads of runs and findings */
    const char *sqlite_path;      /* a run's own read-only connection */
    struct neo4j_config neo4j;    /* a run's own client; the strings borrowed */
    unsigned validate_interval_s; /* a periodic fast run; 0: none */
};
struct reconciler;

/* NULL when out of memory. */
struct reconciler *reconciler_new(const struct reconciler_config *cfg);
/* Starts the periodic validation when configured. */
int reconciler_start(struct reconciler *r);
/* A run under way stops at its next page or writer call and records its
 * end through the writer (which must still run bookkeeping jobs); the
 * periodic validation ends. Returns once both are gone. */
void reconciler_stop(struct reconciler *r);
void reconciler_free(struct reconciler *r);
/* Marks runs left "running" by a stopped gateway as failed, on the write
 * connection, before the writer starts (the thread that opened the engine). */
int recon_mark_interrupted(struct engine *e, struct bs_error *err);

/* Starts a run in the background; id gets its id. 409 reconciliation_running
 * while one is going on. */
int recon_start(struct reconciler *r, const struct recon_options *opt, char *id,
                struct bs_error *err);
/* {"id","state","mode","repair","dry_run","started_at","finished_at",
 *  "progress": {"scanned","total"}, "summary": {...}, "error"}, the running
 * run's live numbers in it. */
enum lookup recon_get(struct reconciler *r, const char *id, json_t **out, struct bs_error *err);
/* Newest first; *next the cursor of the next page or NULL (free() it). */
int recon_list(struct reconciler *r, const char *after, int limit, json_t **items, char **next,
               struct bs_error *err);
/* The findings of run run_id, of kind (NULL: any), in order. */
enum lookup recon_findings(struct reconciler *r, const char *run_id, const char *kind,
                           const char *after, int limit, json_t **items, char **next,
                           struct bs_error *err);

/* ---- without a gateway (check.c) ---- */

struct check_hooks {
    void (*finding)(void *arg, const json_t *finding);
    void (*progress)(void *arg, int64_t scanned, int64_t total);
    void *arg;
};
/* `bistore check`: scans both stores read-only; sum tells what was found.
 * -1 on a store error. */
int recon_check(const char *sqlite_path, const struct neo4j_config *neo4j,
                const struct recon_options *opt, const struct check_hooks *hooks,
                struct recon_summary *sum, struct bs_error *err);

/* ---- the hash parts of older records (migrate.c) ---- */

struct migrate_summary {
    int64_t total; /* records in Neo4j (entities and relationships, counted first) */
    int64_t seen;  /* records read so far */
    int64_t set;   /* of them, given their parts */
};
struct migrate_hooks {
    void (*progress)(void *arg, const struct migrate_summary *sum);
    void *arg;
};
/* `bistore migrate`: every Neo4j entity and relationship without _h1/_h2
 * gets them from its _h, batch by batch; run it again to resume. -1 on a
 * store error (sum says how far it came). */
int recon_migrate(const struct neo4j_config *neo4j, const struct migrate_hooks *hooks,
                  struct migrate_summary *sum, struct bs_error *err);

/* ---- a refused intent (resolve.c) ---- */

/*
 * Settles intent seq, which must be the one Neo4j refuses, under policy
 * (sqlite_wins or neo4j_wins): its objects are made to agree through the
 * commit protocol (the intent's statements are replaced and replayed
 * exactly once). With dry_run nothing is written. report (caller's):
 * {"seq","tx_id","policy","dry_run","objects":[{"object","id","action",...}]}.
 * 400 invalid_request when seq is not the refused intent or the policy
 * cannot make an object agree (nothing written).
 */
int recon_resolve_intent(struct engine *e, int64_t seq, enum recon_repair policy, bool dry_run,
                         json_t **report, struct bs_error *err);

#endif
