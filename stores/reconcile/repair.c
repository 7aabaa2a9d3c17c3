/*
 * Repairs of reconciliation findings, run in the writer thread through the
 * commit protocol: each batch of findings is one transaction (SQLite rows,
 * an intent with the Neo4j statements, the guarded watermark), so a repair
 * is atomic, audited in GET /v1/transactions and replayed after a crash
 * like any other write. The findings' actions are updated in the same
 * SQLite transaction.
 *
 * Every finding is read again from both stores first, inside the
 * transaction: a finding that no longer holds is left alone (action
 * "none"), and what is repaired is what the stores hold now.
 *
 *   sqlite_wins: Neo4j is made to match SQLite (nodes created, updated,
 *                deleted; extra duplicates and id-less nodes deleted);
 *   neo4j_wins:  SQLite is made to match Neo4j (rows created, updated,
 *                deleted; an id-less node gets a fresh UUIDv7 and is
 *                adopted); Neo4j's _v/_h are rewritten to agree.
 *
 * Neither policy writes a record the API could not address: one whose id
 * (or, for a relationship, an endpoint's id) breaks the id rule, or an
 * entity of the reserved type Entity. Such a finding is left as it is
 * (action "none", the reason logged); deleting what only the losing store
 * holds needs no id and still happens.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ids.h"
#include "common/log.h"
#include "stores/engine/apply.h"
#include "stores/model/canon.h"
#include "stores/reconcile/internal.h"
#include "stores/reconcile/repair.h"
#include "stores/sqlite/recon.h"

static int oom(struct bs_error *err)
{
    bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
    return -1;
}

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* A repair statement's outcome: -1 (out of memory) as err. */
static int added(int rc, struct bs_error *err)
{
    return rc == 0 ? 0 : oom(err);
}

/* Deletes Neo4j nodes or relationships by element id (all but `keep`). */
static int delete_elements(struct apply_state *state, bool entity, const json_t *rows,
                           const char *keep, struct bs_error *err)
{
    json_t *eids = json_array();
    size_t i;
    json_t *r;
    json_array_foreach (rows, i, r) {
        const char *e = str(r, "element_id");
        if (e && (!keep || strcmp(e, keep) != 0))
            json_array_append_new(eids, json_string(e));
    }
    if (json_array_size(eids) == 0) {
        json_decref(eids);
        return 0;
    }
    return added(cypher_delete_elements(&state->cypher, entity, eids), err);
}

/* The Neo4j rows of a group as an array (also for a single row). */
static json_t *neo4j_rows(const json_t *group)
{
    return json_object_get(group, "neo4j");
}

/* ---- sqlite_wins ---- */

/*
 * SQLite is authoritative, but its row may have been edited behind the
 * gateway's back (content no longer matching its hash): re-hash such a row
 * first (version + 1), so both stores end up with a hash that matches the
 * content. s is the re-read row (with properties); updated in place.
 */
