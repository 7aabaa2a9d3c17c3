/*
 * The commit protocol (DESIGN.md section 4), run by the writer thread only.
 *
 *   plan      the handler validated the request and resolved refs
 *   sqlite    BEGIN IMMEDIATE; apply rows; INSERT intent(seq, statements)
 *   neo4j     open an empty tx (recorded in the orphan log), run
 *             [guarded watermark prev -> seq, data statements]
 *             -- any error: DELETE the tx, ROLLBACK sqlite, answer 4xx/5xx
 *   sqlite    COMMIT                                  <- the commit point
 *   neo4j     commit the open tx (in flight: committer.c sends it while
 *             the writer goes on with the next group, whose statements
 *             wait behind this one's watermark lock)
 *             -- failure or timeout: the intent stays pending; it is
 *                replayed (exactly once, by the watermark) before the next
 *                write and by recovery (replay.c)
 *   sqlite    mark the intent applied (with the next group's commit when
 *             one follows), then answer
 *
 * Writes that arrive together go through as one group (group commit): one
 * SQLite transaction with a SAVEPOINT per member, one Neo4j transaction,
 * one fsync. This file reads in the order the protocol runs: the entry
 * point, the steps of a group in the order they run (each returns an
 * enum step), the undo, then the helpers the steps share. A large
 * transaction runs the same steps, pipelined (pipeline.c).
 *
 * Invariants (DESIGN.md section 3) held here:
 *  - Neo4j is committed only after SQLite's commit, so no state of a failed
 *    transaction is visible anywhere;
 *  - every Neo4j transaction starts with the guarded watermark, so an
 *    intent is applied once even when a request given up on arrives late;
 *  - intents are applied in seq order: a group starts only when nothing is
 *    pending (applied_seq == last_seq) but the flight before it, and its
 *    intents are last_seq + 1... (asserted); its guard expects last_seq,
 *    which the flight's commit sets, and the flight lands before this
 *    group's SQLite commit;
 *  - no answer of a member leaves before the group is decided (invariant 6).
 */
#include "stores/engine/commit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json_text.h"
#include "common/metrics.h"
#include "stores/engine/fault.h"

static enum step commit_together(struct engine *e, struct commit_item *items, size_t n,
                                 bool may_fly, bool *in_flight);
static enum step create_constraints(struct group *g);
static enum step build_statements(struct group *g);
static enum step run_in_neo4j(struct group *g);
static enum step check_counts(struct group *g);
static enum step client_rows(struct group *g);

static bool apply_member(struct group *g, struct member *m, int64_t seq);
static size_t hand_out(struct group *g, struct bistore_outcome **outs);
static void fail_members(struct group *g, const struct bs_error *err);
static void record_aborted(struct engine *e, const char *tx_id, const struct bs_txn *txn,
                           const struct bs_error *failure);

/* ---- the entry point ---- */

/* Clears the items' outcomes, answers of a try that is not final. */
static void clear_outcomes(struct commit_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_decref(items[i].out->result);
        memset(items[i].out, 0, sizeof *items[i].out);
        bs_error_clear(&items[i].out->err);
    }
}

enum commit_end commit_group(struct engine *e, struct commit_item *items, size_t n, bool may_fly)
{
    metrics_group(n);
    for (size_t i = 0; i < n; i++) {
        memset(items[i].out, 0, sizeof *items[i].out);
        bs_error_clear(&items[i].out->err);
        may_fly = may_fly && items[i].job;
    }
    /* A transaction with raw statements is never pipelined: its Cypher's
     * rows come back in the one answer client_rows reads (and take_jobs
     * gives it a group of its own). */
    if (n == 1 && items[0].txn->n_ops >= PIPELINE_MIN_OPS && !items[0].apply &&
        !txn_has_raw(items[0].txn)) {
        BS_ASSERT(!e->flight.active); /* it goes alone: the writer landed the flight */
        commit_pipelined(e, &items[0]);
        return COMMIT_ANSWERED;
    }
    bool in_flight = false;
    enum step s = commit_together(e, items, n, may_fly, &in_flight);
    if (in_flight)
        return COMMIT_IN_FLIGHT;
    if (s == STEP_REQUEUE) {
        clear_outcomes(items, n);
        return COMMIT_REQUEUE;
    }
    if (s != STEP_RETRY_ALONE) {
        /* Decided without Neo4j (repeats, refusals): a repeat of a member of
         * the flight says its outcome, so the flight lands first. */
        flight_land(e, false);
        return COMMIT_ANSWERED;
    }
    /* Neo4j refused one of them: each alone, so only that one fails. The
     * flight before them lands first: alone, each commits in Neo4j itself. */
    log_info("group commit: Neo4j refused a group of %zu; applying them one by one", n);
    clear_outcomes(items, n);
    if (!flight_land(e, false))
        return COMMIT_REQUEUE;
    for (size_t i = 0; i < n; i++) {
        if (e->applied_seq != e->last_seq && e->replica_failed)
            bs_error_set(&items[i].out->err, BS_NOT_READY,
                         "not ready: the replica did not confirm an earlier transaction; retry");
        else if (e->applied_seq != e->last_seq)
            bs_error_set(&items[i].out->err, BS_NEO4J_UNAVAILABLE,
                         "Neo4j did not take an earlier transaction; retry");
        else
            commit_together(e, &items[i], 1, false, &in_flight);
    }
    return COMMIT_ANSWERED;
}

