/*
 * The Cypher of the gateway. Every statement text is in stores/neo4j/:
 * here (cypher.c: a transaction's statements, the watermark, schema,
 * repairs) and in recon.c (reconciliation's reads); scripts/check-layers.sh
 * fails on Cypher written anywhere else. Texts are fixed templates, with
 * labels and relationship types that passed model_valid_name() (or, read
 * back from Neo4j, quoted); every value travels as a parameter.
 *
 * Consecutive operations of one kind and one label share one
 * `UNWIND $rows AS r ...` statement. Each data statement returns
 * count(*), and the batch remembers how many rows each should touch, so a
 * live write notices when Neo4j lacks a node that SQLite has.
 */
#ifndef BISTORE_CYPHER_H
#define BISTORE_CYPHER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stores/model/model.h"

#define WATERMARK_LABEL "_BistoreWatermark"
#define CYPHER_ANY_COUNT ((size_t)-1)

struct cypher_batch {
    json_t *statements; /* the data statements so far */
    size_t *expected;   /* rows each statement should touch */
    size_t cap_expected;
    /* the group being filled */
    int group_kind; /* enum op_kind, or -1 */
    char group_label[NAME_MAX_LEN + 1];
    json_t *group_rows;
};

int cypher_batch_init(struct cypher_batch *b);
void cypher_batch_free(struct cypher_batch *b);
size_t cypher_batch_count(const struct cypher_batch *b);
/* Rows in the group still open (not yet a statement). */
size_t cypher_open_rows(const struct cypher_batch *b);

/* node: every property of the node (id, _v, _h and the mirrored ones); stolen. */
int cypher_create_entity(struct cypher_batch *b, const char *type, json_t *node);
int cypher_update_entity(struct cypher_batch *b, const char *id, json_t *node);
int cypher_delete_entity(struct cypher_batch *b, const char *id);
/* rel: every property of the relationship (id, _v, _h, ...); stolen. */
int cypher_create_relationship(struct cypher_batch *b, const char *type, const char *source,
                               const char *target, json_t *rel);
int cypher_delete_relationship(struct cypher_batch *b, const char *type, const char *source,
                               const char *id);
/* A statement of its own: text built here (or by a test) from validated
 * names only; params stolen. Its row count is not checked. */
int cypher_add_raw(struct cypher_batch *b, const char *text, json_t *params);

/* ---- a client's raw statements (raw.c) ---- */

/*
 * A client's Cypher (the "cypher" operation): 0 when neither text nor
 * params touch the gateway's own labels and properties as far as a lexical
 * scan can tell (any mention of _Bistore; the names _v and _h, bare,
 * backquoted or as a string literal; parameter keys and string values that
 * are _v, _h or mention _Bistore); else -1 with err (invalid_request).
 */
int cypher_raw_check(const char *text, const json_t *params, struct bs_error *err);
/* The text half of cypher_raw_check. */
int cypher_raw_check_text(const char *text, struct bs_error *err);
/* Adds a client's statement (text copied, params stolen, may be NULL),
 * marked so that it is never merged with another statement nor joined to
 * the guard; its row count is not checked. */
int cypher_add_client_statement(struct cypher_batch *b, const char *text, json_t *params);
/* True for a statement cypher_add_client_statement made (also read back
 * from the intent log). */
bool cypher_is_client_statement(const json_t *stmt);
/* One statement's result of Neo4j's answer as [{column: value}, ...]
 * (new); NULL when out of memory. */
json_t *cypher_rows_as_objects(const json_t *result);

/* Closes the last group. After it, b->statements is complete. */
int cypher_batch_finish(struct cypher_batch *b);

/*
 * Appends stmt to out. When the last statement of out (at an index >= floor)
 * has the same text and both are UNWIND statements whose only parameter is
 * $rows, stmt's rows go on the end of it instead: the rows are applied in
 * the same order, and Neo4j plans and runs one statement instead of many.
 * The statement merged into is a copy, so stmt is never changed. *merged
 * says which happened. 0, or -1 when out of memory.
 */
int cypher_append_merged(json_t *out, size_t floor, json_t *stmt, bool *merged);

