/*
 * sql_entity_create / sql_relationship_create (stores/sqlite/sqlite.h): the
 * insert is the existence check, so a taken id and a missing endpoint
 * must come back as 1 (refused), and the row must be as stored by the
 * plain inserts. Each test opens its own database in a fresh directory.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stores/sqlite/sqlite.h"

static char dir[64];
static char path[96];
static struct sql_conn *conn;

static void open_db(void)
{
    snprintf(dir, sizeof dir, "/tmp/bistore-sqlite-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.db", dir);
    struct bs_error err;
    bs_error_clear(&err);
    conn = sql_open(path, true, &err);
    cr_assert_not_null(conn, "%s", err.message);
}

static void close_db(void)
{
    sql_close(conn);
    char p[128];
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        unlink(p);
    }
    rmdir(dir);
}

TestSuite(sqlite_create, .init = open_db, .fini = close_db);

static struct sql_entity entity(const char *id)
{
    struct sql_entity e = {0};
    snprintf(e.id, sizeof e.id, "%s", id);
    snprintf(e.type, sizeof e.type, "Person");
    e.version = 1;
    snprintf(e.hash, sizeof e.hash, "0123456789abcdef");
    snprintf(e.created_at, sizeof e.created_at, "2024-01-01T00:00:00.000Z");
    snprintf(e.updated_at, sizeof e.updated_at, "2024-01-01T00:00:00.000Z");
    return e;
}

static struct sql_relationship relationship(const char *id, const char *source, const char *target)
{
    struct sql_relationship r = {0};
    snprintf(r.id, sizeof r.id, "%s", id);
    snprintf(r.type, sizeof r.type, "KNOWS");
    snprintf(r.source, sizeof r.source, "%s", source);
    snprintf(r.target, sizeof r.target, "%s", target);
    r.version = 1;
    snprintf(r.hash, sizeof r.hash, "0123456789abcdef");
    snprintf(r.created_at, sizeof r.created_at, "2024-01-01T00:00:00.000Z");
    snprintf(r.updated_at, sizeof r.updated_at, "2024-01-01T00:00:00.000Z");
    return r;
}

Test(sqlite_create, entity_taken_id_is_refused)
{
    struct bs_error err;
    bs_error_clear(&err);
    struct sql_entity e = entity("a");
    cr_assert_eq(sql_entity_create(conn, &e, "{\"n\":1}", &err), 0, "%s", err.message);
    cr_expect_eq(sql_entity_create(conn, &e, "{}", &err), 1);
    struct sql_entity got;
    cr_assert_eq(sql_entity_get(conn, "a", &got, &err), 0);
    cr_expect_eq(json_integer_value(json_object_get(got.properties, "n")), 1, "first row kept");
    cr_expect_null(got.metadata);
    sql_entity_clear(&got);
}

Test(sqlite_create, relationship_refusals)
{
    struct bs_error err;
    bs_error_clear(&err);
    struct sql_entity a = entity("a"), b = entity("b");
    cr_assert_eq(sql_entity_create(conn, &a, "{}", &err), 0);
    cr_assert_eq(sql_entity_create(conn, &b, "{}", &err), 0);
    struct sql_relationship r = relationship("r1", "a", "b");
    cr_assert_eq(sql_relationship_create(conn, &r, "{\"w\":0.5}", &err), 0, "%s", err.message);
    cr_expect_eq(sql_relationship_exists(conn, "r1", &err), 0);
    cr_expect_eq(sql_relationship_exists(conn, "r2", &err), 1);
    cr_expect_eq(sql_relationship_create(conn, &r, "{}", &err), 1, "taken id");
    struct sql_relationship no_source = relationship("r2", "nobody", "b");
    cr_expect_eq(sql_relationship_create(conn, &no_source, "{}", &err), 1, "missing source");
    struct sql_relationship no_target = relationship("r3", "a", "nobody");
    cr_expect_eq(sql_relationship_create(conn, &no_target, "{}", &err), 1, "missing target");
    cr_expect_eq(sql_relationship_exists(conn, "r2", &err), 1, "nothing left behind");
    cr_expect_eq(sql_relationship_exists(conn, "r3", &err), 1, "nothing left behind");
    /* An endpoint deleted earlier (in the same transaction) no longer counts. */
    cr_assert_eq(sql_begin(conn, &err), 0);
    cr_assert_eq(sql_relationship_delete(conn, "r1", &err), 0);
    cr_assert_eq(sql_entity_delete(conn, "b", &err), 0);
    struct sql_relationship to_deleted = relationship("r4", "a", "b");
    cr_expect_eq(sql_relationship_create(conn, &to_deleted, "{}", &err), 1);
    sql_rollback(conn);
    cr_assert(!sql_in_transaction(conn));
    struct sql_relationship got;
    cr_assert_eq(sql_relationship_get(conn, "r1", &got, &err), 0);
    cr_expect_str_eq(got.source, "a");
    cr_expect_eq(json_real_value(json_object_get(got.properties, "w")), 0.5);
    sql_relationship_clear(&got);
}
