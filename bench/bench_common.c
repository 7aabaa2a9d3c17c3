#include "bench/bench_common.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- latency samples ---- */

int lat_add(struct lat *l, double ms)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4096;
        double *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = ms;
    return 0;
}

int lat_merge(struct lat *dst, const struct lat *src)
{
    for (size_t i = 0; i < src->n; i++)
        if (lat_add(dst, src->v[i]) != 0)
            return -1;
    return 0;
}

void lat_free(struct lat *l)
{
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double lat_quantile(struct lat *l, double p)
{
    if (l->n == 0)
        return 0;
    qsort(l->v, l->n, sizeof *l->v, cmp_double);
    /* nearest rank */
    size_t rank = (size_t)ceil(p * (double)l->n);
    if (rank < 1)
        rank = 1;
    if (rank > l->n)
        rank = l->n;
    return l->v[rank - 1];
}

/* ---- run control ---- */

void ctl_init(struct bench_ctl *c, double warmup_s, double duration_s, long count)
{
    c->started = bench_now();
    c->measure_start = c->started + warmup_s;
    c->count_mode = count > 0;
    c->deadline = c->count_mode ? 0 : c->measure_start + duration_s;
    atomic_init(&c->remaining, count);
    atomic_init(&c->failed, false);
}

bool ctl_next(struct bench_ctl *c, double *t0, bool *measured)
{
    if (atomic_load(&c->failed))
        return false;
    double now = bench_now();
    *t0 = now;
    if (now < c->measure_start) {
        *measured = false;
        return true;
    }
    *measured = true;
    if (c->count_mode)
        return atomic_fetch_sub(&c->remaining, 1) > 0;
    return now < c->deadline;
}

/* ---- errors ---- */

static pthread_mutex_t errors_lock = PTHREAD_MUTEX_INITIALIZER;
static int errors_shown;

void errors_note(const char *what, long status, const char *body)
{
    pthread_mutex_lock(&errors_lock);
    if (errors_shown < BENCH_ERROR_BODIES) {
        errors_shown++;
        fprintf(stderr, "error %d: %s: HTTP %ld: %.600s\n", errors_shown, what, status,
                body ? body : "");
    }
    pthread_mutex_unlock(&errors_lock);
}

/* ---- CPU ---- */

int cpu_pid_parse(const char *arg, struct cpu_pid *out)
{
    const char *colon = strchr(arg, ':');
    if (!colon || colon == arg || (size_t)(colon - arg) >= sizeof out->label) {
        fprintf(stderr, "--cpu-pid wants LABEL:PID, got '%s'\n", arg);
        return -1;
    }
    memset(out, 0, sizeof *out);
    memcpy(out->label, arg, (size_t)(colon - arg));
    return parse_long("--cpu-pid", colon + 1, 1, 1L << 30, &out->pid);
}

double cpu_of_pid(long pid)
{
    char path[64], line[4096];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    /* The command name may hold spaces and parentheses: fields start after the last ')'. */
    char *p = strrchr(line, ')');
    if (!p)
        return -1;
    /* Fields 3 (state) to 13, then utime (14) and stime (15), in clock ticks. */
    unsigned long long utime = 0, stime = 0;
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) !=
        2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0)
        hz = 100;
    return (double)(utime + stime) / (double)hz;
}

double cpu_self(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- HTTP ---- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct buf *b = arg;
    size_t n = size * nmemb;
    return buf_append(b, data, n) == BUF_OK ? n : 0;
}

