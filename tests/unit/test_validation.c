/*
 * Identifier and property validation (DESIGN.md section 2, API.md
 * "Identifiers"): model_valid_name, ids_valid, model_check_properties.
 * These checks are what keeps client input out of Cypher text.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ids.h"
#include "common/result.h"
#include "stores/model/model.h"

/* A string of n copies of c (free() it). */
static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    cr_assert_not_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* ---- model_valid_name: ^[A-Za-z][A-Za-z0-9_]{0,63}$ ---- */

Test(valid_name, accepts_identifiers)
{
    cr_expect(model_valid_name("Person"));
    cr_expect(model_valid_name("a"));
    cr_expect(model_valid_name("Z"));
    cr_expect(model_valid_name("A_1"));
    cr_expect(model_valid_name("WORKS_AT"));
    cr_expect(model_valid_name("x__9"));
}

Test(valid_name, accepts_64_chars)
{
    char *s = repeat('a', 64);
    s[0] = 'P';
    s[63] = '9';
    cr_expect(model_valid_name(s), "a 64-character name must pass");
    free(s);
}

Test(valid_name, rejects_65_chars)
{
    char *s = repeat('a', 65);
    cr_expect_not(model_valid_name(s), "a 65-character name must fail");
    free(s);
    s = repeat('b', 200);
    cr_expect_not(model_valid_name(s));
    free(s);
}

Test(valid_name, rejects_bad_names)
{
    static const char *const bad[] = {
        "",
        "_x",
        "1a",
        "9",
        "a-b",
        "a b",
        " a",
        "a ",
        "a.b",
        "a:b",
        "Person) DETACH DELETE n //",
        "Person`) DETACH DELETE n //",
        "`x`",
        "x`",
        "\xc3\xa9",    /* é */
        "caf\xc3\xa9", /* café */
        "a\n",
        "a\tb",
        "Person{}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_not(model_valid_name(bad[i]), "'%s' must be rejected", bad[i]);
}

/* ---- ids_valid: 1..128 of [A-Za-z0-9._:-] ---- */

Test(ids_valid, accepts_ids)
{
    cr_expect(ids_valid("entity_3f2a9c1b7d20"));
    cr_expect(ids_valid("a:b.c-d_e"));
    cr_expect(ids_valid("x"));
    cr_expect(ids_valid("0"));
    cr_expect(ids_valid("-"));
    cr_expect(ids_valid("01890a5d-ac96-774b-bcce-b302099a8057"));
    cr_expect(ids_valid("ABCxyz019._:-"));
}

Test(ids_valid, accepts_generated_uuid)
{
    char id[UUID_STR_LEN];
    ids_uuid7(id);
    cr_expect(ids_valid(id), "generated id %s must pass the supplied-id check", id);
}

Test(ids_valid, accepts_128_chars)
{
    char *s = repeat('a', 128);
    cr_expect(ids_valid(s));
    free(s);
}

Test(ids_valid, rejects_129_chars)
{
    char *s = repeat('a', 129);
    cr_expect_not(ids_valid(s));
    free(s);
    s = repeat('7', 1000);
    cr_expect_not(ids_valid(s));
    free(s);
}

Test(ids_valid, rejects_bad_ids)
{
    static const char *const bad[] = {
        "",     "a/b",   "a b",  "a\"b", "\xc3\xa4" /* ä */,
        "a\\b", "a'b",   "a`b",  "a\nb", "a?b",
        "a#b",  "a%2Fb", "a,b",  "a;b",  "a{b}",
        "abc ", " abc",  "\x7f", ".",    "..",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_not(ids_valid(bad[i]), "'%s' must be rejected", bad[i]);
}

Test(ids_valid, dots_are_ids_except_the_two_dot_segments)
{
    /* "." and ".." name no resource in a URL; other ids with dots do */
    cr_expect(ids_valid("..."));
    cr_expect(ids_valid(".a"));
    cr_expect(ids_valid("a."));
    cr_expect(ids_valid("a..b"));
    cr_expect(ids_valid("..a"));
    cr_expect_not(ids_valid_len("..", 2));
    cr_expect_not(ids_valid_len(".", 1));
    cr_expect(ids_valid_len("..", 1) == false, "'.' (the first byte of \"..\") is a dot segment");
}

Test(ids_valid_len, checks_every_byte_of_the_length)
{
    /* the path argument "abc%00zzz" decodes to 7 bytes with a NUL inside */
    static const char nul_inside[] = "abc\0zzz";
    cr_expect_not(ids_valid_len(nul_inside, sizeof nul_inside - 1), "a NUL inside must fail");
    cr_expect(ids_valid(nul_inside), "the C string before the NUL alone is an id");
    cr_expect_not(ids_valid_len("\0abc", 4));
    cr_expect_not(ids_valid_len("abc\0", 4));
    cr_expect_not(ids_valid_len("abc\n", 4));
    cr_expect(ids_valid_len("abcdef", 3), "only the first n bytes count");
    cr_expect_not(ids_valid_len("", 0));
    char *s = repeat('a', 129);
    cr_expect(ids_valid_len(s, 128));
    cr_expect_not(ids_valid_len(s, 129));
    free(s);
}

Test(ids_valid, every_generated_id_passes)
{
    /* ids handed out by the gateway pass the same rule as supplied ones */
    for (int i = 0; i < 10000; i++) {
        char id[UUID_STR_LEN];
        ids_uuid7(id);
        cr_assert(ids_valid(id), "generated id %s fails the id rule", id);
    }
}

/* ---- model_valid_entity_type: a name other than the common label ---- */

Test(entity_type, the_common_label_is_reserved)
{
    cr_expect_not(model_valid_entity_type("Entity"));
    cr_expect_not(model_valid_entity_type(MODEL_ENTITY_LABEL));
    cr_expect(model_valid_name("Entity"), "as a relationship type or key it is a name");
    cr_expect(model_valid_entity_type("Person"));
    cr_expect(model_valid_entity_type("entity"), "labels are case-sensitive");
    cr_expect(model_valid_entity_type("Entity2"));
    cr_expect(model_valid_entity_type("EntityType"));
    cr_expect_not(model_valid_entity_type("1Entity"));
    cr_expect_not(model_valid_entity_type(""));
}

/* ---- model_check_properties ---- */

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, 0, &jerr);
    cr_assert_not_null(v, "test JSON '%s' does not parse: %s", text, jerr.text);
    return v;
}

