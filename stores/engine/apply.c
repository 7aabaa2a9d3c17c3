/*
 * Applying one transaction's operations to SQLite, in order, inside the
 * writer's open SQLite transaction, and building the matching Cypher.
 * Each operation sees the effects of the ones before it, so refs, deletes
 * after creates and the like need no special cases.
 */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "stores/engine/internal.h"
#include "stores/model/canon.h"

/* Canonical JSON of one record: bounded by the request body, far below. */
#define CANON_TEXT_MAX ((size_t)1 << 31)

int apply_init(struct apply_state *st)
{
    memset(st, 0, sizeof *st);
    st->results = json_array();
    st->records = json_array();
    time_now_rfc3339(st->now);
    buf_init(&st->properties, CANON_TEXT_MAX);
    buf_init(&st->record, CANON_TEXT_MAX);
    if (cypher_batch_init(&st->cypher) != 0 || !st->results || !st->records) {
        apply_free(st);
        return -1;
    }
    return 0;
}

void apply_free(struct apply_state *st)
{
    cypher_batch_free(&st->cypher);
    json_decref(st->results);
    json_decref(st->records);
    free(st->stmt_first_op);
    buf_free(&st->properties);
    buf_free(&st->record);
    memset(st, 0, sizeof *st);
}

static int nomem(struct bs_error *err)
{
    bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
    return -1;
}

/*
 * Appends op's entry to results and, unless records are skipped, record
 * (consumed; NULL for a delete) to records. 0, or -1 on no memory.
 */
static int add_result(struct apply_state *st, const struct bs_op *op, int64_t version,
                      json_t *record)
{
    json_t *r = version > 0 ? json_pack("{s:s, s:s, s:I}", "op", op_kind_name(op->kind), "id",
                                        op->id, "version", (json_int_t)version)
                            : json_pack("{s:s, s:s}", "op", op_kind_name(op->kind), "id", op->id);
    if (!r || json_array_append_new(st->results, r) != 0) {
        json_decref(record);
        return -1;
    }
    if (st->skip_records)
        return 0;
    return json_array_append_new(st->records, record ? record : json_null());
}

/* add_result for a written entity or relationship; its record is built
 * only when someone will read it. */
static int add_entity_result(struct apply_state *st, const struct bs_op *op,
                             const struct sql_entity *e)
{
    json_t *record = NULL;
    if (!st->skip_records && !(record = sql_entity_json(e)))
        return -1;
    return add_result(st, op, e->version, record);
}

static int add_relationship_result(struct apply_state *st, const struct bs_op *op,
                                   const struct sql_relationship *r)
{
    json_t *record = NULL;
    if (!st->skip_records && !(record = sql_relationship_json(r)))
        return -1;
    return add_result(st, op, r->version, record);
}

/* e->hash for an update, whose properties are serialised again by the row write. */
static int entity_hash(struct sql_entity *e, struct bs_error *err)
{
    json_t *rec = canon_entity_record(e->id, e->type, e->properties, e->version);
    int rc = rec ? canon_hash(rec, e->hash) : -1;
    json_decref(rec);
    return rc == 0 ? 0 : nomem(err);
}

/* The canonical JSON of props in st->properties (for the hash and the row). */
static int properties_text(struct apply_state *st, const json_t *props, struct bs_error *err)
{
    buf_reset(&st->properties);
    return json_canon_append(&st->properties, props) == BUF_OK ? 0 : nomem(err);
}

