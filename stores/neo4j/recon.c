/* Reconciliation's reads of Neo4j (stores/neo4j/recon.h). */
#include "stores/neo4j/recon.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"

#define ENTITY_RETURN_DEEP "n.id, n._v, n._h, elementId(n), labels(n), properties(n)"
#define ENTITY_RETURN "n.id, n._v, n._h, elementId(n)"
#define ENTITY_RETURN_PAGE "n.id, n._v, n._h, null"
#define REL_RETURN_DEEP "r.id, r._v, r._h, elementId(r), type(r), a.id, b.id, properties(r)"
#define REL_RETURN "r.id, r._v, r._h, elementId(r), type(r), a.id, b.id"
#define REL_RETURN_PAGE "r.id, r._v, r._h, null, type(r), a.id, b.id"

/* Room for a quoted type: NAME-sized types and far longer ones from Neo4j. */
#define QUOTED_MAX 300
#define TEXT_MAX 512

static int oom(struct bs_error *err)
{
    bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
    return -1;
}

/* Runs one read statement; the result is r's (clear it). */
static int query(struct neo4j_client *c, const char *text, json_t *params, struct neo4j_result *r,
                 const char *what, struct bs_error *err)
{
    json_t *stmts = json_array();
    if (!stmts || neo4j_add_statement(stmts, text, params) != 0) {
        json_decref(stmts);
        return oom(err);
    }
    enum neo4j_status status = neo4j_autocommit(c, stmts, r);
    json_decref(stmts);
    if (status == NEO4J_OK)
        return 0;
    bs_error_set(err, r->status == NEO4J_UNAVAILABLE ? BS_NEO4J_UNAVAILABLE : BS_NEO4J_ERROR,
                 "Neo4j (%s): %s %s", what, r->code, r->message);
    return -1;
}

/* A relationship type as a Cypher identifier: backticks, with any backtick
 * inside doubled (the type comes from Neo4j itself, still quoted safely). */
static int quote_type(const char *type, char *out, size_t cap, struct bs_error *err)
{
    size_t o = 0;
    out[o++] = '`';
    for (const char *p = type; *p; p++) {
        if (o + 3 >= cap)
            return bs_error_set(err, BS_NEO4J_ERROR, "relationship type too long"), -1;
        if (*p == '`')
            out[o++] = '`';
        out[o++] = *p;
    }
    out[o++] = '`';
    out[o] = '\0';
    return 0;
}

static json_t *entity_row(json_t *cells)
{
    json_t *row = json_pack("{s:O, s:O, s:O, s:O}", "id", json_array_get(cells, 0), "_v",
                            json_array_get(cells, 1), "_h", json_array_get(cells, 2), "element_id",
                            json_array_get(cells, 3));
    if (row && json_array_size(cells) > 4) {
        json_object_set(row, "labels", json_array_get(cells, 4));
        json_object_set(row, "properties", json_array_get(cells, 5));
    }
    return row;
}

static json_t *relationship_row(json_t *cells)
{
    json_t *row =
        json_pack("{s:O, s:O, s:O, s:O, s:O, s:O, s:O}", "id", json_array_get(cells, 0), "_v",
                  json_array_get(cells, 1), "_h", json_array_get(cells, 2), "element_id",
                  json_array_get(cells, 3), "type", json_array_get(cells, 4), "source",
                  json_array_get(cells, 5), "target", json_array_get(cells, 6));
    if (row && json_array_size(cells) > 7)
        json_object_set(row, "properties", json_array_get(cells, 7));
    return row;
}

/* The cells of row i of the first statement's result. */
static json_t *cells_of(const struct neo4j_result *r, size_t i)
{
    json_t *data = json_object_get(json_array_get(r->results, 0), "data");
    return json_object_get(json_array_get(data, i), "row");
}

