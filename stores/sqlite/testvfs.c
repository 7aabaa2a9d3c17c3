/*
 * The SQLite fault shim (stores/testvfs.h): a VFS over SQLite's default one
 * that keeps unsynced writes in memory (power-loss mode), so that a
 * simulated power cut can drop them, or fails chosen calls (error mode,
 * where writes go straight through).
 *
 * Layout: a struct shim_file is what SQLite holds; for a modelled file (main
 * database, WAL, rollback journal) it wraps the real VFS's file, which
 * follows it in the same allocation, and points at the struct node of its
 * path, shared by every handle on that path (the page cache of the file).
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
#include "stores/sqlite/testvfs_spec.h"

#define SECTOR 512

/* A write that reached the page cache but not the disk. */
struct pending {
    struct pending *next;
    sqlite3_int64 off;
    size_t len;
    unsigned char data[];
};

/* One modelled path. Lives while a handle is open on it or it has pending writes. */
struct node {
    struct node *next;
    char *path;
    enum kind kind;
    int fd; /* our own descriptor of the real file, for data only */
    int refs;
    struct pending *head, *tail;
    sqlite3_int64 disk_size; /* the real file's size */
    sqlite3_int64 floor;     /* bytes of the real file still visible (below: a pending truncate) */
    sqlite3_int64 size;      /* the size every handle sees */
};

struct shim_file {
    sqlite3_file base;
    struct node *node;
    sqlite3_file *real; /* the real VFS's file, right after this struct */
};

#define REAL_OFFSET ((sizeof(struct shim_file) + 15) & ~(size_t)15)

