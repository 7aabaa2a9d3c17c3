/*
 * Applying one transaction's operations (stores/engine/apply.h): to SQLite,
 * in order, inside the writer's open transaction, and the matching Cypher.
 */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "stores/engine/internal.h"
#include "stores/model/canon.h"

/* Canonical JSON of one record: bounded by the request body, far below. */
#define CANON_TEXT_MAX ((size_t)1 << 31)

int apply_init(struct apply_state *state)
{
    memset(state, 0, sizeof *state);
    state->results = json_array();
    state->records = json_array();
    time_now_rfc3339(state->now);
    buf_init(&state->properties, CANON_TEXT_MAX);
    buf_init(&state->record, CANON_TEXT_MAX);
    if (cypher_batch_init(&state->cypher) != 0 || !state->results || !state->records) {
        apply_free(state);
        return -1;
    }
    return 0;
}

void apply_free(struct apply_state *state)
{
    cypher_batch_free(&state->cypher);
    json_decref(state->results);
    json_decref(state->records);
    free(state->stmt_first_op);
    buf_free(&state->properties);
    buf_free(&state->record);
    memset(state, 0, sizeof *state);
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
static int add_result(struct apply_state *state, const struct bs_op *op, int64_t version,
                      json_t *record)
{
    json_t *r = version > 0 ? json_pack("{s:s, s:s, s:I}", "op", op_kind_name(op->kind), "id",
                                        op->id, "version", (json_int_t)version)
                            : json_pack("{s:s, s:s}", "op", op_kind_name(op->kind), "id", op->id);
    if (!r || json_array_append_new(state->results, r) != 0) {
        json_decref(record);
        return -1;
    }
    if (state->skip_records)
        return 0;
    return json_array_append_new(state->records, record ? record : json_null());
}

/* add_result for a written entity or relationship; its record is built
 * only when someone will read it. */
static int add_entity_result(struct apply_state *state, const struct bs_op *op,
                             const struct sql_entity *e)
{
    json_t *record = NULL;
    if (!state->skip_records && !(record = sql_entity_json(e)))
        return -1;
    return add_result(state, op, e->version, record);
}

static int add_relationship_result(struct apply_state *state, const struct bs_op *op,
                                   const struct sql_relationship *r)
{
    json_t *record = NULL;
    if (!state->skip_records && !(record = sql_relationship_json(r)))
        return -1;
    return add_result(state, op, r->version, record);
}

/* e->hash for an update, whose properties are serialised again by the row write. */
static int entity_hash(struct sql_entity *e, struct bs_error *err)
{
    json_t *rec = canon_entity_record(e->id, e->type, e->properties, e->version);
    int rc = rec ? canon_hash(rec, e->hash) : -1;
    json_decref(rec);
    return rc == 0 ? 0 : nomem(err);
}

/* The canonical JSON of props in state->properties (for the hash and the row). */
static int properties_text(struct apply_state *state, const json_t *props, struct bs_error *err)
{
    buf_reset(&state->properties);
    return json_canon_append(&state->properties, props) == BUF_OK ? 0 : nomem(err);
}

/* The insert is the existence check: the primary key refuses a taken id. */
static int create_entity(struct engine *e, const struct bs_op *op, struct apply_state *state,
                         struct bs_error *err)
{
    struct sql_entity row = {0};
    snprintf(row.id, sizeof row.id, "%s", op->id);
    snprintf(row.type, sizeof row.type, "%s", op->type);
    row.properties = op->properties ? json_incref(op->properties) : json_object();
    row.metadata = json_incref(op->metadata);
    row.version = 1;
    snprintf(row.created_at, sizeof row.created_at, "%s", state->now);
    snprintf(row.updated_at, sizeof row.updated_at, "%s", state->now);
    int rc = -1;
    if (!row.properties) {
        nomem(err);
        goto out;
    }
    if (properties_text(state, row.properties, err) != 0)
        goto out;
    struct canon_record rec = {.id = row.id,
                               .type = row.type,
                               .properties = buf_str(&state->properties),
                               .properties_len = state->properties.len,
                               .version = row.version};
    if (canon_entity_hash(&state->record, &rec, row.hash) != 0) {
        nomem(err);
        goto out;
    }
    enum sql_insert created =
        sql_entity_create(writer_sql(e), &row, buf_str(&state->properties), err);
    if (created == SQL_REFUSED) {
        if (sql_entity_exists(writer_sql(e), op->id, err) == LOOKUP_FOUND) {
            bs_error_field(err, "id");
            bs_error_set(err, BS_ENTITY_EXISTS, "entity '%s' already exists", op->id);
        } else {
            log_error("insert of entity %s refused: %s", op->id, err->message);
        }
    }
    if (created != SQL_INSERTED)
        goto out;
    json_t *node = canon_neo4j_entity_map(row.id, row.properties, row.version, row.hash);
    if (node && cypher_create_entity(&state->cypher, row.type, node) == 0 &&
        add_entity_result(state, op, &row) == 0)
        rc = 0;
    else
        nomem(err);
out:
    sql_entity_clear(&row);
    return rc;
}

/* Fetches entity op->id for an update or delete, checking if_version. */
static int existing_entity(struct engine *e, const struct bs_op *op, struct sql_entity *row,
                           struct bs_error *err)
{
    enum lookup found = sql_entity_get(writer_sql(e), op->id, row, err);
    if (found == LOOKUP_FAILED)
        return -1;
    if (found == LOOKUP_MISSING) {
        bs_error_field(err, "id");
        return bs_error_set(err, BS_NOT_FOUND, "entity '%s' does not exist", op->id), -1;
    }
    if (op->if_version >= 0 && op->if_version != row->version) {
        bs_error_set(err, BS_VERSION_MISMATCH, "entity '%s' is at version %lld, not %lld", op->id,
                     (long long)row->version, (long long)op->if_version);
        return -1;
    }
    return 0;
}

static int update_entity(struct engine *e, const struct bs_op *op, struct apply_state *state,
                         struct bs_error *err)
{
    struct sql_entity row;
    if (existing_entity(e, op, &row, err) != 0) {
        sql_entity_clear(&row);
        return -1;
    }
    int rc = -1;
    const char *key;
    json_t *value;
    json_object_foreach (op->properties, key, value) {
        if (json_is_null(value))
            json_object_del(row.properties, key);
        else if (json_object_set(row.properties, key, value) != 0)
            goto out;
    }
    if (json_object_size(row.properties) > MAX_PROPERTIES) {
        bs_error_field(err, "properties");
        bs_error_set(err, BS_INVALID_REQUEST, "the update leaves more than %d properties",
                     MAX_PROPERTIES);
        goto out;
    }
    if (op->set_metadata) {
        json_decref(row.metadata);
        row.metadata = json_incref(op->metadata);
    }
    row.version++;
    snprintf(row.updated_at, sizeof row.updated_at, "%s", state->now);
    if (entity_hash(&row, err) != 0 || sql_entity_update(writer_sql(e), &row, err) != 0)
        goto out;
    json_t *node = canon_neo4j_entity_map(row.id, row.properties, row.version, row.hash);
    if (!node || cypher_update_entity(&state->cypher, row.id, node) != 0 ||
        add_entity_result(state, op, &row) != 0) {
        nomem(err);
        goto out;
    }
    rc = 0;
out:
    sql_entity_clear(&row);
    return rc;
}

static int delete_one_relationship(const struct sql_relationship *r, void *arg)
{
    struct sql_conn *sql = arg;
    return sql_relationship_delete(sql, r->id, NULL);
}

static int delete_entity(struct engine *e, const struct bs_op *op, struct apply_state *state,
                         struct bs_error *err)
{
    struct sql_entity row;
    int rc = existing_entity(e, op, &row, err);
    sql_entity_clear(&row);
    if (rc != 0)
        return -1;
    /* Its relationships go with it, in SQLite here and by DETACH DELETE in Neo4j. */
    struct sql_conn *sql = writer_sql(e);
    if (sql_relationships_of(sql, op->id, delete_one_relationship, sql, err) != 0) {
        if (err->code == BS_OK)
            bs_error_set(err, BS_STORAGE_ERROR, "SQLite: cannot delete relationships");
        return -1;
    }
    if (sql_entity_delete(sql, op->id, err) != 0)
        return -1;
    if (cypher_delete_entity(&state->cypher, op->id) != 0 || add_result(state, op, 0, NULL) != 0)
        return nomem(err);
    return 0;
}

int apply_note_rel_type(struct engine *e, struct apply_state *state, const char *type,
                        struct bs_error *err)
{
    for (size_t i = 0; i < e->n_rel_types; i++)
        if (strcmp(e->rel_types[i], type) == 0)
            return 0;
    for (size_t i = 0; i < state->n_new_rel_types; i++)
        if (strcmp(state->new_rel_types[i], type) == 0)
            return 0;
    /* Each new type costs a schema transaction in the writer and an index
     * in Neo4j: their number is bounded, and so is one transaction's. */
    size_t cap = sizeof state->new_rel_types / sizeof state->new_rel_types[0];
    if (e->n_rel_types + state->n_new_rel_types >= e->max_rel_types) {
        bs_error_set(err, BS_INVALID_REQUEST,
                     "relationship type '%s' would be new, and the stores hold %zu types "
                     "already, the most --max-relationship-types allows",
                     type, e->n_rel_types);
    } else if (state->n_new_rel_types >= cap) {
        bs_error_set(err, BS_INVALID_REQUEST,
                     "one transaction may bring at most %zu new relationship types; '%s' "
                     "would be one more: send it in another transaction",
                     cap, type);
    } else {
        state->new_rel_types[state->n_new_rel_types++] = type;
        return 0;
    }
    bs_error_field(err, "type");
    return -1;
}

static int endpoint_exists(struct engine *e, const char *id, const char *field,
                           struct bs_error *err)
{
    enum lookup found = sql_entity_exists(writer_sql(e), id, err);
    if (found == LOOKUP_MISSING) {
        bs_error_field(err, "%s", field);
        bs_error_set(err, BS_NOT_FOUND, "%s entity '%s' does not exist", field, id);
    }
    return found == LOOKUP_FOUND ? 0 : -1;
}

/*
 * Names the rule a refused relationship insert broke, checked in the order
 * a client is told: the source, the target, then the id. err keeps the
 * SQLite message when none of them explains it.
 */
static int relationship_refused(struct engine *e, const struct bs_op *op, struct bs_error *err)
{
    if (endpoint_exists(e, op->source, "source", err) != 0 ||
        endpoint_exists(e, op->target, "target", err) != 0)
        return -1;
    enum lookup found = sql_relationship_exists(writer_sql(e), op->id, err);
    if (found == LOOKUP_FOUND) {
        bs_error_field(err, "id");
        bs_error_set(err, BS_RELATIONSHIP_EXISTS, "relationship '%s' already exists", op->id);
    } else if (found == LOOKUP_MISSING) {
        log_error("insert of relationship %s refused: %s", op->id, err->message);
    }
    return -1;
}

/*
 * The insert is the check: the foreign keys refuse a missing endpoint
 * (entities deleted earlier in this transaction included) and the primary
 * key a taken id; only then do we look for which, to answer.
 */
static int create_relationship(struct engine *e, const struct bs_op *op, struct apply_state *state,
                               struct bs_error *err)
{
    struct sql_relationship r = {0};
    snprintf(r.id, sizeof r.id, "%s", op->id);
    snprintf(r.type, sizeof r.type, "%s", op->type);
    snprintf(r.source, sizeof r.source, "%s", op->source);
    snprintf(r.target, sizeof r.target, "%s", op->target);
    r.properties = op->properties ? json_incref(op->properties) : json_object();
    r.version = 1;
    snprintf(r.created_at, sizeof r.created_at, "%s", state->now);
    snprintf(r.updated_at, sizeof r.updated_at, "%s", state->now);
    int rc = -1;
    if (!r.properties) {
        nomem(err);
        goto out;
    }
    if (properties_text(state, r.properties, err) != 0)
        goto out;
    struct canon_record rec = {.id = r.id,
                               .type = r.type,
                               .source = r.source,
                               .target = r.target,
                               .properties = buf_str(&state->properties),
                               .properties_len = state->properties.len,
                               .version = r.version};
    if (canon_relationship_hash(&state->record, &rec, r.hash) != 0) {
        nomem(err);
        goto out;
    }
    if (apply_note_rel_type(e, state, op->type, err) != 0)
        goto out;
    enum sql_insert created =
        sql_relationship_create(writer_sql(e), &r, buf_str(&state->properties), err);
    if (created == SQL_REFUSED)
        relationship_refused(e, op, err);
    if (created != SQL_INSERTED)
        goto out;
    json_t *props = canon_neo4j_map(r.id, r.properties, r.version, r.hash);
    if (props &&
        cypher_create_relationship(&state->cypher, r.type, r.source, r.target, props) == 0 &&
        add_relationship_result(state, op, &r) == 0) {
        rc = 0;
    } else {
        nomem(err);
    }
out:
    sql_relationship_clear(&r);
    return rc;
}

static int delete_relationship(struct engine *e, const struct bs_op *op, struct apply_state *state,
                               struct bs_error *err)
{
    struct sql_relationship r;
    enum lookup found = sql_relationship_get(writer_sql(e), op->id, &r, err);
    int rc = -1;
    if (found == LOOKUP_MISSING) {
        bs_error_field(err, "id");
        bs_error_set(err, BS_NOT_FOUND, "relationship '%s' does not exist", op->id);
    } else if (found == LOOKUP_FOUND && sql_relationship_delete(writer_sql(e), op->id, err) == 0) {
        if (cypher_delete_relationship(&state->cypher, r.type, r.source, r.id) == 0 &&
            add_result(state, op, 0, NULL) == 0)
            rc = 0;
        else
            nomem(err);
    }
    sql_relationship_clear(&r);
    return rc;
}

/* A client's SQL statement, confined (stores/sqlite/raw.c); its rows and
 * rowcount go in its result. */
static int raw_sql(struct engine *e, const struct bs_op *op, struct apply_state *state,
                   struct bs_error *err)
{
    json_t *rows = NULL;
    int64_t rowcount = 0;
    if (sql_raw_run(writer_sql(e), op->statement, op->parameters, &rows, &rowcount, err) != 0)
        return -1;
    json_t *r = json_pack("{s:s, s:o, s:I}", "op", op_kind_name(op->kind), "rows", rows, "rowcount",
                          (json_int_t)rowcount);
    if (!r || json_array_append_new(state->results, r) != 0 ||
        (!state->skip_records && json_array_append_new(state->records, json_null()) != 0))
        return nomem(err);
    return 0;
}

/* A client's Cypher statement: a statement of its own (never merged), its
 * rows filled in once Neo4j answered (commit.c). Checked by the facade
 * before the writer saw it (cypher_raw_check). */
static int raw_cypher(const struct bs_op *op, struct apply_state *state, struct bs_error *err)
{
    json_t *r = json_pack("{s:s, s:[]}", "op", op_kind_name(op->kind), "rows");
    if (!r || json_array_append_new(state->results, r) != 0 ||
        (!state->skip_records && json_array_append_new(state->records, json_null()) != 0))
        return nomem(err);
    json_t *params = op->parameters ? json_incref(op->parameters) : json_object();
    if (!params || cypher_add_client_statement(&state->cypher, op->statement, params) != 0)
        return nomem(err);
    return 0;
}

/* Remembers which operation opened each Cypher statement (counting the
 * group still open), to name it on errors. */
static int track_statement(struct apply_state *state, size_t op_index)
{
    size_t groups = cypher_batch_count(&state->cypher) + (state->cypher.group_kind >= 0 ? 1 : 0);
    while (state->n_stmt_first_op < groups) {
        size_t *p = realloc(state->stmt_first_op, (state->n_stmt_first_op + 1) * sizeof *p);
        if (!p)
            return -1;
        state->stmt_first_op = p;
        state->stmt_first_op[state->n_stmt_first_op++] = op_index;
    }
    return 0;
}

int apply_txn(struct engine *e, const struct bs_txn *txn, struct apply_state *state,
              struct bs_error *err)
{
    /* A stored idempotency result keeps the records whatever the answer. */
    state->skip_records = txn->results_only && !txn->idem_key;
    for (size_t i = 0; i < txn->n_ops; i++) {
        const struct bs_op *op = &txn->ops[i];
        int rc;
        switch (op->kind) {
        case OP_CREATE_ENTITY: rc = create_entity(e, op, state, err); break;
        case OP_UPDATE_ENTITY: rc = update_entity(e, op, state, err); break;
        case OP_DELETE_ENTITY: rc = delete_entity(e, op, state, err); break;
        case OP_CREATE_RELATIONSHIP: rc = create_relationship(e, op, state, err); break;
        case OP_DELETE_RELATIONSHIP: rc = delete_relationship(e, op, state, err); break;
        case OP_SQL: rc = raw_sql(e, op, state, err); break;
        case OP_CYPHER: rc = raw_cypher(op, state, err); break;
        default: rc = (bs_error_set(err, BS_STORAGE_ERROR, "unknown operation"), -1);
        }
        if (rc != 0) {
            err->op_index = (long)i;
            return -1;
        }
        if (track_statement(state, i) != 0)
            return nomem(err);
        if (state->after_op && state->after_op(state->after_op_arg, state, err) != 0)
            return -1; /* err names its operation */
    }
    if (cypher_batch_finish(&state->cypher) != 0)
        return nomem(err);
    return 0;
}
