/*
 * The error table (BS_ERROR_TABLE in common/result.h): each bs_code's HTTP
 * status and snake_case name as API.md fixes them, its hint, and the error
 * body (handlers/http/errors.c).
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <jansson.h>
#include <string.h>

#include "common/result.h"
#include "handlers/http/errors.h"
#include "handlers/http/request.h"

static const struct {
    enum bs_code code;
    const char *name;
    unsigned status;
} table[] = {
    {BS_INVALID_JSON, "invalid_json", 400},
    {BS_INVALID_REQUEST, "invalid_request", 400},
    {BS_PAYLOAD_TOO_LARGE, "payload_too_large", 413},
    {BS_NOT_FOUND, "not_found", 404},
    {BS_ENTITY_EXISTS, "entity_exists", 409},
    {BS_RELATIONSHIP_EXISTS, "relationship_exists", 409},
    {BS_VERSION_MISMATCH, "version_mismatch", 412},
    {BS_UNAUTHORIZED, "unauthorized", 401},
    {BS_FORBIDDEN, "forbidden", 403},
    {BS_NEO4J_UNAVAILABLE, "neo4j_unavailable", 503},
    {BS_NEO4J_ERROR, "neo4j_error", 502},
    {BS_NEO4J_STATEMENT_ERROR, "neo4j_error", 400},
    {BS_STORAGE_ERROR, "storage_error", 500},
    {BS_METHOD_NOT_ALLOWED, "method_not_allowed", 405},
    {BS_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", 415},
    {BS_IDEMPOTENCY_CONFLICT, "idempotency_conflict", 409},
    {BS_URI_TOO_LONG, "uri_too_long", 414},
    {BS_NOT_READY, "not_ready", 503},
    {BS_RECONCILIATION_RUNNING, "reconciliation_running", 409},
    {BS_STORAGE_FULL, "storage_full", 507},
    {BS_OVERLOADED, "overloaded", 503},
    {BS_OUTCOME_UNKNOWN, "outcome_unknown", 500},
    {BS_REPLICATION_UNAVAILABLE, "replication_unavailable", 503},
    {BS_COMMIT_IN_DOUBT, "commit_in_doubt", 503},
    {BS_STANDBY, "standby", 503},
};
#define N_TABLE (sizeof table / sizeof table[0])

Test(errors, table_covers_every_code)
{
    /* Every code but BS_OK is in the table above once: a new code must be
     * added here (and to API.md) with its status. */
    cr_expect_eq(N_TABLE, (size_t)BS_CODE_COUNT - 1);
    for (int c = BS_OK + 1; c < BS_CODE_COUNT; c++) {
        int found = 0;
        for (size_t i = 0; i < N_TABLE; i++)
            found += (int)table[i].code == c;
        cr_expect_eq(found, 1, "code %d (%s) is listed %d times", c, bs_code_name((enum bs_code)c),
                     found);
    }
}

Test(errors, http_status_of_each_code)
{
    for (size_t i = 0; i < N_TABLE; i++)
        cr_expect_eq(bs_code_http_status(table[i].code), table[i].status, "%s: %u, expected %u",
                     table[i].name, bs_code_http_status(table[i].code), table[i].status);
}

Test(errors, every_error_status_is_4xx_or_5xx)
{
    for (int c = BS_OK + 1; c < BS_CODE_COUNT; c++) {
        unsigned s = bs_code_http_status((enum bs_code)c);
        cr_expect(s >= 400 && s <= 599, "code %d has status %u", c, s);
    }
}

Test(errors, every_code_has_a_hint)
{
    for (int c = BS_OK; c < BS_CODE_COUNT; c++) {
        const char *h = bs_code_hint((enum bs_code)c);
        cr_assert_not_null(h);
        cr_expect(h[0] != '\0', "code %s has no hint", bs_code_name((enum bs_code)c));
    }
    cr_expect_str_eq(bs_code_hint((enum bs_code)1000), bs_code_hint(BS_STORAGE_ERROR));
}

Test(errors, out_of_range_code_is_500)
{
    cr_expect_eq(bs_code_http_status(BS_CODE_COUNT), 500);
    cr_expect_eq(bs_code_http_status((enum bs_code)1000), 500);
    cr_expect_eq(bs_code_http_status((enum bs_code) - 1), 500);
    const char *n = bs_code_name((enum bs_code)1000);
    cr_assert_not_null(n);
    cr_expect(n[0] != '\0');
}

Test(errors, code_names)
{
    for (size_t i = 0; i < N_TABLE; i++)
        cr_expect_str_eq(bs_code_name(table[i].code), table[i].name);
}

