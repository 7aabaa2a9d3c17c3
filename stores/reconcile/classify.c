/*
 * What a group of rows amounts to (stores/reconcile/internal.h): the
 * stores agree on an id, or a finding says how they do not. Shared by the
 * scan, its re-check and repair.
 */
#include <stdlib.h>
#include <string.h>

#include "stores/model/canon.h"
#include "stores/model/model.h"
#include "stores/reconcile/internal.h"

static const char *row_id(const json_t *row)
{
    return json_string_value(json_object_get(row, "id"));
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
        if (s && strcmp(s, MODEL_ENTITY_LABEL) != 0) {
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
    ok = ok && ntype && strcmp(ntype, type) == 0 && nprops && canon_equal(nprops, sprops);
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
    ok = ok && nprops && canon_equal(nprops, sprops);
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
