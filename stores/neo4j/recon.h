/*
 * Reconciliation's reads of Neo4j (stores/neo4j/recon.c): pages of entities
 * and of the relationships of one type in id order, point re-reads, the
 * items without an id, counts, the relationship types, and the node of one
 * entity for ?verify=true. The statement texts are here; a relationship
 * type comes from Neo4j itself and may be any string, so it is quoted with
 * backticks (one inside doubled); every value is a parameter.
 *
 * Rows: an entity {"id","_v","_h","element_id","labels"?,"properties"?}, a
 * relationship {"id","_v","_h","element_id","type","source","target",
 * "properties"?}; "labels" and "properties" only when deep, and a fast
 * scan's page leaves "element_id" null (half the bytes: only findings need
 * it, and they are read again before they count).
 *
 * Failures: -1 with err neo4j_unavailable (no answer) or neo4j_error, the
 * message naming what was read ("Neo4j (scan): <code> <message>").
 */
#ifndef BISTORE_NEO4J_RECON_H
#define BISTORE_NEO4J_RECON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/result.h"
#include "stores/model/canon.h"
#include "stores/neo4j/neo4j.h"

/* The entities (with type: the relationships of that type) with an id at or
 * after at->after and before at->before, ordered by id: limit + skip of
 * them are read, the first skip dropped (they were seen on the page before)
 * and the rest appended to page; *rows says how many were read. */
struct neo4j_scan_at {
    const char *after;
    size_t skip;
    const char *before; /* NULL: no end */
};
int neo4j_scan_page(struct neo4j_client *c, const char *type, bool deep,
                    const struct neo4j_scan_at *at, int limit, json_t *page, size_t *rows,
                    struct bs_error *err);
/* The checksums of the entities (with type: the relationships of that
 * type) in each range of ranges, [[lo, hi], ...] in id order (hi null: no
 * end, the last range only): out[i] for ranges[i], in one request. A range
 * holding a record whose _h1, _h2 or _v is not an integer gets h1 = -1
 * (never equal to a sum of parts). */
int neo4j_range_sums(struct neo4j_client *c, const char *type, json_t *ranges,
                     struct canon_sums *out, struct bs_error *err);
/* As sql_range_keys: the ids that cut [lo, hi) into parts of `every` rows. */
int neo4j_range_keys(struct neo4j_client *c, const char *type, const char *lo, const char *hi,
                     int64_t every, json_t *keys, struct bs_error *err);
/* One batch of `bistore migrate`: of the limit entities (relationships of
 * type) after id `after` in id order, those without integer _h1/_h2 get
 * them from their _h (canon_hash_parts, computed in Cypher), in one Neo4j
 * transaction. *seen: records in the batch (fewer than limit: the last);
 * *set: records changed; *last: the batch's last id (malloc'd; NULL when
 * the batch is empty). */
int neo4j_migrate_parts(struct neo4j_client *c, const char *type, const char *after, int limit,
                        char **last, int64_t *seen, int64_t *set, struct bs_error *err);
/* Nodes labelled Entity (with type: relationships of that type) whose id is
 * missing or not a string, at most limit, appended to items as a finding's
 * Neo4j part: {"element_id","labels","properties"}, or for a relationship
 * {"element_id","type","source","target","properties"}. */
int neo4j_scan_missing_ids(struct neo4j_client *c, const char *type, int limit, json_t *items,
                           struct bs_error *err);
/* Appends the relationship types Neo4j knows that types does not hold yet. */
int neo4j_scan_relationship_types(struct neo4j_client *c, json_t *types, struct bs_error *err);
/* From the count store (no scan): nodes labelled Entity; relationships out
 * of them (with type: of that type). */
int neo4j_scan_count_entities(struct neo4j_client *c, int64_t *n, struct bs_error *err);
int neo4j_scan_count_relationships(struct neo4j_client *c, const char *type, int64_t *n,
                                   struct bs_error *err);
/* The rows of the entities (relationships of type, unless entity) whose ids
 * are in ids, grouped by id: *by_id = {"<id>": [rows]} (a new object). */
int neo4j_scan_reread(struct neo4j_client *c, bool entity, const char *type, bool deep, json_t *ids,
                      json_t **by_id, struct bs_error *err);

/* The nodes with entity id `id`: *nodes = [{"labels","properties"}...] (new
 * array). The status; r holds Neo4j's error when it is not NEO4J_OK. */
enum neo4j_status neo4j_entity_nodes(struct neo4j_client *c, const char *id, json_t **nodes,
                                     struct neo4j_result *r);

#endif
