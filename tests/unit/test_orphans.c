/*
 * The record of open Neo4j transactions (<db>.neo4j-tx): what a killed
 * gateway leaves is read back by the next one, and a removed path is gone
 * from the file (the file is truncated, not left with a stale tail).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stores/engine/internal.h"

static char dir[64];
static char db[128], record[160];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/bistore-orphans-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(db, sizeof db, "%s/x.db", dir);
    snprintf(record, sizeof record, "%s.neo4j-tx", db);
}

static void teardown(void)
{
    unlink(record);
    rmdir(dir);
}

static long file_size(void)
{
    struct stat st;
    cr_assert_eq(stat(record, &st), 0);
    return (long)st.st_size;
}

TestSuite(orphans, .init = setup, .fini = teardown);

Test(orphans, paths_survive_a_reopen_in_order)
{
    struct orphan_log log;
    cr_assert_eq(orphans_open(&log, db), 0);
    cr_assert_eq(orphans_add(&log, "/db/neo4j/tx/17"), 0);
    cr_assert_eq(orphans_add(&log, "/db/neo4j/tx/1234"), 0);
    orphans_close(&log); /* as a killed process leaves it */

    struct orphan_log again;
    cr_assert_eq(orphans_open(&again, db), 0);
    cr_assert_eq(again.n, 2);
    cr_expect_str_eq(again.paths[0], "/db/neo4j/tx/17");
    cr_expect_str_eq(again.paths[1], "/db/neo4j/tx/1234");
    orphans_close(&again);
}

Test(orphans, removing_shrinks_the_file)
{
    struct orphan_log log;
    cr_assert_eq(orphans_open(&log, db), 0);
    cr_assert_eq(orphans_add(&log, "/db/neo4j/tx/100000"), 0);
    cr_assert_eq(orphans_add(&log, "/db/neo4j/tx/2"), 0);
    cr_expect_eq(file_size(), (long)strlen("/db/neo4j/tx/100000\n/db/neo4j/tx/2\n"));
    orphans_remove(&log, "/db/neo4j/tx/100000");
    cr_expect_eq(file_size(), (long)strlen("/db/neo4j/tx/2\n"));
    orphans_remove(&log, "/db/neo4j/tx/2");
    cr_expect_eq(file_size(), 0);
    cr_assert_eq(orphans_add(&log, "/db/neo4j/tx/3"), 0);
    orphans_close(&log);

    struct orphan_log again;
    cr_assert_eq(orphans_open(&again, db), 0);
    cr_assert_eq(again.n, 1, "a stale tail was read back: %zu paths", again.n);
    cr_expect_str_eq(again.paths[0], "/db/neo4j/tx/3");
    orphans_close(&again);
}

Test(orphans, a_longer_file_left_by_an_earlier_run_is_truncated_on_first_write)
{
    FILE *f = fopen(record, "w");
    cr_assert_not_null(f);
    fputs("/db/neo4j/tx/1\n/db/neo4j/tx/2\n/db/neo4j/tx/3\n", f);
    fclose(f);
    struct orphan_log log;
    cr_assert_eq(orphans_open(&log, db), 0);
    cr_assert_eq(log.n, 3);
    orphans_remove(&log, "/db/neo4j/tx/1");
    orphans_remove(&log, "/db/neo4j/tx/2");
    orphans_remove(&log, "/db/neo4j/tx/3");
    cr_expect_eq(file_size(), 0);
    orphans_close(&log);
}
