/*
 * libFuzzer target: request bytes to planned Cypher, with every pure step
 * between them (tests/fuzz/README in README.md's Tests section).
 *
 * Input: "METHOD PATH\nIDEMPOTENCY-KEY\nBODY" (the key line may be empty:
 * no key). The request goes through router_dispatch with bistore's route
 * table (handlers_routes), its handlers swapped for one that does what the
 * real ones do before the writer, with no store: the JSON pre-parse budget
 * and parse (body_object), the path id (path_id), the operations
 * (parse_operation with refs, or parse_single for a one-record route), the
 * Idempotency-Key request hash (idempotency_prepare), the record hashes
 * (canon_entity_hash, canon_relationship_hash, canon_hash), the Neo4j
 * maps and Cypher statements (canon_neo4j_map, cypher_*) and the client
 * Cypher check (cypher_raw_check).
 *
 * Invariants checked (abort() on a break):
 *   - the canonical JSON of the body is a fixed point:
 *     canon(parse(canon(x))) == canon(x), and canon_equal(x, parse(canon(x)));
 *   - canon_entity_hash (from canonical text) == canon_hash(canon_entity_record);
 *   - a label or relationship type that reaches Cypher passed model_valid_name,
 *     and every backquoted name in a planned (non-client) statement is
 *     [A-Za-z0-9_] only;
 *   - a path argument's length is what percent-decoding gives, within the URL;
 *   - a body the JSON budget let through parses to a tree within it: at most
 *     max_json_containers objects and arrays, and at most max_json_values
 *     plus one per container values (the budget counts commas).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/json_text.h"
#include "handlers/common.h"
#include "handlers/handlers.h"
#include "handlers/http/fields.h"
#include "handlers/http/router.h"
#include "stores/model/canon.h"
#include "stores/model/model.h"
#include "stores/neo4j/cypher.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The body limit of the fuzz runs (scripts/fuzz.sh's -max_len). */
#define FUZZ_MAX_INPUT (64 * 1024)
#define FUZZ_MAX_OPS 64

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_request: invariant broken at line %d: %s\n", __LINE__, #cond);   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct fuzz_ctx {
    const char *idem_key; /* NULL: none */
};

static const char *fuzz_lookup(void *ctx, enum lookup_kind kind, const char *name)
{
    const struct fuzz_ctx *c = ctx;
    if (kind != LOOKUP_HEADER)
        return NULL;
    if (strcmp(name, "Content-Type") == 0)
        return "application/json";
    if (strcmp(name, "Idempotency-Key") == 0)
        return c->idem_key;
    return NULL;
}

