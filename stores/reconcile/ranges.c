/*
 * The fast scan by range checksums (the approach of data-diff): each store
 * sums, inside itself, the hash parts and versions of the records of an id
 * range on its id index (SQLite in SQL, Neo4j in Cypher over the
 * uniqueness constraint's index; a relationship's also the id part
 * (_hid) of its two entities, so one moved to another node is seen); a range
 * whose count and sums agree in both is done without a row leaving either
 * store. A range that differs is
 * cut into RANGE_FANOUT parts at actual keys of the store holding more of
 * it, and the parts are checked again; one of at most RANGE_LEAF_ROWS rows
 * is merged row by row (recon_merge), and only that merge makes findings:
 * a checksum never becomes one by itself.
 *
 * Neo4j runs a query on one core: the ranges of a round go to it in two
 * requests at once, on the scan's two connections, while SQLite sums them.
 *
 * The first plan cuts the whole id space at every RANGE_TOP_ROWS-th key of
 * SQLite; the first range starts at "" and the last has no end, so every
 * id of either store is in exactly one range, however the ids are spread.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "stores/neo4j/recon.h"
#include "stores/reconcile/internal.h"
#include "stores/sqlite/recon.h"

#define RANGE_TOP_ROWS 4096
#define RANGE_FANOUT 16
#define RANGE_LEAF_ROWS 256
#define RANGE_BATCH 64 /* ranges per Neo4j request */
#define RANGE_MAX_DEPTH 12

static int oom(struct bs_error *err)
{
    bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
    return -1;
}

static bool sums_equal(const struct canon_sums *a, const struct canon_sums *b)
{
    return a->count == b->count && a->h1 == b->h1 && a->h2 == b->h2 && a->version == b->version &&
           a->source == b->source && a->target == b->target;
}

/* [[lo, k1], [k1, k2], ..., [kn, hi]]: the range [lo, hi) cut at keys (in
 * order, each after lo); NULL when out of memory. */
static json_t *cut(json_t *lo, json_t *hi, json_t *keys)
{
    json_t *ranges = json_array();
    json_t *from = lo;
    size_t i;
    json_t *k;
    json_array_foreach (keys, i, k) {
        if (!ranges || json_array_append_new(ranges, json_pack("[O, O]", from, k)) != 0)
            return json_decref(ranges), NULL;
        from = k;
    }
    if (!ranges || json_array_append_new(ranges, json_pack("[O, O]", from, hi)) != 0)
        return json_decref(ranges), NULL;
    return ranges;
}

static int check(struct recon_scan *sc, json_t *ranges, int depth, int64_t *n_sqlite,
                 int64_t *n_neo4j, struct bs_error *err);

/* A range that differs: cut at the keys of the store holding more of it,
 * or merged when it is small (or cannot be cut: every row one id). */
static int narrow(struct recon_scan *sc, json_t *range, const struct canon_sums *s,
                  const struct canon_sums *n, int depth, int64_t *n_sqlite, int64_t *n_neo4j,
                  struct bs_error *err)
{
    json_t *lo = json_array_get(range, 0), *hi = json_array_get(range, 1);
    const char *los = json_string_value(lo), *his = json_string_value(hi);
    int64_t rows = s->count > n->count ? s->count : n->count;
    if (rows <= RANGE_LEAF_ROWS || depth >= RANGE_MAX_DEPTH)
        return recon_merge(sc, los, his, n_sqlite, n_neo4j, err);
    int64_t every = (rows + RANGE_FANOUT - 1) / RANGE_FANOUT;
    json_t *keys = json_array();
    if (!keys)
        return oom(err);
    int rc = s->count >= n->count
                 ? sql_range_keys(sc->sql, sc->rel_type, los, his, every, keys, err)
                 : neo4j_range_keys(sc->neo4j, sc->rel_type, los, his, every, keys, err);
    /* Keys equal to lo (duplicate ids in Neo4j) cut nothing off. */
    while (rc == 0 && json_array_size(keys) > 0 &&
           (!json_is_string(json_array_get(keys, 0)) ||
            strcmp(json_string_value(json_array_get(keys, 0)), los) == 0))
        json_array_remove(keys, 0);
    json_t *parts = rc == 0 && json_array_size(keys) > 0 ? cut(lo, hi, keys) : NULL;
    if (rc == 0)
        rc = parts                        ? check(sc, parts, depth + 1, n_sqlite, n_neo4j, err)
             : json_array_size(keys) == 0 ? recon_merge(sc, los, his, n_sqlite, n_neo4j, err)
                                          : oom(err);
    json_decref(parts);
    json_decref(keys);
    return rc;
}

