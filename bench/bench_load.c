/*
 * bench_load: drives a running bistore gateway over HTTP and measures it.
 *
 *   bench_load --url http://127.0.0.1:PORT --workload create|batch|mixed|reads|refused
 *              [--clients N] [--duration S | --count N] [--warmup S]
 *              [--ids N] [--read-percent P] [--entities N] [--relationships N]
 *              [--cpu-pid LABEL:PID]... [--system NAME] [--timeout-ms MS]
 *
 * Workloads (each client is one thread with one keep-alive libcurl handle):
 *   create  POST /v1/entities, a small Person with 3 properties;
 *   batch   POST /v1/transactions, one document: --entities create_entity
 *           (with refs) and --relationships create_relationship between them
 *           by {"ref": ...} (1,000 and 5,000 by default);
 *   mixed   --read-percent (80) GET /v1/entities/{id} of existing ids, the
 *           rest creates;
 *   reads   GET /v1/entities/{id} only;
 *   refused POST /v1/entities of an invalid type, which the gateway refuses
 *           with 400 before any store is touched (an aborted transaction
 *           in its counts): a cheap request through the stats counting
 *           (bench/stats_memory.py). Here the 400 is the success.
 * mixed and reads first list up to --ids (10,000) existing Person ids with
 * GET /v1/entities?type=Person.
 *
 * Any non-2xx answer (refused: any answer but 400), or no answer, is an error;
 * the first few are printed.
 * --cpu-pid samples another process's CPU time (the gateway, Neo4j) over the
 * measured part. Output: see bench/bench_common.h. Exit status 0 when at
 * least one request succeeded and none failed, 1 otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench_common.h"

enum workload { W_CREATE, W_BATCH, W_MIXED, W_READS, W_REFUSED };

struct options {
    struct bench_run_options run;
    const char *url;
    enum workload workload;
    const char *workload_name;
    long ids, read_percent, entities, relationships;
};

/* The refused workload's body: "1nvalid" is no type (400 invalid_request). */
#define REFUSED_BODY "{\"type\":\"1nvalid\",\"properties\":{}}"

/* The kinds of request bench_run measures apart (mixed). */
enum { KIND_READ, KIND_WRITE };

/* A client's own (bench_worker.state). */
struct client {
    struct http_client http;
    struct buf req;
    char url[1024];
};

static struct options opt;
static char **ids;
static size_t n_ids;
static char *batch_body;
static size_t batch_len;
static char entities_url[512], transactions_url[512];

/* ---- bodies ---- */

static int create_body(struct bench_worker *w, struct client *c, long i)
{
    buf_reset(&c->req);
    return buf_printf(&c->req,
                      "{\"type\":\"Person\",\"properties\":{\"canonical_name\":\"Person %d-%ld\","
                      "\"confidence\":0.%02ld,\"mentions\":%ld}}",
                      w->index, i, i % 100, i) == BUF_OK
               ? 0
               : -1;
}

/* One document: entities e0..eN-1 and relationships between random pairs. */
static int build_batch(void)
{
    struct buf b;
    buf_init(&b, (size_t)256 << 20);
    uint64_t rng = 42;
    enum buf_status st = buf_append_str(&b, "{\"operations\":[");
    for (long i = 0; st == BUF_OK && i < opt.entities; i++)
        st = buf_printf(&b,
                        "%s{\"op\":\"create_entity\",\"ref\":\"e%ld\",\"type\":\"Person\","
                        "\"properties\":{\"canonical_name\":\"Entity %ld\",\"confidence\":0.%02ld,"
                        "\"mentions\":%ld}}",
                        i ? "," : "", i, i, i % 100, i);
    for (long i = 0; st == BUF_OK && i < opt.relationships; i++) {
        long s = (long)(bench_random(&rng) % (uint64_t)opt.entities);
        long t = (long)(bench_random(&rng) % (uint64_t)opt.entities);
        st = buf_printf(&b,
                        ",{\"op\":\"create_relationship\",\"type\":\"RELATED_TO\","
                        "\"source\":{\"ref\":\"e%ld\"},\"target\":{\"ref\":\"e%ld\"},"
                        "\"properties\":{\"weight\":0.%02ld}}",
                        s, t, i % 100);
    }
    if (st == BUF_OK)
        st = buf_append_str(&b, "],\"provenance\":{\"tool_id\":\"bench_load\","
                                "\"operation\":\"extract\"}}");
    if (st != BUF_OK) {
        buf_free(&b);
        fprintf(stderr, "bench_load: cannot build the batch body\n");
        return -1;
    }
    batch_len = b.len;
    batch_body = buf_steal(&b);
    return batch_body ? 0 : -1;
}

