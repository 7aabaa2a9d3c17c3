/*
 * parse_operation (handlers/common.h, on the field specs of
 * handlers/http/fields.h): each op kind with its fields,
 * unknown fields, in-batch refs, raw statements, error fields with the
 * "operations[i]" prefix, if_version, generated ids.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/ids.h"
#include "handlers/common.h"
#include "stores/model/model.h"

static json_t *parse_json(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, 0, &jerr);
    cr_assert_not_null(v, "test JSON '%s' does not parse: %s", text, jerr.text);
    return v;
}

static void op_free(struct bs_op *op)
{
    json_decref(op->properties);
    json_decref(op->metadata);
    json_decref(op->parameters);
    free(op->statement);
    op->properties = op->metadata = op->parameters = NULL;
    op->statement = NULL;
}

/* What a raw operation answers where raw statements are off, and whether
 * the test at hand runs with them on. */
static const struct bs_error raw_off = {
    .code = BS_FORBIDDEN, .message = "raw statements are off", .op_index = -1};
static bool raw_on;

/* Parses text as operation index with prefix; the result is returned. */
static bool parse_text(const char *text, size_t index, const char *prefix, struct bs_op *op,
                       struct refs *refs, struct bs_error *err)
{
    json_t *obj = parse_json(text);
    bs_error_clear(err);
    bool ok = parse_operation(obj, index, prefix, op, refs, raw_on ? NULL : &raw_off, err);
    json_decref(obj);
    return ok;
}

static void expect_ok(const char *text, struct bs_op *op, struct refs *refs)
{
    struct bs_error err;
    bool ok = parse_text(text, 0, "operations[0]", op, refs, &err);
    cr_assert(ok, "%s must parse; got %s at '%s': %s", text, bs_code_name(err.code), err.field,
              err.message);
}

/* Parses text (index 2, prefix "operations[2]"), which must fail. */
static void expect_bad(const char *text, struct refs *refs, enum bs_code code, const char *field)
{
    struct bs_op op;
    struct bs_error err;
    bool ok = parse_text(text, 2, "operations[2]", &op, refs, &err);
    op_free(&op);
    cr_expect_not(ok, "%s must be rejected", text);
    cr_expect_eq(err.code, code, "%s: code %s, expected %s (%s)", text, bs_code_name(err.code),
                 bs_code_name(code), err.message);
    cr_expect(err.message[0] != '\0', "%s: the error needs a message", text);
    cr_expect_eq(err.op_index, 2, "%s: operation_index", text);
    if (field)
        cr_expect_str_eq(err.field, field, "%s: field", text);
}

