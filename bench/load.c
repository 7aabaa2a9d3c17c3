/*
 * bench_load: drives a running bistore gateway over HTTP and measures it.
 *
 *   bench_load --url http://127.0.0.1:PORT --workload create|batch|mixed|reads
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
 *   reads   GET /v1/entities/{id} only.
 * mixed and reads first list up to --ids (10,000) existing Person ids with
 * GET /v1/entities?type=Person.
 *
 * Any non-2xx answer (or no answer) is an error; the first few are printed.
 * --cpu-pid samples another process's CPU time (the gateway, Neo4j) over the
 * measured part. Output: see bench/bench_common.h. Exit status 0 when at
 * least one request succeeded and none failed, 1 otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench_common.h"

enum workload { W_CREATE, W_BATCH, W_MIXED, W_READS };

struct options {
    const char *url;
    const char *system;
    enum workload workload;
    const char *workload_name;
    long clients, count, ids, read_percent, entities, relationships, timeout_ms;
    double duration, warmup;
    struct cpu_pid cpus[BENCH_MAX_CPU_PIDS];
    int n_cpus;
};

struct worker {
    pthread_t thread;
    int index;
    struct http_client http;
    struct lat lat, lat_read, lat_write;
    long ok, errors, reads, writes;
    double last_done;
    uint64_t rng;
    struct buf req;
    char url[1024];
};

static struct options opt;
static struct bench_ctl ctl;
static char **ids;
static size_t n_ids;
static char *batch_body;
static size_t batch_len;
static char entities_url[512], transactions_url[512];

/* ---- bodies ---- */

