/*
 * `bistore check`: the validation without a gateway and without writing
 * anything: read-only SQLite, a Neo4j client, the same scan as a
 * reconciliation run. It may run beside a serving gateway; candidates are
 * re-read point-wise before they count, so a write racing the scan is
 * rarely reported (unlike in a gateway's own runs, nothing stops writes
 * between the two reads).
 */
#include <string.h>

#include "stores/reconcile/internal.h"

struct check_ctx {
    struct sql_conn *sql;
    struct neo4j_client *neo4j;
    bool deep;
    const struct check_hooks *hooks;
};

static int check_confirm(void *arg, json_t *candidates, json_t **confirmed, struct bs_error *err)
{
    struct check_ctx *c = arg;
    if (recon_confirm(c->sql, c->neo4j, c->deep, candidates, confirmed, err) != 0)
        return -1;
    size_t i;
    json_t *f;
    if (c->hooks->finding)
        json_array_foreach (*confirmed, i, f)
            c->hooks->finding(c->hooks->arg, f);
    return 0;
}

static int check_progress(void *arg, int64_t scanned, int64_t total)
{
    struct check_ctx *c = arg;
    if (c->hooks->progress)
        c->hooks->progress(c->hooks->arg, scanned, total);
    return 0;
}

int recon_check(const char *sqlite_path, const struct neo4j_config *neo4j,
                const struct recon_options *opt, const struct check_hooks *hooks,
                struct recon_summary *sum, struct bs_error *err)
{
    memset(sum, 0, sizeof *sum);
    struct check_ctx c = {.deep = opt->mode == RECON_DEEP, .hooks = hooks};
    c.sql = sql_open(sqlite_path, false, err);
    if (!c.sql)
        return -1;
    struct neo4j_config ncfg = recon_neo4j_config(neo4j);
    c.neo4j = neo4j_client_new(&ncfg);
    struct neo4j_client *side = c.neo4j ? neo4j_client_new(&ncfg) : NULL;
    if (!side) {
        neo4j_client_free(c.neo4j);
        sql_close(c.sql);
        return bs_error_set(err, BS_STORAGE_ERROR, "cannot set up the Neo4j client"), -1;
    }
    struct recon_hooks rh = {check_confirm, check_progress, &c, NULL};
    int rc = recon_scan(c.sql, c.neo4j, side, opt, &rh, sum, err);
    neo4j_client_free(side);
    neo4j_client_free(c.neo4j);
    sql_close(c.sql);
    return rc;
}
