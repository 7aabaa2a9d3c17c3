/*
 * Promotion's fence (bistore promote; README "Replication"): the store's
 * watermark moves to a new epoch, so that every transaction of a gateway
 * still on the old one fails its guard: a deposed primary can apply
 * nothing more to Neo4j, and so can acknowledge nothing more. Its open
 * transaction may hold the watermark's lock (a gateway that died keeps it
 * until Neo4j's idle timeout, 60 s by default): the fence names it by
 * asking Neo4j what its own statement waits for, and terminates exactly
 * that. Then the SQLite file takes the new epoch.
 *
 * Order, for a standby taking over (issue 15): fence first, then the final
 * restore of the replica, then serve. A write the old primary acknowledged
 * committed in Neo4j under the old epoch, so before the fence, and was in
 * the replica before that: the final restore has it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/background.h"
#include "common/timeutil.h"
#include "stores/engine/internal.h"
#include "stores/neo4j/cypher.h"

#define FENCE_POLL_MS 100
#define TX_ID_MAX 64

struct fence_call {
    struct neo4j_client *client;
    const char *store_id;
    int64_t file_epoch;
    bool strict;
    struct neo4j_result r;
    enum neo4j_status status;
};

static void *fence_run(void *arg)
{
    struct fence_call *f = arg;
    json_t *stmts = json_array();
    if (!stmts || cypher_add_watermark_fence(stmts, f->store_id, f->file_epoch, f->strict) != 0)
        f->status = NEO4J_CLIENT_ERROR;
    else
        f->status = neo4j_autocommit(f->client, stmts, &f->r);
    json_decref(stmts);
    return NULL;
}

/* The transaction ids of Neo4j's "Blocked by: [a, b]" statuses, into ids. */
static void blocker_ids(const struct neo4j_result *r, json_t *ids)
{
    for (size_t row = 0; row < neo4j_row_count(r, 0); row++) {
        const char *status = json_string_value(neo4j_cell(r, 0, row, 0));
        const char *p = status ? strchr(status, '[') : NULL;
        while (p && *p && *p != ']') {
            p += strspn(p, "[, ");
            size_t n = strcspn(p, ",] ");
            if (n > 0 && n < TX_ID_MAX) {
                char id[TX_ID_MAX];
                memcpy(id, p, n);
                id[n] = '\0';
                if (json_array_append_new(ids, json_string(id)) != 0)
                    return; /* out of memory: the next poll tries again */
            }
            p += n;
        }
    }
}

/* Terminates what the fence waits for; the count terminated. *warned:
 * a refusal was logged already (it is retried every FENCE_POLL_MS). */
static size_t terminate_blockers(struct neo4j_client *c, bool strict, bool *warned)
{
    json_t *stmts = json_array(), *ids = json_array();
    struct neo4j_result r = {0};
    size_t n = 0;
    if (stmts && ids && cypher_add_fence_blockers(stmts, strict) == 0 &&
        neo4j_autocommit(c, stmts, &r) == NEO4J_OK)
        blocker_ids(&r, ids);
    neo4j_result_clear(&r);
    json_decref(stmts);
    n = json_array_size(ids);
    stmts = n ? json_array() : NULL;
    if (stmts && cypher_add_terminate(stmts, json_incref(ids)) == 0 &&
        neo4j_autocommit(c, stmts, &r) == NEO4J_OK) {
        for (size_t i = 0; i < n; i++)
            log_warn("promote: terminated Neo4j transaction %s, which held the watermark",
                     json_string_value(json_array_get(ids, i)));
    } else if (n) {
        if (!*warned)
            log_warn("promote: cannot terminate %zu transaction(s) holding the watermark (%s): "
                     "waiting for Neo4j to expire them",
                     n, r.message);
        *warned = true;
        n = 0;
    }
    neo4j_result_clear(&r);
    json_decref(stmts);
    json_decref(ids);
    return n;
}

int engine_identity(const char *sqlite_path, char *store_id, size_t cap, int64_t *epoch,
                    struct bs_error *err)
{
    struct sql_conn *sql = sql_open(sqlite_path, false, err);
    if (!sql)
        return -1;
    int rc = -1;
    switch (sql_meta_get(sql, "store_id", store_id, cap, err)) {
    case LOOKUP_FOUND: rc = engine_read_epoch(sql, epoch, err); break;
    case LOOKUP_MISSING:
        bs_error_set(err, BS_STORAGE_ERROR, "%s holds no store id: not a bistore file",
                     sqlite_path);
        break;
    case LOOKUP_FAILED: break;
    }
    sql_close(sql);
    return rc;
}

