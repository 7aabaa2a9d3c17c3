/*
 * bench_recon_load: fills an empty SQLite file and an empty Neo4j with a
 * consistent bistore store, fast, for the reconciliation benchmark
 * (bench/recon.sh).
 *
 *   bench_recon_load --sqlite PATH --neo4j-url URL --entities N --relationships M
 *                    [--neo4j-database neo4j] [--batch 10000] [--seed S]
 *
 * Rows are what the gateway itself would have written for the same creates:
 * SQLite rows through stores/sqlite/ (the gateway's schema and insert
 * statements), hashes from canon_entity_record / canon_relationship_record
 * and canon_hash, Neo4j nodes (:Entity:<type> {properties, id, _v, _h}) and
 * relationships {properties, id, _v, _h}. Only the path differs: one SQLite
 * transaction and one Neo4j `UNWIND` request per batch instead of one
 * gateway transaction per object, and no intent log (a bulk load is not a
 * client write).
 *
 * Ids are e%08d and r%08d, so the order of both scans is known; types,
 * properties and endpoints come from a seeded generator, so one seed gives
 * one store. It refuses to load into a store that already holds entities.
 * Exit status: 0 when both stores hold everything, 1 on any failure.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "bench/bench_common.h"
#include "common/log.h"
#include "common/result.h"
#include "common/timeutil.h"
#include "stores/model/canon.h"
#include "stores/model/model.h"
#include "stores/neo4j/cypher.h"
#include "stores/neo4j/neo4j.h"
#include "stores/sqlite/internal.h" /* the bulk load's pragmas */
#include "stores/sqlite/recon.h"

#define DEFAULT_BATCH 10000
#define MAX_BATCH 100000
#define NEO4J_LOAD_TIMEOUT_MS (30L * 60 * 1000) /* one big UNWIND can take long */
#define CYPHER_MAX 512
#define N_ENTITY_TYPES 3
#define N_REL_TYPES 3

static const char *const entity_types[N_ENTITY_TYPES] = {"Person", "Org", "Document"};
static const char *const rel_types[N_REL_TYPES] = {"MENTIONS", "WORKS_AT", "CITES"};
static const char *const words[] = {"graph",   "protein", "climate", "neural", "sensor",
                                    "archive", "genome",  "policy",  "market", "ocean",
                                    "quantum", "library", "survey",  "energy", "vaccine"};
#define N_WORDS (sizeof words / sizeof words[0])

struct options {
    const char *sqlite_path;
    const char *neo4j_url;
    const char *database;
    long entities, relationships, batch;
    uint64_t seed;
    bool verbose; /* log every Neo4j request with its duration */
};

/* Wall time spent in each part of the load, for the rates it prints. */
struct timing {
    int64_t build_ms, sqlite_ms, neo4j_ms;
};

struct loader {
    const struct options *opt;
    struct sql_conn *sql;
    struct neo4j_client *neo4j;
    uint64_t rng;
    char now[TIMESTAMP_LEN];
    struct timing ent, rel;
};

/* ---- the generator (splitmix64: small, fast, the same on every machine) ---- */

static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static long random_below(struct loader *l, long n)
{
    return (long)(next_random(&l->rng) % (uint64_t)n);
}

/* A real with two decimals in [0, max): how scores and amounts look. */
static double random_amount(struct loader *l, long max)
{
    return (double)random_below(l, max * 100) / 100.0;
}

