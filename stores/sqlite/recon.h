/*
 * Reconciliation in SQLite (stores/sqlite/recon.c): the bookkeeping of runs
 * and findings (bistore_reconciliations, bistore_findings) and the reads a
 * scan makes of the entity and relationship tables. Functions return 0 (or
 * LOOKUP_FOUND), LOOKUP_MISSING where a row may not exist, -1 on an SQLite
 * error (err filled).
 */
#ifndef BISTORE_SQLITE_RECON_H
#define BISTORE_SQLITE_RECON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "stores/sqlite/sqlite.h"

/* ---- runs ----
 * A run as the API shows it: {"id","state","mode","repair","dry_run",
 * "started_at","finished_at","progress":{"scanned","total"},"summary","error"}.
 * summary is JSON text. */

/* Inserts run id as "running"; *n gets its row number. */
int sql_run_insert(struct sql_conn *c, const char *id, const char *mode, const char *repair,
                   bool dry_run, const char *started_at, const char *summary, int64_t *n,
                   struct bs_error *err);
/* Updates run n: state, finished_at (NULL while running), progress,
 * summary and error (NULL: none). */
int sql_run_update(struct sql_conn *c, int64_t n, const char *state, const char *finished_at,
                   int64_t scanned, int64_t total, const char *summary, const char *error,
                   struct bs_error *err);
/* Marks runs still "running" (their gateway stopped) failed at `at`. */
int sql_run_mark_interrupted(struct sql_conn *c, const char *at, struct bs_error *err);
enum lookup sql_run_get(struct sql_conn *c, const char *id, json_t **out, struct bs_error *err);
/* The row number of run id. */
enum lookup sql_run_n(struct sql_conn *c, const char *id, int64_t *n, struct bs_error *err);
/* Runs numbered below `before`, newest first, at most limit, appended to
 * items; *last is the row number of the last one, *more whether more follow. */
int sql_run_list(struct sql_conn *c, int64_t before, int limit, json_t *items, int64_t *last,
                 bool *more, struct bs_error *err);

/* ---- findings ----
 * A finding: {"kind","object","id","sqlite","neo4j","action"}; stored ones
 * also have their number "n" within the run. */

/* Stores findings numbered first + 1, first + 2..., action "none", all or
 * none, in one short transaction of their own. */
int sql_findings_insert(struct sql_conn *c, int64_t run_n, int64_t first, const json_t *findings,
                        struct bs_error *err);
/* The findings of run_n numbered after `after`, of kind (NULL: any), in
 * order, at most limit, appended to items (with "n"); *last and *more as
 * for sql_run_list. */
int sql_findings_page(struct sql_conn *c, int64_t run_n, const char *kind, int64_t after, int limit,
                      json_t *items, int64_t *last, bool *more, struct bs_error *err);
/* Sets finding n's action, and with adopted_id the new id of the node it
 * adopted (into its "neo4j" part). */
int sql_finding_set_action(struct sql_conn *c, int64_t run_n, int64_t n, const char *action,
                           const char *adopted_id, struct bs_error *err);

/* ---- the scan's reads ----
 * Rows: an entity {"id","type","version","hash","properties"?}, a
 * relationship {"id","type","source","target","version","hash",
 * "properties"?}; "properties" only with deep. */

/* Where a page starts and ends: ids at or after `after`, the first skip of
 * them dropped (already seen), and before `before` (NULL: no end). */
struct sql_scan_at {
    const char *after;
    size_t skip;
    const char *before;
};
/* The entities (with type: the relationships of that type) from `at`,
 * ordered by id, at most limit, appended to page. */
int sql_scan_page(struct sql_conn *c, const char *type, bool deep, const struct sql_scan_at *at,
                  int limit, json_t *page, struct bs_error *err);
/* The checksum (struct canon_sums) of the entities (with type: the
 * relationships of that type) with ids in [lo, hi) (hi NULL: no end). */
int sql_range_sums(struct sql_conn *c, const char *type, const char *lo, const char *hi,
                   struct canon_sums *out, struct bs_error *err);
/* The ids of every every-th row of [lo, hi) in id order, the first row's
 * left out (the keys that cut the range into parts of `every` rows),
 * appended to keys. One pass over the id index. */
int sql_range_keys(struct sql_conn *c, const char *type, const char *lo, const char *hi,
                   int64_t every, json_t *keys, struct bs_error *err);
/* The relationship types SQLite holds, sorted, appended to types. */
int sql_scan_relationship_types(struct sql_conn *c, json_t *types, struct bs_error *err);
/* Entities plus relationships. */
int sql_scan_count(struct sql_conn *c, int64_t *count, struct bs_error *err);
/* The row of entity (relationship, unless entity) id: a new reference, or
 * JSON null when SQLite has none. */
int sql_scan_reread(struct sql_conn *c, bool entity, bool deep, const char *id, json_t **row,
                    struct bs_error *err);

#endif
