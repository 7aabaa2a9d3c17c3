/*
 * The page cache of the SQLite fault shim (stores/sqlite/testvfs.h): each
 * modelled path is a node whose writes since its last sync are kept in
 * memory, read through by every handle; a sync writes them to the real
 * file, and a power cut lets a random subset of them through. The shim's
 * lock is held for every function here.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "stores/sqlite/testvfs_internal.h"

/* ---- nodes: the page cache of a modelled file ---- */

struct node *node_find(const char *path)
{
    for (struct node *n = tv.nodes; n; n = n->next)
        if (strcmp(n->path, path) == 0)
            return n;
    return NULL;
}

void pending_drop(struct node *n)
{
    while (n->head) {
        struct pending *p = n->head;
        n->head = p->next;
        free(p);
    }
    n->tail = NULL;
}

/* The node of path (a new one, with a descriptor of its own, if none). */
struct node *node_get(const char *path, enum kind kind)
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
    struct stat info;
    if (!n->path || n->fd < 0 || fstat(n->fd, &info) != 0) {
        if (n->fd >= 0)
            close(n->fd);
        free(n->path);
        free(n);
        return NULL;
    }
    n->kind = kind;
    n->refs = 1;
    n->disk_size = n->floor = n->size = info.st_size;
    n->next = tv.nodes;
    tv.nodes = n;
    return n;
}

/*
 * Frees n once nothing holds it. Closing our descriptor is safe then: POSIX
 * drops a process's locks on a file when any descriptor of it closes, but
 * with no handle left SQLite holds no lock on it.
 */
void node_release(struct node *n, bool force)
{
    if (n->refs > 0 || (n->head && !force))
        return;
    for (struct node **at = &tv.nodes; *at; at = &(*at)->next)
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
int node_read(struct node *n, unsigned char *buf, size_t amt, sqlite3_int64 off)
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

int node_write(struct node *n, const void *buf, size_t amt, sqlite3_int64 off)
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
void node_truncate(struct node *n, sqlite3_int64 size)
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
int node_flush(struct node *n)
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
    uint64_t z = (tv.rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A pending write at the cut: whole, not at all, or (torn) some of its sectors. */
static void cut_write(struct node *n, const struct pending *p)
{
    tv.stats.cut_pending++;
    uint64_t r = rnd() % 8;
    sqlite3_int64 end = p->off + (sqlite3_int64)p->len;
    bool spans = p->off / SECTOR != (end - 1) / SECTOR;
    if (tv.spec.torn && spans && r == 7) {
        tv.stats.cut_torn++;
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
        tv.stats.cut_kept++;
        (void)pwrite_all(n->fd, p->data, p->len, p->off);
    }
}

/*
 * The power fails: each file's pending truncate may or may not reach the
 * disk, then a random subset of its pending writes does, in the order they
 * were made; nothing else. Then SIGKILL, or (then=stop) the power stays off.
 * Lock held.
 */
void power_cut(void)
{
    tv.rng = tv.spec.seed * 0x2545f4914f6cdd1dULL + (uint64_t)tv.spec.cut;
    tv.stats.cut = true;
    for (struct node *n = tv.nodes; n; n = n->next) {
        if (n->floor < n->disk_size && (rnd() & 1))
            (void)ftruncate(n->fd, (off_t)n->floor);
        for (struct pending *p = n->head; p; p = p->next)
            cut_write(n, p);
    }
    if (!tv.spec.stop) {
        log_warn("testvfs: power cut at call %ld: %ld writes pending, %ld reached the disk whole, "
                 "%ld torn; SIGKILL (test only)",
                 tv.stats.counted, tv.stats.cut_pending, tv.stats.cut_kept, tv.stats.cut_torn);
        kill(getpid(), SIGKILL);
        _exit(137); /* not reached */
    }
    log_debug("testvfs: power cut at call %ld: %ld writes pending, %ld whole, %ld torn",
              tv.stats.counted, tv.stats.cut_pending, tv.stats.cut_kept, tv.stats.cut_torn);
    tv.powered_off = true;
    for (struct node *n = tv.nodes; n; n = n->next) {
        pending_drop(n);
        n->size = n->floor = n->disk_size; /* nobody reads it again through us */
    }
}
