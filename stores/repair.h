/* Repairs of reconciliation findings through the commit protocol (repair.c). */
#ifndef BISTORE_REPAIR_H
#define BISTORE_REPAIR_H

#include <jansson.h>

#include "stores/reconcile.h"

struct bistore;

struct repair_batch {
    const char *run_id;
    int64_t run_n;
    enum recon_repair policy;
    bool dry_run;
    json_t *findings; /* findings with their "n", in order */
    int64_t repaired; /* out: findings acted on (0 in a dry run) */
};

/* Runs in the writer thread (writer_call): one batch, one transaction. */
int repair_run_batch(struct bistore *bs, void *arg, struct bs_error *err);

#endif
