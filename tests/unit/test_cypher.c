/*
 * Cypher generation (stores/neo4j/cypher.h): consecutive operations of one kind
 * and one label share one UNWIND statement, labels are backquoted and come
 * only from validated names, values travel as parameters; the relationship
 * constraint; the guarded watermark (lock before check, DESIGN.md 4).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "stores/neo4j/cypher.h"
#include "stores/neo4j/neo4j.h"

static const char *stmt_text(const struct cypher_batch *b, size_t i)
{
    json_t *s = json_array_get(b->statements, i);
    cr_assert_not_null(s, "no statement %zu", i);
    const char *t = json_string_value(json_object_get(s, "statement"));
    cr_assert_not_null(t, "statement %zu has no text", i);
    return t;
}

static json_t *stmt_rows(const struct cypher_batch *b, size_t i)
{
    json_t *s = json_array_get(b->statements, i);
    json_t *rows = json_object_get(json_object_get(s, "parameters"), "rows");
    cr_assert(json_is_array(rows), "statement %zu has no parameters.rows array", i);
    return rows;
}

static json_t *node(const char *id, const char *name)
{
    return json_pack("{s:s, s:i, s:s, s:s}", "id", id, "_v", 1, "_h", "0123456789abcdef", "name",
                     name);
}

static void add_person(struct cypher_batch *b, const char *type, const char *id)
{
    cr_assert_eq(cypher_create_entity(b, type, node(id, id)), 0);
}

Test(cypher, groups_consecutive_creates_by_label)
{
    struct cypher_batch b;
    cr_assert_eq(cypher_batch_init(&b), 0);
    add_person(&b, "Person", "p1");
    add_person(&b, "Person", "p2");
    add_person(&b, "Person", "p3");
    add_person(&b, "Org", "o1");
    add_person(&b, "Person", "p4");
    add_person(&b, "Person", "p5");
    cr_assert_eq(cypher_batch_finish(&b), 0);

    cr_assert_eq(cypher_batch_count(&b), 3, "3 groups, got %zu statements", cypher_batch_count(&b));
    cr_expect_eq(b.expected[0], 3);
    cr_expect_eq(b.expected[1], 1);
    cr_expect_eq(b.expected[2], 2);

    static const char *const labels[] = {"Person", "Org", "Person"};
    for (size_t i = 0; i < 3; i++) {
        const char *t = stmt_text(&b, i);
        char quoted[80];
        snprintf(quoted, sizeof quoted, ":`%s`", labels[i]);
        cr_expect(strstr(t, quoted) != NULL, "statement %zu lacks %s: %s", i, quoted, t);
        cr_expect(strstr(t, "UNWIND $rows") != NULL, "statement %zu: %s", i, t);
        cr_expect(strstr(t, "Entity") != NULL, "every node has the Entity label: %s", t);
        cr_expect(strstr(t, "CREATE") != NULL, "%s", t);
        cr_expect_eq(json_array_size(stmt_rows(&b, i)), b.expected[i]);
    }
    cr_expect(strstr(stmt_text(&b, 1), "Person") == NULL, "the Org statement names only Org");

    /* Rows carry the nodes, in order, untouched. */
    json_t *rows0 = stmt_rows(&b, 0);
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(rows0, 0), "id")), "p1");
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(rows0, 2), "id")), "p3");
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(rows0, 1), "name")), "p2");
    cr_expect_eq(json_integer_value(json_object_get(json_array_get(rows0, 1), "_v")), 1);
    json_t *rows1 = stmt_rows(&b, 1);
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(rows1, 0), "id")), "o1");
    json_t *rows2 = stmt_rows(&b, 2);
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(rows2, 0), "id")), "p4");
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(rows2, 1), "id")), "p5");
    cypher_batch_free(&b);
}

