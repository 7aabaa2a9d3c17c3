/* Repairs of reconciliation findings through the commit protocol (repair.c). */
#ifndef BISTORE_REPAIR_H
#define BISTORE_REPAIR_H

#include <jansson.h>

#include "stores/reconcile/reconcile.h"

struct engine;
struct apply_state;

struct repair_batch {
    const char *run_id;
    int64_t run_n;
    enum recon_repair policy;
    bool dry_run;
    json_t *findings; /* findings with their "n", in order */
    int64_t repaired; /* out: findings acted on (0 in a dry run) */
};

/* Runs in the writer thread (writer_call): one batch, one transaction. */
int repair_run_batch(struct engine *e, void *arg, struct bs_error *err);

/*
 * The repairs of one batch inside the caller's SQLite transaction (writer
 * thread): each finding is re-read from both stores and, if it still holds,
 * repaired under rb->policy: SQLite's rows changed in place, Neo4j's side
 * appended to state's statements (not sent). In a dry run nothing is written.
 * Each finding gets "action" (and "disagreed": whether it still held; "why"
 * when it was left alone for a reason); with rb->run_n the stored findings'
 * actions are updated too. An apply_hook (engine_commit_internal).
 */
int repair_apply_batch(struct engine *e, void *ctx, struct apply_state *state,
                       struct bs_error *err);

#endif