/*
 * The guarded watermark statement (DESIGN.md section 4): takes the
 * watermark's write lock, fails with an ArithmeticError unless the watermark
 * is at prev and at epoch (a promotion moved it on: this gateway is
 * deposed), then sets it to seq. Returns one row (the new seq) when it
 * passed; no row when the watermark node of store_id does not exist.
 */
int cypher_add_watermark_guard(json_t *statements, const char *store_id, int64_t epoch,
                               int64_t prev, int64_t seq);
/*
 * When statements is [guard, one UNWIND $rows statement], makes them one
 * statement, "<guard> WITH w UNWIND $rows AS r ...", with both sets of
 * parameters: the watermark is still locked and checked before any row, a
 * wrong one still fails the whole statement, and a missing one makes no
 * rows (so the count comes back 0); Neo4j runs one statement fewer.
 */
enum guard_join { GUARD_APART = 0, GUARD_JOINED = 1, GUARD_JOIN_FAILED = -1 /* no memory */ };
enum guard_join cypher_join_guard(json_t *statements);
/* Creates the watermark of store_id at 0 if missing; one row: its seq, its
 * epoch (0 when no promotion set one). */
int cypher_add_watermark_ensure(json_t *statements, const char *store_id);

/*
 * The fence of a promotion (bistore promote): takes the watermark's lock
 * (creating it at 0 if missing) and moves its epoch on, past file_epoch
 * (the promoted file's) too; one row: the new epoch, the seq, true. A
 * standby's (strict): moves the epoch on only from file_epoch, and only
 * when the watermark exists; one row (none without a watermark): the
 * epoch, the seq, whether it moved. While it waits for a deposed
 * gateway's transaction, cypher_add_fence_blockers finds that transaction
 * (one row per waiting fence of the same kind: Neo4j's status, "Blocked
 * by: [ids]") and cypher_add_terminate ends it (ids: a JSON array of
 * transaction ids, taken).
 */
int cypher_add_watermark_fence(json_t *statements, const char *store_id, int64_t file_epoch,
                               bool strict);
int cypher_add_fence_blockers(json_t *statements, bool strict);
int cypher_add_terminate(json_t *statements, json_t *ids);

/* The watermark of store_id: one row, its seq (no row when missing). */
int cypher_add_watermark_read(json_t *statements, const char *store_id);

/* Whether the watermark of store_id exists: one row, its count. */
int cypher_add_watermark_count(json_t *statements, const char *store_id);

/*
 * Repairs (stores/reconcile/repair.c): statements of their own (row counts
 * not checked), by element id where a node may have no id. Each steals the
 * JSON it is given; -1 when out of memory.
 */
/* Deletes the nodes (relationships, unless entity) whose element ids are
 * in eids, a node with its relationships. */
int cypher_delete_elements(struct cypher_batch *b, bool entity, json_t *eids);
/* Creates an entity node of type with the property map (id, _v, _h, ...). */
int cypher_create_entity_node(struct cypher_batch *b, const char *type, json_t *map);
/* Node eid gets the type label instead of its others (Entity stays) and the map. */
int cypher_rewrite_entity_node(struct cypher_batch *b, const char *eid, const char *type,
                               json_t *map);
/* A relationship of type (a valid name) from entity source to target, with map. */
int cypher_create_relationship_edge(struct cypher_batch *b, const char *type, const char *source,
                                    const char *target, json_t *map);
/* Node (relationship, unless entity) eid gets the id, _v, _h, _h1 and _h2 of its row
 * (and a node its _hid). */
int cypher_adopt_element(struct cypher_batch *b, bool entity, const char *eid, const char *id,
                         int64_t version, const char *hash);

/* Schema statements, each for its own transaction. */
const char *cypher_entity_constraint(void);
/* The type of the relationship with id $id (one row, or none). Scans every
 * relationship: for an operator's command, never the write path. */
const char *cypher_relationship_type_by_id(void);
/* Writes the constraint statement for relationship type `type` into out. */
int cypher_relationship_constraint(const char *type, char *out, size_t cap);

#endif
