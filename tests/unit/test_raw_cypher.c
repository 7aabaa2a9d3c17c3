/*
 * A client's Cypher (stores/neo4j/raw.c): the lexical check that keeps it off
 * the gateway's own labels and properties, and the mark that keeps such a
 * statement from being merged with another or joined to the guard.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "stores/neo4j/cypher.h"

static int check(const char *text, const char *params)
{
    json_t *p = params ? json_loads(params, 0, NULL) : NULL;
    if (params)
        cr_assert_not_null(p, "test JSON %s", params);
    struct bs_error err;
    bs_error_clear(&err);
    int rc = cypher_raw_check(text, p, &err);
    if (rc != 0) {
        cr_expect_eq(err.code, BS_INVALID_REQUEST, "%s", text);
        cr_expect(err.message[0] != '\0');
    }
    json_decref(p);
    return rc;
}

Test(raw_cypher, ordinary_statements_pass)
{
    static const char *const ok[] = {
        "MATCH (d:Entity {id: $doc}) SET d.stage = $s",
        "CREATE (n:Entity)",
        "MATCH (n) RETURN n._value, n.v_, n.x_v, n.__v",
        "RETURN '_vx' AS a, \"h\" AS b, `_value` AS c",
        "CREATE (d:Doc {v: $_v, h: $_h})", /* parameter names are not properties */
        "// _v in a comment is no property\nRETURN 1",
        "/* n._h */ RETURN 1",
        "MATCH (n:Entity) SET n._V = 1", /* another key: names are case-sensitive */
        "MATCH (n) RETURN n._h3, n._h12, n._v1, n._h0, n._hi, n._hidx", /* not the parts */
        "RETURN 'it''s', \"a \\\"quoted\\\" _v\"",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        cr_expect_eq(check(ok[i], NULL), 0, "%s must pass", ok[i]);
    cr_expect_eq(check("MATCH (n {id: $id}) SET n += $p", "{\"id\": \"x\", \"p\": {\"a\": 1}}"), 0);
}

