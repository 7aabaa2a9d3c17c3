/*
 * Test-only fault hook: BISTORE_FAULT=<point>[:<n>] makes the process
 * SIGKILL itself the n-th time (default: the first) a write transaction
 * reaches <point>. Unset, a hook costs one comparison. The fault tests use
 * it to crash the gateway at each step of the commit protocol.
 */
#ifndef BISTORE_FAULT_H
#define BISTORE_FAULT_H

#include "common/fault_points.h"

/* Reads BISTORE_FAULT once; logs a warning when a hook is armed. */
void fault_init(void);
/* The point was reached: kills when armed for it; also tells the SQLite
 * fault shim (stores/sqlite/testvfs.h), which can arm itself at a point. */
void fault_hit(enum fault_point point);
/* Its two halves, for a point reached on two threads: the kill (where the
 * process must die), and the SQLite shim's start (on the thread whose
 * SQLite calls it counts, the writer). */
void fault_kill_at(enum fault_point point);
void fault_vfs_at(enum fault_point point);

#endif
