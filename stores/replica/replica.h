/*
 * The replication engine's side of the commit protocol: Litestream
 * replicates the gateway's SQLite file, and with a replica configured the
 * writer acknowledges nothing (and lets Neo4j commit nothing) until
 * Litestream says the replica holds it. This layer is the one client of
 * Litestream's control socket (a Unix socket, `socket:` in its
 * configuration): POST /sync {"path", "wait": true, "timeout"} answers once
 * every transaction SQLite committed before the request is in the replica.
 * Used by the writer thread only.
 */
#ifndef BISTORE_REPLICA_H
#define BISTORE_REPLICA_H

#include <stdint.h>

#include "common/result.h"

#define REPLICA_TIMEOUT_S_DEFAULT 5 /* --replica-timeout */

struct replica;

/*
 * A client of the control socket at socket_path for the database at
 * db_path (as Litestream's configuration names it; made absolute here).
 * NULL with err set when out of memory or db_path does not resolve.
 */
struct replica *replica_open(const char *socket_path, const char *db_path, int timeout_s,
                             struct bs_error *err);
void replica_close(struct replica *r);

/*
 * Waits until the replica holds every transaction committed to the
 * database before the call: 0 (*txid is Litestream's replicated position),
 * or -1 with err set (BS_REPLICATION_UNAVAILABLE, with what Litestream said
 * or why it could not be asked).
 */
int replica_sync(struct replica *r, uint64_t *txid, struct bs_error *err);

#endif
