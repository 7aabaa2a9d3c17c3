/*
 * Settling an intent that Neo4j refuses on replay (`bistore resolve`).
 *
 * A committed intent whose replay Neo4j refuses deterministically (its
 * CREATE meets a node of the same id made behind the gateway's back, say)
 * stops the writer: intents are applied in order, so nothing after it can
 * go to Neo4j (stores/engine/replay.c, replay_refused). The operator decides which store
 * is right for the objects of that transaction, and the decision goes
 * through the protocol like any write:
 *
 *   sqlite   BEGIN IMMEDIATE; for each object of the intent's transaction,
 *            re-read both stores and repair it as a reconciliation would
 *            (repair.c): sqlite_wins builds the Neo4j statements that make
 *            Neo4j match SQLite; neo4j_wins rewrites SQLite's rows to match
 *            Neo4j (and the statements that give Neo4j's copy its _v/_h);
 *            the intent's statements are replaced by those; its
 *            transaction's error records the refusal and the decision
 *   sqlite   COMMIT                                      <- the decision
 *   replay   as for any pending intent: guarded watermark seq-1 -> seq, so
 *            the new statements are applied exactly once, in order
 *
 * It runs in the writer thread (writer_call_while_stuck), so it never races
 * a write. An object the policy cannot make agree (neo4j_wins and a node
 * without a type label) refuses the whole decision: nothing is written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "stores/engine/apply.h"
#include "stores/reconcile/internal.h"
#include "stores/reconcile/repair.h"

struct resolve_call {
    int64_t seq;
    enum recon_repair policy;
    bool dry_run;
    json_t *report; /* out */
};

/* The relationship's type: SQLite's row, else Neo4j's (by id alone: a scan,
 * fine for an operator's command), else NULL (in neither store). */
static int relationship_type(struct engine *e, const char *id, char *type, size_t cap,
                             struct bs_error *err)
{
    struct sql_relationship r;
    int rc = sql_relationship_get(writer_sql(e), id, &r, err);
    if (rc == 0) {
        snprintf(type, cap, "%s", r.type);
        sql_relationship_clear(&r);
        return 0;
    }
    if (rc < 0)
        return -1;
    bs_error_clear(err);
    type[0] = '\0';
    json_t *stmts = json_array();
    struct neo4j_result res = {0};
    if (!stmts || neo4j_add_statement(stmts, cypher_relationship_type_by_id(),
                                      json_pack("{s:s}", "id", id)) != 0) {
        json_decref(stmts);
        return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
    }
    rc = 0;
    if (neo4j_autocommit(writer_neo4j(e), stmts, &res) != NEO4J_OK)
        rc = (bs_error_set(err, BS_NEO4J_UNAVAILABLE, "Neo4j: %s %s", res.code, res.message), -1);
    else if (json_is_string(neo4j_cell(&res, 0, 0, 0)))
        snprintf(type, cap, "%s", json_string_value(neo4j_cell(&res, 0, 0, 0)));
    neo4j_result_clear(&res);
    json_decref(stmts);
    return rc;
}

/* The objects the intent's transaction wrote, as findings to repair:
 * entities first, so relationship statements find their endpoints. */
static json_t *intent_objects(struct engine *e, const json_t *operations, struct bs_error *err)
{
    json_t *entities = json_array(), *rels = json_array();
    size_t i;
    json_t *op;
    int rc = entities && rels ? 0 : (bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1);
    json_array_foreach (operations, i, op) {
        if (rc != 0)
            break;
        const char *kind = json_string_value(json_object_get(op, "op"));
        const char *object = json_string_value(json_object_get(op, "object")); /* repairs */
        const char *id = json_string_value(json_object_get(op, "id"));
        if (!kind || !id)
            continue;
        bool entity = object ? strcmp(object, "entity") == 0 : strstr(kind, "entity") != NULL;
        json_t *f = json_pack("{s:s, s:s, s:s, s:n, s:n}", "kind", "mismatch", "object",
                              entity ? "entity" : "relationship", "id", id, "sqlite", "neo4j");
        if (f && !entity) {
            char type[NAME_MAX_LEN + 1];
            if (relationship_type(e, id, type, sizeof type, err) != 0) {
                json_decref(f);
                rc = -1;
                break;
            }
            if (!type[0]) { /* in neither store: they agree on it */
                json_decref(f);
                continue;
            }
            json_object_set_new(f, "sqlite", json_pack("{s:s}", "type", type));
        }
        if (!f || json_array_append_new(entity ? entities : rels, f) != 0)
            rc = (bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1);
    }
    if (rc == 0 && json_array_extend(entities, rels) != 0)
        rc = (bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1);
    json_decref(rels);
    if (rc != 0) {
        json_decref(entities);
        return NULL;
    }
    return entities;
}