static bool name_byte(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/* Every `...` in a planned statement holds [A-Za-z0-9_] only. */
static void check_statement_text(const char *text)
{
    CHECK(text);
    const char *p = text;
    while ((p = strchr(p, '`')) != NULL) {
        const char *end = strchr(p + 1, '`');
        CHECK(end);
        CHECK(end > p + 1);
        for (const char *q = p + 1; q < end; q++)
            CHECK(name_byte(*q));
        p = end + 1;
    }
}

/* Adds the values and the objects and arrays of v to *values and *containers. */
static void tree_size(const json_t *v, size_t *values, size_t *containers)
{
    ++*values;
    size_t i;
    const char *key;
    json_t *child;
    if (json_is_array(v)) {
        ++*containers;
        json_array_foreach (v, i, child) {
            tree_size(child, values, containers);
        }
    } else if (json_is_object(v)) {
        ++*containers;
        json_object_foreach ((json_t *)v, key, child) {
            tree_size(child, values, containers);
        }
    }
}

/* canon(parse(canon(x))) == canon(x). */
static void check_canon_fixed_point(const json_t *v)
{
    char *c1 = json_canon_dumps(v);
    if (!c1)
        return; /* out of memory */
    json_error_t jerr;
    json_t *back = json_loads(c1, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!back) {
        fprintf(stderr, "fuzz_request: canonical JSON does not parse back: %s (%s)\n", jerr.text,
                c1);
        abort();
    }
    char *c2 = json_canon_dumps(back);
    CHECK(c2);
    if (strcmp(c1, c2) != 0) {
        fprintf(stderr, "fuzz_request: canonical form not a fixed point:\n%s\n%s\n", c1, c2);
        abort();
    }
    CHECK(canon_equal(v, back));
    free(c2);
    free(c1);
    json_decref(back);
}

/* The record hash both ways, then the Cypher of op (as apply.c plans it). */
static void plan_op(struct cypher_batch *b, const struct bs_op *op)
{
    json_t *empty = NULL;
    const json_t *props = op->properties;
    if (!props || !json_is_object(props)) {
        empty = json_object();
        if (!empty)
            return;
        props = empty;
    }
    char hash[HASH_STR_LEN] = "";
    bool entity = op->kind == OP_CREATE_ENTITY || op->kind == OP_UPDATE_ENTITY;
    bool rel = op->kind == OP_CREATE_RELATIONSHIP;
    if (entity || rel) {
        json_t *rec = entity ? canon_entity_record(op->id, op->type, (json_t *)props, 1)
                             : canon_relationship_record(op->id, op->type, op->source, op->target,
                                                         (json_t *)props, 1);
        char *text = json_canon_dumps(props);
        if (rec && text) {
            char h1[HASH_STR_LEN], h2[HASH_STR_LEN];
            struct buf scratch;
            buf_init(&scratch, (size_t)1 << 26);
            struct canon_record cr = {.id = op->id,
                                      .type = op->type,
                                      .source = op->source,
                                      .target = op->target,
                                      .properties = text,
                                      .properties_len = strlen(text),
                                      .version = 1};
            int rc = entity ? canon_entity_hash(&scratch, &cr, h2)
                            : canon_relationship_hash(&scratch, &cr, h2);
            if (canon_hash(rec, h1) == 0 && rc == 0) {
                if (strcmp(h1, h2) != 0) {
                    fprintf(stderr, "fuzz_request: record hashes differ: %s %s\n", h1, h2);
                    abort();
                }
                memcpy(hash, h1, sizeof hash);
            }
            buf_free(&scratch);
        }
        free(text);
        json_decref(rec);
    }
    switch (op->kind) {
    case OP_CREATE_ENTITY:
    case OP_UPDATE_ENTITY: {
        CHECK(op->kind == OP_UPDATE_ENTITY || model_valid_entity_type(op->type));
        json_t *node = canon_neo4j_map(op->id, props, 1, hash);
        if (node) {
            if (op->kind == OP_CREATE_ENTITY)
                (void)cypher_create_entity(b, op->type, node);
            else
                (void)cypher_update_entity(b, op->id, node);
        }
        break;
    }
    case OP_DELETE_ENTITY: (void)cypher_delete_entity(b, op->id); break;
    case OP_CREATE_RELATIONSHIP: {
        CHECK(model_valid_name(op->type));
        json_t *map = canon_neo4j_map(op->id, props, 1, hash);
        if (map)
            (void)cypher_create_relationship(b, op->type, op->source, op->target, map);
        break;
    }
    case OP_DELETE_RELATIONSHIP:
        /* the type is read from SQLite first; any valid name stands for it */
        (void)cypher_delete_relationship(b, "REL", op->id, op->id);
        break;
    case OP_CYPHER: {
        struct bs_error err;
        bs_error_clear(&err);
        if (cypher_raw_check(op->statement, op->parameters, &err) == 0) {
            json_t *params = op->parameters ? json_deep_copy(op->parameters) : NULL;
            (void)cypher_add_client_statement(b, op->statement, params);
        }
        break;
    }
    case OP_SQL: break;
    }
    json_decref(empty);
}

static void plan_txn(const struct bs_op *ops, size_t n)
{
    struct cypher_batch b;
    if (cypher_batch_init(&b) != 0)
        return;
    for (size_t i = 0; i < n; i++)
        plan_op(&b, &ops[i]);
    if (cypher_batch_finish(&b) == 0) {
        json_t *out = json_array();
        size_t i;
        json_t *stmt;
        json_array_foreach (b.statements, i, stmt) {
            if (!cypher_is_client_statement(stmt))
                check_statement_text(json_string_value(json_object_get(stmt, "statement")));
            bool merged;
            if (out)
                (void)cypher_append_merged(out, 0, stmt, &merged);
        }
        if (out) {
            (void)cypher_add_watermark_guard(out, "fuzz-store", 0, 1, 2);
            (void)cypher_join_guard(out);
        }
        json_decref(out);
    }
    cypher_batch_free(&b);
}

/* What a batch's "operations" field does (handlers/transactions.c), raw
 * statements allowed so that their checks run too. */
static void handle_batch(const json_t *body, struct bs_txn *txn)
{
    const json_t *ops = json_object_get(body, "operations");
    if (!json_is_array(ops) || json_array_size(ops) == 0 || json_array_size(ops) > FUZZ_MAX_OPS)
        return;
    size_t n = json_array_size(ops);
    txn->ops = calloc(n, sizeof *txn->ops);
    if (!txn->ops)
        return;
    struct refs refs = {0};
    struct bs_error err;
    bs_error_clear(&err);
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        char prefix[48];
        snprintf(prefix, sizeof prefix, "operations[%zu]", i);
        ok = parse_operation(json_array_get(ops, i), i, prefix, &txn->ops[i], &refs, NULL, &err);
        txn->n_ops = i + 1;
    }
    refs_free(&refs);
    if (ok)
        plan_txn(txn->ops, txn->n_ops);
}