int neo4j_scan_page(struct neo4j_client *c, const char *type, bool deep, const char *after,
                    size_t skip, int limit, json_t *page, size_t *rows, struct bs_error *err)
{
    char text[TEXT_MAX], quoted[QUOTED_MAX];
    if (type) {
        if (quote_type(type, quoted, sizeof quoted, err) != 0)
            return -1;
        snprintf(text, sizeof text,
                 "MATCH (a:Entity)-[r:%s]->(b:Entity) WHERE r.id >= $after RETURN %s"
                 " ORDER BY r.id LIMIT $limit",
                 quoted, deep ? REL_RETURN_DEEP : REL_RETURN_PAGE);
    } else {
        snprintf(text, sizeof text,
                 "MATCH (n:Entity) WHERE n.id >= $after RETURN %s ORDER BY n.id LIMIT $limit",
                 deep ? ENTITY_RETURN_DEEP : ENTITY_RETURN_PAGE);
    }
    struct neo4j_result r = {0};
    json_t *params =
        json_pack("{s:s, s:I}", "after", after, "limit", (json_int_t)limit + (json_int_t)skip);
    int rc = query(c, text, params, &r, "scan", err);
    *rows = rc == 0 ? neo4j_row_count(&r, 0) : 0;
    for (size_t i = skip; i < *rows && rc == 0; i++) {
        json_t *row = type ? relationship_row(cells_of(&r, i)) : entity_row(cells_of(&r, i));
        if (!row || json_array_append_new(page, row) != 0)
            rc = oom(err);
    }
    neo4j_result_clear(&r);
    return rc;
}

int neo4j_scan_missing_ids(struct neo4j_client *c, const char *type, int limit, json_t *items,
                           struct bs_error *err)
{
    char text[TEXT_MAX], quoted[QUOTED_MAX];
    if (type) {
        if (quote_type(type, quoted, sizeof quoted, err) != 0)
            return -1;
        snprintf(text, sizeof text,
                 "MATCH (a:Entity)-[r:%s]->(b:Entity) WHERE r.id IS NULL OR NOT r.id IS :: STRING"
                 " RETURN elementId(r), type(r), a.id, b.id, properties(r) LIMIT %d",
                 quoted, limit);
    } else {
        snprintf(text, sizeof text,
                 "MATCH (n:Entity) WHERE n.id IS NULL OR NOT n.id IS :: STRING"
                 " RETURN elementId(n), labels(n), properties(n) LIMIT %d",
                 limit);
    }
    struct neo4j_result r = {0};
    int rc = query(c, text, NULL, &r, "missing ids", err);
    size_t rows = rc == 0 ? neo4j_row_count(&r, 0) : 0;
    for (size_t i = 0; i < rows && rc == 0; i++) {
        json_t *item =
            type ? json_pack("{s:O, s:O, s:O, s:O, s:O}", "element_id", neo4j_cell(&r, 0, i, 0),
                             "type", neo4j_cell(&r, 0, i, 1), "source", neo4j_cell(&r, 0, i, 2),
                             "target", neo4j_cell(&r, 0, i, 3), "properties",
                             neo4j_cell(&r, 0, i, 4))
                 : json_pack("{s:O, s:O, s:O}", "element_id", neo4j_cell(&r, 0, i, 0), "labels",
                             neo4j_cell(&r, 0, i, 1), "properties", neo4j_cell(&r, 0, i, 2));
        if (!item || json_array_append_new(items, item) != 0)
            rc = oom(err);
    }
    neo4j_result_clear(&r);
    return rc;
}

int neo4j_scan_relationship_types(struct neo4j_client *c, json_t *types, struct bs_error *err)
{
    struct neo4j_result r = {0};
    int rc = query(c, "CALL db.relationshipTypes() YIELD relationshipType RETURN relationshipType",
                   NULL, &r, "relationship types", err);
    for (size_t i = 0; rc == 0 && i < neo4j_row_count(&r, 0); i++) {
        json_t *t = neo4j_cell(&r, 0, i, 0);
        bool known = false;
        size_t j;
        json_t *u;
        json_array_foreach (types, j, u)
            known = known || json_equal(t, u);
        if (!known && json_is_string(t))
            json_array_append(types, t);
    }
    neo4j_result_clear(&r);
    return rc;
}

