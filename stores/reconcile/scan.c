/*
 * The reconciliation scan: both stores streamed in id order, page by page,
 * and merge-joined (see stores/reconcile.h). Memory: two pages and one
 * batch of candidates, whatever the size of the stores.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "stores/model/canon.h"
#include "stores/model/model.h"
#include "stores/reconcile/internal.h"

#define PAGE_FAST 5000
#define PAGE_DEEP 1000
#define MISSING_ID_LIMIT 10000

/* ---- small helpers ---- */

struct neo4j_config recon_neo4j_config(const struct neo4j_config *base)
{
    struct neo4j_config c = *base;
    if (c.timeout_ms < RECON_NEO4J_TIMEOUT_MS)
        c.timeout_ms = RECON_NEO4J_TIMEOUT_MS;
    return c;
}

static int oom(struct bs_error *err)
{
    bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
    return -1;
}

static int neo4j_fail(struct bs_error *err, const struct neo4j_result *r, const char *what)
{
    bs_error_set(err, r->status == NEO4J_UNAVAILABLE ? BS_NEO4J_UNAVAILABLE : BS_NEO4J_ERROR,
                 "Neo4j (%s): %s %s", what, r->code, r->message);
    return -1;
}

/* Runs one read statement; the result is r's (clear it). */
static int neo4j_query(struct neo4j_client *n4, const char *text, json_t *params,
                       struct neo4j_result *r, const char *what, struct bs_error *err)
{
    json_t *stmts = json_array();
    if (!stmts || neo4j_add_statement(stmts, text, params) != 0) {
        json_decref(stmts);
        return oom(err);
    }
    enum neo4j_status st = neo4j_autocommit(n4, stmts, r);
    json_decref(stmts);
    return st == NEO4J_OK ? 0 : neo4j_fail(err, r, what);
}

/* A relationship type as a Cypher identifier: backticks, with any backtick
 * inside doubled (the type comes from Neo4j itself, still quoted safely). */
static int quote_type(const char *type, char *out, size_t cap)
{
    size_t o = 0;
    if (cap < 3)
        return -1;
    out[o++] = '`';
    for (const char *p = type; *p; p++) {
        if (o + 3 >= cap)
            return -1;
        if (*p == '`')
            out[o++] = '`';
        out[o++] = *p;
    }
    out[o++] = '`';
    out[o] = '\0';
    return 0;
}

static const char *row_id(const json_t *row)
{
    return json_string_value(json_object_get(row, "id"));
}

static json_t *sqlite_text_json(sqlite3_stmt *s, int col)
{
    const char *t = (const char *)sqlite3_column_text(s, col);
    return t ? json_loads(t, 0, NULL) : NULL;
}

/* ---- SQLite rows ---- */

static json_t *sqlite_entity_row(sqlite3_stmt *s, bool deep)
{
    json_t *row = json_pack(
        "{s:s, s:s, s:I, s:s}", "id", sqlite3_column_text(s, 0), "type", sqlite3_column_text(s, 1),
        "version", (json_int_t)sqlite3_column_int64(s, 2), "hash", sqlite3_column_text(s, 3));
    if (row && deep) {
        json_t *props = sqlite_text_json(s, 4);
        json_object_set_new(row, "properties", props ? props : json_null());
    }
    return row;
}

static json_t *sqlite_rel_row(sqlite3_stmt *s, bool deep)
{
    json_t *row =
        json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "id", sqlite3_column_text(s, 0), "type",
                  sqlite3_column_text(s, 1), "source", sqlite3_column_text(s, 2), "target",
                  sqlite3_column_text(s, 3), "version", (json_int_t)sqlite3_column_int64(s, 4),
                  "hash", sqlite3_column_text(s, 5));
    if (row && deep) {
        json_t *props = sqlite_text_json(s, 6);
        json_object_set_new(row, "properties", props ? props : json_null());
    }
    return row;
}

#define ENTITY_COLS "id, type, version, hash, properties"
#define REL_COLS "id, type, source_id, target_id, version, hash, properties"

/* ---- Neo4j rows ---- */

#define N_ENTITY_RETURN "n.id, n._v, n._h, elementId(n), labels(n), properties(n)"
#define N_ENTITY_RETURN_FAST "n.id, n._v, n._h, elementId(n)"
#define N_REL_RETURN "r.id, r._v, r._h, elementId(r), type(r), a.id, b.id, properties(r)"
#define N_REL_RETURN_FAST "r.id, r._v, r._h, elementId(r), type(r), a.id, b.id"
/* The fast scan leaves element ids out (half the bytes of a page): only
 * findings need them, and findings are read again before they count. */