static int rehash_sqlite_row(struct engine *e, struct apply_state *state, json_t *s, bool entity,
                             struct bs_error *err)
{
    const char *id = str(s, "id"), *type = str(s, "type");
    json_t *props = json_object_get(s, "properties");
    json_int_t v = json_integer_value(json_object_get(s, "version"));
    json_t *rec =
        entity ? canon_entity_record(id, type, props, v)
               : canon_relationship_record(id, type, str(s, "source"), str(s, "target"), props, v);
    char h[HASH_STR_LEN];
    int rc = rec && canon_hash(rec, h) == 0 ? 0 : oom(err);
    json_decref(rec);
    if (rc != 0 || strcmp(h, str(s, "hash")) == 0)
        return rc;
    v++;
    rec = entity
              ? canon_entity_record(id, type, props, v)
              : canon_relationship_record(id, type, str(s, "source"), str(s, "target"), props, v);
    rc = rec && canon_hash(rec, h) == 0 ? 0 : oom(err);
    json_decref(rec);
    if (rc != 0)
        return rc;
    if (entity) {
        struct sql_entity row;
        rc = sql_entity_get(writer_sql(e), id, &row, err) == LOOKUP_FOUND ? 0 : -1;
        if (rc == 0) {
            row.version = v;
            snprintf(row.hash, sizeof row.hash, "%s", h);
            snprintf(row.updated_at, sizeof row.updated_at, "%s", state->now);
            rc = sql_entity_update(writer_sql(e), &row, err);
        }
        sql_entity_clear(&row);
    } else {
        struct sql_relationship r;
        rc = sql_relationship_get(writer_sql(e), id, &r, err) == 0 ? 0 : -1;
        if (rc == 0) {
            r.version = v;
            snprintf(r.hash, sizeof r.hash, "%s", h);
            snprintf(r.updated_at, sizeof r.updated_at, "%s", state->now);
            rc = sql_relationship_delete(writer_sql(e), id, err) == 0 &&
                         sql_relationship_insert(writer_sql(e), &r, err) == 0
                     ? 0
                     : -1;
        }
        sql_relationship_clear(&r);
    }
    if (rc == 0) {
        json_object_set_new(s, "version", json_integer(v));
        json_object_set_new(s, "hash", json_string(h));
    }
    return rc;
}

static int sqlite_wins_entity(struct engine *e, struct apply_state *state, const json_t *group,
                              const char **action, struct bs_error *err)
{
    json_t *s = json_object_get(group, "sqlite");
    json_t *ns = neo4j_rows(group);
    if (!json_is_object(s)) {
        *action = "deleted";
        return delete_elements(state, true, ns, NULL, err);
    }
    if (rehash_sqlite_row(e, state, s, true, err) != 0)
        return -1;
    const char *id = str(s, "id"), *type = str(s, "type");
    json_t *map =
        canon_neo4j_entity_map(id, json_object_get(s, "properties"),
                               json_integer_value(json_object_get(s, "version")), str(s, "hash"));
    if (!map)
        return oom(err);
    if (json_array_size(ns) == 0) {
        *action = "created";
        return added(cypher_create_entity_node(&state->cypher, type, map), err);
    }
    /* keep the first node, delete any duplicate, rewrite labels and content */
    json_t *keep = json_array_get(ns, 0);
    const char *eid = str(keep, "element_id");
    *action = "updated";
    if (delete_elements(state, true, ns, eid, err) != 0) {
        json_decref(map);
        return -1;
    }
    return added(cypher_rewrite_entity_node(&state->cypher, eid, type, map), err);
}

static int sqlite_wins_relationship(struct engine *e, struct apply_state *state,
                                    const json_t *group, const char **action, struct bs_error *err)
{
    json_t *s = json_object_get(group, "sqlite");
    json_t *ns = neo4j_rows(group);
    if (delete_elements(state, false, ns, NULL, err) != 0)
        return -1;
    if (!json_is_object(s)) {
        *action = "deleted";
        return 0;
    }
    if (rehash_sqlite_row(e, state, s, false, err) != 0)
        return -1;
    *action = json_array_size(ns) ? "updated" : "created";
    const char *type = str(s, "type");
    if (!model_valid_name(type))
        return bs_error_set(err, BS_STORAGE_ERROR, "relationship type '%s' is invalid", type), -1;
    json_t *map =
        canon_neo4j_map(str(s, "id"), json_object_get(s, "properties"),
                        json_integer_value(json_object_get(s, "version")), str(s, "hash"));
    if (!map)
        return oom(err);
    return added(cypher_create_relationship_edge(&state->cypher, type, str(s, "source"),
                                                 str(s, "target"), map),
                 err);
}

/* ---- neo4j_wins ---- */

static int delete_sqlite_entity_rel(const struct sql_relationship *r, void *arg)
{
    struct sql_conn *sql = arg;
    return sql_relationship_delete(sql, r->id, NULL);
}