/* The protocol for one group, step by step; the last step's outcome. */
static enum step commit_together(struct engine *e, struct commit_item *items, size_t n,
                                 bool may_fly, bool *in_flight)
{
    static enum step (*const steps[])(struct group * g) = {
        begin_sqlite,       /* BEGIN IMMEDIATE */
        apply_members,      /* each member's rows and intent, in a SAVEPOINT each */
        create_constraints, /* schema for relationship types new to Neo4j */
        build_statements,   /* the guarded watermark and every member's data */
        run_in_neo4j,       /* in a Neo4j transaction recorded before it runs */
        check_counts,       /* Neo4j touched what SQLite did */
        client_rows,        /* the rows of the clients' own Cypher statements */
        commit_point,       /* SQLite COMMIT, then Neo4j's commit, then the mark */
    };
    struct group g;
    enum step s = group_init(&g, e, items, n);
    g.may_fly = may_fly;
    for (size_t i = 0; s == STEP_NEXT && i < sizeof steps / sizeof steps[0]; i++)
        s = steps[i](&g);
    *in_flight = g.in_flight;
    group_end(&g, s);
    return s;
}

/* ---- the steps, in the order they run ---- */

enum step group_init(struct group *g, struct engine *e, struct commit_item *items, size_t n)
{
    /* Nothing pending but the flight before it, if any: order holds. */
    BS_ASSERT(e->applied_seq == e->last_seq ||
              (e->flight.active && e->applied_seq == e->flight.first_seq - 1 &&
               e->flight.seq == e->last_seq));
    memset(g, 0, sizeof *g);
    g->e = e;
    g->n = n;
    g->members = calloc(n, sizeof *g->members);
    bs_error_clear(&g->err);
    if (!g->members) {
        for (size_t i = 0; i < n; i++)
            bs_error_set(&items[i].out->err, BS_STORAGE_ERROR, "out of memory");
        return STEP_DECIDED;
    }
    for (size_t i = 0; i < n; i++) {
        struct member *m = &g->members[i];
        m->item = &items[i];
        ids_uuid7(m->tx_id);
        if (apply_init(&m->state) != 0) {
            bs_error_set(&items[i].out->err, BS_STORAGE_ERROR, "out of memory");
            m->status = MEMBER_ANSWERED;
        }
    }
    neo4j_set_request_id(writer_neo4j(e), items[0].rid);
    return STEP_NEXT;
}

enum step begin_sqlite(struct group *g)
{
    return sql_begin(writer_sql(g->e), &g->err) == 0 ? STEP_NEXT : STEP_FAILED;
}

enum step apply_members(struct group *g)
{
    struct engine *e = g->e;
    struct sql_conn *sql = writer_sql(e);
    for (size_t i = 0; i < g->n; i++) {
        struct member *m = &g->members[i];
        if (m->status != MEMBER_WAITING)
            continue;
        if (apply_member(g, m, e->last_seq + 1 + (int64_t)g->applied)) {
            m->status = MEMBER_APPLIED;
            g->applied++;
            continue;
        }
        m->status = MEMBER_LEFT;
        if (!sql_in_transaction(sql)) {
            /* SQLite rolled the group's transaction back by itself (a full
             * disk, an I/O error, no memory): every member applied so far
             * is gone with it, and nothing reached Neo4j. */
            g->err = m->item->out->err;
            log_error("group commit: SQLite rolled back the group's transaction: %s",
                      g->err.message);
            return STEP_FAILED;
        }
    }
    fault_hit(FAULT_AFTER_BEGIN);
    if (g->applied > 0)
        return STEP_NEXT;
    /* Only aborted records (or idempotent repeats) to keep: SQLite commits
     * them, Neo4j has nothing to do (a pipelined member may have opened its
     * transaction already). A failed commit loses only the records. */
    if (g->n > 1)
        log_debug("group commit: %zu transactions, none to Neo4j", g->n);
    neo4j_tx_abandon(e, &g->tx);
    struct bs_error ignored;
    sql_commit(sql, &ignored);
    return STEP_DECIDED;
}