Test(cypher, values_never_in_text)
{
    struct cypher_batch b;
    cr_assert_eq(cypher_batch_init(&b), 0);
    json_t *n = json_pack("{s:s, s:s}", "id", "evil_1", "name", "x'}) DETACH DELETE n //");
    cr_assert_eq(cypher_create_entity(&b, "Person", n), 0);
    cr_assert_eq(cypher_update_entity(&b, "evil_2", json_pack("{s:s}", "q", "secret_value")), 0);
    cr_assert_eq(cypher_delete_entity(&b, "evil_3"), 0);
    cr_assert_eq(cypher_batch_finish(&b), 0);
    cr_assert_eq(cypher_batch_count(&b), 3);
    for (size_t i = 0; i < 3; i++) {
        const char *t = stmt_text(&b, i);
        cr_expect(strstr(t, "evil") == NULL, "an id is in the text: %s", t);
        cr_expect(strstr(t, "DETACH DELETE n //") == NULL, "a value is in the text: %s", t);
        cr_expect(strstr(t, "secret_value") == NULL, "%s", t);
        cr_expect(strstr(t, "$rows") != NULL, "%s", t);
    }
    cypher_batch_free(&b);
}

Test(cypher, groups_by_kind)
{
    struct cypher_batch b;
    cr_assert_eq(cypher_batch_init(&b), 0);
    add_person(&b, "Person", "a");
    cr_assert_eq(cypher_update_entity(&b, "a", node("a", "A")), 0);
    cr_assert_eq(cypher_update_entity(&b, "b", node("b", "B")), 0);
    cr_assert_eq(cypher_delete_entity(&b, "c"), 0);
    cr_assert_eq(cypher_delete_entity(&b, "d"), 0);
    cr_assert_eq(cypher_delete_entity(&b, "e"), 0);
    cr_assert_eq(cypher_create_relationship(&b, "WORKS_AT", "a", "b",
                                            json_pack("{s:s, s:i}", "id", "r1", "_v", 1)),
                 0);
    cr_assert_eq(cypher_create_relationship(&b, "WORKS_AT", "b", "a",
                                            json_pack("{s:s, s:i}", "id", "r2", "_v", 1)),
                 0);
    cr_assert_eq(cypher_create_relationship(&b, "KNOWS", "a", "b",
                                            json_pack("{s:s, s:i}", "id", "r3", "_v", 1)),
                 0);
    cr_assert_eq(cypher_delete_relationship(&b, "KNOWS", "a", "r3"), 0);
    cr_assert_eq(cypher_batch_finish(&b), 0);

    cr_assert_eq(cypher_batch_count(&b), 6);
    static const size_t want[] = {1, 2, 3, 2, 1, 1};
    for (size_t i = 0; i < 6; i++) {
        cr_expect_eq(b.expected[i], want[i], "statement %zu: %zu rows, expected %zu", i,
                     b.expected[i], want[i]);
        cr_expect_eq(json_array_size(stmt_rows(&b, i)), want[i]);
        cr_expect(strstr(stmt_text(&b, i), "UNWIND $rows") != NULL);
    }
    cr_expect(strstr(stmt_text(&b, 2), "DETACH DELETE") != NULL, "%s", stmt_text(&b, 2));
    cr_expect(strstr(stmt_text(&b, 3), ":`WORKS_AT`") != NULL, "%s", stmt_text(&b, 3));
    cr_expect(strstr(stmt_text(&b, 4), ":`KNOWS`") != NULL, "%s", stmt_text(&b, 4));
    cr_expect(strstr(stmt_text(&b, 5), ":`KNOWS`") != NULL, "%s", stmt_text(&b, 5));
    /* Relationship statements anchor on the indexed source entity. */
    cr_expect(strstr(stmt_text(&b, 3), "(a:Entity {id: r.source})") != NULL, "%s",
              stmt_text(&b, 3));
    cr_expect(strstr(stmt_text(&b, 5), ":Entity {id: r.source}") != NULL, "%s", stmt_text(&b, 5));

    json_t *r = json_array_get(stmt_rows(&b, 3), 1);
    cr_expect_str_eq(json_string_value(json_object_get(r, "source")), "b");
    cr_expect_str_eq(json_string_value(json_object_get(r, "target")), "a");
    json_t *upd = json_array_get(stmt_rows(&b, 1), 0);
    cr_expect_str_eq(json_string_value(json_object_get(upd, "id")), "a");
    json_t *del = json_array_get(stmt_rows(&b, 5), 0);
    cr_expect_str_eq(json_string_value(json_object_get(del, "id")), "r3");
    cr_expect_str_eq(json_string_value(json_object_get(del, "source")), "a");
    cypher_batch_free(&b);
}