/* Why a Neo4j entity cannot become a SQLite row, or NULL when it can. */
static const char *unadoptable(const json_t *labels, const json_t *props, const char **type)
{
    *type = NULL;
    size_t i, others = 0;
    json_t *l;
    json_array_foreach (labels, i, l) {
        if (json_is_string(l) && strcmp(json_string_value(l), "Entity") != 0) {
            *type = json_string_value(l);
            others++;
        }
    }
    if (others != 1 || !model_valid_entity_type(*type))
        return "the node does not have exactly one valid type label besides Entity";
    struct bs_error e;
    bs_error_clear(&e);
    if (!model_check_properties(props, false, "properties", &e))
        return "its properties are not all valid bistore properties";
    return NULL;
}

static int neo4j_wins_entity(struct engine *e, struct apply_state *state, const json_t *group,
                             const json_t *finding, const char **action, struct bs_error *err)
{
    json_t *s = json_object_get(group, "sqlite");
    json_t *ns = neo4j_rows(group);
    bool missing_id = strcmp(str(finding, "kind"), "missing_id") == 0;
    if (!missing_id && json_array_size(ns) == 0) { /* only in SQLite: delete it there */
        const char *id = str(s, "id");
        *action = "deleted";
        if (sql_relationships_of(writer_sql(e), id, delete_sqlite_entity_rel, writer_sql(e), err) !=
            0) {
            if (err->code == BS_OK)
                bs_error_set(err, BS_STORAGE_ERROR, "SQLite: cannot delete relationships");
            return -1;
        }
        return sql_entity_delete(writer_sql(e), id, err);
    }
    json_t *keep = missing_id ? json_object_get(finding, "neo4j") : json_array_get(ns, 0);
    json_t *props = canon_mirrored(json_object_get(keep, "properties"));
    const char *type;
    const char *why = props ? unadoptable(json_object_get(keep, "labels"), props, &type) : NULL;
    if (!props || why) {
        json_decref(props);
        if (!props)
            return oom(err);
        log_warn("reconciliation: cannot adopt node %s: %s", str(keep, "element_id"), why);
        json_object_set_new((json_t *)finding, "why", json_string(why));
        *action = "none";
        return 0;
    }
    struct sql_entity row = {0};
    char fresh[UUID_STR_LEN];
    if (missing_id) {
        ids_uuid7(fresh);
        /* the adopted node's new id goes into the finding and the audit */
        json_object_set_new((json_t *)finding, "adopted_id", json_string(fresh));
    }
    snprintf(row.id, sizeof row.id, "%s", missing_id ? fresh : str(group, "id"));
    snprintf(row.type, sizeof row.type, "%s", type);
    row.properties = props;
    json_t *nv = json_object_get(keep, "_v");
    bool had_row = json_is_object(s);
    if (had_row)
        row.version = json_integer_value(json_object_get(s, "version")) + 1;
    else
        row.version =
            json_is_integer(nv) && json_integer_value(nv) > 0 ? json_integer_value(nv) : 1;
    snprintf(row.created_at, sizeof row.created_at, "%s", state->now);
    snprintf(row.updated_at, sizeof row.updated_at, "%s", state->now);
    json_t *rec = canon_entity_record(row.id, row.type, row.properties, row.version);
    int rc = rec && canon_hash(rec, row.hash) == 0 ? 0 : oom(err);
    json_decref(rec);
    if (rc == 0 && had_row) {
        /* keep the row's metadata and creation time; the type may change */
        struct sql_entity old;
        if (sql_entity_get(writer_sql(e), row.id, &old, err) == LOOKUP_FOUND) {
            row.metadata = json_incref(old.metadata);
            snprintf(row.created_at, sizeof row.created_at, "%s", old.created_at);
        }
        sql_entity_clear(&old);
    }
    if (rc == 0)
        rc = had_row ? sql_entity_update(writer_sql(e), &row, err)
                     : sql_entity_insert(writer_sql(e), &row, err);
    if (rc == 0)
        rc = delete_elements(state, true, ns, str(keep, "element_id"), err);
    if (rc == 0)
        rc = added(cypher_adopt_element(&state->cypher, true, str(keep, "element_id"), row.id,
                                        row.version, row.hash),
                   err);
    *action = had_row ? "updated" : "created";
    sql_entity_clear(&row);
    return rc;
}