/* Checks props (JSON text) and returns the result; err is filled. */
static bool check(const char *text, bool allow_null, struct bs_error *err)
{
    json_t *v = parse(text);
    bs_error_clear(err);
    bool ok = model_check_properties(v, allow_null, "properties", err);
    json_decref(v);
    return ok;
}

static void expect_ok(const char *text, bool allow_null)
{
    struct bs_error err;
    bool ok = check(text, allow_null, &err);
    cr_expect(ok, "%s must be accepted (got %s: %s)", text, bs_code_name(err.code), err.message);
}

static void expect_bad(const char *text, bool allow_null, const char *field)
{
    struct bs_error err;
    bool ok = check(text, allow_null, &err);
    cr_expect_not(ok, "%s must be rejected", text);
    cr_expect_eq(err.code, BS_INVALID_REQUEST, "%s: code %s, expected invalid_request", text,
                 bs_code_name(err.code));
    cr_expect(err.message[0] != '\0', "%s: the error needs a message", text);
    if (field)
        cr_expect_str_eq(err.field, field, "%s: field", text);
}

Test(properties, accepts_scalars)
{
    expect_ok("{}", false);
    expect_ok("{\"name\": \"Ada\"}", false);
    expect_ok("{\"n\": 42}", false);
    expect_ok("{\"n\": -9223372036854775807}", false);
    expect_ok("{\"x\": 0.93}", false);
    expect_ok("{\"x\": 1.0}", false);
    expect_ok("{\"b\": true, \"c\": false}", false);
    expect_ok("{\"canonical_name\": \"Ada Lovelace\", \"confidence\": 0.93, \"flag\": true, "
              "\"n\": 3}",
              false);
}

Test(properties, accepts_homogeneous_arrays)
{
    expect_ok("{\"a\": [\"Ada\", \"Lady Lovelace\"]}", false);
    expect_ok("{\"a\": [1, 2, 3]}", false);
    expect_ok("{\"a\": [0.5, 1.5, 2.0]}", false);
    expect_ok("{\"a\": [true, false, true]}", false);
    expect_ok("{\"a\": []}", false);
    expect_ok("{\"a\": [\"one\"]}", false);
}