Test(cypher, every_statement_returns_count)
{
    struct cypher_batch b;
    cr_assert_eq(cypher_batch_init(&b), 0);
    add_person(&b, "Person", "a");
    cr_assert_eq(cypher_update_entity(&b, "a", node("a", "A")), 0);
    cr_assert_eq(cypher_delete_entity(&b, "c"), 0);
    cr_assert_eq(cypher_create_relationship(&b, "K", "a", "b", json_pack("{s:s}", "id", "r")), 0);
    cr_assert_eq(cypher_delete_relationship(&b, "K", "a", "r"), 0);
    cr_assert_eq(cypher_batch_finish(&b), 0);
    cr_assert_eq(cypher_batch_count(&b), 5);
    for (size_t i = 0; i < 5; i++)
        cr_expect(strstr(stmt_text(&b, i), "count(*)") != NULL, "%s", stmt_text(&b, i));
    cypher_batch_free(&b);
}

Test(cypher, empty_batch)
{
    struct cypher_batch b;
    cr_assert_eq(cypher_batch_init(&b), 0);
    cr_assert_eq(cypher_batch_finish(&b), 0);
    cr_expect_eq(cypher_batch_count(&b), 0);
    cypher_batch_free(&b);
}

Test(cypher, many_groups_grow_expected)
{
    /* Alternating labels: one statement each, past the first allocation. */
    struct cypher_batch b;
    cr_assert_eq(cypher_batch_init(&b), 0);
    char id[16];
    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof id, "e%d", i);
        add_person(&b, i % 2 ? "Org" : "Person", id);
    }
    cr_assert_eq(cypher_batch_finish(&b), 0);
    cr_assert_eq(cypher_batch_count(&b), 50);
    for (size_t i = 0; i < 50; i++)
        cr_expect_eq(b.expected[i], 1);
    cypher_batch_free(&b);
}

Test(cypher, label_case_makes_a_new_group)
{
    struct cypher_batch b;
    cr_assert_eq(cypher_batch_init(&b), 0);
    add_person(&b, "Person", "a");
    add_person(&b, "person", "b");
    cr_assert_eq(cypher_batch_finish(&b), 0);
    cr_expect_eq(cypher_batch_count(&b), 2);
    cypher_batch_free(&b);
}

/* ---- schema ---- */

Test(cypher, relationship_constraint)
{
    char out[512];
    cr_assert_eq(cypher_relationship_constraint("WORKS_AT", out, sizeof out), 0);
    cr_expect(strncmp(out, "CREATE CONSTRAINT ", 18) == 0, "%s", out);
    cr_expect(strstr(out, "IF NOT EXISTS") != NULL, "%s", out);
    cr_expect(strstr(out, "[r:`WORKS_AT`]") != NULL, "%s", out);
    cr_expect(strstr(out, "REQUIRE r.id IS UNIQUE") != NULL, "%s", out);

    char other[512];
    cr_assert_eq(cypher_relationship_constraint("KNOWS", other, sizeof other), 0);
    /* Constraint names differ per type (IF NOT EXISTS would skip a second one
     * with the same name). */
    const char *n1 = strstr(out, "CONSTRAINT ") + 11;
    const char *n2 = strstr(other, "CONSTRAINT ") + 11;
    size_t l1 = strcspn(n1, " "), l2 = strcspn(n2, " ");
    cr_expect(l1 != l2 || strncmp(n1, n2, l1) != 0, "same constraint name for two types");
}