static struct {
    pthread_mutex_t lock;
    sqlite3_vfs *real;
    bool registered;
    struct testvfs_spec spec;
    bool armed;
    long hits;
    bool one_thread; /* armed by after=: only that thread's calls count */
    pthread_t thread;
    bool powered_off;
    uint64_t rng;
    struct node *nodes;
    struct testvfs_stats stats;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Set while a spec waits for its after= point: testvfs_hit's fast path. */
static atomic_bool waiting;
static sqlite3_vfs shim_vfs;

/* ---- nodes: the page cache of a modelled file ---- */

static struct node *node_find(const char *path)
{
    for (struct node *n = g.nodes; n; n = n->next)
        if (strcmp(n->path, path) == 0)
            return n;
    return NULL;
}

static void pending_drop(struct node *n)
{
    while (n->head) {
        struct pending *p = n->head;
        n->head = p->next;
        free(p);
    }
    n->tail = NULL;
}

/* The node of path (a new one, with a descriptor of its own, if none). */
static struct node *node_get(const char *path, enum kind kind)
{
    struct node *n = node_find(path);
    if (n) {
        n->refs++;
        return n;
    }
    n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->path = strdup(path);
    n->fd = open(path, O_RDWR | O_CLOEXEC);
    if (n->fd < 0)
        n->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (!n->path || n->fd < 0 || fstat(n->fd, &st) != 0) {
        if (n->fd >= 0)
            close(n->fd);
        free(n->path);
        free(n);
        return NULL;
    }
    n->kind = kind;
    n->refs = 1;
    n->disk_size = n->floor = n->size = st.st_size;
    n->next = g.nodes;
    g.nodes = n;
    return n;
}

/*
 * Frees n once nothing holds it. Closing our descriptor is safe then: POSIX
 * drops a process's locks on a file when any descriptor of it closes, but
 * with no handle left SQLite holds no lock on it.
 */
static void node_release(struct node *n, bool force)
{
    if (n->refs > 0 || (n->head && !force))
        return;
    for (struct node **at = &g.nodes; *at; at = &(*at)->next)
        if (*at == n) {
            *at = n->next;
            break;
        }
    pending_drop(n);
    close(n->fd);
    free(n->path);
    free(n);
}

static int pwrite_all(int fd, const unsigned char *data, size_t len, sqlite3_int64 off)
{
    while (len > 0) {
        ssize_t w = pwrite(fd, data, len, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        data += w;
        len -= (size_t)w;
        off += w;
    }
    return 0;
}

/* Reads what every handle sees: the disk below the floor, the pending writes over it. */
static int node_read(struct node *n, unsigned char *buf, size_t amt, sqlite3_int64 off)
{
    memset(buf, 0, amt);
    if (off < n->floor) {
        size_t want = (size_t)(n->floor - off) < amt ? (size_t)(n->floor - off) : amt;
        size_t got = 0;
        while (got < want) {
            ssize_t r = pread(n->fd, buf + got, want - got, (off_t)(off + (sqlite3_int64)got));
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                return SQLITE_IOERR_READ;
            if (r == 0)
                break;
            got += (size_t)r;
        }
    }
    sqlite3_int64 end = off + (sqlite3_int64)amt;
    for (struct pending *p = n->head; p; p = p->next) {
        sqlite3_int64 from = p->off > off ? p->off : off;
        sqlite3_int64 to =
            p->off + (sqlite3_int64)p->len < end ? p->off + (sqlite3_int64)p->len : end;
        if (from < to)
            memcpy(buf + (from - off), p->data + (from - p->off), (size_t)(to - from));
    }
    return end > n->size ? SQLITE_IOERR_SHORT_READ : SQLITE_OK;
}

static int node_write(struct node *n, const void *buf, size_t amt, sqlite3_int64 off)
{
    struct pending *p = malloc(sizeof *p + amt);
    if (!p)
        return SQLITE_IOERR_NOMEM;
    p->next = NULL;
    p->off = off;
    p->len = amt;
    memcpy(p->data, buf, amt);
    if (n->tail)
        n->tail->next = p;
    else
        n->head = p;
    n->tail = p;
    if (off + (sqlite3_int64)amt > n->size)
        n->size = off + (sqlite3_int64)amt;
    return SQLITE_OK;
}

/* Cuts the pending writes at size; what the disk holds beyond it is hidden. */
static void node_truncate(struct node *n, sqlite3_int64 size)
{
    struct pending **at = &n->head;
    n->tail = NULL;
    while (*at) {
        struct pending *p = *at;
        if (p->off >= size) {
            *at = p->next;
            free(p);
            continue;
        }
        if (p->off + (sqlite3_int64)p->len > size)
            p->len = (size_t)(size - p->off);
        n->tail = p;
        at = &p->next;
    }
    if (size < n->floor)
        n->floor = size;
    n->size = size;
}

/* Writes the pending state of n to the disk (no fsync): what xSync does first. */
static int node_flush(struct node *n)
{
    if (n->floor < n->disk_size && ftruncate(n->fd, (off_t)n->floor) != 0)
        return SQLITE_IOERR_TRUNCATE;
    sqlite3_int64 real = n->floor;
    for (struct pending *p = n->head; p; p = p->next) {
        if (pwrite_all(n->fd, p->data, p->len, p->off) != 0)
            return SQLITE_IOERR_WRITE;
        if (p->off + (sqlite3_int64)p->len > real)
            real = p->off + (sqlite3_int64)p->len;
    }
    if (real != n->size && ftruncate(n->fd, (off_t)n->size) != 0)
        return SQLITE_IOERR_TRUNCATE;
    pending_drop(n);
    n->disk_size = n->floor = n->size;
    return SQLITE_OK;
}

/* ---- the power cut ---- */

/* splitmix64: small, seedable, good enough to pick subsets. */
static uint64_t rnd(void)
{
    uint64_t z = (g.rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A pending write at the cut: whole, not at all, or (torn) some of its sectors. */
static void cut_write(struct node *n, const struct pending *p)
{
    g.stats.cut_pending++;
    uint64_t r = rnd() % 8;
    sqlite3_int64 end = p->off + (sqlite3_int64)p->len;
    bool spans = p->off / SECTOR != (end - 1) / SECTOR;
    if (g.spec.torn && spans && r == 7) {
        g.stats.cut_torn++;
        for (sqlite3_int64 at = p->off; at < end;) {
            sqlite3_int64 next = (at / SECTOR + 1) * SECTOR;
            if (next > end)
                next = end;
            if (rnd() & 1)
                (void)pwrite_all(n->fd, p->data + (at - p->off), (size_t)(next - at), at);
            at = next;
        }
        return;
    }
    if (r < 4) {
        g.stats.cut_kept++;
        (void)pwrite_all(n->fd, p->data, p->len, p->off);
    }
}

/*
 * The power fails: each file's pending truncate may or may not reach the
 * disk, then a random subset of its pending writes does, in the order they
 * were made; nothing else. Then SIGKILL, or (then=stop) the power stays off.
 * Lock held.
 */
static void power_cut(void)
{
    g.rng = g.spec.seed * 0x2545f4914f6cdd1dULL + (uint64_t)g.spec.cut;
    g.stats.cut = true;
    for (struct node *n = g.nodes; n; n = n->next) {
        if (n->floor < n->disk_size && (rnd() & 1))
            (void)ftruncate(n->fd, (off_t)n->floor);
        for (struct pending *p = n->head; p; p = p->next)
            cut_write(n, p);
    }
    if (!g.spec.stop) {
        log_warn("testvfs: power cut at call %ld: %ld writes pending, %ld reached the disk whole, "
                 "%ld torn; SIGKILL (test only)",
                 g.stats.counted, g.stats.cut_pending, g.stats.cut_kept, g.stats.cut_torn);
        kill(getpid(), SIGKILL);
        _exit(137); /* not reached */
    }
    log_debug("testvfs: power cut at call %ld: %ld writes pending, %ld whole, %ld torn",
              g.stats.counted, g.stats.cut_pending, g.stats.cut_kept, g.stats.cut_torn);
    g.powered_off = true;
    for (struct node *n = g.nodes; n; n = n->next) {
        pending_drop(n);
        n->size = n->floor = n->disk_size; /* nobody reads it again through us */
    }
}

/* ---- counting calls ---- */

static bool counts_here(void)
{
    return g.armed && (!g.one_thread || pthread_equal(g.thread, pthread_self()));
}

/* True when this write or sync is the cut point. Lock held. */
static bool cut_due(void)
{
    if (g.spec.mode != MODE_POWERLOSS || g.powered_off || !counts_here())
        return false;
    return ++g.stats.counted == g.spec.cut;
}

/* The error this call must return, or SQLITE_OK. Lock held. */
static int error_due(enum op op, const struct node *n)
{
    if (g.powered_off)
        return testvfs_default_rc(op);
    if (g.spec.mode != MODE_ERROR || !counts_here())
        return SQLITE_OK;
    if ((g.spec.op != OP_ANY && g.spec.op != op) ||
        (g.spec.file != KIND_ANY && g.spec.file != n->kind))
        return SQLITE_OK;
    long at = ++g.stats.counted;
    if (at < g.spec.nth || (g.spec.times >= 0 && at >= g.spec.nth + g.spec.times))
        return SQLITE_OK;
    int rc = g.spec.rc ? g.spec.rc : testvfs_default_rc(op);
    g.stats.errors++;
    log_warn("testvfs: %s number %ld (a %s of %s) fails with %s (test only)",
             testvfs_op_names[g.spec.op], at, testvfs_op_names[op], n->path, testvfs_rc_name(rc));
    return rc;
}

/* ---- the methods of a modelled file ---- */

/* With `trace`: one line per modelled write, sync, truncate or checkpoint,
 * numbered with the count after it (a cut point names the call whose number
 * it is). Lock held. */
static void trace(const char *what, const struct node *n, sqlite3_int64 off, long len)
{
    if (g.spec.trace)
        log_msg(LOG_ALWAYS, NULL, "testvfs: #%ld %s %s at %lld, %ld bytes%s", g.stats.counted, what,
                testvfs_kind_names[n->kind], (long long)off, len,
                g.powered_off ? " (power off)" : "");
}

static int shim_close(sqlite3_file *file)
{
    struct shim_file *f = (struct shim_file *)file;
    int rc = f->real->pMethods ? f->real->pMethods->xClose(f->real) : SQLITE_OK;
    pthread_mutex_lock(&g.lock);
    f->node->refs--;
    node_release(f->node, g.powered_off);
    pthread_mutex_unlock(&g.lock);
    return rc;
}

static int shim_read(sqlite3_file *file, void *buf, int amt, sqlite3_int64 off)
{
    struct shim_file *f = (struct shim_file *)file;
    pthread_mutex_lock(&g.lock);
    g.stats.reads++;
    int rc = error_due(OP_READ, f->node);
    if (rc == SQLITE_OK)
        rc = node_read(f->node, buf, (size_t)amt, off);
    else
        memset(buf, 0, (size_t)amt);
    pthread_mutex_unlock(&g.lock);
    return rc;
}

static int shim_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 off)
{
    struct shim_file *f = (struct shim_file *)file;
    struct node *n = f->node;
    pthread_mutex_lock(&g.lock);
    g.stats.writes++;
    if (n->kind == KIND_DB)
        g.stats.db_writes++;
    if (n->kind == KIND_WAL && off == 0)
        g.stats.wal_headers++;
    if (n->kind == KIND_WAL && off > 0 && n->head && n->head->off == 0)
        g.stats.unsynced_restarts += n->head->next == NULL; /* the first frame after it */
    int rc = error_due(OP_WRITE, n);
    if (rc == SQLITE_OK)
        rc = node_write(n, buf, (size_t)amt, off);
    if (rc == SQLITE_OK && g.spec.mode == MODE_ERROR)
        rc = node_flush(n); /* through at once, as the real VFS writes */
    bool cut = rc == SQLITE_OK && cut_due();
    trace("write", n, off, amt);
    if (cut) {
        power_cut(); /* this write reached the page cache as the power failed */
        rc = SQLITE_IOERR_WRITE;
    }
    pthread_mutex_unlock(&g.lock);
    return rc;
}

static int shim_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    struct shim_file *f = (struct shim_file *)file;
    pthread_mutex_lock(&g.lock);
    g.stats.truncates++;
    int rc = error_due(OP_TRUNCATE, f->node);
    if (rc == SQLITE_OK)
        node_truncate(f->node, size);
    if (rc == SQLITE_OK && g.spec.mode == MODE_ERROR)
        rc = node_flush(f->node);
    trace("truncate", f->node, size, 0);
    pthread_mutex_unlock(&g.lock);
    return rc;
}

static int shim_sync(sqlite3_file *file, int flags)
{
    struct shim_file *f = (struct shim_file *)file;
    struct node *n = f->node;
    pthread_mutex_lock(&g.lock);
    g.stats.syncs++;
    if (n->kind == KIND_DB)
        g.stats.db_syncs++;
    int rc = error_due(OP_SYNC, n);
    bool cut = rc == SQLITE_OK && cut_due();
    trace("sync", n, 0, 0);
    if (cut) {
        power_cut(); /* the sync never happens */
        rc = SQLITE_IOERR_FSYNC;
    }
    if (rc == SQLITE_OK)
        rc = node_flush(n);
    if (rc == SQLITE_OK && !(g.spec.mode == MODE_POWERLOSS && g.spec.nofsync))
        rc = f->real->pMethods->xSync(f->real, flags);
    pthread_mutex_unlock(&g.lock);
    return rc;
}

static int shim_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
    struct shim_file *f = (struct shim_file *)file;
    pthread_mutex_lock(&g.lock);
    int rc = g.powered_off ? SQLITE_IOERR_FSTAT : SQLITE_OK;
    *size = f->node->size;
    pthread_mutex_unlock(&g.lock);
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
    g.stats.checkpoints++;
    trace("checkpoint of", db, 0, 0);
    if (snprintf(wal, sizeof wal, "%s-wal", db->path) >= (int)sizeof wal)
        return;
    const struct node *n = node_find(wal);
    if (n && n->head)
        g.stats.unsynced_checkpoints++;
}

static int shim_file_control(sqlite3_file *file, int op, void *arg)
{
    struct shim_file *f = (struct shim_file *)file;
    if (op == SQLITE_FCNTL_SIZE_HINT)
        return SQLITE_OK; /* the real VFS could extend the file behind the page cache */
    if (op == SQLITE_FCNTL_CKPT_START) {
        pthread_mutex_lock(&g.lock);
        note_checkpoint(f->node);
        pthread_mutex_unlock(&g.lock);
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
        return g.real->xOpen(g.real, name, file, flags, out_flags);
    struct shim_file *f = (struct shim_file *)file;
    memset(f, 0, sizeof *f);
    pthread_mutex_lock(&g.lock);
    bool off = g.powered_off;
    pthread_mutex_unlock(&g.lock);
    if (off)
        return SQLITE_CANTOPEN;
    f->real = (sqlite3_file *)((char *)f + REAL_OFFSET);
    int rc = g.real->xOpen(g.real, name, f->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        if (f->real->pMethods)
            f->real->pMethods->xClose(f->real);
        return rc;
    }
    pthread_mutex_lock(&g.lock);
    f->node = node_get(name, (enum kind)kind);
    pthread_mutex_unlock(&g.lock);
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
    pthread_mutex_lock(&g.lock);
    if (g.powered_off) {
        pthread_mutex_unlock(&g.lock);
        return SQLITE_IOERR_DELETE;
    }
    struct node *n = node_find(name);
    if (n) { /* the file is gone, and what was pending for it */
        pending_drop(n);
        n->disk_size = n->floor = n->size = 0;
        node_release(n, true);
    }
    bool nofsync = g.spec.mode == MODE_POWERLOSS && g.spec.nofsync;
    pthread_mutex_unlock(&g.lock);
    return g.real->xDelete(g.real, name, nofsync ? 0 : sync_dir);
}

/* The real VFS answers "exists" only for a non-empty file: ours may be
 * non-empty in the page cache only (SQLite asks this of the WAL). */
static int shim_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    if (flags == SQLITE_ACCESS_EXISTS) {
        pthread_mutex_lock(&g.lock);
        const struct node *n = node_find(name);
        bool known = n && !g.powered_off;
        if (known)
            *out = n->size > 0;
        pthread_mutex_unlock(&g.lock);
        if (known)
            return SQLITE_OK;
    }
    return g.real->xAccess(g.real, name, flags, out);
}

static int shim_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return g.real->xFullPathname(g.real, name, n, out);
}

