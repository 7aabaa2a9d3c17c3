/*
 * The gateway's lifecycle (stores/bistore.h): the stores opened, the writer
 * and the reconciler started, and everything stopped in the order that
 * lets a reconciliation record how it ended: client writes refused first,
 * then the runs stopped (their bookkeeping still goes through the writer),
 * then the writer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stores/bistore_internal.h"
#include "stores/neo4j/cypher.h"

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Copies the configuration's strings: the layers below borrow them. */
static int copy_config(struct bistore *bs, const struct bistore_config *cfg)
{
    bs->sqlite_path = strdup(cfg->sqlite_path);
    bs->neo4j_url = strdup(cfg->neo4j.url);
    bs->neo4j_database = strdup(cfg->neo4j.database);
    bs->neo4j_user = dup_or_null(cfg->neo4j.user);
    bs->neo4j_password = dup_or_null(cfg->neo4j.password);
    bs->replica_socket = dup_or_null(cfg->replica_socket);
    bs->neo4j_cfg = cfg->neo4j;
    bs->neo4j_cfg.url = bs->neo4j_url;
    bs->neo4j_cfg.database = bs->neo4j_database;
    bs->neo4j_cfg.user = bs->neo4j_user;
    bs->neo4j_cfg.password = bs->neo4j_password;
    return bs->sqlite_path && bs->neo4j_url && bs->neo4j_database &&
                   (!cfg->neo4j.user || bs->neo4j_user) &&
                   (!cfg->neo4j.password || bs->neo4j_password) &&
                   (!cfg->replica_socket || bs->replica_socket)
               ? 0
               : -1;
}

static void free_config(struct bistore *bs)
{
    free(bs->sqlite_path);
    free(bs->neo4j_url);
    free(bs->neo4j_database);
    free(bs->neo4j_user);
    free(bs->neo4j_password);
    free(bs->replica_socket);
}

struct bistore *bistore_open(const struct bistore_config *cfg, struct bs_error *err)
{
    struct bistore *bs = calloc(1, sizeof *bs);
    if (!bs || copy_config(bs, cfg) != 0) {
        if (bs)
            free_config(bs);
        free(bs);
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
        return NULL;
    }
    model_set_limits(cfg->max_properties, cfg->max_string_bytes); /* before any thread */
    bs->max_page_bytes = cfg->max_page_bytes ? cfg->max_page_bytes : (size_t)8 << 20;
    neo4j_pool_init(&bs->read_clients, &bs->neo4j_cfg);
    struct engine_config ecfg = {.sqlite_path = bs->sqlite_path,
                                 .neo4j = bs->neo4j_cfg,
                                 .max_queue = cfg->max_queue,
                                 .max_rel_types = cfg->max_rel_types,
                                 .replica_socket = bs->replica_socket,
                                 .replica_timeout_s = cfg->replica_timeout_s,
                                 .readiness_pool = &bs->read_clients};
    bs->engine = engine_open(&ecfg, err);
    if (!bs->engine)
        goto fail;
    if (sql_pool_init(&bs->readers, bs->sqlite_path, cfg->read_connections) != 0) {
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
        goto fail;
    }
    bs->readers_ready = true;
    struct reconciler_config rcfg = {.engine = bs->engine,
                                     .readers = &bs->readers,
                                     .sqlite_path = bs->sqlite_path,
                                     .neo4j = bs->neo4j_cfg,
                                     .validate_interval_s = cfg->validate_interval_s};
    bs->reconciler = reconciler_new(&rcfg);
    if (!bs->reconciler) {
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
        goto fail;
    }
    if (recon_mark_interrupted(bs->engine, err) != 0)
        goto fail;
    return bs;
fail:
    reconciler_free(bs->reconciler);
    if (bs->readers_ready)
        sql_pool_destroy(&bs->readers);
    engine_close(bs->engine);
    neo4j_pool_destroy(&bs->read_clients);
    free_config(bs);
    free(bs);
    return NULL;
}

int bistore_start(struct bistore *bs, struct bs_error *err)
{
    if (engine_start(bs->engine, err) != 0)
        return -1;
    if (reconciler_start(bs->reconciler) != 0)
        return bs_error_set(err, BS_STORAGE_ERROR, "cannot start the validation thread"), -1;
    return 0;
}

void bistore_close(struct bistore *bs)
{
    if (!bs)
        return;
    engine_stop(bs->engine);
    reconciler_stop(bs->reconciler);
    engine_close(bs->engine);
    reconciler_free(bs->reconciler);
    sql_pool_destroy(&bs->readers);
    neo4j_pool_destroy(&bs->read_clients);
    free_config(bs);
    free(bs);
}

/* ---- writes and readiness ---- */

