/*
 * The SQLite fault shim (stores/sqlite/testvfs.h) itself: specs, the page cache it
 * keeps (unsynced writes visible to every handle, absent from the disk),
 * syncs that write through, the power cut in both modes, and injected
 * errors with nth=, times=, file= and after=. Each test runs in its own
 * process (Criterion) and its own directory.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stores/sqlite/testvfs.h"

static char dir[64];
static char path[96];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/bistore-testvfs-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.db", dir);
}

static void remove_dir(void)
{
    testvfs_uninstall();
    char p[128];
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        unlink(p);
    }
    rmdir(dir);
}

TestSuite(testvfs, .init = make_dir, .fini = remove_dir);

static void install(const char *spec)
{
    char msg[256] = "";
    cr_assert_eq(testvfs_install(spec, msg, sizeof msg), 0, "%s: %s", spec, msg);
}

/* A connection through the default VFS (the shim, once installed). */
static sqlite3 *db_open(void)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                 SQLITE_OK);
    return db;
}

/* A connection through the real VFS, whatever the default is. */
static sqlite3 *db_open_real(void)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, "unix"), SQLITE_OK);
    return db;
}

static int exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static long long value(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s = NULL;
    long long v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

static long long file_size(const char *suffix)
{
    char p[128];
    snprintf(p, sizeof p, "%s%s", path, suffix);
    struct stat st;
    return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

/* WAL mode, a table, synced (journal and first commits included). */
static sqlite3 *db_setup(void)
{
    sqlite3 *db = db_open();
    cr_assert_eq(exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                          " PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x INTEGER, pad TEXT)"),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    return db;
}

Test(testvfs, bad_specs_are_refused)
{
    static const char *const bad[] = {
        "",
        "bogus",
        "powerloss",
        "powerloss,cut=0",
        "powerloss,cut=x",
        "powerloss,cut=3,then=later",
        "powerloss,cut=3,after=nowhere",
        "powerloss,cut=3,after=ready:0",
        "powerloss,cut=3,op=write",
        "error",
        "error,op=seek",
        "error,op=write,rc=bogus",
        "error,op=write,times=0",
        "error,op=write,file=shm",
        "error,op=write,cut=3",
        "error,op=write,autocheckpoint=0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char msg[256] = "";
        cr_expect_eq(testvfs_install(bad[i], msg, sizeof msg), -1, "accepted: %s", bad[i]);
        cr_expect_neq(msg[0], '\0', "no message for %s", bad[i]);
    }
    install("powerloss,cut=7,seed=3,torn,then=stop,nofsync,after=after_sqlite_commit:2");
    install("error,op=sync,nth=2,times=forever,rc=SQLITE_IOERR_FSYNC,file=wal,after=ready");
    install("error,op=any,rc=nomem");
}

Test(testvfs, unsynced_writes_are_seen_by_every_handle_but_not_on_disk)
{
    install("powerloss,cut=1000000,then=stop");
    sqlite3 *db = db_setup();
    long long synced = file_size("-wal");
    cr_assert_gt(synced, 0, "FULL commits reach the disk");
    cr_assert_eq(exec(db, "PRAGMA synchronous=OFF"), SQLITE_OK);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(exec(db, "INSERT INTO t VALUES (1, printf('%.500c', 'x'))"), SQLITE_OK);
    cr_expect_eq(file_size("-wal"), synced, "unsynced commits stay in the page cache");
    sqlite3 *other = db_open();
    cr_expect_eq(value(other, "SELECT count(*) FROM t"), 50, "a second handle reads the cache");
    struct testvfs_stats st;
    testvfs_get_stats(&st);
    cr_expect_gt(st.writes, 50);
    cr_expect_eq(st.cut, false);

    /* one FULL commit syncs the WAL: everything before it reaches the disk */
    cr_assert_eq(exec(db, "PRAGMA synchronous=FULL; INSERT INTO t VALUES (2, '')"), SQLITE_OK);
    cr_expect_gt(file_size("-wal"), synced + 50 * 500);
    sqlite3 *real = db_open_real();
    cr_expect_eq(value(real, "SELECT count(*) FROM t"), 51, "the real VFS reads it from disk");
    sqlite3_close(real);
    sqlite3_close(other);
    sqlite3_close(db);
}

Test(testvfs, stop_mode_cut_loses_only_unsynced_commits)
{
    install("powerloss,cut=1000000,then=stop,torn");
    sqlite3 *db = db_setup();
    for (int i = 0; i < 20; i++)
        cr_assert_eq(exec(db, "INSERT INTO t VALUES (1, printf('%.300c', 'a'))"), SQLITE_OK);
    cr_assert_eq(exec(db, "PRAGMA synchronous=OFF"), SQLITE_OK);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(exec(db, "INSERT INTO t VALUES (2, printf('%.300c', 'b'))"), SQLITE_OK);
    testvfs_cut_now();
    cr_assert(testvfs_powered_off());
    struct testvfs_stats st;
    testvfs_get_stats(&st);
    cr_expect(st.cut);
    cr_expect_gt(st.cut_pending, 0);
    cr_expect_neq(exec(db, "INSERT INTO t VALUES (3, '')"), SQLITE_OK, "no I/O after the cut");
    sqlite3_close(db);
    cr_expect_eq(file_size("-wal") > 0, true, "closing after the cut deletes nothing");
    testvfs_uninstall();

    sqlite3 *real = db_open_real();
    sqlite3_stmt *s = NULL;
    cr_assert_eq(sqlite3_prepare_v2(real, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
    cr_expect_str_eq((const char *)sqlite3_column_text(s, 0), "ok");
    sqlite3_finalize(s);
    cr_expect_eq(value(real, "SELECT count(*) FROM t WHERE x = 1"), 20, "synced commits stay");
    long long unsynced = value(real, "SELECT count(*) FROM t WHERE x = 2");
    cr_expect(unsynced >= 0 && unsynced <= 20, "unsynced ones: some prefix (%lld)", unsynced);
    sqlite3_close(real);
}

Test(testvfs, kill_mode_cut_sigkills_the_process)
{
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        char msg[256];
        if (testvfs_install("powerloss,cut=40,seed=5,torn", msg, sizeof msg) != 0)
            _exit(3);
        sqlite3 *db = NULL;
        sqlite3_open(path, &db);
        exec(db, "PRAGMA journal_mode=WAL; CREATE TABLE t(x INTEGER, pad TEXT)");
        for (int i = 0; i < 1000; i++)
            exec(db, "INSERT INTO t VALUES (1, printf('%.300c', 'a'))");
        _exit(4); /* the cut never came */
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "status %d", status);
    sqlite3 *real = db_open_real();
    sqlite3_stmt *s = NULL;
    cr_assert_eq(sqlite3_prepare_v2(real, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
    cr_expect_str_eq((const char *)sqlite3_column_text(s, 0), "ok");
    sqlite3_finalize(s);
    long long rows = value(real, "SELECT count(*) FROM t");
    cr_expect(rows >= 1 && rows < 1000, "rows committed before the cut: %lld", rows);
    sqlite3_close(real);
}

/* Inserts until one fails; the number of successful inserts. */
static int insert_until_failure(sqlite3 *db, int max, int *rc)
{
    for (int i = 0; i < max; i++) {
        *rc = exec(db, "INSERT INTO t VALUES (1, printf('%.100c', 'e'))");
        if (*rc != SQLITE_OK)
            return i;
    }
    return max;
}

Test(testvfs, nth_write_fails_once_with_the_code_asked)
{
    sqlite3 *db = db_setup();
    sqlite3_close(db);
    install("error,op=write,nth=5,rc=full");
    db = db_open();
    int rc = SQLITE_OK;
    int done = insert_until_failure(db, 100, &rc);
    cr_expect_eq(rc, SQLITE_FULL, "%s", sqlite3_errmsg(db));
    cr_expect_lt(done, 5, "a commit writes at least a frame: the 5th write is within 5 commits");
    struct testvfs_stats st;
    testvfs_get_stats(&st);
    cr_expect_eq(st.errors, 1);
    cr_expect_eq(insert_until_failure(db, 20, &rc), 20, "once only: later writes succeed");
    sqlite3_close(db);
}

Test(testvfs, times_forever_and_file_filter)
{
    sqlite3 *db = db_setup();
    sqlite3_close(db);
    /* the database file is written only by checkpoints in WAL mode */
    install("error,op=write,file=db,times=forever");
    db = db_open();
    int rc = SQLITE_OK;
    cr_expect_eq(insert_until_failure(db, 30, &rc), 30, "commits write the WAL only");
    cr_expect_neq(exec(db, "PRAGMA wal_checkpoint(TRUNCATE)"), SQLITE_OK);
    cr_expect_neq(exec(db, "PRAGMA wal_checkpoint(TRUNCATE)"), SQLITE_OK, "for ever");
    struct testvfs_stats st;
    testvfs_get_stats(&st);
    cr_expect_eq(st.errors, 2, "one per checkpoint: each gives up at its first write");
    cr_expect_eq(insert_until_failure(db, 5, &rc), 5, "the WAL still takes commits");
    sqlite3_close(db);
}

Test(testvfs, sync_error_fails_the_commit)
{
    sqlite3 *db = db_setup();
    sqlite3_close(db);
    /* the first commit into a new WAL syncs twice: its header, then the commit */
    install("error,op=sync,file=wal,nth=3,times=2");
    db = db_open();
    cr_assert_eq(exec(db, "PRAGMA synchronous=FULL"), SQLITE_OK);
    int rc = SQLITE_OK;
    cr_expect_eq(insert_until_failure(db, 10, &rc), 1);
    cr_expect_eq(sqlite3_extended_errcode(db), SQLITE_IOERR_FSYNC, "%s", sqlite3_errmsg(db));
    cr_expect_neq(exec(db, "INSERT INTO t VALUES (0, '')"), SQLITE_OK, "the 3rd sync fails too");
    cr_expect_eq(exec(db, "INSERT INTO t VALUES (0, '')"), SQLITE_OK, "the 4th does not");
    sqlite3_close(db);
}

Test(testvfs, after_point_starts_the_count)
{
    sqlite3 *db = db_setup();
    sqlite3_close(db);
    install("error,op=write,after=after_begin:2");
    db = db_open();
    int rc = SQLITE_OK;
    cr_expect_eq(insert_until_failure(db, 10, &rc), 10, "not armed yet");
    testvfs_hit("after_neo4j_commit");
    testvfs_hit("after_begin");
    cr_expect_eq(insert_until_failure(db, 10, &rc), 10, "first hit of two");
    testvfs_hit("after_begin");
    cr_expect_eq(insert_until_failure(db, 10, &rc), 0, "armed: the next write fails");
    cr_expect_eq(sqlite3_extended_errcode(db), SQLITE_IOERR_WRITE);
    sqlite3_close(db);
}

Test(testvfs, uninstall_restores_the_real_default)
{
    sqlite3_vfs *before = sqlite3_vfs_find(NULL);
    install("error,op=read");
    cr_expect_str_eq(sqlite3_vfs_find(NULL)->zName, "bistore-testvfs");
    testvfs_uninstall();
    cr_expect_eq(sqlite3_vfs_find(NULL), before);
}

Test(testvfs, autocheckpoint_applies_to_new_connections_while_installed)
{
    install("error,op=read,nth=1000000,autocheckpoint=5");
    sqlite3 *db = db_open();
    cr_expect_eq(value(db, "PRAGMA wal_autocheckpoint"), 1000, "set at the first commit");
    cr_assert_eq(exec(db, "PRAGMA journal_mode=WAL; CREATE TABLE t(x)"), SQLITE_OK);
    cr_expect_eq(value(db, "PRAGMA wal_autocheckpoint"), 5);
    sqlite3_close(db);
    testvfs_uninstall();
    db = db_open();
    cr_expect_eq(value(db, "PRAGMA wal_autocheckpoint"), 1000, "SQLite's default again");
    sqlite3_close(db);
}

Test(testvfs, error_mode_writes_reach_the_file_at_once)
{
    sqlite3 *db = db_setup();
    sqlite3_close(db);
    install("error,op=truncate,nth=1000000");
    db = db_open();
    cr_assert_eq(exec(db, "PRAGMA synchronous=OFF; PRAGMA wal_autocheckpoint=0"), SQLITE_OK);
    long long before = file_size("-wal");
    for (int i = 0; i < 20; i++)
        cr_assert_eq(exec(db, "INSERT INTO t VALUES (1, printf('%.500c', 'w'))"), SQLITE_OK);
    cr_expect_gt(file_size("-wal"), before + 20 * 500, "no page cache of the shim's here");
    sqlite3 *real = db_open_real();
    cr_expect_eq(value(real, "SELECT count(*) FROM t"), 20, "unsynced, yet in the file");
    sqlite3_close(real);
    sqlite3_close(db);
}
