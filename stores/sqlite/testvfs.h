/*
 * Test-only SQLite VFS shim (DESIGN.md invariant 8): simulated power loss and
 * injected I/O errors, over SQLite's default VFS. Like BISTORE_FAULT
 * (stores/engine/fault.h) it is chosen by an environment variable, read once:
 *
 *   BISTORE_SQLITE_FAULT=<mode>[,<key>=<value>|<flag>]...
 *
 * Unset or empty, nothing is registered and SQLite runs on its default VFS
 * exactly as without the shim. Set, the shim becomes SQLite's default VFS
 * before the gateway opens its first connection (bistore_open calls
 * testvfs_init). A bad spec makes the gateway exit with status 2.
 *
 * Files it models: those SQLite opens as the main database, the WAL and the
 * rollback journal (the journal only exists while a new file is created).
 * Temporary files, statement journals and the -shm are passed through
 * untouched: the -shm is a memory map SQLite never syncs, and the first
 * connection to open a database after every other one has gone resets it
 * and rebuilds the WAL index from the WAL (unix VFS: unixLockSharedMemory
 * truncates it), so its content after a crash does not matter.
 *
 * Mode "powerloss": every xWrite since the file's last xSync is kept in
 * memory (the "page cache": every handle of the file reads it, overlaid on
 * the real file; xFileSize and xTruncate agree with it); xSync writes the
 * pending data of that file through to the real file ("the disk") and
 * fsyncs it. At the cut point the power fails: a random (seeded) subset of
 * the pending writes of every file reaches the real files, whole or, with
 * `torn`, torn at 512-byte sector boundaries, and nothing else does; then
 * the process dies. This is the method of SQLite's own crash tests (test6.c).
 *
 *   cut=N        the N-th xWrite or xSync on a modelled file (required, N >= 1)
 *                is where the power fails (a write still reaches the page
 *                cache first; a sync does not happen)
 *   seed=S       the seed of the random choice (default 1; each cut point
 *                mixes in N, so the same seed draws differently per point)
 *   torn         a write across a 512-byte boundary may be torn there
 *   then=kill    SIGKILL the process after the cut (the default: the gateway)
 *   then=stop    the process lives on but the power stays off: every later
 *                read, write, sync, truncate, size or open of a modelled
 *                file and every delete fails (an in-process test closes its
 *                connection and reopens the file with the real VFS)
 *   nofsync      xSync writes through but skips the real fsync. The simulation
 *                does not need it (the cut decides what "reached the disk",
 *                and the real page cache outlives the process), only the
 *                in-process unit test uses it, for speed.
 *
 * Mode "error": calls of one kind return an error instead of doing anything.
 *
 *   op=K         read | write | sync | truncate | any (required)
 *   nth=N        the N-th call of that kind fails (default 1)
 *   times=T      and the T-1 calls of that kind after it (default 1), or
 *   times=forever  every call of that kind from the N-th on
 *   rc=CODE      full | ioerr | ioerr_read | ioerr_short_read | ioerr_write |
 *                ioerr_fsync | ioerr_truncate | ioerr_nomem | nomem (an
 *                SQLITE_ prefix and any case are accepted). Default: the
 *                code of the kind (SQLITE_IOERR_READ, _WRITE, _FSYNC,
 *                _TRUNCATE). nomem answers SQLITE_IOERR_NOMEM, which is how a
 *                VFS reports it; SQLite passes it on as SQLITE_NOMEM.
 *   file=F       db | wal | journal | any (default any): count only calls on
 *                that file (in WAL mode the database file is written and
 *                synced only by checkpoints, the WAL at every commit)
 *
 * In this mode there is no page cache of the shim's: writes and truncates
 * reach the real file at once, as with the real VFS, so a process killed
 * afterwards (BISTORE_FAULT) keeps them as a real crash would. A failed
 * write or truncate changes nothing; a failed sync leaves what was written
 * in the file: a commit whose fsync failed can come back when SQLite
 * recovers the WAL after a restart, as it can on Linux.
 *
 * Both modes:
 *   after=P[:K]  counting starts only once the process reached point P for
 *                the K-th time (default 1), and from then on only the calls
 *                of the thread that reached it are counted (the writer: GETs
 *                served meanwhile do not shift the count). P is "ready" (the
 *                writer turned ready: recovery is done) or a point of
 *                common/fault_points.h: after_begin, after_neo4j_statements,
 *                after_sqlite_commit, after_neo4j_commit. Without after=,
 *                every call of every thread counts from the start. (The
 *                power cut itself hits every file, whoever wrote it.)
 *   trace        log every modelled write, sync, truncate and checkpoint,
 *                numbered as counted (to find the cut point one wants)
 *   autocheckpoint=N  every connection opened from then on gets
 *                wal_autocheckpoint N at its first commit (an SQLite
 *                auto-extension): checkpoints and WAL restarts every few
 *                transactions instead of every ~1,000 pages, with the same
 *                code and the same sync flags
 *
 * Examples:
 *   powerloss,cut=120,seed=3,torn,after=ready
 *   error,op=sync,file=wal,rc=ioerr_fsync,after=after_neo4j_statements
 *   error,op=write,rc=full,times=forever,after=after_neo4j_commit
 *
 * Limits: what is pending lives only in this process, so another process
 * reading the file (sqlite3 from a test) sees only what reached the real
 * file: read the file from outside only after the gateway died. Directory
 * entries are not modelled (a file created or deleted stays so). All I/O on
 * modelled files is serialised by one mutex. Test use only.
 */
#ifndef BISTORE_TESTVFS_H
#define BISTORE_TESTVFS_H

#include <stdbool.h>
#include <stddef.h>

#define TESTVFS_ENV "BISTORE_SQLITE_FAULT"

/* Reads BISTORE_SQLITE_FAULT once (later calls return at once) and installs
 * the spec; logs a warning when armed; exits with status 2 on a bad spec. */
void testvfs_init(void);

/*
 * Parses spec and makes the shim SQLite's default VFS with it, replacing an
 * earlier spec and its counters. No file may be open through the shim
 * (pending data of closed files is dropped). 0, or -1 with msg filled.
 */
int testvfs_install(const char *spec, char *msg, size_t cap);

/* Unregisters the shim: the VFS that was the default before is again. */
void testvfs_uninstall(void);

/* The process reached a named point (see after= above). Cheap when no spec
 * waits for a point. */
void testvfs_hit(const char *point);

/* True once the power was cut (then=stop). */
bool testvfs_powered_off(void);

/* Cuts the power now, as at a cut point (for a run that never reached it). */
void testvfs_cut_now(void);

/* Counters since testvfs_install, for tests. */
struct testvfs_stats {
    long reads, writes, syncs, truncates; /* calls on modelled files */
    long db_writes, db_syncs;             /* of them on database files */
    long wal_headers;                     /* writes at offset 0 of a WAL: its (re)starts */
    long unsynced_restarts;               /* ... followed by a frame before a sync */
    long checkpoints;                     /* SQLITE_FCNTL_CKPT_START seen */
    long unsynced_checkpoints;            /* ... ended without syncing the database */
    long counted;                         /* calls counted towards cut= or nth= */
    long errors;                          /* errors injected */
    bool cut;                             /* the power was cut */
    long cut_pending, cut_kept, cut_torn; /* writes pending at the cut; whole, torn */
};
void testvfs_get_stats(struct testvfs_stats *out);

#endif
