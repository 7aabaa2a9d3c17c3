/*
 * The SQLite fault shim (stores/sqlite/testvfs.h): a VFS over SQLite's default one
 * that keeps unsynced writes in memory (power-loss mode), so that a
 * simulated power cut can drop them, or fails chosen calls (error mode,
 * where writes go straight through).
 *
 * Layout: a struct shim_file is what SQLite holds; for a modelled file (main
 * database, WAL, rollback journal) it wraps the real VFS's file, which
 * follows it in the same allocation, and points at the struct node of its
 * path, shared by every handle on that path (the page cache of the file,
 * testvfs_cache.c, with the power cut).
 * Data goes through the node's own descriptor (pread/pwrite on the real
 * file); fsync, locks and the -shm go through the real VFS's file. Any other
 * file is opened by the real VFS straight into SQLite's buffer and never
 * sees the shim again.
 *
 * One mutex guards everything and is held across each modelled call.
 */
#include "stores/sqlite/testvfs.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "stores/sqlite/testvfs_internal.h"

struct testvfs_globals tv = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Set while a spec waits for its after= point: testvfs_hit's fast path. */
static atomic_bool waiting;
static sqlite3_vfs shim_vfs;

/* ---- counting calls ---- */

static bool counts_here(void)
{
    return tv.armed && (!tv.one_thread || pthread_equal(tv.thread, pthread_self()));
}

/* True when this write or sync is the cut point. Lock held. */
static bool cut_due(void)
{
    if (tv.spec.mode != MODE_POWERLOSS || tv.powered_off || !counts_here())
        return false;
    return ++tv.stats.counted == tv.spec.cut;
}

/* The error this call must return, or SQLITE_OK. Lock held. */
static int error_due(enum op op, const struct node *n)
{
    if (tv.powered_off)
        return testvfs_default_rc(op);
    if (tv.spec.mode != MODE_ERROR || !counts_here())
        return SQLITE_OK;
    if ((tv.spec.op != OP_ANY && tv.spec.op != op) ||
        (tv.spec.file != KIND_ANY && tv.spec.file != n->kind))
        return SQLITE_OK;
    long at = ++tv.stats.counted;
    if (at < tv.spec.nth || (tv.spec.times >= 0 && at >= tv.spec.nth + tv.spec.times))
        return SQLITE_OK;
    int rc = tv.spec.rc ? tv.spec.rc : testvfs_default_rc(op);
    tv.stats.errors++;
    log_warn("testvfs: %s number %ld (a %s of %s) fails with %s (test only)",
             testvfs_op_names[tv.spec.op], at, testvfs_op_names[op], n->path, testvfs_rc_name(rc));
    return rc;
}

/* ---- the methods of a modelled file ---- */

/* With `trace`: one line per modelled write, sync, truncate or checkpoint,
 * numbered with the count after it (a cut point names the call whose number
 * it is). Lock held. */
static void trace(const char *what, const struct node *n, sqlite3_int64 off, long len)
{
    if (tv.spec.trace)
        log_msg(LOG_ALWAYS, NULL, "testvfs: #%ld %s %s at %lld, %ld bytes%s", tv.stats.counted,
                what, testvfs_kind_names[n->kind], (long long)off, len,
                tv.powered_off ? " (power off)" : "");
}

static int shim_close(sqlite3_file *file)
{
    struct shim_file *f = (struct shim_file *)file;
    int rc = f->real->pMethods ? f->real->pMethods->xClose(f->real) : SQLITE_OK;
    pthread_mutex_lock(&tv.lock);
    f->node->refs--;
    node_release(f->node, tv.powered_off);
    pthread_mutex_unlock(&tv.lock);
    return rc;
}

static int shim_read(sqlite3_file *file, void *buf, int amt, sqlite3_int64 off)
{
    struct shim_file *f = (struct shim_file *)file;
    pthread_mutex_lock(&tv.lock);
    tv.stats.reads++;
    int rc = error_due(OP_READ, f->node);
    if (rc == SQLITE_OK)
        rc = node_read(f->node, buf, (size_t)amt, off);
    else
        memset(buf, 0, (size_t)amt);
    pthread_mutex_unlock(&tv.lock);
    return rc;
}

