/*
 * A client's raw SQL (the "sql" operation of a transaction), run on the
 * writer's connection inside the gateway's open transaction, confined by
 * an SQLite authorizer that is installed only while the statement is
 * prepared and runs, then removed (the gateway's own statements never run
 * under it).
 *
 * What the authorizer allows: reads of anything; writes to the service's
 * own tables; CREATE/DROP/ALTER of the service's own tables, views and
 * indexes; REINDEX (which CREATE INDEX asks for too, and changes no row). What it denies, and why:
 *  - writes, DDL and indexes on the gateway's tables (entities,
 *    relationships, bistore_*) and on SQLite's own (sqlite_*, e.g.
 *    sqlite_stat1; not sqlite_sequence, which CREATE INDEX writes and
 *    which only the service's AUTOINCREMENT tables use); the schema table itself cannot be
 *    written directly anyway (SQLite refuses it, and the writer's
 *    connection runs in SQLITE_DBCONFIG_DEFENSIVE mode), while CREATE and
 *    DROP write it on their own, which the authorizer sees and allows;
 *  - ATTACH and DETACH, PRAGMA (its table functions too:
 *    pragma_table_info()), ANALYZE, and VACUUM (VACUUM INTO too),
 *    which has no authorizer action: its first word refuses it;
 *  - BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE: they would end or cut
 *    the gateway's own transaction in the middle of the protocol;
 *  - triggers, TEMP triggers included: a trigger fires for statements the
 *    gateway runs without the authorizer (a TEMP trigger on
 *    main.entities, or a trigger on a service table reached by an
 *    ON DELETE CASCADE from entities), so it would run the service's SQL
 *    unconfined, forging intents for instance;
 *  - every TEMP object: a TEMP table named entities would take the
 *    gateway's own unqualified statements;
 *  - virtual tables, load_extension() (also disabled on the connection)
 *    and fts3_tokenizer().
 * A statement runs at most RAW_SQL_TIME_LIMIT_MS (a progress handler) and
 * answers at most RAW_SQL_ROWS_MAX rows: the writer must not stall on it.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "stores/sqlite/internal.h"

#define RAW_SQL_TIME_LIMIT_MS 5000
#define RAW_SQL_ROWS_MAX 10000

/* What the authorizer saw: the first denial, to name it in the error. */
struct raw_auth {
    char reason[256];
    int64_t deadline_ms;
};

static bool name_is(const char *name, const char *want)
{
    return name && sqlite3_stricmp(name, want) == 0;
}

static bool name_starts(const char *name, const char *prefix)
{
    return name && sqlite3_strnicmp(name, prefix, (int)strlen(prefix)) == 0;
}

/* The schema tables: CREATE and DROP write them on their own (allowed);
 * a statement cannot write them directly (SQLite refuses it). */
static bool schema_table(const char *name)
{
    return name_is(name, "sqlite_master") || name_is(name, "sqlite_schema") ||
           name_is(name, "sqlite_temp_master") || name_is(name, "sqlite_temp_schema");
}

bool sql_raw_reserved_name(const char *name)
{
    return name_is(name, "entities") || name_is(name, "relationships") ||
           name_starts(name, "bistore_") || name_starts(name, "sqlite_");
}

/* Denies, keeping the first reason: what is denied, and the name it acts on. */
static int deny(struct raw_auth *a, const char *what, const char *name)
{
    if (!a->reason[0])
        snprintf(a->reason, sizeof a->reason, "%s: '%s'", what, name ? name : "?");
    return SQLITE_DENY;
}