/* ---- the id pool for reads ---- */

static int add_id(const char *id)
{
    static size_t cap;
    if (n_ids == cap) {
        size_t ncap = cap ? cap * 2 : 1024;
        char **p = realloc(ids, ncap * sizeof *p);
        if (!p)
            return -1;
        ids = p;
        cap = ncap;
    }
    char *copy = strdup(id);
    if (!copy)
        return -1;
    ids[n_ids++] = copy;
    return 0;
}

/* Lists up to opt.ids Person ids through the gateway's keyset pagination. */
static int collect_ids(void)
{
    struct http_client h;
    if (http_client_init(&h, opt.run.timeout_ms) != 0)
        return -1;
    char *after = NULL;
    int rc = 0;
    while ((long)n_ids < opt.ids) {
        char url[1024];
        long limit = opt.ids - (long)n_ids < 1000 ? opt.ids - (long)n_ids : 1000;
        char *esc = after ? curl_easy_escape(h.curl, after, 0) : NULL;
        if (after && !esc) {
            rc = -1;
            break;
        }
        snprintf(url, sizeof url, "%s?type=Person&limit=%ld%s%s", entities_url, limit,
                 esc ? "&after=" : "", esc ? esc : "");
        curl_free(esc);
        long status;
        if (http_request(&h, url, NULL, 0, &status) != 0 || status != 200) {
            fprintf(stderr, "bench_load: listing ids failed: HTTP %ld %s %.300s\n", status, h.error,
                    buf_str(&h.body));
            rc = -1;
            break;
        }
        json_error_t jerr;
        json_t *doc = json_loads(buf_str(&h.body), 0, &jerr);
        json_t *items = json_object_get(doc, "items");
        size_t i;
        json_t *item;
        json_array_foreach (items, i, item) {
            const char *id = json_string_value(json_object_get(item, "id"));
            if (id && add_id(id) != 0)
                rc = -1;
        }
        const char *next = json_string_value(json_object_get(doc, "next"));
        free(after);
        after = next ? strdup(next) : NULL;
        json_decref(doc);
        if (rc != 0 || !doc || !after || json_array_size(items) == 0)
            break;
    }
    free(after);
    http_client_free(&h);
    if (rc == 0 && n_ids == 0) {
        fprintf(stderr, "bench_load: the gateway has no Person entities to read\n");
        rc = -1;
    }
    return rc;
}

/* ---- the clients ---- */

static int client_init(struct bench_worker *w)
{
    struct client *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    w->state = c;
    buf_init(&c->req, 1 << 20);
    return http_client_init(&c->http, opt.run.timeout_ms);
}

static void client_done(struct bench_worker *w)
{
    struct client *c = w->state;
    if (!c)
        return;
    buf_free(&c->req);
    http_client_free(&c->http);
    free(c);
}

static enum bench_outcome request(struct bench_worker *w, int *kind)
{
    struct client *c = w->state;
    bool read = false;
    const char *url = entities_url, *body = NULL;
    size_t len = 0;
    switch (opt.workload) {
    case W_READS: read = true; break;
    case W_MIXED: read = (long)(bench_random(&w->rng) % 100) < opt.read_percent; break;
    case W_CREATE: break;
    case W_REFUSED:
        body = REFUSED_BODY;
        len = sizeof REFUSED_BODY - 1;
        break;
    case W_BATCH:
        url = transactions_url;
        body = batch_body;
        len = batch_len;
        break;
    }
    if (read) {
        const char *id = ids[bench_random(&w->rng) % n_ids];
        int len_url = snprintf(c->url, sizeof c->url, "%s/%s", entities_url, id);
        if (len_url < 0 || (size_t)len_url >= sizeof c->url)
            return BENCH_FATAL;
        url = c->url;
    } else if (!body) {
        if (create_body(w, c, w->sent) != 0)
            return BENCH_FATAL;
        body = buf_str(&c->req);
        len = c->req.len;
    }
    long status;
    int rc = http_request(&c->http, url, read ? NULL : body, len, &status);
    *kind = read ? KIND_READ : KIND_WRITE;
    if (rc == 0 && (opt.workload == W_REFUSED ? status == 400 : status >= 200 && status < 300))
        return BENCH_OK;
    errors_note(read ? "GET entity" : url, status,
                rc == 0 ? buf_str(&c->http.body) : c->http.error);
    return BENCH_ERROR;
}