static void fuzz_handler(struct app *app, const struct request *req, struct response *res)
{
    (void)app;
    CHECK(req->n_args <= 2);
    for (size_t i = 0; i < req->n_args; i++) {
        CHECK(req->arg_len[i] <= strlen(req->path));
        CHECK(req->args[i][req->arg_len[i]] == '\0');
    }
    const char *name = req->route_name;
    struct bs_op single = {.if_version = -1};
    if (req->n_args >= 1 && path_id(req, 0, "id", res)) {
        CHECK(req->arg_len[0] == strlen(req->args[0]));
        snprintf(single.id, sizeof single.id, "%s", req->args[0]);
    }
    response_free(res);
    memset(res, 0, sizeof *res);
    if (!req->body)
        return;
    json_t *body = body_object(req, res);
    if (!body)
        return;
    size_t values = 0, containers = 0;
    tree_size(body, &values, &containers);
    CHECK(containers <= req->max_json_containers);
    CHECK(values <= req->max_json_values + containers);
    check_canon_fixed_point(body);
    struct bs_txn txn = {0};
    if (idempotency_prepare(req, "POST /fuzz", body, &txn, res) && txn.idem_key) {
        char again[HASH_STR_LEN];
        CHECK(canon_hash(body, again) == 0 && strcmp(again, txn.idem_body_hash) == 0);
    }
    if (strcmp(name, "transactions.create") == 0) {
        handle_batch(body, &txn);
        txn_free_ops(&txn);
    } else {
        enum op_kind kind = strcmp(name, "relationships.create") == 0 ? OP_CREATE_RELATIONSHIP
                            : strcmp(name, "entities.patch") == 0     ? OP_UPDATE_ENTITY
                                                                      : OP_CREATE_ENTITY;
        struct response r2 = {0};
        if (parse_single(body, kind, &single, &r2))
            plan_txn(&single, 1);
        response_free(&r2);
        json_decref(single.properties);
        json_decref(single.metadata);
    }
    json_decref(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct route routes[64];
    static struct route_table table;
    if (!table.routes) {
        CHECK(handlers_routes.n <= sizeof routes / sizeof routes[0]);
        for (size_t i = 0; i < handlers_routes.n; i++) {
            routes[i] = handlers_routes.routes[i];
            routes[i].handler = fuzz_handler;
        }
        table.routes = routes;
        table.n = handlers_routes.n;
    }
    if (size > FUZZ_MAX_INPUT)
        return 0;
    char *copy = malloc(size + 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    /* line 1: method and path; line 2: the Idempotency-Key; the rest: the body */
    char *nl1 = memchr(copy, '\n', size);
    char *sp = memchr(copy, ' ', nl1 ? (size_t)(nl1 - copy) : size);
    if (!sp || !nl1) {
        free(copy);
        return 0;
    }
    *sp = '\0';
    *nl1 = '\0';
    char *key = nl1 + 1;
    char *nl2 = memchr(key, '\n', size - (size_t)(key - copy));
    char *body = NULL;
    size_t body_len = 0;
    if (nl2) {
        *nl2 = '\0';
        body = nl2 + 1;
        body_len = size - (size_t)(body - copy);
    }
    struct fuzz_ctx ctx = {.idem_key = *key ? key : NULL};
    static struct request req;
    memset(&req, 0, sizeof req);
    req.method = copy;
    req.path = sp + 1;
    req.body = body;
    req.body_len = body_len;
    req.max_json_values = 4096;
    req.max_json_containers = 1024;
    req.rid = "fuzz";
    req.route_index = -1;
    req.lookup = fuzz_lookup;
    req.lookup_ctx = &ctx;
    struct response res = {0};
    router_dispatch(&table, NULL, &req, &res);
    CHECK(res.status == 0 || (res.status >= 200 && res.status < 600));
    response_free(&res);
    free(copy);
    return 0;
}