static int neo4j_wins_relationship(struct engine *e, struct apply_state *state, const json_t *group,
                                   const json_t *finding, const char **action, struct bs_error *err)
{
    json_t *s = json_object_get(group, "sqlite");
    json_t *ns = neo4j_rows(group);
    bool missing_id = strcmp(str(finding, "kind"), "missing_id") == 0;
    if (!missing_id && json_array_size(ns) == 0) {
        *action = "deleted";
        return sql_relationship_delete(writer_sql(e), str(s, "id"), err);
    }
    json_t *keep = missing_id ? json_object_get(finding, "neo4j") : json_array_get(ns, 0);
    json_t *props = canon_mirrored(json_object_get(keep, "properties"));
    struct bs_error ignored;
    bs_error_clear(&ignored);
    const char *type = str(keep, "type");
    const char *src = str(keep, "source"), *dst = str(keep, "target");
    /* endpoints' ids are checked here too: an id-less relationship (no
     * group, so unwritable() saw nothing) may join nodes with any id */
    if (!props || !type || !model_valid_name(type) || !src || !ids_valid(src) || !dst ||
        !ids_valid(dst) || !model_check_properties(props, false, "properties", &ignored)) {
        json_decref(props);
        *action = "none";
        return props ? 0 : oom(err);
    }
    struct sql_relationship r = {0};
    char fresh[UUID_STR_LEN];
    if (missing_id) {
        ids_uuid7(fresh);
        /* the adopted node's new id goes into the finding and the audit */
        json_object_set_new((json_t *)finding, "adopted_id", json_string(fresh));
    }
    snprintf(r.id, sizeof r.id, "%s", missing_id ? fresh : str(group, "id"));
    snprintf(r.type, sizeof r.type, "%s", type);
    snprintf(r.source, sizeof r.source, "%s", src);
    snprintf(r.target, sizeof r.target, "%s", dst);
    r.properties = props;
    bool had_row = json_is_object(s);
    json_t *nv = json_object_get(keep, "_v");
    r.version = had_row ? json_integer_value(json_object_get(s, "version")) + 1
                : json_is_integer(nv) && json_integer_value(nv) > 0 ? json_integer_value(nv)
                                                                    : 1;
    snprintf(r.created_at, sizeof r.created_at, "%s", state->now);
    snprintf(r.updated_at, sizeof r.updated_at, "%s", state->now);
    json_t *rec =
        canon_relationship_record(r.id, r.type, r.source, r.target, r.properties, r.version);
    int rc = rec && canon_hash(rec, r.hash) == 0 ? 0 : oom(err);
    json_decref(rec);
    if (rc == 0 && (sql_entity_exists(writer_sql(e), r.source, err) != LOOKUP_FOUND ||
                    sql_entity_exists(writer_sql(e), r.target, err) != LOOKUP_FOUND)) {
        /* an endpoint SQLite does not have: nothing to attach the row to */
        sql_relationship_clear(&r);
        bs_error_clear(err);
        *action = "none";
        return 0;
    }
    if (rc == 0 && had_row)
        rc = sql_relationship_delete(writer_sql(e), r.id, err);
    if (rc == 0)
        rc = sql_relationship_insert(writer_sql(e), &r, err);
    if (rc == 0)
        rc = delete_elements(state, false, ns, str(keep, "element_id"), err);
    if (rc == 0)
        rc = added(cypher_adopt_element(&state->cypher, false, str(keep, "element_id"), r.id,
                                        r.version, r.hash),
                   err);
    *action = had_row ? "updated" : "created";
    sql_relationship_clear(&r);
    return rc;
}