/* The insert is the existence check: the primary key refuses a taken id. */
static int create_entity(struct bistore *bs, const struct bs_op *op, struct apply_state *st,
                         struct bs_error *err)
{
    struct sql_entity e = {0};
    snprintf(e.id, sizeof e.id, "%s", op->id);
    snprintf(e.type, sizeof e.type, "%s", op->type);
    e.properties = op->properties ? json_incref(op->properties) : json_object();
    e.metadata = json_incref(op->metadata);
    e.version = 1;
    snprintf(e.created_at, sizeof e.created_at, "%s", st->now);
    snprintf(e.updated_at, sizeof e.updated_at, "%s", st->now);
    int rc = -1;
    if (!e.properties) {
        nomem(err);
        goto out;
    }
    if (properties_text(st, e.properties, err) != 0)
        goto out;
    struct canon_record rec = {.id = e.id,
                               .type = e.type,
                               .properties = buf_str(&st->properties),
                               .properties_len = st->properties.len,
                               .version = e.version};
    if (canon_entity_hash(&st->record, &rec, e.hash) != 0) {
        nomem(err);
        goto out;
    }
    int created = sql_entity_create(bs->wconn, &e, buf_str(&st->properties), err);
    if (created == 1) {
        if (sql_entity_exists(bs->wconn, op->id, err) == 0) {
            bs_error_field(err, "id");
            bs_error_set(err, BS_ENTITY_EXISTS, "entity '%s' already exists", op->id);
        } else {
            log_error("insert of entity %s refused: %s", op->id, err->message);
        }
    }
    if (created != 0)
        goto out;
    json_t *node = canon_neo4j_map(e.id, e.properties, e.version, e.hash);
    if (node && cypher_create_entity(&st->cypher, e.type, node) == 0 &&
        add_entity_result(st, op, &e) == 0)
        rc = 0;
    else
        nomem(err);
out:
    sql_entity_clear(&e);
    return rc;
}

/* Fetches entity op->id for an update or delete, checking if_version. */
static int existing_entity(struct bistore *bs, const struct bs_op *op, struct sql_entity *e,
                           struct bs_error *err)
{
    int found = sql_entity_get(bs->wconn, op->id, e, err);
    if (found < 0)
        return -1;
    if (found == 1) {
        bs_error_field(err, "id");
        return bs_error_set(err, BS_NOT_FOUND, "entity '%s' does not exist", op->id), -1;
    }
    if (op->if_version >= 0 && op->if_version != e->version) {
        bs_error_set(err, BS_VERSION_MISMATCH, "entity '%s' is at version %lld, not %lld", op->id,
                     (long long)e->version, (long long)op->if_version);
        return -1;
    }
    return 0;
}

static int update_entity(struct bistore *bs, const struct bs_op *op, struct apply_state *st,
                         struct bs_error *err)
{
    struct sql_entity e;
    if (existing_entity(bs, op, &e, err) != 0) {
        sql_entity_clear(&e);
        return -1;
    }
    int rc = -1;
    const char *key;
    json_t *value;
    json_object_foreach (op->properties, key, value) {
        if (json_is_null(value))
            json_object_del(e.properties, key);
        else if (json_object_set(e.properties, key, value) != 0)
            goto out;
    }
    if (json_object_size(e.properties) > MAX_PROPERTIES) {
        bs_error_field(err, "properties");
        bs_error_set(err, BS_INVALID_REQUEST, "the update leaves more than %d properties",
                     MAX_PROPERTIES);
        goto out;
    }
    if (op->set_metadata) {
        json_decref(e.metadata);
        e.metadata = json_incref(op->metadata);
    }
    e.version++;
    snprintf(e.updated_at, sizeof e.updated_at, "%s", st->now);
    if (entity_hash(&e, err) != 0 || sql_entity_update(bs->wconn, &e, err) != 0)
        goto out;
    json_t *node = canon_neo4j_map(e.id, e.properties, e.version, e.hash);
    if (!node || cypher_update_entity(&st->cypher, e.id, node) != 0 ||
        add_entity_result(st, op, &e) != 0) {
        nomem(err);
        goto out;
    }
    rc = 0;
out:
    sql_entity_clear(&e);
    return rc;
}

static int delete_one_relationship(const struct sql_relationship *r, void *arg)
{
    struct bistore *bs = arg;
    return sql_relationship_delete(bs->wconn, r->id, NULL);
}