Test(cypher, relationship_constraint_refuses_invalid_type)
{
    static const char *const bad[] = {"",         "1X",      "_X", "A-B", "A`] DETACH DELETE r //",
                                      "WORKS AT", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[512] = "untouched";
        cr_expect_eq(cypher_relationship_constraint(bad[i], out, sizeof out), -1,
                     "'%s' must be refused", bad[i]);
    }
}

Test(cypher, relationship_constraint_small_buffer)
{
    char out[20];
    cr_expect_eq(cypher_relationship_constraint("WORKS_AT", out, sizeof out), -1,
                 "a truncated statement must not be reported as written");
}

Test(cypher, entity_constraint)
{
    const char *s = cypher_entity_constraint();
    cr_assert_not_null(s);
    cr_expect(strstr(s, "CREATE CONSTRAINT") != NULL);
    cr_expect(strstr(s, "IF NOT EXISTS") != NULL);
    cr_expect(strstr(s, ":Entity") != NULL);
    cr_expect(strstr(s, "n.id IS UNIQUE") != NULL);
}

/* ---- watermark ---- */

Test(cypher, watermark_guard_locks_before_check)
{
    json_t *stmts = json_array();
    cr_assert_eq(cypher_add_watermark_guard(stmts, "store-1", 3, 41, 42), 0);
    cr_assert_eq(json_array_size(stmts), 1);
    json_t *s = json_array_get(stmts, 0);
    const char *t = json_string_value(json_object_get(s, "statement"));
    cr_assert_not_null(t);
    const char *lock = strstr(t, "SET w._lock");
    const char *check = strstr(t, "CASE");
    const char *set_seq = strstr(t, "SET w.seq = $seq");
    cr_assert_not_null(lock, "the guard must take the lock: %s", t);
    cr_assert_not_null(check, "the guard must check the watermark: %s", t);
    cr_assert_not_null(set_seq, "the guard must advance the watermark: %s", t);
    cr_expect_lt(lock, check, "the lock (SET w._lock) must come BEFORE the CASE check: %s", t);
    cr_expect_lt(check, set_seq, "the check must come before the advance: %s", t);
    cr_expect(strstr(t, "MATCH (w:" WATERMARK_LABEL) != NULL, "%s", t);
    cr_expect(strstr(t, "w.seq = $prev") != NULL, "%s", t);
    cr_expect(strstr(t, "coalesce(w.epoch, 0) = $epoch") != NULL, "the epoch fences: %s", t);
    cr_expect(strstr(t, "1/0") != NULL, "a mismatch must fail the transaction: %s", t);
    cr_expect(strstr(t, "$store") != NULL, "%s", t);
    cr_expect(strstr(t, "store-1") == NULL, "the store id is a parameter, not text: %s", t);

    json_t *p = json_object_get(s, "parameters");
    cr_assert(json_is_object(p));
    cr_expect_str_eq(json_string_value(json_object_get(p, "store")), "store-1");
    cr_assert(json_is_integer(json_object_get(p, "prev")));
    cr_assert(json_is_integer(json_object_get(p, "seq")));
    cr_expect_eq(json_integer_value(json_object_get(p, "prev")), 41);
    cr_expect_eq(json_integer_value(json_object_get(p, "seq")), 42);
    cr_expect_eq(json_integer_value(json_object_get(p, "epoch")), 3);
    json_decref(stmts);
}

Test(cypher, watermark_guard_large_seq)
{
    json_t *stmts = json_array();
    cr_assert_eq(cypher_add_watermark_guard(stmts, "s", 0, 9007199254740993LL, 9007199254740994LL),
                 0);
    json_t *p = json_object_get(json_array_get(stmts, 0), "parameters");
    cr_expect_eq(json_integer_value(json_object_get(p, "prev")), 9007199254740993LL);
    cr_expect_eq(json_integer_value(json_object_get(p, "seq")), 9007199254740994LL);
    json_decref(stmts);
}

