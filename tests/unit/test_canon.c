/*
 * Canonical JSON (common/json_text.h) and the content hash
 * (stores/model/canon.h): sorted keys,
 * compact, shortest round-trip reals that stay reals, minimal string
 * escaping, XXH64 as 16 lowercase hex digits.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/buf.h"
#include "stores/model/canon.h"

/* Canonical text of v; checks it against want and frees it. */
static void expect_canon(const json_t *v, const char *want)
{
    char *got = json_canon_dumps(v);
    cr_assert_not_null(got);
    cr_expect_str_eq(got, want);
    free(got);
}

static void expect_real(double d, const char *want)
{
    json_t *v = json_real(d);
    cr_assert_not_null(v);
    expect_canon(v, want);
    json_decref(v);
}

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
    cr_assert_not_null(v, "test JSON '%s' does not parse: %s", text, jerr.text);
    return v;
}

static void expect_canon_of(const char *text, const char *want)
{
    json_t *v = parse(text);
    expect_canon(v, want);
    json_decref(v);
}

Test(canon, keys_sorted_compact)
{
    expect_canon_of("{ \"b\" : 1 , \"a\" : 2, \"c\": 3 }", "{\"a\":2,\"b\":1,\"c\":3}");
    expect_canon_of("{}", "{}");
    expect_canon_of("[]", "[]");
    expect_canon_of("[ 1 , 2 ,3 ]", "[1,2,3]");
}

Test(canon, keys_sorted_by_byte)
{
    /* Byte order: upper case before '_' before lower case; shorter prefix first;
     * UTF-8 (high bytes) after ASCII. */
    json_t *o = json_object();
    json_object_set_new(o, "b", json_integer(1));
    json_object_set_new(o, "\xc3\xa9", json_integer(2)); /* é */
    json_object_set_new(o, "_x", json_integer(3));
    json_object_set_new(o, "B", json_integer(4));
    json_object_set_new(o, "ab", json_integer(5));
    json_object_set_new(o, "a", json_integer(6));
    json_object_set_new(o, "A", json_integer(7));
    json_object_set_new(o, "a0", json_integer(8));
    expect_canon(o, "{\"A\":7,\"B\":4,\"_x\":3,\"a\":6,\"a0\":8,\"ab\":5,\"b\":1,\"\xc3\xa9\":2}");
    json_decref(o);
}

Test(canon, nested_objects_sorted)
{
    expect_canon_of("{\"z\": {\"y\": 1, \"x\": [ {\"d\": 1, \"c\": 2} ]}, \"a\": null}",
                    "{\"a\":null,\"z\":{\"x\":[{\"c\":2,\"d\":1}],\"y\":1}}");
}

Test(canon, more_than_32_keys_sorted)
{
    /* append_object switches to a heap array past 32 keys. */
    json_t *o = json_object();
    char key[8];
    for (int i = 39; i >= 0; i--) {
        snprintf(key, sizeof key, "k%02d", i);
        json_object_set_new(o, key, json_integer(i));
    }
    char *got = json_canon_dumps(o);
    cr_assert_not_null(got);
    cr_expect(strncmp(got, "{\"k00\":0,\"k01\":1,\"k02\":2,", 25) == 0, "got %s", got);
    size_t n = strlen(got);
    cr_expect(n > 20 && strcmp(got + n - 18, "\"k38\":38,\"k39\":39}") == 0, "got %s", got);
    free(got);
    json_decref(o);
}

Test(canon, literals_and_integers)
{
    expect_canon_of("true", "true");
    expect_canon_of("false", "false");
    expect_canon_of("null", "null");
    expect_canon_of("0", "0");
    expect_canon_of("-17", "-17");
    expect_canon_of("9223372036854775807", "9223372036854775807");
    expect_canon_of("-9223372036854775808", "-9223372036854775808");
    json_t *i = json_integer(42);
    expect_canon(i, "42"); /* an integer never gains ".0" */
    json_decref(i);
}

Test(canon, reals_shortest_round_trip)
{
    expect_real(1.0, "1.0");
    expect_real(0.93, "0.93");
    expect_real(-0.5, "-0.5");
    expect_real(0.1, "0.1");
    expect_real(2.5, "2.5");
    expect_real(123456789.0, "123456789.0");
    expect_real(0.1 + 0.2, "0.30000000000000004");
    expect_real(1.0 / 3.0, "0.3333333333333333");
    expect_real(0.0, "0.0");
}