/* The relationship types new to Neo4j get their uniqueness constraint,
 * each in a schema transaction of its own, before the data's. */
static enum step create_constraints(struct group *g)
{
    for (size_t i = 0; i < g->n; i++) {
        struct member *m = &g->members[i];
        if (m->status != MEMBER_APPLIED || create_rel_constraints(g->e, &m->state, &g->err) == 0)
            continue;
        /* refused: each alone, so only its own member fails */
        return g->n > 1 && g->err.code == BS_NEO4J_ERROR ? STEP_RETRY_ALONE : STEP_FAILED;
    }
    return STEP_NEXT;
}

/*
 * The group's statements: the guarded watermark (last_seq -> the last
 * member's seq), then each member's data statements, with want[i] the rows
 * data statement i must touch. With several members a statement with the
 * template of the one before it (creates of one type by consecutive
 * members) joins it: one UNWIND for the burst instead of one per member,
 * which must touch the sum of their rows. Every row of these templates
 * touches at most one node or relationship (ids are unique), so the sum
 * holds only when each row did. One data statement left travels joined to
 * the guard (one statement fewer; the watermark is still locked and
 * checked before any row).
 */
static enum step build_statements(struct group *g)
{
    struct engine *e = g->e;
    size_t total = 0;
    for (size_t i = 0; i < g->n; i++)
        if (g->members[i].status == MEMBER_APPLIED)
            total += cypher_batch_count(&g->members[i].state.cypher);
    g->statements = json_array();
    g->want = malloc((total + 1) * sizeof *g->want);
    if (!g->statements || !g->want ||
        cypher_add_watermark_guard(g->statements, e->store_id, e->epoch, e->last_seq,
                                   e->last_seq + (int64_t)g->applied) != 0)
        return bs_error_set(&g->err, BS_STORAGE_ERROR, "out of memory"), STEP_FAILED;
    bool merge = g->applied > 1;
    for (size_t i = 0; i < g->n; i++) {
        struct member *m = &g->members[i];
        if (m->status != MEMBER_APPLIED)
            continue;
        m->first_stmt = json_array_size(g->statements) - 1;
        for (size_t j = 0; j < cypher_batch_count(&m->state.cypher); j++) {
            json_t *stmt = json_array_get(m->state.cypher.statements, j);
            size_t rows = m->state.cypher.expected[j];
            bool merged = false;
            if ((merge ? cypher_append_merged(g->statements, 1, stmt, &merged)
                       : json_array_append(g->statements, stmt)) != 0)
                return bs_error_set(&g->err, BS_STORAGE_ERROR, "out of memory"), STEP_FAILED;
            size_t at = json_array_size(g->statements) - 2;
            if (!merged)
                g->want[at] = rows;
            else if (g->want[at] != CYPHER_ANY_COUNT)
                g->want[at] = rows == CYPHER_ANY_COUNT ? rows : g->want[at] + rows;
        }
    }
    g->n_data = json_array_size(g->statements) - 1;
    if (g->n > 1)
        log_debug("group commit: %zu transactions, %zu to Neo4j in %zu statements", g->n,
                  g->applied, g->n_data);
    enum guard_join joined = cypher_join_guard(g->statements);
    if (joined == GUARD_JOIN_FAILED)
        return bs_error_set(&g->err, BS_STORAGE_ERROR, "out of memory"), STEP_FAILED;
    g->joined = joined == GUARD_JOINED;
    return STEP_NEXT;
}

/* The member and operation a group statement came from, for an error. */
static struct member *statement_owner(struct group *g, long stmt, long *op_index)
{
    struct member *owner = NULL;
    for (size_t i = 0; i < g->n; i++)
        if (g->members[i].status == MEMBER_APPLIED && (long)g->members[i].first_stmt <= stmt)
            owner = &g->members[i];
    *op_index = -1;
    if (owner) {
        size_t local = (size_t)stmt - owner->first_stmt;
        if (local < owner->state.n_stmt_first_op)
            *op_index = (long)owner->state.stmt_first_op[local];
    }
    return owner;
}

/*
 * An ArithmeticError is the guard's way of refusing (1/0), but a client's
 * Cypher may divide by zero too: for a group holding one, the watermark
 * tells which. True when it is where the guard expected it (so the guard
 * passed, and the client's statement failed).
 */