Test(cypher, watermark_guard_appends)
{
    struct cypher_batch b;
    cr_assert_eq(cypher_batch_init(&b), 0);
    add_person(&b, "Person", "a");
    cr_assert_eq(cypher_batch_finish(&b), 0);
    cr_assert_eq(cypher_add_watermark_guard(b.statements, "s", 0, 0, 1), 0);
    cr_expect_eq(cypher_batch_count(&b), 2);
    cr_expect(strstr(stmt_text(&b, 1), "_lock") != NULL);
    cypher_batch_free(&b);
}

Test(cypher, watermark_ensure)
{
    json_t *stmts = json_array();
    cr_assert_eq(cypher_add_watermark_ensure(stmts, "store-9"), 0);
    json_t *s = json_array_get(stmts, 0);
    const char *t = json_string_value(json_object_get(s, "statement"));
    cr_assert_not_null(t);
    cr_expect(strstr(t, "MERGE") != NULL, "%s", t);
    cr_expect(strstr(t, WATERMARK_LABEL) != NULL, "%s", t);
    cr_expect(strstr(t, "seq = 0") != NULL, "%s", t);
    cr_expect(strstr(t, "store-9") == NULL, "%s", t);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(s, "parameters"), "store")),
                     "store-9");
    json_decref(stmts);
}

/* Two members' batches (A: Person p1, p2; B: Person p3 then Org o1) merged
 * into one list behind a guard at index 0. */
Test(cypher, append_merged_joins_consecutive_templates_only)
{
    struct cypher_batch a, b;
    cr_assert_eq(cypher_batch_init(&a), 0);
    cr_assert_eq(cypher_batch_init(&b), 0);
    add_person(&a, "Person", "p1");
    add_person(&a, "Person", "p2");
    add_person(&b, "Person", "p3");
    add_person(&b, "Org", "o1");
    cr_assert_eq(cypher_batch_finish(&a), 0);
    cr_assert_eq(cypher_batch_finish(&b), 0);
    json_t *out = json_array();
    cr_assert_eq(cypher_add_watermark_guard(out, "s", 0, 0, 2), 0);
    bool merged[3];
    cr_assert_eq(cypher_append_merged(out, 1, json_array_get(a.statements, 0), &merged[0]), 0);
    cr_assert_eq(cypher_append_merged(out, 1, json_array_get(b.statements, 0), &merged[1]), 0);
    cr_assert_eq(cypher_append_merged(out, 1, json_array_get(b.statements, 1), &merged[2]), 0);
    cr_expect(!merged[0] && merged[1] && !merged[2]);
    cr_assert_eq(json_array_size(out), 3, "guard, Person x3, Org: got %zu", json_array_size(out));
    json_t *rows = json_object_get(json_object_get(json_array_get(out, 1), "parameters"), "rows");
    cr_assert_eq(json_array_size(rows), 3);
    static const char *const ids[] = {"p1", "p2", "p3"};
    for (size_t i = 0; i < 3; i++)
        cr_expect_str_eq(json_string_value(json_object_get(json_array_get(rows, i), "id")), ids[i]);
    /* the members' own statements are untouched */
    cr_expect_eq(json_array_size(stmt_rows(&a, 0)), 2);
    cr_expect_eq(json_array_size(stmt_rows(&b, 0)), 1);
    json_decref(out);
    cypher_batch_free(&a);
    cypher_batch_free(&b);
}