int http_client_init(struct http_client *h, long timeout_ms)
{
    memset(h, 0, sizeof *h);
    buf_init(&h->body, BENCH_RESPONSE_LIMIT);
    h->curl = curl_easy_init();
    struct curl_slist *a = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *b = a ? curl_slist_append(a, "Accept: application/json") : NULL;
    struct curl_slist *c = b ? curl_slist_append(b, "Expect:") : NULL;
    if (!h->curl || !c) {
        curl_slist_free_all(b ? b : a);
        if (h->curl)
            curl_easy_cleanup(h->curl);
        h->curl = NULL;
        fprintf(stderr, "cannot initialise libcurl\n");
        return -1;
    }
    h->headers = c;
    if (curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, h->headers) != CURLE_OK ||
        curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
        curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, &h->body) != CURLE_OK ||
        curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, h->error) != CURLE_OK ||
        curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, timeout_ms) != CURLE_OK ||
        curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(h->curl, CURLOPT_TCP_NODELAY, 1L) != CURLE_OK ||
        curl_easy_setopt(h->curl, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK) {
        fprintf(stderr, "libcurl refused an option\n");
        http_client_free(h);
        return -1;
    }
    return 0;
}

void http_client_free(struct http_client *h)
{
    if (h->curl)
        curl_easy_cleanup(h->curl);
    curl_slist_free_all(h->headers);
    buf_free(&h->body);
    memset(h, 0, sizeof *h);
}

int http_request(struct http_client *h, const char *url, const char *post, size_t post_len,
                 long *status)
{
    *status = 0;
    h->error[0] = '\0';
    buf_reset(&h->body);
    CURLcode rc = curl_easy_setopt(h->curl, CURLOPT_URL, url);
    if (rc == CURLE_OK && post) {
        rc = curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)post_len);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, post);
    } else if (rc == CURLE_OK) {
        rc = curl_easy_setopt(h->curl, CURLOPT_HTTPGET, 1L);
    }
    if (rc == CURLE_OK)
        rc = curl_easy_perform(h->curl);
    if (rc != CURLE_OK) {
        if (!h->error[0])
            snprintf(h->error, sizeof h->error, "%s", curl_easy_strerror(rc));
        return -1;
    }
    if (curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, status) != CURLE_OK) {
        snprintf(h->error, sizeof h->error, "no response code");
        return -1;
    }
    return 0;
}

/* ---- numbers ---- */

int parse_long(const char *flag, const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "%s wants an integer in [%ld, %ld], got '%s'\n", flag, min, max,
                s ? s : "(nothing)");
        return -1;
    }
    *out = v;
    return 0;
}

int parse_double(const char *flag, const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || errno != 0 || end == s || *end != '\0' || !(v >= min && v <= max)) {
        fprintf(stderr, "%s wants a number in [%g, %g], got '%s'\n", flag, min, max,
                s ? s : "(nothing)");
        return -1;
    }
    *out = v;
    return 0;
}

/* ---- the command line ---- */

static const struct bench_option *find_option(const struct bench_option *options, const char *a)
{
    for (const struct bench_option *o = options; o->flag; o++)
        if (strcmp(o->flag, a) == 0)
            return o;
    return NULL;
}

int bench_parse_args(const char *tool, const char *usage, int argc, char **argv,
                     const struct bench_option *options)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 1;
        }
        const struct bench_option *o = find_option(options, a);
        if (!o) {
            fprintf(stderr, "%s: unknown option %s\n%s", tool, a, usage);
            return -1;
        }
        if (o->type == OPTION_FLAG) {
            *(bool *)o->dest = true;
            continue;
        }
        const char *v = i + 1 < argc ? argv[++i] : NULL;
        int rc = 0;
        if (!v) {
            fprintf(stderr, "%s: %s needs a value\n", tool, a);
            rc = -1;
        } else if (o->type == OPTION_STRING) {
            *(const char **)o->dest = v;
        } else if (o->type == OPTION_LONG) {
            rc = parse_long(a, v, (long)o->min, (long)o->max, o->dest);
        } else if (o->type == OPTION_DOUBLE) {
            rc = parse_double(a, v, o->min, o->max, o->dest);
        } else {
            struct bench_cpus *cpus = o->dest;
            rc = cpus->n < BENCH_MAX_CPU_PIDS ? cpu_pid_parse(v, &cpus->pid[cpus->n++]) : -1;
        }
        if (rc != 0) {
            fputs(usage, stderr);
            return -1;
        }
    }
    return 0;
}

/* ---- the clients of a load generator ---- */

