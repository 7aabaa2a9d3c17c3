/*
 * sql_raw_run (stores/sqlite/raw.c): a client's SQL under the authorizer,
 * on a real database with the gateway's schema, inside a transaction as
 * the writer runs it. Each denial must leave the gateway's tables as they
 * were and the authorizer must be gone afterwards (the gateway's own
 * statements run without it). Each test opens its own database.
 */
#define _GNU_SOURCE /* strcasestr */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stores/sqlite/internal.h"

static char dir[64];
static char path[96];
static struct sql_conn *conn;

static void open_db(void)
{
    snprintf(dir, sizeof dir, "/tmp/bistore-raw-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.db", dir);
    struct bs_error err;
    bs_error_clear(&err);
    conn = sql_open(path, true, &err);
    cr_assert_not_null(conn, "%s", err.message);
    cr_assert_eq(sql_exec(conn, "CREATE TABLE mine(a, b)", &err), 0, "%s", err.message);
    cr_assert_eq(sql_begin(conn, &err), 0, "%s", err.message);
}

static void close_db(void)
{
    if (sql_in_transaction(conn))
        sql_rollback(conn);
    sql_close(conn);
    char p[128];
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        unlink(p);
    }
    rmdir(dir);
}

TestSuite(raw_sql, .init = open_db, .fini = close_db);

/* Runs text with params (JSON text or NULL); the rows stay with the caller. */
static int run(const char *text, const char *params, json_t **rows, int64_t *rowcount,
               struct bs_error *err)
{
    json_t *p = params ? json_loads(params, 0, NULL) : NULL;
    bs_error_clear(err);
    *rows = NULL;
    *rowcount = -1;
    int rc = sql_raw_run(conn, text, p, rows, rowcount, err);
    json_decref(p);
    return rc;
}

static int64_t count(const char *sql)
{
    sqlite3_stmt *s = NULL;
    cr_assert_eq(sqlite3_prepare_v2(sql_db(conn), sql, -1, &s, NULL), SQLITE_OK, "%s", sql);
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
}

/* The statement must be refused as the client's mistake, naming `named`,
 * with nothing written and the transaction still open. */
static void expect_denied(const char *text, const char *named)
{
    json_t *rows;
    int64_t rowcount;
    struct bs_error err;
    int64_t schema = count("SELECT count(*) FROM sqlite_master");
    cr_expect_eq(run(text, NULL, &rows, &rowcount, &err), -1, "%s must be denied", text);
    cr_expect_null(rows);
    cr_expect_eq(err.code, BS_INVALID_REQUEST, "%s: %s", text, err.message);
    cr_expect_str_eq(err.field, "statement");
    if (named)
        cr_expect(strcasestr(err.message, named) != NULL, "%s: '%s' should name %s", text,
                  err.message, named);
    cr_expect(sql_in_transaction(conn), "%s ended the gateway's transaction", text);
    cr_expect_eq(count("SELECT count(*) FROM sqlite_master"), schema, "%s changed the schema",
                 text);
}

Test(raw_sql, rows_values_and_rowcount)
{
    json_t *rows;
    int64_t n;
    struct bs_error err;
    cr_assert_eq(
        run("INSERT INTO mine VALUES (?, ?), (?, ?)", "[\"x\", 1.5, 2, null]", &rows, &n, &err), 0,
        "%s", err.message);
    cr_expect_eq(n, 2);
    cr_expect_eq(json_array_size(rows), 0);
    json_decref(rows);
    cr_assert_eq(run("SELECT a, b FROM mine ORDER BY rowid", NULL, &rows, &n, &err), 0, "%s",
                 err.message);
    cr_expect_eq(n, 0, "a read changes no row");
    char *text = json_dumps(rows, JSON_COMPACT | JSON_SORT_KEYS);
    cr_expect_str_eq(text, "[{\"a\":\"x\",\"b\":1.5},{\"a\":2,\"b\":null}]");
    free(text);
    json_decref(rows);
}

Test(raw_sql, parameters_are_counted)
{
    json_t *rows;
    int64_t n;
    struct bs_error err;
    cr_expect_eq(run("SELECT ?, ?", "[1]", &rows, &n, &err), -1);
    cr_expect_str_eq(err.field, "parameters");
    cr_expect_eq(run("SELECT ?", NULL, &rows, &n, &err), -1);
    cr_expect_eq(run("SELECT 1; DELETE FROM mine", NULL, &rows, &n, &err), -1);
    cr_expect(strstr(err.message, "one statement") != NULL, "%s", err.message);
    cr_expect_eq(run("SELECT 1; -- a comment", NULL, &rows, &n, &err), 0, "%s", err.message);
    json_decref(rows);
    cr_expect_eq(run("  ", NULL, &rows, &n, &err), -1);
}

