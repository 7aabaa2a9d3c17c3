/*
 * Test-only fault hook: BISTORE_FAULT=<point>[:<n>] makes the process
 * SIGKILL itself the n-th time (default: the first) a write transaction
 * reaches <point>. Unset, a hook costs one comparison. The fault tests use
 * it to crash the gateway at each step of the commit protocol.
 */
#ifndef BISTORE_FAULT_H
#define BISTORE_FAULT_H

enum fault_point {
    FAULT_AFTER_BEGIN,            /* SQLite BEGIN + rows applied, Neo4j untouched */
    FAULT_AFTER_NEO4J_STATEMENTS, /* Neo4j statements ran, nothing committed */
    FAULT_AFTER_SQLITE_COMMIT,    /* commit point passed, Neo4j not committed */
    FAULT_AFTER_NEO4J_COMMIT,     /* Neo4j committed, intent not marked applied */
    FAULT_POINT_COUNT
};

/* Reads BISTORE_FAULT once; logs a warning when a hook is armed. */
void fault_init(void);
/* The point was reached: kills when armed for it; also tells the SQLite
 * fault shim (stores/testvfs.h), which can arm itself at a point. */
void fault_hit(enum fault_point point);
/* "after_begin", ...: the name BISTORE_FAULT and BISTORE_SQLITE_FAULT use. */
const char *fault_point_name(enum fault_point point);

#endif
