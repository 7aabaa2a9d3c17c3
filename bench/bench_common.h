/*
 * What the benchmark programs share: the command line (a table of options;
 * every load generator takes the same run options), and for the load
 * generators (bench_load, bench_naive) the clients themselves (bench_run:
 * one thread each, a duration or a count after an unmeasured warm-up,
 * latency samples and their percentiles, error counting with the first
 * bodies printed, CPU time of other processes from /proc/<pid>/stat), HTTP
 * through one keep-alive libcurl handle per thread, and the result lines:
 *
 *   a human line on stdout, then
 *   RESULT {"system", "workload", "clients", "ok", "errors", "seconds",
 *           "tx_per_s", "items_per_s", "p50_ms", "p95_ms", "p99_ms", "max_ms",
 *           "client_cpu_s", "cpu_s_per_1k": {"<label>": s, ...}, ...}
 *
 * which bench/perf_run.py reads.
 */
#ifndef BISTORE_BENCH_COMMON_H
#define BISTORE_BENCH_COMMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <jansson.h>

#include "common/buf.h"

#define BENCH_MAX_CLIENTS 1024
#define BENCH_MAX_CPU_PIDS 4
#define BENCH_ERROR_BODIES 3
#define BENCH_RESPONSE_LIMIT ((size_t)64 << 20)

/* Monotonic seconds. */
double bench_now(void);

/* ---- latency samples (milliseconds), one vector per thread ---- */
struct lat {
    double *v;
    size_t n, cap;
};
/* 0, or -1 when out of memory. */
int lat_add(struct lat *l, double ms);
/* Appends src to dst; 0 or -1. */
int lat_merge(struct lat *dst, const struct lat *src);
void lat_free(struct lat *l);
/* Sorts l and returns its p-quantile (0 <= p <= 1); 0 when empty. */
double lat_quantile(struct lat *l, double p);

/* ---- run control ---- */
struct bench_ctl {
    double started;       /* bench_now() at the start of the warm-up */
    double measure_start; /* requests starting from here on are measured */
    double deadline;      /* duration mode: no request starts after it */
    bool count_mode;
    atomic_long remaining; /* count mode: measured requests still to start */
    atomic_bool failed;    /* a fatal error (out of memory): stop everyone */
};
void ctl_init(struct bench_ctl *c, double warmup_s, double duration_s, long count);
/* May one more request start? *measured says whether it counts. */
bool ctl_next(struct bench_ctl *c, double *t0, bool *measured);

/* ---- errors: counted by the caller, the first few bodies printed ---- */
void errors_note(const char *what, long status, const char *body);

/* ---- CPU of other processes (utime + stime of /proc/<pid>/stat) ---- */
struct cpu_pid {
    char label[32];
    long pid;
    double before, after;
};
/* Parses "label:pid"; 0 or -1. */
int cpu_pid_parse(const char *arg, struct cpu_pid *out);
/* Seconds of CPU the process used so far; -1 when it cannot be read. */
double cpu_of_pid(long pid);
/* CPU seconds of this process (all threads). */
double cpu_self(void);

/* ---- HTTP ---- */
struct http_client {
    CURL *curl;
    struct curl_slist *headers;
    struct buf body; /* the last response body */
    char error[CURL_ERROR_SIZE];
};
/* 0, or -1 with a message on stderr. */
int http_client_init(struct http_client *h, long timeout_ms);
void http_client_free(struct http_client *h);
/* GET (post == NULL) or POST; *status gets the HTTP status, 0 on a
 * transport failure (then h->error says why). Returns 0 when a response
 * came back, -1 otherwise. */
int http_request(struct http_client *h, const char *url, const char *post, size_t post_len,
                 long *status);

/* ---- the command line ---- */

enum bench_option_type {
    OPTION_STRING,  /* const char * */
    OPTION_LONG,    /* long in min..max */
    OPTION_DOUBLE,  /* double in min..max */
    OPTION_FLAG,    /* bool, set (takes no value) */
    OPTION_CPU_PID, /* struct bench_cpus: LABEL:PID, repeatable */
};
struct bench_option {
    const char *flag; /* "--clients"; NULL ends a table */
    enum bench_option_type type;
    void *dest;
    double min, max;
};
struct bench_cpus {
    struct cpu_pid pid[BENCH_MAX_CPU_PIDS];
    int n;
};
/* Parses argv by the table (defaults are what dest holds): 0; 1 after
 * --help (usage printed); -1 with a message and the usage on stderr. */