/* The authorizer (sqlite3_set_authorizer): see the top of this file. */
static int raw_authorize(void *arg, int action, const char *a1, const char *a2, const char *db,
                         const char *trigger)
{
    struct raw_auth *a = arg;
    (void)trigger;
    switch (action) {
    case SQLITE_SELECT:
    case SQLITE_READ:
    case SQLITE_RECURSIVE: return SQLITE_OK;
    case SQLITE_INSERT:
    case SQLITE_UPDATE:
    case SQLITE_DELETE:
        if (schema_table(a1))
            return SQLITE_OK; /* CREATE/DROP's own rows; direct writes SQLite refuses */
        if (name_is(a1, "sqlite_sequence"))
            return SQLITE_OK; /* CREATE INDEX writes it; the gateway has no AUTOINCREMENT table */
        if (sql_raw_reserved_name(a1))
            return deny(a, "writing the table is denied: it is the gateway's (or SQLite's)", a1);
        if (name_is(db, "temp"))
            return deny(a, "writing the TEMP table is denied", a1);
        return SQLITE_OK;
    case SQLITE_CREATE_TABLE:
        /* made by SQLite itself for the first AUTOINCREMENT table (a
         * statement cannot create an sqlite_ name; its rows are SQLite's
         * bookkeeping of the service's tables) */
        if (name_is(a1, "sqlite_sequence"))
            return SQLITE_OK;
        /* fall through */
    case SQLITE_CREATE_VIEW:
    case SQLITE_DROP_TABLE:
    case SQLITE_DROP_VIEW:
        if (sql_raw_reserved_name(a1))
            return deny(a, "the name is the gateway's (or SQLite's): denied", a1);
        return SQLITE_OK;
    case SQLITE_CREATE_INDEX:
    case SQLITE_DROP_INDEX:
        if (sql_raw_reserved_name(a2))
            return deny(a, "indexes on the gateway's table are denied", a2);
        /* a PRIMARY KEY or UNIQUE of the service's table makes SQLite create
         * sqlite_autoindex_<table>_N itself (a statement cannot name one) */
        if (sql_raw_reserved_name(a1) && sqlite3_strnicmp(a1, "sqlite_autoindex_", 17) != 0)
            return deny(a, "the index name is the gateway's (or SQLite's): denied", a1);
        return SQLITE_OK;
    case SQLITE_ALTER_TABLE:
        if (sql_raw_reserved_name(a2))
            return deny(a, "ALTER TABLE of the gateway's table is denied", a2);
        return SQLITE_OK;
    case SQLITE_FUNCTION:
        if (name_is(a2, "load_extension") || name_is(a2, "fts3_tokenizer") ||
            name_is(a2, "readfile") || name_is(a2, "writefile"))
            return deny(a, "the function is denied", a2);
        return SQLITE_OK;
    case SQLITE_PRAGMA: return deny(a, "PRAGMA is denied", a1);
    case SQLITE_ATTACH: return deny(a, "ATTACH (and VACUUM INTO) is denied", a1);
    case SQLITE_DETACH: return deny(a, "DETACH is denied", a1);
    case SQLITE_TRANSACTION:
        return deny(a,
                    "BEGIN, COMMIT and ROLLBACK are denied: the statement runs inside the "
                    "gateway's transaction",
                    a1);
    case SQLITE_SAVEPOINT:
        return deny(a,
                    "SAVEPOINT/RELEASE is denied: the statement runs inside the "
                    "gateway's transaction",
                    a1);
    case SQLITE_CREATE_TRIGGER:
    case SQLITE_CREATE_TEMP_TRIGGER:
    case SQLITE_DROP_TRIGGER:
    case SQLITE_DROP_TEMP_TRIGGER:
        return deny(a, "triggers are denied (one would run for the gateway's own writes)", a1);
    case SQLITE_CREATE_TEMP_TABLE:
    case SQLITE_CREATE_TEMP_INDEX:
    case SQLITE_CREATE_TEMP_VIEW:
    case SQLITE_DROP_TEMP_TABLE:
    case SQLITE_DROP_TEMP_INDEX:
    case SQLITE_DROP_TEMP_VIEW:
        return deny(a, "TEMP objects are denied (one could hide the gateway's tables)", a1);
    case SQLITE_CREATE_VTABLE:
    case SQLITE_DROP_VTABLE: return deny(a, "virtual tables are denied", a1);
    case SQLITE_ANALYZE: return deny(a, "ANALYZE is denied", a1);
    case SQLITE_REINDEX: return SQLITE_OK; /* CREATE INDEX asks for it too; it changes no row */
    default: return deny(a, "this kind of statement is denied", a1);
    }
}

