/*
 * Power loss under the commit protocol's SQLite sequence (DESIGN.md
 * invariant 8; issue 9 item 4).
 *
 * The writer connection comes from the gateway's own sql_open, through the
 * SQLite fault shim (stores/sqlite/testvfs.h) in power-loss mode with then=stop.
 * Each transaction is what commit.c does to SQLite: BEGIN IMMEDIATE, entity
 * and relationship rows through the sql_* functions, the intent and the
 * audit row, COMMIT (the commit point: from here the transaction counts as
 * acknowledged), then the mark-applied step the protocol calls after Neo4j
 * committed (sql_intent_mark_applied). Neo4j plays no part in what SQLite
 * must keep, so it is left out.
 *
 * wal_autocheckpoint is lowered to CHECKPOINT_PAGES so that checkpoints and
 * WAL restarts come every transaction or two instead of every ~1,000 pages.
 * That keeps the test honest: a checkpoint, and the restart of the WAL by
 * the first writer after it, run the same code with the same sync flags
 * whatever the threshold; the threshold only sets how often they come.
 * Which commit crosses it (the client's or the mark's) and so which one
 * checkpoints, and which is the next writer, varies here as in the gateway:
 * with 16 pages, about half the checkpoints and half the restarts fall to
 * the mark.
 *
 * For every cut point over the whole run (every xWrite and xSync of the
 * database and the WAL) and a few seeds, the power fails there: a random
 * subset of the unsynced writes reaches the disk, some torn. The file is
 * then reopened with the real VFS and must pass PRAGMA integrity_check and
 * hold every acknowledged transaction whole; an unacknowledged one must be
 * whole or absent.
 *
 * BISTORE_TEST_POWERLOSS_SEEDS=N runs N seeds per test instead of one,
 * BISTORE_TEST_POWERLOSS_TXNS=K K transactions instead of TXNS (longer
 * sweeps, outside CI); BISTORE_TEST_POWERLOSS_VERBOSE names each failing
 * cut point, and BISTORE_TEST_POWERLOSS_CUT=N runs that one only, traced.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "stores/sqlite/internal.h" /* the raw handle, for reading back */
#include "stores/sqlite/testvfs.h"

#define TXNS 24
#define CHECKPOINT_PAGES 16
#define AT "2026-01-01T00:00:00.000Z"
#define STR_(x) #x
#define STR(x) STR_(x)

static char dir[256];
static char path[300];

static void remove_files(void)
{
    char p[320];
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        unlink(p);
    }
}

static void make_dir(void)
{
    log_set_level(LOG_ALWAYS); /* every run past its cut logs its I/O errors */
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/bistore-powerloss-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.db", dir);
}

static void remove_dir(void)
{
    testvfs_uninstall();
    remove_files();
    rmdir(dir);
}

TestSuite(powerloss, .init = make_dir, .fini = remove_dir);

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    char *end;
    long n = v ? strtol(v, &end, 10) : 0;
    return v && *v && !*end && n > 0 ? n : dflt;
}

/* Transaction t's shape: 1..3 entities, a relationship when it has two. */
static int entities_of(int t)
{
    return 1 + t % 3;
}

static void entity_id(char *out, size_t cap, int t, int i)
{
    snprintf(out, cap, "e%04d-%d", t, i);
}

/* Applies and commits transaction t as the protocol does; true when COMMIT
 * returned OK (the transaction is acknowledged). */
static bool commit_one(struct sql_conn *c, int t)
{
    struct bs_error err;
    bs_error_clear(&err);
    if (sql_begin(c, &err) != 0)
        return false;
    char pad[400];
    memset(pad, 'a' + t % 26, sizeof pad);
    pad[60 + (t * 37) % 300] = '\0'; /* rows of varied sizes */
    char props[600];
    int ok = 1;
    for (int i = 0; i < entities_of(t) && ok; i++) {
        struct sql_entity e = {.version = 1};
        entity_id(e.id, sizeof e.id, t, i);
        snprintf(e.type, sizeof e.type, "Person");
        snprintf(e.hash, sizeof e.hash, "0123456789abcdef");
        snprintf(e.created_at, sizeof e.created_at, AT);
        snprintf(e.updated_at, sizeof e.updated_at, AT);
        snprintf(props, sizeof props, "{\"n\":%d,\"pad\":\"%s\"}", t, pad);
        ok = sql_entity_create(c, &e, props, &err) == 0;
    }
    if (ok && entities_of(t) >= 2) {
        struct sql_relationship r = {.version = 1};
        snprintf(r.id, sizeof r.id, "r%04d", t);
        snprintf(r.type, sizeof r.type, "KNOWS");
        entity_id(r.source, sizeof r.source, t, 0);
        entity_id(r.target, sizeof r.target, t, 1);
        snprintf(r.hash, sizeof r.hash, "0123456789abcdef");
        snprintf(r.created_at, sizeof r.created_at, AT);
        snprintf(r.updated_at, sizeof r.updated_at, AT);
        ok = sql_relationship_create(c, &r, "{}", &err) == 0;
    }
    char tx_id[40], stmts[600];
    snprintf(tx_id, sizeof tx_id, "tx-%04d", t);
    snprintf(stmts, sizeof stmts,
             "[{\"statement\":\"UNWIND $rows AS r CREATE (n)\",\"pad\":\"%s\"}]", pad);
    ok = ok && sql_intent_insert(c, t, tx_id, stmts, AT, &err) == 0 &&
         sql_tx_insert(c, tx_id, t, "committed", AT, "[]", NULL, NULL, &err) == 0;
    if (!ok) {
        sql_rollback(c);
        return false;
    }
    return sql_commit(c, &err) == 0; /* rolled back when it fails */
}