int engine_fence(const struct neo4j_config *ncfg, const char *store_id, int64_t file_epoch,
                 bool strict, int64_t *epoch, int64_t *seq, struct bs_error *err)
{
    struct fence_call f = {.client = neo4j_client_new(ncfg),
                           .store_id = store_id,
                           .file_epoch = file_epoch,
                           .strict = strict};
    struct neo4j_client *killer = neo4j_client_new(ncfg);
    int rc = -1;
    if (!f.client || !killer) {
        bs_error_set(err, BS_STORAGE_ERROR, "cannot set up the Neo4j client");
        goto out;
    }
    struct background bg;
    background_start(&bg, fence_run, &f);
    bool warned = false;
    while (!background_returned(&bg)) {
        time_sleep_ms(FENCE_POLL_MS);
        if (!background_returned(&bg))
            terminate_blockers(killer, strict, &warned);
    }
    background_wait(&bg);
    json_t *v = neo4j_cell(&f.r, 0, 0, 0), *s = neo4j_cell(&f.r, 0, 0, 1);
    if (f.status != NEO4J_OK) {
        neo4j_failure(err, &f.r, "the fence");
    } else if (strict && neo4j_row_count(&f.r, 0) == 0) {
        bs_error_set(err, BS_NEO4J_ERROR,
                     "Neo4j holds no watermark of store %s: is this the store's Neo4j "
                     "(--neo4j-url)? Nothing was fenced",
                     store_id);
        rc = 1;
    } else if (strict && !json_is_true(neo4j_cell(&f.r, 0, 0, 2))) {
        bs_error_set(err, BS_NEO4J_ERROR,
                     "the store's watermark is at epoch %lld, the copy at %lld: another gateway "
                     "took over since; nothing was fenced (follow the newest replica)",
                     (long long)json_integer_value(v), (long long)file_epoch);
        rc = 1;
    } else if (!json_is_integer(v) || !json_is_integer(s) || json_integer_value(v) <= file_epoch) {
        bs_error_set(err, BS_NEO4J_ERROR, "the fence answered no new epoch");
    } else {
        *epoch = json_integer_value(v);
        *seq = json_integer_value(s);
        rc = 0;
    }
out:
    neo4j_result_clear(&f.r);
    neo4j_client_free(f.client);
    neo4j_client_free(killer);
    return rc;
}

/* The file of e takes epoch if its log reaches seq (see engine_adopt). */
static int adopt(struct engine *e, int64_t epoch, int64_t seq, struct bs_error *err)
{
    if (seq > e->last_seq) {
        /* The old primary committed intents in Neo4j this copy lacks (it
         * was taken before them). They were in the replica before Neo4j
         * had them, and from now on (fenced) it adds no more: a copy
         * restored now has them all. */
        bs_error_set(err, BS_NEO4J_ERROR,
                     "Neo4j's watermark is at intent %lld, past this file's log (%lld): the old "
                     "primary wrote after this copy was taken. It is fenced now (epoch %lld): "
                     "restore the replica again into this path and run bistore promote again",
                     (long long)seq, (long long)e->last_seq, (long long)epoch);
        return 1;
    }
    char text[32];
    snprintf(text, sizeof text, "%lld", (long long)epoch);
    return sql_meta_set(writer_sql(e), "epoch", text, err) == 0 ? 0 : -1;
}

int engine_adopt(const struct engine_config *cfg, const char *store_id, int64_t epoch, int64_t seq,
                 struct bs_error *err)
{
    struct engine *e = engine_open(cfg, err);
    if (!e)
        return -1;
    int rc = -1;
    if (strcmp(e->store_id, store_id) != 0)
        bs_error_set(err, BS_STORAGE_ERROR, "%s is a copy of store %s, not of %s", cfg->sqlite_path,
                     e->store_id, store_id);
    else
        rc = adopt(e, epoch, seq, err);
    engine_close(e);
    return rc;
}

int engine_promote(const struct engine_config *cfg, int64_t *epoch, struct bs_error *err)
{
    struct engine *e = engine_open(cfg, err);
    if (!e)
        return -1;
    int64_t seq = 0;
    int rc = engine_fence(&e->neo4j_cfg, e->store_id, e->epoch, false, epoch, &seq, err);
    if (rc == 0)
        rc = adopt(e, *epoch, seq, err);
    engine_close(e);
    return rc;
}