/* Stops a statement that runs past its deadline. */
static int raw_progress(void *arg)
{
    struct raw_auth *a = arg;
    return time_monotonic_ms() > a->deadline_ms;
}

/* A client's error (invalid_request, "statement"), or SQLite's own
 * (storage_error / storage_full, logged) when it is not the client's. */
static int raw_fail(struct sql_conn *c, int rc, const struct raw_auth *a, struct bs_error *err)
{
    int primary = rc & 0xff;
    if (primary == SQLITE_FULL || primary == SQLITE_IOERR || primary == SQLITE_NOMEM ||
        primary == SQLITE_CORRUPT || primary == SQLITE_CANTOPEN || primary == SQLITE_NOTADB)
        return sql_fail(c, err, "raw statement");
    bs_error_field(err, "statement");
    if (primary == SQLITE_AUTH && a->reason[0])
        bs_error_set(err, BS_INVALID_REQUEST, "SQL statement refused: %s", a->reason);
    else if (primary == SQLITE_INTERRUPT)
        bs_error_set(err, BS_INVALID_REQUEST, "SQL statement stopped: it ran longer than %d ms",
                     RAW_SQL_TIME_LIMIT_MS);
    else
        bs_error_set(err, BS_INVALID_REQUEST, "SQL statement failed: %s", sqlite3_errmsg(c->db));
    return -1;
}

static int raw_bind(sqlite3_stmt *s, const json_t *params, struct bs_error *err)
{
    int want = sqlite3_bind_parameter_count(s);
    if ((size_t)want != json_array_size(params)) {
        bs_error_field(err, "parameters");
        bs_error_set(err, BS_INVALID_REQUEST, "the statement takes %d parameters, %zu given", want,
                     json_array_size(params));
        return -1;
    }
    size_t i;
    const json_t *p;
    json_array_foreach (params, i, p) {
        int at = (int)i + 1, rc;
        switch (json_typeof(p)) {
        case JSON_STRING:
            rc = sqlite3_bind_text(s, at, json_string_value(p), (int)json_string_length(p),
                                   SQLITE_TRANSIENT);
            break;
        case JSON_INTEGER: rc = sqlite3_bind_int64(s, at, json_integer_value(p)); break;
        case JSON_REAL: rc = sqlite3_bind_double(s, at, json_real_value(p)); break;
        case JSON_TRUE: rc = sqlite3_bind_int(s, at, 1); break;
        case JSON_FALSE: rc = sqlite3_bind_int(s, at, 0); break;
        default: rc = sqlite3_bind_null(s, at); break;
        }
        if (rc != SQLITE_OK) {
            bs_error_set(err, BS_STORAGE_ERROR, "SQLite cannot bind parameter %d", at);
            return -1;
        }
    }
    return 0;
}

/* Column col of the row s is on, as JSON (new); NULL with err set. */
static json_t *raw_value(sqlite3_stmt *s, int col, struct bs_error *err)
{
    json_t *v = NULL;
    switch (sqlite3_column_type(s, col)) {
    case SQLITE_INTEGER: v = json_integer(sqlite3_column_int64(s, col)); break;
    case SQLITE_FLOAT:
        v = json_real(sqlite3_column_double(s, col));
        if (!v) /* infinity: JSON has no such number */
            v = json_null();
        break;
    case SQLITE_TEXT:
        v = json_stringn((const char *)sqlite3_column_text(s, col),
                         (size_t)sqlite3_column_bytes(s, col));
        if (!v) {
            bs_error_field(err, "statement");
            bs_error_set(err, BS_INVALID_REQUEST, "column '%s' holds text that is not UTF-8",
                         sqlite3_column_name(s, col));
            return NULL;
        }
        break;
    case SQLITE_BLOB:
        bs_error_field(err, "statement");
        bs_error_set(err, BS_INVALID_REQUEST,
                     "column '%s' is a BLOB, which JSON cannot carry: select hex(...) of it",
                     sqlite3_column_name(s, col));
        return NULL;
    default: v = json_null(); break;
    }
    if (!v)
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
    return v;
}

