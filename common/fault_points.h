/*
 * The named points of the commit protocol that the test-only fault hooks
 * arm at: BISTORE_FAULT (stores/engine/fault.h) kills the gateway at one,
 * the SQLite fault shim (stores/sqlite/testvfs.h) starts counting at one.
 * Both know them by these names; the engine reaches them (fault_hit).
 */
#ifndef BISTORE_FAULT_POINTS_H
#define BISTORE_FAULT_POINTS_H

enum fault_point {
    FAULT_AFTER_BEGIN,            /* SQLite BEGIN + rows applied, Neo4j untouched */
    FAULT_AFTER_NEO4J_STATEMENTS, /* Neo4j statements ran, nothing committed */
    FAULT_AFTER_SQLITE_COMMIT,    /* commit point passed, Neo4j not committed */
    FAULT_AFTER_NEO4J_COMMIT,     /* Neo4j committed, intent not marked applied */
    FAULT_BEHIND_FLIGHT,          /* a group's statements ran behind the commit of the
                                     group before it, which has not landed yet */
    FAULT_POINT_COUNT
};

/* "after_begin", ...: the name BISTORE_FAULT and BISTORE_SQLITE_FAULT use. */
const char *fault_point_name(enum fault_point point);

#endif
