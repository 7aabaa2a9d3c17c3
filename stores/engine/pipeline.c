/*
 * A large transaction, pipelined: the commit protocol of commit.c for one
 * transaction of PIPELINE_MIN_OPS operations or more, alone.
 *
 * Its statements go to Neo4j in chunks while the operations after them are
 * applied to SQLite: Neo4j's execution and SQLite's overlap instead of
 * adding up. A chunk is what waits when Neo4j is done with the one before
 * (at least PIPELINE_MIN_ROWS rows, PIPELINE_FIRST_ROWS for the first, at
 * most PIPELINE_MAX_ROWS): the first goes out early, and while Neo4j is
 * the slower side the writer applies on instead of waiting, so later
 * chunks grow and fewer requests carry the transaction. Its intent is
 * written while the last chunk is in Neo4j. The protocol is the same: the
 * Neo4j transaction is opened (fresh) and recorded before anything runs in
 * it, the first chunk starts with the guarded watermark, every count is
 * checked before SQLite's commit point, and any failure rolls back both.
 * The steps it shares with a group (commit.h) run in the same order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/background.h"
#include "common/json_text.h"
#include "stores/engine/commit.h"

#define PIPELINE_FIRST_ROWS 500 /* the first chunk: Neo4j starts early */
#define PIPELINE_MIN_ROWS 1000  /* the others: each request costs Neo4j too */
#define PIPELINE_MAX_ROWS 4000
/* The statements' text: bounded by the request body, far below this. */
#define PIPELINE_TEXT_MAX ((size_t)1 << 31)

struct pipeline {
    struct group *g;
    struct member_pipe hooks;   /* the member's: flush, finish, statements_text, settle */
    struct neo4j_client *neo4j; /* the writer's, lent to the request thread */
    int64_t prev, seq;          /* the guard */
    size_t shipped;             /* data statements sent so far */
    /* the request in flight */
    bool in_flight, guard, guard_sent;
    struct background call;
    size_t first, count; /* its data statements */
    struct neo4j_result r;
    enum neo4j_status status;
    /* every data statement sent, as JSON text ("{...},{...}"): serialised
     * once, for the requests and for the intent; the writer appends to it
     * only while no request is in flight (the request reads its part) */
    struct buf text;
    size_t text_start; /* where the request in flight's statements begin */
    char *intent_text; /* "[text]", for the intent */
    bool text_failed;
    json_t *guard_stmt; /* the guarded watermark, sent first */
};

static enum step pipeline_prepare(struct pipeline *p, struct group *g);
static enum step create_txn_constraints(struct group *g);
static enum step open_fresh_transaction(struct group *g);

/* ---- the entry point ---- */

void commit_pipelined(struct engine *e, struct commit_item *item)
{
    struct pipeline p = {0};
    buf_init(&p.text, PIPELINE_TEXT_MAX);
    struct group g;
    enum step s = group_init(&g, e, item, 1);
    if (s == STEP_NEXT)
        s = pipeline_prepare(&p, &g);
    if (s == STEP_NEXT)
        s = create_txn_constraints(&g); /* schema first: not in the data's transaction */
    if (s == STEP_NEXT)
        s = open_fresh_transaction(&g); /* before SQLite: chunks go out while applying */
    if (s == STEP_NEXT)
        s = begin_sqlite(&g);
    if (s == STEP_NEXT)
        s = apply_members(&g); /* ships the chunks, checks every answer */
    if (s == STEP_NEXT)
        s = commit_point(&g);
    group_end(&g, s);
    json_decref(p.guard_stmt);
    free(p.intent_text);
    buf_free(&p.text);
}

/* ---- its own steps, in the order they run ---- */

static int pipeline_after_op(void *arg, struct apply_state *state, struct bs_error *err);
static int pipeline_flush(void *arg, struct apply_state *state, struct bs_error *err);
static int pipeline_finish(void *arg, struct apply_state *state, struct bs_error *err);
static const char *pipeline_statements_text(void *arg);
static void pipeline_settle(void *arg);