/* A count Neo4j answers from its count store. */
static int count(struct neo4j_client *c, const char *text, int64_t *n, struct bs_error *err)
{
    struct neo4j_result r = {0};
    int rc = query(c, text, NULL, &r, "counts", err);
    if (rc == 0)
        *n = json_integer_value(neo4j_cell(&r, 0, 0, 0));
    neo4j_result_clear(&r);
    return rc;
}

int neo4j_scan_count_entities(struct neo4j_client *c, int64_t *n, struct bs_error *err)
{
    return count(c, "MATCH (n:Entity) RETURN count(n)", n, err);
}

int neo4j_scan_count_relationships(struct neo4j_client *c, const char *type, int64_t *n,
                                   struct bs_error *err)
{
    if (!type)
        return count(c, "MATCH (:Entity)-[r]->() RETURN count(r)", n, err);
    char text[TEXT_MAX], quoted[QUOTED_MAX];
    if (quote_type(type, quoted, sizeof quoted, err) != 0)
        return -1;
    snprintf(text, sizeof text, "MATCH (:Entity)-[r:%s]->() RETURN count(r)", quoted);
    return count(c, text, n, err);
}

int neo4j_scan_reread(struct neo4j_client *c, bool entity, const char *type, bool deep, json_t *ids,
                      json_t **by_id, struct bs_error *err)
{
    char text[TEXT_MAX], quoted[QUOTED_MAX];
    *by_id = NULL;
    if (entity) {
        snprintf(text, sizeof text, "UNWIND $ids AS i MATCH (n:Entity {id: i}) RETURN %s",
                 deep ? ENTITY_RETURN_DEEP : ENTITY_RETURN);
    } else {
        if (quote_type(type, quoted, sizeof quoted, err) != 0)
            return -1;
        snprintf(text, sizeof text,
                 "UNWIND $ids AS i MATCH (a:Entity)-[r:%s {id: i}]->(b:Entity) RETURN %s", quoted,
                 deep ? REL_RETURN_DEEP : REL_RETURN);
    }
    struct neo4j_result r = {0};
    if (query(c, text, json_pack("{s:O}", "ids", ids), &r, "re-read", err) != 0) {
        neo4j_result_clear(&r);
        return -1;
    }
    *by_id = json_object();
    for (size_t i = 0; *by_id && i < neo4j_row_count(&r, 0); i++) {
        json_t *row = entity ? entity_row(cells_of(&r, i)) : relationship_row(cells_of(&r, i));
        const char *id = row ? json_string_value(json_object_get(row, "id")) : NULL;
        if (!id) {
            json_decref(row);
            continue;
        }
        json_t *list = json_object_get(*by_id, id);
        if (!list) {
            list = json_array();
            json_object_set_new(*by_id, id, list);
        }
        json_array_append_new(list, row);
    }
    neo4j_result_clear(&r);
    return *by_id ? 0 : oom(err);
}

enum neo4j_status neo4j_entity_nodes(struct neo4j_client *c, const char *id, json_t **nodes,
                                     struct neo4j_result *r)
{
    *nodes = NULL;
    json_t *stmts = json_array();
    if (!stmts ||
        neo4j_add_statement(stmts, "MATCH (n:Entity {id: $id}) RETURN labels(n), properties(n)",
                            json_pack("{s:s}", "id", id)) != 0) {
        json_decref(stmts);
        neo4j_result_clear(r);
        r->status = NEO4J_DATABASE_ERROR;
        snprintf(r->message, sizeof r->message, "out of memory");
        return r->status;
    }
    enum neo4j_status status = neo4j_autocommit(c, stmts, r);
    json_decref(stmts);
    if (status != NEO4J_OK)
        return status;
    *nodes = json_array();
    for (size_t i = 0; *nodes && i < neo4j_row_count(r, 0); i++)
        json_array_append_new(*nodes, json_pack("{s:O, s:O}", "labels", neo4j_cell(r, 0, i, 0),
                                                "properties", neo4j_cell(r, 0, i, 1)));
    return status;
}