static json_t *random_words(struct loader *l, int min, int max)
{
    json_t *arr = json_array();
    int n = min + (int)random_below(l, max - min + 1);
    for (int i = 0; arr && i < n; i++) {
        if (json_array_append_new(arr, json_string(words[random_below(l, (long)N_WORDS)])) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

/* The properties of entity number i of type t: 4-5 of string, integer,
 * float and array of strings. NULL on no memory. */
static json_t *entity_properties(struct loader *l, long i, int t)
{
    char name[64];
    json_t *tags = random_words(l, 1, 3);
    json_t *p = NULL;
    switch (t) {
    case 0:
        snprintf(name, sizeof name, "Person %ld", i);
        p = json_pack("{s:s, s:I, s:f, s:o}", "name", name, "age",
                      (json_int_t)(18 + random_below(l, 70)), "score", random_amount(l, 100),
                      "tags", tags);
        break;
    case 1:
        snprintf(name, sizeof name, "Org %ld", i);
        p = json_pack("{s:s, s:I, s:f, s:o, s:s}", "name", name, "founded",
                      (json_int_t)(1900 + random_below(l, 125)), "revenue",
                      random_amount(l, 1000000), "sectors", tags, "country",
                      random_below(l, 2) ? "DE" : "FR");
        break;
    default:
        snprintf(name, sizeof name, "On the %s of %s, part %ld",
                 words[random_below(l, (long)N_WORDS)], words[random_below(l, (long)N_WORDS)], i);
        p = json_pack("{s:s, s:I, s:f, s:o, s:s}", "title", name, "pages",
                      (json_int_t)(1 + random_below(l, 400)), "rank", random_amount(l, 10),
                      "keywords", tags, "lang", random_below(l, 3) ? "en" : "de");
        break;
    }
    return p; /* json_pack's "o" took tags, even on failure */
}

static json_t *relationship_properties(struct loader *l, int t)
{
    if (t == 1)
        return json_pack("{s:I, s:s}", "since", (json_int_t)(1980 + random_below(l, 45)), "role",
                         random_below(l, 2) ? "staff" : "advisor");
    return json_pack("{s:f}", "weight", random_amount(l, 1));
}

/* ---- failures ---- */

static int fail_sql(const struct bs_error *err, const char *what)
{
    fprintf(stderr, "bench_recon_load: SQLite (%s): %s\n", what, err->message);
    return -1;
}

static int fail_neo4j(const struct neo4j_result *r, const char *what)
{
    fprintf(stderr, "bench_recon_load: Neo4j (%s): %s %s\n", what, r->code, r->message);
    return -1;
}

static int fail_nomem(void)
{
    fprintf(stderr, "bench_recon_load: out of memory\n");
    return -1;
}

/* ---- Neo4j ---- */

/* Runs statements in one autocommit request; the result is r's (clear it). */
static int neo4j_send(struct loader *l, json_t *stmts, struct neo4j_result *r, const char *what)
{
    enum neo4j_status st = neo4j_autocommit(l->neo4j, stmts, r);
    return st == NEO4J_OK ? 0 : fail_neo4j(r, what);
}

/* One schema statement in its own transaction (Neo4j refuses to mix them). */
static int neo4j_schema(struct loader *l, const char *text)
{
    json_t *stmts = json_array();
    struct neo4j_result r = {0};
    if (!stmts || neo4j_add_statement(stmts, text, NULL) != 0) {
        json_decref(stmts);
        return fail_nomem();
    }
    int rc = neo4j_send(l, stmts, &r, text);
    json_decref(stmts);
    neo4j_result_clear(&r);
    return rc;
}

static int create_constraints(struct loader *l)
{
    if (neo4j_schema(l, cypher_entity_constraint()) != 0)
        return -1;
    for (int t = 0; t < N_REL_TYPES; t++) {
        char text[CYPHER_MAX];
        if (cypher_relationship_constraint(rel_types[t], text, sizeof text) != 0) {
            fprintf(stderr, "bench_recon_load: bad relationship type %s\n", rel_types[t]);
            return -1;
        }
        if (neo4j_schema(l, text) != 0)
            return -1;
    }
    return 0;
}

/* A count(*) answer of one query. */
static int neo4j_count(struct loader *l, const char *text, int64_t *count)
{
    json_t *stmts = json_array();
    struct neo4j_result r = {0};
    if (!stmts || neo4j_add_statement(stmts, text, NULL) != 0) {
        json_decref(stmts);
        return fail_nomem();
    }
    int rc = neo4j_send(l, stmts, &r, "count");
    json_decref(stmts);
    json_t *cell = rc == 0 ? neo4j_cell(&r, 0, 0, 0) : NULL;
    if (rc == 0 && !json_is_integer(cell)) {
        fprintf(stderr, "bench_recon_load: Neo4j count: unexpected answer\n");
        rc = -1;
    }
    if (rc == 0)
        *count = json_integer_value(cell);
    neo4j_result_clear(&r);
    return rc;
}

/*
 * Sends one batch: rows[t] holds the rows of type t (stolen). Each
 * statement returns count(*), which must equal its number of rows: a
 * relationship whose endpoint Neo4j lacks would otherwise vanish silently.
 */
static int neo4j_load(struct loader *l, const char *const *types, int n_types, json_t **rows,
                      bool relationships)
{
    json_t *stmts = json_array();
    size_t expected[N_ENTITY_TYPES > N_REL_TYPES ? N_ENTITY_TYPES : N_REL_TYPES];
    int n_stmts = 0, rc = 0;
    if (!stmts)
        rc = fail_nomem();
    for (int t = 0; t < n_types; t++) {
        size_t n = json_array_size(rows[t]);
        if (rc != 0 || n == 0) {
            json_decref(rows[t]);
            continue;
        }
        if (!model_valid_name(types[t])) { /* it becomes query text */
            fprintf(stderr, "bench_recon_load: bad type %s\n", types[t]);
            json_decref(rows[t]);
            rc = -1;
            continue;
        }
        char text[CYPHER_MAX];
        if (relationships)
            snprintf(text, sizeof text,
                     "UNWIND $rows AS r MATCH (a:Entity {id: r.s}) MATCH (b:Entity {id: r.t})"
                     " CREATE (a)-[x:`%s`]->(b) SET x = r.p RETURN count(*)",
                     types[t]);
        else
            snprintf(text, sizeof text,
                     "UNWIND $rows AS r CREATE (n:Entity:`%s`) SET n = r RETURN count(*)",
                     types[t]);
        json_t *params = json_pack("{s:o}", "rows", rows[t]);
        if (!params || neo4j_add_statement(stmts, text, params) != 0) {
            rc = fail_nomem();
            continue;
        }
        expected[n_stmts++] = n;
    }
    struct neo4j_result r = {0};
    if (rc == 0 && n_stmts > 0)
        rc = neo4j_send(l, stmts, &r, relationships ? "load relationships" : "load entities");
    for (int s = 0; rc == 0 && s < n_stmts; s++) {
        json_t *cell = neo4j_cell(&r, (size_t)s, 0, 0);
        if (!json_is_integer(cell) || (size_t)json_integer_value(cell) != expected[s]) {
            fprintf(stderr,
                    "bench_recon_load: Neo4j created %" JSON_INTEGER_FORMAT " of %zu rows\n",
                    json_integer_value(cell), expected[s]);
            rc = -1;
        }
    }
    neo4j_result_clear(&r);
    json_decref(stmts);
    return rc;
}

/* ---- SQLite ---- */

static int loader_begin(struct loader *l)
{
    struct bs_error err;
    bs_error_clear(&err);
    return sql_begin(l->sql, &err) == 0 ? 0 : fail_sql(&err, "begin");
}

static int loader_commit(struct loader *l)
{
    struct bs_error err;
    bs_error_clear(&err);
    return sql_commit(l->sql, &err) == 0 ? 0 : fail_sql(&err, "commit");
}

/* ---- one batch of entities ---- */

/* Builds entity number i as the gateway stores it; e->properties is new. */
static int build_entity(struct loader *l, long i, struct sql_entity *e, int *type)
{
    memset(e, 0, sizeof *e);
    *type = (int)random_below(l, N_ENTITY_TYPES);
    snprintf(e->id, sizeof e->id, "e%08ld", i);
    snprintf(e->type, sizeof e->type, "%s", entity_types[*type]);
    e->version = 1;
    snprintf(e->created_at, sizeof e->created_at, "%s", l->now);
    snprintf(e->updated_at, sizeof e->updated_at, "%s", l->now);
    e->properties = entity_properties(l, i, *type);
    e->metadata =
        json_pack("{s:s, s:I}", "source", "bench_recon_load", "seed", (json_int_t)l->opt->seed);
    if (!e->properties || !e->metadata)
        return fail_nomem();
    struct bs_error err;
    bs_error_clear(&err);
    if (!model_check_properties(e->properties, false, "properties.", &err)) {
        fprintf(stderr, "bench_recon_load: generated properties refused: %s\n", err.message);
        return -1;
    }
    json_t *rec = canon_entity_record(e->id, e->type, e->properties, e->version);
    int rc = rec ? canon_hash(rec, e->hash) : -1;
    json_decref(rec);
    return rc == 0 ? 0 : fail_nomem();
}

static int load_entities(struct loader *l, long first, long n)
{
    int64_t t0 = time_monotonic_ms();
    json_t *rows[N_ENTITY_TYPES] = {0};
    int rc = 0;
    for (int t = 0; t < N_ENTITY_TYPES; t++)
        if (!(rows[t] = json_array()))
            rc = fail_nomem();
    struct sql_entity *batch = calloc((size_t)n, sizeof *batch);
    if (!batch)
        rc = fail_nomem();
    for (long k = 0; rc == 0 && k < n; k++) {
        int t;
        rc = build_entity(l, first + k, &batch[k], &t);
        json_t *node = rc == 0 ? canon_neo4j_entity_map(batch[k].id, batch[k].properties,
                                                        batch[k].version, batch[k].hash)
                               : NULL;
        if (rc == 0 && (!node || json_array_append_new(rows[t], node) != 0))
            rc = fail_nomem();
    }
    int64_t t1 = time_monotonic_ms();
    l->ent.build_ms += t1 - t0;
    if (rc == 0)
        rc = loader_begin(l);
    for (long k = 0; rc == 0 && k < n; k++) {
        struct bs_error err;
        bs_error_clear(&err);
        if (sql_entity_insert(l->sql, &batch[k], &err) != 0)
            rc = fail_sql(&err, "insert entity");
    }
    if (rc == 0)
        rc = loader_commit(l);
    int64_t t2 = time_monotonic_ms();
    l->ent.sqlite_ms += t2 - t1;
    if (batch)
        for (long k = 0; k < n; k++)
            sql_entity_clear(&batch[k]);
    free(batch);
    if (rc == 0) {
        rc = neo4j_load(l, entity_types, N_ENTITY_TYPES, rows, false);
    } else {
        for (int t = 0; t < N_ENTITY_TYPES; t++)
            json_decref(rows[t]);
    }
    l->ent.neo4j_ms += time_monotonic_ms() - t2;
    return rc;
}

/* ---- one batch of relationships ---- */

static int build_relationship(struct loader *l, long i, struct sql_relationship *r, int *type)
{
    memset(r, 0, sizeof *r);
    *type = (int)random_below(l, N_REL_TYPES);
    snprintf(r->id, sizeof r->id, "r%08ld", i);
    snprintf(r->type, sizeof r->type, "%s", rel_types[*type]);
    snprintf(r->source, sizeof r->source, "e%08ld", random_below(l, l->opt->entities));
    snprintf(r->target, sizeof r->target, "e%08ld", random_below(l, l->opt->entities));
    r->version = 1;
    snprintf(r->created_at, sizeof r->created_at, "%s", l->now);
    snprintf(r->updated_at, sizeof r->updated_at, "%s", l->now);
    r->properties = relationship_properties(l, *type);
    if (!r->properties)
        return fail_nomem();
    json_t *rec =
        canon_relationship_record(r->id, r->type, r->source, r->target, r->properties, r->version);
    int rc = rec ? canon_hash(rec, r->hash) : -1;
    json_decref(rec);
    return rc == 0 ? 0 : fail_nomem();
}

static int load_relationships(struct loader *l, long first, long n)
{
    int64_t t0 = time_monotonic_ms();
    json_t *rows[N_REL_TYPES] = {0};
    int rc = 0;
    for (int t = 0; t < N_REL_TYPES; t++)
        if (!(rows[t] = json_array()))
            rc = fail_nomem();
    struct sql_relationship *batch = calloc((size_t)n, sizeof *batch);
    if (!batch)
        rc = fail_nomem();
    for (long k = 0; rc == 0 && k < n; k++) {
        int t;
        struct sql_relationship *r = &batch[k];
        rc = build_relationship(l, first + k, r, &t);
        json_t *p = rc == 0 ? canon_neo4j_map(r->id, r->properties, r->version, r->hash) : NULL;
        json_t *row =
            p ? json_pack("{s:s, s:s, s:o}", "s", r->source, "t", r->target, "p", p) : NULL;
        if (rc == 0 && (!row || json_array_append_new(rows[t], row) != 0))
            rc = fail_nomem();
    }
    int64_t t1 = time_monotonic_ms();
    l->rel.build_ms += t1 - t0;
    if (rc == 0)
        rc = loader_begin(l);
    for (long k = 0; rc == 0 && k < n; k++) {
        struct bs_error err;
        bs_error_clear(&err);
        if (sql_relationship_insert(l->sql, &batch[k], &err) != 0)
            rc = fail_sql(&err, "insert relationship");
    }
    if (rc == 0)
        rc = loader_commit(l);
    int64_t t2 = time_monotonic_ms();
    l->rel.sqlite_ms += t2 - t1;
    if (batch)
        for (long k = 0; k < n; k++)
            sql_relationship_clear(&batch[k]);
    free(batch);
    if (rc == 0) {
        rc = neo4j_load(l, rel_types, N_REL_TYPES, rows, true);
    } else {
        for (int t = 0; t < N_REL_TYPES; t++)
            json_decref(rows[t]);
    }
    l->rel.neo4j_ms += time_monotonic_ms() - t2;
    return rc;
}

/* ---- the whole load ---- */

static double per_second(long n, int64_t ms)
{
    return ms > 0 ? (double)n * 1000.0 / (double)ms : 0.0;
}

static void report(const char *what, long n, const struct timing *t, int64_t wall_ms)
{
    printf("load %s: %ld in %.1f s (%.0f/s overall); build+hash %.1f s, SQLite %.1f s "
           "(%.0f/s), Neo4j %.1f s (%.0f/s)\n",
           what, n, (double)wall_ms / 1000.0, per_second(n, wall_ms), (double)t->build_ms / 1000.0,
           (double)t->sqlite_ms / 1000.0, per_second(n, t->sqlite_ms), (double)t->neo4j_ms / 1000.0,
           per_second(n, t->neo4j_ms));
    fflush(stdout);
}

/* Both stores must start empty: the loader only creates. */
static int check_empty(struct loader *l)
{
    int64_t sqlite_rows = -1, neo4j_rows = -1;
    struct bs_error err;
    bs_error_clear(&err);
    if (sql_scan_count(l->sql, &sqlite_rows, &err) != 0) {
        fprintf(stderr, "bench_recon_load: SQLite count: %s\n", err.message);
        return -1;
    }
    if (neo4j_count(l, "MATCH (n:Entity) RETURN count(n)", &neo4j_rows) != 0)
        return -1;
    if (sqlite_rows != 0 || neo4j_rows != 0) {
        fprintf(stderr,
                "bench_recon_load: the stores are not empty (SQLite %" PRId64
                " rows, Neo4j %" PRId64 " entities); load into a new SQLite file and Neo4j\n",
                sqlite_rows, neo4j_rows);
        return -1;
    }
    return 0;
}

static int progress_line(const char *what, long done, long total, int64_t t0)
{
    int64_t ms = time_monotonic_ms() - t0;
    fprintf(stderr, "  %s: %ld of %ld (%.0f/s)\n", what, done, total, per_second(done, ms));
    return 0;
}

static int load(struct loader *l)
{
    const struct options *o = l->opt;
    struct bs_error err;
    bs_error_clear(&err);
    /* A bulk load need not survive a power cut: the benchmark starts over. */
    if (sql_exec(l->sql, "PRAGMA synchronous=OFF; PRAGMA cache_size=-262144;", &err) != 0)
        return fail_sql(&err, "pragmas");
    if (check_empty(l) != 0 || create_constraints(l) != 0)
        return -1;
    time_now_rfc3339(l->now);
    int64_t t0 = time_monotonic_ms();
    long step = o->entities / 10 > o->batch ? o->entities / 10 : o->batch;
    for (long i = 0; i < o->entities; i += o->batch) {
        long n = o->entities - i < o->batch ? o->entities - i : o->batch;
        if (load_entities(l, i, n) != 0)
            return -1;
        if ((i + n) % step < n && i + n < o->entities)
            progress_line("entities", i + n, o->entities, t0);
    }
    int64_t t1 = time_monotonic_ms();
    report("entities", o->entities, &l->ent, t1 - t0);
    step = o->relationships / 10 > o->batch ? o->relationships / 10 : o->batch;
    for (long i = 0; i < o->relationships; i += o->batch) {
        long n = o->relationships - i < o->batch ? o->relationships - i : o->batch;
        if (load_relationships(l, i, n) != 0)
            return -1;
        if ((i + n) % step < n && i + n < o->relationships)
            progress_line("relationships", i + n, o->relationships, t1);
    }
    int64_t t2 = time_monotonic_ms();
    report("relationships", o->relationships, &l->rel, t2 - t1);
    if (sql_exec(l->sql, "PRAGMA wal_checkpoint(TRUNCATE);", &err) != 0)
        return fail_sql(&err, "checkpoint");
    printf("load total: %ld objects in %.1f s (%.0f/s)\n", o->entities + o->relationships,
           (double)(t2 - t0) / 1000.0, per_second(o->entities + o->relationships, t2 - t0));
    return 0;
}

/* ---- command line ---- */

static const char usage[] =
    "usage: bench_recon_load --sqlite PATH --neo4j-url URL --entities N --relationships M\n"
    "                        [--neo4j-database neo4j] [--batch 10000] [--seed S] [--verbose]\n";

static int parse_args(int argc, char **argv, struct options *o)
{
    *o = (struct options){.database = "neo4j", .batch = DEFAULT_BATCH, .seed = 1};
    long seed = 1;
    const struct bench_option options[] = {
        {"--sqlite", OPTION_STRING, &o->sqlite_path, 0, 0},
        {"--neo4j-url", OPTION_STRING, &o->neo4j_url, 0, 0},
        {"--neo4j-database", OPTION_STRING, &o->database, 0, 0},
        {"--entities", OPTION_LONG, &o->entities, 1, 99999999},
        {"--relationships", OPTION_LONG, &o->relationships, 0, 99999999},
        {"--batch", OPTION_LONG, &o->batch, 1, MAX_BATCH},
        {"--seed", OPTION_LONG, &seed, 0, 2147483647},
        {"--verbose", OPTION_FLAG, &o->verbose, 0, 0},
        {NULL, OPTION_FLAG, NULL, 0, 0},
    };
    int rc = bench_parse_args("bench_recon_load", usage, argc, argv, options);
    if (rc != 0)
        return rc;
    o->seed = (uint64_t)seed;
    if (!o->sqlite_path || !o->neo4j_url || o->entities == 0) {
        fprintf(stderr, "bench_recon_load: --sqlite, --neo4j-url and --entities are needed\n%s",
                usage);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct options opt;
    int parsed = parse_args(argc, argv, &opt);
    if (parsed != 0)
        return parsed > 0 ? 0 : 2;
    log_set_level(opt.verbose ? LOG_DEBUG : LOG_WARN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "bench_recon_load: cannot initialise libcurl\n");
        return 1;
    }
    struct loader l = {.opt = &opt, .rng = opt.seed};
    struct bs_error err;
    bs_error_clear(&err);
    struct neo4j_config ncfg = {.url = opt.neo4j_url,
                                .database = opt.database,
                                .timeout_ms = NEO4J_LOAD_TIMEOUT_MS,
                                .connect_timeout_ms = 5000};
    int rc = 1;
    l.sql = sql_open(opt.sqlite_path, true, &err);
    if (!l.sql)
        fail_sql(&err, "open");
    else if (!(l.neo4j = neo4j_client_new(&ncfg)))
        fprintf(stderr, "bench_recon_load: cannot set up the Neo4j client\n");
    else if (load(&l) == 0)
        rc = 0;
    neo4j_client_free(l.neo4j);
    sql_close(l.sql);
    curl_global_cleanup();
    return rc;
}
