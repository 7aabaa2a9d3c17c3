#include "stores/neo4j/neo4j.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/json_text.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/timeutil.h"

#define NEO4J_RESPONSE_LIMIT ((size_t)256 << 20) /* biggest answer we read */
#define NEO4J_URL_MAX 1024

struct neo4j_client {
    CURL *curl;
    struct curl_slist *headers;
    char base[NEO4J_URL_MAX]; /* url without trailing '/' */
    char database[128];
    char rid[136];
    struct buf response;
    char location[NEO4J_URL_MAX]; /* Location header of the last answer */
    enum neo4j_api api;           /* of the transactions it opens */
    /* neo4j-cluster-affinity header of the last answer ("" when none) */
    char affinity[NEO4J_AFFINITY_MAX];
};

#define AFFINITY_HEADER "neo4j-cluster-affinity"
/* A Query API transaction's path, and how it carries the affinity. */
#define QUERY_TX_MARK "/query/v2/tx/"
#define AFFINITY_MARK '#'

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct neo4j_client *c = userdata;
    size_t n = size * nmemb;
    if (buf_append(&c->response, ptr, n) != BUF_OK)
        return 0; /* aborts the transfer: an answer past the limit is an error */
    return n;
}

/* Copies the value of header line ptr (n bytes) when it is `name`. */
static void header_value(const char *ptr, size_t n, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    if (n <= nlen || strncasecmp(ptr, name, nlen) != 0 || ptr[nlen] != ':')
        return;
    const char *v = ptr + nlen + 1;
    size_t len = n - nlen - 1;
    while (len && (*v == ' ' || *v == '\t'))
        v++, len--;
    while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
        len--;
    if (len < cap) {
        memcpy(out, v, len);
        out[len] = '\0';
    }
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct neo4j_client *c = userdata;
    size_t n = size * nmemb;
    header_value(ptr, n, "Location", c->location, sizeof c->location);
    header_value(ptr, n, AFFINITY_HEADER, c->affinity, sizeof c->affinity);
    return n;
}

struct neo4j_client *neo4j_client_new(const struct neo4j_config *cfg)
{
    struct neo4j_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    size_t ulen = strlen(cfg->url);
    while (ulen && cfg->url[ulen - 1] == '/')
        ulen--;
    if (ulen >= sizeof c->base || strlen(cfg->database) >= sizeof c->database) {
        free(c);
        return NULL;
    }
    memcpy(c->base, cfg->url, ulen);
    c->base[ulen] = '\0';
    snprintf(c->database, sizeof c->database, "%s", cfg->database);
    snprintf(c->rid, sizeof c->rid, "-");
    c->api = cfg->api;
    buf_init(&c->response, NEO4J_RESPONSE_LIMIT);
    c->curl = curl_easy_init();
    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *h2 =
        c->headers ? curl_slist_append(c->headers, "Accept: application/json;charset=UTF-8") : NULL;
    /* no "Expect: 100-continue" on large bodies: a round trip for nothing */
    struct curl_slist *h3 = h2 ? curl_slist_append(h2, "Expect:") : NULL;
    if (!c->curl || !h3) {
        if (h2)
            c->headers = h2;
        neo4j_client_free(c);
        return NULL;
    }
    c->headers = h3;
    CURL *e = c->curl;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, cfg->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, cfg->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    /* Never a proxy from the environment (http_proxy, ALL_PROXY...): it
     * would see every statement and Neo4j's basic-auth credentials. "" is
     * libcurl's "no proxy at all". */
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    if (cfg->user && cfg->user[0]) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, cfg->user);
        curl_easy_setopt(e, CURLOPT_PASSWORD, cfg->password ? cfg->password : "");
    }
    return c;
}

void neo4j_client_free(struct neo4j_client *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    curl_slist_free_all(c->headers);
    buf_free(&c->response);
    free(c);
}

void neo4j_set_request_id(struct neo4j_client *c, const char *rid)
{
    snprintf(c->rid, sizeof c->rid, "%s", rid ? rid : "-");
}

void neo4j_result_clear(struct neo4j_result *r)
{
    json_decref(r->results);
    r->results = NULL;
    r->status = NEO4J_OK;
    r->timed_out = false;
    r->code[0] = '\0';
    r->message[0] = '\0';
    r->statement_index = -1;
    r->last_result_empty = false;
}

