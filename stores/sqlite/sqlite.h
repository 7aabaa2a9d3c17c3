/*
 * The SQLite side: schema, connections, transactions and row operations.
 *
 * Every SQL text of the gateway is in stores/sqlite/ (conn.c: schema and
 * transactions; rows.c: entities and relationships; logs.c: intents, audit,
 * idempotency, meta; recon.c: reconciliation's bookkeeping and reads), and
 * every value travels as a bound parameter; scripts/check-layers.sh fails
 * on SQL written anywhere else. Callers name what they want done, never how.
 *
 * A `struct sql_conn` is one connection with its cached prepared statements,
 * used by one thread at a time. The writer thread owns the only connection
 * that writes; readers take connections from a pool (WAL lets them read
 * beside the writer). Nothing here knows HTTP or Neo4j.
 *
 * Functions return 0 on success (LOOKUP_FOUND where a row may be missing,
 * LOOKUP_MISSING when it is), and -1 (LOOKUP_FAILED) on an SQLite error
 * (logged; err filled with storage_error, or storage_full for a full disk).
 */
#ifndef BISTORE_SQLITE_H
#define BISTORE_SQLITE_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/ids.h"
#include "common/result.h"
#include "common/timeutil.h"
#include "stores/model/canon.h"
#include "stores/model/model.h"

struct sql_conn;

/* The outcome of inserting a new row: done, refused by a constraint (a
 * client's mistake the caller names: err filled, nothing logged), or an
 * SQLite failure. */
enum sql_insert { SQL_INSERTED = 0, SQL_REFUSED = 1, SQL_INSERT_FAILED = -1 };

/* A pool of read-only connections (bounded; callers wait when all are out). */
struct sql_pool {
    pthread_mutex_t lock;
    pthread_cond_t freed;
    struct sql_conn **free_conns;
    size_t n_free, n_open, max;
    char *path;
};

/* An entity row as stored. Strings owned by the struct (sql_entity_clear). */
struct sql_entity {
    char id[ID_MAX_LEN + 1];
    char type[NAME_MAX_LEN + 1];
    json_t *properties;
    json_t *metadata; /* NULL when none */
    int64_t version;
    char hash[HASH_STR_LEN];
    char created_at[TIMESTAMP_LEN];
    char updated_at[TIMESTAMP_LEN];
};

struct sql_relationship {
    char id[ID_MAX_LEN + 1];
    char type[NAME_MAX_LEN + 1];
    char source[ID_MAX_LEN + 1];
    char target[ID_MAX_LEN + 1];
    json_t *properties;
    int64_t version;
    char hash[HASH_STR_LEN];
    char created_at[TIMESTAMP_LEN];
    char updated_at[TIMESTAMP_LEN];
};

/* Opens path (creating it and the schema when writable). synchronous=FULL. */
struct sql_conn *sql_open(const char *path, bool writable, struct bs_error *err);
void sql_close(struct sql_conn *c);

int sql_pool_init(struct sql_pool *p, const char *path, size_t max);
struct sql_conn *sql_pool_get(struct sql_pool *p, struct bs_error *err);
void sql_pool_put(struct sql_pool *p, struct sql_conn *c);
void sql_pool_destroy(struct sql_pool *p);

/* BEGIN IMMEDIATE: a transaction holding SQLite's write lock. */
int sql_begin(struct sql_conn *c, struct bs_error *err);
/* Rolls back the open transaction (logged when there is none). */
void sql_rollback(struct sql_conn *c);
/* A SAVEPOINT inside the open transaction (one group member's rows), its
 * release, and its rollback (which releases it too). */
int sql_savepoint(struct sql_conn *c, struct bs_error *err);
int sql_savepoint_release(struct sql_conn *c, struct bs_error *err);
void sql_savepoint_rollback(struct sql_conn *c);
/* True while c is inside a transaction. SQLite may roll a whole
 * transaction back by itself after SQLITE_FULL, SQLITE_IOERR or
 * SQLITE_NOMEM; a caller that goes on after such an error asks this. */
bool sql_in_transaction(struct sql_conn *c);
/* Rows the connection's statements changed since it opened (SQLite's
 * total_changes): moves with every write it commits, so "nothing written
 * since" is one comparison. */