static bool client_divided(struct group *g)
{
    const struct bs_txn *txn = g->members[0].item->txn;
    if (g->members[0].status != MEMBER_APPLIED || !txn || !txn_has_raw(txn))
        return false;
    json_t *stmts = json_array();
    struct neo4j_result r = {0};
    bool passed = false;
    if (stmts && cypher_add_watermark_read(stmts, g->e->store_id) == 0 &&
        neo4j_autocommit(writer_neo4j(g->e), stmts, &r) == NEO4J_OK) {
        json_t *seq = neo4j_cell(&r, 0, 0, 0);
        passed = json_is_integer(seq) && json_integer_value(seq) == g->e->last_seq;
    }
    neo4j_result_clear(&r);
    json_decref(stmts);
    return passed;
}

/* The index of the first data statement: 1 after the guard, 0 when the one
 * data statement was joined to it. */
static size_t first_data_statement(const struct group *g)
{
    return g->joined ? 0 : 1;
}

/*
 * The client statement that divided by zero (client_divided): Neo4j counts
 * the failing statement's partial result or not, so the data statement at
 * the index it gives, or the one before; else the first client statement.
 */
static long divided_statement(struct group *g)
{
    long at = g->r.statement_index - 1; /* after the guard (never joined: a client's) */
    for (long i = at; i >= at - 1; i--)
        if (i >= 0 && (size_t)i < g->n_data &&
            cypher_is_client_statement(json_array_get(g->statements, (size_t)i + 1)))
            return i;
    for (size_t i = 0; i < g->n_data; i++)
        if (cypher_is_client_statement(json_array_get(g->statements, i + 1)))
            return (long)i;
    return -1;
}

static enum step run_in_neo4j(struct group *g)
{
    struct engine *e = g->e;
    enum neo4j_status status = neo4j_tx_open(e, &g->tx, true, &g->r);
    if (status == NEO4J_OK)
        status = neo4j_tx_run(e, &g->tx, g->statements, &g->r);
    if (e->flight.active) {
        /* These statements waited behind the flight's lock: they passed the
         * guard only if it landed. One that did not makes them go again. */
        fault_hit(FAULT_BEHIND_FLIGHT);
        if (!flight_land(e, status == NEO4J_OK))
            return STEP_REQUEUE;
    }
    if (status == NEO4J_OK)
        return STEP_NEXT;
    /* the data statement Neo4j refused, or -1: the guard (or no statement) */
    size_t base = first_data_statement(g);
    long counted = g->r.statement_index - 1; /* the last statement with a result */
    bool answers_rows =
        counted >= 0 && !cypher_is_client_statement(json_array_get(g->statements, (size_t)counted));
    long data_stmt =
        g->r.status != NEO4J_CLIENT_ERROR || guard_refused(&g->r)
            ? -1
            : neo4j_refused_statement(&g->r, base + g->n_data, answers_rows) - (long)base;
    if (data_stmt < 0 && g->n == 1 && guard_refused(&g->r) && client_divided(g))
        data_stmt = divided_statement(g);
    if (data_stmt >= 0 && g->n > 1)
        return STEP_RETRY_ALONE;
    if (data_stmt >= 0) { /* a group of one: its member is at fault, and recorded so */
        long op_index;
        g->aborted = statement_owner(g, data_stmt, &op_index);
        const struct bs_txn *txn = g->aborted ? g->aborted->item->txn : NULL;
        if (txn && op_index >= 0 && (size_t)op_index < txn->n_ops &&
            txn->ops[op_index].kind == OP_CYPHER)
            client_statement_failure(&g->r, op_index, &g->err);
        else
            statement_failure(&g->r, op_index, &g->err);
        return STEP_FAILED;
    }
    statement_failure(&g->r, -1, &g->err);
    if (guard_refused(&g->r) && replay_fenced(e)) /* deposed: nothing was written */
        bs_error_set(&g->err, BS_NOT_READY,
                     "not ready: fenced: another gateway was promoted for this store");
    else if (g->err.code == BS_NEO4J_UNAVAILABLE)
        readiness_set(e, false, "%s", g->err.message);
    return STEP_FAILED;
}

/* True when the watermark node of this store exists (a read, for an error message). */
static bool watermark_present(struct engine *e)
{
    json_t *stmts = json_array();
    struct neo4j_result r = {0};
    bool present = true; /* when unsure, blame the rows */
    if (stmts && cypher_add_watermark_count(stmts, e->store_id) == 0 &&
        neo4j_autocommit(writer_neo4j(e), stmts, &r) == NEO4J_OK)
        present = json_integer_value(neo4j_cell(&r, 0, 0, 0)) > 0;
    neo4j_result_clear(&r);
    json_decref(stmts);
    return present;
}

/*
 * Every data statement touched as many rows as SQLite did. Joined, the
 * guard is part of the first statement (cypher_join_guard): no row from it
 * means no watermark node or no row of ours.
 */