static int shim_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 off)
{
    struct shim_file *f = (struct shim_file *)file;
    struct node *n = f->node;
    pthread_mutex_lock(&tv.lock);
    tv.stats.writes++;
    if (n->kind == KIND_DB)
        tv.stats.db_writes++;
    if (n->kind == KIND_WAL && off == 0)
        tv.stats.wal_headers++;
    if (n->kind == KIND_WAL && off > 0 && n->head && n->head->off == 0)
        tv.stats.unsynced_restarts += n->head->next == NULL; /* the first frame after it */
    int rc = error_due(OP_WRITE, n);
    if (rc == SQLITE_OK)
        rc = node_write(n, buf, (size_t)amt, off);
    if (rc == SQLITE_OK && tv.spec.mode == MODE_ERROR)
        rc = node_flush(n); /* through at once, as the real VFS writes */
    bool cut = rc == SQLITE_OK && cut_due();
    trace("write", n, off, amt);
    if (cut) {
        power_cut(); /* this write reached the page cache as the power failed */
        rc = SQLITE_IOERR_WRITE;
    }
    pthread_mutex_unlock(&tv.lock);
    return rc;
}

static int shim_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    struct shim_file *f = (struct shim_file *)file;
    pthread_mutex_lock(&tv.lock);
    tv.stats.truncates++;
    int rc = error_due(OP_TRUNCATE, f->node);
    if (rc == SQLITE_OK)
        node_truncate(f->node, size);
    if (rc == SQLITE_OK && tv.spec.mode == MODE_ERROR)
        rc = node_flush(f->node);
    trace("truncate", f->node, size, 0);
    pthread_mutex_unlock(&tv.lock);
    return rc;
}

static int shim_sync(sqlite3_file *file, int flags)
{
    struct shim_file *f = (struct shim_file *)file;
    struct node *n = f->node;
    pthread_mutex_lock(&tv.lock);
    tv.stats.syncs++;
    if (n->kind == KIND_DB)
        tv.stats.db_syncs++;
    int rc = error_due(OP_SYNC, n);
    bool cut = rc == SQLITE_OK && cut_due();
    trace("sync", n, 0, 0);
    if (cut) {
        power_cut(); /* the sync never happens */
        rc = SQLITE_IOERR_FSYNC;
    }
    if (rc == SQLITE_OK)
        rc = node_flush(n);
    if (rc == SQLITE_OK && !(tv.spec.mode == MODE_POWERLOSS && tv.spec.nofsync))
        rc = f->real->pMethods->xSync(f->real, flags);
    pthread_mutex_unlock(&tv.lock);
    return rc;
}

static int shim_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
    struct shim_file *f = (struct shim_file *)file;
    pthread_mutex_lock(&tv.lock);
    int rc = tv.powered_off ? SQLITE_IOERR_FSTAT : SQLITE_OK;
    *size = f->node->size;
    pthread_mutex_unlock(&tv.lock);
    return rc;
}

static int shim_lock(sqlite3_file *file, int level)
{
    sqlite3_file *real = ((struct shim_file *)file)->real;
    return real->pMethods->xLock(real, level);
}

static int shim_unlock(sqlite3_file *file, int level)
{
    sqlite3_file *real = ((struct shim_file *)file)->real;
    return real->pMethods->xUnlock(real, level);
}

static int shim_check_reserved(sqlite3_file *file, int *out)
{
    sqlite3_file *real = ((struct shim_file *)file)->real;
    return real->pMethods->xCheckReservedLock(real, out);
}

/* A checkpoint that starts while its WAL holds unsynced writes did not sync
 * the WAL first: synchronous = OFF. Lock held. */
static void note_checkpoint(const struct node *db)
{
    char wal[4096];
    tv.stats.checkpoints++;
    trace("checkpoint of", db, 0, 0);
    if (snprintf(wal, sizeof wal, "%s-wal", db->path) >= (int)sizeof wal)
        return;
    const struct node *n = node_find(wal);
    if (n && n->head)
        tv.stats.unsynced_checkpoints++;
}

