/*
 * GET /v1/entities/{id}?verify=true: compares one entity's SQLite row with
 * the node Neo4j holds (labels, mirrored properties, _v, _h) and recomputes
 * both hashes, so an edit on either side shows as a mismatch.
 * Reader threads borrow Neo4j clients from the facade's pool, so a verify
 * never waits behind a write.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stores/bistore_internal.h"
#include "stores/model/canon.h"
#include "stores/neo4j/recon.h"

static int add_detail(json_t *details, const char *what, json_t *sqlite, json_t *neo4j)
{
    json_t *d = json_pack("{s:s, s:O?, s:O?}", "field", what, "sqlite", sqlite, "neo4j", neo4j);
    return d ? json_array_append_new(details, d) : -1;
}

/* Compares the SQLite entity with one Neo4j node (labels, properties). */
static int compare_node(const json_t *entity, json_t *labels, json_t *props, json_t *details)
{
    const char *type = json_string_value(json_object_get(entity, "type"));
    const char *id = json_string_value(json_object_get(entity, "id"));
    json_t *want_labels = json_pack("[s, s]", "Entity", type);
    size_t i;
    json_t *l;
    const char *other_type = NULL;
    json_array_foreach (labels, i, l) {
        if (strcmp(json_string_value(l), "Entity") != 0)
            other_type = json_string_value(l);
    }
    int rc = 0;
    if (json_array_size(labels) != 2 || !other_type || strcmp(other_type, type) != 0)
        rc |= add_detail(details, "labels", want_labels, labels);
    json_t *mirrored = canon_mirrored(props);
    json_t *v = json_incref(json_object_get(props, "_v"));
    json_t *h = json_incref(json_object_get(props, "_h"));
    json_t *sql_props = json_object_get(entity, "properties");
    if (!canon_equal(mirrored, sql_props))
        rc |= add_detail(details, "properties", sql_props, mirrored);
    json_t *sql_v = json_object_get(entity, "version");
    if (!json_equal(v, sql_v))
        rc |= add_detail(details, "version", sql_v, v);
    json_t *sql_h = json_object_get(entity, "_hash");
    if (!json_equal(h, sql_h))
        rc |= add_detail(details, "hash", sql_h, h);
    /* The hash recomputed from what Neo4j holds must match its _h. */
    char recomputed[HASH_STR_LEN];
    json_t *rec =
        canon_entity_record(id, other_type ? other_type : "", mirrored, json_integer_value(v));
    if (rec && canon_hash(rec, recomputed) == 0 &&
        (!json_is_string(h) || strcmp(recomputed, json_string_value(h)) != 0)) {
        json_t *r = json_string(recomputed);
        rc |= add_detail(details, "neo4j_content_hash", h, r);
        json_decref(r);
    }
    json_decref(rec);
    json_decref(mirrored);
    json_decref(v);
    json_decref(h);
    json_decref(want_labels);
    return rc;
}

enum lookup bistore_verify_entity(struct bistore *bs, const char *id, json_t **out,
                                  struct bs_error *err)
{
    *out = NULL;
    struct sql_conn *c = sql_pool_get(&bs->readers, err);
    if (!c)
        return -1;
    struct sql_entity e;
    int rc = sql_entity_get(c, id, &e, err);
    sql_pool_put(&bs->readers, c);
    if (rc != 0) {
        sql_entity_clear(&e);
        return rc;
    }
    /* The row's own hash, recomputed: catches edits made in SQLite. */
    char recomputed[HASH_STR_LEN] = "";
    json_t *rec = canon_entity_record(e.id, e.type, e.properties, e.version);
    bool sqlite_hash_bad = rec && canon_hash(rec, recomputed) == 0 && strcmp(recomputed, e.hash);
    json_decref(rec);
    json_t *entity = sql_entity_json(&e);
    json_t *details = json_array();
    if (entity)
        json_object_set_new(entity, "_hash", json_string(e.hash));
    sql_entity_clear(&e);
    if (!entity || !details) {
        json_decref(entity);
        json_decref(details);
        return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
    }
    if (sqlite_hash_bad) {
        json_t *got = json_string(recomputed);
        add_detail(details, "sqlite_content_hash", json_object_get(entity, "_hash"), got);
        json_decref(got);
    }

    struct neo4j_client *neo4j = neo4j_pool_get(&bs->read_clients);
    struct neo4j_result r = {0};
    json_t *nodes = NULL;
    rc = -1;
    if (!neo4j) {
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
    } else if (neo4j_entity_nodes(neo4j, id, &nodes, &r) != NEO4J_OK) {
        bs_error_set(err, BS_NEO4J_UNAVAILABLE, "Neo4j did not answer the verification: %s",
                     r.message);
    } else if (!nodes) {
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
    } else {
        size_t rows = json_array_size(nodes);
        const char *status = "missing_in_neo4j";
        if (rows > 0) {
            if (rows > 1) {
                json_t *n = json_integer((json_int_t)rows);
                add_detail(details, "duplicate_nodes", NULL, n);
                json_decref(n);
            }
            json_t *node = json_array_get(nodes, 0);
            compare_node(entity, json_object_get(node, "labels"),
                         json_object_get(node, "properties"), details);
            status = json_array_size(details) ? "mismatch" : "consistent";
        }
        json_object_del(entity, "_hash");
        json_object_set_new(entity, "consistency",
                            json_pack("{s:s, s:O}", "status", status, "details", details));
        *out = entity;
        entity = NULL;
        rc = 0;
    }
    neo4j_pool_put(&bs->read_clients, neo4j);
    neo4j_result_clear(&r);
    json_decref(nodes);
    json_decref(details);
    json_decref(entity);
    return rc;
}