static enum step check_counts(struct group *g)
{
    struct engine *e = g->e;
    if (!g->joined && neo4j_row_count(&g->r, 0) != 1) {
        bs_error_set(&g->err, BS_NEO4J_ERROR, "the watermark node of store %s is missing",
                     e->store_id);
        return STEP_FAILED;
    }
    size_t base = first_data_statement(g);
    for (size_t i = 0; i < g->n_data; i++) {
        if (!count_differs(neo4j_cell(&g->r, base + i, 0, 0), g->want[i], &g->err))
            continue;
        if (g->joined && json_integer_value(neo4j_cell(&g->r, 0, 0, 0)) == 0 &&
            !watermark_present(e))
            bs_error_set(&g->err, BS_NEO4J_ERROR, "the watermark node of store %s is missing",
                         e->store_id);
        return g->n > 1 ? STEP_RETRY_ALONE : STEP_FAILED;
    }
    return STEP_NEXT;
}

/*
 * The rows each client Cypher statement answered, into its operation's
 * result ({"op": "cypher", "rows": [...]}). Members with raw statements
 * commit alone (take_jobs), unmerged, so a member's data statement j is
 * statement base + j, base 1 after the guard (0 when the one data
 * statement, then a gateway's own, was joined to the guard).
 */
static enum step client_rows(struct group *g)
{
    size_t base = first_data_statement(g);
    for (size_t i = 0; i < g->n; i++) {
        struct member *m = &g->members[i];
        const struct bs_txn *txn = m->item->txn;
        if (m->status != MEMBER_APPLIED || !txn || !txn_has_raw(txn))
            continue;
        BS_ASSERT(g->n == 1); /* alone: its statements are not merged with others' */
        for (size_t j = 0; j < m->state.n_stmt_first_op; j++) {
            size_t op = m->state.stmt_first_op[j];
            json_t *stmt = json_array_get(g->statements, base + j);
            if (op >= txn->n_ops || txn->ops[op].kind != OP_CYPHER ||
                !cypher_is_client_statement(stmt))
                continue;
            json_t *rows = cypher_rows_as_objects(json_array_get(g->r.results, base + j));
            if (!rows || json_object_set_new(json_array_get(m->state.results, op), "rows", rows))
                return bs_error_set(&g->err, BS_STORAGE_ERROR, "out of memory"), STEP_FAILED;
        }
    }
    return STEP_NEXT;
}

/*
 * From SQLite's commit (the commit point) on, for the members applied
 * (their statements all passed): COMMIT, then Neo4j's commit (on failure
 * the intents stay pending and are replayed), then the outcomes.
 */
enum step commit_point(struct group *g)
{
    struct engine *e = g->e;
    fault_hit(FAULT_AFTER_NEO4J_STATEMENTS);
    int64_t seq = e->last_seq + (int64_t)g->applied;
    /* The mark of a flight that landed inside this transaction goes with
     * it (if its statement fails alone, the transaction goes on). */
    int64_t marking = e->marked_seq < e->applied_seq ? e->applied_seq : -1;
    if (marking >= 0 && !mark_applied_or_warn(e, marking, e->applied_at))
        marking = -1;
    if (sql_commit(writer_sql(e), &g->err) != 0) {
        /* Not committed, or (outcome_unknown) maybe durable after the next
         * start, when WAL recovery brings it back with its intent, which is
         * then replayed; nobody can tell now, an Idempotency-Key retry will.
         * Either way Neo4j must not have it yet (the undo DELETEs it), and
         * recovery reads the intent log and the watermark again. */
        readiness_set(e, false, "SQLite's commit failed: %s", g->err.message);
        return STEP_FAILED;
    }
    e->last_seq = seq;
    if (marking >= 0)
        e->marked_seq = marking;
    fault_hit(FAULT_AFTER_SQLITE_COMMIT);
    /* Here, on the writer's thread, outside any SQLite transaction: the
     * wait makes Litestream take SQLite's write lock (its _litestream_lock
     * table), so it cannot overlap the next group's open transaction
     * (measured: the committer waiting there while the writer applied the
     * next group deadlocked both until Litestream's busy timeout, 4 s per
     * group). */
    if (writer_replicated(e, seq, &g->err) != 0) {
        /* Committed here but not in the replica: not acknowledged, and
         * Neo4j must not commit it before the replica holds it. The intents
         * stay pending and are replayed once a wait covers them; until
         * then the outcome is unknown (a standby would not have them). */
        log_warn("intents %lld..%lld committed; the replica did not confirm them (%s): pending",
                 (long long)(seq - (int64_t)g->applied + 1), (long long)seq, g->err.message);
        neo4j_tx_abandon(e, &g->tx);
        struct bistore_outcome *outs[GROUP_MAX_TXNS];
        size_t n_outs = hand_out(g, outs);
        for (size_t i = 0; i < n_outs; i++)
            outcome_fail(outs[i], &g->err);
        return STEP_DECIDED;
    }