/* "1.0 stays a real": every whole real is written as digits + ".0", the way
 * 1.0 and 123456789.0 already are; %.1g's "1e+01" for 10.0 is a real too,
 * but it is not the form of the other whole reals, and json_text_append
 * sends it to clients ({"age": 10.0} comes back as {"age":1e+01}). */
Test(canon, reals_whole_keep_dot_zero)
{
    expect_real(10.0, "10.0");
    expect_real(100.0, "100.0");
    expect_real(-20.0, "-20.0");
    expect_real(1000000.0, "1000000.0");
}

Test(canon, reals_with_exponent)
{
    json_t *v = json_real(1e300);
    char *got = json_canon_dumps(v);
    cr_assert_not_null(got);
    cr_expect(strpbrk(got, "eE") != NULL, "1e300 must keep an exponent, got %s", got);
    cr_expect(strlen(got) <= 7, "1e300 must be short, got %s", got);
    cr_expect(strtod(got, NULL) == 1e300, "%s must read back as 1e300", got);
    cr_expect_str_eq(got, "1e+300");
    free(got);
    json_decref(v);

    v = json_real(5e-324); /* smallest subnormal */
    got = json_canon_dumps(v);
    cr_assert_not_null(got);
    cr_expect(strtod(got, NULL) == 5e-324, "%s must read back", got);
    cr_expect(strpbrk(got, "eE") != NULL);
    free(got);
    json_decref(v);

    v = json_real(1.7976931348623157e308);
    got = json_canon_dumps(v);
    cr_assert_not_null(got);
    cr_expect(strtod(got, NULL) == 1.7976931348623157e308, "%s must read back", got);
    free(got);
    json_decref(v);
}

Test(canon, reals_always_read_back_exactly)
{
    static const double values[] = {0.93, -0.5, 1e300,   1e-300, 3.141592653589793,  2.0 / 3.0,
                                    1e16, 1e21, 123.456, -1e-7,  4503599627370497.0, 0.7};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        json_t *v = json_real(values[i]);
        char *got = json_canon_dumps(v);
        cr_assert_not_null(got);
        cr_expect(strtod(got, NULL) == values[i], "%.17g became %s", values[i], got);
        cr_expect(strpbrk(got, ".eE") != NULL, "%s must look like a real", got);
        /* Shortest: %.17g is never shorter. */
        char longest[40];
        snprintf(longest, sizeof longest, "%.17g", values[i]);
        cr_expect(strlen(got) <= strlen(longest) + 2, "%s is longer than needed", got);
        free(got);
        json_decref(v);
    }
}

Test(canon, strings_escape_minimally)
{
    json_t *s = json_string("a\"b\\c/d");
    expect_canon(s, "\"a\\\"b\\\\c/d\""); /* '/' is not escaped */
    json_decref(s);

    s = json_string("\b\f\n\r\t");
    expect_canon(s, "\"\\b\\f\\n\\r\\t\"");
    json_decref(s);

    s = json_string("\x01\x1f x");
    expect_canon(s, "\"\\u0001\\u001f x\"");
    json_decref(s);

    s = json_stringn("a\0b", 3);
    cr_assert_not_null(s);
    expect_canon(s, "\"a\\u0000b\"");
    json_decref(s);
}