#define N_ENTITY_SCAN_FAST "n.id, n._v, n._h, null"
#define N_REL_SCAN_FAST "r.id, r._v, r._h, null, type(r), a.id, b.id"

static json_t *neo4j_entity_row(json_t *cells)
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

static json_t *neo4j_rel_row(json_t *cells)
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

/* ---- classification ---- */

static bool same_canon(const json_t *a, const json_t *b)
{
    char *ca = json_canon_dumps(a), *cb = json_canon_dumps(b);
    bool eq = ca && cb && strcmp(ca, cb) == 0;
    free(ca);
    free(cb);
    return eq;
}

static bool hash_is(const json_t *record, const char *expected)
{
    char h[HASH_STR_LEN];
    return record && expected && canon_hash(record, h) == 0 && strcmp(h, expected) == 0;
}

/* The one non-Entity label of a Neo4j entity row, or NULL. */
static const char *entity_type_of(const json_t *labels)
{
    const char *type = NULL;
    size_t i, others = 0;
    json_t *l;
    json_array_foreach (labels, i, l) {
        const char *s = json_string_value(l);
        if (s && strcmp(s, "Entity") != 0) {
            type = s;
            others++;
        }
    }
    return others == 1 ? type : NULL;
}

static bool entity_agrees(const json_t *s, const json_t *n, bool deep)
{
    if (!json_equal(json_object_get(s, "version"), json_object_get(n, "_v")) ||
        !json_equal(json_object_get(s, "hash"), json_object_get(n, "_h")))
        return false;
    if (!deep)
        return true;
    const char *id = row_id(s);
    const char *type = json_string_value(json_object_get(s, "type"));
    json_int_t v = json_integer_value(json_object_get(s, "version"));
    const char *hash = json_string_value(json_object_get(s, "hash"));
    json_t *sprops = json_object_get(s, "properties");
    json_t *rec = json_is_object(sprops) ? canon_entity_record(id, type, sprops, v) : NULL;
    bool ok = hash_is(rec, hash);
    json_decref(rec);
    const char *ntype = entity_type_of(json_object_get(n, "labels"));
    json_t *nprops = canon_mirrored(json_object_get(n, "properties"));
    ok = ok && ntype && strcmp(ntype, type) == 0 && nprops && same_canon(nprops, sprops);
    rec = ok ? canon_entity_record(id, ntype, nprops, v) : NULL;
    ok = ok && hash_is(rec, json_string_value(json_object_get(n, "_h")));
    json_decref(rec);
    json_decref(nprops);
    return ok;
}

static bool rel_agrees(const json_t *s, const json_t *n, bool deep)
{
    if (!json_equal(json_object_get(s, "version"), json_object_get(n, "_v")) ||
        !json_equal(json_object_get(s, "hash"), json_object_get(n, "_h")) ||
        !json_equal(json_object_get(s, "source"), json_object_get(n, "source")) ||
        !json_equal(json_object_get(s, "target"), json_object_get(n, "target")) ||
        !json_equal(json_object_get(s, "type"), json_object_get(n, "type")))
        return false;
    if (!deep)
        return true;
    const char *id = row_id(s);
    const char *type = json_string_value(json_object_get(s, "type"));
    const char *src = json_string_value(json_object_get(s, "source"));
    const char *dst = json_string_value(json_object_get(s, "target"));
    json_int_t v = json_integer_value(json_object_get(s, "version"));
    const char *hash = json_string_value(json_object_get(s, "hash"));
    json_t *sprops = json_object_get(s, "properties");
    json_t *rec =
        json_is_object(sprops) ? canon_relationship_record(id, type, src, dst, sprops, v) : NULL;
    bool ok = hash_is(rec, hash);
    json_decref(rec);
    json_t *nprops = canon_mirrored(json_object_get(n, "properties"));
    ok = ok && nprops && same_canon(nprops, sprops);
    rec = ok ? canon_relationship_record(id, type, src, dst, nprops, v) : NULL;
    ok = ok && hash_is(rec, json_string_value(json_object_get(n, "_h")));
    json_decref(rec);
    json_decref(nprops);
    return ok;
}