int64_t sql_total_changes(struct sql_conn *c);
/*
 * COMMIT. On failure the transaction is rolled back and err says whether it
 * may be durable all the same: outcome_unknown after an I/O error that can
 * come after the WAL frames reached the file (a failed fsync: WAL recovery
 * at the next open would bring the transaction back); storage_full or
 * storage_error when nothing of it can come back (a full disk, a failed
 * write, a busy database).
 */
int sql_commit(struct sql_conn *c, struct bs_error *err);

void sql_entity_clear(struct sql_entity *e);
void sql_relationship_clear(struct sql_relationship *r);
enum lookup sql_entity_get(struct sql_conn *c, const char *id, struct sql_entity *out,
                           struct bs_error *err);
/* Whether entity id exists (no row is read or parsed). */
enum lookup sql_entity_exists(struct sql_conn *c, const char *id, struct bs_error *err);
int sql_entity_insert(struct sql_conn *c, const struct sql_entity *e, struct bs_error *err);
/*
 * Inserts a new entity whose properties are already in canonical JSON
 * (properties_text; e->properties is not read). Refused by a constraint:
 * in practice, the id is taken.
 */
enum sql_insert sql_entity_create(struct sql_conn *c, const struct sql_entity *e,
                                  const char *properties_text, struct bs_error *err);
int sql_entity_update(struct sql_conn *c, const struct sql_entity *e, struct bs_error *err);
int sql_entity_delete(struct sql_conn *c, const char *id, struct bs_error *err);
/* Calls fn for each relationship touching entity id (as source or target). */
int sql_relationships_of(struct sql_conn *c, const char *id,
                         int (*fn)(const struct sql_relationship *r, void *arg), void *arg,
                         struct bs_error *err);
enum lookup sql_relationship_get(struct sql_conn *c, const char *id, struct sql_relationship *out,
                                 struct bs_error *err);
int sql_relationship_insert(struct sql_conn *c, const struct sql_relationship *r,
                            struct bs_error *err);
/* Whether relationship id exists (no row is read or parsed). */
enum lookup sql_relationship_exists(struct sql_conn *c, const char *id, struct bs_error *err);
/*
 * Inserts a new relationship whose properties are already in canonical
 * JSON (properties_text). Refused by a constraint: the id is taken, or an
 * endpoint does not exist (the foreign keys, on for every connection
 * sql_open makes).
 */
enum sql_insert sql_relationship_create(struct sql_conn *c, const struct sql_relationship *r,
                                        const char *properties_text, struct bs_error *err);
int sql_relationship_delete(struct sql_conn *c, const char *id, struct bs_error *err);
/* Entities ordered by id, after `after` (NULL: from the start), of type
 * (NULL: any): at most limit, and no more once their rows' text passes
 * max_bytes (one at least); *more tells whether a next page exists. */
int sql_entity_list(struct sql_conn *c, const char *type, const char *after, int limit,
                    size_t max_bytes, json_t *items, bool *more, struct bs_error *err);

/* The public JSON form of rows (new references). */
json_t *sql_entity_json(const struct sql_entity *e);
json_t *sql_relationship_json(const struct sql_relationship *r);

/* Intent log. statements: the Neo4j statements JSON text, replayed as is. */
int sql_intent_insert(struct sql_conn *c, int64_t seq, const char *tx_id, const char *statements,
                      const char *created_at, struct bs_error *err);
/*
 * The mark-applied step of the commit protocol: marks every intent with
 * seq <= upto applied (at `at`), in an autocommit transaction of its own,
 * or inside the transaction open on c (then it lasts if that one commits).
 */
int sql_intent_mark_applied(struct sql_conn *c, int64_t upto, const char *at, struct bs_error *err);
int sql_intent_max_seq(struct sql_conn *c, int64_t *seq, struct bs_error *err);
/* Pending intents with seq > after, in order, at most limit: calls fn for
 * each until it returns false. -1 only on an SQLite error. */
int sql_intent_pending(struct sql_conn *c, int64_t after, int limit,
                       bool (*fn)(int64_t seq, const char *statements, void *arg), void *arg,
                       struct bs_error *err);