static int shim_file_control(sqlite3_file *file, int op, void *arg)
{
    struct shim_file *f = (struct shim_file *)file;
    if (op == SQLITE_FCNTL_SIZE_HINT)
        return SQLITE_OK; /* the real VFS could extend the file behind the page cache */
    if (op == SQLITE_FCNTL_CKPT_START) {
        pthread_mutex_lock(&tv.lock);
        note_checkpoint(f->node);
        pthread_mutex_unlock(&tv.lock);
    }
    return f->real->pMethods->xFileControl(f->real, op, arg);
}

static int shim_sector_size(sqlite3_file *file)
{
    sqlite3_file *real = ((struct shim_file *)file)->real;
    return real->pMethods->xSectorSize(real);
}

static int shim_device_characteristics(sqlite3_file *file)
{
    sqlite3_file *real = ((struct shim_file *)file)->real;
    return real->pMethods->xDeviceCharacteristics(real);
}

static int shim_shm_map(sqlite3_file *file, int region, int size, int extend, void volatile **pp)
{
    sqlite3_file *real = ((struct shim_file *)file)->real;
    return real->pMethods->xShmMap(real, region, size, extend, pp);
}

static int shim_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
    sqlite3_file *real = ((struct shim_file *)file)->real;
    return real->pMethods->xShmLock(real, offset, n, flags);
}

static void shim_shm_barrier(sqlite3_file *file)
{
    sqlite3_file *real = ((struct shim_file *)file)->real;
    real->pMethods->xShmBarrier(real);
}

static int shim_shm_unmap(sqlite3_file *file, int delete_flag)
{
    sqlite3_file *real = ((struct shim_file *)file)->real;
    return real->pMethods->xShmUnmap(real, delete_flag);
}

/* Version 2: no xFetch, so SQLite never reads a memory map of the real file
 * behind the page cache (the gateway does not use mmap either). */
static const sqlite3_io_methods shim_io = {
    2,
    shim_close,
    shim_read,
    shim_write,
    shim_truncate,
    shim_sync,
    shim_file_size,
    shim_lock,
    shim_unlock,
    shim_check_reserved,
    shim_file_control,
    shim_sector_size,
    shim_device_characteristics,
    shim_shm_map,
    shim_shm_lock,
    shim_shm_barrier,
    shim_shm_unmap,
    NULL,
    NULL,
};

/* ---- the VFS ---- */

static int kind_of(int flags)
{
    if (flags & SQLITE_OPEN_MAIN_DB)
        return KIND_DB;
    if (flags & SQLITE_OPEN_WAL)
        return KIND_WAL;
    if (flags & SQLITE_OPEN_MAIN_JOURNAL)
        return KIND_JOURNAL;
    return -1;
}

static int shim_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
                     int *out_flags)
{
    (void)vfs;
    int kind = name ? kind_of(flags) : -1;
    if (kind < 0) /* not modelled: the real file, in SQLite's buffer */
        return tv.real->xOpen(tv.real, name, file, flags, out_flags);
    struct shim_file *f = (struct shim_file *)file;
    memset(f, 0, sizeof *f);
    pthread_mutex_lock(&tv.lock);
    bool off = tv.powered_off;
    pthread_mutex_unlock(&tv.lock);
    if (off)
        return SQLITE_CANTOPEN;
    f->real = (sqlite3_file *)((char *)f + REAL_OFFSET);
    int rc = tv.real->xOpen(tv.real, name, f->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        if (f->real->pMethods)
            f->real->pMethods->xClose(f->real);
        return rc;
    }
    pthread_mutex_lock(&tv.lock);
    f->node = node_get(name, (enum kind)kind);
    pthread_mutex_unlock(&tv.lock);
    if (!f->node) {
        f->real->pMethods->xClose(f->real);
        return SQLITE_CANTOPEN;
    }
    f->base.pMethods = &shim_io;
    return SQLITE_OK;
}

static int shim_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void)vfs;
    pthread_mutex_lock(&tv.lock);
    if (tv.powered_off) {
        pthread_mutex_unlock(&tv.lock);
        return SQLITE_IOERR_DELETE;
    }
    struct node *n = node_find(name);
    if (n) { /* the file is gone, and what was pending for it */
        pending_drop(n);
        n->disk_size = n->floor = n->size = 0;
        node_release(n, true);
    }
    bool nofsync = tv.spec.mode == MODE_POWERLOSS && tv.spec.nofsync;
    pthread_mutex_unlock(&tv.lock);
    return tv.real->xDelete(tv.real, name, nofsync ? 0 : sync_dir);
}

