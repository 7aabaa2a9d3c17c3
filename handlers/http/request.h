/*
 * What a handler sees of an HTTP exchange, without libmicrohttpd: the
 * request (method, path, wildcard path arguments, body, header and query
 * lookups) and the response it fills. server/http.c translates both.
 * Error replies are in handlers/http/errors.h.
 */
#ifndef BISTORE_REQUEST_H
#define BISTORE_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* What the handlers share (handlers/app.h); opaque here: this layer knows
 * no resource. */
struct app;

enum lookup_kind { LOOKUP_HEADER, LOOKUP_QUERY };

/* The scopes of an API key (a bit each), and what a route needs (the
 * route table, handlers/routes.c); SCOPE_NONE: no key needed. */
enum scope { SCOPE_NONE = 0, SCOPE_READ = 1, SCOPE_WRITE = 2, SCOPE_ADMIN = 4 };

/* The longest URL path the router takes (longer: 414). */
#define REQUEST_MAX_URL 2048

struct request {
    const char *method;
    const char *path; /* as the client sent it: still percent-encoded */
    /* The path segments matched by '*' in the route, percent-decoded by
     * router_dispatch. A segment may decode to bytes a C string cannot
     * carry ("%00"), so arg_len is its whole length: check an argument
     * with it (path_id in handlers/http/fields.h), never with strlen. */
    const char *args[2];
    size_t arg_len[2];
    size_t n_args;
    char arg_store[2][REQUEST_MAX_URL + 1]; /* their decoded, NUL-terminated copies */
    const char *body;                       /* NUL-terminated; NULL when there is none */
    size_t body_len;
    /* The most JSON values and the most objects and arrays body_object
     * parses (the parsed tree costs 30 to 200 bytes of memory per value,
     * 1 to 3 in the text); 0: no limit. */
    size_t max_json_values, max_json_containers;
    /* The deepest nesting of objects and arrays body_object parses (the
     * body itself is depth 1); 0: no limit. */
    size_t max_json_depth;
    const char *rid; /* the request id (X-Request-Id) */
    /* Set by router_dispatch: the matched route's index in its table (-1:
     * none), its name, and whether it is a write transaction. */
    long route_index;
    const char *route_name;
    bool write_tx;
    /* API keys, filled by server/http.c before dispatch: keys_required (the
     * gateway has --api-keys-file), key_known (the Bearer key is one of
     * them) and its scopes (SCOPE_* bits). */
    bool keys_required, key_known;
    unsigned key_scopes;
    /* Header and query lookups; a query value is whole (server/http.c
     * answers 400 before dispatch when one holds a NUL). */
    const char *(*lookup)(void *ctx, enum lookup_kind kind, const char *name);
    void *lookup_ctx;
    /* Takes bytes of the server's budget for request memory
     * (--max-body-memory) for the tree body_object is about to parse,
     * until the request ends; false when they do not fit (body_object then
     * answers 503 overloaded). NULL: no budget. */
    bool (*reserve)(void *ctx, size_t bytes);
    void *reserve_ctx;
    /* The whole budget: a body whose text and tree together pass it could
     * never be parsed (413, not 503). */
    size_t max_request_memory;
};

#define RESPONSE_MAX_HEADERS 6

struct response {
    unsigned status;
    json_t *body;    /* JSON body (owned), or NULL */
    const char *raw; /* or a static body of another type */
    size_t raw_len;
    char *text;               /* or an owned body of another type (raw_len bytes, free()d) */
    const char *content_type; /* for raw and text */
    size_t n_headers;
    struct {
        char name[32];
        char value[320];
    } headers[RESPONSE_MAX_HEADERS];
};

typedef void (*handler_fn)(struct app *app, const struct request *req, struct response *res);

/* Whether req may do what needs scope: no keys configured, or its key has
 * the scope. */
bool request_has_scope(const struct request *req, unsigned scope);

const char *request_header(const struct request *req, const char *name);
const char *request_query(const struct request *req, const char *name);

void response_header(struct response *res, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sets status and JSON body (stolen). */
void reply_json(struct response *res, unsigned status, json_t *body);
void response_free(struct response *res);

#endif