/* A pending intent, for a replay Neo4j refused (sql_intent_get_pending). */
struct sql_intent {
    int64_t seq;
    char tx_id[UUID_STR_LEN];
    json_t *operations; /* its transaction's [{"op","id",...}], or NULL */
    json_t *refused;    /* Neo4j's refusal {"code","message"}, or NULL */
};
/* Intent seq, if it is pending; sql_intent_clear() it. */
enum lookup sql_intent_get_pending(struct sql_conn *c, int64_t seq, struct sql_intent *out,
                                   struct bs_error *err);
void sql_intent_clear(struct sql_intent *in);
/* Records (JSON text) or clears (NULL) Neo4j's refusal of pending intent seq. */
int sql_intent_set_refused(struct sql_conn *c, int64_t seq, const char *refused,
                           struct bs_error *err);
/* A resolution of a refused intent: its statements replaced (replayed as
 * usual afterwards), its refusal cleared, and its transaction's error set
 * to tx_error (JSON text: the refusal and the resolution). Inside the
 * caller's transaction. */
int sql_intent_resolve(struct sql_conn *c, int64_t seq, const char *statements,
                       const char *tx_error, struct bs_error *err);

/* Audit trail. seq < 0 for an aborted transaction. JSON texts may be NULL. */
int sql_tx_insert(struct sql_conn *c, const char *tx_id, int64_t seq, const char *state,
                  const char *created_at, const char *operations, const char *error,
                  const char *provenance, struct bs_error *err);
/*
 * Intents the writer knows Neo4j has whose mark is not written yet (it goes
 * with the next write): up to seq, applied at `at`; seq -1 when none. The
 * audit trail reads them as applied, so a read after a 2xx never says
 * pending.
 */
struct sql_landed {
    int64_t seq;
    char at[TIMESTAMP_LEN];
};
/* {"tx_id","state","created_at","applied_at","operations","error","provenance"} */
enum lookup sql_tx_get(struct sql_conn *c, const char *tx_id, const struct sql_landed *landed,
                       json_t **out, struct bs_error *err);
/* state: NULL, "pending", "applied", "committed" or "aborted"; after: row number cursor. */
int sql_tx_list(struct sql_conn *c, const char *state, int64_t after, int limit, size_t max_bytes,
                const struct sql_landed *landed, json_t *items, int64_t *last, bool *more,
                struct bs_error *err);

/* Idempotency: the body hash, stored result and transaction of key in scope. */
enum lookup sql_idem_get(struct sql_conn *c, const char *key, const char *scope,
                         char body_hash[HASH_STR_LEN], json_t **result, char tx_id[UUID_STR_LEN],
                         struct bs_error *err);
int sql_idem_insert(struct sql_conn *c, const char *key, const char *scope, const char *body_hash,
                    const char *result, const char *tx_id, const char *created_at,
                    struct bs_error *err);

/* Gateway bookkeeping (store id...). */
enum lookup sql_meta_get(struct sql_conn *c, const char *key, char *out, size_t cap,
                         struct bs_error *err);
int sql_meta_set(struct sql_conn *c, const char *key, const char *value, struct bs_error *err);

/* ---- a client's raw SQL (raw.c) ---- */

/*
 * Runs a client's one SQL statement on c (the writer's, inside its open
 * transaction) under the authorizer that confines it (raw.c says what it
 * denies); params: an array bound to ?1, ?2... (or NULL for none). On
 * success *rows (new) holds [{column: value}, ...] and *rowcount the rows
 * it changed. -1 with err: invalid_request (field "statement" or
 * "parameters") for the client's mistakes and denials, storage_error /
 * storage_full for SQLite's own failures (after which SQLite may have
 * rolled the whole transaction back: the caller checks).
 */
int sql_raw_run(struct sql_conn *c, const char *text, const json_t *params, json_t **rows,
                int64_t *rowcount, struct bs_error *err);
/* A table or index name a client's SQL may not create or write: the
 * gateway's (entities, relationships, bistore_*) or SQLite's (sqlite_*). */
bool sql_raw_reserved_name(const char *name);

#endif