/* The real VFS answers "exists" only for a non-empty file: ours may be
 * non-empty in the page cache only (SQLite asks this of the WAL). */
static int shim_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    if (flags == SQLITE_ACCESS_EXISTS) {
        pthread_mutex_lock(&tv.lock);
        const struct node *n = node_find(name);
        bool known = n && !tv.powered_off;
        if (known)
            *out = n->size > 0;
        pthread_mutex_unlock(&tv.lock);
        if (known)
            return SQLITE_OK;
    }
    return tv.real->xAccess(tv.real, name, flags, out);
}

static int shim_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return tv.real->xFullPathname(tv.real, name, n, out);
}

static void *shim_dl_open(sqlite3_vfs *vfs, const char *name)
{
    (void)vfs;
    return tv.real->xDlOpen(tv.real, name);
}

static void shim_dl_error(sqlite3_vfs *vfs, int n, char *msg)
{
    (void)vfs;
    tv.real->xDlError(tv.real, n, msg);
}

static void (*shim_dl_sym(sqlite3_vfs *vfs, void *handle, const char *sym))(void)
{
    (void)vfs;
    return tv.real->xDlSym(tv.real, handle, sym);
}

static void shim_dl_close(sqlite3_vfs *vfs, void *handle)
{
    (void)vfs;
    tv.real->xDlClose(tv.real, handle);
}

static int shim_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return tv.real->xRandomness(tv.real, n, out);
}

static int shim_sleep(sqlite3_vfs *vfs, int us)
{
    (void)vfs;
    return tv.real->xSleep(tv.real, us);
}

static int shim_current_time(sqlite3_vfs *vfs, double *out)
{
    (void)vfs;
    return tv.real->xCurrentTime(tv.real, out);
}

static int shim_get_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return tv.real->xGetLastError ? tv.real->xGetLastError(tv.real, n, out) : 0;
}

static int shim_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    (void)vfs;
    return tv.real->xCurrentTimeInt64(tv.real, out);
}

/* ---- the interface ---- */

/*
 * autocheckpoint=N. sqlite3_open sets the default wal_autocheckpoint after it
 * ran the auto-extensions, so the extension only installs a commit hook, and
 * the connection's first commit sets N (before SQLite looks at the WAL's
 * size for that commit) and removes the hook. The gateway sets no commit
 * hook of its own. Setting hooks runs no SQL, which is what a commit hook
 * must not do.
 */
static int first_commit(void *arg)
{
    sqlite3 *db = arg;
    pthread_mutex_lock(&tv.lock);
    long pages = tv.registered ? tv.spec.autocheckpoint : 0;
    pthread_mutex_unlock(&tv.lock);
    if (pages > 0)
        sqlite3_wal_autocheckpoint(db, (int)pages);
    sqlite3_commit_hook(db, NULL, NULL);
    return 0;
}

/* An auto-extension: runs in every sqlite3_open after the shim installed. */
static int set_autocheckpoint(sqlite3 *db, const char **msg, const void *api)
{
    (void)msg;
    (void)api;
    sqlite3_commit_hook(db, first_commit, db);
    return SQLITE_OK;
}

static void reset_state(const struct testvfs_spec *spec)
{
    for (struct node *n = tv.nodes; n;) {
        struct node *next = n->next;
        n->refs = 0;
        node_release(n, true);
        n = next;
    }
    tv.spec = *spec;
    tv.armed = spec->after[0] == '\0';
    tv.hits = 0;
    tv.one_thread = false;
    tv.powered_off = false;
    memset(&tv.stats, 0, sizeof tv.stats);
    atomic_store(&waiting, !tv.armed);
}