static enum neo4j_status fail(struct neo4j_result *r, enum neo4j_status status, const char *code,
                              const char *msg)
{
    r->status = status;
    snprintf(r->code, sizeof r->code, "%s", code);
    snprintf(r->message, sizeof r->message, "%s", msg);
    return status;
}

/* The Query API's "another request holds this transaction": nothing ran
 * (exchange_text sends it again). */
#define CONCURRENT_ACCESS "Neo.ClientError.Transaction.TransactionAccessedConcurrently"

static enum neo4j_status classify(const char *code)
{
    if (strncmp(code, "Neo.ClientError.Transaction.TransactionNotFound", 47) == 0)
        return NEO4J_TX_GONE;
    if (strcmp(code, CONCURRENT_ACCESS) == 0) /* a ClientError that refused no statement */
        return NEO4J_TRANSIENT;
    if (strncmp(code, "Neo.ClientError.", 16) == 0)
        return NEO4J_CLIENT_ERROR;
    if (strncmp(code, "Neo.TransientError.", 19) == 0)
        return NEO4J_TRANSIENT;
    return NEO4J_DATABASE_ERROR;
}

/* A request's target: path without its affinity mark, plus a suffix. */
static bool split_path(const char *path, const char *suffix, char *out, size_t cap,
                       const char **affinity)
{
    const char *mark = strchr(path, AFFINITY_MARK);
    size_t len = mark ? (size_t)(mark - path) : strlen(path);
    *affinity = mark ? mark + 1 : NULL;
    return snprintf(out, cap, "%.*s%s", (int)len, path, suffix) < (int)cap;
}

/*
 * One HTTP exchange: method on path (relative to base; a '#' part is the
 * cluster affinity to send), text (len bytes, may be NULL) the body. The
 * answer is classified into r; on success its parsed body goes to *doc
 * (owned) when doc is not NULL. Both APIs answer a statement error with an
 * "errors" array, with HTTP 200 (transaction API) or 202/400 (Query API).
 */
