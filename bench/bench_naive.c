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
    struct bench_run_options run;
    const char *neo4j_url, *database, *sqlite_path, *workload_name;
    enum workload workload;
    long entities, relationships;
};

/* A client's own (bench_worker.state). */
struct worker {
    int index;
    struct http_client http;
    sqlite3 *db;
    sqlite3_stmt *ins_entity, *ins_rel;
    struct buf body, body2;
    char (*node_ids)[UUID_STR_LEN];
};

static struct options opt;
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
    if (http_client_init(&h, opt.run.timeout_ms) != 0)
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

static int sql_step(struct worker *w, sqlite3_stmt *stmt)
{
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    if (rc != SQLITE_DONE) {
        errors_note("SQLite", rc, sqlite3_errmsg(w->db));
        return -1;
    }
    return 0;
}

static int insert_entity(struct worker *w, const char *id, const char *props, const char *now)
{
    sqlite3_stmt *stmt = w->ins_entity;
    if (sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 2, "Person", -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 3, props, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 4, now, -1, SQLITE_STATIC) != SQLITE_OK) {
        errors_note("SQLite bind", 0, sqlite3_errmsg(w->db));
        return -1;
    }
    return sql_step(w, stmt);
}

static int insert_rel(struct worker *w, const char *id, const char *source, const char *target,
                      const char *props, const char *now)
{
    sqlite3_stmt *stmt = w->ins_rel;
    if (sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 2, "RELATED_TO", -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 3, source, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 4, target, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 5, props, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 6, now, -1, SQLITE_STATIC) != SQLITE_OK) {
        errors_note("SQLite bind", 0, sqlite3_errmsg(w->db));
        return -1;
    }
    return sql_step(w, stmt);
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
    enum buf_status written = buf_printf(&w->body,
                                         "{\"statements\":[{\"statement\":\"%s\","
                                         "\"parameters\":{\"rows\":[",
                                         nodes_stmt);
    for (long i = 0; written == BUF_OK && i < opt.entities; i++) {
        ids_uuid7(w->node_ids[i]);
        written =
            buf_printf(&w->body,
                       "%s{\"id\":\"%s\",\"canonical_name\":\"Entity %ld\",\"confidence\":0.%02ld,"
                       "\"mentions\":%ld}",
                       i ? "," : "", w->node_ids[i], i, i % 100, i);
    }
    if (written == BUF_OK)
        written = buf_printf(&w->body, "]}}%s", one_request ? "," : "]}");
    if (written == BUF_OK)
        written = buf_printf(rels, "%s{\"statement\":\"%s\",\"parameters\":{\"rows\":[",
                             one_request ? "" : "{\"statements\":[", rels_stmt);
    for (long i = 0; written == BUF_OK && i < opt.relationships; i++) {
        char id[UUID_STR_LEN];
        ids_uuid7(id);
        long s = (long)(bench_random(&rng) % (uint64_t)opt.entities);
        long t = (long)(bench_random(&rng) % (uint64_t)opt.entities);
        written = buf_printf(rels,
                             "%s{\"source\":\"%s\",\"target\":\"%s\",\"rel\":{\"id\":\"%s\","
                             "\"weight\":0.%02ld}}",
                             i ? "," : "", w->node_ids[s], w->node_ids[t], id, i % 100);
    }
    if (written == BUF_OK)
        written = buf_append_str(rels, "]}}]}");
    return written == BUF_OK ? 0 : -1;
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