static void *shim_dl_open(sqlite3_vfs *vfs, const char *name)
{
    (void)vfs;
    return g.real->xDlOpen(g.real, name);
}

static void shim_dl_error(sqlite3_vfs *vfs, int n, char *msg)
{
    (void)vfs;
    g.real->xDlError(g.real, n, msg);
}

static void (*shim_dl_sym(sqlite3_vfs *vfs, void *handle, const char *sym))(void)
{
    (void)vfs;
    return g.real->xDlSym(g.real, handle, sym);
}

static void shim_dl_close(sqlite3_vfs *vfs, void *handle)
{
    (void)vfs;
    g.real->xDlClose(g.real, handle);
}

static int shim_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return g.real->xRandomness(g.real, n, out);
}

static int shim_sleep(sqlite3_vfs *vfs, int us)
{
    (void)vfs;
    return g.real->xSleep(g.real, us);
}

static int shim_current_time(sqlite3_vfs *vfs, double *out)
{
    (void)vfs;
    return g.real->xCurrentTime(g.real, out);
}

static int shim_get_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return g.real->xGetLastError ? g.real->xGetLastError(g.real, n, out) : 0;
}

static int shim_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    (void)vfs;
    return g.real->xCurrentTimeInt64(g.real, out);
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
    pthread_mutex_lock(&g.lock);
    long pages = g.registered ? g.spec.autocheckpoint : 0;
    pthread_mutex_unlock(&g.lock);
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
    for (struct node *n = g.nodes; n;) {
        struct node *next = n->next;
        n->refs = 0;
        node_release(n, true);
        n = next;
    }
    g.spec = *spec;
    g.armed = spec->after[0] == '\0';
    g.hits = 0;
    g.one_thread = false;
    g.powered_off = false;
    memset(&g.stats, 0, sizeof g.stats);
    atomic_store(&waiting, !g.armed);
}