    if (g->may_fly && e->flight.started) {
        /* Answered by the committer when Neo4j answers, told whether it has it. */
        struct flight *f = &e->flight;
        for (size_t i = 0; i < g->n; i++)
            f->jobs[f->n_jobs++] = g->members[i].item->job;
        f->n_outs = hand_out(g, f->outs);
        flight_send(e, &g->tx, seq - (int64_t)g->applied + 1, seq, g->members[0].item->rid);
        g->in_flight = true;
        return STEP_DECIDED;
    }

    struct neo4j_result r = {0};
    bool applied = neo4j_tx_commit(e, &g->tx, &r);
    if (applied) {
        fault_hit(FAULT_AFTER_NEO4J_COMMIT);
        e->applied_seq = seq;
        mark_applied_or_warn(e, seq, NULL);
    } else {
        log_warn("intents %lld..%lld committed; Neo4j commit failed (%s): pending",
                 (long long)(seq - (int64_t)g->applied + 1), (long long)seq, r.message);
    }
    neo4j_result_clear(&r);
    struct bistore_outcome *outs[GROUP_MAX_TXNS];
    size_t n_outs = hand_out(g, outs);
    for (size_t i = 0; i < n_outs; i++) {
        outs[i]->neo4j_applied = applied;
        outs[i]->in_doubt = !applied && e->replica; /* see bistore_outcome */
    }
    return STEP_DECIDED;
}

/*
 * The members' answers, given out at the commit point: each applied
 * member's result moves to its outcome. Into outs, the outcomes that say
 * whether Neo4j has the group: the applied members' and those of repeats
 * of them (an Idempotency-Key used twice in the group). Returns how many.
 */
static size_t hand_out(struct group *g, struct bistore_outcome **outs)
{
    BS_ASSERT(g->n <= GROUP_MAX_TXNS);
    size_t n = 0;
    for (size_t i = 0; i < g->n; i++) {
        struct member *m = &g->members[i];
        if (m->status == MEMBER_LEFT && m->repeats_member)
            outs[n++] = m->item->out;
        if (m->status != MEMBER_APPLIED)
            continue;
        m->item->out->result = m->result;
        m->result = NULL;
        outs[n++] = m->item->out;
    }
    return n;
}

/* ---- the undo, and the end of a group ---- */

void group_end(struct group *g, enum step outcome)
{
    struct engine *e = g->e;
    if (outcome == STEP_FAILED || outcome == STEP_RETRY_ALONE || outcome == STEP_REQUEUE) {
        if (outcome != STEP_REQUEUE)
            metrics_rollback();
        /* A Neo4j transaction whose DELETE fails stays recorded; the writer
         * rolls it back before the next transaction. */
        neo4j_tx_abandon(e, &g->tx);
        struct sql_conn *sql = writer_sql(e);
        if (sql_in_transaction(sql)) /* SQLite may have rolled it back itself */
            sql_rollback(sql);
    }
    if (outcome == STEP_FAILED) {
        fail_members(g, &g->err);
        if (g->aborted)
            record_aborted(e, g->aborted->tx_id, g->aborted->item->txn, &g->err);
    }
    BS_ASSERT(e->open_neo4j_txs == 0); /* committed, DELETEd, or left recorded */
    json_decref(g->statements);
    free(g->want);
    neo4j_result_clear(&g->r);
    for (size_t i = 0; g->members && i < g->n; i++) {
        json_decref(g->members[i].result);
        apply_free(&g->members[i].state);
    }
    free(g->members);
    neo4j_set_request_id(writer_neo4j(e), NULL);
}

/*
 * The group's transaction is rolled back: every member in it gets err,
 * including those that left early. Their answers (an idempotent repeat, a
 * 404/409/412) may have been computed from rows of members that are now
 * gone, so none of them is final (invariant 6).
 */
static void fail_members(struct group *g, const struct bs_error *err)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->members[i].status != MEMBER_ANSWERED)
            outcome_fail(g->members[i].item->out, err);
}

void outcome_fail(struct bistore_outcome *out, const struct bs_error *err)
{
    json_decref(out->result);
    out->result = NULL;
    out->replayed = false;
    out->err = *err;
}

/* ---- what the steps share ---- */

enum idempotency { IDEMPOTENCY_NEW, IDEMPOTENCY_REPEAT, IDEMPOTENCY_REFUSED };