json_t *recon_classify(const json_t *group, bool deep)
{
    const char *object = json_string_value(json_object_get(group, "object"));
    json_t *s = json_object_get(group, "sqlite");
    json_t *ns = json_object_get(group, "neo4j");
    size_t k = json_array_size(ns);
    const char *kind = NULL;
    bool entity = strcmp(object, "entity") == 0;
    if (k > 1)
        kind = "duplicate_id";
    else if (json_is_null(s) || !s)
        kind = k ? "only_in_neo4j" : NULL;
    else if (k == 0)
        kind = "only_in_sqlite";
    else if (!(entity ? entity_agrees(s, json_array_get(ns, 0), deep)
                      : rel_agrees(s, json_array_get(ns, 0), deep)))
        kind = "mismatch";
    if (!kind)
        return NULL;
    json_t *neo = k == 0   ? json_null()
                  : k == 1 ? json_incref(json_array_get(ns, 0))
                           : json_pack("{s:I, s:O}", "count", (json_int_t)k, "nodes", ns);
    return json_pack("{s:s, s:s, s:O, s:O?, s:o, s:s}", "kind", kind, "object", object, "id",
                     json_object_get(group, "id"), "sqlite", s, "neo4j", neo, "action", "none");
}

/* ---- paged cursors over both stores ---- */

struct cursor {
    json_t *page;
    size_t pos;
    bool exhausted;
    char *after; /* last id consumed ("" at the start) */
    size_t skip; /* Neo4j: rows with id == after already consumed */
    bool neo4j;
};

struct scan {
    struct sql_conn *sql;
    struct neo4j_client *n4;
    const struct recon_options *opt;
    const struct recon_hooks *hooks;
    struct recon_summary *sum;
    bool deep;
    int page;
    const char *rel_type; /* the type being scanned, or NULL for entities */
    sqlite3_stmt *q_entities, *q_rels;
    json_t *batch; /* candidates waiting for their re-check */
    int64_t scanned, total;
    int64_t neo4j_entities; /* nodes labelled Entity, from the count store */
};

static int cursor_init(struct cursor *c, bool neo4j)
{
    memset(c, 0, sizeof *c);
    c->neo4j = neo4j;
    c->after = strdup("");
    return c->after ? 0 : -1;
}

static void cursor_free(struct cursor *c)
{
    json_decref(c->page);
    free(c->after);
    memset(c, 0, sizeof *c);
}

static int fetch_sqlite(struct scan *sc, struct cursor *c, struct bs_error *err)
{
    sqlite3_stmt *q = sc->rel_type ? sc->q_rels : sc->q_entities;
    sqlite3_reset(q);
    sqlite3_bind_text(q, 1, c->after, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(q, 2, sc->page);
    if (sc->rel_type)
        sqlite3_bind_text(q, 3, sc->rel_type, -1, SQLITE_TRANSIENT);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        json_t *row = sc->rel_type ? sqlite_rel_row(q, sc->deep) : sqlite_entity_row(q, sc->deep);
        if (!row || json_array_append_new(c->page, row) != 0) {
            sqlite3_reset(q);
            return oom(err);
        }
    }
    sqlite3_reset(q);
    if (rc != SQLITE_DONE)
        return bs_error_set(err, BS_STORAGE_ERROR, "SQLite scan: %s", sqlite3_errmsg(sc->sql->db)),
               -1;
    if (json_array_size(c->page) < (size_t)sc->page)
        c->exhausted = true;
    return 0;
}

static int fetch_neo4j(struct scan *sc, struct cursor *c, struct bs_error *err)
{
    char text[512], quoted[300];
    if (sc->rel_type) {
        if (quote_type(sc->rel_type, quoted, sizeof quoted) != 0)
            return bs_error_set(err, BS_NEO4J_ERROR, "relationship type too long"), -1;
        snprintf(text, sizeof text,
                 "MATCH (a:Entity)-[r:%s]->(b:Entity) WHERE r.id >= $after RETURN %s"
                 " ORDER BY r.id LIMIT $limit",
                 quoted, sc->deep ? N_REL_RETURN : N_REL_SCAN_FAST);
    } else {
        snprintf(text, sizeof text,
                 "MATCH (n:Entity) WHERE n.id >= $after RETURN %s ORDER BY n.id LIMIT $limit",
                 sc->deep ? N_ENTITY_RETURN : N_ENTITY_SCAN_FAST);
    }
    struct neo4j_result r = {0};
    json_t *params =
        json_pack("{s:s, s:I}", "after", c->after, "limit", (json_int_t)(sc->page + (int)c->skip));
    if (neo4j_query(sc->n4, text, params, &r, "scan", err) != 0) {
        neo4j_result_clear(&r);
        return -1;
    }
    size_t rows = neo4j_row_count(&r, 0);
    json_t *data = json_object_get(json_array_get(r.results, 0), "data");
    for (size_t i = c->skip; i < rows; i++) {
        json_t *cells = json_object_get(json_array_get(data, i), "row");
        json_t *row = sc->rel_type ? neo4j_rel_row(cells) : neo4j_entity_row(cells);
        if (!row || json_array_append_new(c->page, row) != 0) {
            neo4j_result_clear(&r);
            return oom(err);
        }
    }
    neo4j_result_clear(&r);
    if (rows < (size_t)sc->page + c->skip)
        c->exhausted = true;
    return 0;
}