/* The guard (last_seq -> last_seq + 1), and the member's hooks. */
static enum step pipeline_prepare(struct pipeline *p, struct group *g)
{
    struct engine *e = g->e;
    struct member *m = &g->members[0];
    if (m->status == MEMBER_ANSWERED)
        return STEP_DECIDED;
    p->g = g;
    p->neo4j = writer_neo4j(e);
    p->prev = e->last_seq;
    p->seq = e->last_seq + 1;
    p->guard_stmt = json_array();
    if (!p->guard_stmt ||
        cypher_add_watermark_guard(p->guard_stmt, e->store_id, e->epoch, p->prev, p->seq) != 0)
        return bs_error_set(&g->err, BS_STORAGE_ERROR, "out of memory"), STEP_FAILED;
    p->hooks = (struct member_pipe){pipeline_flush, pipeline_finish, pipeline_statements_text,
                                    pipeline_settle, p};
    m->pipe = &p->hooks;
    m->state.after_op = pipeline_after_op;
    m->state.after_op_arg = p;
    return STEP_NEXT;
}

/* The relationship types of the transaction new to Neo4j get their
 * constraint first: schema statements cannot run inside the data's
 * transaction, which is open while the operations are applied. */
static enum step create_txn_constraints(struct group *g)
{
    struct member *m = &g->members[0];
    const struct bs_txn *txn = m->item->txn;
    for (size_t i = 0; i < txn->n_ops; i++)
        if (txn->ops[i].kind == OP_CREATE_RELATIONSHIP &&
            apply_note_rel_type(g->e, &m->state, txn->ops[i].type, &g->err) != 0) {
            g->err.op_index = (long)i;
            m->state.n_new_rel_types = 0;
            return STEP_FAILED;
        }
    int rc = create_rel_constraints(g->e, &m->state, &g->err);
    m->state.n_new_rel_types = 0;
    return rc == 0 ? STEP_NEXT : STEP_FAILED;
}

/* A fresh transaction: a spare lost to a Neo4j restart would fail mid-way. */
static enum step open_fresh_transaction(struct group *g)
{
    if (neo4j_tx_open(g->e, &g->tx, false, &g->r) == NEO4J_OK)
        return STEP_NEXT;
    statement_failure(&g->r, -1, &g->err);
    if (g->err.code == BS_NEO4J_UNAVAILABLE)
        readiness_set(g->e, false, "%s", g->err.message);
    return STEP_FAILED;
}

/* ---- the chunks ---- */

/* Appends statements [from, to) to the kept text: 0, or -1 when out of memory. */
static int pipeline_serialise(struct pipeline *p, json_t *statements, size_t from, size_t to)
{
    enum buf_status written = p->text.len ? buf_append_char(&p->text, ',') : BUF_OK;
    p->text_start = p->text.len;
    for (size_t i = from; i < to && written == BUF_OK; i++) {
        if (i > from)
            written = buf_append_char(&p->text, ',');
        if (written == BUF_OK)
            written = json_text_append(&p->text, json_array_get(statements, i));
    }
    return written == BUF_OK ? 0 : -1;
}

/* The request thread: sends the chunk, after the guard when it goes first. */
static void *pipeline_send(void *arg)
{
    struct pipeline *p = arg;
    const char *chunk = buf_str(&p->text) + p->text_start;
    size_t len = p->text.len - p->text_start;
    neo4j_result_clear(&p->r);
    if (!p->guard) {
        p->status = neo4j_run_text(p->neo4j, p->g->tx.path, chunk, len, &p->r);
        return NULL;
    }
    struct buf first;
    buf_init(&first, PIPELINE_TEXT_MAX);
    enum buf_status written = json_text_append(&first, json_array_get(p->guard_stmt, 0));
    if (written == BUF_OK && len)
        written = buf_append_char(&first, ',');
    if (written == BUF_OK)
        written = buf_append(&first, chunk, len);
    if (written != BUF_OK) {
        p->text_failed = true;
        p->r.status = p->status = NEO4J_DATABASE_ERROR;
        snprintf(p->r.message, sizeof p->r.message, "out of memory");
    } else {
        p->status = neo4j_run_text(p->neo4j, p->g->tx.path, buf_str(&first), first.len, &p->r);
    }
    buf_free(&first);
    return NULL;
}

