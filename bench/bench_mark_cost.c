/*
 * bench_mark_cost: what the mark-applied step costs under each synchronous
 * setting (stores/sqlite/, sql_intent_mark_applied; DESIGN.md invariant 8).
 *
 *   bench_mark_cost [--dir DIR] [--count N]
 *
 * For each of OFF (the old mark), NORMAL and FULL, on a fresh file in DIR
 * (default /tmp) opened by the gateway's sql_open (WAL, synchronous=FULL,
 * the default wal_autocheckpoint), N times (default 3,000): the protocol's
 * SQLite side of one transaction (BEGIN IMMEDIATE, an entity row, the
 * intent, COMMIT), then the mark with that setting for its statement and
 * FULL again after it. Prints the mark's latency (p50, p99, mean) and the
 * mean of the whole cycle, in milliseconds. Neo4j plays no part.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench_common.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "stores/sqlite/internal.h" /* raw statements: a benchmark of SQLite settings */

#define AT "2026-01-01T00:00:00.000Z"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The mark as the protocol runs it, with `mode` for its statement (NULL: no pragma). */
static int mark(struct sql_conn *c, const char *mode, int64_t upto, struct bs_error *err)
{
    char pragma[64];
    if (mode) {
        snprintf(pragma, sizeof pragma, "PRAGMA synchronous = %s", mode);
        if (sql_exec(c, pragma, err) != 0)
            return -1;
    }
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(c->db,
                                "UPDATE bistore_intents SET applied_at = ?2"
                                " WHERE applied_at IS NULL AND seq <= ?1",
                                -1, &s, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, upto);
        sqlite3_bind_text(s, 2, AT, -1, SQLITE_STATIC);
        rc = sqlite3_step(s) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    sqlite3_finalize(s);
    if (mode && sql_exec(c, "PRAGMA synchronous = FULL", err) != 0)
        return -1;
    return rc == SQLITE_OK ? 0 : -1;
}

static int one_transaction(struct sql_conn *c, long i, struct bs_error *err)
{
    struct sql_entity e = {.version = 1};
    snprintf(e.id, sizeof e.id, "mark-%ld", i);
    snprintf(e.type, sizeof e.type, "Person");
    snprintf(e.hash, sizeof e.hash, "0123456789abcdef");
    snprintf(e.created_at, sizeof e.created_at, AT);
    snprintf(e.updated_at, sizeof e.updated_at, AT);
    char tx[40];
    snprintf(tx, sizeof tx, "tx-%ld", i);
    if (sql_exec(c, "BEGIN IMMEDIATE", err) != 0)
        return -1;
    if (sql_entity_create(c, &e, "{\"name\":\"a person of some length\",\"n\":1}", err) != 0 ||
        sql_intent_insert(c, i, tx,
                          "[{\"statement\":\"UNWIND $rows AS r CREATE (n:Entity:Person)\"}]", AT,
                          err) != 0 ||
        sql_exec(c, "COMMIT", err) != 0) {
        sql_exec(c, "ROLLBACK", NULL);
        return -1;
    }
    return 0;
}

static int run(const char *dir, const char *label, const char *mode, long count)
{
    char path[512];
    snprintf(path, sizeof path, "%s/bench-mark-%ld.db", dir, (long)getpid());
    struct bs_error err;
    bs_error_clear(&err);
    struct sql_conn *c = sql_open(path, true, &err);
    double *lat = calloc((size_t)count, sizeof *lat);
    if (!c || !lat) {
        fprintf(stderr, "bench_mark_cost: %s\n", c ? "out of memory" : err.message);
        sql_close(c);
        free(lat);
        return -1;
    }
    double t0 = now_ms();
    int rc = 0;
    for (long i = 1; i <= count && rc == 0; i++) {
        rc = one_transaction(c, i, &err);
        double m0 = now_ms();
        if (rc == 0)
            rc = mark(c, mode, i, &err);
        lat[i - 1] = now_ms() - m0;
    }
    double total = now_ms() - t0;
    sql_close(c);
    char p[600];
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        unlink(p);
    }
    if (rc != 0) {
        fprintf(stderr, "bench_mark_cost: %s\n", err.message);
        free(lat);
        return -1;
    }
    double sum = 0;
    for (long i = 0; i < count; i++)
        sum += lat[i];
    qsort(lat, (size_t)count, sizeof *lat, cmp_double);
    printf("mark %-12s p50 %.3f ms  p99 %.3f ms  mean %.3f ms   whole cycle mean %.3f ms\n", label,
           lat[count / 2], lat[count * 99 / 100], sum / (double)count, total / (double)count);
    free(lat);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = "/tmp";
    long count = 3000;
    const struct bench_option options[] = {{"--dir", OPTION_STRING, &dir, 0, 0},
                                           {"--count", OPTION_LONG, &count, 100, 100000000},
                                           {NULL, OPTION_FLAG, NULL, 0, 0}};
    int parsed = bench_parse_args(
        "bench_mark_cost", "usage: bench_mark_cost [--dir DIR] [--count N]\n", argc, argv, options);
    if (parsed != 0)
        return parsed > 0 ? 0 : 2;
    log_set_level(LOG_WARN);
    if (run(dir, "OFF", "OFF", count) != 0 || run(dir, "NORMAL", "NORMAL", count) != 0 ||
        run(dir, "FULL (kept)", NULL, count) != 0)
        return 1;
    return 0;
}
