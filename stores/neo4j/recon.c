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

/* The MATCH and WHERE of a scan: the entities (relationships of the quoted
 * type) with ids from $after, before $before when bounded. */
static int scan_match(char *text, size_t cap, const char *quoted, bool bounded, const char *rest,
                      struct bs_error *err)
{
    int n = quoted ? snprintf(text, cap,
                              "MATCH (a:Entity)-[r:%s]->(b:Entity) WHERE r.id >= $after%s %s",
                              quoted, bounded ? " AND r.id < $before" : "", rest)
                   : snprintf(text, cap, "MATCH (n:Entity) WHERE n.id >= $after%s %s",
                              bounded ? " AND n.id < $before" : "", rest);
    if (n < 0 || (size_t)n >= cap) {
        bs_error_set(err, BS_NEO4J_ERROR, "relationship type too long");
        return -1;
    }
    return 0;
}

int neo4j_scan_page(struct neo4j_client *c, const char *type, bool deep,
                    const struct neo4j_scan_at *at, int limit, json_t *page, size_t *rows,
                    struct bs_error *err)
{
    char text[TEXT_MAX * 2], quoted[QUOTED_MAX], rest[128];
    if (type && quote_type(type, quoted, sizeof quoted, err) != 0)
        return -1;
    snprintf(rest, sizeof rest, "RETURN %s ORDER BY %s.id LIMIT $limit",
             type ? (deep ? REL_RETURN_DEEP : REL_RETURN_PAGE)
                  : (deep ? ENTITY_RETURN_DEEP : ENTITY_RETURN_PAGE),
             type ? "r" : "n");
    if (scan_match(text, sizeof text, type ? quoted : NULL, at->before != NULL, rest, err) != 0)
        return -1;
    struct neo4j_result r = {0};
    json_t *params = json_pack("{s:s, s:s?, s:I}", "after", at->after, "before", at->before,
                               "limit", (json_int_t)limit + (json_int_t)at->skip);
    int rc = query(c, text, params, &r, "scan", err);
    *rows = rc == 0 ? neo4j_row_count(&r, 0) : 0;
    for (size_t i = at->skip; i < *rows && rc == 0; i++) {
        json_t *row = type ? relationship_row(cells_of(&r, i)) : entity_row(cells_of(&r, i));
        if (!row || json_array_append_new(page, row) != 0)
            rc = oom(err);
    }
    neo4j_result_clear(&r);
    return rc;
}

/* ---- range checksums (stores/reconcile/ranges.c) ---- */

/* A record's part of a checksum: its _h1, _h2 and _v when each is an
 * integer, or counted as malformed (a range holding one never checks equal,
 * so its rows are compared one by one); a relationship's also the _hid of
 * its ends. */
#define SUM_INT(x) "sum(CASE WHEN " x " IS :: INTEGER NOT NULL THEN " x " ELSE 0 END)"
#define SUMS_RETURN(x, ends)                                                                       \
    "RETURN count(" x ") AS c, count(CASE WHEN " x "._h1 IS :: INTEGER NOT NULL AND " x            \
    "._h2 IS :: INTEGER NOT NULL AND " x "._v IS :: INTEGER NOT NULL THEN 1 END) AS ok, " SUM_INT( \
        x "._h1") " AS h1, " SUM_INT(x "._h2") " AS h2, " SUM_INT(x "._v") " AS v, " ends
/* Aggregates only: one row even for an empty range. */
#define ENTITY_SUMS SUMS_RETURN("n", "sum(0) AS s, sum(0) AS t")
#define REL_SUMS SUMS_RETURN("r", SUM_INT("a._hid") " AS s, " SUM_INT("b._hid") " AS t")