Test(errors, names_are_snake_case_and_distinct)
{
    for (int a = BS_OK; a < BS_CODE_COUNT; a++) {
        const char *na = bs_code_name((enum bs_code)a);
        cr_assert_not_null(na);
        cr_expect(na[0] >= 'a' && na[0] <= 'z', "'%s' must start with a lower-case letter", na);
        for (const char *p = na; *p; p++)
            cr_expect((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_',
                      "'%s' is not snake_case", na);
        for (int b = a + 1; b < BS_CODE_COUNT; b++) {
            /* the one shared name (API.md): a client's Cypher refused is 400 */
            if (a == BS_NEO4J_ERROR && b == BS_NEO4J_STATEMENT_ERROR) {
                cr_expect_str_eq(na, bs_code_name((enum bs_code)b));
                cr_expect_neq(bs_code_http_status(BS_NEO4J_ERROR),
                              bs_code_http_status(BS_NEO4J_STATEMENT_ERROR));
                continue;
            }
            cr_expect_str_neq(na, bs_code_name((enum bs_code)b), "codes %d and %d share '%s'", a, b,
                              na);
        }
    }
}

static const json_t *error_object(const json_t *body)
{
    cr_assert_not_null(body);
    cr_assert(json_is_object(body));
    cr_expect_eq(json_object_size(body), 1, "the body holds only \"error\"");
    const json_t *e = json_object_get(body, "error");
    cr_assert(json_is_object(e));
    return e;
}

Test(errors, body_code_and_message_only)
{
    struct bs_error err;
    bs_error_clear(&err);
    bs_error_set(&err, BS_ENTITY_EXISTS, "entity %s exists", "e1");
    json_t *body = errors_body(&err);
    const json_t *e = error_object(body);
    cr_expect_str_eq(json_string_value(json_object_get(e, "code")), "entity_exists");
    cr_expect_str_eq(json_string_value(json_object_get(e, "message")), "entity e1 exists");
    cr_expect_null(json_object_get(e, "field"), "no field was set");
    cr_expect_null(json_object_get(e, "operation_index"), "no operation was named");
    cr_expect_eq(json_object_size(e), 2);
    json_decref(body);
}

Test(errors, body_with_field_and_operation_index)
{
    struct bs_error err;
    bs_error_clear(&err);
    bs_error_field(&err, "operations[%d].type", 3);
    bs_error_set(&err, BS_INVALID_REQUEST, "bad type");
    err.op_index = 3;
    json_t *body = errors_body(&err);
    const json_t *e = error_object(body);
    cr_expect_str_eq(json_string_value(json_object_get(e, "code")), "invalid_request");
    cr_expect_str_eq(json_string_value(json_object_get(e, "message")), "bad type");
    cr_expect_str_eq(json_string_value(json_object_get(e, "field")), "operations[3].type");
    json_t *idx = json_object_get(e, "operation_index");
    cr_assert(json_is_integer(idx), "operation_index must be an integer");
    cr_expect_eq(json_integer_value(idx), 3);
    cr_expect_eq(json_object_size(e), 4);
    json_decref(body);
}

Test(errors, body_operation_index_zero_is_shown)
{
    struct bs_error err;
    bs_error_clear(&err);
    bs_error_set(&err, BS_NOT_FOUND, "no such entity");
    err.op_index = 0;
    json_t *body = errors_body(&err);
    const json_t *e = error_object(body);
    cr_expect(json_is_integer(json_object_get(e, "operation_index")));
    cr_expect_eq(json_integer_value(json_object_get(e, "operation_index")), 0);
    cr_expect_null(json_object_get(e, "field"));
    json_decref(body);
}

Test(errors, body_field_without_index)
{
    struct bs_error err;
    bs_error_clear(&err);
    bs_error_field(&err, "properties.name");
    bs_error_set(&err, BS_INVALID_REQUEST, "x");
    json_t *body = errors_body(&err);
    const json_t *e = error_object(body);
    cr_expect_str_eq(json_string_value(json_object_get(e, "field")), "properties.name");
    cr_expect_null(json_object_get(e, "operation_index"));
    json_decref(body);
}

Test(errors, body_message_never_empty)
{
    struct bs_error err;
    bs_error_clear(&err);
    err.code = BS_STORAGE_ERROR;
    json_t *body = errors_body(&err);
    const json_t *e = error_object(body);
    const char *msg = json_string_value(json_object_get(e, "message"));
    cr_assert_not_null(msg);
    cr_expect(msg[0] != '\0');
    json_decref(body);
}

Test(errors, error_set_keeps_field_and_index)
{
    struct bs_error err;
    bs_error_clear(&err);
    cr_expect_eq(err.code, BS_OK);
    cr_expect_eq(err.op_index, -1);
    cr_expect_str_eq(err.field, "");
    bs_error_field(&err, "a.b");
    err.op_index = 5;
    cr_expect_eq(bs_error_set(&err, BS_FORBIDDEN, "m%d", 1), BS_FORBIDDEN);
    cr_expect_str_eq(err.field, "a.b");
    cr_expect_eq(err.op_index, 5);
    cr_expect_str_eq(err.message, "m1");
}

Test(errors, long_message_truncated_safely)
{
    struct bs_error err;
    bs_error_clear(&err);
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    bs_error_set(&err, BS_INVALID_REQUEST, "%s", big);
    cr_expect_eq(strlen(err.message), BS_ERROR_MESSAGE_MAX - 1);
    bs_error_field(&err, "%s", big);
    cr_expect_eq(strlen(err.field), BS_ERROR_FIELD_MAX - 1);
}

Test(errors, reply_error_uses_table)
{
    for (size_t i = 0; i < N_TABLE; i++) {
        struct response res;
        memset(&res, 0, sizeof res);
        reply_errorf(&res, table[i].code, i % 2 ? "f" : NULL, "message %zu", i);
        cr_expect_eq(res.status, table[i].status, "%s", table[i].name);
        const json_t *e = error_object(res.body);
        cr_expect_str_eq(json_string_value(json_object_get(e, "code")), table[i].name);
        if (i % 2)
            cr_expect_str_eq(json_string_value(json_object_get(e, "field")), "f");
        else
            cr_expect_null(json_object_get(e, "field"));
        cr_expect_null(json_object_get(e, "operation_index"));
        response_free(&res);
    }
}
