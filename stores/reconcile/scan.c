/*
 * The reconciliation scan: both stores streamed in id order, page by page,
 * and merge-joined (see stores/reconcile/reconcile.h); a fast scan merges
 * only the id ranges whose checksums differ (ranges.c). Memory: two pages
 * and one batch of candidates, whatever the size of the stores.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "stores/neo4j/recon.h"
#include "stores/reconcile/internal.h"
#include "stores/sqlite/recon.h"

#define PAGE_FAST 5000
#define PAGE_DEEP 1000
#define MISSING_ID_LIMIT 10000

static int oom(struct bs_error *err)
{
    bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
    return -1;
}

static const char *row_id(const json_t *row)
{
    return json_string_value(json_object_get(row, "id"));
}

/* ---- paged cursors over both stores ---- */

struct cursor {
    json_t *page;
    size_t pos;
    bool exhausted;
    char *after;        /* last id consumed ("" at the start) */
    size_t skip;        /* rows with id == after already consumed */
    const char *before; /* the end of the range, or NULL */
    bool neo4j;
};

/* A cursor over [lo, hi) (hi NULL: no end) of one store. */
static int cursor_init(struct cursor *c, bool neo4j, const char *lo, const char *hi)
{
    memset(c, 0, sizeof *c);
    c->neo4j = neo4j;
    c->before = hi;
    c->after = strdup(lo);
    return c->after ? 0 : -1;
}

static void cursor_free(struct cursor *c)
{
    json_decref(c->page);
    free(c->after);
    memset(c, 0, sizeof *c);
}

static int fetch_sqlite(struct recon_scan *sc, struct cursor *c, struct bs_error *err)
{
    struct sql_scan_at at = {.after = c->after, .skip = c->skip, .before = c->before};
    if (sql_scan_page(sc->sql, sc->rel_type, sc->deep, &at, sc->page, c->page, err) != 0)
        return -1;
    if (json_array_size(c->page) < (size_t)sc->page)
        c->exhausted = true;
    return 0;
}

static int fetch_neo4j(struct recon_scan *sc, struct cursor *c, struct bs_error *err)
{
    size_t rows;
    struct neo4j_scan_at at = {.after = c->after, .skip = c->skip, .before = c->before};
    if (neo4j_scan_page(sc->neo4j, sc->rel_type, sc->deep, &at, sc->page, c->page, &rows, err) != 0)
        return -1;
    if (rows < (size_t)sc->page + c->skip)
        c->exhausted = true;
    return 0;
}

/* The next row of c without consuming it; NULL at the end (or on error). */
static json_t *peek(struct recon_scan *sc, struct cursor *c, struct bs_error *err, int *failed)
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

static int flush_batch(struct recon_scan *sc, struct bs_error *err)
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
    if (rc == 0 && sc->hooks->counted)
        sc->hooks->counted(sc->hooks->arg);
    json_decref(confirmed);
    json_array_clear(sc->batch);
    return rc;
}

static int add_candidate(struct recon_scan *sc, json_t *finding, struct bs_error *err)
{
    if (!finding)
        return 0;
    if (json_array_append_new(sc->batch, finding) != 0)
        return oom(err);
    return json_array_size(sc->batch) >= RECON_RECHECK_BATCH ? flush_batch(sc, err) : 0;
}

int recon_progress(struct recon_scan *sc, struct bs_error *err)
{
    if (sc->hooks->progress && sc->hooks->progress(sc->hooks->arg, sc->scanned, sc->total) != 0)
        return bs_error_set(err, BS_NEO4J_UNAVAILABLE, "stopped: the gateway is shutting down"), -1;
    return 0;
}

int recon_merge(struct recon_scan *sc, const char *lo, const char *hi, int64_t *n_sqlite,
                int64_t *n_neo4j, struct bs_error *err)
{
    struct cursor s, n;
    if (cursor_init(&s, false, lo, hi) != 0 || cursor_init(&n, true, lo, hi) != 0) {
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
        if (rc == 0 && !failed && sc->scanned % 1000 == 0)
            rc = recon_progress(sc, err);
        if (failed || rc != 0)
            break;
    }
    cursor_free(&s);
    cursor_free(&n);
    return failed || rc ? -1 : 0;
}