static int delete_entity(struct bistore *bs, const struct bs_op *op, struct apply_state *st,
                         struct bs_error *err)
{
    struct sql_entity e;
    int rc = existing_entity(bs, op, &e, err);
    sql_entity_clear(&e);
    if (rc != 0)
        return -1;
    /* Its relationships go with it, in SQLite here and by DETACH DELETE in Neo4j. */
    if (sql_relationships_of(bs->wconn, op->id, delete_one_relationship, bs, err) != 0) {
        if (err->code == BS_OK)
            bs_error_set(err, BS_STORAGE_ERROR, "SQLite: cannot delete relationships");
        return -1;
    }
    if (sql_entity_delete(bs->wconn, op->id, err) != 0)
        return -1;
    if (cypher_delete_entity(&st->cypher, op->id) != 0 || add_result(st, op, 0, NULL) != 0)
        return nomem(err);
    return 0;
}

/* Notes a relationship type whose constraint may not exist yet. */
void apply_note_rel_type(struct bistore *bs, struct apply_state *st, const char *type)
{
    for (size_t i = 0; i < bs->n_rel_types; i++)
        if (strcmp(bs->rel_types[i], type) == 0)
            return;
    for (size_t i = 0; i < st->n_new_rel_types; i++)
        if (strcmp(st->new_rel_types[i], type) == 0)
            return;
    if (st->n_new_rel_types < sizeof st->new_rel_types / sizeof st->new_rel_types[0])
        st->new_rel_types[st->n_new_rel_types++] = type;
}

static int endpoint_exists(struct bistore *bs, const char *id, const char *field,
                           struct bs_error *err)
{
    int found = sql_entity_exists(bs->wconn, id, err);
    if (found == 1) {
        bs_error_field(err, "%s", field);
        bs_error_set(err, BS_NOT_FOUND, "%s entity '%s' does not exist", field, id);
    }
    return found == 0 ? 0 : -1;
}

/*
 * Names the rule a refused relationship insert broke, checked in the order
 * a client is told: the source, the target, then the id. err keeps the
 * SQLite message when none of them explains it.
 */
static int relationship_refused(struct bistore *bs, const struct bs_op *op, struct bs_error *err)
{
    if (endpoint_exists(bs, op->source, "source", err) != 0 ||
        endpoint_exists(bs, op->target, "target", err) != 0)
        return -1;
    int found = sql_relationship_exists(bs->wconn, op->id, err);
    if (found == 0) {
        bs_error_field(err, "id");
        bs_error_set(err, BS_RELATIONSHIP_EXISTS, "relationship '%s' already exists", op->id);
    } else if (found == 1) {
        log_error("insert of relationship %s refused: %s", op->id, err->message);
    }
    return -1;
}

/*
 * The insert is the check: the foreign keys refuse a missing endpoint
 * (entities deleted earlier in this transaction included) and the primary
 * key a taken id; only then do we look for which, to answer.
 */
static int create_relationship(struct bistore *bs, const struct bs_op *op, struct apply_state *st,
                               struct bs_error *err)
{
    struct sql_relationship r = {0};
    snprintf(r.id, sizeof r.id, "%s", op->id);
    snprintf(r.type, sizeof r.type, "%s", op->type);
    snprintf(r.source, sizeof r.source, "%s", op->source);
    snprintf(r.target, sizeof r.target, "%s", op->target);
    r.properties = op->properties ? json_incref(op->properties) : json_object();
    r.version = 1;
    snprintf(r.created_at, sizeof r.created_at, "%s", st->now);
    snprintf(r.updated_at, sizeof r.updated_at, "%s", st->now);
    int rc = -1;
    if (!r.properties) {
        nomem(err);
        goto out;
    }
    if (properties_text(st, r.properties, err) != 0)
        goto out;
    struct canon_record rec = {.id = r.id,
                               .type = r.type,
                               .source = r.source,
                               .target = r.target,
                               .properties = buf_str(&st->properties),
                               .properties_len = st->properties.len,
                               .version = r.version};
    if (canon_relationship_hash(&st->record, &rec, r.hash) != 0) {
        nomem(err);
        goto out;
    }
    int created = sql_relationship_create(bs->wconn, &r, buf_str(&st->properties), err);
    if (created == 1)
        relationship_refused(bs, op, err);
    if (created != 0)
        goto out;
    json_t *props = canon_neo4j_map(r.id, r.properties, r.version, r.hash);
    if (props && cypher_create_relationship(&st->cypher, r.type, r.source, r.target, props) == 0 &&
        add_relationship_result(st, op, &r) == 0) {
        apply_note_rel_type(bs, st, op->type);
        rc = 0;
    } else {
        nomem(err);
    }
out:
    sql_relationship_clear(&r);
    return rc;
}

