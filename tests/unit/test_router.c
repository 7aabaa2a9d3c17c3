/*
 * The route table (handlers/routes.c) through the router
 * (handlers/http/router.c): router_match for every route, and
 * router_dispatch's own answers (404, 405 with Allow, 414), which never
 * reach a handler and so need no store (app = NULL).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "handlers/handlers.h"
#include "handlers/http/errors.h"
#include "handlers/http/request.h"
#include "handlers/http/router.h"

struct expect_route {
    const char *method;
    const char *path;
    const char *name;
    size_t n_args;
    const char *arg0;
};

static void check_match(const struct expect_route *e)
{
    const char *args[2] = {NULL, NULL};
    size_t n_args = 99;
    const struct route *r = router_match(&handlers_routes, e->method, e->path, args, &n_args);
    cr_assert_not_null(r, "%s %s has no route", e->method, e->path);
    cr_expect_str_eq(r->name, e->name, "%s %s", e->method, e->path);
    cr_expect_str_eq(r->method, e->method);
    cr_expect_not_null(r->handler);
    cr_expect_eq(n_args, e->n_args, "%s %s: %zu args", e->method, e->path, n_args);
    if (e->arg0) {
        cr_assert_not_null(args[0]);
        size_t n = strlen(e->arg0);
        cr_expect(strncmp(args[0], e->arg0, n) == 0 && (args[0][n] == '\0' || args[0][n] == '/'),
                  "%s %s: args[0] is '%s', expected '%s'", e->method, e->path, args[0], e->arg0);
    }
}

Test(router_match, every_route)
{
    static const struct expect_route routes[] = {
        {"GET", "/healthz", "healthz", 0, NULL},
        {"GET", "/readyz", "readyz", 0, NULL},
        {"GET", "/openapi.yaml", "openapi", 0, NULL},
        {"POST", "/v1/entities", "entities.create", 0, NULL},
        {"GET", "/v1/entities", "entities.list", 0, NULL},
        {"GET", "/v1/entities/abc", "entities.get", 1, "abc"},
        {"PATCH", "/v1/entities/abc", "entities.patch", 1, "abc"},
        {"DELETE", "/v1/entities/abc", "entities.delete", 1, "abc"},
        {"POST", "/v1/relationships", "relationships.create", 0, NULL},
        {"GET", "/v1/relationships/rel_1", "relationships.get", 1, "rel_1"},
        {"DELETE", "/v1/relationships/rel_1", "relationships.delete", 1, "rel_1"},
        {"POST", "/v1/transactions", "transactions.create", 0, NULL},
        {"GET", "/v1/transactions", "transactions.list", 0, NULL},
        {"GET", "/v1/transactions/0190aaaa-bbbb-7ccc-8ddd-eeeeffff0000", "transactions.get", 1,
         "0190aaaa-bbbb-7ccc-8ddd-eeeeffff0000"},
        {"POST", "/v1/ids", "ids", 0, NULL},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        check_match(&routes[i]);
}

Test(router_match, wildcard_takes_whole_segment)
{
    const char *args[2] = {NULL, NULL};
    size_t n = 0;
    const char *path = "/v1/entities/entity_3f2a9c1b7d20";
    const struct route *r = router_match(&handlers_routes, "GET", path, args, &n);
    cr_assert_not_null(r);
    cr_expect_eq(n, 1);
    cr_expect_str_eq(args[0], "entity_3f2a9c1b7d20");
    cr_expect_eq(args[0], path + strlen("/v1/entities/"), "args point into the path");

    r = router_match(&handlers_routes, "GET", "/v1/entities/a:b.c-d_e", args, &n);
    cr_assert_not_null(r);
    cr_expect_str_eq(args[0], "a:b.c-d_e");
}

Test(router_match, matches_the_path_as_sent)
{
    /* an encoded '/' stays inside its segment: it is data, not a separator */
    const char *args[2] = {NULL, NULL};
    size_t n = 0;
    const struct route *r =
        router_match(&handlers_routes, "DELETE", "/v1/entities/abc%2Fzzz", args, &n);
    cr_assert_not_null(r);
    cr_expect_str_eq(r->name, "entities.delete");
    cr_expect_eq(n, 1);
    cr_expect_str_eq(args[0], "abc%2Fzzz");
    r = router_match(&handlers_routes, "GET", "/v1/reconciliations/x%00y/findings", args, &n);
    cr_assert_not_null(r);
    cr_expect_str_eq(r->name, "reconciliations.findings");
    cr_expect(strncmp(args[0], "x%00y/", 6) == 0);
}