int testvfs_install(const char *spec_text, char *msg, size_t cap)
{
    struct testvfs_spec spec;
    if (testvfs_spec_parse(spec_text, &spec, msg, cap) != 0)
        return -1;
    pthread_mutex_lock(&tv.lock);
    for (const struct node *n = tv.nodes; n; n = n->next)
        if (n->refs > 0) {
            pthread_mutex_unlock(&tv.lock);
            snprintf(msg, cap, "testvfs: %s is still open", n->path);
            return -1;
        }
    reset_state(&spec);
    int rc = 0;
    if (!tv.registered) {
        sqlite3_vfs *def = sqlite3_vfs_find(NULL);
        if (!def || def == &shim_vfs) {
            rc = -1;
        } else {
            tv.real = def;
            shim_vfs = (sqlite3_vfs){
                .iVersion = def->iVersion < 2 ? def->iVersion : 2,
                .szOsFile = (int)(REAL_OFFSET + (size_t)def->szOsFile),
                .mxPathname = def->mxPathname,
                .zName = "bistore-testvfs",
                .xOpen = shim_open,
                .xDelete = shim_delete,
                .xAccess = shim_access,
                .xFullPathname = shim_full_pathname,
                .xDlOpen = shim_dl_open,
                .xDlError = shim_dl_error,
                .xDlSym = shim_dl_sym,
                .xDlClose = shim_dl_close,
                .xRandomness = shim_randomness,
                .xSleep = shim_sleep,
                .xCurrentTime = shim_current_time,
                .xGetLastError = shim_get_last_error,
                .xCurrentTimeInt64 = shim_current_time_int64,
            };
            rc = sqlite3_vfs_register(&shim_vfs, 1) == SQLITE_OK ? 0 : -1;
            tv.registered = rc == 0;
        }
        if (rc != 0)
            snprintf(msg, cap, "testvfs: cannot register over the default VFS");
    }
    pthread_mutex_unlock(&tv.lock);
    /* void (*)(void) is how SQLite takes an entry point (sqlite3_auto_extension) */
    if (rc == 0 && spec.autocheckpoint > 0 &&
        sqlite3_auto_extension((void (*)(void))set_autocheckpoint) != SQLITE_OK) {
        snprintf(msg, cap, "testvfs: cannot set wal_autocheckpoint on new connections");
        rc = -1;
    }
    return rc;
}

void testvfs_uninstall(void)
{
    pthread_mutex_lock(&tv.lock);
    if (tv.registered) {
        sqlite3_vfs_unregister(&shim_vfs);
        sqlite3_vfs_register(tv.real, 1); /* the default again, not whichever is next */
        tv.registered = false;
    }
    sqlite3_cancel_auto_extension((void (*)(void))set_autocheckpoint);
    atomic_store(&waiting, false);
    pthread_mutex_unlock(&tv.lock);
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_from_env(void)
{
    const char *spec = getenv(TESTVFS_ENV);
    if (!spec || !spec[0])
        return;
    char msg[512];
    if (testvfs_install(spec, msg, sizeof msg) != 0) {
        log_error("%s", msg);
        exit(2);
    }
    log_warn("SQLite fault shim armed: %s=%s (test only)", TESTVFS_ENV, spec);
}

void testvfs_init(void)
{
    pthread_once(&init_once, init_from_env);
}

void testvfs_hit(const char *point)
{
    if (!atomic_load(&waiting))
        return;
    pthread_mutex_lock(&tv.lock);
    if (!tv.armed && strcmp(point, tv.spec.after) == 0 && ++tv.hits == tv.spec.after_count) {
        tv.armed = true;
        tv.one_thread = true;
        tv.thread = pthread_self();
        atomic_store(&waiting, false);
        log_warn("testvfs: %s reached: counting %s from here (test only)", point,
                 tv.spec.mode == MODE_POWERLOSS ? "writes and syncs"
                                                : testvfs_op_names[tv.spec.op]);
    }
    pthread_mutex_unlock(&tv.lock);
}

bool testvfs_powered_off(void)
{
    pthread_mutex_lock(&tv.lock);
    bool off = tv.powered_off;
    pthread_mutex_unlock(&tv.lock);
    return off;
}

void testvfs_cut_now(void)
{
    pthread_mutex_lock(&tv.lock);
    if (!tv.powered_off)
        power_cut();
    pthread_mutex_unlock(&tv.lock);
}

void testvfs_get_stats(struct testvfs_stats *out)
{
    pthread_mutex_lock(&tv.lock);
    *out = tv.stats;
    pthread_mutex_unlock(&tv.lock);
}