/*
 * A client's Cypher must stay off the gateway's own labels and properties:
 * refused here, before the writer or either store sees it (invariant 5).
 * 0, or -1 with err naming the operation.
 */
static int check_raw_cypher(const struct bs_txn *txn, struct bs_error *err)
{
    for (size_t i = 0; i < txn->n_ops; i++) {
        const struct bs_op *op = &txn->ops[i];
        if (op->kind != OP_CYPHER)
            continue;
        bool text_ok = cypher_raw_check_text(op->statement, err) == 0;
        if (text_ok && cypher_raw_check(op->statement, op->parameters, err) == 0)
            continue;
        err->op_index = (long)i;
        bs_error_field(err, "%s", text_ok ? "parameters" : "statement");
        return -1;
    }
    return 0;
}

void bistore_submit(struct bistore *bs, struct bs_txn *txn, const char *rid,
                    struct bistore_outcome *out)
{
    memset(out, 0, sizeof *out);
    bs_error_clear(&out->err);
    if (check_raw_cypher(txn, &out->err) != 0)
        return;
    engine_submit(bs->engine, txn, rid, out);
}

void bistore_outcome_clear(struct bistore_outcome *out)
{
    json_decref(out->result);
    out->result = NULL;
}

bool bistore_ready(struct bistore *bs, char *reason, size_t cap)
{
    return engine_ready(bs->engine, reason, cap);
}

bool bistore_fenced(struct bistore *bs)
{
    return engine_fenced(bs->engine);
}

int64_t bistore_epoch(struct bistore *bs)
{
    return engine_epoch(bs->engine);
}

/* ---- reconciliation, check, resolve ---- */

int bistore_reconcile_start(struct bistore *bs, const struct recon_options *opt, char *id,
                            struct bs_error *err)
{
    return recon_start(bs->reconciler, opt, id, err);
}

enum lookup bistore_reconcile_get(struct bistore *bs, const char *id, json_t **out,
                                  struct bs_error *err)
{
    return recon_get(bs->reconciler, id, out, err);
}

int bistore_reconcile_list(struct bistore *bs, const char *after, int limit, json_t **items,
                           char **next, struct bs_error *err)
{
    return recon_list(bs->reconciler, after, limit, items, next, err);
}

enum lookup bistore_findings_list(struct bistore *bs, const char *run_id, const char *kind,
                                  const char *after, int limit, json_t **items, char **next,
                                  struct bs_error *err)
{
    return recon_findings(bs->reconciler, run_id, kind, after, limit, items, next, err);
}

int bistore_check(const struct bistore_config *cfg, const struct recon_options *opt,
                  const struct check_hooks *hooks, struct recon_summary *sum, struct bs_error *err)
{
    return recon_check(cfg->sqlite_path, &cfg->neo4j, opt, hooks, sum, err);
}

/* The engine of a tool that opens the file without serving it. */
static struct engine_config tool_engine(const struct bistore_config *cfg)
{
    struct engine_config ecfg = {.sqlite_path = cfg->sqlite_path,
                                 .neo4j = cfg->neo4j,
                                 .max_queue = 1,
                                 .max_rel_types = cfg->max_rel_types};
    return ecfg;
}

int bistore_promote(const struct bistore_config *cfg, int64_t *epoch, struct bs_error *err)
{
    struct engine_config ecfg = tool_engine(cfg);
    return engine_promote(&ecfg, epoch, err);
}

int bistore_identity(const char *sqlite_path, char *store_id, size_t cap, int64_t *epoch,
                     struct bs_error *err)
{
    return engine_identity(sqlite_path, store_id, cap, epoch, err);
}

int bistore_fence(const struct bistore_config *cfg, const char *store_id, int64_t file_epoch,
                  int64_t *epoch, int64_t *seq, struct bs_error *err)
{
    return engine_fence(&cfg->neo4j, store_id, file_epoch, true, epoch, seq, err);
}

int bistore_adopt(const struct bistore_config *cfg, const char *store_id, int64_t epoch,
                  int64_t seq, struct bs_error *err)
{
    struct engine_config ecfg = tool_engine(cfg);
    return engine_adopt(&ecfg, store_id, epoch, seq, err);
}

int bistore_migrate(const struct bistore_config *cfg, const struct migrate_hooks *hooks,
                    struct migrate_summary *sum, struct bs_error *err)
{
    return recon_migrate(&cfg->neo4j, hooks, sum, err);
}

int bistore_resolve_intent(struct bistore *bs, int64_t seq, enum recon_repair policy, bool dry_run,
                           json_t **report, struct bs_error *err)
{
    return recon_resolve_intent(bs->engine, seq, policy, dry_run, report, err);
}