/* The next row of c without consuming it; NULL at the end (or on error). */
static json_t *peek(struct scan *sc, struct cursor *c, struct bs_error *err, int *failed)
{
    if (c->page && c->pos < json_array_size(c->page))
        return json_array_get(c->page, c->pos);
    if (c->exhausted)
        return NULL;
    json_decref(c->page);
    c->page = json_array();
    c->pos = 0;
    if (!c->page || (c->neo4j ? fetch_neo4j(sc, c, err) : fetch_sqlite(sc, c, err)) != 0) {
        *failed = 1;
        return NULL;
    }
    return c->pos < json_array_size(c->page) ? json_array_get(c->page, c->pos) : NULL;
}

static int consume(struct cursor *c)
{
    const char *id = row_id(json_array_get(c->page, c->pos));
    c->pos++;
    if (!id)
        return 0;
    if (strcmp(id, c->after) == 0) {
        c->skip++;
        return 0;
    }
    char *copy = strdup(id);
    if (!copy)
        return -1;
    free(c->after);
    c->after = copy;
    c->skip = 1;
    return 0;
}

/* ---- candidates, re-check, findings ---- */

static void count_finding(struct recon_summary *sum, const char *kind)
{
    if (strcmp(kind, "only_in_sqlite") == 0)
        sum->only_in_sqlite++;
    else if (strcmp(kind, "only_in_neo4j") == 0)
        sum->only_in_neo4j++;
    else if (strcmp(kind, "mismatch") == 0)
        sum->mismatched++;
    else if (strcmp(kind, "duplicate_id") == 0)
        sum->duplicate_ids++;
    else if (strcmp(kind, "missing_id") == 0)
        sum->missing_ids++;
}

static int flush_batch(struct scan *sc, struct bs_error *err)
{
    if (json_array_size(sc->batch) == 0)
        return 0;
    json_t *confirmed = NULL;
    int rc = sc->hooks->confirm(sc->hooks->arg, sc->batch, &confirmed, err);
    size_t i;
    json_t *f;
    if (rc == 0)
        json_array_foreach (confirmed, i, f)
            count_finding(sc->sum, json_string_value(json_object_get(f, "kind")));
    json_decref(confirmed);
    json_array_clear(sc->batch);
    return rc;
}

static int add_candidate(struct scan *sc, json_t *finding, struct bs_error *err)
{
    if (!finding)
        return 0;
    if (json_array_append_new(sc->batch, finding) != 0)
        return oom(err);
    return json_array_size(sc->batch) >= RECON_RECHECK_BATCH ? flush_batch(sc, err) : 0;
}

static int progress(struct scan *sc, struct bs_error *err)
{
    if (sc->hooks->progress && (sc->scanned % 1000 == 0) &&
        sc->hooks->progress(sc->hooks->arg, sc->scanned, sc->total) != 0)
        return bs_error_set(err, BS_NEO4J_UNAVAILABLE, "stopped: the gateway is shutting down"), -1;
    return 0;
}