int neo4j_range_sums(struct neo4j_client *c, const char *type, json_t *ranges,
                     struct canon_sums *out, struct bs_error *err)
{
    char text[TEXT_MAX * 4], quoted[QUOTED_MAX];
    if (type && quote_type(type, quoted, sizeof quoted, err) != 0)
        return -1;
    /* One request for every range: bounded ones through one UNWIND (each an
     * index seek between its keys), an open last one on its own. */
    size_t n = json_array_size(ranges);
    bool open_end = n > 0 && json_is_null(json_array_get(json_array_get(ranges, n - 1), 1));
    json_t *bounded = json_array(), *stmts = json_array();
    int rc = bounded && stmts ? 0 : oom(err);
    for (size_t i = 0; rc == 0 && i + (open_end ? 1 : 0) < n; i++) {
        json_t *g = json_array_get(ranges, i);
        if (json_array_append_new(bounded, json_pack("{s:O, s:O}", "lo", json_array_get(g, 0), "hi",
                                                     json_array_get(g, 1))) != 0)
            rc = oom(err);
    }
    if (rc == 0 && json_array_size(bounded) > 0) {
        char match[TEXT_MAX];
        snprintf(match, sizeof match, type ? "(a:Entity)-[r:%s]->(b:Entity)" : "(n:Entity)%s",
                 type ? quoted : "");
        int len =
            snprintf(text, sizeof text,
                     "UNWIND $ranges AS g CALL (g) { MATCH %s WHERE %s.id >= g.lo AND"
                     " %s.id < g.hi %s } RETURN c, ok, h1, h2, v, s, t",
                     match, type ? "r" : "n", type ? "r" : "n", type ? REL_SUMS : ENTITY_SUMS);
        if (len < 0 || (size_t)len >= sizeof text) {
            bs_error_set(err, BS_NEO4J_ERROR, "relationship type too long");
            rc = -1;
        } else if (neo4j_add_statement(stmts, text, json_pack("{s:O}", "ranges", bounded)) != 0)
            rc = oom(err);
    }
    if (rc == 0 && open_end) {
        json_t *lo = json_array_get(json_array_get(ranges, n - 1), 0);
        rc = scan_match(text, sizeof text, type ? quoted : NULL, false,
                        type ? REL_SUMS : ENTITY_SUMS, err);
        if (rc == 0 && neo4j_add_statement(stmts, text, json_pack("{s:O}", "after", lo)) != 0)
            rc = oom(err);
    }
    json_decref(bounded);
    struct neo4j_result r = {0};
    if (rc == 0 && json_array_size(stmts) > 0) {
        enum neo4j_status status = neo4j_autocommit(c, stmts, &r);
        if (status != NEO4J_OK) {
            bs_error_set(err, r.status == NEO4J_UNAVAILABLE ? BS_NEO4J_UNAVAILABLE : BS_NEO4J_ERROR,
                         "Neo4j (range checksum): %s %s", r.code, r.message);
            rc = -1;
        }
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        bool last_open = open_end && i == n - 1;
        size_t st = last_open && json_array_size(stmts) > 1 ? 1 : 0, row = last_open ? 0 : i;
        if (row >= neo4j_row_count(&r, st)) {
            bs_error_set(err, BS_NEO4J_ERROR, "Neo4j (range checksum): rows missing");
            rc = -1;
            break;
        }
        int64_t count = json_integer_value(neo4j_cell(&r, st, row, 0));
        int64_t ok = json_integer_value(neo4j_cell(&r, st, row, 1));
        out[i].count = count;
        out[i].h1 = json_integer_value(neo4j_cell(&r, st, row, 2));
        out[i].h2 = json_integer_value(neo4j_cell(&r, st, row, 3));
        out[i].version = json_integer_value(neo4j_cell(&r, st, row, 4));
        out[i].source = json_integer_value(neo4j_cell(&r, st, row, 5));
        out[i].target = json_integer_value(neo4j_cell(&r, st, row, 6));
        if (ok != count)
            out[i].h1 = -1; /* no sum of 30-bit parts is negative: never equal */
    }
    neo4j_result_clear(&r);
    json_decref(stmts);
    return rc;
}

int neo4j_range_keys(struct neo4j_client *c, const char *type, const char *lo, const char *hi,
                     int64_t every, json_t *keys, struct bs_error *err)
{
    char text[TEXT_MAX * 2], quoted[QUOTED_MAX], rest[200];
    if (type && quote_type(type, quoted, sizeof quoted, err) != 0)
        return -1;
    /* The ids in order, every every-th one kept: Neo4j holds the range's
     * ids for the statement (a range is split only when it is small). */
    snprintf(rest, sizeof rest,
             "WITH %s.id AS id ORDER BY id WITH collect(id) AS ids"
             " UNWIND range($every, size(ids) - 1, $every) AS k RETURN ids[k]",
             type ? "r" : "n");
    if (scan_match(text, sizeof text, type ? quoted : NULL, hi != NULL, rest, err) != 0)
        return -1;
    struct neo4j_result r = {0};
    int rc = query(c, text,
                   json_pack("{s:s, s:s?, s:I}", "after", lo, "before", hi, "every",
                             (json_int_t)(every > 0 ? every : 1)),
                   &r, "range keys", err);
    for (size_t i = 0; rc == 0 && i < neo4j_row_count(&r, 0); i++)
        if (json_array_append(keys, neo4j_cell(&r, 0, i, 0)) != 0)
            rc = oom(err);
    neo4j_result_clear(&r);
    return rc;
}