/* ---- one batch ---- */

/*
 * Why the policy must not write the winning record of group (the first
 * Neo4j row under neo4j_wins, the SQLite row under sqlite_wins), or NULL
 * when it may. An id outside the id rule would be cut to the model's
 * fixed buffers (ID_MAX_LEN) or become a row no URL reaches; an entity
 * typed Entity would be a node with no type label. Without a winner there
 * is nothing to write (the loser's copy is deleted): NULL.
 */
static const char *unwritable(const struct repair_batch *rb, bool entity, const json_t *group)
{
    json_t *winner = rb->policy == REPAIR_NEO4J_WINS ? json_array_get(neo4j_rows(group), 0)
                                                     : json_object_get(group, "sqlite");
    if (!json_is_object(winner))
        return NULL;
    const char *id = str(group, "id");
    if (!id || !ids_valid(id))
        return "its id is not an id (" IDS_RULE "), so no URL could reach it";
    if (!entity) {
        const char *src = str(winner, "source"), *dst = str(winner, "target");
        if (!src || !ids_valid(src) || !dst || !ids_valid(dst))
            return "the id of its source or target is not an id (" IDS_RULE ")";
    } else if (rb->policy == REPAIR_SQLITE_WINS) {
        const char *type = str(winner, "type");
        if (!type || !model_valid_entity_type(type))
            return "its type is not an entity type ('" MODEL_ENTITY_LABEL
                   "' is reserved): delete it and create it again with another type";
    }
    return NULL;
}

/* The action of one finding under the policy, applying it unless dry. */
static int repair_one(struct engine *e, struct repair_batch *rb, struct apply_state *state,
                      const json_t *finding, const json_t *group, const char **action,
                      struct bs_error *err)
{
    bool entity = strcmp(str(finding, "object"), "entity") == 0;
    bool missing_id = strcmp(str(finding, "kind"), "missing_id") == 0;
    const char *why = missing_id ? NULL : unwritable(rb, entity, group);
    if (why) { /* the same in a dry run: it shows what a real run does */
        const char *id = str(group, "id");
        log_warn("reconciliation %s: %s leaves %s '%s' as it is: %s", rb->run_id,
                 recon_repair_name(rb->policy), entity ? "entity" : "relationship", id ? id : "?",
                 why);
        *action = "none";
        return 0;
    }
    if (rb->policy == REPAIR_SQLITE_WINS) {
        if (missing_id) {
            *action = "deleted";
            json_t *one = json_pack("[O]", json_object_get(finding, "neo4j"));
            int rc = state ? delete_elements(state, entity, one, NULL, err) : 0;
            json_decref(one);
            return rc;
        }
        if (!state) { /* dry run: what would happen */
            json_t *s = json_object_get(group, "sqlite");
            *action = !json_is_object(s)                        ? "deleted"
                      : json_array_size(neo4j_rows(group)) == 0 ? "created"
                                                                : "updated";
            return 0;
        }
        return entity ? sqlite_wins_entity(e, state, (json_t *)group, action, err)
                      : sqlite_wins_relationship(e, state, (json_t *)group, action, err);
    }
    if (!state) {
        json_t *s = json_object_get(group, "sqlite");
        *action = missing_id || !json_is_object(s)          ? "created"
                  : json_array_size(neo4j_rows(group)) == 0 ? "deleted"
                                                            : "updated";
        return 0;
    }
    return entity ? neo4j_wins_entity(e, state, group, finding, action, err)
                  : neo4j_wins_relationship(e, state, group, finding, action, err);
}

