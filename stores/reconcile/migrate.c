/*
 * `bistore migrate`: gives the Neo4j records written by a gateway older than
 * the range checksums (stores/reconcile/ranges.c) their hash parts _h1 and
 * _h2 (and nodes their id part _hid), batch by batch in id order: entities,
 * then each relationship type.
 *
 * Why not through the commit protocol: the parts are a function of the
 * record's own _h (and id), in the same store, written in one Neo4j transaction per
 * batch; SQLite is not touched (it derives the parts from its hash column
 * in the query). A stop anywhere leaves every batch either done or not, and
 * the next run finds the rest (a record with both parts is left alone), so
 * it resumes by running it again. A serving gateway may keep writing: its
 * writes set _h with both parts, and the batch reads _h only once it holds
 * the record's write lock (stores/neo4j/recon.c). Until it has run, a fast
 * reconciliation is still correct, only slower.
 */
#include <stdlib.h>
#include <string.h>

#include "stores/neo4j/recon.h"
#include "stores/reconcile/internal.h"

#define MIGRATE_BATCH 10000

static int migrate_kind(struct neo4j_client *c, const char *type, const struct migrate_hooks *hooks,
                        struct migrate_summary *sum, struct bs_error *err)
{
    char *after = strdup("");
    if (!after)
        return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
    for (;;) {
        char *last = NULL;
        int64_t seen = 0, set = 0;
        if (neo4j_migrate_parts(c, type, after, MIGRATE_BATCH, &last, &seen, &set, err) != 0) {
            free(after);
            return -1;
        }
        sum->seen += seen;
        sum->set += set;
        if (hooks && hooks->progress)
            hooks->progress(hooks->arg, sum);
        if (!last || seen < MIGRATE_BATCH) {
            free(last);
            break;
        }
        free(after);
        after = last;
    }
    free(after);
    return 0;
}

int recon_migrate(const struct neo4j_config *neo4j, const struct migrate_hooks *hooks,
                  struct migrate_summary *sum, struct bs_error *err)
{
    memset(sum, 0, sizeof *sum);
    struct neo4j_config ncfg = recon_neo4j_config(neo4j);
    struct neo4j_client *c = neo4j_client_new(&ncfg);
    if (!c)
        return bs_error_set(err, BS_STORAGE_ERROR, "cannot set up the Neo4j client"), -1;
    int64_t rels = 0;
    json_t *types = json_array();
    int rc = types ? 0 : (bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1);
    if (rc == 0)
        rc = neo4j_scan_count_entities(c, &sum->total, err);
    if (rc == 0)
        rc = neo4j_scan_count_relationships(c, NULL, &rels, err);
    sum->total += rels;
    if (rc == 0)
        rc = neo4j_scan_relationship_types(c, types, err);
    if (rc == 0)
        rc = migrate_kind(c, NULL, hooks, sum, err);
    size_t i;
    json_t *t;
    json_array_foreach (types, i, t) {
        if (rc != 0)
            break;
        rc = migrate_kind(c, json_string_value(t), hooks, sum, err);
    }
    json_decref(types);
    neo4j_client_free(c);
    return rc;
}