/* ---- the command line ---- */

static const char usage[] =
    "usage: bench_load --url URL --workload create|batch|mixed|reads|refused\n"
    "       [--clients N] [--duration S | --count N] [--warmup S] [--ids N]\n"
    "       [--read-percent P] [--entities N] [--relationships N]\n"
    "       [--cpu-pid LABEL:PID]... [--system NAME] [--timeout-ms MS]\n";

static int parse_args(int argc, char **argv)
{
    opt = (struct options){.run = BENCH_RUN_DEFAULTS,
                           .ids = 10000,
                           .read_percent = 80,
                           .entities = 1000,
                           .relationships = 5000};
    opt.run.system = "bistore";
    const struct bench_option options[] = {
        {"--url", OPTION_STRING, &opt.url, 0, 0},
        {"--workload", OPTION_STRING, &opt.workload_name, 0, 0},
        {"--ids", OPTION_LONG, &opt.ids, 1, 10000000},
        {"--read-percent", OPTION_LONG, &opt.read_percent, 0, 100},
        {"--entities", OPTION_LONG, &opt.entities, 1, 100000},
        {"--relationships", OPTION_LONG, &opt.relationships, 0, 1000000},
        BENCH_RUN_OPTIONS(&opt.run),
        {NULL, OPTION_FLAG, NULL, 0, 0},
    };
    int rc = bench_parse_args("bench_load", usage, argc, argv, options);
    if (rc != 0)
        return rc;
    static const char *const names[] = {"create", "batch", "mixed", "reads", "refused"};
    for (int w = 0; opt.workload_name && w < 5; w++)
        if (strcmp(opt.workload_name, names[w]) == 0) {
            opt.workload = (enum workload)w;
            return opt.url ? 0 : (fprintf(stderr, "bench_load: --url is needed\n%s", usage), -1);
        }
    fprintf(stderr, "bench_load: --workload create|batch|mixed|reads|refused is needed\n%s", usage);
    return -1;
}

int main(int argc, char **argv)
{
    int parsed = parse_args(argc, argv);
    if (parsed != 0)
        return parsed > 0 ? 0 : 2;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "bench_load: cannot initialise libcurl\n");
        return 2;
    }
    snprintf(entities_url, sizeof entities_url, "%s/v1/entities", opt.url);
    snprintf(transactions_url, sizeof transactions_url, "%s/v1/transactions", opt.url);
    if ((opt.workload == W_MIXED || opt.workload == W_READS) && collect_ids() != 0)
        return 1;
    if (opt.workload == W_BATCH && build_batch() != 0)
        return 1;
    struct bench_load load = {.tool = "bench_load",
                              .opt = &opt.run,
                              .init = client_init,
                              .done = client_done,
                              .request = request};
    int rc = bench_run(&load);
    if (rc == 0) {
        json_t *extra = json_pack("{s:I, s:I}", "reads", (json_int_t)load.n_kinds[KIND_READ],
                                  "writes", (json_int_t)load.n_kinds[KIND_WRITE]);
        if (extra && opt.workload == W_MIXED) {
            json_object_set_new(extra, "read_p50_ms",
                                json_real(lat_quantile(&load.kinds[KIND_READ], 0.5)));
            json_object_set_new(extra, "read_p99_ms",
                                json_real(lat_quantile(&load.kinds[KIND_READ], 0.99)));
            json_object_set_new(extra, "write_p50_ms",
                                json_real(lat_quantile(&load.kinds[KIND_WRITE], 0.5)));
            json_object_set_new(extra, "write_p99_ms",
                                json_real(lat_quantile(&load.kinds[KIND_WRITE], 0.99)));
        }
        long items = opt.workload == W_BATCH ? opt.entities + opt.relationships : 1;
        struct bench_result res = bench_result_of(&load, opt.workload_name, items, extra);
        rc = bench_print_result(&res);
    }
    long ok = load.ok, errors = load.errors;
    bench_load_free(&load);
    free(batch_body);
    for (size_t i = 0; i < n_ids; i++)
        free(ids[i]);
    free(ids);
    curl_global_cleanup();
    return rc == 0 && ok > 0 && errors == 0 ? 0 : 1;
}