/* An Idempotency-Key seen before: the stored result (a repeat, of the
 * transaction tx_id), or a conflict or failure (refused, out->err set); new
 * otherwise. */
static enum idempotency idempotency_check(struct engine *e, const struct bs_txn *txn,
                                          struct bistore_outcome *out, char tx_id[UUID_STR_LEN])
{
    struct sql_conn *sql = writer_sql(e);
    char hash[HASH_STR_LEN];
    json_t *result = NULL;
    switch (sql_idem_get(sql, txn->idem_key, txn->idem_scope, hash, &result, tx_id, &out->err)) {
    case LOOKUP_MISSING: return IDEMPOTENCY_NEW;
    case LOOKUP_FAILED: return IDEMPOTENCY_REFUSED;
    case LOOKUP_FOUND: break;
    }
    if (strcmp(hash, txn->idem_body_hash) != 0) {
        json_decref(result);
        bs_error_set(&out->err, BS_IDEMPOTENCY_CONFLICT,
                     "Idempotency-Key was used with a different body");
        return IDEMPOTENCY_REFUSED;
    }
    out->result = result;
    out->replayed = true;
    out->neo4j_applied = true;
    json_t *tx = NULL;
    struct bs_error ignored;
    struct sql_landed landed;
    engine_landed(e, &landed);
    if (sql_tx_get(sql, tx_id, &landed, &tx, &ignored) == LOOKUP_FOUND)
        out->neo4j_applied =
            strcmp(json_string_value(json_object_get(tx, "state")), "applied") == 0;
    json_decref(tx);
    /* Pending behind a flight: the flight is the only thing pending, so the
     * first is in it, and its answer says what the flight's says. */
    if (!out->neo4j_applied && e->flight.active)
        flight_follow(e, out);
    return IDEMPOTENCY_REPEAT;
}

/*
 * The results as the logs keep them (new): a raw operation's rows are
 * neither in the audit trail nor in a stored Idempotency-Key result (API.md:
 * they come back on first execution only); the audit keeps its statement.
 */
