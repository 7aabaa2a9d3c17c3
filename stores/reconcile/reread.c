/*
 * Point re-reads (stores/reconcile/internal.h): the groups of a batch of
 * findings read again from both stores by id, and the findings that still
 * hold. A candidate of the scan counts only once re-read (in the writer
 * thread when a gateway runs, so no write is in flight).
 */
#include <string.h>

#include "stores/neo4j/recon.h"
#include "stores/reconcile/internal.h"
#include "stores/sqlite/recon.h"

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

/* The relationship type a finding names: its SQLite row's, else its Neo4j
 * row's (or its first duplicate's); NULL when neither says. */
static const char *finding_type(const json_t *f)
{
    json_t *s = json_object_get(f, "sqlite"), *n = json_object_get(f, "neo4j");
    const char *type = json_string_value(json_object_get(json_is_object(s) ? s : n, "type"));
    if (!type)
        type = json_string_value(
            json_object_get(json_array_get(json_object_get(n, "nodes"), 0), "type"));
    return type;
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
        bool entity = strcmp(object, "entity") == 0;
        const char *type = entity ? NULL : finding_type(first);
        size_t end = start;
        json_t *ids = json_array();
        for (; end < n; end++) {
            json_t *f = json_array_get(findings, end);
            const char *ftype = finding_type(f);
            if (strcmp(json_string_value(json_object_get(f, "object")), object) != 0 ||
                (type && (!ftype || strcmp(ftype, type) != 0)))
                break;
            json_array_append(ids, json_object_get(f, "id"));
        }
        json_t *by_id = NULL;
        if (neo4j_scan_reread(neo4j, entity, type, deep, ids, &by_id, err) != 0) {
            json_decref(ids);
            return -1;
        }
        size_t i;
        json_t *id;
        json_array_foreach (ids, i, id) {
            json_t *srow = NULL;
            if (sql_scan_reread(sql, entity, deep, json_string_value(id), &srow, err) != 0) {
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