/* Neo4j's checksums of some ranges, in a thread of their own while SQLite
 * computes its own: the two stores work at the same time. */
struct neo4j_sums {
    struct neo4j_client *neo4j;
    const char *type;
    json_t *batch;
    struct canon_sums *out;
    struct bs_error err;
    int rc;
    pthread_t thread;
    bool threaded;
};

static void *neo4j_sums_run(void *arg)
{
    struct neo4j_sums *j = arg;
    j->rc = neo4j_range_sums(j->neo4j, j->type, j->batch, j->out, &j->err);
    return NULL;
}

/* ranges[first, first + count) as a new array, NULL when out of memory. */
static json_t *slice(json_t *ranges, size_t first, size_t count)
{
    json_t *part = json_array();
    for (size_t i = 0; part && i < count; i++)
        if (json_array_append(part, json_array_get(ranges, first + i)) != 0)
            json_decref(part), part = NULL;
    return part;
}

/* Checks ranges (in id order) a round at a time: a Neo4j request of up to
 * RANGE_BATCH ranges on each connection the scan has (Neo4j runs a query on
 * one core, so two requests side by side use both) and, meanwhile, one
 * SQLite statement per range. */
static int check(struct recon_scan *sc, json_t *ranges, int depth, int64_t *n_sqlite,
                 int64_t *n_neo4j, struct bs_error *err)
{
    struct neo4j_client *conns[] = {sc->neo4j, sc->neo4j_side};
    size_t n_conns = sc->neo4j_side ? 2 : 1;
    struct canon_sums neo[2 * RANGE_BATCH], sql[2 * RANGE_BATCH];
    size_t total = json_array_size(ranges);
    for (size_t first = 0; first < total;) {
        size_t count =
            total - first < n_conns * RANGE_BATCH ? total - first : n_conns * RANGE_BATCH;
        /* Split evenly: a round waits for its slower request. */
        size_t jobs = count < n_conns ? count : n_conns;
        struct neo4j_sums job[2];
        int rc = 0;
        size_t started = 0;
        for (size_t k = 0, from = 0; rc == 0 && k < jobs; k++) {
            size_t part = count / jobs + (k < count % jobs ? 1 : 0);
            job[k] =
                (struct neo4j_sums){.neo4j = conns[k], .type = sc->rel_type, .out = neo + from};
            bs_error_clear(&job[k].err);
            job[k].batch = slice(ranges, first + from, part);
            if (!job[k].batch) {
                rc = oom(err);
                break;
            }
            started++;
            job[k].threaded = pthread_create(&job[k].thread, NULL, neo4j_sums_run, &job[k]) == 0;
            if (!job[k].threaded)
                neo4j_sums_run(&job[k]);
            from += part;
        }
        for (size_t i = 0; rc == 0 && i < count; i++) {
            json_t *range = json_array_get(ranges, first + i);
            memset(&sql[i], 0, sizeof sql[i]);
            rc = sql_range_sums(sc->sql, sc->rel_type, json_string_value(json_array_get(range, 0)),
                                json_string_value(json_array_get(range, 1)), &sql[i], err);
        }
        for (size_t k = 0; k < started; k++) {
            if (job[k].threaded)
                pthread_join(job[k].thread, NULL);
            json_decref(job[k].batch);
            if (rc == 0 && job[k].rc != 0) {
                *err = job[k].err;
                rc = -1;
            }
        }
        for (size_t i = 0; rc == 0 && i < count; i++) {
            if (sums_equal(&sql[i], &neo[i])) {
                *n_sqlite += sql[i].count;
                *n_neo4j += neo[i].count;
                sc->scanned += sql[i].count;
                rc = recon_progress(sc, err);
            } else {
                rc = narrow(sc, json_array_get(ranges, first + i), &sql[i], &neo[i], depth,
                            n_sqlite, n_neo4j, err);
            }
        }
        if (rc != 0)
            return rc;
        first += count;
    }
    return 0;
}

int recon_ranges(struct recon_scan *sc, int64_t *n_sqlite, int64_t *n_neo4j, struct bs_error *err)
{
    json_t *keys = json_array(), *lo = json_string(""), *hi = json_null();
    int rc = keys && lo ? 0 : oom(err);
    if (rc == 0)
        rc = sql_range_keys(sc->sql, sc->rel_type, "", NULL, RANGE_TOP_ROWS, keys, err);
    json_t *plan = rc == 0 ? cut(lo, hi, keys) : NULL;
    if (rc == 0)
        rc = plan ? check(sc, plan, 0, n_sqlite, n_neo4j, err) : oom(err);
    json_decref(plan);
    json_decref(keys);
    json_decref(lo);
    json_decref(hi);
    return rc;
}