Test(cypher, append_merged_never_merges_into_the_guard_or_other_statements)
{
    json_t *out = json_array();
    cr_assert_eq(cypher_add_watermark_guard(out, "s", 0, 0, 1), 0);
    struct cypher_batch a;
    cr_assert_eq(cypher_batch_init(&a), 0);
    cr_assert_eq(cypher_add_raw(&a, "MATCH (n) RETURN n", json_pack("{s:[]}", "rows")), 0);
    add_person(&a, "Person", "p1");
    cr_assert_eq(cypher_add_raw(&a, "MATCH (n) RETURN n", json_pack("{s:[], s:i}", "rows", "x", 1)),
                 0);
    cr_assert_eq(cypher_add_raw(&a, "MATCH (n) RETURN n", json_pack("{s:[], s:i}", "rows", "x", 1)),
                 0);
    cr_assert_eq(cypher_batch_finish(&a), 0);
    bool merged;
    for (size_t i = 0; i < cypher_batch_count(&a); i++) {
        cr_assert_eq(cypher_append_merged(out, 1, json_array_get(a.statements, i), &merged), 0);
        cr_expect(!merged, "statement %zu was merged", i);
    }
    cr_expect_eq(json_array_size(out), 5);
    /* floor: the first data statement is never merged into index 0 */
    json_t *again = json_array();
    cr_assert_eq(cypher_append_merged(again, 1, json_array_get(a.statements, 0), &merged), 0);
    cr_assert_eq(cypher_append_merged(again, 1, json_array_get(a.statements, 0), &merged), 0);
    cr_expect(!merged);
    cr_expect_eq(json_array_size(again), 2);
    json_decref(again);
    json_decref(out);
    cypher_batch_free(&a);
}

Test(cypher, join_guard_makes_one_statement_guard_first)
{
    struct cypher_batch b;
    cr_assert_eq(cypher_batch_init(&b), 0);
    add_person(&b, "Person", "p1");
    add_person(&b, "Person", "p2");
    cr_assert_eq(cypher_batch_finish(&b), 0);
    json_t *stmts = json_array();
    cr_assert_eq(cypher_add_watermark_guard(stmts, "store-1", 0, 6, 7), 0);
    cr_assert_eq(json_array_extend(stmts, b.statements), 0);
    cr_assert_eq(cypher_join_guard(stmts), 1);
    cr_assert_eq(json_array_size(stmts), 1);
    json_t *one = json_array_get(stmts, 0);
    const char *text = json_string_value(json_object_get(one, "statement"));
    const char *lock = strstr(text, "SET w._lock = true");
    const char *check = strstr(
        text, "CASE WHEN w.seq = $prev AND coalesce(w.epoch, 0) = $epoch THEN 1 ELSE 1/0 END");
    const char *data = strstr(text, "WITH w UNWIND $rows AS r CREATE (n:Entity:`Person`)");
    cr_assert(lock && check && data && lock < check && check < data, "order wrong: %s", text);
    json_t *params = json_object_get(one, "parameters");
    cr_expect_str_eq(json_string_value(json_object_get(params, "store")), "store-1");
    cr_expect_eq(json_integer_value(json_object_get(params, "prev")), 6);
    cr_expect_eq(json_integer_value(json_object_get(params, "seq")), 7);
    cr_expect_eq(json_array_size(json_object_get(params, "rows")), 2);
    /* the batch's own statement is untouched */
    cr_expect_str_eq(stmt_text(&b, 0),
                     "UNWIND $rows AS r CREATE (n:Entity:`Person`) SET n = r RETURN count(*)");
    json_decref(stmts);
    cypher_batch_free(&b);
}

Test(cypher, join_guard_leaves_two_data_statements_or_raw_ones)
{
    struct cypher_batch b;
    cr_assert_eq(cypher_batch_init(&b), 0);
    add_person(&b, "Person", "p1");
    add_person(&b, "Org", "o1");
    cr_assert_eq(cypher_batch_finish(&b), 0);
    json_t *two = json_array();
    cr_assert_eq(cypher_add_watermark_guard(two, "s", 0, 0, 1), 0);
    cr_assert_eq(json_array_extend(two, b.statements), 0);
    cr_expect_eq(cypher_join_guard(two), 0);
    cr_expect_eq(json_array_size(two), 3);

    json_t *raw = json_array();
    cr_assert_eq(cypher_add_watermark_guard(raw, "s", 0, 0, 1), 0);
    cr_assert_eq(neo4j_add_statement(raw, "MATCH (n) SET n.x = $x", json_pack("{s:i}", "x", 1)), 0);
    cr_expect_eq(cypher_join_guard(raw), 0);
    cr_expect_eq(json_array_size(raw), 2);
    json_decref(two);
    json_decref(raw);
    cypher_batch_free(&b);
}
