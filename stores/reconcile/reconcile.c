/* The names, parsers and summary form of stores/reconcile/reconcile.h. */
#include "stores/reconcile/reconcile.h"

#include <string.h>

const char *recon_mode_name(enum recon_mode m)
{
    return m == RECON_DEEP ? "deep" : "fast";
}

const char *recon_repair_name(enum recon_repair r)
{
    return r == REPAIR_SQLITE_WINS ? "sqlite_wins" : r == REPAIR_NEO4J_WINS ? "neo4j_wins" : "none";
}

bool recon_mode_parse(const char *s, enum recon_mode *m)
{
    if (strcmp(s, "fast") == 0)
        *m = RECON_FAST;
    else if (strcmp(s, "deep") == 0)
        *m = RECON_DEEP;
    else
        return false;
    return true;
}

bool recon_repair_parse(const char *s, enum recon_repair *r)
{
    if (strcmp(s, "none") == 0)
        *r = REPAIR_NONE;
    else if (strcmp(s, "sqlite_wins") == 0)
        *r = REPAIR_SQLITE_WINS;
    else if (strcmp(s, "neo4j_wins") == 0)
        *r = REPAIR_NEO4J_WINS;
    else
        return false;
    return true;
}

json_t *recon_summary_json(const struct recon_summary *s)
{
    return json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "entities_sqlite",
        (json_int_t)s->entities_sqlite, "entities_neo4j", (json_int_t)s->entities_neo4j,
        "relationships_sqlite", (json_int_t)s->relationships_sqlite, "relationships_neo4j",
        (json_int_t)s->relationships_neo4j, "only_in_sqlite", (json_int_t)s->only_in_sqlite,
        "only_in_neo4j", (json_int_t)s->only_in_neo4j, "mismatched", (json_int_t)s->mismatched,
        "duplicate_ids", (json_int_t)s->duplicate_ids, "missing_ids", (json_int_t)s->missing_ids,
        "repaired", (json_int_t)s->repaired);
}

bool recon_summary_dirty(const struct recon_summary *s)
{
    return s->only_in_sqlite || s->only_in_neo4j || s->mismatched || s->duplicate_ids ||
           s->missing_ids;
}