struct client {
    struct bench_load *load;
    struct bench_ctl *ctl;
    struct bench_worker w;
};

static void *run_client(void *arg)
{
    struct client *c = arg;
    struct bench_worker *w = &c->w;
    double t0;
    bool measured;
    while (ctl_next(c->ctl, &t0, &measured)) {
        int kind = -1;
        enum bench_outcome outcome = c->load->request(w, &kind);
        w->sent++;
        if (outcome == BENCH_FATAL) {
            atomic_store(&c->ctl->failed, true);
            break;
        }
        double t1 = bench_now();
        if (!measured)
            continue;
        if (outcome == BENCH_OK) {
            double ms = (t1 - t0) * 1000.0;
            w->ok++;
            if (lat_add(&w->lat, ms) != 0 || (kind >= 0 && lat_add(&w->lat_kind[kind], ms) != 0))
                atomic_store(&c->ctl->failed, true);
            if (kind >= 0)
                w->n_kind[kind]++;
        } else {
            w->errors++;
        }
        if (t1 > w->last_done)
            w->last_done = t1;
    }
    return NULL;
}

static void sample_cpus(struct bench_cpus *cpus, bool after)
{
    for (int i = 0; i < cpus->n; i++) {
        double s = cpu_of_pid(cpus->pid[i].pid);
        if (after)
            cpus->pid[i].after = s;
        else
            cpus->pid[i].before = s;
    }
}

/* Merges the clients' measurements into load; 0, or -1 when out of memory. */
static int merge_clients(struct bench_load *load, struct client *clients, int n, double start)
{
    int rc = 0;
    double last = start;
    for (int i = 0; i < n; i++) {
        struct bench_worker *w = &clients[i].w;
        load->ok += w->ok;
        load->errors += w->errors;
        if (w->last_done > last)
            last = w->last_done;
        if (lat_merge(&load->all, &w->lat) != 0)
            rc = -1;
        for (int k = 0; k < BENCH_KINDS; k++) {
            load->n_kinds[k] += w->n_kind[k];
            if (lat_merge(&load->kinds[k], &w->lat_kind[k]) != 0)
                rc = -1;
        }
    }
    load->seconds = last - start;
    return rc;
}

int bench_run(struct bench_load *load)
{
    struct bench_run_options *opt = load->opt;
    int n = (int)opt->clients;
    struct client *clients = calloc((size_t)n, sizeof *clients);
    if (!clients) {
        fprintf(stderr, "%s: out of memory\n", load->tool);
        return -1;
    }
    struct bench_ctl ctl;
    int rc = 0, ready = 0;
    for (; ready < n && rc == 0; ready++) {
        clients[ready] = (struct client){load, &ctl, {.index = ready}};
        clients[ready].w.rng = (uint64_t)time(NULL) * 1000003u + (uint64_t)ready;
        if (load->init && load->init(&clients[ready].w) != 0) {
            fprintf(stderr, "%s: cannot set up client %d\n", load->tool, ready);
            rc = -1;
        }
    }
    double self_before = cpu_self();
    if (opt->warmup <= 0)
        sample_cpus(&opt->cpus, false);
    ctl_init(&ctl, opt->warmup, opt->duration, opt->count);
    int started = 0;
    for (; rc == 0 && started < n; started++)
        if (pthread_create(&clients[started].w.thread, NULL, run_client, &clients[started]) != 0) {
            fprintf(stderr, "%s: cannot start thread %d\n", load->tool, started);
            atomic_store(&ctl.failed, true);
            break;
        }
    if (rc == 0 && opt->warmup > 0) {
        double wait = ctl.measure_start - bench_now();
        if (wait > 0) {
            struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
            nanosleep(&ts, NULL);
        }
        self_before = cpu_self();
        sample_cpus(&opt->cpus, false);
    }
    for (int i = 0; i < started; i++)
        pthread_join(clients[i].w.thread, NULL);
    load->client_cpu_s = cpu_self() - self_before;
    sample_cpus(&opt->cpus, true);
    if (rc == 0 && merge_clients(load, clients, n, ctl.measure_start) != 0)
        rc = -1;
    for (int i = 0; i < ready; i++) {
        struct bench_worker *w = &clients[i].w;
        if (load->done)
            load->done(w);
        lat_free(&w->lat);
        for (int k = 0; k < BENCH_KINDS; k++)
            lat_free(&w->lat_kind[k]);
    }
    free(clients);
    if (rc == 0 && atomic_load(&ctl.failed))
        rc = -1;
    if (rc != 0)
        fprintf(stderr, "%s: out of memory or a client failed\n", load->tool);
    return rc;
}

