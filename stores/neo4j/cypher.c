#include "stores/neo4j/cypher.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "stores/model/canon.h"
#include "stores/neo4j/neo4j.h"

int cypher_batch_init(struct cypher_batch *b)
{
    memset(b, 0, sizeof *b);
    b->group_kind = -1;
    b->statements = json_array();
    return b->statements ? 0 : -1;
}

void cypher_batch_free(struct cypher_batch *b)
{
    json_decref(b->statements);
    json_decref(b->group_rows);
    free(b->expected);
    memset(b, 0, sizeof *b);
    b->group_kind = -1;
}

size_t cypher_batch_count(const struct cypher_batch *b)
{
    return json_array_size(b->statements);
}

size_t cypher_open_rows(const struct cypher_batch *b)
{
    return b->group_kind >= 0 ? json_array_size(b->group_rows) : 0;
}

/* The statement text of a group; labels were validated by model_valid_name(). */
static int group_text(int kind, const char *label, char *out, size_t cap)
{
    BS_ASSERT(kind == OP_DELETE_ENTITY || kind == OP_UPDATE_ENTITY || model_valid_name(label));
    int n = -1;
    switch ((enum op_kind)kind) {
    case OP_CREATE_ENTITY:
        n = snprintf(out, cap, "UNWIND $rows AS r CREATE (n:Entity:`%s`) SET n = r RETURN count(*)",
                     label);
        break;
    case OP_UPDATE_ENTITY:
        n = snprintf(out, cap,
                     "UNWIND $rows AS r MATCH (n:Entity {id: r.id}) SET n = r.node"
                     " RETURN count(*)");
        break;
    case OP_DELETE_ENTITY:
        n = snprintf(out, cap,
                     "UNWIND $rows AS r MATCH (n:Entity {id: r.id}) DETACH DELETE n"
                     " RETURN count(*)");
        break;
    case OP_CREATE_RELATIONSHIP:
        n = snprintf(out, cap,
                     "UNWIND $rows AS r MATCH (a:Entity {id: r.source})"
                     " MATCH (b:Entity {id: r.target}) CREATE (a)-[x:`%s`]->(b) SET x = r.rel"
                     " RETURN count(*)",
                     label);
        break;
    case OP_DELETE_RELATIONSHIP:
        n = snprintf(out, cap,
                     "UNWIND $rows AS r MATCH (:Entity {id: r.source})-[x:`%s` {id: r.id}]->()"
                     " DELETE x RETURN count(*)",
                     label);
        break;
    case OP_CYPHER:
    case OP_SQL: break; /* no template: a client's own statement (raw.c), or none */
    }
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* Makes room for the expected count of one more statement. */
static int reserve_expected(struct cypher_batch *b)
{
    size_t n = json_array_size(b->statements);
    if (n + 1 > b->cap_expected) {
        size_t cap = b->cap_expected ? b->cap_expected * 2 : 8;
        size_t *p = realloc(b->expected, cap * sizeof *p);
        if (!p)
            return -1;
        b->expected = p;
        b->cap_expected = cap;
    }
    return 0;
}

static int close_group(struct cypher_batch *b)
{
    if (b->group_kind < 0)
        return 0;
    char text[512];
    if (group_text(b->group_kind, b->group_label, text, sizeof text) != 0 ||
        reserve_expected(b) != 0)
        return -1;
    size_t n = json_array_size(b->statements);
    b->expected[n] = json_array_size(b->group_rows);
    json_t *params = json_pack("{s:o}", "rows", b->group_rows);
    b->group_rows = NULL;
    b->group_kind = -1;
    if (!params || neo4j_add_statement(b->statements, text, params) != 0)
        return -1;
    return 0;
}

/* Adds row (stolen) to the group of (kind, label), opening a new group when it differs. */
static int add_row(struct cypher_batch *b, int kind, const char *label, json_t *row)
{
    if (!row)
        return -1;
    if (b->group_kind != kind || strcmp(b->group_label, label) != 0) {
        if (close_group(b) != 0) {
            json_decref(row);
            return -1;
        }
        b->group_rows = json_array();
        if (!b->group_rows) {
            json_decref(row);
            return -1;
        }
        b->group_kind = kind;
        snprintf(b->group_label, sizeof b->group_label, "%s", label);
    }
    return json_array_append_new(b->group_rows, row);
}

int cypher_create_entity(struct cypher_batch *b, const char *type, json_t *node)
{
    return add_row(b, OP_CREATE_ENTITY, type, node);
}

int cypher_update_entity(struct cypher_batch *b, const char *id, json_t *node)
{
    return add_row(b, OP_UPDATE_ENTITY, "", json_pack("{s:s, s:o}", "id", id, "node", node));
}

int cypher_delete_entity(struct cypher_batch *b, const char *id)
{
    return add_row(b, OP_DELETE_ENTITY, "", json_pack("{s:s}", "id", id));
}

int cypher_create_relationship(struct cypher_batch *b, const char *type, const char *source,
                               const char *target, json_t *rel)
{
    return add_row(b, OP_CREATE_RELATIONSHIP, type,
                   json_pack("{s:s, s:s, s:o}", "source", source, "target", target, "rel", rel));
}

int cypher_delete_relationship(struct cypher_batch *b, const char *type, const char *source,
                               const char *id)
{
    return add_row(b, OP_DELETE_RELATIONSHIP, type,
                   json_pack("{s:s, s:s}", "source", source, "id", id));
}

int cypher_add_raw(struct cypher_batch *b, const char *text, json_t *params)
{
    if (close_group(b) != 0 || reserve_expected(b) != 0) {
        json_decref(params);
        return -1;
    }
    b->expected[json_array_size(b->statements)] = CYPHER_ANY_COUNT;
    return neo4j_add_statement(b->statements, text, params);
}

int cypher_batch_finish(struct cypher_batch *b)
{
    return close_group(b);
}

/* The rows of an UNWIND statement whose only parameter is $rows, or NULL. */
static json_t *only_rows(json_t *stmt)
{
    json_t *params = json_object_get(stmt, "parameters");
    json_t *rows = json_object_get(params, "rows");
    /* only {statement, parameters}: a client's statement has a third key */
    return json_is_array(rows) && json_object_size(params) == 1 && json_object_size(stmt) == 2
               ? rows
               : NULL;
}

int cypher_append_merged(json_t *out, size_t floor, json_t *stmt, bool *merged)
{
    size_t n = json_array_size(out);
    json_t *last = n > floor ? json_array_get(out, n - 1) : NULL;
    json_t *rows = only_rows(stmt);
    json_t *last_rows = last ? only_rows(last) : NULL;
    const char *text = json_string_value(json_object_get(stmt, "statement"));
    const char *last_text = json_string_value(json_object_get(last, "statement"));
    *merged = rows && last_rows && text && last_text && strcmp(text, last_text) == 0;
    if (*merged)
        return json_array_extend(last_rows, rows);
    if (!rows)
        return json_array_append(out, stmt);
    /* a copy, so that merging into it never changes the caller's rows */
    json_t *copy = json_pack("{s:O, s:{s:o}}", "statement", json_object_get(stmt, "statement"),
                             "parameters", "rows", json_copy(rows));
    return copy ? json_array_append_new(out, copy) : -1;
}

/* Lock first, then check: without the SET before the CASE, two
 * transactions read the same old value and both commit. The epoch (0 on a
 * watermark no promotion has fenced) is the fencing token. */
#define GUARD_TEXT                                                                                 \
    "MATCH (w:" WATERMARK_LABEL " {store: $store}) SET w._lock = true"                             \
    " WITH w, CASE WHEN w.seq = $prev AND coalesce(w.epoch, 0) = $epoch THEN 1 ELSE 1/0 END AS ok" \
    " SET w.seq = $seq"

int cypher_add_watermark_guard(json_t *statements, const char *store_id, int64_t epoch,
                               int64_t prev, int64_t seq)
{
    static const char text[] = GUARD_TEXT " RETURN w.seq";
    json_t *params = json_pack("{s:s, s:I, s:I, s:I}", "store", store_id, "epoch",
                               (json_int_t)epoch, "prev", (json_int_t)prev, "seq", (json_int_t)seq);
    if (!params)
        return -1;
    return neo4j_add_statement(statements, text, params);
}

enum guard_join cypher_join_guard(json_t *statements)
{
    static const char unwind[] = "UNWIND $rows AS r ";
    json_t *guard = json_array_get(statements, 0);
    json_t *data = json_array_get(statements, 1);
    json_t *rows = json_array_size(statements) == 2 ? only_rows(data) : NULL;
    const char *text = json_string_value(json_object_get(data, "statement"));
    if (!rows || !text || strncmp(text, unwind, sizeof unwind - 1) != 0)
        return GUARD_APART;
    char *joined = NULL;
    size_t len = sizeof GUARD_TEXT " WITH w " + strlen(text);
    json_t *params = json_copy(json_object_get(guard, "parameters"));
    if (!params || json_object_set(params, "rows", rows) != 0 || !(joined = malloc(len))) {
        json_decref(params);
        return GUARD_JOIN_FAILED;
    }
    snprintf(joined, len, "%s WITH w %s", GUARD_TEXT, text);
    json_t *one = json_array();
    int rc = one && neo4j_add_statement(one, joined, params) == 0 ? 0 : -1;
    free(joined);
    if (rc != 0 || json_array_clear(statements) != 0 || json_array_extend(statements, one) != 0) {
        json_decref(one);
        return GUARD_JOIN_FAILED;
    }
    json_decref(one);
    return GUARD_JOINED;
}

int cypher_add_watermark_ensure(json_t *statements, const char *store_id)
{
    static const char text[] = "MERGE (w:" WATERMARK_LABEL " {store: $store})"
                               " ON CREATE SET w.seq = 0 RETURN w.seq, coalesce(w.epoch, 0)";
    json_t *params = json_pack("{s:s}", "store", store_id);
    if (!params)
        return -1;
    return neo4j_add_statement(statements, text, params);
}

const char *cypher_entity_constraint(void)
{
    return "CREATE CONSTRAINT bistore_entity_id IF NOT EXISTS"
           " FOR (n:Entity) REQUIRE n.id IS UNIQUE";
}

const char *cypher_relationship_type_by_id(void)
{
    /* no index serves a relationship id without its type: a scan */
    return "MATCH ()-[r]->() WHERE r.id = $id RETURN type(r) LIMIT 1";
}

int cypher_relationship_constraint(const char *type, char *out, size_t cap)
{
    if (!model_valid_name(type))
        return -1;
    int n = snprintf(out, cap,
                     "CREATE CONSTRAINT bistore_rel_%s_id IF NOT EXISTS"
                     " FOR ()-[r:`%s`]-() REQUIRE r.id IS UNIQUE",
                     type, type);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* ---- repairs: statements of their own, whose row counts are not checked ---- */

int cypher_delete_elements(struct cypher_batch *b, bool entity, json_t *eids)
{
    json_t *params = json_pack("{s:o}", "eids", eids);
    return params ? cypher_add_raw(b,
                                   entity ? "UNWIND $eids AS e MATCH (n) WHERE elementId(n) = e"
                                            " DETACH DELETE n"
                                          : "UNWIND $eids AS e MATCH ()-[r]->() WHERE elementId(r)"
                                            " = e DELETE r",
                                   params)
                  : -1;
}

int cypher_create_entity_node(struct cypher_batch *b, const char *type, json_t *map)
{
    /* the label travels as a parameter too (dynamic labels, Neo4j 5.26) */
    json_t *params = json_pack("{s:o, s:s}", "map", map, "type", type);
    return params ? cypher_add_raw(b, "CREATE (n:Entity) SET n = $map, n:$($type)", params) : -1;
}

int cypher_rewrite_entity_node(struct cypher_batch *b, const char *eid, const char *type,
                               json_t *map)
{
    json_t *params = json_pack("{s:s, s:o, s:s}", "eid", eid, "map", map, "type", type);
    return params ? cypher_add_raw(b,
                                   "MATCH (n) WHERE elementId(n) = $eid"
                                   " REMOVE n:$([l IN labels(n) WHERE l <> 'Entity'])"
                                   " SET n = $map, n:$($type)",
                                   params)
                  : -1;
}

int cypher_create_relationship_edge(struct cypher_batch *b, const char *type, const char *source,
                                    const char *target, json_t *map)
{
    BS_ASSERT(model_valid_name(type)); /* it goes into the text */
    char text[256];
    snprintf(text, sizeof text,
             "MATCH (a:Entity {id: $source}) MATCH (b:Entity {id: $target})"
             " CREATE (a)-[r:`%s`]->(b) SET r = $map",
             type);
    json_t *params = json_pack("{s:s, s:s, s:o}", "source", source, "target", target, "map", map);
    return params ? cypher_add_raw(b, text, params) : -1;
}

int cypher_adopt_element(struct cypher_batch *b, bool entity, const char *eid, const char *id,
                         int64_t version, const char *hash)
{
    /* The bookkeeping of the row as a Neo4j map (canon.h); a part a damaged
     * hash or id lacks is null, so that `+=` removes a stale one. */
    json_t *none = json_object();
    json_t *map = !none    ? NULL
                  : entity ? canon_neo4j_entity_map(id, none, version, hash)
                           : canon_neo4j_map(id, none, version, hash);
    json_decref(none);
    static const char *const parts[] = {"_h1", "_h2", "_hid"};
    for (size_t i = 0; map && i < (entity ? 3u : 2u); i++)
        if (!json_object_get(map, parts[i]) && json_object_set_new(map, parts[i], json_null()) != 0)
            json_decref(map), map = NULL;
    json_t *params = map ? json_pack("{s:s, s:o}", "eid", eid, "map", map) : NULL;
    return params ? cypher_add_raw(b,
                                   entity ? "MATCH (n) WHERE elementId(n) = $eid SET n += $map"
                                          : "MATCH ()-[r]->() WHERE elementId(r) = $eid"
                                            " SET r += $map",
                                   params)
                  : -1;
}

/* ---- reads of the protocol's own ---- */

int cypher_add_watermark_count(json_t *statements, const char *store_id)
{
    json_t *params = json_pack("{s:s}", "store", store_id);
    if (!params)
        return -1;
    return neo4j_add_statement(
        statements, "MATCH (w:" WATERMARK_LABEL " {store: $store}) RETURN count(w)", params);
}

/* The fence's statements: each waits for the watermark's lock (terminating
 * its holders is the caller's part) and moves the epoch on. A promotion
 * (bistore promote) takes the epoch past the watermark's and the file's;
 * a standby's (strict) only from the epoch its copy has, after the lock,
 * so that of two standbys only one gets the next epoch, and one that
 * follows an older replica gets none; it needs the watermark to exist. */
#define FENCE_TEXT                                                                                 \
    "MERGE (w:" WATERMARK_LABEL " {store: $store}) ON CREATE SET w.seq = 0"                        \
    " SET w._lock = true, w.epoch = CASE WHEN coalesce(w.epoch, 0) >= $epoch"                      \
    " THEN coalesce(w.epoch, 0) + 1 ELSE $epoch + 1 END RETURN w.epoch, w.seq, true"
#define FENCE_STRICT_TEXT                                                                          \
    "MATCH (w:" WATERMARK_LABEL " {store: $store}) SET w._lock = true"                             \
    " WITH w, coalesce(w.epoch, 0) = $epoch AS current"                                            \
    " SET w.epoch = CASE WHEN current THEN $epoch + 1 ELSE w.epoch END"                            \
    " RETURN w.epoch, w.seq, current"

int cypher_add_watermark_fence(json_t *statements, const char *store_id, int64_t file_epoch,
                               bool strict)
{
    json_t *params = json_pack("{s:s, s:I}", "store", store_id, "epoch", (json_int_t)file_epoch);
    return params ? neo4j_add_statement(statements, strict ? FENCE_STRICT_TEXT : FENCE_TEXT, params)
                  : -1;
}

int cypher_add_fence_blockers(json_t *statements, bool strict)
{
    /* Neo4j names a waiting transaction's blockers in its status:
     * "Blocked by: [neo4j-transaction-3501, ...]". */
    json_t *params = json_pack("{s:s}", "text", strict ? FENCE_STRICT_TEXT : FENCE_TEXT);
    return params ? neo4j_add_statement(statements,
                                        "SHOW TRANSACTIONS YIELD currentQuery, status"
                                        " WHERE currentQuery = $text AND status STARTS WITH "
                                        "'Blocked by' RETURN status",
                                        params)
                  : -1;
}

int cypher_add_terminate(json_t *statements, json_t *ids)
{
    json_t *params = json_pack("{s:o}", "ids", ids);
    return params ? neo4j_add_statement(statements, "TERMINATE TRANSACTIONS $ids", params) : -1;
}

int cypher_add_watermark_read(json_t *statements, const char *store_id)
{
    json_t *params = json_pack("{s:s}", "store", store_id);
    if (!params)
        return -1;
    return neo4j_add_statement(
        statements, "MATCH (w:" WATERMARK_LABEL " {store: $store}) RETURN w.seq", params);
}
