/*
 * Inside stores/sqlite/: the connection, its statement cache and the step
 * helpers the files of this folder share. Tests may include it for the raw
 * handle and plain statements; nothing else of the gateway does.
 */
#ifndef BISTORE_SQLITE_INTERNAL_H
#define BISTORE_SQLITE_INTERNAL_H

#include <sqlite3.h>

#include "stores/sqlite/sqlite.h"

/* Every statement a connection caches (prepared the first time it runs). */
enum sql_stmt_id {
    Q_ENTITY_GET,
    Q_ENTITY_EXISTS,
    Q_ENTITY_INSERT,
    Q_ENTITY_UPDATE,
    Q_ENTITY_DELETE,
    Q_ENTITY_LIST,
    Q_ENTITY_LIST_TYPE,
    Q_RELS_OF_ENTITY,
    Q_REL_GET,
    Q_REL_EXISTS,
    Q_REL_INSERT,
    Q_REL_DELETE,
    Q_INTENT_INSERT,
    Q_INTENT_MARK_APPLIED,
    Q_INTENT_PENDING,
    Q_INTENT_MAX_SEQ,
    Q_INTENT_GET_PENDING,
    Q_INTENT_SET_REFUSED,
    Q_INTENT_RESOLVE,
    Q_TX_SET_ERROR_OF_SEQ,
    Q_TX_INSERT,
    Q_TX_GET,
    Q_TX_LIST,
    Q_IDEM_GET,
    Q_IDEM_INSERT,
    Q_META_GET,
    Q_META_SET,
    Q_RUN_INSERT,
    Q_RUN_UPDATE,
    Q_RUN_MARK_INTERRUPTED,
    Q_RUN_GET,
    Q_RUN_LIST,
    Q_RUN_N,
    Q_FINDING_INSERT,
    Q_FINDING_PAGE,
    Q_FINDING_SET_ACTION,
    Q_SCAN_ENTITIES_FAST,
    Q_SCAN_ENTITIES_DEEP,
    Q_SCAN_RELS_FAST,
    Q_SCAN_RELS_DEEP,
    Q_SCAN_REL_TYPES,
    Q_SCAN_COUNT,
    Q_REREAD_ENTITY,
    Q_REREAD_RELATIONSHIP,
    Q_RANGE_SUMS_ENTITIES,
    Q_RANGE_SUMS_RELS,
    Q_RANGE_KEYS_ENTITIES,
    Q_RANGE_KEYS_RELS,
    Q_COUNT
};

struct sql_conn {
    sqlite3 *db;
    sqlite3_stmt *stmts[Q_COUNT];
};

/* Plain statements without results (BEGIN, PRAGMA...). A full disk fails
 * with storage_full, any other error storage_error; logged. */
int sql_exec(struct sql_conn *c, const char *sql, struct bs_error *err);
/* The raw handle, for tests that read the file as the gateway opened it. */
sqlite3 *sql_db(struct sql_conn *c);

/* The cached statement id (prepared from text the first time), reset and
 * unbound; NULL on a prepare error (err filled, logged). */
sqlite3_stmt *sql_stmt(struct sql_conn *c, enum sql_stmt_id id, const char *text,
                       struct bs_error *err);
/* Logs what failed and fills err from the connection's last error; -1. */
int sql_fail(struct sql_conn *c, struct bs_error *err, const char *what);
/* Binds v, or NULL when v is NULL. */
int sql_bind_text(sqlite3_stmt *s, int i, const char *v);
/* Column col as text into out ("" for NULL), cut to cap. */
void sql_copy_col(sqlite3_stmt *s, int col, char *out, size_t cap);
/* The bytes of the row s is on: its text and blob columns, as stored (a
 * page's budget; numbers count nothing). */
size_t sql_row_bytes(sqlite3_stmt *s);
/* Whether the row s is on ends a page of items: limit reached, or its
 * bytes would pass max_bytes after *used (a page holds one row at least);
 * false otherwise, with its bytes added to *used. */
bool sql_page_full(sqlite3_stmt *s, const json_t *items, int limit, size_t max_bytes, size_t *used);
/* Column col parsed as JSON (a new reference), or NULL (NULL or not JSON). */
json_t *sql_json_col(sqlite3_stmt *s, int col);
/* Runs a statement that returns no rows: 0, or -1 (err filled). */
int sql_step_done(struct sql_conn *c, sqlite3_stmt *s, struct bs_error *err, const char *what);
/* Runs an insert of a new row. */
enum sql_insert sql_step_create(struct sql_conn *c, sqlite3_stmt *s, struct bs_error *err,
                                const char *what);
/* Steps s for at most one row, read by read(s, out) (0, or -1 when the row
 * cannot be read); s is reset after. */
enum lookup sql_step_one(struct sql_conn *c, sqlite3_stmt *s,
                         int (*read)(sqlite3_stmt *s, void *out), void *out, const char *what,
                         struct bs_error *err);
/* Steps s (a `SELECT 1 ...`) for whether a row exists. */
enum lookup sql_step_exists(struct sql_conn *c, sqlite3_stmt *s, const char *what,
                            struct bs_error *err);

#endif