/* Counts rows with a prefixed text key: SELECT count(*) FROM <sql> = ?1. */
static long long count_of(struct sql_conn *c, const char *sql, const char *key, long long seq)
{
    sqlite3_stmt *s = NULL;
    long long n = -1;
    if (sqlite3_prepare_v2(c->db, sql, -1, &s, NULL) == SQLITE_OK) {
        if (key)
            sqlite3_bind_text(s, 1, key, -1, SQLITE_TRANSIENT);
        else
            sqlite3_bind_int64(s, 1, seq);
        if (sqlite3_step(s) == SQLITE_ROW)
            n = sqlite3_column_int64(s, 0);
    }
    sqlite3_finalize(s);
    return n;
}

/* Rows of transaction t found, out of the rows it wrote (both returned). */
static int rows_of(struct sql_conn *c, int t, int *wrote)
{
    char id[64];
    int found = 0;
    *wrote = entities_of(t) + (entities_of(t) >= 2) + 2;
    for (int i = 0; i < entities_of(t); i++) {
        entity_id(id, sizeof id, t, i);
        found += count_of(c, "SELECT count(*) FROM entities WHERE id = ?1", id, 0) == 1;
    }
    if (entities_of(t) >= 2) {
        snprintf(id, sizeof id, "r%04d", t);
        found += count_of(c, "SELECT count(*) FROM relationships WHERE id = ?1", id, 0) == 1;
    }
    found += count_of(c, "SELECT count(*) FROM bistore_intents WHERE seq = ?1", NULL, t) == 1;
    snprintf(id, sizeof id, "tx-%04d", t);
    found += count_of(c, "SELECT count(*) FROM bistore_transactions WHERE tx_id = ?1", id, 0) == 1;
    return found;
}