static enum neo4j_status exchange_once(struct neo4j_client *c, const char *method, const char *path,
                                       const char *text, size_t len, json_t **doc_out,
                                       struct neo4j_result *r)
{
    neo4j_result_clear(r);
    if (doc_out)
        *doc_out = NULL;
    char target[NEO4J_URL_MAX];
    const char *affinity = NULL;
    char url[NEO4J_URL_MAX * 2];
    if (!split_path(path, "", target, sizeof target, &affinity) ||
        snprintf(url, sizeof url, "%s%s", c->base, target) >= (int)sizeof url)
        return fail(r, NEO4J_DATABASE_ERROR, "bistore.UrlTooLong", "Neo4j URL too long");
    struct curl_slist *extra = NULL;
    if (affinity && affinity[0]) {
        char line[NEO4J_AFFINITY_MAX + 64];
        snprintf(line, sizeof line, "%s: %s", AFFINITY_HEADER, affinity);
        extra = curl_slist_append(NULL, line);
        for (struct curl_slist *h = c->headers; extra && h; h = h->next)
            if (!curl_slist_append(extra, h->data)) {
                curl_slist_free_all(extra);
                extra = NULL;
            }
        if (!extra)
            return fail(r, NEO4J_DATABASE_ERROR, "bistore.NoMemory", "out of memory");
    }
    buf_reset(&c->response);
    c->location[0] = '\0';
    c->affinity[0] = '\0';
    CURL *e = c->curl;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, extra ? extra : c->headers);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
    } else {
        /* Always give a body (maybe empty): never let libcurl fall back to
         * reading one from stdin. */
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, text ? text : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(text ? len : 0));
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    int64_t t0 = time_monotonic_ms(), t0_us = metrics_now_us();
    CURLcode rc = curl_easy_perform(e);
    long http = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &http);
    int64_t took = time_monotonic_ms() - t0;
    metrics_neo4j_request((uint64_t)(metrics_now_us() - t0_us), rc == CURLE_OK && http < 500);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
    curl_slist_free_all(extra);
    if (rc != CURLE_OK) {
        r->timed_out = rc == CURLE_OPERATION_TIMEDOUT;
        log_msg(LOG_WARN, c->rid, "neo4j %s %s: %s after %lld ms", method, target,
                curl_easy_strerror(rc), (long long)took);
        return fail(r, NEO4J_UNAVAILABLE, "bistore.Neo4jUnavailable", curl_easy_strerror(rc));
    }
    log_msg(LOG_DEBUG, c->rid, "neo4j %s %s -> %ld in %lld ms", method, target, http,
            (long long)took);
    json_t *doc = json_loadb(buf_str(&c->response), c->response.len, 0, NULL);
    json_t *first = json_array_get(json_object_get(doc, "errors"), 0);
    const char *code = json_string_value(json_object_get(first, "code"));
    const char *msg = json_string_value(json_object_get(first, "message"));
    enum neo4j_status status = NEO4J_OK;
    if (http == 404) {
        status = fail(r, NEO4J_TX_GONE, "bistore.NotFound", "Neo4j answered 404");
    } else if (http == 401 || http == 403 || (http == 429 && code && strstr(code, ".Security."))) {
        /* 429: the user is locked for a while after repeated failures */
        char text401[400];
        snprintf(text401, sizeof text401,
                 "Neo4j refused the credentials (HTTP %ld): check --neo4j-user and the password"
                 "%s%s",
                 http, msg ? ": " : "", msg ? msg : "");
        status = fail(r, NEO4J_DATABASE_ERROR, code ? code : "bistore.HttpStatus", text401);
        log_msg(LOG_ERROR, c->rid, "neo4j %s %s: %s", method, target, text401);
    } else if (http >= 500) {
        char text5xx[160];
        snprintf(text5xx, sizeof text5xx, "Neo4j answered HTTP %ld", http);
        status = fail(r, NEO4J_UNAVAILABLE, "bistore.HttpStatus", text5xx);
    } else if (!doc) {
        status = fail(r, NEO4J_UNAVAILABLE, "bistore.BadAnswer", "Neo4j answer is not JSON");
    } else if (first) {
        status = fail(r, classify(code ? code : ""), code ? code : "", msg ? msg : "");
        /* Statements before the failing one answered a result each. */
        json_t *results = json_object_get(doc, "results");
        r->statement_index = (long)json_array_size(results);
        r->last_result_empty =
            r->statement_index > 0 &&
            json_array_size(json_object_get(json_array_get(results, (size_t)r->statement_index - 1),
                                            "data")) == 0;
        log_msg(LOG_DEBUG, c->rid, "neo4j error %s: %s", r->code, r->message);
    } else if (http < 200 || http > 299) {
        char other[160];
        snprintf(other, sizeof other, "Neo4j answered HTTP %ld", http);
        status = fail(r, NEO4J_DATABASE_ERROR, "bistore.HttpStatus", other);
    }
    if (status == NEO4J_OK && doc_out)
        *doc_out = doc;
    else
        json_decref(doc);
    return status;
}

/*
 * The Query API answers a request on a transaction that another request
 * still holds with TransactionAccessedConcurrently, without running it.
 * Neo4j 5.26 also answers so a request that follows the previous one on
 * the same transaction at once: it releases the transaction after sending
 * the answer (2,500 back-to-back statements met it in CI). Such a request
 * is sent again after a pause, doubling from 5 ms, for about 2.5 s in all;
 * then it stays what classify() made it, a transient error (retry later),
 * never a refused statement; a rollback that meets it keeps its record
 * (neo4j_tx_abandon).
 */
#define CONCURRENT_RETRY_FIRST_MS 5
#define CONCURRENT_RETRY_MAX_MS 640
#define CONCURRENT_RETRIES 10

static enum neo4j_status exchange_text(struct neo4j_client *c, const char *method, const char *path,
                                       const char *text, size_t len, json_t **doc_out,
                                       struct neo4j_result *r)
{
    enum neo4j_status status = exchange_once(c, method, path, text, len, doc_out, r);
    int64_t pause = CONCURRENT_RETRY_FIRST_MS;
    for (int attempt = 1; attempt <= CONCURRENT_RETRIES && status == NEO4J_TRANSIENT &&
                          strcmp(r->code, CONCURRENT_ACCESS) == 0;
         attempt++) {
        log_msg(LOG_DEBUG, c->rid,
                "neo4j %s %s: transaction accessed concurrently, retry %d in %lld ms", method, path,
                attempt, (long long)pause);
        time_sleep_ms(pause);
        pause = pause * 2 > CONCURRENT_RETRY_MAX_MS ? CONCURRENT_RETRY_MAX_MS : pause * 2;
        status = exchange_once(c, method, path, text, len, doc_out, r);
    }
    return status;
}

