/* What every handler gets: the stores and the limits the handlers apply. */
#ifndef BISTORE_APP_H
#define BISTORE_APP_H

#include <stdatomic.h>
#include <stddef.h>

#include "stores/bistore.h"

/*
 * A standby (README "Replication") serves the probes, the metrics and the
 * contract with no store yet, and answers every other request 503
 * standby; once promoted, the server sets store and then role (release),
 * and the handlers read role first (acquire).
 */
enum app_role { APP_PRIMARY, APP_STANDBY };

struct app {
    struct bistore *store; /* NULL while a standby */
    atomic_int role;       /* enum app_role */
    /* What a standby does now, for /readyz (thread-safe); NULL: none. */
    void (*standby_note)(void *ctx, char *out, size_t cap);
    void *standby_ctx;
    size_t max_operations;     /* per transaction; more: 413 */
    bool allow_raw_statements; /* --allow-raw-statements: raw cypher/sql operations */
};

/* The role now: APP_STANDBY until the store is there. */
static inline enum app_role app_role(struct app *app)
{
    return (enum app_role)atomic_load_explicit(&app->role, memory_order_acquire);
}

/* The gateway's role as /readyz and the metrics name it. */
static inline const char *app_role_name(struct app *app)
{
    if (app_role(app) == APP_STANDBY)
        return "standby";
    return bistore_fenced(app->store) ? "fenced" : "primary";
}

#endif