static int delete_relationship(struct bistore *bs, const struct bs_op *op, struct apply_state *st,
                               struct bs_error *err)
{
    struct sql_relationship r;
    int found = sql_relationship_get(bs->wconn, op->id, &r, err);
    int rc = -1;
    if (found == 1) {
        bs_error_field(err, "id");
        bs_error_set(err, BS_NOT_FOUND, "relationship '%s' does not exist", op->id);
    } else if (found == 0 && sql_relationship_delete(bs->wconn, op->id, err) == 0) {
        if (cypher_delete_relationship(&st->cypher, r.type, r.source, r.id) == 0 &&
            add_result(st, op, 0, NULL) == 0)
            rc = 0;
        else
            nomem(err);
    }
    sql_relationship_clear(&r);
    return rc;
}

/* Remembers which operation opened each Cypher statement, to name it on errors. */
static int track_statement(struct apply_state *st, size_t before, size_t op_index)
{
    /* A new group opens the statement after `before` closed ones; the group
     * still open is closed later, so track by group opening instead. */
    (void)before;
    size_t groups = cypher_batch_count(&st->cypher) + (st->cypher.group_kind >= 0 ? 1 : 0);
    while (st->n_stmt_first_op < groups) {
        size_t *p = realloc(st->stmt_first_op, (st->n_stmt_first_op + 1) * sizeof *p);
        if (!p)
            return -1;
        st->stmt_first_op = p;
        st->stmt_first_op[st->n_stmt_first_op++] = op_index;
    }
    return 0;
}

int apply_txn(struct bistore *bs, struct bs_txn *txn, struct apply_state *st, struct bs_error *err)
{
    /* A stored idempotency result keeps the records whatever the answer. */
    st->skip_records = txn->results_only && !txn->idem_key;
    for (size_t i = 0; i < txn->n_ops; i++) {
        const struct bs_op *op = &txn->ops[i];
        size_t before = cypher_batch_count(&st->cypher);
        int rc;
        switch (op->kind) {
        case OP_CREATE_ENTITY: rc = create_entity(bs, op, st, err); break;
        case OP_UPDATE_ENTITY: rc = update_entity(bs, op, st, err); break;
        case OP_DELETE_ENTITY: rc = delete_entity(bs, op, st, err); break;
        case OP_CREATE_RELATIONSHIP: rc = create_relationship(bs, op, st, err); break;
        case OP_DELETE_RELATIONSHIP: rc = delete_relationship(bs, op, st, err); break;
        default: rc = (bs_error_set(err, BS_STORAGE_ERROR, "unknown operation"), -1);
        }
        if (rc != 0) {
            err->op_index = (long)i;
            return -1;
        }
        if (track_statement(st, before, i) != 0)
            return nomem(err);
        if (st->after_op && st->after_op(st->after_op_arg, st, err) != 0)
            return -1; /* err names its operation */
    }
    if (cypher_batch_finish(&st->cypher) != 0)
        return nomem(err);
    return 0;
}