Test(router_match, no_match)
{
    static const char *const cases[][2] = {
        {"GET", "/"},
        {"GET", ""},
        {"GET", "/v1"},
        {"GET", "/v1/"},
        {"GET", "/v1/entities/"}, /* empty wildcard segment */
        {"GET", "/v1/entities//"},
        {"GET", "/v1/entities/a/b"}, /* a wildcard is one segment */
        {"GET", "/v1/entitiesx"},
        {"GET", "/v1/entities/x/"},
        {"GET", "/V1/entities"}, /* paths are case-sensitive */
        {"get", "/v1/entities"}, /* so are methods */
        {"PUT", "/v1/entities/x"},
        {"POST", "/v1/entities/x"},
        {"DELETE", "/v1/entities"},
        {"PATCH", "/v1/relationships/x"},
        {"POST", "/healthz"},
        {"GET", "/healthz/"},
        {"GET", "/healthzz"},
        {"GET", "/v1/ids"},
        {"HEAD", "/healthz"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[2] = {NULL, NULL};
        size_t n = 0;
        const struct route *r = router_match(&handlers_routes, cases[i][0], cases[i][1], args, &n);
        cr_expect_null(r, "%s '%s' must not match (matched %s)", cases[i][0], cases[i][1],
                       r ? r->name : "");
    }
}

/* ---- router_dispatch on paths no handler takes ---- */

static void dispatch(const char *method, const char *path, struct response *res)
{
    struct request req;
    memset(&req, 0, sizeof req);
    req.method = method;
    req.path = path;
    req.rid = "test";
    memset(res, 0, sizeof *res);
    router_dispatch(&handlers_routes, NULL, &req, res);
}

static const char *error_code(const struct response *res)
{
    json_t *e = json_object_get(res->body, "error");
    return json_string_value(json_object_get(e, "code"));
}

static const char *header(const struct response *res, const char *name)
{
    for (size_t i = 0; i < res->n_headers; i++)
        if (strcasecmp(res->headers[i].name, name) == 0)
            return res->headers[i].value;
    return NULL;
}

static void expect_error(const struct response *res, unsigned status, const char *code)
{
    cr_expect_eq(res->status, status, "status %u, expected %u", res->status, status);
    cr_assert_not_null(res->body, "an error needs a JSON body");
    const char *got = error_code(res);
    cr_assert_not_null(got, "the body has no error.code");
    cr_expect_str_eq(got, code);
    const char *msg =
        json_string_value(json_object_get(json_object_get(res->body, "error"), "message"));
    cr_expect(msg && msg[0], "the error needs a message");
}

Test(router_dispatch, unknown_path_is_404)
{
    static const char *const paths[] = {
        "/nope", "/", "/v1/entities/a/b", "/v1/entities/", "/v2/entities", "/v1/relationships/x/y"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        struct response res;
        dispatch("GET", paths[i], &res);
        expect_error(&res, 404, "not_found");
        cr_expect_null(header(&res, "Allow"), "%s: a 404 has no Allow", paths[i]);
        response_free(&res);
    }
}

/* Splits an Allow value "GET, PATCH, DELETE" and checks it has exactly want. */
static void expect_allow(const char *allow, const char *const *want, size_t n_want)
{
    cr_assert_not_null(allow, "a 405 needs an Allow header");
    size_t n = 0;
    bool seen[8] = {false};
    const char *p = allow;
    while (*p) {
        size_t len = strcspn(p, ", ");
        if (len == 0) {
            p++;
            continue;
        }
        char tok[32];
        cr_assert_lt(len, sizeof tok, "Allow '%s' has a long token", allow);
        memcpy(tok, p, len);
        tok[len] = '\0';
        p += len;
        n++;
        bool known = false;
        for (size_t i = 0; i < n_want; i++) {
            if (strcmp(tok, want[i]) == 0) {
                cr_expect_not(seen[i], "Allow '%s' names %s twice", allow, tok);
                seen[i] = true;
                known = true;
            }
        }
        cr_expect(known, "Allow '%s' names %s, which the path does not take", allow, tok);
    }
    for (size_t i = 0; i < n_want; i++)
        cr_expect(seen[i], "Allow '%s' lacks %s", allow, want[i]);
    cr_expect_eq(n, n_want, "Allow '%s'", allow);
}

Test(router_dispatch, other_method_is_405_with_allow)
{
    struct response res;
    dispatch("PUT", "/v1/entities/x", &res);
    expect_error(&res, 405, "method_not_allowed");
    static const char *const want[] = {"GET", "PATCH", "DELETE"};
    expect_allow(header(&res, "Allow"), want, 3);
    response_free(&res);
}

Test(router_dispatch, collection_405_allow)
{
    struct response res;
    dispatch("DELETE", "/v1/entities", &res);
    expect_error(&res, 405, "method_not_allowed");
    static const char *const want[] = {"POST", "GET"};
    expect_allow(header(&res, "Allow"), want, 2);
    response_free(&res);

    dispatch("GET", "/v1/ids", &res);
    expect_error(&res, 405, "method_not_allowed");
    static const char *const ids[] = {"POST"};
    expect_allow(header(&res, "Allow"), ids, 1);
    response_free(&res);

    dispatch("PATCH", "/v1/relationships/r1", &res);
    expect_error(&res, 405, "method_not_allowed");
    static const char *const rel[] = {"GET", "DELETE"};
    expect_allow(header(&res, "Allow"), rel, 2);
    response_free(&res);

    dispatch("POST", "/healthz", &res);
    expect_error(&res, 405, "method_not_allowed");
    static const char *const health[] = {"GET"};
    expect_allow(header(&res, "Allow"), health, 1);
    response_free(&res);
}

static char *long_path(size_t len)
{
    char *p = malloc(len + 1);
    cr_assert_not_null(p);
    static const char head[] = "/v1/entities/";
    memcpy(p, head, sizeof head - 1);
    memset(p + sizeof head - 1, 'a', len - (sizeof head - 1));
    p[len] = '\0';
    return p;
}

Test(router_dispatch, long_url_is_414)
{
    char *p = long_path(ROUTER_MAX_URL + 1);
    struct response res;
    dispatch("GET", p, &res);
    expect_error(&res, 414, "uri_too_long");
    response_free(&res);
    free(p);

    p = long_path(100000);
    dispatch("PUT", p, &res); /* 414 wins over 405 */
    expect_error(&res, 414, "uri_too_long");
    response_free(&res);
    free(p);
}

Test(router_dispatch, url_at_limit_is_not_414)
{
    /* Exactly ROUTER_MAX_URL is allowed; with a method the path does not take,
     * the router answers 405 (no handler runs). */
    char *p = long_path(ROUTER_MAX_URL);
    struct response res;
    dispatch("PUT", p, &res);
    expect_error(&res, 405, "method_not_allowed");
    response_free(&res);
    free(p);
}

Test(router_dispatch, status_matches_error_table)
{
    struct response res;
    dispatch("GET", "/does/not/exist", &res);
    cr_expect_eq(res.status, bs_code_http_status(BS_NOT_FOUND));
    response_free(&res);
    cr_expect_null(res.body, "response_free clears the body");
}