Test(raw_sql, writes_to_the_gateways_tables_are_denied)
{
    expect_denied("INSERT INTO entities(id, type, properties, version, hash, created_at, "
                  "updated_at) VALUES ('x', 'P', '{}', 1, 'h', 't', 't')",
                  "entities");
    expect_denied("UPDATE main.Entities SET version = 2", "entities");
    expect_denied("DELETE FROM relationships", "relationships");
    expect_denied("INSERT INTO bistore_intents(seq, tx_id, statements, created_at)"
                  " VALUES (99, 't', '[]', 'now')",
                  "bistore_intents");
    expect_denied("INSERT INTO \"BISTORE_META\" VALUES ('k', 'v')", "bistore_meta");
    cr_expect_eq(count("SELECT count(*) FROM bistore_intents"), 0);
}

Test(raw_sql, schema_of_the_gateway_is_denied)
{
    expect_denied("DROP TABLE entities", "entities");
    expect_denied("ALTER TABLE entities ADD COLUMN z", "entities");
    expect_denied("ALTER TABLE bistore_meta RENAME TO m", "bistore_meta");
    expect_denied("CREATE INDEX i ON entities(type)", "entities");
    expect_denied("DROP INDEX entities_type_id", "entities");
    expect_denied("CREATE TABLE bistore_new(a)", "bistore_new");
    expect_denied("CREATE VIEW sqlite_v AS SELECT 1", "sqlite_v");
}

Test(raw_sql, escapes_are_denied)
{
    expect_denied("ATTACH ':memory:' AS o", "ATTACH");
    expect_denied("DETACH temp", "DETACH");
    expect_denied("VACUUM", "VACUUM");
    expect_denied("VACUUM INTO '/tmp/x.db'", "VACUUM");
    expect_denied("PRAGMA writable_schema = 1", "PRAGMA");
    expect_denied("SELECT * FROM pragma_table_info('entities')", "PRAGMA");
    expect_denied("SELECT load_extension('x')", "load_extension");
    expect_denied("COMMIT", "COMMIT");
    expect_denied("SAVEPOINT x", "SAVEPOINT");
    expect_denied("CREATE TEMP TABLE entities(id)", "TEMP");
    expect_denied("CREATE TEMP TRIGGER t AFTER INSERT ON main.entities BEGIN SELECT 1; END",
                  "trigger");
    expect_denied("CREATE TRIGGER t AFTER DELETE ON mine BEGIN DELETE FROM entities; END",
                  "trigger");
    expect_denied("CREATE VIRTUAL TABLE f USING fts5(a)", "virtual");
    expect_denied("ANALYZE", NULL);
    expect_denied("UPDATE sqlite_master SET sql = 'x' WHERE name = 'entities'", "sqlite_master");
    expect_denied("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
                  " SELECT count(*) FROM c",
                  "longer than");
}

Test(raw_sql, a_service_owns_its_tables)
{
    json_t *rows;
    int64_t n;
    struct bs_error err;
    static const char *const ok[] = {
        "CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, v)",
        "CREATE TABLE keyed(k TEXT PRIMARY KEY, u TEXT UNIQUE)", /* sqlite_autoindex_keyed_1, _2 */
        "CREATE INDEX t_v ON t(v)",
        "INSERT INTO t(v) VALUES (1)",
        "CREATE VIEW tv AS SELECT v FROM t",
        "ALTER TABLE t ADD COLUMN w",
        "SELECT count(*) FROM entities JOIN bistore_intents",
        "DROP VIEW tv",
        "DROP TABLE t",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        cr_expect_eq(run(ok[i], NULL, &rows, &n, &err), 0, "%s: %s", ok[i], err.message);
        json_decref(rows);
    }
}

Test(raw_sql, the_authorizer_is_removed_afterwards)
{
    json_t *rows;
    int64_t n;
    struct bs_error err;
    expect_denied("DELETE FROM entities", "entities");
    /* the gateway's own statement on the same connection runs unconfined */
    cr_expect_eq(sql_exec(conn, "DELETE FROM entities", &err), 0, "%s", err.message);
    cr_expect_eq(run("SELECT 1 AS one", NULL, &rows, &n, &err), 0);
    json_decref(rows);
    cr_expect(sql_raw_reserved_name("Entities"));
    cr_expect(sql_raw_reserved_name("bistore_x"));
    cr_expect(sql_raw_reserved_name("sqlite_stat1"));
    cr_expect_not(sql_raw_reserved_name("mine"));
    cr_expect_not(sql_raw_reserved_name("entities2"));
}