Test(canon, utf8_kept_as_is)
{
    json_t *s = json_string("Ada Lovelace \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"); /* é € 😀 */
    expect_canon(s, "\"Ada Lovelace \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    json_decref(s);
    /* From JSON text with \u escapes: written back as raw UTF-8, not escaped. */
    expect_canon_of("\"\\u00e9\\u20ac\"", "\"\xc3\xa9\xe2\x82\xac\"");
}

Test(canon, hash_is_16_lowercase_hex)
{
    json_t *v = parse("{\"a\": 1}");
    char hex[HASH_STR_LEN];
    memset(hex, 'X', sizeof hex);
    cr_assert_eq(canon_hash(v, hex), 0);
    cr_expect_eq(strlen(hex), 16);
    for (int i = 0; i < 16; i++)
        cr_expect(isxdigit((unsigned char)hex[i]) && !isupper((unsigned char)hex[i]),
                  "hash %s char %d", hex, i);
    json_decref(v);
}

Test(canon, hash_is_xxh64_of_canonical_text)
{
    static const char *const texts[] = {"{\"b\": [1, 2.0], \"a\": \"x\"}", "{}", "[]"};
    static const char *const canon[] = {"{\"a\":\"x\",\"b\":[1,2.0]}", "{}", "[]"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_t *v = parse(texts[i]);
        char got[HASH_STR_LEN], want[HASH_STR_LEN];
        cr_assert_eq(canon_hash(v, got), 0);
        snprintf(want, sizeof want, "%016llx",
                 (unsigned long long)XXH64(canon[i], strlen(canon[i]), 0));
        cr_expect_str_eq(got, want, "hash of %s", canon[i]);
        json_decref(v);
    }
}

Test(canon, hash_ignores_key_order)
{
    json_t *a = json_object();
    json_object_set_new(a, "name", json_string("Ada"));
    json_object_set_new(a, "confidence", json_real(0.93));
    json_object_set_new(a, "tags", json_pack("[ss]", "x", "y"));
    json_object_set_new(a, "inner", json_pack("{s:i, s:b}", "z", 1, "a", 1));

    json_t *b = json_object();
    json_object_set_new(b, "inner", json_pack("{s:b, s:i}", "a", 1, "z", 1));
    json_object_set_new(b, "tags", json_pack("[ss]", "x", "y"));
    json_object_set_new(b, "confidence", json_real(0.93));
    json_object_set_new(b, "name", json_string("Ada"));

    char ha[HASH_STR_LEN], hb[HASH_STR_LEN];
    cr_assert_eq(canon_hash(a, ha), 0);
    cr_assert_eq(canon_hash(b, hb), 0);
    cr_expect_str_eq(ha, hb);

    /* One property changes: the hash changes. */
    json_object_set_new(b, "confidence", json_real(0.94));
    cr_assert_eq(canon_hash(b, hb), 0);
    cr_expect_str_neq(ha, hb);

    /* Array order is content: it changes the hash. */
    json_object_set_new(b, "confidence", json_real(0.93));
    json_object_set_new(b, "tags", json_pack("[ss]", "y", "x"));
    cr_assert_eq(canon_hash(b, hb), 0);
    cr_expect_str_neq(ha, hb);
    json_decref(a);
    json_decref(b);
}

Test(canon, hash_distinguishes_int_and_real)
{
    json_t *i = parse("{\"n\": 1}");
    json_t *r = parse("{\"n\": 1.0}");
    char hi[HASH_STR_LEN], hr[HASH_STR_LEN];
    cr_assert_eq(canon_hash(i, hi), 0);
    cr_assert_eq(canon_hash(r, hr), 0);
    cr_expect_str_neq(hi, hr, "1 and 1.0 are different values");
    json_decref(i);
    json_decref(r);
}

Test(canon, entity_record_keys)
{
    json_t *props = parse("{\"name\": \"Ada\", \"age\": 36}");
    json_t *rec = canon_entity_record("e1", "Person", props, 3);
    cr_assert_not_null(rec);
    cr_expect_eq(json_object_size(rec), 4);
    cr_expect_str_eq(json_string_value(json_object_get(rec, "id")), "e1");
    cr_expect_str_eq(json_string_value(json_object_get(rec, "type")), "Person");
    cr_expect(json_equal(json_object_get(rec, "properties"), props));
    cr_expect(json_is_integer(json_object_get(rec, "version")));
    cr_expect_eq(json_integer_value(json_object_get(rec, "version")), 3);
    expect_canon(rec, "{\"id\":\"e1\",\"properties\":{\"age\":36,\"name\":\"Ada\"},"
                      "\"type\":\"Person\",\"version\":3}");
    /* properties was borrowed, not stolen */
    cr_expect_eq(props->refcount, 2);
    json_decref(rec);
    cr_expect_eq(props->refcount, 1);
    json_decref(props);
}

Test(canon, relationship_record_keys)
{
    json_t *props = parse("{\"weight\": 0.7}");
    json_t *rec = canon_relationship_record("r1", "WORKS_AT", "a", "b", props, 1);
    cr_assert_not_null(rec);
    cr_expect_eq(json_object_size(rec), 6);
    expect_canon(rec, "{\"id\":\"r1\",\"properties\":{\"weight\":0.7},\"source\":\"a\","
                      "\"target\":\"b\",\"type\":\"WORKS_AT\",\"version\":1}");
    json_decref(rec);
    json_decref(props);
}

Test(canon, record_hash_changes_with_version_and_endpoints)
{
    json_t *props = parse("{\"weight\": 0.7}");
    json_t *r1 = canon_relationship_record("r1", "WORKS_AT", "a", "b", props, 1);
    json_t *r2 = canon_relationship_record("r1", "WORKS_AT", "a", "b", props, 2);
    json_t *r3 = canon_relationship_record("r1", "WORKS_AT", "b", "a", props, 1);
    char h1[HASH_STR_LEN], h2[HASH_STR_LEN], h3[HASH_STR_LEN];
    cr_assert_eq(canon_hash(r1, h1), 0);
    cr_assert_eq(canon_hash(r2, h2), 0);
    cr_assert_eq(canon_hash(r3, h3), 0);
    cr_expect_str_neq(h1, h2);
    cr_expect_str_neq(h1, h3);
    json_decref(r1);
    json_decref(r2);
    json_decref(r3);
    json_decref(props);
}

Test(canon, json_text_keeps_insertion_order)
{
    json_t *o = json_object();
    json_object_set_new(o, "zeta", json_real(1.0));
    json_object_set_new(o, "alpha", json_real(0.93));
    json_object_set_new(o, "mid", json_pack("{s:i, s:i}", "y", 1, "b", 2));
    json_object_set_new(o, "s", json_string("q\"\n"));
    struct buf b;
    buf_init(&b, 1 << 16);
    cr_assert_eq(json_text_append(&b, o), BUF_OK);
    cr_expect_str_eq(buf_str(&b),
                     "{\"zeta\":1.0,\"alpha\":0.93,\"mid\":{\"y\":1,\"b\":2},\"s\":\"q\\\"\\n\"}");
    buf_free(&b);

    /* json_canon_append on the same object sorts it. */
    buf_init(&b, 1 << 16);
    cr_assert_eq(json_canon_append(&b, o), BUF_OK);
    cr_expect_str_eq(buf_str(&b),
                     "{\"alpha\":0.93,\"mid\":{\"b\":2,\"y\":1},\"s\":\"q\\\"\\n\",\"zeta\":1.0}");
    buf_free(&b);
    json_decref(o);
}

Test(canon, json_text_objects_in_arrays_keep_order)
{
    json_t *v = json_pack("[{s:i, s:i}]", "b", 1, "a", 2);
    struct buf b;
    buf_init(&b, 1024);
    cr_assert_eq(json_text_append(&b, v), BUF_OK);
    cr_expect_str_eq(buf_str(&b), "[{\"b\":1,\"a\":2}]");
    buf_free(&b);
    json_decref(v);
}

Test(canon, append_respects_buffer_limit)
{
    json_t *v = parse("{\"name\": \"a fairly long string value here\"}");
    struct buf b;
    buf_init(&b, 10);
    cr_expect_eq(json_canon_append(&b, v), BUF_TOO_BIG);
    cr_expect(b.len <= 10);
    buf_free(&b);
    json_decref(v);
}

Test(canon, round_trip_through_jansson)
{
    json_t *orig = json_object();
    json_object_set_new(orig, "confidence", json_real(0.93));
    json_object_set_new(orig, "whole", json_real(1.0));
    json_object_set_new(orig, "huge", json_real(1e300));
    json_object_set_new(orig, "neg", json_real(-0.5));
    json_object_set_new(orig, "third", json_real(1.0 / 3.0));
    json_object_set_new(orig, "sum", json_real(0.1 + 0.2));
    json_object_set_new(orig, "n", json_integer(7));
    json_object_set_new(orig, "reals", json_pack("[fff]", 0.1, 2.0, 1e-9));
    json_object_set_new(orig, "s", json_string("line\nbreak \"q\" \xc3\xa9 \x01"));

    char *text = json_canon_dumps(orig);
    cr_assert_not_null(text);
    json_error_t jerr;
    json_t *back = json_loads(text, 0, &jerr);
    cr_assert_not_null(back, "canonical text does not parse: %s (%s)", jerr.text, text);
    cr_expect(json_is_real(json_object_get(back, "whole")), "1.0 must read back as a real");
    cr_expect(json_is_integer(json_object_get(back, "n")));
    cr_expect(json_real_value(json_object_get(back, "third")) == 1.0 / 3.0);
    cr_expect(json_equal(orig, back), "values differ after a round trip: %s", text);

    char h1[HASH_STR_LEN], h2[HASH_STR_LEN];
    cr_assert_eq(canon_hash(orig, h1), 0);
    cr_assert_eq(canon_hash(back, h2), 0);
    cr_expect_str_eq(h1, h2);

    char *again = json_canon_dumps(back);
    cr_assert_not_null(again);
    cr_expect_str_eq(text, again);
    free(again);
    free(text);
    json_decref(back);
    json_decref(orig);
}

Test(canon, round_trip_through_jansson_dumps)
{
    /* A value written by jansson itself (as SQLite holds it, %.17g) and read
     * back hashes like the original. */
    json_t *orig = json_pack("{s:f, s:f, s:f}", "a", 0.93, "b", 0.1 + 0.2, "c", 1e300);
    char *text = json_dumps(orig, JSON_COMPACT | JSON_REAL_PRECISION(17));
    cr_assert_not_null(text);
    json_t *back = json_loads(text, 0, NULL);
    cr_assert_not_null(back);
    char h1[HASH_STR_LEN], h2[HASH_STR_LEN];
    cr_assert_eq(canon_hash(orig, h1), 0);
    cr_assert_eq(canon_hash(back, h2), 0);
    cr_expect_str_eq(h1, h2, "from %s", text);
    free(text);
    json_decref(back);
    json_decref(orig);
}

/* canon_entity_hash / canon_relationship_hash (from the properties' text)
 * give what canon_hash gives for the built record, for awkward strings,
 * nested and empty properties and large versions, with one scratch buffer. */
Test(canon, record_hash_from_text_matches_record)
{
    static const char *const props_texts[] = {
        "{}",
        "{\"weight\": 0.7}",
        "{\"b\": [1, 2.5, {\"z\": null, \"a\": true}], \"a\": \"x\\\"y\\\\z\\n\\u0001\"}",
        "{\"name\": \"\\u00e9t\\u00e9\", \"n\": -9007199254740993}",
    };
    static const char *const ids[] = {"e1", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "a.b:c-d_e",
                                      "q\"uote\\back"};
    struct buf scratch;
    buf_init(&scratch, (size_t)1 << 20);
    for (size_t i = 0; i < sizeof props_texts / sizeof props_texts[0]; i++) {
        json_t *props = parse(props_texts[i]);
        char *text = json_canon_dumps(props);
        cr_assert_not_null(text);
        const char *id = ids[i % 4];
        int64_t version = i == 3 ? INT64_MAX : (int64_t)i + 1;
        struct canon_record cr = {.id = id,
                                  .type = "WORKS_AT",
                                  .source = ids[(i + 1) % 4],
                                  .target = ids[(i + 2) % 4],
                                  .properties = text,
                                  .properties_len = strlen(text),
                                  .version = version};
        char want[HASH_STR_LEN], got[HASH_STR_LEN];

        json_t *rec = canon_entity_record(id, "WORKS_AT", props, version);
        cr_assert_eq(canon_hash(rec, want), 0);
        cr_assert_eq(canon_entity_hash(&scratch, &cr, got), 0);
        cr_expect_str_eq(got, want, "entity %zu", i);
        json_decref(rec);

        rec = canon_relationship_record(id, "WORKS_AT", cr.source, cr.target, props, version);
        cr_assert_eq(canon_hash(rec, want), 0);
        cr_assert_eq(canon_relationship_hash(&scratch, &cr, got), 0);
        cr_expect_str_eq(got, want, "relationship %zu", i);
        json_decref(rec);
        free(text);
        json_decref(props);
    }
    buf_free(&scratch);
}

/* The hash parts: bits 63..34 and 33..4 of the hash; nothing from a string
 * that is not 16 lowercase hex digits. */
Test(canon, hash_parts)
{
    int64_t h1 = -1, h2 = -1;
    cr_assert_eq(canon_hash_parts("0123456789abcdef", &h1, &h2), 0);
    cr_expect_eq(h1, 4772185);
    cr_expect_eq(h2, 949664990);
    cr_assert_eq(canon_hash_parts("ffffffffffffffff", &h1, &h2), 0);
    cr_expect_eq(h1, (1 << 30) - 1);
    cr_expect_eq(h2, (1 << 30) - 1);
    cr_assert_eq(canon_hash_parts("0000000000000000", &h1, &h2), 0);
    cr_expect_eq(h1, 0);
    cr_expect_eq(h2, 0);
    const char *bad[] = {"",
                         "0123456789abcde",
                         "0123456789abcdef0",
                         "0123456789ABCDEF",
                         "0123456789abcdeg",
                         "-123456789abcdef",
                         NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(canon_hash_parts(bad[i], &h1, &h2), -1, "%s", bad[i] ? bad[i] : "NULL");
    /* A map from a damaged hash has no parts (a repair writes it as read). */
    json_t *props = json_object();
    json_t *m = canon_neo4j_map("e1", props, 1, "damaged");
    cr_assert_not_null(m);
    cr_expect_null(json_object_get(m, "_h1"));
    cr_expect_null(json_object_get(m, "_h2"));
    json_decref(m);
    json_decref(props);
}

/* The id part: the polynomial over the id's characters (each its place in
 * CANON_ID_ALPHABET, from 1), mod 2^30; none for an id outside the rule. */
Test(canon, id_part)
{
    cr_expect_eq(canon_id_part("-"), 1);
    cr_expect_eq(canon_id_part("z"), 66);
    cr_expect_eq(canon_id_part("ab"), 41 * 131 + 42);
    int64_t k = 0;
    for (const char *p = "e00000123"; *p; p++)
        k = (k * 131 + (strchr(CANON_ID_ALPHABET, *p) - CANON_ID_ALPHABET + 1)) % (1 << 30);
    cr_expect_eq(canon_id_part("e00000123"), k);
    char longest[129];
    memset(longest, 'z', 128);
    longest[128] = '\0';
    int64_t big = canon_id_part(longest);
    cr_expect(big >= 0 && big < (1 << 30), "%lld", (long long)big);
    cr_expect_neq(canon_id_part("e00000123"), canon_id_part("e00000132"));
    cr_expect_eq(canon_id_part(""), -1);
    cr_expect_eq(canon_id_part(NULL), -1);
    cr_expect_eq(canon_id_part("a/b"), -1);
    cr_expect_eq(canon_id_part("caf\xc3\xa9"), -1);
    json_t *props = json_object();
    json_t *m = canon_neo4j_entity_map("ab", props, 1, "0123456789abcdef");
    cr_assert_not_null(m);
    cr_expect_eq(json_integer_value(json_object_get(m, "_hid")), 41 * 131 + 42);
    json_t *mirrored = canon_mirrored(m);
    cr_expect_eq(json_object_size(mirrored), 0);
    json_decref(mirrored);
    json_decref(m);
    m = canon_neo4j_map("ab", props, 1, "0123456789abcdef");
    cr_expect_null(json_object_get(m, "_hid"), "a relationship has none");
    json_decref(m);
    json_decref(props);
}

/* The Neo4j map shares the property values and leaves the input alone. */
Test(canon, neo4j_map_leaves_properties_alone)
{
    json_t *props = parse("{\"tags\": [\"a\"], \"w\": 1.5}");
    json_t *m = canon_neo4j_map("r1", props, 2, "0123456789abcdef");
    cr_assert_not_null(m);
    cr_expect_eq(json_object_size(props), 2);
    cr_expect_eq(json_object_size(m), 7);
    cr_expect_str_eq(json_string_value(json_object_get(m, "id")), "r1");
    cr_expect_eq(json_integer_value(json_object_get(m, "_v")), 2);
    cr_expect_str_eq(json_string_value(json_object_get(m, "_h")), "0123456789abcdef");
    cr_expect_eq(json_integer_value(json_object_get(m, "_h1")), 4772185);
    cr_expect_eq(json_integer_value(json_object_get(m, "_h2")), 949664990);
    json_t *mirrored = canon_mirrored(m);
    cr_expect(json_equal(mirrored, props), "the map less id, _v, _h, _h1, _h2 is the properties");
    json_decref(mirrored);
    cr_expect(json_equal(json_object_get(m, "tags"), json_object_get(props, "tags")));
    json_decref(m);
    json_decref(props);
}

/* What intents and Neo4j requests are written with: parses back to an equal value. */
Test(canon, json_text_dumps_round_trips)
{
    json_t *v =
        json_pack("[{s:s, s:{s:[{s:s, s:f, s:I, s:b, s:n}]}}]", "statement",
                  "UNWIND $rows AS r CREATE (n:Entity:`Person`) SET n = r", "parameters", "rows",
                  "id", "é\"\\x", "w", 0.87, "big", (json_int_t)9007199254740993LL, "t", 1, "none");
    cr_assert_not_null(v);
    char *text = json_text_dumps(v);
    cr_assert_not_null(text);
    cr_expect(strstr(text, "0.87") && !strstr(text, "0.8699"), "reals in shortest form: %s", text);
    json_t *back = json_loads(text, 0, NULL);
    cr_assert_not_null(back, "not JSON: %s", text);
    cr_expect(json_equal(v, back), "%s does not parse back to the same value", text);
    json_decref(back);
    free(text);
    json_decref(v);
}