/* One request; body (may be NULL) is sent as JSON text. */
static enum neo4j_status exchange(struct neo4j_client *c, const char *method, const char *path,
                                  json_t *body, json_t **doc, struct neo4j_result *r)
{
    char *text = body ? json_text_dumps(body) : NULL;
    if (body && !text) {
        neo4j_result_clear(r);
        return fail(r, NEO4J_DATABASE_ERROR, "bistore.NoMemory", "out of memory");
    }
    enum neo4j_status status =
        exchange_text(c, method, path, text, text ? strlen(text) : 0, doc, r);
    free(text);
    return status;
}

bool neo4j_ping(struct neo4j_client *c, char *version, size_t cap)
{
    struct neo4j_result r = {0};
    r.statement_index = -1;
    bool ok = false;
    json_t *doc = NULL;
    if (exchange(c, "GET", "/", NULL, &doc, &r) == NEO4J_OK) {
        const char *v = json_string_value(json_object_get(doc, "neo4j_version"));
        if (v) {
            snprintf(version, cap, "%s", v);
            ok = true;
        }
    }
    json_decref(doc);
    neo4j_result_clear(&r);
    return ok;
}

const char *neo4j_api_name(enum neo4j_api api)
{
    return api == NEO4J_API_QUERY ? "query" : "tx";
}

int neo4j_api_parse(const char *name, enum neo4j_api *api)
{
    if (strcmp(name, "tx") == 0)
        *api = NEO4J_API_TX;
    else if (strcmp(name, "query") == 0)
        *api = NEO4J_API_QUERY;
    else
        return -1;
    return 0;
}

/* Which API a transaction belongs to is in its path: recorded by one
 * adapter, it is finished by the same API whichever a gateway uses. */
static bool is_query_tx(const char *tx_path)
{
    return strstr(tx_path, QUERY_TX_MARK) != NULL;
}

/* ---- the transaction API (/db/{db}/tx) ---- */

/* The answer's "results" into r (the caller's doc is consumed). */
static enum neo4j_status keep_results(json_t *doc, struct neo4j_result *r)
{
    r->results = json_incref(json_object_get(doc, "results"));
    json_decref(doc);
    return NEO4J_OK;
}

static json_t *statements_body(json_t *statements)
{
    if (!statements)
        return json_pack("{s:[]}", "statements");
    return json_pack("{s:O}", "statements", statements);
}

/* Keeps the path part (from "/db/") of an absolute URL Neo4j gave us. */
static bool tx_path_from_url(const char *url, char out[NEO4J_TX_PATH_MAX])
{
    const char *p = strstr(url, "/db/");
    if (!p || strlen(p) >= NEO4J_TX_PATH_MAX)
        return false;
    snprintf(out, NEO4J_TX_PATH_MAX, "%s", p);
    return true;
}

static enum neo4j_status tx_begin(struct neo4j_client *c, char tx_path[NEO4J_TX_PATH_MAX],
                                  struct neo4j_result *r)
{
    char path[300];
    snprintf(path, sizeof path, "/db/%s/tx", c->database);
    json_t *doc = NULL;
    enum neo4j_status status = exchange_text(c, "POST", path, "{\"statements\":[]}", 17, &doc, r);
    json_decref(doc);
    if (status != NEO4J_OK)
        return status;
    if (!tx_path_from_url(c->location, tx_path))
        return fail(r, NEO4J_DATABASE_ERROR, "bistore.NoLocation",
                    "Neo4j opened a transaction without a usable Location");
    return NEO4J_OK;
}

/* POSTs {"statements": statements} (none when NULL) to path. */
static enum neo4j_status post_statements(struct neo4j_client *c, const char *path,
                                         json_t *statements, struct neo4j_result *r)
{
    json_t *body = statements_body(statements);
    if (!body)
        return fail(r, NEO4J_DATABASE_ERROR, "bistore.NoMemory", "out of memory");
    json_t *doc = NULL;
    enum neo4j_status status = exchange(c, "POST", path, body, &doc, r);
    json_decref(body);
    return status == NEO4J_OK ? keep_results(doc, r) : status;
}