/* Re-reads the batch; for each finding, its group and whether it still holds. */
static int reread_batch(struct engine *e, struct repair_batch *rb, json_t **groups,
                        struct bs_error *err)
{
    json_t *with_ids = json_array();
    size_t i;
    json_t *f;
    json_array_foreach (rb->findings, i, f)
        if (!json_is_null(json_object_get(f, "id")))
            json_array_append(with_ids, f);
    json_t *read = NULL;
    int rc = recon_reread(writer_sql(e), writer_neo4j(e), true, with_ids, &read, err);
    json_decref(with_ids);
    if (rc != 0) {
        json_decref(read);
        return -1;
    }
    /* align: one entry per finding, null for missing_id */
    *groups = json_array();
    size_t j = 0;
    json_array_foreach (rb->findings, i, f) {
        if (json_is_null(json_object_get(f, "id")))
            json_array_append_new(*groups, json_null());
        else
            json_array_append(*groups, json_array_get(read, j++));
    }
    json_decref(read);
    return 0;
}

int repair_apply_batch(struct engine *e, void *ctx, struct apply_state *state, struct bs_error *err)
{
    struct repair_batch *rb = ctx;
    json_t *groups = NULL;
    if (reread_batch(e, rb, &groups, err) != 0)
        return -1;
    int rc = 0;
    size_t i;
    json_t *f;
    json_array_foreach (rb->findings, i, f) {
        json_t *g = json_array_get(groups, i);
        const char *action = "none";
        bool still = json_is_null(g);
        json_t *now = still ? NULL : recon_classify(g, true);
        still = still || now;
        json_decref(now);
        if (still)
            rc = repair_one(e, rb, rb->dry_run ? NULL : state, f, g, &action, err);
        if (rc == 0 && (json_object_set_new(f, "action", json_string(action)) != 0 ||
                        json_object_set_new(f, "disagreed", json_boolean(still)) != 0))
            rc = oom(err);
        if (rc == 0 && rb->run_n > 0)
            rc = sql_finding_set_action(writer_sql(e), rb->run_n,
                                        json_integer_value(json_object_get(f, "n")), action,
                                        str(f, "adopted_id"), err);
        if (rc != 0)
            break;
        if (strcmp(action, "none") != 0) {
            rb->repaired++;
            json_t *id = json_object_get(f, "adopted_id");
            json_t *r =
                json_pack("{s:s, s:s, s:O, s:s}", "op", "repair", "object", str(f, "object"), "id",
                          id ? id : json_object_get(f, "id"), "action", action);
            if (!r || json_array_append_new(state->results, r) != 0)
                rc = oom(err);
        }
    }
    json_decref(groups);
    return rc == 0 ? cypher_batch_finish(&state->cypher) : rc;
}

int repair_run_batch(struct engine *e, void *arg, struct bs_error *err)
{
    struct repair_batch *rb = arg;
    rb->repaired = 0;
    if (rb->dry_run) {
        /* actions only, in a plain SQLite transaction; nothing else changes */
        struct apply_state state;
        if (apply_init(&state) != 0)
            return oom(err);
        int rc = sql_begin(writer_sql(e), err);
        if (rc == 0)
            rc = repair_apply_batch(e, rb, &state, err);
        if (rc == 0)
            rc = sql_commit(writer_sql(e), err);
        else
            sql_rollback(writer_sql(e));
        rb->repaired = 0;
        apply_free(&state);
        return rc;
    }
    json_t *provenance = json_pack("{s:s, s:s, s:s}", "tool", "reconciliation", "run", rb->run_id,
                                   "policy", recon_repair_name(rb->policy));
    struct bistore_outcome out;
    engine_commit_internal(e, repair_apply_batch, rb, provenance, rb->run_id, &out);
    json_decref(provenance);
    json_decref(out.result);
    if (out.err.code != BS_OK) {
        *err = out.err;
        rb->repaired = 0;
        return -1;
    }
    return 0;
}