static bool integrity_ok(struct sql_conn *c)
{
    sqlite3_stmt *s = NULL;
    bool ok = false;
    if (sqlite3_prepare_v2(c->db, "PRAGMA integrity_check", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        ok = strcmp((const char *)sqlite3_column_text(s, 0), "ok") == 0;
    sqlite3_finalize(s);
    return ok;
}

struct figures {
    long runs, acked, lost_runs, lost_txns, integrity_failures, torn_txns, unopenable;
    bool verbose; /* BISTORE_TEST_POWERLOSS_VERBOSE: name each failing cut point */
    const char *spec;
};

/*
 * Runs the workload through the shim with spec; returns the transactions
 * acknowledged (1..acked) and leaves the power off. *stats: the shim's.
 */
static int run_workload(const char *spec, int txns, struct testvfs_stats *stats)
{
    char msg[256] = "";
    remove_files();
    cr_assert_eq(testvfs_install(spec, msg, sizeof msg), 0, "%s", msg);
    struct bs_error err;
    bs_error_clear(&err);
    int acked = 0;
    struct sql_conn *c = sql_open(path, true, &err);
    if (c && sql_exec(c, "PRAGMA wal_autocheckpoint = " STR(CHECKPOINT_PAGES), &err) == 0) {
        for (int t = 1; t <= txns && !testvfs_powered_off(); t++) {
            if (!commit_one(c, t))
                break;
            acked = t;
            if (sql_intent_mark_applied(c, t, AT, &err) != 0)
                break;
        }
    }
    if (!testvfs_powered_off())
        testvfs_cut_now(); /* the run outlived its cut point: the power fails at the end */
    testvfs_get_stats(stats);
    sql_close(c);
    testvfs_uninstall();
    return acked;
}

/* Reopens the file with the real VFS and checks what run_workload acknowledged. */
static void check_after_cut(int acked, int txns, struct figures *f)
{
    struct bs_error err;
    bs_error_clear(&err);
    f->runs++;
    f->acked += acked;
    struct sql_conn *c = sql_open(path, true, &err);
    if (!c) {
        f->unopenable++;
        f->integrity_failures++;
        if (f->verbose)
            fprintf(stderr, "powerloss: cut %s: %d acknowledged, cannot open: %s\n", f->spec, acked,
                    err.message);
        return;
    }
    /* the checker's own commits need no fsync (its close checkpoints) */
    sql_exec(c, "PRAGMA synchronous = OFF", NULL);
    if (!integrity_ok(c))
        f->integrity_failures++;
    int lost = 0, first_lost = 0;
    for (int t = 1; t <= txns; t++) {
        int wrote, found = rows_of(c, t, &wrote);
        if (t <= acked && found != wrote && !lost++)
            first_lost = t;
        if (found != 0 && found != wrote)
            f->torn_txns++;
    }
    if (lost) {
        f->lost_runs++;
        f->lost_txns += lost;
    }
    if (f->verbose && (lost || !integrity_ok(c)))
        fprintf(stderr, "powerloss: cut %s: %d acknowledged, %d lost (first %d), integrity %s\n",
                f->spec, acked, lost, first_lost, integrity_ok(c) ? "ok" : "FAILED");
    sql_close(c);
}

/* One seed over every cut point of the run. */
static void sweep_seed(long seed, int txns, struct figures *f, long *cut_points)
{
    char spec[160];
    struct testvfs_stats dry;
    int all = run_workload("powerloss,cut=1000000000,then=stop,nofsync", txns, &dry);
    cr_assert_eq(all, txns, "the run without a cut commits everything");
    cr_assert_gt(dry.checkpoints, 2, "checkpoints: %ld", dry.checkpoints);

    cr_assert_gt(dry.wal_headers, 2, "WAL restarts: %ld", dry.wal_headers - 1);
    if (seed == 1)
        fprintf(stderr,
                "powerloss: %d transactions: %ld writes and syncs, %ld checkpoints (%ld started "
                "on an unsynced WAL), %ld WAL restarts (%ld wrote a frame before syncing the "
                "new header)\n",
                txns, dry.counted, dry.checkpoints, dry.unsynced_checkpoints, dry.wal_headers - 1,
                dry.unsynced_restarts);
    *cut_points = dry.counted;
    long only = env_long("BISTORE_TEST_POWERLOSS_CUT", 0);
    for (long cut = only ? only : 1; cut <= (only ? only : dry.counted); cut++) {
        snprintf(spec, sizeof spec, "powerloss,cut=%ld,seed=%ld,torn,then=stop,nofsync%s", cut,
                 seed, only ? ",trace" : "");
        struct testvfs_stats st;
        int acked = run_workload(spec, txns, &st);
        f->spec = spec;
        check_after_cut(acked, txns, f);
    }
}

static void sweep(long first_seed)
{
    long seeds = env_long("BISTORE_TEST_POWERLOSS_SEEDS", 1);
    int txns = (int)env_long("BISTORE_TEST_POWERLOSS_TXNS", TXNS);
    struct figures f = {.verbose = getenv("BISTORE_TEST_POWERLOSS_VERBOSE") != NULL};
    long cut_points = 0;
    int64_t t0 = time_monotonic_ms();
    for (long i = 0; i < seeds; i++)
        sweep_seed(first_seed + 3 * i, txns, &f, &cut_points);
    fprintf(stderr,
            "powerloss seed %ld%s: %ld cut points run (%ld per seed), %ld acknowledged "
            "transactions checked: %ld cut points lost acknowledged transactions (%ld "
            "transactions), %ld integrity failures (%ld unopenable), %ld transactions half "
            "there; %.1f s\n",
            first_seed, seeds > 1 ? " and more" : "", f.runs, cut_points, f.acked, f.lost_runs,
            f.lost_txns, f.integrity_failures, f.unopenable, f.torn_txns,
            (double)(time_monotonic_ms() - t0) / 1000.0);
    cr_expect_eq(f.lost_runs, 0, "%ld of %ld cut points lost acknowledged transactions",
                 f.lost_runs, f.runs);
    cr_expect_eq(f.integrity_failures, 0, "%ld of %ld cut points failed integrity_check",
                 f.integrity_failures, f.runs);
    cr_expect_eq(f.torn_txns, 0, "%ld transactions half there", f.torn_txns);
}

Test(powerloss, acknowledged_commits_survive_every_cut_seed_1, .timeout = 600)
{
    sweep(1);
}

Test(powerloss, acknowledged_commits_survive_every_cut_seed_2, .timeout = 600)
{
    sweep(2);
}

Test(powerloss, acknowledged_commits_survive_every_cut_seed_3, .timeout = 600)
{
    sweep(3);
}

/*
 * The mechanisms themselves, on the run without a cut: a checkpoint must
 * not copy the WAL into the database before the WAL is synced, and a
 * writer that restarts the WAL must sync its new header before it writes a
 * frame after it (SQLite's ticket ff5be73dee: otherwise the old header and
 * the old frames it did not overwrite come back after a power loss, over a
 * newer database). SQLite skips both syncs under synchronous = OFF.
 */
Test(powerloss, checkpoints_and_wal_restarts_sync_first)
{
    struct testvfs_stats dry;
    int all = run_workload("powerloss,cut=1000000000,then=stop,nofsync", TXNS, &dry);
    cr_assert_eq(all, TXNS);
    cr_expect_eq(dry.unsynced_checkpoints, 0, "%ld of %ld checkpoints started on an unsynced WAL",
                 dry.unsynced_checkpoints, dry.checkpoints);
    cr_expect_eq(dry.unsynced_restarts, 0,
                 "%ld of %ld WAL restarts wrote a frame before syncing the new header",
                 dry.unsynced_restarts, dry.wal_headers - 1);
}
