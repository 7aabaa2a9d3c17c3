/*
 * The data model: write operations as the commit protocol takes them, and
 * the rules every identifier and value must pass before it goes near a
 * store (DESIGN.md section 2). Types and property keys become Cypher
 * labels and keys, so these checks are what keeps client input out of
 * query text.
 */
#ifndef BISTORE_MODEL_H
#define BISTORE_MODEL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/ids.h"
#include "common/result.h"

/* The defaults of the limits model_set_limits changes (--max-properties,
 * --max-string-bytes). */
#define MAX_PROPERTIES 1024
#define MAX_STRING_BYTES ((size_t)1 << 20)
#define MAX_ARRAY_ITEMS 65536

enum op_kind {
    OP_CREATE_ENTITY,
    OP_CREATE_RELATIONSHIP,
    OP_UPDATE_ENTITY,
    OP_DELETE_ENTITY,
    OP_DELETE_RELATIONSHIP,
    OP_CYPHER, /* a raw Cypher statement (--allow-raw-statements) */
    OP_SQL,    /* a raw SQL statement (--allow-raw-statements) */
};

/* A raw statement's text, at most (a 16 MiB body holds no more). */
#define RAW_STATEMENT_MAX ((size_t)1 << 20)

/* One operation of a transaction, validated and with refs resolved. */
struct bs_op {
    enum op_kind kind;
    char id[ID_MAX_LEN + 1];     /* the entity or relationship acted on */
    char type[NAME_MAX_LEN + 1]; /* creates: entity type / relationship type */
    char source[ID_MAX_LEN + 1]; /* create_relationship */
    char target[ID_MAX_LEN + 1]; /* create_relationship */
    json_t *properties;          /* create: all; update: the patch (null removes); or NULL */
    json_t *metadata;            /* object or NULL */
    bool set_metadata;           /* update: metadata given (replaces) */
    int64_t if_version;          /* update/delete: expected version, or -1 */
    /* raw (OP_CYPHER, OP_SQL): the statement text (owned) and its
     * parameters (an object for Cypher, an array for SQL; or NULL) */
    char *statement;
    json_t *parameters;
};

/* A client transaction: what the writer needs, nothing of HTTP. */
struct bs_txn {
    struct bs_op *ops;
    size_t n_ops;
    json_t *provenance; /* object or NULL */
    /* Idempotency: key NULL when the request has none. */
    const char *idem_key;
    const char *idem_scope; /* "POST /v1/entities" */
    char idem_body_hash[17];
    /* The caller answers from "results" alone (a batch): without an
     * Idempotency-Key, whose stored result keeps them, the outcome's
     * "records" stays empty instead of holding one record per operation. */
    bool results_only;
    /* About what the transaction weighs in a Neo4j request (the request
     * body's length): a group's budget counts it. 0: unknown. */
    size_t size_bytes;
};

/*
 * The outcome of a transaction. On success `result` is
 *   {"tx_id", "results": [{"op","id","version"?}...], "records": [entity or
 *    relationship JSON, or null for deletes]}
 * ("records" is empty for a txn with results_only and no Idempotency-Key).
 * result is owned by the caller (json_decref it, bistore_outcome_clear):
 * the writer keeps no part of it, so the caller may change it (values
 * shared with txn's ops are the caller's already). neo4j_applied tells
 * whether Neo4j has it yet, and replayed is true when an Idempotency-Key
 * returned a stored result.
 */
struct bistore_outcome {
    json_t *result;
    bool neo4j_applied;
    bool replayed;
    /* With --replica-socket, the replica confirmed it but Neo4j's commit
     * failed (set by the thread that committed; engine_submit turns it into
     * 503 commit_in_doubt, whatever result says): with a replica only what
     * Neo4j committed is acknowledged, since a promotion may fence this
     * gateway before it replays the write, from a copy restored before the
     * replica had it. */
    bool in_doubt;
    struct bs_error err;
};

const char *op_kind_name(enum op_kind kind);
/* True for OP_CYPHER and OP_SQL. */
bool op_is_raw(enum op_kind kind);
/* True when txn holds a raw statement. */
bool txn_has_raw(const struct bs_txn *txn);
void txn_free_ops(struct bs_txn *txn);

/* ^[A-Za-z][A-Za-z0-9_]{0,63}$: entity types, relationship types, property keys. */
bool model_valid_name(const char *s);

/* The label every entity node carries next to its type's. */
#define MODEL_ENTITY_LABEL "Entity"

/*
 * An entity type: a valid name other than MODEL_ENTITY_LABEL. A node of type
 * Entity would carry that one label and no type label, which a deep
 * reconciliation reports for ever and no repair can change.
 */
bool model_valid_entity_type(const char *s);

/*
 * Checks a properties object. allow_null: a PATCH, where null removes a key.
 * On failure fills err (code invalid_request, field = prefix + key) and
 * returns false.
 */
bool model_check_properties(const json_t *props, bool allow_null, const char *prefix,
                            struct bs_error *err);

/*
 * The most properties one entity or relationship may carry and the most
 * bytes of one string value (or string array item) model_check_properties
 * accepts; 0 keeps a limit's current value. Process-wide: call it once at
 * start, before any thread checks properties (server/main.c does).
 */
void model_set_limits(size_t max_properties, size_t max_string_bytes);

#endif