static enum neo4j_status tx_run_text(struct neo4j_client *c, const char *tx_path,
                                     const char *statements, size_t len, struct neo4j_result *r)
{
    static const char head[] = "{\"statements\":[", tail[] = "]}";
    struct buf body;
    buf_init(&body, len + sizeof head + sizeof tail);
    enum neo4j_status status;
    json_t *doc = NULL;
    if (buf_append(&body, head, sizeof head - 1) != BUF_OK ||
        buf_append(&body, statements, len) != BUF_OK ||
        buf_append(&body, tail, sizeof tail - 1) != BUF_OK) {
        neo4j_result_clear(r);
        status = fail(r, NEO4J_DATABASE_ERROR, "bistore.NoMemory", "out of memory");
    } else {
        status = exchange_text(c, "POST", tx_path, buf_str(&body), body.len, &doc, r);
        if (status == NEO4J_OK)
            keep_results(doc, r);
    }
    buf_free(&body);
    return status;
}

/* ---- the Query API (/db/{db}/query/v2): one statement a request ---- */

/* The Query API's {"data": {"fields", "values"}} as the transaction API's
 * {"columns", "data": [{"row"}...]}, which the callers read. NULL: no memory. */
static json_t *query_result(json_t *doc)
{
    json_t *data = json_object_get(doc, "data");
    json_t *fields = json_object_get(data, "fields");
    json_t *values = json_object_get(data, "values");
    json_t *rows = json_array();
    json_t *out =
        rows ? json_pack("{s:O, s:o}", "columns", fields ? fields : json_null(), "data", rows)
             : NULL;
    if (!out)
        return NULL;
    size_t i;
    json_t *v;
    json_array_foreach (values, i, v) {
        if (json_array_append_new(rows, json_pack("{s:O}", "row", v)) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* POSTs one statement ({"statement", "parameters"}, or NULL: an empty body)
 * to path and appends its converted result to results (may be NULL). */
static enum neo4j_status query_post(struct neo4j_client *c, const char *path, json_t *statement,
                                    json_t *results, struct neo4j_result *r)
{
    /* The Query API refuses any other key ("Bad Request"): a client's
     * statement carries the transaction endpoint's resultDataContents. */
    json_t *bare = NULL;
    json_t *params = statement ? json_object_get(statement, "parameters") : NULL;
    if (statement && json_object_size(statement) > (params ? 2u : 1u)) {
        bare = json_pack("{s:O}", "statement", json_object_get(statement, "statement"));
        if (!bare || (params && json_object_set(bare, "parameters", params) != 0)) {
            json_decref(bare);
            neo4j_result_clear(r);
            return fail(r, NEO4J_DATABASE_ERROR, "bistore.NoMemory", "out of memory");
        }
        statement = bare;
    }
    json_t *doc = NULL;
    enum neo4j_status status = statement ? exchange(c, "POST", path, statement, &doc, r)
                                         : exchange_text(c, "POST", path, "{}", 2, &doc, r);
    json_decref(bare);
    if (status == NEO4J_OK && results && json_array_append_new(results, query_result(doc)) != 0)
        status = fail(r, NEO4J_DATABASE_ERROR, "bistore.NoMemory", "out of memory");
    json_decref(doc);
    return status;
}

static enum neo4j_status query_begin(struct neo4j_client *c, char tx_path[NEO4J_TX_PATH_MAX],
                                     struct neo4j_result *r)
{
    char path[300];
    snprintf(path, sizeof path, "/db/%s/query/v2/tx", c->database);
    json_t *doc = NULL;
    enum neo4j_status status = exchange_text(c, "POST", path, "{}", 2, &doc, r);
    if (status != NEO4J_OK)
        return status;
    const char *id = json_string_value(json_object_get(json_object_get(doc, "transaction"), "id"));
    int n = id ? snprintf(tx_path, NEO4J_TX_PATH_MAX, "/db/%s" QUERY_TX_MARK "%s%s%s", c->database,
                          id, c->affinity[0] ? "#" : "", c->affinity)
               : -1;
    bool usable = n > 0 && n < NEO4J_TX_PATH_MAX && !strchr(id, '/') && !strchr(id, '#');
    json_decref(doc);
    if (!usable) {
        tx_path[0] = '\0';
        return fail(r, NEO4J_DATABASE_ERROR, "bistore.NoTransaction",
                    "Neo4j opened a transaction without a usable id");
    }
    return NEO4J_OK;
}

/* Runs statements one request each; on an error, statement_index says which. */
static enum neo4j_status query_run(struct neo4j_client *c, const char *tx_path, json_t *statements,
                                   struct neo4j_result *r)
{
    json_t *results = json_array();
    if (!results) {
        neo4j_result_clear(r);
        return fail(r, NEO4J_DATABASE_ERROR, "bistore.NoMemory", "out of memory");
    }
    enum neo4j_status status = NEO4J_OK;
    for (size_t i = 0; i < json_array_size(statements); i++) {
        status = query_post(c, tx_path, json_array_get(statements, i), results, r);
        if (status != NEO4J_OK) {
            r->statement_index = (long)i;
            json_decref(results);
            return status;
        }
    }
    neo4j_result_clear(r);
    r->results = results;
    return status;
}

static enum neo4j_status query_run_text(struct neo4j_client *c, const char *tx_path,
                                        const char *statements, size_t len, struct neo4j_result *r)
{
    struct buf text;
    buf_init(&text, len + 3);
    json_t *arr = NULL;
    if (buf_append_char(&text, '[') == BUF_OK && buf_append(&text, statements, len) == BUF_OK &&
        buf_append_char(&text, ']') == BUF_OK)
        arr = json_loadb(buf_str(&text), text.len, 0, NULL);
    buf_free(&text);
    if (!arr) {
        neo4j_result_clear(r);
        return fail(r, NEO4J_DATABASE_ERROR, "bistore.BadStatements",
                    "statements are not a JSON array's members");
    }
    enum neo4j_status status = query_run(c, tx_path, arr, r);
    json_decref(arr);
    return status;
}

static enum neo4j_status query_commit(struct neo4j_client *c, const char *tx_path,
                                      json_t *statements, struct neo4j_result *r)
{
    char path[NEO4J_TX_PATH_MAX + 16];
    const char *affinity;
    if (!split_path(tx_path, "/commit", path, sizeof path, &affinity))
        return fail(r, NEO4J_DATABASE_ERROR, "bistore.UrlTooLong", "Neo4j URL too long");
    if (affinity) /* the mark again, after the suffix */
        snprintf(path + strlen(path), sizeof path - strlen(path), "#%s", affinity);
    json_t *results = NULL;
    if (statements && json_array_size(statements) > 0) {
        enum neo4j_status status = query_run(c, tx_path, statements, r);
        if (status != NEO4J_OK)
            return status;
        results = r->results;
        r->results = NULL;
    }
    enum neo4j_status status = query_post(c, path, NULL, NULL, r);
    if (status == NEO4J_OK)
        r->results = results ? results : json_array();
    else
        json_decref(results);
    return status;
}

static enum neo4j_status query_autocommit(struct neo4j_client *c, json_t *statements,
                                          struct neo4j_result *r)
{
    size_t n = json_array_size(statements);
    if (n <= 1) { /* one request: the implicit transaction */
        neo4j_result_clear(r);
        json_t *results = json_array();
        if (!results)
            return fail(r, NEO4J_DATABASE_ERROR, "bistore.NoMemory", "out of memory");
        char path[300];
        snprintf(path, sizeof path, "/db/%s/query/v2", c->database);
        enum neo4j_status status =
            n ? query_post(c, path, json_array_get(statements, 0), results, r) : NEO4J_OK;
        if (status == NEO4J_OK)
            r->results = results;
        else {
            r->statement_index = 0;
            json_decref(results);
        }
        return status;
    }
    char tx_path[NEO4J_TX_PATH_MAX];
    enum neo4j_status status = query_begin(c, tx_path, r);
    if (status != NEO4J_OK)
        return status;
    status = query_commit(c, tx_path, statements, r);
    if (status == NEO4J_UNAVAILABLE || status == NEO4J_TRANSIENT) {
        struct neo4j_result rb = {0}; /* best effort: Neo4j may hold it open */
        exchange(c, "DELETE", tx_path, NULL, NULL, &rb);
        neo4j_result_clear(&rb);
    }
    return status;
}

/* ---- the interface: begin and autocommit by the client's API, the rest
 * by the transaction's path ---- */

enum neo4j_status neo4j_begin(struct neo4j_client *c, char tx_path[NEO4J_TX_PATH_MAX],
                              struct neo4j_result *r)
{
    return c->api == NEO4J_API_QUERY ? query_begin(c, tx_path, r) : tx_begin(c, tx_path, r);
}

enum neo4j_status neo4j_run(struct neo4j_client *c, const char *tx_path, json_t *statements,
                            struct neo4j_result *r)
{
    return is_query_tx(tx_path) ? query_run(c, tx_path, statements, r)
                                : post_statements(c, tx_path, statements, r);
}

enum neo4j_status neo4j_run_text(struct neo4j_client *c, const char *tx_path,
                                 const char *statements, size_t len, struct neo4j_result *r)
{
    return is_query_tx(tx_path) ? query_run_text(c, tx_path, statements, len, r)
                                : tx_run_text(c, tx_path, statements, len, r);
}

enum neo4j_status neo4j_commit(struct neo4j_client *c, const char *tx_path, json_t *statements,
                               struct neo4j_result *r)
{
    if (is_query_tx(tx_path))
        return query_commit(c, tx_path, statements, r);
    char path[NEO4J_TX_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/commit", tx_path);
    return post_statements(c, path, statements, r);
}

enum neo4j_status neo4j_rollback(struct neo4j_client *c, const char *tx_path,
                                 struct neo4j_result *r)
{
    return exchange(c, "DELETE", tx_path, NULL, NULL, r);
}

enum neo4j_status neo4j_autocommit(struct neo4j_client *c, json_t *statements,
                                   struct neo4j_result *r)
{
    if (c->api == NEO4J_API_QUERY)
        return query_autocommit(c, statements, r);
    char path[300];
    snprintf(path, sizeof path, "/db/%s/tx/commit", c->database);
    return post_statements(c, path, statements, r);
}

int neo4j_add_statement(json_t *arr, const char *text, json_t *params)
{
    json_t *s =
        json_pack("{s:s, s:o}", "statement", text, "parameters", params ? params : json_object());
    if (!s)
        return -1;
    return json_array_append_new(arr, s);
}

json_t *neo4j_cell(const struct neo4j_result *r, size_t stmt, size_t row, size_t col)
{
    json_t *res = json_array_get(r->results, stmt);
    json_t *data = json_array_get(json_object_get(res, "data"), row);
    return json_array_get(json_object_get(data, "row"), col);
}

size_t neo4j_row_count(const struct neo4j_result *r, size_t stmt)
{
    return json_array_size(json_object_get(json_array_get(r->results, stmt), "data"));
}

long neo4j_refused_statement(const struct neo4j_result *r, size_t n_sent, bool last_answers_rows)
{
    long at = r->statement_index;
    if (at > 0 && last_answers_rows && r->last_result_empty)
        at--;
    return at == (long)n_sent && n_sent > 0 ? (long)n_sent - 1 : at;
}

/* ---- the pool ---- */

void neo4j_pool_init(struct neo4j_pool *p, const struct neo4j_config *cfg)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    p->cfg = *cfg;
}

struct neo4j_client *neo4j_pool_get(struct neo4j_pool *p)
{
    pthread_mutex_lock(&p->lock);
    struct neo4j_client *c = p->n_idle ? p->idle[--p->n_idle] : NULL;
    pthread_mutex_unlock(&p->lock);
    return c ? c : neo4j_client_new(&p->cfg);
}

void neo4j_pool_put(struct neo4j_pool *p, struct neo4j_client *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&p->lock);
    if (p->n_idle < NEO4J_POOL_IDLE_MAX) {
        p->idle[p->n_idle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    neo4j_client_free(c);
}

void neo4j_pool_destroy(struct neo4j_pool *p)
{
    for (size_t i = 0; i < p->n_idle; i++)
        neo4j_client_free(p->idle[i]);
    p->n_idle = 0;
    pthread_mutex_destroy(&p->lock);
}
