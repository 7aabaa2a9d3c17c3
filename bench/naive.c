/*
 * bench_naive: the naive dual write a C service writes without bistore:
 * Neo4j over its HTTP API and SQLite, each on its own, no log, no
 * coordination (a crash between the two leaves them disagreeing).
 *
 *   bench_naive --neo4j-url URL --sqlite PATH --workload create|batch|raw
 *               [--database neo4j] [--clients N] [--duration S | --count N]
 *               [--warmup S] [--entities N] [--relationships N]
 *               [--cpu-pid LABEL:PID]... [--system NAME] [--timeout-ms MS]
 *
 *   create  per entity: one POST /db/<db>/tx/commit
 *           (CREATE (n:Entity:Person) SET n = $props) and one SQLite INSERT
 *           in autocommit (WAL, synchronous=FULL);
 *   batch   per document (--entities 1,000 nodes, --relationships 5,000
 *           relationships between them): one UNWIND /tx/commit for the
 *           nodes, one for the relationships, one SQLite transaction;
 *   raw     Neo4j alone: the same document as two UNWIND statements in one
 *           /tx/commit, nothing else (Neo4j's raw UNWIND rate).
 *
 * Each client is a thread with its own libcurl handle (keep-alive) and its
 * own SQLite connection (busy_timeout). Ids are UUIDv7 made here. At start
 * it creates the SQLite tables and, in Neo4j, the same uniqueness
 * constraints bistore creates (on :Entity(id) and on RELATED_TO's id), so
 * both run against the same schema. Output: see bench/bench_common.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "bench/bench_common.h"
#include "common/ids.h"
#include "common/timeutil.h"

enum workload { W_CREATE, W_BATCH, W_RAW };

struct options {
    const char *neo4j_url, *database, *sqlite_path, *system, *workload_name;
    enum workload workload;
    long clients, count, entities, relationships, timeout_ms;
    double duration, warmup;
    struct cpu_pid cpus[BENCH_MAX_CPU_PIDS];
    int n_cpus;
};

struct worker {
    pthread_t thread;
    int index;
    struct http_client http;
    sqlite3 *db;
    sqlite3_stmt *ins_entity, *ins_rel;
    struct lat lat;
    long ok, errors;
    double last_done;
    uint64_t rng;
    struct buf body, body2;
    char (*node_ids)[UUID_STR_LEN];
};

static struct options opt;
static struct bench_ctl ctl;
static char commit_url[512];

static const char create_stmt[] = "CREATE (n:Entity:Person) SET n = $props";
static const char nodes_stmt[] = "UNWIND $rows AS r CREATE (n:Entity:Person) SET n = r";
static const char rels_stmt[] = "UNWIND $rows AS r MATCH (a:Entity {id: r.source})"
                                " MATCH (b:Entity {id: r.target})"
                                " CREATE (a)-[x:RELATED_TO]->(b) SET x = r.rel";

/* ---- Neo4j ---- */

/* POSTs a /tx/commit body; 0 when Neo4j answered 200 with no errors. */
static int neo4j_post(struct http_client *h, const char *body, size_t len, long *status)
{
    if (http_request(h, commit_url, body, len, status) != 0 || *status != 200)
        return -1;
    json_error_t jerr;
    json_t *doc = json_loads(buf_str(&h->body), 0, &jerr);
    json_t *errors = json_object_get(doc, "errors");
    int rc = json_is_array(errors) && json_array_size(errors) == 0 ? 0 : -1;
    json_decref(doc);
    return rc;
}

/* One statement without parameters, for the schema. */
static int neo4j_schema(const char *statement)
{
    struct http_client h;
    if (http_client_init(&h, opt.timeout_ms) != 0)
        return -1;
    struct buf b;
    buf_init(&b, 4096);
    long status = 0;
    int rc = buf_printf(&b, "{\"statements\":[{\"statement\":\"%s\"}]}", statement) == BUF_OK
                 ? neo4j_post(&h, buf_str(&b), b.len, &status)
                 : -1;
    if (rc != 0)
        fprintf(stderr, "bench_naive: Neo4j refused '%s': HTTP %ld %s %.300s\n", statement, status,
                h.error, buf_str(&h.body));
    buf_free(&b);
    http_client_free(&h);
    return rc;
}

