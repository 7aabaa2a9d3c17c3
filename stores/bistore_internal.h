/*
 * Inside the facade (stores/bistore.c, reads.c, verify.c): struct bistore,
 * what it holds of the layers below. Not for handlers.
 */
#ifndef BISTORE_BISTORE_INTERNAL_H
#define BISTORE_BISTORE_INTERNAL_H

#include "stores/bistore.h"
#include "stores/engine/engine.h"
#include "stores/neo4j/neo4j.h"
#include "stores/reconcile/reconcile.h"
#include "stores/sqlite/sqlite.h"

struct bistore {
    /* The configuration, copied: the layers below borrow these strings. */
    char *sqlite_path;
    char *neo4j_url, *neo4j_database, *neo4j_user, *neo4j_password;
    char *replica_socket; /* NULL: no replica */
    struct neo4j_config neo4j_cfg;
    struct engine *engine;         /* the writer and the protocol */
    struct reconciler *reconciler; /* reconciliation runs */
    struct sql_pool readers;       /* read-only connections for reads */
    bool readers_ready;
    struct neo4j_pool read_clients; /* Neo4j clients for verify and readiness */
    size_t max_page_bytes;          /* a list page's rows, in bytes (one row at least) */
};

#endif