/* Fails when an object still disagrees and the policy left it alone. */
static int check_all_settled(const json_t *findings, enum recon_repair policy, struct bs_error *err)
{
    size_t i;
    json_t *f;
    json_array_foreach (findings, i, f) {
        if (!json_is_true(json_object_get(f, "disagreed")) ||
            strcmp(json_string_value(json_object_get(f, "action")), "none") != 0)
            continue;
        const char *why = json_string_value(json_object_get(f, "why"));
        return bs_error_set(
                   err, BS_INVALID_REQUEST,
                   "%s cannot make the stores agree on %s '%s'%s%s: choose the other "
                   "policy, or fix it in Neo4j and resolve again; nothing was written",
                   recon_repair_name(policy), json_string_value(json_object_get(f, "object")),
                   json_string_value(json_object_get(f, "id")), why ? ": " : "", why ? why : ""),
               -1;
    }
    return 0;
}

/* The transaction's error after the decision: the refusal, and how it was settled. */
static char *resolution_error(const json_t *refused, enum recon_repair policy, const char *now,
                              const json_t *findings)
{
    json_t *actions = json_array();
    size_t i;
    json_t *f;
    json_array_foreach (findings, i, f)
        json_array_append_new(
            actions, json_pack("{s:O, s:O, s:O}", "object", json_object_get(f, "object"), "id",
                               json_object_get(f, "id"), "action", json_object_get(f, "action")));
    json_t *error = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:o}}", "code",
                              bs_code_name(BS_NEO4J_ERROR), "message",
                              json_string_value(json_object_get(refused, "message"))
                                  ? json_string_value(json_object_get(refused, "message"))
                                  : "refused by Neo4j on replay",
                              "resolution", "policy", recon_repair_name(policy), "at", now, "by",
                              "bistore resolve", "actions", actions ? actions : json_array());
    char *text = error ? json_text_dumps(error) : NULL;
    json_decref(error);
    return text;
}

static int resolve_in_writer(struct engine *e, void *arg, struct bs_error *err)
{
    struct resolve_call *c = arg;
    int64_t stuck = readiness_stuck_seq(e);
    if (stuck != c->seq)
        return stuck ? bs_error_set(err, BS_INVALID_REQUEST,
                                    "intent %lld is not the one Neo4j refuses: that is intent %lld",
                                    (long long)c->seq, (long long)stuck)
                     : bs_error_set(err, BS_INVALID_REQUEST,
                                    "intent %lld is not refused by Neo4j: nothing is waiting to "
                                    "be resolved",
                                    (long long)c->seq),
               -1;
    struct sql_intent in;
    int rc = sql_intent_get_pending(writer_sql(e), c->seq, &in, err);
    if (rc != 0)
        return rc < 0 ? -1
                      : (bs_error_set(err, BS_INVALID_REQUEST, "intent %lld is not pending",
                                      (long long)c->seq),
                         -1);
    struct apply_state state;
    json_t *findings = NULL;
    char *text = NULL, *tx_error = NULL;
    bool began = false;
    rc = -1;
    if (apply_init(&state) != 0) {
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
        goto done;
    }
    if (sql_begin(writer_sql(e), err) != 0)
        goto done;
    began = true;
    findings = intent_objects(e, in.operations, err);
    if (!findings)
        goto done;
    struct repair_batch rb = {.policy = c->policy, .dry_run = c->dry_run, .findings = findings};
    if (repair_apply_batch(e, &rb, &state, err) != 0 || check_all_settled(findings, c->policy, err))
        goto done;
    c->report = json_pack("{s:I, s:s, s:s, s:b, s:O}", "seq", (json_int_t)c->seq, "tx_id", in.tx_id,
                          "policy", recon_repair_name(c->policy), "dry_run", c->dry_run, "objects",
                          findings);
    if (!c->report) {
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
        goto done;
    }
    if (c->dry_run) {
        rc = 0;
        goto done;
    }
    text = json_text_dumps(state.cypher.statements);
    tx_error = resolution_error(in.refused, c->policy, state.now, findings);
    if (!text || !tx_error) {
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
        goto done;
    }
    if (sql_intent_resolve(writer_sql(e), c->seq, text, tx_error, err) != 0 ||
        sql_commit(writer_sql(e), err) != 0)
        goto done;
    began = false;
    rc = 0;
    log_info("intent %lld resolved with %s (%zu objects): replaying it", (long long)c->seq,
             recon_repair_name(c->policy), json_array_size(findings));
    readiness_clear_stuck(e);
    readiness_set(e, false, "intent %lld resolved with %s: replaying", (long long)c->seq,
                  recon_repair_name(c->policy));
done:
    if (began)
        sql_rollback(writer_sql(e));
    if (rc != 0) {
        json_decref(c->report);
        c->report = NULL;
    }
    free(text);
    free(tx_error);
    json_decref(findings);
    apply_free(&state);
    sql_intent_clear(&in);
    return rc;
}

int recon_resolve_intent(struct engine *e, int64_t seq, enum recon_repair policy, bool dry_run,
                         json_t **report, struct bs_error *err)
{
    struct resolve_call c = {.seq = seq, .policy = policy, .dry_run = dry_run};
    *report = NULL;
    if (policy == REPAIR_NONE)
        return bs_error_set(err, BS_INVALID_REQUEST, "a policy is needed"), -1;
    if (writer_call_while_stuck(e, resolve_in_writer, &c, err) != 0)
        return -1;
    *report = c.report;
    return 0;
}
