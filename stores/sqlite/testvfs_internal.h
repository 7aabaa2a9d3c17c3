/*
 * Inside the SQLite fault shim (testvfs.c, testvfs_cache.c): the files it
 * models, their page cache of unsynced writes, and its global state.
 */
#ifndef BISTORE_TESTVFS_INTERNAL_H
#define BISTORE_TESTVFS_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "stores/sqlite/testvfs.h"
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

struct testvfs_globals {
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
};

/* All of the shim's state (testvfs.c), under its one lock. */
extern struct testvfs_globals tv;

/* ---- the page cache of modelled files (testvfs_cache.c); lock held ---- */

struct node *node_find(const char *path);
void pending_drop(struct node *n);
/* The node of path (a new one with kind, its own descriptor open), or NULL. */
struct node *node_get(const char *path, enum kind kind);
/* One handle fewer; with force (or none left and nothing pending) freed. */
void node_release(struct node *n, bool force);
int node_read(struct node *n, unsigned char *buf, size_t amt, sqlite3_int64 off);
int node_write(struct node *n, const void *buf, size_t amt, sqlite3_int64 off);
void node_truncate(struct node *n, sqlite3_int64 size);
/* The pending writes reach the real file ("the disk") and are synced. */
int node_flush(struct node *n);
/* The power fails (see testvfs.h, mode powerloss). */
void power_cut(void);

#endif