/* Merge-joins the two cursors of the current object kind. */
static int merge(struct scan *sc, int64_t *n_sqlite, int64_t *n_neo4j, struct bs_error *err)
{
    struct cursor s, n;
    if (cursor_init(&s, false) != 0 || cursor_init(&n, true) != 0) {
        cursor_free(&s);
        return oom(err);
    }
    int failed = 0, rc = 0;
    const char *object = sc->rel_type ? "relationship" : "entity";
    for (;;) {
        json_t *srow = peek(sc, &s, err, &failed);
        json_t *nrow = failed ? NULL : peek(sc, &n, err, &failed);
        if (failed || (!srow && !nrow))
            break;
        const char *sid = srow ? row_id(srow) : NULL;
        const char *nid = nrow ? row_id(nrow) : NULL;
        const char *id = !sid ? nid : !nid ? sid : strcmp(sid, nid) <= 0 ? sid : nid;
        json_t *group = json_pack("{s:s, s:s, s:O, s:[]}", "object", object, "id", id, "sqlite",
                                  sid && strcmp(sid, id) == 0 ? srow : json_null(), "neo4j");
        if (!group) {
            rc = oom(err);
            break;
        }
        if (sc->rel_type)
            json_object_set_new(group, "type", json_string(sc->rel_type));
        json_t *nlist = json_object_get(group, "neo4j");
        /* every Neo4j row with this id (more than one: a duplicate) */
        while (nrow && strcmp(row_id(nrow), id) == 0) {
            json_array_append(nlist, nrow);
            (*n_neo4j)++;
            if (consume(&n) != 0) {
                failed = 1;
                oom(err);
                break;
            }
            nrow = peek(sc, &n, err, &failed);
            if (failed)
                break;
        }
        if (!json_is_null(json_object_get(group, "sqlite"))) {
            (*n_sqlite)++;
            if (consume(&s) != 0) {
                failed = 1;
                oom(err);
            }
        }
        if (!failed)
            rc = add_candidate(sc, recon_classify(group, sc->deep), err);
        json_decref(group);
        sc->scanned++;
        if (rc == 0 && !failed)
            rc = progress(sc, err);
        if (failed || rc != 0)
            break;
    }
    cursor_free(&s);
    cursor_free(&n);
    return failed || rc ? -1 : 0;
}

/* Nodes labelled Entity (or relationships of type) without a string id. */
static int missing_ids(struct scan *sc, struct bs_error *err)
{
    char text[512], quoted[300];
    if (sc->rel_type) {
        if (quote_type(sc->rel_type, quoted, sizeof quoted) != 0)
            return bs_error_set(err, BS_NEO4J_ERROR, "relationship type too long"), -1;
        snprintf(text, sizeof text,
                 "MATCH (a:Entity)-[r:%s]->(b:Entity) WHERE r.id IS NULL OR NOT r.id IS :: STRING"
                 " RETURN elementId(r), type(r), a.id, b.id, properties(r) LIMIT %d",
                 quoted, MISSING_ID_LIMIT);
    } else {
        snprintf(text, sizeof text,
                 "MATCH (n:Entity) WHERE n.id IS NULL OR NOT n.id IS :: STRING"
                 " RETURN elementId(n), labels(n), properties(n) LIMIT %d",
                 MISSING_ID_LIMIT);
    }
    struct neo4j_result r = {0};
    if (neo4j_query(sc->n4, text, NULL, &r, "missing ids", err) != 0) {
        neo4j_result_clear(&r);
        return -1;
    }
    int rc = 0;
    size_t rows = neo4j_row_count(&r, 0);
    if (rows == MISSING_ID_LIMIT)
        log_warn("reconciliation: more than %d items without an id; reporting the first %d",
                 MISSING_ID_LIMIT, MISSING_ID_LIMIT);
    for (size_t i = 0; i < rows && rc == 0; i++) {
        json_t *neo;
        if (sc->rel_type)
            neo =
                json_pack("{s:O, s:O, s:O, s:O, s:O}", "element_id", neo4j_cell(&r, 0, i, 0),
                          "type", neo4j_cell(&r, 0, i, 1), "source", neo4j_cell(&r, 0, i, 2),
                          "target", neo4j_cell(&r, 0, i, 3), "properties", neo4j_cell(&r, 0, i, 4));
        else
            neo = json_pack("{s:O, s:O, s:O}", "element_id", neo4j_cell(&r, 0, i, 0), "labels",
                            neo4j_cell(&r, 0, i, 1), "properties", neo4j_cell(&r, 0, i, 2));
        json_t *f = neo ? json_pack("{s:s, s:s, s:n, s:n, s:o, s:s}", "kind", "missing_id",
                                    "object", sc->rel_type ? "relationship" : "entity", "id",
                                    "sqlite", "neo4j", neo, "action", "none")
                        : NULL;
        if (!f) {
            rc = oom(err);
            break;
        }
        if (!sc->rel_type)
            sc->sum->entities_neo4j++;
        else
            sc->sum->relationships_neo4j++;
        rc = add_candidate(sc, f, err);
    }
    neo4j_result_clear(&r);
    return rc;
}

