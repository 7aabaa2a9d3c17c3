/* `bistore check`: validation without a gateway, read-only (stores/check.c). */
#ifndef BISTORE_CHECK_H
#define BISTORE_CHECK_H

#include <jansson.h>

#include "stores/bistore.h"
#include "stores/reconcile/reconcile.h"

struct check_hooks {
    void (*finding)(void *arg, const json_t *finding);
    void (*progress)(void *arg, int64_t scanned, int64_t total);
    void *arg;
};

/* Scans both stores; sum tells what was found. -1 on a store error. */
int bistore_check(const struct bistore_config *cfg, const struct recon_options *opt,
                  const struct check_hooks *hooks, struct recon_summary *sum, struct bs_error *err);

#endif
