/*
 * A client of Neo4j's HTTP API, over one keep-alive libcurl handle. A
 * client is used by one thread at a time. Two adapters sit behind the one
 * interface (cfg->api, --neo4j-api):
 *
 *  - NEO4J_API_TX, the transaction endpoint (/db/{db}/tx, deprecated from
 *    Neo4j 5.26): many statements a request;
 *  - NEO4J_API_QUERY, the Query API's explicit transactions
 *    (/db/{db}/query/v2/tx/{id}): one statement a request, so a call with
 *    n statements makes n requests, stopping at the first error; its
 *    {"data": {"fields", "values"}} answers are converted to the shape
 *    below, and the neo4j-cluster-affinity header it answers is kept on the
 *    transaction (in its path, after a '#').
 *
 * Neo4j answers statement errors with an "errors" array (HTTP 200, or
 * 202/400 from the Query API), so every response is parsed for it: a call
 * succeeds only when the HTTP status is right AND "errors" is empty. An
 * error inside an open transaction makes Neo4j roll that transaction back.
 *
 * Statements are a JSON array of {"statement": text, "parameters": {...}};
 * text is built only by stores/neo4j/cypher.c and stores/neo4j/recon.c from
 * validated identifiers. Results are the transaction API's: an array with,
 * per statement, {"columns": [...], "data": [{"row": [...]}...]}.
 *
 * Callers see only begin/run/commit/rollback and the classified outcome.
 * A transaction's path says which API it belongs to ("/db/neo4j/tx/12" or
 * "/db/neo4j/query/v2/tx/ab12"): run, commit and rollback follow the path,
 * so a path recorded by a gateway using one API is finished by a gateway
 * using the other.
 */
#ifndef BISTORE_NEO4J_H
#define BISTORE_NEO4J_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>

#define NEO4J_TX_PATH_MAX 256
#define NEO4J_AFFINITY_MAX 128

enum neo4j_api {
    NEO4J_API_TX = 0, /* /db/{db}/tx */
    NEO4J_API_QUERY,  /* /db/{db}/query/v2/tx */
};
/* "tx" or "query". */
const char *neo4j_api_name(enum neo4j_api api);
/* 0, or -1 when name is neither. */
int neo4j_api_parse(const char *name, enum neo4j_api *api);

struct neo4j_config {
    const char *url;      /* http://127.0.0.1:7474, no trailing slash needed */
    const char *database; /* "neo4j" */
    const char *user;     /* NULL: no auth */
    const char *password;
    long timeout_ms; /* whole request */
    long connect_timeout_ms;
    enum neo4j_api api; /* of the transactions it opens */
};

enum neo4j_status {
    NEO4J_OK = 0,
    NEO4J_UNAVAILABLE,    /* no answer: refused, reset, timed out, 5xx, garbage */
    NEO4J_CLIENT_ERROR,   /* Neo.ClientError.*: the statement or its data is at fault */
    NEO4J_TRANSIENT,      /* Neo.TransientError.*: may succeed if tried again */
    NEO4J_DATABASE_ERROR, /* Neo.DatabaseError.* or an unexpected answer */
    NEO4J_TX_GONE,        /* the transaction no longer exists (404 / TransactionNotFound) */
};

struct neo4j_result {
    enum neo4j_status status;
    bool timed_out;
    json_t *results; /* "results" array of the answer (owned), or NULL */
    char code[128];  /* Neo4j's error code, e.g. Neo.ClientError.Schema.... */
    char message[512];
    long statement_index;   /* which statement failed, when Neo4j says; else -1 */
    bool last_result_empty; /* the error's last result had no rows (neo4j_refused_statement) */
};

struct neo4j_client;

struct neo4j_client *neo4j_client_new(const struct neo4j_config *cfg);
void neo4j_client_free(struct neo4j_client *c);
void neo4j_result_clear(struct neo4j_result *r);
/* The request id logged with the calls that follow ("-" when NULL). */
void neo4j_set_request_id(struct neo4j_client *c, const char *rid);

/* GET / : true when Neo4j answers with its version (written to version). */
bool neo4j_ping(struct neo4j_client *c, char *version, size_t cap);

/* Opens an empty transaction (holds no lock yet); its path goes to tx_path. */
enum neo4j_status neo4j_begin(struct neo4j_client *c, char tx_path[NEO4J_TX_PATH_MAX],
                              struct neo4j_result *r);
/* Runs statements in the open transaction. */
enum neo4j_status neo4j_run(struct neo4j_client *c, const char *tx_path, json_t *statements,
                            struct neo4j_result *r);
/* The same, with the statements as JSON text: the members of the array
 * without its brackets ("{...},{...}"), len bytes. */
enum neo4j_status neo4j_run_text(struct neo4j_client *c, const char *tx_path,
                                 const char *statements, size_t len, struct neo4j_result *r);
/* Commits the open transaction, running statements (may be NULL) first. */
enum neo4j_status neo4j_commit(struct neo4j_client *c, const char *tx_path, json_t *statements,
                               struct neo4j_result *r);
/* Rolls back (DELETE). NEO4J_TX_GONE when it no longer existed. */
enum neo4j_status neo4j_rollback(struct neo4j_client *c, const char *tx_path,
                                 struct neo4j_result *r);
/* One-shot: runs statements in their own transaction and commits. */
enum neo4j_status neo4j_autocommit(struct neo4j_client *c, json_t *statements,
                                   struct neo4j_result *r);

/*
 * Idle clients for threads that come and go (HTTP threads answering
 * /readyz and ?verify=true): a client is taken, used by one thread, and put
 * back; at most NEO4J_POOL_IDLE_MAX are kept idle, more are freed. cfg's
 * strings must outlive the pool.
 */
#define NEO4J_POOL_IDLE_MAX 8
struct neo4j_pool {
    pthread_mutex_t lock;
    struct neo4j_config cfg;
    struct neo4j_client *idle[NEO4J_POOL_IDLE_MAX];
    size_t n_idle;
};
void neo4j_pool_init(struct neo4j_pool *p, const struct neo4j_config *cfg);
/* An idle client, or a new one; NULL when none can be made. */
struct neo4j_client *neo4j_pool_get(struct neo4j_pool *p);
/* Gives c (may be NULL) back. */
void neo4j_pool_put(struct neo4j_pool *p, struct neo4j_client *c);
void neo4j_pool_destroy(struct neo4j_pool *p);

/* Appends {"statement": text, "parameters": params (stolen, may be NULL)} to arr. */
int neo4j_add_statement(json_t *arr, const char *text, json_t *params);
/* Row `row`, column `col` of statement `stmt`'s result, or NULL. Borrowed. */
json_t *neo4j_cell(const struct neo4j_result *r, size_t stmt, size_t row, size_t col);
size_t neo4j_row_count(const struct neo4j_result *r, size_t stmt);
/* The statement Neo4j refused, of n_sent in the request; -1: none named.
 * The transaction endpoint counts the refused statement's partial result
 * (without rows) when it failed running, not when it failed planning, so
 * statement_index may be one past it. last_answers_rows: the statement at
 * statement_index - 1 answers a row whenever it succeeds (the gateway's
 * own do: a count), so its result without rows is the partial one. And one
 * past the last can only mean the last. */
long neo4j_refused_statement(const struct neo4j_result *r, size_t n_sent, bool last_answers_rows);

#endif