void bench_load_free(struct bench_load *load)
{
    lat_free(&load->all);
    for (int k = 0; k < BENCH_KINDS; k++)
        lat_free(&load->kinds[k]);
}

struct bench_result bench_result_of(const struct bench_load *load, const char *workload,
                                    long items_per_tx, json_t *extra)
{
    return (struct bench_result){
        .system = load->opt->system,
        .workload = workload,
        .clients = (int)load->opt->clients,
        .ok = load->ok,
        .errors = load->errors,
        .seconds = load->seconds,
        .items_per_tx = items_per_tx,
        .lat = (struct lat *)&load->all,
        .client_cpu_s = load->client_cpu_s,
        .cpus = load->opt->cpus.pid,
        .n_cpus = load->opt->cpus.n,
        .extra = extra,
    };
}

/* ---- the result ---- */

int bench_print_result(const struct bench_result *r)
{
    double p50 = lat_quantile(r->lat, 0.50), p95 = lat_quantile(r->lat, 0.95),
           p99 = lat_quantile(r->lat, 0.99), max = lat_quantile(r->lat, 1.0);
    double secs = r->seconds > 0 ? r->seconds : 1e-9;
    double tps = (double)r->ok / secs;
    long done = r->ok + r->errors;
    json_t *cpus = json_object();
    json_t *o = json_pack("{s:s, s:s, s:i, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:I}",
                          "system", r->system, "workload", r->workload, "clients", r->clients, "ok",
                          (json_int_t)r->ok, "errors", (json_int_t)r->errors, "seconds", r->seconds,
                          "tx_per_s", tps, "items_per_s", tps * (double)r->items_per_tx, "p50_ms",
                          p50, "p95_ms", p95, "p99_ms", p99, "max_ms", max, "client_cpu_s",
                          r->client_cpu_s, "items_per_tx", (json_int_t)r->items_per_tx);
    if (!o || !cpus) {
        json_decref(o);
        json_decref(cpus);
        json_decref(r->extra);
        return -1;
    }
    printf("%s %s clients=%d: %ld ok, %ld errors in %.2f s: %.1f tx/s", r->system, r->workload,
           r->clients, r->ok, r->errors, r->seconds, tps);
    if (r->items_per_tx > 1)
        printf(" (%.0f items/s)", tps * (double)r->items_per_tx);
    printf(", p50 %.3f ms, p95 %.3f ms, p99 %.3f ms, max %.3f ms; client CPU %.2f s", p50, p95, p99,
           max, r->client_cpu_s);
    for (int i = 0; i < r->n_cpus; i++) {
        const struct cpu_pid *c = &r->cpus[i];
        if (c->before < 0 || c->after < 0)
            continue;
        double used = c->after - c->before;
        double per_1k = done > 0 ? used * 1000.0 / (double)done : 0;
        printf("; %s CPU %.2f s (%.3f s per 1,000 tx)", c->label, used, per_1k);
        json_object_set_new(cpus, c->label, json_real(per_1k));
    }
    printf("\n");
    json_object_set_new(o, "cpu_s_per_1k", cpus);
    json_object_set_new(o, "client_cpu_s_per_1k",
                        json_real(done > 0 ? r->client_cpu_s * 1000.0 / (double)done : 0));
    if (r->extra)
        json_object_update(o, r->extra);
    json_decref(r->extra);
    char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(o);
    if (!text)
        return -1;
    printf("RESULT %s\n", text);
    free(text);
    fflush(stdout);
    return 0;
}

uint64_t bench_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}
