#include "stores/neo4j/neo4j.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/json_text.h"
#include "common/log.h"
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
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct neo4j_client *c = userdata;
    size_t n = size * nmemb;
    if (buf_append(&c->response, ptr, n) != BUF_OK)
        return 0; /* aborts the transfer: an answer past the limit is an error */
    return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct neo4j_client *c = userdata;
    size_t n = size * nmemb;
    if (n > 9 && strncasecmp(ptr, "Location:", 9) == 0) {
        const char *v = ptr + 9;
        size_t len = n - 9;
        while (len && (*v == ' ' || *v == '\t'))
            v++, len--;
        while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
            len--;
        if (len < sizeof c->location) {
            memcpy(c->location, v, len);
            c->location[len] = '\0';
        }
    }
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
}

static enum neo4j_status fail(struct neo4j_result *r, enum neo4j_status status, const char *code,
                              const char *msg)
{
    r->status = status;
    snprintf(r->code, sizeof r->code, "%s", code);
    snprintf(r->message, sizeof r->message, "%s", msg);
    return status;
}

static enum neo4j_status classify(const char *code)
{
    if (strncmp(code, "Neo.ClientError.Transaction.TransactionNotFound", 47) == 0)
        return NEO4J_TX_GONE;
    if (strncmp(code, "Neo.ClientError.", 16) == 0)
        return NEO4J_CLIENT_ERROR;
    if (strncmp(code, "Neo.TransientError.", 19) == 0)
        return NEO4J_TRANSIENT;
    return NEO4J_DATABASE_ERROR;
}

/*
 * One HTTP exchange: method on path (relative to base), body JSON or NULL.
 * Parses the answer into r. expect: the HTTP status that means success.
 */
/* One request; text (len bytes, may be NULL) is the body. */
static enum neo4j_status exchange_text(struct neo4j_client *c, const char *method, const char *path,
                                       const char *text, size_t len, long expect,
                                       struct neo4j_result *r)
{
    neo4j_result_clear(r);
    char url[NEO4J_URL_MAX * 2];
    if (snprintf(url, sizeof url, "%s%s", c->base, path) >= (int)sizeof url)
        return fail(r, NEO4J_DATABASE_ERROR, "bistore.UrlTooLong", "Neo4j URL too long");
    buf_reset(&c->response);
    c->location[0] = '\0';
    CURL *e = c->curl;
    curl_easy_setopt(e, CURLOPT_URL, url);
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
    int64_t t0 = time_monotonic_ms();
    CURLcode rc = curl_easy_perform(e);
    long http = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &http);
    int64_t took = time_monotonic_ms() - t0;
    if (rc != CURLE_OK) {
        r->timed_out = rc == CURLE_OPERATION_TIMEDOUT;
        log_msg(LOG_WARN, c->rid, "neo4j %s %s: %s after %lld ms", method, path,
                curl_easy_strerror(rc), (long long)took);
        return fail(r, NEO4J_UNAVAILABLE, "bistore.Neo4jUnavailable", curl_easy_strerror(rc));
    }
    log_msg(LOG_DEBUG, c->rid, "neo4j %s %s -> %ld in %lld ms", method, path, http,
            (long long)took);
    if (http == 404)
        return fail(r, NEO4J_TX_GONE, "bistore.NotFound", "Neo4j answered 404");
    if (http >= 500 || http == 401 || http == 403 || (http != expect && http != 200)) {
        char msg[160];
        snprintf(msg, sizeof msg, "Neo4j answered HTTP %ld", http);
        return fail(r, http >= 500 ? NEO4J_UNAVAILABLE : NEO4J_DATABASE_ERROR, "bistore.HttpStatus",
                    msg);
    }
    json_error_t jerr;
    json_t *doc = json_loadb(buf_str(&c->response), c->response.len, 0, &jerr);
    if (!doc)
        return fail(r, NEO4J_UNAVAILABLE, "bistore.BadAnswer", "Neo4j answer is not JSON");
    json_t *errors = json_object_get(doc, "errors");
    if (json_array_size(errors) > 0) {
        json_t *first = json_array_get(errors, 0);
        const char *code = json_string_value(json_object_get(first, "code"));
        const char *msg = json_string_value(json_object_get(first, "message"));
        fail(r, classify(code ? code : ""), code ? code : "", msg ? msg : "");
        /* Statements before the failing one answered a result each. */
        json_t *res = json_object_get(doc, "results");
        r->statement_index = (long)json_array_size(res);
        log_msg(LOG_DEBUG, c->rid, "neo4j error %s: %s", r->code, r->message);
        json_decref(doc);
        return r->status;
    }
    r->results = json_incref(json_object_get(doc, "results"));
    json_decref(doc);
    return NEO4J_OK;
}