Test(properties, rejects_nested_object)
{
    expect_bad("{\"name\": {\"first\": \"Ada\"}}", false, "properties.name");
    expect_bad("{\"name\": {}}", false, "properties.name");
}

Test(properties, rejects_array_of_objects_or_arrays)
{
    expect_bad("{\"items\": [{\"a\": 1}]}", false, "properties.items");
    expect_bad("{\"items\": [[1, 2], [3]]}", false, "properties.items");
    expect_bad("{\"items\": [1, null]}", false, "properties.items");
    expect_bad("{\"items\": [null]}", true, "properties.items");
}

Test(properties, rejects_mixed_arrays)
{
    expect_bad("{\"mixed\": [\"a\", 1]}", false, "properties.mixed");
    expect_bad("{\"mixed\": [1, 2.5]}", false, "properties.mixed");
    expect_bad("{\"mixed\": [2.5, 1]}", false, "properties.mixed");
    expect_bad("{\"mixed\": [true, 1]}", false, "properties.mixed");
    expect_bad("{\"mixed\": [\"x\", \"y\", false]}", false, "properties.mixed");
    expect_bad("{\"mixed\": [1, 2, 3, 4, \"5\"]}", false, "properties.mixed");
}

Test(properties, null_only_in_patch)
{
    expect_bad("{\"old_key\": null}", false, "properties.old_key");
    expect_ok("{\"old_key\": null}", true);
    expect_ok("{\"confidence\": 0.97, \"old_key\": null}", true);
}

Test(properties, patch_still_rejects_bad_values)
{
    expect_bad("{\"x\": {\"y\": 1}}", true, "properties.x");
    expect_bad("{\"x\": [1, \"a\"]}", true, "properties.x");
    expect_bad("{\"id\": null}", true, "properties.id");
}

Test(properties, rejects_reserved_keys)
{
    expect_bad("{\"id\": \"x\"}", false, "properties.id");
    expect_bad("{\"_x\": 1}", false, "properties._x");
    expect_bad("{\"_v\": 1}", false, "properties._v");
    expect_bad("{\"_h\": \"abc\"}", false, "properties._h");
}

/* The header promises field = prefix + key for every failure. */
Test(properties, invalid_key_names_the_key)
{
    expect_bad("{\"1bad\": 1}", false, "properties.1bad");
}

Test(properties, rejects_invalid_keys)
{
    static const char *const bad[] = {
        "{\"1bad\": 1}",
        "{\"a-b\": 1}",
        "{\"a b\": 1}",
        "{\"\": 1}",
        "{\"Person) DETACH DELETE n //\": 1}",
        "{\"`k`\": 1}",
        "{\"caf\xc3\xa9\": 1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct bs_error err;
        bool ok = check(bad[i], false, &err);
        cr_expect_not(ok, "%s must be rejected", bad[i]);
        cr_expect_eq(err.code, BS_INVALID_REQUEST);
        cr_expect(strncmp(err.field, "properties", 10) == 0, "%s: field '%s'", bad[i], err.field);
    }
}

Test(properties, key_length_limit)
{
    char *k64 = repeat('k', 64);
    char *k65 = repeat('k', 65);
    json_t *ok64 = json_pack("{s:i}", k64, 1);
    json_t *bad65 = json_pack("{s:i}", k65, 1);
    struct bs_error err;
    bs_error_clear(&err);
    cr_expect(model_check_properties(ok64, false, "properties", &err),
              "a 64-character key must pass: %s", err.message);
    bs_error_clear(&err);
    cr_expect_not(model_check_properties(bad65, false, "properties", &err),
                  "a 65-character key must fail");
    cr_expect_eq(err.code, BS_INVALID_REQUEST);
    cr_expect(strncmp(err.field, "properties", 10) == 0);
    json_decref(ok64);
    json_decref(bad65);
    free(k64);
    free(k65);
}

static json_t *object_with_keys(size_t n)
{
    json_t *o = json_object();
    char key[32];
    for (size_t i = 0; i < n; i++) {
        snprintf(key, sizeof key, "k%zu", i);
        cr_assert_eq(json_object_set_new(o, key, json_integer((json_int_t)i)), 0);
    }
    return o;
}