int testvfs_install(const char *spec_text, char *msg, size_t cap)
{
    struct testvfs_spec spec;
    if (testvfs_spec_parse(spec_text, &spec, msg, cap) != 0)
        return -1;
    pthread_mutex_lock(&g.lock);
    for (const struct node *n = g.nodes; n; n = n->next)
        if (n->refs > 0) {
            pthread_mutex_unlock(&g.lock);
            snprintf(msg, cap, "testvfs: %s is still open", n->path);
            return -1;
        }
    reset_state(&spec);
    int rc = 0;
    if (!g.registered) {
        sqlite3_vfs *def = sqlite3_vfs_find(NULL);
        if (!def || def == &shim_vfs) {
            rc = -1;
        } else {
            g.real = def;
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
            g.registered = rc == 0;
        }
        if (rc != 0)
            snprintf(msg, cap, "testvfs: cannot register over the default VFS");
    }
    pthread_mutex_unlock(&g.lock);
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
    pthread_mutex_lock(&g.lock);
    if (g.registered) {
        sqlite3_vfs_unregister(&shim_vfs);
        sqlite3_vfs_register(g.real, 1); /* the default again, not whichever is next */
        g.registered = false;
    }
    sqlite3_cancel_auto_extension((void (*)(void))set_autocheckpoint);
    atomic_store(&waiting, false);
    pthread_mutex_unlock(&g.lock);
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
    pthread_mutex_lock(&g.lock);
    if (!g.armed && strcmp(point, g.spec.after) == 0 && ++g.hits == g.spec.after_count) {
        g.armed = true;
        g.one_thread = true;
        g.thread = pthread_self();
        atomic_store(&waiting, false);
        log_warn("testvfs: %s reached: counting %s from here (test only)", point,
                 g.spec.mode == MODE_POWERLOSS ? "writes and syncs" : testvfs_op_names[g.spec.op]);
    }
    pthread_mutex_unlock(&g.lock);
}

bool testvfs_powered_off(void)
{
    pthread_mutex_lock(&g.lock);
    bool off = g.powered_off;
    pthread_mutex_unlock(&g.lock);
    return off;
}

void testvfs_cut_now(void)
{
    pthread_mutex_lock(&g.lock);
    if (!g.powered_off)
        power_cut();
    pthread_mutex_unlock(&g.lock);
}

void testvfs_get_stats(struct testvfs_stats *out)
{
    pthread_mutex_lock(&g.lock);
    *out = g.stats;
    pthread_mutex_unlock(&g.lock);
}