/* One request; body (may be NULL) is sent as JSON text. */
static enum neo4j_status exchange(struct neo4j_client *c, const char *method, const char *path,
                                  json_t *body, long expect, struct neo4j_result *r)
{
    char *text = body ? json_text_dumps(body) : NULL;
    if (body && !text) {
        neo4j_result_clear(r);
        return fail(r, NEO4J_DATABASE_ERROR, "bistore.NoMemory", "out of memory");
    }
    enum neo4j_status status =
        exchange_text(c, method, path, text, text ? strlen(text) : 0, expect, r);
    free(text);
    return status;
}

bool neo4j_ping(struct neo4j_client *c, char *version, size_t cap)
{
    struct neo4j_result r = {0};
    r.statement_index = -1;
    bool ok = false;
    if (exchange(c, "GET", "/", NULL, 200, &r) == NEO4J_OK) {
        json_t *doc = json_loadb(buf_str(&c->response), c->response.len, 0, NULL);
        const char *v = json_string_value(json_object_get(doc, "neo4j_version"));
        if (v) {
            snprintf(version, cap, "%s", v);
            ok = true;
        }
        json_decref(doc);
    }
    neo4j_result_clear(&r);
    return ok;
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

enum neo4j_status neo4j_begin(struct neo4j_client *c, char tx_path[NEO4J_TX_PATH_MAX],
                              struct neo4j_result *r)
{
    char path[300];
    snprintf(path, sizeof path, "/db/%s/tx", c->database);
    json_t *body = json_pack("{s:[]}", "statements");
    if (!body)
        return fail(r, NEO4J_DATABASE_ERROR, "bistore.NoMemory", "out of memory");
    enum neo4j_status status = exchange(c, "POST", path, body, 201, r);
    json_decref(body);
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
    enum neo4j_status status = exchange(c, "POST", path, body, 200, r);
    json_decref(body);
    return status;
}

enum neo4j_status neo4j_run(struct neo4j_client *c, const char *tx_path, json_t *statements,
                            struct neo4j_result *r)
{
    return post_statements(c, tx_path, statements, r);
}

enum neo4j_status neo4j_run_text(struct neo4j_client *c, const char *tx_path,
                                 const char *statements, size_t len, struct neo4j_result *r)
{
    static const char head[] = "{\"statements\":[", tail[] = "]}";
    struct buf body;
    buf_init(&body, len + sizeof head + sizeof tail);
    enum neo4j_status status;
    if (buf_append(&body, head, sizeof head - 1) != BUF_OK ||
        buf_append(&body, statements, len) != BUF_OK ||
        buf_append(&body, tail, sizeof tail - 1) != BUF_OK) {
        neo4j_result_clear(r);
        status = fail(r, NEO4J_DATABASE_ERROR, "bistore.NoMemory", "out of memory");
    } else {
        status = exchange_text(c, "POST", tx_path, buf_str(&body), body.len, 200, r);
    }
    buf_free(&body);
    return status;
}

enum neo4j_status neo4j_commit(struct neo4j_client *c, const char *tx_path, json_t *statements,
                               struct neo4j_result *r)
{
    char path[NEO4J_TX_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/commit", tx_path);
    return post_statements(c, path, statements, r);
}

enum neo4j_status neo4j_rollback(struct neo4j_client *c, const char *tx_path,
                                 struct neo4j_result *r)
{
    return exchange(c, "DELETE", tx_path, NULL, 200, r);
}

enum neo4j_status neo4j_autocommit(struct neo4j_client *c, json_t *statements,
                                   struct neo4j_result *r)
{
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