static int create_body(struct worker *w, long i)
{
    buf_reset(&w->req);
    return buf_printf(&w->req,
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
    if (http_client_init(&h, opt.timeout_ms) != 0)
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

static void *run_worker(void *arg)
{
    struct worker *w = arg;
    long i = 0;
    double t0;
    bool measured;
    while (ctl_next(&ctl, &t0, &measured)) {
        bool read = false;
        const char *url = entities_url, *body = NULL;
        size_t len = 0;
        switch (opt.workload) {
        case W_READS: read = true; break;
        case W_MIXED: read = (long)(bench_random(&w->rng) % 100) < opt.read_percent; break;
        case W_CREATE: break;
        case W_BATCH:
            url = transactions_url;
            body = batch_body;
            len = batch_len;
            break;
        }
        if (read) {
            const char *id = ids[bench_random(&w->rng) % n_ids];
            int len_url = snprintf(w->url, sizeof w->url, "%s/%s", entities_url, id);
            if (len_url < 0 || (size_t)len_url >= sizeof w->url) {
                atomic_store(&ctl.failed, true);
                break;
            }
            url = w->url;
        } else if (!body) {
            if (create_body(w, i++) != 0) {
                atomic_store(&ctl.failed, true);
                break;
            }
            body = buf_str(&w->req);
            len = w->req.len;
        }
        long status;
        int rc = http_request(&w->http, url, read ? NULL : body, len, &status);
        double t1 = bench_now();
        if (!measured)
            continue;
        bool ok = rc == 0 && status >= 200 && status < 300;
        if (ok) {
            double ms = (t1 - t0) * 1000.0;
            w->ok++;
            if (lat_add(&w->lat, ms) != 0 ||
                (opt.workload == W_MIXED && lat_add(read ? &w->lat_read : &w->lat_write, ms) != 0))
                atomic_store(&ctl.failed, true);
            if (read)
                w->reads++;
            else
                w->writes++;
        } else {
            w->errors++;
            errors_note(read ? "GET entity" : url, status,
                        rc == 0 ? buf_str(&w->http.body) : w->http.error);
        }
        if (t1 > w->last_done)
            w->last_done = t1;
    }
    return NULL;
}

/* ---- the command line ---- */

static void usage(void)
{
    fprintf(stderr, "usage: bench_load --url URL --workload create|batch|mixed|reads\n"
                    "       [--clients N] [--duration S | --count N] [--warmup S] [--ids N]\n"
                    "       [--read-percent P] [--entities N] [--relationships N]\n"
                    "       [--cpu-pid LABEL:PID]... [--system NAME] [--timeout-ms MS]\n");
}

static int parse_args(int argc, char **argv)
{
    opt = (struct options){.system = "bistore",
                           .clients = 1,
                           .ids = 10000,
                           .read_percent = 80,
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
            fprintf(stderr, "bench_load: %s needs a value\n", a);
            return -1;
        } else if (strcmp(a, "--url") == 0) {
            opt.url = v;
        } else if (strcmp(a, "--system") == 0) {
            opt.system = v;
        } else if (strcmp(a, "--workload") == 0) {
            opt.workload_name = v;
            if (strcmp(v, "create") == 0)
                opt.workload = W_CREATE;
            else if (strcmp(v, "batch") == 0)
                opt.workload = W_BATCH;
            else if (strcmp(v, "mixed") == 0)
                opt.workload = W_MIXED;
            else if (strcmp(v, "reads") == 0)
                opt.workload = W_READS;
            else
                rc = -1;
        } else if (strcmp(a, "--clients") == 0) {
            rc = parse_long(a, v, 1, BENCH_MAX_CLIENTS, &opt.clients);
        } else if (strcmp(a, "--count") == 0) {
            rc = parse_long(a, v, 1, 1L << 40, &opt.count);
        } else if (strcmp(a, "--ids") == 0) {
            rc = parse_long(a, v, 1, 10000000, &opt.ids);
        } else if (strcmp(a, "--read-percent") == 0) {
            rc = parse_long(a, v, 0, 100, &opt.read_percent);
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
            fprintf(stderr, "bench_load: unknown option %s\n", a);
            rc = -1;
        }
        if (rc != 0)
            return -1;
        i++;
    }
    if (!opt.url || !opt.workload_name) {
        fprintf(stderr, "bench_load: --url and --workload are needed\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) != 0) {
        usage();
        return 2;
    }
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

    int n = (int)opt.clients;
    struct worker *workers = calloc((size_t)n, sizeof *workers);
    if (!workers) {
        fprintf(stderr, "bench_load: out of memory\n");
        return 1;
    }
    for (int i = 0; i < n; i++) {
        workers[i].index = i;
        workers[i].rng = (uint64_t)time(NULL) * 1000003u + (uint64_t)i;
        buf_init(&workers[i].req, 1 << 20);
        if (http_client_init(&workers[i].http, opt.timeout_ms) != 0)
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
            fprintf(stderr, "bench_load: cannot start thread %d\n", started);
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

    struct lat all = {0}, reads = {0}, writes = {0};
    long ok = 0, errors = 0, n_reads = 0, n_writes = 0;
    double last = ctl.measure_start;
    int rc = 0;
    for (int i = 0; i < n; i++) {
        struct worker *w = &workers[i];
        ok += w->ok;
        errors += w->errors;
        n_reads += w->reads;
        n_writes += w->writes;
        if (w->last_done > last)
            last = w->last_done;
        if (lat_merge(&all, &w->lat) != 0 || lat_merge(&reads, &w->lat_read) != 0 ||
            lat_merge(&writes, &w->lat_write) != 0)
            rc = -1;
        lat_free(&w->lat);
        lat_free(&w->lat_read);
        lat_free(&w->lat_write);
        buf_free(&w->req);
        http_client_free(&w->http);
    }
    free(workers);
    if (rc != 0 || atomic_load(&ctl.failed)) {
        fprintf(stderr, "bench_load: out of memory or a thread failed\n");
        return 1;
    }
    json_t *extra =
        json_pack("{s:I, s:I}", "reads", (json_int_t)n_reads, "writes", (json_int_t)n_writes);
    if (extra && opt.workload == W_MIXED) {
        json_object_set_new(extra, "read_p50_ms", json_real(lat_quantile(&reads, 0.5)));
        json_object_set_new(extra, "read_p99_ms", json_real(lat_quantile(&reads, 0.99)));
        json_object_set_new(extra, "write_p50_ms", json_real(lat_quantile(&writes, 0.5)));
        json_object_set_new(extra, "write_p99_ms", json_real(lat_quantile(&writes, 0.99)));
    }
    struct bench_result res = {
        .system = opt.system,
        .workload = opt.workload_name,
        .clients = n,
        .ok = ok,
        .errors = errors,
        .seconds = last - ctl.measure_start,
        .items_per_tx = opt.workload == W_BATCH ? opt.entities + opt.relationships : 1,
        .lat = &all,
        .client_cpu_s = self_after - self_before,
        .cpus = opt.cpus,
        .n_cpus = opt.n_cpus,
        .extra = extra,
    };
    if (bench_print_result(&res) != 0)
        rc = -1;
    lat_free(&all);
    lat_free(&reads);
    lat_free(&writes);
    free(batch_body);
    for (size_t i = 0; i < n_ids; i++)
        free(ids[i]);
    free(ids);
    curl_global_cleanup();
    return rc == 0 && ok > 0 && errors == 0 ? 0 : 1;
}