/* ---- the hash parts of records written before them (`bistore migrate`) ---- */

/* The value of hex digits [from, from + 8) of x._h, through $hex (a map of
 * digit to value; null for anything else). */
#define HEX8(x, from)                                                                              \
    "reduce(a = 0, c IN split(substring(" x "._h, " from ", 8), '') | a * 16 + $hex[c])"

int neo4j_migrate_parts(struct neo4j_client *c, const char *type, const char *after, int limit,
                        char **last, int64_t *seen, int64_t *set, struct bs_error *err)
{
    char text[TEXT_MAX * 4], quoted[QUOTED_MAX];
    if (type && quote_type(type, quoted, sizeof quoted, err) != 0)
        return -1;
    const char *x = type ? "r" : "n";
    char match[TEXT_MAX];
    snprintf(match, sizeof match, type ? "()-[r:%s]->()" : "(n:Entity)%s", type ? quoted : "");
    /* A batch in id order; of it, the records whose parts are missing get
     * them from their _h (a node also its _hid from its id). The first SET
     * takes the record's write lock, so the _h read after it is the latest
     * (a gateway write that commits in between sets _h with its parts, and
     * this one then agrees). */
    int len = snprintf(
        text, sizeof text,
        "MATCH %s WHERE %s.id > $after WITH %s ORDER BY %s.id LIMIT $limit"
        " WITH collect(%s) AS xs CALL (xs) { UNWIND xs AS x"
        " WITH x, x._h IS :: STRING NOT NULL AND size(x._h) = 16 AS good"
        " WHERE (good AND NOT (x._h1 IS :: INTEGER NOT NULL AND x._h2 IS :: INTEGER NOT NULL))"
        " %s SET x._h1 = -1"
        " WITH x, CASE WHEN good THEN " HEX8(
            "x",
            "0") " END AS hi,"
                 " CASE WHEN good THEN " HEX8(
                     "x",
                     "8") " END AS lo"
                          " SET x._h1 = hi / 4, x._h2 = (hi %% 4) * 268435456 + lo / 16%s"
                          " RETURN count(x) AS changed } RETURN size(xs), last(xs).id, changed",
        match, x, x, x, x, type ? "" : "OR NOT x._hid IS :: INTEGER NOT NULL",
        type ? ""
             : ", x._hid = CASE WHEN size(x.id) > 0 THEN reduce(k = 0, c IN split(x.id, '') |"
               " (k * 131 + $alphabet[c]) % 1073741824) END");
    if (len < 0 || (size_t)len >= sizeof text) {
        bs_error_set(err, BS_NEO4J_ERROR, "relationship type too long");
        return -1;
    }
    json_t *hex = json_object(), *alphabet = json_object();
    for (int d = 0; hex && d < 16; d++) {
        char k[2] = {"0123456789abcdef"[d], '\0'};
        if (json_object_set_new(hex, k, json_integer(d)) != 0)
            json_decref(hex), hex = NULL;
    }
    for (size_t i = 0; alphabet && i < sizeof CANON_ID_ALPHABET - 1; i++) {
        char k[2] = {CANON_ID_ALPHABET[i], '\0'};
        if (json_object_set_new(alphabet, k, json_integer((json_int_t)i + 1)) != 0)
            json_decref(alphabet), alphabet = NULL;
    }
    if (!hex || !alphabet) {
        json_decref(hex);
        json_decref(alphabet);
        return oom(err);
    }
    json_t *stmts = json_array();
    if (!stmts || neo4j_add_statement(stmts, text,
                                      json_pack("{s:s, s:i, s:o, s:o}", "after", after, "limit",
                                                limit, "hex", hex, "alphabet", alphabet)) != 0) {
        json_decref(stmts);
        return oom(err);
    }
    struct neo4j_result r = {0};
    /* A write: in a transaction of its own (autocommit), retried by nobody:
     * the caller resumes from the last batch. */
    enum neo4j_status status = neo4j_autocommit(c, stmts, &r);
    json_decref(stmts);
    int rc = 0;
    if (status != NEO4J_OK) {
        bs_error_set(err, r.status == NEO4J_UNAVAILABLE ? BS_NEO4J_UNAVAILABLE : BS_NEO4J_ERROR,
                     "Neo4j (migrate): %s %s", r.code, r.message);
        rc = -1;
    } else {
        *seen = json_integer_value(neo4j_cell(&r, 0, 0, 0));
        *set = json_integer_value(neo4j_cell(&r, 0, 0, 2));
        const char *id = json_string_value(neo4j_cell(&r, 0, 0, 1));
        *last = id ? strdup(id) : NULL;
        if (id && !*last)
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