/* The relationship types of both stores, sorted and without repeats. */
static int rel_types(struct scan *sc, json_t **types, struct bs_error *err)
{
    *types = json_array();
    if (!*types)
        return oom(err);
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(sc->sql->db, "SELECT DISTINCT type FROM relationships ORDER BY type", -1,
                           &q, NULL) != SQLITE_OK)
        return bs_error_set(err, BS_STORAGE_ERROR, "SQLite: %s", sqlite3_errmsg(sc->sql->db)), -1;
    while (sqlite3_step(q) == SQLITE_ROW)
        json_array_append_new(*types, json_string((const char *)sqlite3_column_text(q, 0)));
    sqlite3_finalize(q);
    struct neo4j_result r = {0};
    if (neo4j_query(sc->n4,
                    "CALL db.relationshipTypes() YIELD relationshipType RETURN relationshipType",
                    NULL, &r, "relationship types", err) != 0) {
        neo4j_result_clear(&r);
        return -1;
    }
    for (size_t i = 0; i < neo4j_row_count(&r, 0); i++) {
        json_t *t = neo4j_cell(&r, 0, i, 0);
        bool known = false;
        size_t j;
        json_t *u;
        json_array_foreach (*types, j, u)
            known = known || json_equal(t, u);
        if (!known && json_is_string(t))
            json_array_append(*types, t);
    }
    neo4j_result_clear(&r);
    return 0;
}

/* A count Neo4j answers from its count store (no scan). -1 on failure. */
static int64_t neo4j_count(struct scan *sc, const char *text, struct bs_error *err)
{
    struct neo4j_result r = {0};
    int64_t n = -1;
    if (neo4j_query(sc->n4, text, NULL, &r, "counts", err) == 0)
        n = json_integer_value(neo4j_cell(&r, 0, 0, 0));
    neo4j_result_clear(&r);
    return n;
}