/* ---- SQLite ---- */

static const char schema_sql[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE IF NOT EXISTS entities(id TEXT PRIMARY KEY, type TEXT NOT NULL,"
    " properties TEXT NOT NULL, created_at TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS relationships(id TEXT PRIMARY KEY, type TEXT NOT NULL,"
    " source_id TEXT NOT NULL, target_id TEXT NOT NULL, properties TEXT NOT NULL,"
    " created_at TEXT NOT NULL);";

static int sqlite_open(sqlite3 **db)
{
    int rc = sqlite3_open_v2(opt.sqlite_path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(*db, 30000);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(*db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "bench_naive: SQLite %s: %s\n", opt.sqlite_path,
                *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
        sqlite3_close(*db);
        *db = NULL;
        return -1;
    }
    return 0;
}

static int sqlite_setup(void)
{
    sqlite3 *db = NULL;
    if (sqlite_open(&db) != 0)
        return -1;
    int rc = sqlite3_exec(db, schema_sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        fprintf(stderr, "bench_naive: SQLite schema: %s\n", sqlite3_errmsg(db));
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

static int sql_step(struct worker *w, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        errors_note("SQLite", rc, sqlite3_errmsg(w->db));
        return -1;
    }
    return 0;
}

static int insert_entity(struct worker *w, const char *id, const char *props, const char *now)
{
    sqlite3_stmt *st = w->ins_entity;
    if (sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, "Person", -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 3, props, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC) != SQLITE_OK) {
        errors_note("SQLite bind", 0, sqlite3_errmsg(w->db));
        return -1;
    }
    return sql_step(w, st);
}

static int insert_rel(struct worker *w, const char *id, const char *source, const char *target,
                      const char *props, const char *now)
{
    sqlite3_stmt *st = w->ins_rel;
    if (sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, "RELATED_TO", -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 3, source, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 4, target, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 5, props, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 6, now, -1, SQLITE_STATIC) != SQLITE_OK) {
        errors_note("SQLite bind", 0, sqlite3_errmsg(w->db));
        return -1;
    }
    return sql_step(w, st);
}

/* ---- the work ---- */

static int do_create(struct worker *w, long i)
{
    char id[UUID_STR_LEN], now[TIMESTAMP_LEN], props[256];
    ids_uuid7(id);
    time_now_rfc3339(now);
    snprintf(props, sizeof props,
             "{\"canonical_name\":\"Person %d-%ld\",\"confidence\":0.%02ld,\"mentions\":%ld}",
             w->index, i, i % 100, i);
    buf_reset(&w->body);
    long status = 0;
    if (buf_printf(&w->body,
                   "{\"statements\":[{\"statement\":\"%s\",\"parameters\":{\"props\":"
                   "{\"id\":\"%s\",\"canonical_name\":\"Person %d-%ld\",\"confidence\":0.%02ld,"
                   "\"mentions\":%ld}}}]}",
                   create_stmt, id, w->index, i, i % 100, i) != BUF_OK)
        return -1;
    if (neo4j_post(&w->http, buf_str(&w->body), w->body.len, &status) != 0) {
        errors_note("Neo4j create", status,
                    w->http.error[0] ? w->http.error : buf_str(&w->http.body));
        return -1;
    }
    return insert_entity(w, id, props, now);
}

/* The node and relationship UNWIND bodies of one document, fresh ids. */
static int document_bodies(struct worker *w, bool one_request)
{
    uint64_t rng = 42;
    buf_reset(&w->body);
    buf_reset(&w->body2);
    struct buf *rels = one_request ? &w->body : &w->body2;
    enum buf_status st = buf_printf(&w->body,
                                    "{\"statements\":[{\"statement\":\"%s\","
                                    "\"parameters\":{\"rows\":[",
                                    nodes_stmt);
    for (long i = 0; st == BUF_OK && i < opt.entities; i++) {
        ids_uuid7(w->node_ids[i]);
        st = buf_printf(&w->body,
                        "%s{\"id\":\"%s\",\"canonical_name\":\"Entity %ld\",\"confidence\":0.%02ld,"
                        "\"mentions\":%ld}",
                        i ? "," : "", w->node_ids[i], i, i % 100, i);
    }
    if (st == BUF_OK)
        st = buf_printf(&w->body, "]}}%s", one_request ? "," : "]}");
    if (st == BUF_OK)
        st = buf_printf(rels, "%s{\"statement\":\"%s\",\"parameters\":{\"rows\":[",
                        one_request ? "" : "{\"statements\":[", rels_stmt);
    for (long i = 0; st == BUF_OK && i < opt.relationships; i++) {
        char id[UUID_STR_LEN];
        ids_uuid7(id);
        long s = (long)(bench_random(&rng) % (uint64_t)opt.entities);
        long t = (long)(bench_random(&rng) % (uint64_t)opt.entities);
        st = buf_printf(rels,
                        "%s{\"source\":\"%s\",\"target\":\"%s\",\"rel\":{\"id\":\"%s\","
                        "\"weight\":0.%02ld}}",
                        i ? "," : "", w->node_ids[s], w->node_ids[t], id, i % 100);
    }
    if (st == BUF_OK)
        st = buf_append_str(rels, "]}}]}");
    return st == BUF_OK ? 0 : -1;
}

/* The SQLite side of a document: one transaction, rows as above. */
static int document_sqlite(struct worker *w)
{
    char now[TIMESTAMP_LEN], props[256];
    time_now_rfc3339(now);
    if (sqlite3_exec(w->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        errors_note("SQLite BEGIN", 0, sqlite3_errmsg(w->db));
        return -1;
    }
    uint64_t rng = 42;
    int rc = 0;
    for (long i = 0; rc == 0 && i < opt.entities; i++) {
        snprintf(props, sizeof props,
                 "{\"canonical_name\":\"Entity %ld\",\"confidence\":0.%02ld,\"mentions\":%ld}", i,
                 i % 100, i);
        rc = insert_entity(w, w->node_ids[i], props, now);
    }
    for (long i = 0; rc == 0 && i < opt.relationships; i++) {
        char id[UUID_STR_LEN];
        ids_uuid7(id);
        long s = (long)(bench_random(&rng) % (uint64_t)opt.entities);
        long t = (long)(bench_random(&rng) % (uint64_t)opt.entities);
        snprintf(props, sizeof props, "{\"weight\":0.%02ld}", i % 100);
        rc = insert_rel(w, id, w->node_ids[s], w->node_ids[t], props, now);
    }
    if (rc == 0 && sqlite3_exec(w->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        errors_note("SQLite COMMIT", 0, sqlite3_errmsg(w->db));
        rc = -1;
    }
    if (rc != 0)
        sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int do_document(struct worker *w)
{
    bool raw = opt.workload == W_RAW;
    if (document_bodies(w, raw) != 0) {
        atomic_store(&ctl.failed, true);
        return -1;
    }
    long status = 0;
    if (neo4j_post(&w->http, buf_str(&w->body), w->body.len, &status) != 0 ||
        (!raw && neo4j_post(&w->http, buf_str(&w->body2), w->body2.len, &status) != 0)) {
        errors_note("Neo4j UNWIND", status,
                    w->http.error[0] ? w->http.error : buf_str(&w->http.body));
        return -1;
    }
    return raw ? 0 : document_sqlite(w);
}

static void *run_worker(void *arg)
{
    struct worker *w = arg;
    long i = 0;
    double t0;
    bool measured;
    while (ctl_next(&ctl, &t0, &measured)) {
        int rc = opt.workload == W_CREATE ? do_create(w, i++) : do_document(w);
        double t1 = bench_now();
        if (!measured)
            continue;
        if (rc == 0) {
            w->ok++;
            if (lat_add(&w->lat, (t1 - t0) * 1000.0) != 0)
                atomic_store(&ctl.failed, true);
        } else {
            w->errors++;
        }
        if (t1 > w->last_done)
            w->last_done = t1;
    }
    return NULL;
}

static int worker_init(struct worker *w, int index)
{
    w->index = index;
    buf_init(&w->body, (size_t)256 << 20);
    buf_init(&w->body2, (size_t)256 << 20);
    if (http_client_init(&w->http, opt.timeout_ms) != 0)
        return -1;
    if (opt.workload != W_CREATE) {
        w->node_ids = calloc((size_t)opt.entities, sizeof *w->node_ids);
        if (!w->node_ids)
            return -1;
    }
    if (opt.workload == W_RAW)
        return 0;
    if (sqlite_open(&w->db) != 0)
        return -1;
    if (sqlite3_prepare_v2(w->db,
                           "INSERT INTO entities(id, type, properties, created_at)"
                           " VALUES (?, ?, ?, ?)",
                           -1, &w->ins_entity, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(w->db,
                           "INSERT INTO relationships(id, type, source_id, target_id, properties,"
                           " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                           -1, &w->ins_rel, NULL) != SQLITE_OK) {
        fprintf(stderr, "bench_naive: SQLite prepare: %s\n", sqlite3_errmsg(w->db));
        return -1;
    }
    return 0;
}

static void worker_free(struct worker *w)
{
    sqlite3_finalize(w->ins_entity);
    sqlite3_finalize(w->ins_rel);
    sqlite3_close(w->db);
    http_client_free(&w->http);
    buf_free(&w->body);
    buf_free(&w->body2);
    lat_free(&w->lat);
    free(w->node_ids);
}

/* ---- the command line ---- */

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_naive --neo4j-url URL --sqlite PATH --workload create|batch|raw\n"
            "       [--database neo4j] [--clients N] [--duration S | --count N] [--warmup S]\n"
            "       [--entities N] [--relationships N] [--cpu-pid LABEL:PID]...\n"
            "       [--system NAME] [--timeout-ms MS]\n");
}

static int parse_args(int argc, char **argv)
{
    opt = (struct options){.database = "neo4j",
                           .clients = 1,
                           .entities = 1000,
                           .relationships = 5000,
                           .timeout_ms = 120000,
                           .duration = 10};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (strcmp(a, "--help") == 0) {
            usage();
            exit(0);
        } else if (!v) {
            fprintf(stderr, "bench_naive: %s needs a value\n", a);
            return -1;
        } else if (strcmp(a, "--neo4j-url") == 0) {
            opt.neo4j_url = v;
        } else if (strcmp(a, "--database") == 0) {
            opt.database = v;
        } else if (strcmp(a, "--sqlite") == 0) {
            opt.sqlite_path = v;
        } else if (strcmp(a, "--system") == 0) {
            opt.system = v;
        } else if (strcmp(a, "--workload") == 0) {
            opt.workload_name = v;
            if (strcmp(v, "create") == 0)
                opt.workload = W_CREATE;
            else if (strcmp(v, "batch") == 0)
                opt.workload = W_BATCH;
            else if (strcmp(v, "raw") == 0)
                opt.workload = W_RAW;
            else
                rc = -1;
        } else if (strcmp(a, "--clients") == 0) {
            rc = parse_long(a, v, 1, BENCH_MAX_CLIENTS, &opt.clients);
        } else if (strcmp(a, "--count") == 0) {
            rc = parse_long(a, v, 1, 1L << 40, &opt.count);
        } else if (strcmp(a, "--entities") == 0) {
            rc = parse_long(a, v, 1, 100000, &opt.entities);
        } else if (strcmp(a, "--relationships") == 0) {
            rc = parse_long(a, v, 0, 1000000, &opt.relationships);
        } else if (strcmp(a, "--timeout-ms") == 0) {
            rc = parse_long(a, v, 1, 3600000, &opt.timeout_ms);
        } else if (strcmp(a, "--duration") == 0) {
            rc = parse_double(a, v, 0.001, 86400, &opt.duration);
        } else if (strcmp(a, "--warmup") == 0) {
            rc = parse_double(a, v, 0, 3600, &opt.warmup);
        } else if (strcmp(a, "--cpu-pid") == 0) {
            if (opt.n_cpus == BENCH_MAX_CPU_PIDS)
                rc = -1;
            else
                rc = cpu_pid_parse(v, &opt.cpus[opt.n_cpus++]);
        } else {
            fprintf(stderr, "bench_naive: unknown option %s\n", a);
            rc = -1;
        }
        if (rc != 0)
            return -1;
        i++;
    }
    if (!opt.neo4j_url || !opt.workload_name || (opt.workload != W_RAW && !opt.sqlite_path)) {
        fprintf(stderr, "bench_naive: --neo4j-url, --workload and --sqlite are needed\n");
        return -1;
    }
    if (!opt.system)
        opt.system = opt.workload == W_RAW ? "neo4j-raw" : "naive";
    return 0;
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) != 0) {
        usage();
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "bench_naive: cannot initialise libcurl\n");
        return 2;
    }
    snprintf(commit_url, sizeof commit_url, "%s/db/%s/tx/commit", opt.neo4j_url, opt.database);
    if (neo4j_schema("CREATE CONSTRAINT bistore_entity_id IF NOT EXISTS"
                     " FOR (n:Entity) REQUIRE n.id IS UNIQUE") != 0 ||
        (opt.workload != W_CREATE &&
         neo4j_schema("CREATE CONSTRAINT bistore_rel_RELATED_TO_id IF NOT EXISTS"
                      " FOR ()-[r:RELATED_TO]-() REQUIRE r.id IS UNIQUE") != 0) ||
        (opt.workload != W_RAW && sqlite_setup() != 0))
        return 1;

    int n = (int)opt.clients;
    struct worker *workers = calloc((size_t)n, sizeof *workers);
    if (!workers) {
        fprintf(stderr, "bench_naive: out of memory\n");
        return 1;
    }
    for (int i = 0; i < n; i++)
        if (worker_init(&workers[i], i) != 0) {
            fprintf(stderr, "bench_naive: cannot set up client %d\n", i);
            return 1;
        }
    double self_before = cpu_self();
    if (opt.warmup <= 0)
        for (int i = 0; i < opt.n_cpus; i++)
            opt.cpus[i].before = cpu_of_pid(opt.cpus[i].pid);
    ctl_init(&ctl, opt.warmup, opt.duration, opt.count);
    int started = 0;
    for (; started < n; started++)
        if (pthread_create(&workers[started].thread, NULL, run_worker, &workers[started]) != 0) {
            fprintf(stderr, "bench_naive: cannot start thread %d\n", started);
            atomic_store(&ctl.failed, true);
            break;
        }
    if (opt.warmup > 0) {
        double wait = ctl.measure_start - bench_now();
        if (wait > 0) {
            struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
            nanosleep(&ts, NULL);
        }
        self_before = cpu_self();
        for (int i = 0; i < opt.n_cpus; i++)
            opt.cpus[i].before = cpu_of_pid(opt.cpus[i].pid);
    }
    for (int i = 0; i < started; i++)
        pthread_join(workers[i].thread, NULL);
    double self_after = cpu_self();
    for (int i = 0; i < opt.n_cpus; i++)
        opt.cpus[i].after = cpu_of_pid(opt.cpus[i].pid);

    struct lat all = {0};
    long ok = 0, errors = 0;
    double last = ctl.measure_start;
    int rc = 0;
    for (int i = 0; i < n; i++) {
        struct worker *w = &workers[i];
        ok += w->ok;
        errors += w->errors;
        if (w->last_done > last)
            last = w->last_done;
        if (lat_merge(&all, &w->lat) != 0)
            rc = -1;
        worker_free(w);
    }
    free(workers);
    if (rc != 0 || atomic_load(&ctl.failed)) {
        fprintf(stderr, "bench_naive: out of memory or a thread failed\n");
        return 1;
    }
    struct bench_result res = {
        .system = opt.system,
        .workload = opt.workload == W_RAW ? "batch" : opt.workload_name,
        .clients = n,
        .ok = ok,
        .errors = errors,
        .seconds = last - ctl.measure_start,
        .items_per_tx = opt.workload == W_CREATE ? 1 : opt.entities + opt.relationships,
        .lat = &all,
        .client_cpu_s = self_after - self_before,
        .cpus = opt.cpus,
        .n_cpus = opt.n_cpus,
        .extra = NULL,
    };
    if (bench_print_result(&res) != 0)
        rc = -1;
    lat_free(&all);
    curl_global_cleanup();
    return rc == 0 && ok > 0 && errors == 0 ? 0 : 1;
}