Test(properties, key_count_limit)
{
    json_t *at = object_with_keys(MAX_PROPERTIES);
    json_t *over = object_with_keys(MAX_PROPERTIES + 1);
    struct bs_error err;
    bs_error_clear(&err);
    cr_expect(model_check_properties(at, false, "properties", &err), "%d keys must pass: %s",
              MAX_PROPERTIES, err.message);
    bs_error_clear(&err);
    cr_expect_not(model_check_properties(over, false, "properties", &err), "%d keys must fail",
                  MAX_PROPERTIES + 1);
    cr_expect_eq(err.code, BS_INVALID_REQUEST);
    cr_expect(strncmp(err.field, "properties", 10) == 0, "field '%s'", err.field);
    json_decref(at);
    json_decref(over);
}

static json_t *array_of(size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(json_array_append_new(a, json_integer((json_int_t)i)), 0);
    return a;
}

Test(properties, array_item_limit)
{
    json_t *at = json_pack("{s:o}", "vals", array_of(MAX_ARRAY_ITEMS));
    json_t *over = json_pack("{s:o}", "vals", array_of(MAX_ARRAY_ITEMS + 1));
    struct bs_error err;
    bs_error_clear(&err);
    cr_expect(model_check_properties(at, false, "properties", &err), "%d items must pass: %s",
              MAX_ARRAY_ITEMS, err.message);
    bs_error_clear(&err);
    cr_expect_not(model_check_properties(over, false, "properties", &err), "%d items must fail",
                  MAX_ARRAY_ITEMS + 1);
    cr_expect_eq(err.code, BS_INVALID_REQUEST);
    cr_expect_str_eq(err.field, "properties.vals");
    json_decref(at);
    json_decref(over);
}

Test(properties, rejects_non_object)
{
    static const char *const bad[] = {"[]", "[1]", "\"x\"", "3", "null"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *v = json_loads(bad[i], JSON_DECODE_ANY, NULL);
        cr_assert_not_null(v);
        struct bs_error err;
        bs_error_clear(&err);
        cr_expect_not(model_check_properties(v, true, "properties", &err), "%s must fail", bad[i]);
        cr_expect_eq(err.code, BS_INVALID_REQUEST);
        cr_expect_str_eq(err.field, "properties");
        json_decref(v);
    }
}

Test(properties, field_uses_given_prefix)
{
    json_t *v = parse("{\"ok\": 1, \"bad\": {\"x\": 1}}");
    struct bs_error err;
    bs_error_clear(&err);
    cr_expect_not(model_check_properties(v, false, "operations[3].properties", &err));
    cr_expect_str_eq(err.field, "operations[3].properties.bad");
    json_decref(v);
}

/* --max-string-bytes and --max-properties (model_set_limits): a string value
 * or string item over the limit, in bytes, names its property. */
Test(properties, configured_string_and_count_limits)
{
    model_set_limits(3, 4);
    struct bs_error err;
    cr_expect(check("{\"a\":\"abcd\",\"b\":[\"wxyz\"],\"c\":12345}", false, &err), "%s",
              err.message);
    cr_expect_not(check("{\"a\":\"abcde\"}", false, &err));
    cr_expect_str_eq(err.field, "properties.a");
    cr_expect_eq(err.code, BS_INVALID_REQUEST);
    cr_expect_not(check("{\"a\":\"\\u00e9\\u00e9\\u00e9\"}", false, &err),
                  "three two-byte characters are 6 bytes");
    cr_expect_str_eq(err.field, "properties.a");
    cr_expect_not(check("{\"t\":[\"ok\",\"toolong\"]}", true, &err));
    cr_expect_str_eq(err.field, "properties.t");
    cr_expect_not(check("{\"a\":1,\"b\":2,\"c\":3,\"d\":4}", false, &err));
    cr_expect_str_eq(err.field, "properties");
    model_set_limits(MAX_PROPERTIES, MAX_STRING_BYTES);
    cr_expect(check("{\"a\":\"abcde\",\"b\":1,\"c\":2,\"d\":3}", false, &err), "%s", err.message);
}