/* Nodes labelled Entity (or relationships of type) without a string id. */
static int missing_ids(struct recon_scan *sc, struct bs_error *err)
{
    json_t *items = json_array();
    if (!items)
        return oom(err);
    int rc = neo4j_scan_missing_ids(sc->neo4j, sc->rel_type, MISSING_ID_LIMIT, items, err);
    if (json_array_size(items) == MISSING_ID_LIMIT)
        log_warn("reconciliation: more than %d items without an id; reporting the first %d",
                 MISSING_ID_LIMIT, MISSING_ID_LIMIT);
    size_t i;
    json_t *neo;
    json_array_foreach (items, i, neo) {
        if (rc != 0)
            break;
        json_t *f = json_pack("{s:s, s:s, s:n, s:n, s:O, s:s}", "kind", "missing_id", "object",
                              sc->rel_type ? "relationship" : "entity", "id", "sqlite", "neo4j",
                              neo, "action", "none");
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
    json_decref(items);
    return rc;
}

/* The relationship types of both stores, sorted and without repeats. */
static int rel_types(struct recon_scan *sc, json_t **types, struct bs_error *err)
{
    *types = json_array();
    if (!*types)
        return oom(err);
    if (sql_scan_relationship_types(sc->sql, *types, err) != 0 ||
        neo4j_scan_relationship_types(sc->neo4j, *types, err) != 0)
        return -1;
    return 0;
}

static int count_totals(struct recon_scan *sc, struct bs_error *err)
{
    int64_t sqlite_total = 0;
    struct bs_error ignored; /* an estimate for the progress only: 0 will do */
    if (sql_scan_count(sc->sql, &sqlite_total, &ignored) != 0)
        sqlite_total = 0;
    int64_t rels;
    if (neo4j_scan_count_entities(sc->neo4j, &sc->neo4j_entities, err) != 0 ||
        neo4j_scan_count_relationships(sc->neo4j, NULL, &rels, err) != 0)
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
static int need_missing_ids(struct recon_scan *sc, int64_t seen, bool *need, struct bs_error *err)
{
    if (!sc->rel_type) {
        *need = sc->neo4j_entities != seen;
        return 0;
    }
    int64_t n;
    if (neo4j_scan_count_relationships(sc->neo4j, sc->rel_type, &n, err) != 0)
        return -1;
    *need = n != seen;
    return 0;
}

/* Merges one object kind (entities, or one relationship type) and looks
 * for its id-less items. */
static int scan_kind(struct recon_scan *sc, int64_t *n_sqlite, int64_t *n_neo4j,
                     struct bs_error *err)
{
    int64_t before = *n_neo4j;
    bool need = true;
    if ((sc->deep ? recon_merge(sc, "", NULL, n_sqlite, n_neo4j, err)
                  : recon_ranges(sc, n_sqlite, n_neo4j, err)) != 0 ||
        need_missing_ids(sc, *n_neo4j - before, &need, err) != 0 ||
        (need && missing_ids(sc, err) != 0))
        return -1;
    return flush_batch(sc, err);
}

int recon_scan(struct sql_conn *sql, struct neo4j_client *neo4j, struct neo4j_client *neo4j_side,
               const struct recon_options *opt, const struct recon_hooks *hooks,
               struct recon_summary *sum, struct bs_error *err)
{
    struct recon_scan sc = {.sql = sql,
                            .neo4j = neo4j,
                            .neo4j_side = neo4j_side,
                            .opt = opt,
                            .hooks = hooks,
                            .sum = sum};
    sc.deep = opt->mode == RECON_DEEP;
    sc.page = sc.deep ? PAGE_DEEP : PAGE_FAST;
    sc.batch = json_array();
    int rc = -1;
    json_t *types = NULL;
    if (!sc.batch) {
        oom(err);
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
    return rc;
}