int bench_parse_args(const char *tool, const char *usage, int argc, char **argv,
                     const struct bench_option *options);

/* Strict decimal integer in [min, max]; 0 or -1 with a message. */
int parse_long(const char *flag, const char *s, long min, long max, long *out);
int parse_double(const char *flag, const char *s, double min, double max, double *out);

/* ---- the clients of a load generator ---- */

/* What every load generator is told (its BENCH_RUN_OPTIONS). */
struct bench_run_options {
    long clients, count, timeout_ms;
    double duration, warmup;
    const char *system;
    struct bench_cpus cpus;
};
#define BENCH_RUN_DEFAULTS                                                                         \
    {                                                                                              \
        .clients = 1, .timeout_ms = 120000, .duration = 10                                         \
    }
/* Their entries of an option table. */
#define BENCH_RUN_OPTIONS(o)                                                                       \
    {"--clients", OPTION_LONG, &(o)->clients, 1, BENCH_MAX_CLIENTS},                               \
        {"--count", OPTION_LONG, &(o)->count, 1, 1099511627776.0},                                 \
        {"--duration", OPTION_DOUBLE, &(o)->duration, 0.001, 86400},                               \
        {"--warmup", OPTION_DOUBLE, &(o)->warmup, 0, 3600},                                        \
        {"--timeout-ms", OPTION_LONG, &(o)->timeout_ms, 1, 3600000},                               \
        {"--system", OPTION_STRING, &(o)->system, 0, 0},                                           \
    {                                                                                              \
        "--cpu-pid", OPTION_CPU_PID, &(o)->cpus, 0, 0                                              \
    }

#define BENCH_KINDS 2 /* requests may be of two kinds (reads, writes), measured apart too */

/* One client: a thread of its own. */
struct bench_worker {
    pthread_t thread;
    int index;
    uint64_t rng;
    long sent; /* requests made, warm-up included */
    struct lat lat, lat_kind[BENCH_KINDS];
    long ok, errors, n_kind[BENCH_KINDS];
    double last_done;
    void *state; /* the generator's own */
};

enum bench_outcome { BENCH_OK, BENCH_ERROR, BENCH_FATAL };

struct bench_load {
    const char *tool;
    struct bench_run_options *opt; /* its cpus get their before and after */
    /* Per client, before the threads start (w->state is the generator's);
     * 0, or -1 to stop the run. */
    int (*init)(struct bench_worker *w);
    void (*done)(struct bench_worker *w);
    /* One request: ok (with its kind in *kind, or -1), an error (counted;
     * noted by the generator with errors_note), or fatal (everyone stops). */
    enum bench_outcome (*request)(struct bench_worker *w, int *kind);
    /* the results */
    struct lat all, kinds[BENCH_KINDS];
    long ok, errors, n_kinds[BENCH_KINDS];
    double seconds, client_cpu_s;
};
/* Runs the clients (warm-up, then the measured part, with the other
 * processes' CPU sampled over it) and merges what they measured. 0, or -1
 * with a message (out of memory, a client that could not start). */
int bench_run(struct bench_load *load);
/* Frees the merged results. */
void bench_load_free(struct bench_load *load);

/* ---- the result ---- */
struct bench_result {
    const char *system, *workload;
    int clients;
    long ok, errors;
    double seconds;       /* measured wall time */
    long items_per_tx;    /* entities + relationships per transaction */
    struct lat *lat;      /* all measured latencies (sorted by the printer) */
    double client_cpu_s;  /* this process during the measured part */
    struct cpu_pid *cpus; /* other processes during the measured part */
    int n_cpus;
    json_t *extra; /* more fields (stolen), or NULL */
};
/* Prints the human line and the RESULT line; 0, or -1 when out of memory. */
int bench_print_result(const struct bench_result *r);
/* The result of a run, ready for bench_print_result. */
struct bench_result bench_result_of(const struct bench_load *load, const char *workload,
                                    long items_per_tx, json_t *extra);

/* splitmix64, for the bodies. */
uint64_t bench_random(uint64_t *state);

#endif