static int count_totals(struct scan *sc, struct bs_error *err)
{
    sqlite3_stmt *q = NULL;
    int64_t sqlite_total = 0;
    if (sqlite3_prepare_v2(sc->sql->db,
                           "SELECT (SELECT count(*) FROM entities) +"
                           " (SELECT count(*) FROM relationships)",
                           -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        sqlite_total = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sc->neo4j_entities = neo4j_count(sc, "MATCH (n:Entity) RETURN count(n)", err);
    int64_t rels = sc->neo4j_entities < 0
                       ? -1
                       : neo4j_count(sc, "MATCH (:Entity)-[r]->() RETURN count(r)", err);
    if (rels < 0)
        return -1;
    int64_t neo4j_total = sc->neo4j_entities + rels;
    sc->total = sqlite_total > neo4j_total ? sqlite_total : neo4j_total;
    return 0;
}

/*
 * Whether to look for id-less nodes (or relationships of the current type):
 * only when Neo4j's count store holds more than the scan saw with a string
 * id. The search itself reads every node (or expands every entity), which
 * costs seconds on a large store.
 */
static int need_missing_ids(struct scan *sc, int64_t seen, bool *need, struct bs_error *err)
{
    if (!sc->rel_type) {
        *need = sc->neo4j_entities != seen;
        return 0;
    }
    char text[400], quoted[300];
    if (quote_type(sc->rel_type, quoted, sizeof quoted) != 0)
        return bs_error_set(err, BS_NEO4J_ERROR, "relationship type too long"), -1;
    snprintf(text, sizeof text, "MATCH (:Entity)-[r:%s]->() RETURN count(r)", quoted);
    int64_t n = neo4j_count(sc, text, err);
    if (n < 0)
        return -1;
    *need = n != seen;
    return 0;
}

/* Merges one object kind (entities, or one relationship type) and looks
 * for its id-less items. */
static int scan_kind(struct scan *sc, int64_t *n_sqlite, int64_t *n_neo4j, struct bs_error *err)
{
    int64_t before = *n_neo4j;
    bool need = true;
    if (merge(sc, n_sqlite, n_neo4j, err) != 0 ||
        need_missing_ids(sc, *n_neo4j - before, &need, err) != 0 ||
        (need && missing_ids(sc, err) != 0))
        return -1;
    return flush_batch(sc, err);
}

int recon_scan(struct sql_conn *sql, struct neo4j_client *neo4j, const struct recon_options *opt,
               const struct recon_hooks *hooks, struct recon_summary *sum, struct bs_error *err)
{
    struct scan sc = {.sql = sql, .n4 = neo4j, .opt = opt, .hooks = hooks, .sum = sum};
    sc.deep = opt->mode == RECON_DEEP;
    sc.page = sc.deep ? PAGE_DEEP : PAGE_FAST;
    sc.batch = json_array();
    int rc = -1;
    json_t *types = NULL;
    const char *eq = sc.deep ? "SELECT " ENTITY_COLS " FROM entities WHERE id > ?1"
                               " ORDER BY id LIMIT ?2"
                             : "SELECT id, type, version, hash FROM entities WHERE id > ?1"
                               " ORDER BY id LIMIT ?2";
    const char *rq = sc.deep ? "SELECT " REL_COLS " FROM relationships WHERE type = ?3"
                               " AND id > ?1 ORDER BY id LIMIT ?2"
                             : "SELECT id, type, source_id, target_id, version, hash FROM"
                               " relationships WHERE type = ?3 AND id > ?1 ORDER BY id LIMIT ?2";
    if (!sc.batch) {
        oom(err);
        goto out;
    }
    if (sqlite3_prepare_v2(sql->db, eq, -1, &sc.q_entities, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(sql->db, rq, -1, &sc.q_rels, NULL) != SQLITE_OK) {
        bs_error_set(err, BS_STORAGE_ERROR, "SQLite: %s", sqlite3_errmsg(sql->db));
        goto out;
    }
    if (count_totals(&sc, err) != 0)
        goto out;
    if (scan_kind(&sc, &sum->entities_sqlite, &sum->entities_neo4j, err) != 0)
        goto out;
    if (rel_types(&sc, &types, err) != 0)
        goto out;
    size_t i;
    json_t *t;
    json_array_foreach (types, i, t) {
        sc.rel_type = json_string_value(t);
        if (scan_kind(&sc, &sum->relationships_sqlite, &sum->relationships_neo4j, err) != 0)
            goto out;
    }
    if (hooks->progress)
        hooks->progress(hooks->arg, sc.scanned, sc.scanned > sc.total ? sc.scanned : sc.total);
    rc = 0;
out:
    json_decref(types);
    json_decref(sc.batch);
    sqlite3_finalize(sc.q_entities);
    sqlite3_finalize(sc.q_rels);
    return rc;
}

/* ---- point re-reads ---- */

static int reread_sqlite(struct sql_conn *sql, bool deep, const char *object, const char *id,
                         json_t **row, struct bs_error *err)
{
    bool entity = strcmp(object, "entity") == 0;
    const char *text = entity ? "SELECT " ENTITY_COLS " FROM entities WHERE id = ?1"
                              : "SELECT " REL_COLS " FROM relationships WHERE id = ?1";
    sqlite3_stmt *q = NULL;
    *row = NULL;
    if (sqlite3_prepare_v2(sql->db, text, -1, &q, NULL) != SQLITE_OK)
        return bs_error_set(err, BS_STORAGE_ERROR, "SQLite: %s", sqlite3_errmsg(sql->db)), -1;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        *row = entity ? sqlite_entity_row(q, deep) : sqlite_rel_row(q, deep);
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return bs_error_set(err, BS_STORAGE_ERROR, "SQLite: re-read failed"), -1;
    if (!*row)
        *row = json_null();
    return 0;
}

/* Neo4j rows of the ids (one type for relationships), grouped by id. */
static int reread_neo4j(struct neo4j_client *n4, bool deep, const char *object, const char *type,
                        json_t *ids, json_t **by_id, struct bs_error *err)
{
    char text[512], quoted[300];
    bool entity = strcmp(object, "entity") == 0;
    if (entity) {
        snprintf(text, sizeof text, "UNWIND $ids AS i MATCH (n:Entity {id: i}) RETURN %s",
                 deep ? N_ENTITY_RETURN : N_ENTITY_RETURN_FAST);
    } else {
        if (quote_type(type, quoted, sizeof quoted) != 0)
            return bs_error_set(err, BS_NEO4J_ERROR, "relationship type too long"), -1;
        snprintf(text, sizeof text,
                 "UNWIND $ids AS i MATCH (a:Entity)-[r:%s {id: i}]->(b:Entity) RETURN %s", quoted,
                 deep ? N_REL_RETURN : N_REL_RETURN_FAST);
    }
    struct neo4j_result r = {0};
    if (neo4j_query(n4, text, json_pack("{s:O}", "ids", ids), &r, "re-read", err) != 0) {
        neo4j_result_clear(&r);
        return -1;
    }
    *by_id = json_object();
    json_t *data = json_object_get(json_array_get(r.results, 0), "data");
    size_t i;
    json_t *d;
    json_array_foreach (data, i, d) {
        json_t *cells = json_object_get(d, "row");
        json_t *row = entity ? neo4j_entity_row(cells) : neo4j_rel_row(cells);
        const char *id = row ? row_id(row) : NULL;
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
    return 0;
}

int recon_reread(struct sql_conn *sql, struct neo4j_client *neo4j, bool deep, json_t *findings,
                 json_t **groups, struct bs_error *err)
{
    *groups = json_array();
    if (!*groups)
        return oom(err);
    size_t n = json_array_size(findings);
    for (size_t start = 0; start < n;) {
        /* a run of findings of one object kind (and relationship type) */
        json_t *first = json_array_get(findings, start);
        const char *object = json_string_value(json_object_get(first, "object"));
        const char *type = NULL;
        json_t *s0 = json_object_get(first, "sqlite"), *n0 = json_object_get(first, "neo4j");
        if (strcmp(object, "relationship") == 0) {
            type = json_string_value(json_object_get(json_is_object(s0) ? s0 : n0, "type"));
            if (!type)
                type = json_string_value(
                    json_object_get(json_array_get(json_object_get(n0, "nodes"), 0), "type"));
        }
        size_t end = start;
        json_t *ids = json_array();
        for (; end < n; end++) {
            json_t *f = json_array_get(findings, end);
            json_t *fs = json_object_get(f, "sqlite"), *fn = json_object_get(f, "neo4j");
            const char *ftype =
                json_string_value(json_object_get(json_is_object(fs) ? fs : fn, "type"));
            if (!ftype)
                ftype = json_string_value(
                    json_object_get(json_array_get(json_object_get(fn, "nodes"), 0), "type"));
            if (strcmp(json_string_value(json_object_get(f, "object")), object) != 0 ||
                (type && (!ftype || strcmp(ftype, type) != 0)))
                break;
            json_array_append(ids, json_object_get(f, "id"));
        }
        json_t *by_id = NULL;
        if (reread_neo4j(neo4j, deep, object, type, ids, &by_id, err) != 0) {
            json_decref(ids);
            return -1;
        }
        size_t i;
        json_t *id;
        json_array_foreach (ids, i, id) {
            json_t *srow = NULL;
            if (reread_sqlite(sql, deep, object, json_string_value(id), &srow, err) != 0) {
                json_decref(ids);
                json_decref(by_id);
                return -1;
            }
            json_t *nrows = json_object_get(by_id, json_string_value(id));
            json_t *g = json_pack("{s:s, s:O, s:o, s:o}", "object", object, "id", id, "sqlite",
                                  srow, "neo4j", nrows ? json_incref(nrows) : json_array());
            if (g && type)
                json_object_set_new(g, "type", json_string(type));
            if (!g || json_array_append_new(*groups, g) != 0) {
                json_decref(ids);
                json_decref(by_id);
                return oom(err);
            }
        }
        json_decref(ids);
        json_decref(by_id);
        start = end;
    }
    return 0;
}

int recon_confirm(struct sql_conn *sql, struct neo4j_client *neo4j, bool deep, json_t *findings,
                  json_t **confirmed, struct bs_error *err)
{
    *confirmed = json_array();
    json_t *with_ids = json_array();
    if (!*confirmed || !with_ids) {
        json_decref(with_ids);
        return oom(err);
    }
    size_t i;
    json_t *f;
    /* missing_id findings have nothing to re-read by id: no write of the
     * gateway makes or changes a node without an id. */
    json_array_foreach (findings, i, f) {
        if (json_is_null(json_object_get(f, "id")))
            json_array_append(*confirmed, f);
        else
            json_array_append(with_ids, f);
    }
    json_t *groups = NULL;
    int rc = recon_reread(sql, neo4j, deep, with_ids, &groups, err);
    json_t *g;
    json_array_foreach (groups, i, g) {
        json_t *still = recon_classify(g, deep);
        if (still)
            json_array_append_new(*confirmed, still);
    }
    json_decref(groups);
    json_decref(with_ids);
    return rc;
}