static bool is_uuid7(const char *s)
{
    if (strlen(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' ||
        s[14] != '7')
        return false;
    return s[19] == '8' || s[19] == '9' || s[19] == 'a' || s[19] == 'b';
}

/* ---- each kind ---- */

Test(parse, create_entity_all_fields)
{
    struct bs_op op;
    expect_ok("{\"op\": \"create_entity\", \"id\": \"entity_3f2a9c1b7d20\", \"type\": \"Person\","
              " \"properties\": {\"canonical_name\": \"Ada\", \"confidence\": 0.93,"
              " \"surface_forms\": [\"Ada\", \"Lady Lovelace\"]},"
              " \"metadata\": {\"source_ref\": \"doc_17#p3\", \"nested\": {\"any\": [1, {}]}}}",
              &op, NULL);
    cr_expect_eq(op.kind, OP_CREATE_ENTITY);
    cr_expect_str_eq(op.id, "entity_3f2a9c1b7d20");
    cr_expect_str_eq(op.type, "Person");
    cr_assert(json_is_object(op.properties));
    cr_expect_eq(json_object_size(op.properties), 3);
    cr_expect_str_eq(json_string_value(json_object_get(op.properties, "canonical_name")), "Ada");
    cr_assert(json_is_object(op.metadata), "metadata is any object, nested ones included");
    cr_expect_str_eq(json_string_value(json_object_get(op.metadata, "source_ref")), "doc_17#p3");
    cr_expect(op.set_metadata);
    cr_expect_eq(op.if_version, -1);
    op_free(&op);
}

Test(parse, create_entity_minimal_gets_uuid7)
{
    struct bs_op op;
    expect_ok("{\"op\": \"create_entity\", \"type\": \"Org\"}", &op, NULL);
    cr_expect_eq(op.kind, OP_CREATE_ENTITY);
    cr_expect_str_eq(op.type, "Org");
    cr_expect(is_uuid7(op.id), "a create without id gets a UUIDv7, got '%s'", op.id);
    cr_expect(ids_valid(op.id));
    cr_expect_null(op.properties);
    cr_expect_null(op.metadata);
    op_free(&op);

    struct bs_op op2;
    expect_ok("{\"op\": \"create_entity\", \"type\": \"Org\"}", &op2, NULL);
    cr_expect_str_neq(op.id, op2.id, "two creates get two ids");
    cr_expect_gt(strcmp(op2.id, op.id), 0, "later ids sort after earlier ones");
    op_free(&op2);
}

Test(parse, create_relationship_fields)
{
    struct bs_op op;
    expect_ok("{\"op\": \"create_relationship\", \"id\": \"r1\", \"type\": \"WORKS_AT\","
              " \"source\": \"e1\", \"target\": \"e2\", \"properties\": {\"weight\": 0.7}}",
              &op, NULL);
    cr_expect_eq(op.kind, OP_CREATE_RELATIONSHIP);
    cr_expect_str_eq(op.id, "r1");
    cr_expect_str_eq(op.type, "WORKS_AT");
    cr_expect_str_eq(op.source, "e1");
    cr_expect_str_eq(op.target, "e2");
    cr_expect(json_real_value(json_object_get(op.properties, "weight")) == 0.7);
    op_free(&op);

    expect_ok("{\"op\": \"create_relationship\", \"type\": \"KNOWS\", \"source\": \"a\","
              " \"target\": \"b\"}",
              &op, NULL);
    cr_expect(is_uuid7(op.id), "got '%s'", op.id);
    op_free(&op);
}

Test(parse, update_entity_fields)
{
    struct bs_op op;
    expect_ok("{\"op\": \"update_entity\", \"id\": \"e1\", \"if_version\": 3,"
              " \"properties\": {\"confidence\": 0.97, \"old_key\": null},"
              " \"metadata\": {\"m\": 1}}",
              &op, NULL);
    cr_expect_eq(op.kind, OP_UPDATE_ENTITY);
    cr_expect_str_eq(op.id, "e1");
    cr_expect_eq(op.if_version, 3);
    cr_assert_not_null(op.properties);
    cr_expect(json_is_null(json_object_get(op.properties, "old_key")),
              "null removes a key in an update");
    cr_expect(op.set_metadata);
    cr_expect_not_null(op.metadata);
    op_free(&op);

    expect_ok("{\"op\": \"update_entity\", \"id\": \"e1\"}", &op, NULL);
    cr_expect_eq(op.if_version, -1);
    cr_expect_not(op.set_metadata, "no metadata given: keep it");
    cr_expect_null(op.properties);
    op_free(&op);

    expect_ok("{\"op\": \"update_entity\", \"id\": \"e1\", \"metadata\": null}", &op, NULL);
    cr_expect(op.set_metadata, "metadata: null replaces (clears) it");
    cr_expect_null(op.metadata);
    op_free(&op);
}

Test(parse, delete_fields)
{
    struct bs_op op;
    expect_ok("{\"op\": \"delete_entity\", \"id\": \"e1\", \"if_version\": 1}", &op, NULL);
    cr_expect_eq(op.kind, OP_DELETE_ENTITY);
    cr_expect_str_eq(op.id, "e1");
    cr_expect_eq(op.if_version, 1);
    op_free(&op);

    expect_ok("{\"op\": \"delete_relationship\", \"id\": \"r1\"}", &op, NULL);
    cr_expect_eq(op.kind, OP_DELETE_RELATIONSHIP);
    cr_expect_str_eq(op.id, "r1");
    cr_expect_eq(op.if_version, -1);
    op_free(&op);
}

/* ---- missing and bad fields ---- */

Test(parse, required_fields)
{
    expect_bad("{\"type\": \"Person\"}", NULL, BS_INVALID_REQUEST, "operations[2].op");
    expect_bad("{\"op\": \"create_entity\"}", NULL, BS_INVALID_REQUEST, "operations[2].type");
    expect_bad("{\"op\": \"update_entity\"}", NULL, BS_INVALID_REQUEST, "operations[2].id");
    expect_bad("{\"op\": \"delete_entity\"}", NULL, BS_INVALID_REQUEST, "operations[2].id");
    expect_bad("{\"op\": \"delete_relationship\"}", NULL, BS_INVALID_REQUEST, "operations[2].id");
    expect_bad("{\"op\": \"create_relationship\", \"type\": \"K\", \"target\": \"b\"}", NULL,
               BS_INVALID_REQUEST, "operations[2].source");
    expect_bad("{\"op\": \"create_relationship\", \"type\": \"K\", \"source\": \"a\"}", NULL,
               BS_INVALID_REQUEST, "operations[2].target");
}

Test(parse, bad_type_names_field_with_prefix)
{
    expect_bad("{\"op\": \"create_entity\", \"type\": \"Person) DETACH DELETE n //\"}", NULL,
               BS_INVALID_REQUEST, "operations[2].type");
    expect_bad("{\"op\": \"create_entity\", \"type\": \"_Bistore\"}", NULL, BS_INVALID_REQUEST,
               "operations[2].type");
    expect_bad("{\"op\": \"create_entity\", \"type\": 5}", NULL, BS_INVALID_REQUEST,
               "operations[2].type");
    expect_bad("{\"op\": \"create_relationship\", \"type\": \"WORKS-AT\", \"source\": \"a\","
               " \"target\": \"b\"}",
               NULL, BS_INVALID_REQUEST, "operations[2].type");
}

Test(parse, bad_ids)
{
    expect_bad("{\"op\": \"create_entity\", \"type\": \"P\", \"id\": \"a/b\"}", NULL,
               BS_INVALID_REQUEST, "operations[2].id");
    expect_bad("{\"op\": \"create_entity\", \"type\": \"P\", \"id\": \"\"}", NULL,
               BS_INVALID_REQUEST, "operations[2].id");
    expect_bad("{\"op\": \"create_entity\", \"type\": \"P\", \"id\": 7}", NULL, BS_INVALID_REQUEST,
               "operations[2].id");
    expect_bad("{\"op\": \"update_entity\", \"id\": \"a b\"}", NULL, BS_INVALID_REQUEST,
               "operations[2].id");
    expect_bad("{\"op\": \"create_relationship\", \"type\": \"K\", \"source\": \"a\\\"b\","
               " \"target\": \"b\"}",
               NULL, BS_INVALID_REQUEST, "operations[2].source");
    expect_bad("{\"op\": \"create_relationship\", \"type\": \"K\", \"source\": \"a\","
               " \"target\": 3}",
               NULL, BS_INVALID_REQUEST, "operations[2].target");
}

Test(parse, bad_properties_and_metadata)
{
    expect_bad("{\"op\": \"create_entity\", \"type\": \"P\", \"properties\": {\"n\": {}}}", NULL,
               BS_INVALID_REQUEST, "operations[2].properties.n");
    expect_bad("{\"op\": \"create_entity\", \"type\": \"P\", \"properties\": {\"n\": null}}", NULL,
               BS_INVALID_REQUEST, "operations[2].properties.n");
    expect_bad("{\"op\": \"create_entity\", \"type\": \"P\", \"properties\": [1]}", NULL,
               BS_INVALID_REQUEST, "operations[2].properties");
    expect_bad("{\"op\": \"create_entity\", \"type\": \"P\", \"metadata\": \"x\"}", NULL,
               BS_INVALID_REQUEST, "operations[2].metadata");
    expect_bad("{\"op\": \"update_entity\", \"id\": \"e\", \"properties\": {\"id\": 1}}", NULL,
               BS_INVALID_REQUEST, "operations[2].properties.id");
    expect_bad("{\"op\": \"create_relationship\", \"type\": \"K\", \"source\": \"a\","
               " \"target\": \"b\", \"properties\": {\"w\": [1, 0.5]}}",
               NULL, BS_INVALID_REQUEST, "operations[2].properties.w");
}

Test(parse, unknown_op)
{
    expect_bad("{\"op\": \"drop_everything\"}", NULL, BS_INVALID_REQUEST, "operations[2].op");
    expect_bad("{\"op\": 1}", NULL, BS_INVALID_REQUEST, "operations[2].op");
    expect_bad("{\"op\": \"CREATE_ENTITY\", \"type\": \"P\"}", NULL, BS_INVALID_REQUEST,
               "operations[2].op");
}

Test(parse, not_an_object)
{
    json_t *arr = json_array();
    struct bs_op op;
    struct bs_error err;
    bs_error_clear(&err);
    cr_expect_not(parse_operation(arr, 4, "operations[4]", &op, NULL, &raw_off, &err));
    cr_expect_eq(err.code, BS_INVALID_REQUEST);
    cr_expect_eq(err.op_index, 4);
    cr_expect_str_eq(err.field, "operations[4]");
    op_free(&op);
    json_decref(arr);
}

Test(parse, unknown_fields_rejected)
{
    expect_bad("{\"op\": \"create_entity\", \"type\": \"P\", \"extra\": 1}", NULL,
               BS_INVALID_REQUEST, "operations[2].extra");
    expect_bad("{\"op\": \"create_relationship\", \"type\": \"K\", \"source\": \"a\","
               " \"target\": \"b\", \"metadata\": {}}",
               NULL, BS_INVALID_REQUEST, "operations[2].metadata");
    expect_bad("{\"op\": \"create_relationship\", \"type\": \"K\", \"source\": \"a\","
               " \"target\": \"b\", \"ref\": \"r\"}",
               NULL, BS_INVALID_REQUEST, "operations[2].ref");
    expect_bad("{\"op\": \"update_entity\", \"id\": \"e\", \"type\": \"P\"}", NULL,
               BS_INVALID_REQUEST, "operations[2].type");
    expect_bad("{\"op\": \"delete_entity\", \"id\": \"e\", \"properties\": {}}", NULL,
               BS_INVALID_REQUEST, "operations[2].properties");
    expect_bad("{\"op\": \"delete_relationship\", \"id\": \"r\", \"if_version\": 1}", NULL,
               BS_INVALID_REQUEST, "operations[2].if_version");
    expect_bad("{\"op\": \"create_entity\", \"type\": \"P\", \"statement\": \"MATCH (n)\"}", NULL,
               BS_INVALID_REQUEST, "operations[2].statement");
}

Test(parse, unknown_field_message_names_it)
{
    struct bs_op op;
    struct bs_error err;
    bool ok = parse_text("{\"op\": \"delete_entity\", \"id\": \"e\", \"colour\": \"red\"}", 0,
                         "operations[0]", &op, NULL, &err);
    op_free(&op);
    cr_expect_not(ok);
    cr_expect(strstr(err.message, "colour") != NULL, "message: %s", err.message);
}

Test(parse, if_version_positive_integer)
{
    expect_bad("{\"op\": \"update_entity\", \"id\": \"e\", \"if_version\": 0}", NULL,
               BS_INVALID_REQUEST, "operations[2].if_version");
    expect_bad("{\"op\": \"update_entity\", \"id\": \"e\", \"if_version\": -3}", NULL,
               BS_INVALID_REQUEST, "operations[2].if_version");
    expect_bad("{\"op\": \"update_entity\", \"id\": \"e\", \"if_version\": 1.5}", NULL,
               BS_INVALID_REQUEST, "operations[2].if_version");
    expect_bad("{\"op\": \"update_entity\", \"id\": \"e\", \"if_version\": 2.0}", NULL,
               BS_INVALID_REQUEST, "operations[2].if_version");
    expect_bad("{\"op\": \"delete_entity\", \"id\": \"e\", \"if_version\": \"3\"}", NULL,
               BS_INVALID_REQUEST, "operations[2].if_version");
    expect_bad("{\"op\": \"delete_entity\", \"id\": \"e\", \"if_version\": null}", NULL,
               BS_INVALID_REQUEST, "operations[2].if_version");
    expect_bad("{\"op\": \"delete_entity\", \"id\": \"e\", \"if_version\": true}", NULL,
               BS_INVALID_REQUEST, "operations[2].if_version");

    struct bs_op op;
    expect_ok("{\"op\": \"delete_entity\", \"id\": \"e\", \"if_version\": 9007199254740993}", &op,
              NULL);
    cr_expect_eq(op.if_version, 9007199254740993LL);
    op_free(&op);
}

/* ---- raw statements ---- */

Test(parse, raw_statements_forbidden)
{
    expect_bad("{\"op\": \"cypher\", \"statement\": \"MATCH (n) DETACH DELETE n\"}", NULL,
               BS_FORBIDDEN, NULL);
    expect_bad("{\"op\": \"sql\", \"statement\": \"DELETE FROM entities\", \"parameters\": []}",
               NULL, BS_FORBIDDEN, NULL);
    struct refs refs = {0};
    expect_bad("{\"op\": \"cypher\", \"statement\": \"RETURN 1\"}", &refs, BS_FORBIDDEN,
               "operations[2].op");
    refs_free(&refs);
}

/* ---- refs ---- */

Test(parse, ref_resolves_to_earlier_create)
{
    struct refs refs = {0};
    struct bs_op ops[3];
    struct bs_error err;
    cr_assert(parse_text("{\"op\": \"create_entity\", \"ref\": \"a\", \"type\": \"Person\"}", 0,
                         "operations[0]", &ops[0], &refs, &err),
              "%s", err.message);
    cr_assert(parse_text("{\"op\": \"create_entity\", \"ref\": \"b\", \"id\": \"entity_9c1b\","
                         " \"type\": \"Org\"}",
                         1, "operations[1]", &ops[1], &refs, &err),
              "%s", err.message);
    cr_assert(parse_text("{\"op\": \"create_relationship\", \"type\": \"WORKS_AT\","
                         " \"source\": {\"ref\": \"a\"}, \"target\": {\"ref\": \"b\"}}",
                         2, "operations[2]", &ops[2], &refs, &err),
              "%s", err.message);
    cr_expect(is_uuid7(ops[0].id));
    cr_expect_str_eq(ops[2].source, ops[0].id, "{\"ref\": \"a\"} is the first op's id");
    cr_expect_str_eq(ops[2].target, "entity_9c1b");
    cr_expect_eq(refs.ops.n, 2);
    for (int i = 0; i < 3; i++)
        op_free(&ops[i]);
    refs_free(&refs);
    cr_expect_eq(refs.ops.n, 0);
    cr_expect_null(refs.ops.slots);
}

Test(parse, ref_mixed_with_plain_id)
{
    struct refs refs = {0};
    struct bs_op ops[2];
    struct bs_error err;
    cr_assert(parse_text("{\"op\": \"create_entity\", \"ref\": \"x\", \"type\": \"P\"}", 0,
                         "operations[0]", &ops[0], &refs, &err));
    cr_assert(parse_text("{\"op\": \"create_relationship\", \"type\": \"K\","
                         " \"source\": \"existing_1\", \"target\": {\"ref\": \"x\"}}",
                         1, "operations[1]", &ops[1], &refs, &err),
              "%s", err.message);
    cr_expect_str_eq(ops[1].source, "existing_1");
    cr_expect_str_eq(ops[1].target, ops[0].id);
    op_free(&ops[0]);
    op_free(&ops[1]);
    refs_free(&refs);
}

Test(parse, unknown_ref_rejected)
{
    struct refs refs = {0};
    struct bs_op op;
    expect_ok("{\"op\": \"create_entity\", \"ref\": \"a\", \"type\": \"P\"}", &op, &refs);
    expect_bad("{\"op\": \"create_relationship\", \"type\": \"K\", \"source\": {\"ref\": \"a\"},"
               " \"target\": {\"ref\": \"nope\"}}",
               &refs, BS_INVALID_REQUEST, "operations[2].target.ref");
    expect_bad("{\"op\": \"create_relationship\", \"type\": \"K\", \"source\": {\"ref\": 1},"
               " \"target\": \"b\"}",
               &refs, BS_INVALID_REQUEST, "operations[2].source.ref");
    expect_bad("{\"op\": \"create_relationship\", \"type\": \"K\", \"source\": {},"
               " \"target\": \"b\"}",
               &refs, BS_INVALID_REQUEST, "operations[2].source.ref");
    expect_bad("{\"op\": \"create_relationship\", \"type\": \"K\","
               " \"source\": {\"ref\": \"a\", \"id\": \"x\"}, \"target\": \"b\"}",
               &refs, BS_INVALID_REQUEST, "operations[2].source.id");
    op_free(&op);
    refs_free(&refs);
}

Test(parse, ref_is_case_sensitive)
{
    struct refs refs = {0};
    struct bs_op op;
    expect_ok("{\"op\": \"create_entity\", \"ref\": \"a\", \"type\": \"P\"}", &op, &refs);
    expect_bad("{\"op\": \"create_relationship\", \"type\": \"K\", \"source\": {\"ref\": \"A\"},"
               " \"target\": \"b\"}",
               &refs, BS_INVALID_REQUEST, "operations[2].source.ref");
    op_free(&op);
    refs_free(&refs);
}

Test(parse, duplicate_ref_rejected)
{
    struct refs refs = {0};
    struct bs_op op;
    expect_ok("{\"op\": \"create_entity\", \"ref\": \"a\", \"type\": \"P\"}", &op, &refs);
    expect_bad("{\"op\": \"create_entity\", \"ref\": \"a\", \"type\": \"Q\"}", &refs,
               BS_INVALID_REQUEST, "operations[2].ref");
    cr_expect_eq(refs.ops.n, 1, "the duplicate is not recorded");
    op_free(&op);
    refs_free(&refs);
}

Test(parse, bad_refs)
{
    struct refs refs = {0};
    expect_bad("{\"op\": \"create_entity\", \"ref\": \"\", \"type\": \"P\"}", &refs,
               BS_INVALID_REQUEST, "operations[2].ref");
    expect_bad("{\"op\": \"create_entity\", \"ref\": 5, \"type\": \"P\"}", &refs,
               BS_INVALID_REQUEST, "operations[2].ref");
    char text[400];
    char longref[130];
    memset(longref, 'r', 129);
    longref[129] = '\0';
    snprintf(text, sizeof text, "{\"op\": \"create_entity\", \"ref\": \"%s\", \"type\": \"P\"}",
             longref);
    expect_bad(text, &refs, BS_INVALID_REQUEST, "operations[2].ref");
    cr_expect_eq(refs.ops.n, 0);
    refs_free(&refs);
}

Test(parse, refs_not_allowed_without_refs)
{
    /* Single-resource requests pass refs = NULL: no ref, no {"ref"} endpoint. */
    expect_bad("{\"op\": \"create_entity\", \"ref\": \"a\", \"type\": \"P\"}", NULL,
               BS_INVALID_REQUEST, "operations[2].ref");
    expect_bad("{\"op\": \"create_relationship\", \"type\": \"K\", \"source\": {\"ref\": \"a\"},"
               " \"target\": \"b\"}",
               NULL, BS_INVALID_REQUEST, "operations[2].source");
}

Test(parse, many_refs)
{
    /* refs grows past its first allocation (16). */
    enum { N = 40 };
    struct refs refs = {0};
    struct bs_op *ops = calloc(N + 1, sizeof *ops);
    cr_assert_not_null(ops);
    struct bs_error err;
    char text[200];
    for (int i = 0; i < N; i++) {
        snprintf(text, sizeof text,
                 "{\"op\": \"create_entity\", \"ref\": \"r%d\", \"id\": \"e%d\", \"type\": \"P\"}",
                 i, i);
        cr_assert(parse_text(text, (size_t)i, "operations[x]", &ops[i], &refs, &err), "%s",
                  err.message);
    }
    cr_assert(parse_text("{\"op\": \"create_relationship\", \"type\": \"K\","
                         " \"source\": {\"ref\": \"r0\"}, \"target\": {\"ref\": \"r39\"}}",
                         N, "operations[40]", &ops[N], &refs, &err),
              "%s", err.message);
    cr_expect_str_eq(ops[N].source, "e0");
    cr_expect_str_eq(ops[N].target, "e39");
    cr_expect_eq(refs.ops.n, N);
    for (int i = 0; i <= N; i++)
        op_free(&ops[i]);
    free(ops);
    refs_free(&refs);
}

Test(parse, empty_prefix_fields)
{
    /* Single resources use prefix "": fields are top-level names. */
    struct bs_op op;
    struct bs_error err;
    bool ok = parse_text("{\"op\": \"create_entity\", \"type\": \"1x\"}", 0, "", &op, NULL, &err);
    op_free(&op);
    cr_expect_not(ok);
    cr_expect_str_eq(err.field, "type");
    ok = parse_text("{\"op\": \"create_entity\", \"type\": \"P\", \"properties\": {\"a\": {}}}", 0,
                    "", &op, NULL, &err);
    op_free(&op);
    cr_expect_not(ok);
    cr_expect_str_eq(err.field, "properties.a");
}

/* ---- fields_parse: unknown fields ---- */

Test(only_fields, accepts_and_rejects)
{
    static const struct field_spec allowed[] = {
        {"a", FIELD_INTEGER, .min = 0, .max = 9}, {"b", FIELD_INTEGER, .min = 0, .max = 9}, {0}};
    json_t *ok = parse_json("{\"a\": 1, \"b\": 2}");
    json_t *bad = parse_json("{\"a\": 1, \"c\": 2}");
    struct bs_error err;
    bs_error_clear(&err);
    cr_expect(fields_parse(ok, allowed, "", &err));
    cr_expect_not(fields_parse(bad, allowed, "", &err));
    cr_expect_eq(err.code, BS_INVALID_REQUEST);
    cr_expect_str_eq(err.field, "c");
    bs_error_clear(&err);
    cr_expect_not(fields_parse(bad, allowed, "body", &err));
    cr_expect_str_eq(err.field, "body.c");
    json_decref(ok);
    json_decref(bad);
}