static int do_document(struct worker *w, bool *fatal)
{
    bool raw = opt.workload == W_RAW;
    if (document_bodies(w, raw) != 0) {
        *fatal = true;
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

static enum bench_outcome request(struct bench_worker *bw, int *kind)
{
    (void)kind;
    struct worker *w = bw->state;
    bool fatal = false;
    int rc = opt.workload == W_CREATE ? do_create(w, bw->sent) : do_document(w, &fatal);
    return fatal ? BENCH_FATAL : rc == 0 ? BENCH_OK : BENCH_ERROR;
}

static void worker_free(struct bench_worker *bw)
{
    struct worker *w = bw->state;
    if (!w)
        return;
    sqlite3_finalize(w->ins_entity);
    sqlite3_finalize(w->ins_rel);
    sqlite3_close(w->db);
    http_client_free(&w->http);
    buf_free(&w->body);
    buf_free(&w->body2);
    free(w->node_ids);
    free(w);
}

static int worker_init(struct bench_worker *bw)
{
    struct worker *w = calloc(1, sizeof *w);
    if (!w)
        return -1;
    bw->state = w;
    w->index = bw->index;
    buf_init(&w->body, (size_t)256 << 20);
    buf_init(&w->body2, (size_t)256 << 20);
    if (http_client_init(&w->http, opt.run.timeout_ms) != 0)
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

/* ---- the command line ---- */

static const char usage[] =
    "usage: bench_naive --neo4j-url URL --sqlite PATH --workload create|batch|raw\n"
    "       [--database neo4j] [--clients N] [--duration S | --count N] [--warmup S]\n"
    "       [--entities N] [--relationships N] [--cpu-pid LABEL:PID]...\n"
    "       [--system NAME] [--timeout-ms MS]\n";

static int parse_args(int argc, char **argv)
{
    opt = (struct options){
        .run = BENCH_RUN_DEFAULTS, .database = "neo4j", .entities = 1000, .relationships = 5000};
    const struct bench_option options[] = {
        {"--neo4j-url", OPTION_STRING, &opt.neo4j_url, 0, 0},
        {"--database", OPTION_STRING, &opt.database, 0, 0},
        {"--sqlite", OPTION_STRING, &opt.sqlite_path, 0, 0},
        {"--workload", OPTION_STRING, &opt.workload_name, 0, 0},
        {"--entities", OPTION_LONG, &opt.entities, 1, 100000},
        {"--relationships", OPTION_LONG, &opt.relationships, 0, 1000000},
        BENCH_RUN_OPTIONS(&opt.run),
        {NULL, OPTION_FLAG, NULL, 0, 0},
    };
    int rc = bench_parse_args("bench_naive", usage, argc, argv, options);
    if (rc != 0)
        return rc;
    static const char *const names[] = {"create", "batch", "raw"};
    bool known = false;
    for (int w = 0; opt.workload_name && w < 3 && !known; w++)
        if (strcmp(opt.workload_name, names[w]) == 0) {
            opt.workload = (enum workload)w;
            known = true;
        }
    if (!opt.neo4j_url || !known || (opt.workload != W_RAW && !opt.sqlite_path)) {
        fprintf(stderr, "bench_naive: --neo4j-url, --workload and --sqlite are needed\n%s", usage);
        return -1;
    }
    if (!opt.run.system)
        opt.run.system = opt.workload == W_RAW ? "neo4j-raw" : "naive";
    return 0;
}

int main(int argc, char **argv)
{
    int parsed = parse_args(argc, argv);
    if (parsed != 0)
        return parsed > 0 ? 0 : 2;
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
    struct bench_load load = {.tool = "bench_naive",
                              .opt = &opt.run,
                              .init = worker_init,
                              .done = worker_free,
                              .request = request};
    int rc = bench_run(&load);
    if (rc == 0) {
        const char *workload = opt.workload == W_RAW ? "batch" : opt.workload_name;
        long items = opt.workload == W_CREATE ? 1 : opt.entities + opt.relationships;
        struct bench_result res = bench_result_of(&load, workload, items, NULL);
        rc = bench_print_result(&res);
    }
    long ok = load.ok, errors = load.errors;
    bench_load_free(&load);
    curl_global_cleanup();
    return rc == 0 && ok > 0 && errors == 0 ? 0 : 1;
}