static json_t *stored_results(const json_t *results, const struct bs_txn *txn, bool audit)
{
    json_t *out = json_array();
    size_t i;
    json_t *r;
    json_array_foreach (results, i, r) {
        bool raw = txn && i < txn->n_ops && op_is_raw(txn->ops[i].kind);
        json_t *copy = !raw    ? json_incref(r)
                       : audit ? json_pack("{s:O, s:s}", "op", json_object_get(r, "op"),
                                           "statement", txn->ops[i].statement)
                               : json_pack("{s:O}", "op", json_object_get(r, "op"));
        if (!out || !copy || json_array_append_new(out, copy) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* A member's result as its Idempotency-Key keeps it (new). */
static json_t *stored_result(const json_t *result, const struct bs_txn *txn)
{
    if (!txn_has_raw(txn))
        return json_incref((json_t *)result);
    json_t *results = stored_results(json_object_get(result, "results"), txn, false);
    json_t *copy = results ? json_copy((json_t *)result) : NULL;
    if (!copy || json_object_set_new(copy, "results", results) != 0) {
        json_decref(copy);
        return NULL;
    }
    return copy;
}

/* Writes the intent, the audit row and the idempotency row of member m. */
static int log_intent(struct engine *e, struct member *m, int64_t seq, const char *stmts_text,
                      struct bs_error *err)
{
    const struct bs_txn *txn = m->item->txn;
    struct sql_conn *sql = writer_sql(e);
    char *stmts = stmts_text ? NULL : json_text_dumps(m->state.cypher.statements);
    json_t *audit = stored_results(m->state.results, txn, true);
    char *ops = audit ? json_text_dumps(audit) : NULL;
    char *prov = txn->provenance ? json_text_dumps(txn->provenance) : NULL;
    json_t *kept = txn->idem_key ? stored_result(m->result, txn) : NULL;
    char *res = kept ? json_text_dumps(kept) : NULL;
    json_decref(audit);
    json_decref(kept);
    int rc = -1;
    if ((!stmts && !stmts_text) || !ops || (txn->provenance && !prov) || (txn->idem_key && !res))
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
    else if (sql_intent_insert(sql, seq, m->tx_id, stmts_text ? stmts_text : stmts, m->state.now,
                               err) == 0 &&
             sql_tx_insert(sql, m->tx_id, seq, "committed", m->state.now, ops, NULL, prov, err) ==
                 0 &&
             (!txn->idem_key ||
              sql_idem_insert(sql, txn->idem_key, txn->idem_scope, txn->idem_body_hash, res,
                              m->tx_id, m->state.now, err) == 0))
        rc = 0;
    free(stmts);
    free(ops);
    free(prov);
    free(res);
    return rc;
}

/*
 * Applies member m in its own SAVEPOINT with intent seq: true when it is in
 * the group (its rows, intent, audit and idempotency rows), false when it
 * left it (its answer, or error, is in its outcome).
 */
static bool apply_member(struct group *g, struct member *m, int64_t seq)
{
    struct engine *e = g->e;
    struct sql_conn *sql = writer_sql(e);
    const struct commit_item *item = m->item;
    struct bistore_outcome *out = item->out;
    struct bs_error *err = &out->err;
    BS_ASSERT(sql_in_transaction(sql)); /* else SAVEPOINT would begin one of its own */
    BS_ASSERT(seq == e->last_seq + 1 + (int64_t)g->applied); /* intents follow the log */
    if (sql_savepoint(sql, err) != 0)
        return false;
    char first_tx[UUID_STR_LEN] = "";
    enum idempotency idem =
        item->txn->idem_key ? idempotency_check(e, item->txn, out, first_tx) : IDEMPOTENCY_NEW;
    if (idem != IDEMPOTENCY_NEW) {
        sql_savepoint_rollback(sql);
        for (size_t i = 0; idem == IDEMPOTENCY_REPEAT && i < g->n; i++)
            if (g->members[i].status == MEMBER_APPLIED &&
                strcmp(g->members[i].tx_id, first_tx) == 0)
                m->repeats_member = true;
        return false; /* a replayed result, or a conflict */
    }
    int rc = item->apply ? item->apply(e, item->apply_ctx, &m->state, err)
                         : apply_txn(e, item->txn, &m->state, err);
    if (rc == 0 && m->pipe) /* the last statements go out */
        rc = m->pipe->flush(m->pipe->arg, &m->state, err);
    if (rc == 0) {
        m->result = json_pack("{s:s, s:O, s:O}", "tx_id", m->tx_id, "results", m->state.results,
                              "records", m->state.records);
        /* a pipelined member's statements as sent (NULL: serialised here) */
        const char *text = m->pipe ? m->pipe->statements_text(m->pipe->arg) : NULL;
        rc = m->result ? log_intent(e, m, seq, text, err)
                       : (bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1);
    }
    if (rc == 0 && m->pipe) /* and every answer checked, in the savepoint still */
        rc = m->pipe->finish(m->pipe->arg, &m->state, err);
    if (rc == 0) /* a savepoint that will not merge leaves like any failure */
        rc = sql_savepoint_release(sql, err);
    if (rc != 0) {
        if (m->pipe)
            m->pipe->settle(m->pipe->arg);
        sql_savepoint_rollback(sql);
        if (err->code != BS_STORAGE_ERROR && err->code != BS_NEO4J_UNAVAILABLE)
            record_aborted(e, m->tx_id, item->txn, err); /* inside the group's transaction */
        return false;
    }
    m->seq = seq;
    return true;
}

/* Records a transaction that reached the stores and was rolled back. */
static void record_aborted(struct engine *e, const char *tx_id, const struct bs_txn *txn,
                           const struct bs_error *failure)
{
    json_t *ops = json_array();
    for (size_t i = 0; ops && i < txn->n_ops; i++)
        json_array_append_new(ops,
                              op_is_raw(txn->ops[i].kind)
                                  ? json_pack("{s:s, s:s}", "op", op_kind_name(txn->ops[i].kind),
                                              "statement", txn->ops[i].statement)
                                  : json_pack("{s:s, s:s}", "op", op_kind_name(txn->ops[i].kind),
                                              "id", txn->ops[i].id));
    json_t *e_json =
        json_pack("{s:s, s:s}", "code", bs_code_name(failure->code), "message", failure->message);
    if (e_json && failure->field[0])
        json_object_set_new(e_json, "field", json_string(failure->field));
    if (e_json && failure->op_index >= 0)
        json_object_set_new(e_json, "operation_index", json_integer(failure->op_index));
    char *ops_text = ops ? json_text_dumps(ops) : NULL;
    char *e_text = e_json ? json_text_dumps(e_json) : NULL;
    char *prov = txn->provenance ? json_text_dumps(txn->provenance) : NULL;
    char now[TIMESTAMP_LEN];
    time_now_rfc3339(now);
    struct bs_error err;
    bs_error_clear(&err);
    if (sql_tx_insert(writer_sql(e), tx_id, -1, "aborted", now, ops_text, e_text, prov, &err) != 0)
        log_error("cannot record aborted transaction %s: %s", tx_id, err.message);
    free(ops_text);
    free(e_text);
    free(prov);
    json_decref(ops);
    json_decref(e_json);
}
