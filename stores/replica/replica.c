#include "stores/replica/replica.h"

#include <curl/curl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"

#define REPLICA_ANSWER_MAX ((size_t)64 << 10) /* Litestream's answers are a few lines */
#define REPLICA_CONNECT_TIMEOUT_MS 1000
#define REPLICA_GRACE_MS 2000 /* past Litestream's own timeout, for its answer */

struct replica {
    CURL *curl;
    struct curl_slist *headers;
    char *request; /* {"path": ..., "wait": true, "timeout": N}: the same each time */
    char socket_path[PATH_MAX];
    struct buf answer;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct buf *b = userdata;
    size_t n = size * nmemb;
    return buf_append(b, ptr, n) == BUF_OK ? n : 0; /* past the limit: an error */
}

struct replica *replica_open(const char *socket_path, const char *db_path, int timeout_s,
                             struct bs_error *err)
{
    /* Absolute, as Litestream names its databases (symlinks kept: its
     * configuration may name the file through one). */
    char db_abs[PATH_MAX];
    if (path_absolute(db_path, db_abs, sizeof db_abs) != 0) {
        bs_error_set(err, BS_STORAGE_ERROR, "cannot make %s absolute for the replica", db_path);
        return NULL;
    }
    if (strlen(socket_path) >= sizeof((struct replica *)0)->socket_path) {
        bs_error_set(err, BS_STORAGE_ERROR, "the replica socket's path is too long");
        return NULL;
    }
    struct replica *r = calloc(1, sizeof *r);
    json_t *req = json_pack("{s:s, s:b, s:i}", "path", db_abs, "wait", 1, "timeout", timeout_s);
    if (r) {
        snprintf(r->socket_path, sizeof r->socket_path, "%s", socket_path);
        buf_init(&r->answer, REPLICA_ANSWER_MAX);
        r->request = req ? json_dumps(req, JSON_COMPACT) : NULL;
        r->curl = curl_easy_init();
        r->headers = curl_slist_append(NULL, "Content-Type: application/json");
    }
    json_decref(req);
    if (!r || !r->request || !r->curl || !r->headers) {
        replica_close(r);
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
        return NULL;
    }
    CURL *c = r->curl;
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, r->socket_path);
    /* The host is a formality over a Unix socket. */
    curl_easy_setopt(c, CURLOPT_URL, "http://litestream/sync");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->request);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->answer);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)REPLICA_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_s * 1000 + REPLICA_GRACE_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    return r;
}

void replica_close(struct replica *r)
{
    if (!r)
        return;
    if (r->curl)
        curl_easy_cleanup(r->curl);
    curl_slist_free_all(r->headers);
    free(r->request);
    buf_free(&r->answer);
    free(r);
}

/* What Litestream answered: 0 when the replica holds the database's last
 * transaction ({"status": "synced" | "no_change", "txid", "replicated_txid"}). */
static int read_answer(const char *body, uint64_t *txid, struct bs_error *err)
{
    json_t *a = json_loads(body, 0, NULL);
    const char *status = json_string_value(json_object_get(a, "status"));
    json_t *local = json_object_get(a, "txid"), *replicated = json_object_get(a, "replicated_txid");
    int rc = -1;
    if (!status || !json_is_integer(local) || !json_is_integer(replicated))
        bs_error_set(err, BS_REPLICATION_UNAVAILABLE, "Litestream's answer is not one of /sync's");
    else if (strcmp(status, "synced") != 0 && strcmp(status, "no_change") != 0)
        bs_error_set(err, BS_REPLICATION_UNAVAILABLE, "Litestream answered status %.64s", status);
    else if (json_integer_value(replicated) < json_integer_value(local))
        bs_error_set(
            err, BS_REPLICATION_UNAVAILABLE, "Litestream replicated up to transaction %lld of %lld",
            (long long)json_integer_value(replicated), (long long)json_integer_value(local));
    else {
        *txid = (uint64_t)json_integer_value(replicated);
        rc = 0;
    }
    json_decref(a);
    return rc;
}

int replica_sync(struct replica *r, uint64_t *txid, struct bs_error *err)
{
    buf_reset(&r->answer);
    CURLcode cc = curl_easy_perform(r->curl);
    if (cc != CURLE_OK)
        return bs_error_set(err, BS_REPLICATION_UNAVAILABLE, "Litestream's socket %s: %s",
                            r->socket_path, curl_easy_strerror(cc)),
               -1;
    long status = 0;
    curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        /* {"error": ...}: 404 an unknown database, 409 not open yet, 500 the replica failed */
        json_t *a = json_loads(buf_str(&r->answer), 0, NULL);
        const char *why = json_string_value(json_object_get(a, "error"));
        bs_error_set(err, BS_REPLICATION_UNAVAILABLE, "Litestream answered %ld: %.300s", status,
                     why ? why : buf_str(&r->answer));
        json_decref(a);
        return -1;
    }
    return read_answer(buf_str(&r->answer), txid, err);
}