Test(raw_cypher, the_gateways_own_is_refused)
{
    static const char *const bad[] = {
        "MATCH (w:_BistoreWatermark) DETACH DELETE w",
        "MATCH (w:`_BistoreWatermark`) SET w.seq = 0",
        "MATCH (w) WHERE 'x' = '_bistore' RETURN w", /* any mention, any case */
        "// _Bistore\nMATCH (n) RETURN n",           /* even in a comment */
        "MATCH (n:Entity) SET n._v = 1",
        "MATCH (n:Entity) SET n._h = 'x'",
        "MATCH (n:Entity) SET n.`_v` = 1",
        "MATCH (n:Entity) REMOVE n. _h",
        "MATCH (n:Entity) SET n['_v'] = 1",
        "MATCH (n:Entity) SET n[\"_h\"] = 1",
        "MATCH (n:Entity) SET n._h1 = 0", /* the hash parts, which range checksums sum */
        "MATCH (n:Entity) SET n.`_h2` = 0",
        "MATCH (n:Entity) SET n['_h1'] = 0",
        "MATCH (n:Entity) SET n._hid = 0", /* the id part */
        "MATCH (n:Entity) RETURN n {._v}",
        "MATCH (n:Entity) SET n.`\\u005fv` = 1",      /* an escape in a quoted name */
        "MATCH (n:Entity) WITH n, 1 AS _v RETURN _v", /* a variable named _v: refused too */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(check(bad[i], NULL), -1, "%s must be refused", bad[i]);
}

Test(raw_cypher, parameters_are_checked)
{
    const char *text = "MATCH (n:Entity {id: $id}) SET n += $p";
    cr_expect_eq(check(text, "{\"id\": \"x\", \"p\": {\"_v\": 1}}"), -1);
    cr_expect_eq(check(text, "{\"id\": \"x\", \"p\": {\"_h\": \"h\"}}"), -1);
    cr_expect_eq(check(text, "{\"id\": \"x\", \"p\": {\"_h1\": 1}}"), -1);
    cr_expect_eq(check("MATCH (n) SET n[$k] = 1", "{\"k\": \"_h2\"}"), -1);
    cr_expect_eq(check(text, "{\"id\": \"x\", \"p\": [{\"deep\": {\"_v\": 1}}]}"), -1);
    cr_expect_eq(check("MATCH (n) SET n:$($l)", "{\"l\": \"_BistoreWatermark\"}"), -1);
    cr_expect_eq(check("MATCH (n) SET n[$k] = 1", "{\"k\": \"_v\"}"), -1);
    cr_expect_eq(check(text, "{\"id\": \"x\", \"p\": {\"v\": \"_value\"}}"), 0);
}

Test(raw_cypher, a_client_statement_is_never_merged_nor_joined)
{
    struct cypher_batch b;
    cr_assert_eq(cypher_batch_init(&b), 0);
    /* the gateway's own create template, word for word, with only $rows */
    const char *text = "UNWIND $rows AS r CREATE (n:Entity:`P`) SET n = r RETURN count(*)";
    cr_assert_eq(cypher_add_client_statement(&b, text, json_pack("{s:[{s:s}]}", "rows", "id", "a")),
                 0);
    cr_assert_eq(cypher_add_client_statement(&b, text, json_pack("{s:[{s:s}]}", "rows", "id", "b")),
                 0);
    cr_assert_eq(cypher_batch_count(&b), 2);
    cr_expect(cypher_is_client_statement(json_array_get(b.statements, 0)));
    cr_expect_eq(b.expected[0], CYPHER_ANY_COUNT);

    json_t *out = json_array();
    bool merged = true;
    cr_assert_eq(cypher_add_watermark_guard(out, "s", 0, 0, 1), 0);
    for (size_t i = 0; i < 2; i++) {
        cr_assert_eq(cypher_append_merged(out, 1, json_array_get(b.statements, i), &merged), 0);
        cr_expect_not(merged, "a client's statement must not be merged");
    }
    cr_expect_eq(json_array_size(out), 3);
    json_t *two = json_array();
    cr_assert_eq(cypher_add_watermark_guard(two, "s", 0, 0, 1), 0);
    json_array_append(two, json_array_get(b.statements, 0));
    cr_expect_eq(cypher_join_guard(two), GUARD_APART, "nor joined to the guard");
    cr_expect_eq(json_array_size(two), 2);
    json_decref(two);
    json_decref(out);

    /* the gateway's own statements still merge */
    struct cypher_batch g;
    cr_assert_eq(cypher_batch_init(&g), 0);
    cr_assert_eq(cypher_create_entity(&g, "P", json_pack("{s:s}", "id", "c")), 0);
    cr_assert_eq(cypher_batch_finish(&g), 0);
    out = json_array();
    cr_assert_eq(cypher_append_merged(out, 0, json_array_get(g.statements, 0), &merged), 0);
    cr_assert_eq(cypher_append_merged(out, 0, json_array_get(g.statements, 0), &merged), 0);
    cr_expect(merged);
    json_decref(out);
    cypher_batch_free(&g);
    cypher_batch_free(&b);
}

Test(raw_cypher, rows_as_objects)
{
    json_t *result = json_loads("{\"columns\": [\"a\", \"b\"],"
                                " \"data\": [{\"row\": [1, \"x\"]}, {\"row\": [2, null]}]}",
                                0, NULL);
    cr_assert_not_null(result);
    json_t *rows = cypher_rows_as_objects(result);
    char *text = json_dumps(rows, JSON_COMPACT | JSON_SORT_KEYS);
    cr_expect_str_eq(text, "[{\"a\":1,\"b\":\"x\"},{\"a\":2,\"b\":null}]");
    free(text);
    json_decref(rows);
    json_decref(result);
}
