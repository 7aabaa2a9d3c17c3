/*
 * libFuzzer target: a client's raw SQL ("sql" operation) under the
 * authorizer, sql_raw_run (stores/sqlite/raw.c), on a real SQLite database
 * with the gateway's schema and one row in each of its record tables,
 * inside a transaction as the writer runs it (rolled back after each input).
 *
 * Input: the statement text. Invariant (abort() on a break): whatever the
 * statement does or is refused, the gateway's own tables (entities,
 * relationships, bistore_*) keep their schema and their rows, as read
 * before the rollback.
 */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stores/sqlite/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sql_conn *conn;
static char *baseline;

/* The gateway's tables as text: their schema and every row (quote()d). */
static char *fingerprint(void)
{
    static const char *const sql =
        "SELECT coalesce((SELECT group_concat(type || name || coalesce(sql, ''), '|') FROM "
        "(SELECT * FROM sqlite_schema WHERE tbl_name IN ('entities', 'relationships') OR "
        "tbl_name LIKE 'bistore\\_%' ESCAPE '\\' ORDER BY name)), '') || '#' || "
        "coalesce((SELECT group_concat(quote(id) || quote(type) || quote(properties), ',') "
        "FROM entities), '') || '#' || "
        "coalesce((SELECT group_concat(quote(id) || quote(source_id) || quote(target_id), ',') "
        "FROM relationships), '') || '#' || "
        "(SELECT count(*) FROM bistore_meta)";
    sqlite3_stmt *s = NULL;
    char *out = NULL;
    if (sqlite3_prepare_v2(sql_db(conn), sql, -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(s, 0);
        out = t ? strdup((const char *)t) : NULL;
    } else {
        fprintf(stderr, "fuzz_sql_raw: fingerprint: %s\n", sqlite3_errmsg(sql_db(conn)));
    }
    sqlite3_finalize(s);
    return out;
}

static char dir[] = "/tmp/bistore-fuzz-sql-XXXXXX";
static char path[64];

/* The database's files go when the run ends. */
static void cleanup(void)
{
    sql_close(conn);
    conn = NULL;
    char p[96];
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        unlink(p);
    }
    rmdir(dir);
    free(baseline);
}

static void setup(void)
{
    struct bs_error err;
    bs_error_clear(&err);
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof path, "%s/t.db", dir);
    conn = sql_open(path, true, &err);
    if (!conn || sql_exec(conn, "CREATE TABLE mine(a, b)", &err) != 0 ||
        sql_exec(conn,
                 "INSERT INTO entities(id, type, properties, version, hash, created_at, "
                 "updated_at) VALUES ('e1', 'Person', '{}', 1, 'h', 't', 't'), ('e2', "
                 "'Person', '{}', 1, 'h', 't', 't');"
                 "INSERT INTO relationships(id, type, source_id, target_id, properties, version, "
                 "hash, created_at, updated_at) VALUES ('r1', 'KNOWS', 'e1', 'e2', '{}', 1, "
                 "'h', 't', 't')",
                 &err) != 0) {
        fprintf(stderr, "fuzz_sql_raw: setup: %s\n", err.message);
        abort();
    }
    atexit(cleanup);
    baseline = fingerprint();
    if (!baseline)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!conn)
        setup();
    if (size > 64 * 1024)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct bs_error err;
    bs_error_clear(&err);
    if (sql_begin(conn, &err) != 0) {
        free(text);
        return 0;
    }
    json_t *rows = NULL;
    int64_t rowcount = -1;
    (void)sql_raw_run(conn, text, NULL, &rows, &rowcount, &err);
    json_decref(rows);
    char *now = fingerprint();
    if (now && strcmp(now, baseline) != 0) {
        fprintf(stderr, "fuzz_sql_raw: the gateway's tables changed:\n%s\n%s\n", baseline, now);
        abort();
    }
    free(now);
    if (sql_in_transaction(conn))
        sql_rollback(conn);
    free(text);
    return 0;
}