/* Waits for the request in flight and checks its answer: 0, or -1 with err set. */
static int pipeline_wait(struct pipeline *p, const struct apply_state *state, struct bs_error *err)
{
    if (!p->in_flight)
        return 0;
    background_wait(&p->call);
    p->in_flight = false;
    size_t base = p->guard ? 1 : 0;
    int rc = 0;
    if (p->status != NEO4J_OK && p->text_failed) { /* ours, not Neo4j's */
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
        rc = -1;
    } else if (p->status != NEO4J_OK) {
        long op_index = -1;
        /* every statement of a chunk is the gateway's own: it answers a count */
        long at = neo4j_refused_statement(&p->r, base + p->count, true) - (long)base;
        if (p->r.status == NEO4J_CLIENT_ERROR && at >= 0 &&
            p->first + (size_t)at < state->n_stmt_first_op)
            op_index = (long)state->stmt_first_op[p->first + (size_t)at];
        statement_failure(&p->r, op_index, err);
        if (err->code == BS_NEO4J_UNAVAILABLE)
            readiness_set(p->g->e, false, "%s", err->message);
        rc = -1;
    } else if (p->guard && neo4j_row_count(&p->r, 0) != 1) {
        bs_error_set(err, BS_NEO4J_ERROR, "the watermark node of store %s is missing",
                     p->g->e->store_id);
        rc = -1;
    } else {
        for (size_t i = 0; i < p->count && rc == 0; i++)
            if (count_differs(neo4j_cell(&p->r, base + i, 0, 0),
                              state->cypher.expected[p->first + i], err))
                rc = -1;
    }
    neo4j_result_clear(&p->r);
    return rc;
}

/* Sends the statements not sent yet (the guard first, once), after the
 * request before them was answered and checked. */
static int pipeline_ship(struct pipeline *p, const struct apply_state *state, struct bs_error *err)
{
    if (pipeline_wait(p, state, err) != 0)
        return -1;
    size_t total = cypher_batch_count(&state->cypher);
    if (total == p->shipped && p->guard_sent)
        return 0;
    if (pipeline_serialise(p, state->cypher.statements, p->shipped, total) != 0) {
        p->text_failed = true;
        return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
    }
    p->guard = !p->guard_sent;
    p->guard_sent = true;
    p->first = p->shipped;
    p->count = total - p->shipped;
    p->shipped = total;
    p->in_flight = true;
    background_start(&p->call, pipeline_send, p);
    return 0;
}

/* After each operation: ships a chunk once enough rows wait and Neo4j is
 * done with the one before, or too many wait to go on without it. */
static int pipeline_after_op(void *arg, struct apply_state *state, struct bs_error *err)
{
    struct pipeline *p = arg;
    size_t rows = cypher_open_rows(&state->cypher);
    for (size_t i = p->shipped; i < cypher_batch_count(&state->cypher); i++)
        rows += state->cypher.expected[i] == CYPHER_ANY_COUNT ? 1 : state->cypher.expected[i];
    if (rows < (p->guard_sent ? PIPELINE_MIN_ROWS : PIPELINE_FIRST_ROWS) ||
        (rows < PIPELINE_MAX_ROWS && p->in_flight && !background_returned(&p->call)))
        return 0;
    if (cypher_batch_finish(&state->cypher) != 0)
        return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
    return pipeline_ship(p, state, err);
}

/* ---- the member's hooks ---- */

/* The statements left go out (the text is whole after it): 0, or -1 with err set. */
static int pipeline_flush(void *arg, struct apply_state *state, struct bs_error *err)
{
    return pipeline_ship(arg, state, err); /* apply_txn closed the last group */
}

/* Every answer checked: 0, or -1 with err set. */
static int pipeline_finish(void *arg, struct apply_state *state, struct bs_error *err)
{
    struct pipeline *p = arg;
    if (pipeline_wait(p, state, err) != 0)
        return -1;
    if (p->shipped != cypher_batch_count(&state->cypher) || p->text_failed)
        return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
    return 0;
}

/* Every data statement sent, as the JSON array the intent log keeps: a
 * copy, since the last request may still be reading the text. */
static const char *pipeline_statements_text(void *arg)
{
    struct pipeline *p = arg;
    free(p->intent_text);
    p->intent_text = malloc(p->text.len + 3);
    if (!p->intent_text)
        return NULL;
    p->intent_text[0] = '[';
    if (p->text.len)
        memcpy(p->intent_text + 1, p->text.data, p->text.len);
    p->intent_text[p->text.len + 1] = ']';
    p->intent_text[p->text.len + 2] = '\0';
    return p->intent_text;
}

/* SQLite's error or a chunk's is the answer; a chunk still in flight is
 * waited for before its transaction is rolled back. */
static void pipeline_settle(void *arg)
{
    struct pipeline *p = arg;
    struct bs_error ignored;
    bs_error_clear(&ignored);
    pipeline_wait(p, &p->g->members[0].state, &ignored);
}