/* Steps s to its end, collecting its rows into rows. */
static int raw_step(struct sql_conn *c, sqlite3_stmt *s, const struct raw_auth *a, json_t *rows,
                    struct bs_error *err)
{
    for (;;) {
        int rc = sqlite3_step(s);
        if (rc == SQLITE_DONE)
            return 0;
        if (rc != SQLITE_ROW)
            return raw_fail(c, sqlite3_extended_errcode(c->db), a, err);
        if (json_array_size(rows) >= RAW_SQL_ROWS_MAX) {
            bs_error_field(err, "statement");
            bs_error_set(err, BS_INVALID_REQUEST,
                         "the SQL statement answers more than %d rows: add a LIMIT",
                         RAW_SQL_ROWS_MAX);
            return -1;
        }
        json_t *row = json_object();
        if (!row || json_array_append_new(rows, row) != 0)
            return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
        for (int col = 0; col < sqlite3_column_count(s); col++) {
            json_t *v = raw_value(s, col, err);
            if (!v || json_object_set_new(row, sqlite3_column_name(s, col), v) != 0)
                return err->code == BS_OK
                           ? (bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1)
                           : -1;
        }
    }
}

/* Whether text holds anything but blanks and comments (a second statement). */
static int raw_rest(struct sql_conn *c, const char *tail, struct bs_error *err)
{
    tail += strspn(tail, " \t\r\n;");
    if (!*tail)
        return 0;
    sqlite3_stmt *next = NULL;
    int rc = sqlite3_prepare_v2(c->db, tail, -1, &next, NULL);
    bool more = rc != SQLITE_OK || next != NULL;
    sqlite3_finalize(next);
    if (!more)
        return 0;
    bs_error_field(err, "statement");
    bs_error_set(err, BS_INVALID_REQUEST, "an sql operation holds one statement; this holds more");
    return -1;
}

/* Whether the statement's first word is VACUUM (which has no authorizer
 * action of its own), after blanks and comments. */
static bool starts_with_vacuum(const char *text)
{
    for (;;) {
        text += strspn(text, " \t\r\n");
        if (text[0] == '-' && text[1] == '-') {
            text += strcspn(text, "\n");
        } else if (text[0] == '/' && text[1] == '*') {
            const char *end = strstr(text + 2, "*/");
            if (!end)
                return false;
            text = end + 2;
        } else {
            return sqlite3_strnicmp(text, "vacuum", 6) == 0 &&
                   !(isalnum((unsigned char)text[6]) || text[6] == '_');
        }
    }
}

int sql_raw_run(struct sql_conn *c, const char *text, const json_t *params, json_t **rows,
                int64_t *rowcount, struct bs_error *err)
{
    if (starts_with_vacuum(text)) {
        bs_error_field(err, "statement");
        bs_error_set(err, BS_INVALID_REQUEST, "SQL statement refused: VACUUM is denied");
        return -1;
    }
    struct raw_auth a = {.deadline_ms = time_monotonic_ms() + RAW_SQL_TIME_LIMIT_MS};
    sqlite3_stmt *s = NULL;
    const char *tail = NULL;
    *rows = json_array();
    if (!*rows)
        return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
    sqlite3_set_authorizer(c->db, raw_authorize, &a);
    sqlite3_progress_handler(c->db, 1000, raw_progress, &a);
    int64_t before = sqlite3_total_changes64(c->db);
    int rc = sqlite3_prepare_v2(c->db, text, -1, &s, &tail);
    int out = -1;
    if (rc != SQLITE_OK) {
        raw_fail(c, sqlite3_extended_errcode(c->db), &a, err);
    } else if (!s) {
        bs_error_field(err, "statement");
        bs_error_set(err, BS_INVALID_REQUEST, "the SQL statement is empty");
    } else if (raw_rest(c, tail, err) == 0 && raw_bind(s, params, err) == 0 &&
               raw_step(c, s, &a, *rows, err) == 0) {
        *rowcount = sqlite3_total_changes64(c->db) - before;
        out = 0;
    }
    sqlite3_finalize(s);
    sqlite3_progress_handler(c->db, 0, NULL, NULL);
    sqlite3_set_authorizer(c->db, NULL, NULL);
    if (out != 0) {
        json_decref(*rows);
        *rows = NULL;
    }
    return out;
}
