/*
 * A large transaction, pipelined: the commit protocol of commit.c for one
 * transaction of PIPELINE_MIN_OPS operations or more, alone.
 *
 * Its statements go to Neo4j in chunks of about PIPELINE_CHUNK_ROWS rows
 * while the operations after them are applied to SQLite: Neo4j's execution
 * and SQLite's overlap instead of adding up. The protocol is the same: the
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

#define PIPELINE_CHUNK_ROWS 1000
/* The statements' text: bounded by the request body, far below this. */
#define PIPELINE_TEXT_MAX ((size_t)1 << 31)

struct pipeline {
    struct group *g;
    struct member_pipe hooks;   /* the member's: finish, statements_text, settle */
    struct neo4j_client *neo4j; /* the writer's, lent to the request thread */
    int64_t prev, seq;          /* the guard */
    size_t shipped;             /* data statements sent so far */
    /* the request in flight */
    bool in_flight, guard, guard_sent;
    struct background call;
    json_t *request;
    size_t first, count; /* its data statements */
    struct neo4j_result r;
    enum neo4j_status status;
    /* every data statement sent, as JSON text ("{...},{...}"): serialised
     * once, off the writer's path, for the request and for the intent */
    struct buf text;
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
    buf_free(&p.text);
}

/* ---- its own steps, in the order they run ---- */

static int pipeline_after_op(void *arg, struct apply_state *state, struct bs_error *err);
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
        cypher_add_watermark_guard(p->guard_stmt, e->store_id, p->prev, p->seq) != 0)
        return bs_error_set(&g->err, BS_STORAGE_ERROR, "out of memory"), STEP_FAILED;
    p->hooks = (struct member_pipe){pipeline_finish, pipeline_statements_text, pipeline_settle, p};
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

/* The request thread: serialises the chunk's statements onto the kept text
 * (for the intent) and sends them, after the guard when it goes first. */
static void *pipeline_send(void *arg)
{
    struct pipeline *p = arg;
    enum buf_status written = p->text.len ? buf_append_char(&p->text, ',') : BUF_OK;
    size_t start = p->text.len;
    for (size_t i = 0; i < json_array_size(p->request) && written == BUF_OK; i++) {
        if (i)
            written = buf_append_char(&p->text, ',');
        if (written == BUF_OK)
            written = json_text_append(&p->text, json_array_get(p->request, i));
    }
    struct buf first;
    buf_init(&first, (size_t)1 << 20);
    if (written == BUF_OK && p->guard) {
        written = json_text_append(&first, json_array_get(p->guard_stmt, 0));
        if (written == BUF_OK && p->text.len > start)
            written = buf_append_char(&first, ',');
        if (written == BUF_OK)
            written = buf_append(&first, buf_str(&p->text) + start, p->text.len - start);
    }
    neo4j_result_clear(&p->r);
    if (written != BUF_OK) {
        p->text_failed = true;
        p->r.status = p->status = NEO4J_DATABASE_ERROR;
        snprintf(p->r.message, sizeof p->r.message, "out of memory");
    } else if (p->guard) {
        p->status = neo4j_run_text(p->neo4j, p->g->tx.path, buf_str(&first), first.len, &p->r);
    } else {
        p->status = neo4j_run_text(p->neo4j, p->g->tx.path, buf_str(&p->text) + start,
                                   p->text.len - start, &p->r);
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
    json_decref(p->request);
    p->request = NULL;
    size_t base = p->guard ? 1 : 0;
    int rc = 0;
    if (p->status != NEO4J_OK) {
        long op_index = -1;
        long at = p->r.statement_index - (long)base;
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
    json_t *req = json_array();
    for (size_t i = p->shipped; req && i < total; i++)
        if (json_array_append(req, json_array_get(state->cypher.statements, i)) != 0) {
            json_decref(req);
            req = NULL;
        }
    if (!req)
        return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
    p->request = req;
    p->guard = !p->guard_sent;
    p->guard_sent = true;
    p->first = p->shipped;
    p->count = total - p->shipped;
    p->shipped = total;
    p->in_flight = true;
    background_start(&p->call, pipeline_send, p);
    return 0;
}

/* After each operation: ships a chunk once enough rows wait. */
static int pipeline_after_op(void *arg, struct apply_state *state, struct bs_error *err)
{
    struct pipeline *p = arg;
    size_t rows = cypher_open_rows(&state->cypher);
    for (size_t i = p->shipped; i < cypher_batch_count(&state->cypher); i++)
        rows += state->cypher.expected[i] == CYPHER_ANY_COUNT ? 1 : state->cypher.expected[i];
    if (rows < PIPELINE_CHUNK_ROWS)
        return 0;
    if (cypher_batch_finish(&state->cypher) != 0)
        return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
    return pipeline_ship(p, state, err);
}

/* ---- the member's hooks ---- */

/* The statements left, and every answer checked: 0, or -1 with err set. */
static int pipeline_finish(void *arg, struct apply_state *state, struct bs_error *err)
{
    struct pipeline *p = arg;
    if (pipeline_ship(p, state, err) != 0 || pipeline_wait(p, state, err) != 0)
        return -1;
    if (p->shipped != cypher_batch_count(&state->cypher) || p->text_failed)
        return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
    return 0;
}

/* Every data statement sent, as the JSON array the intent log keeps. */
static const char *pipeline_statements_text(void *arg)
{
    struct pipeline *p = arg;
    /* "{...},{...}" becomes "[{...},{...}]" in place */
    if (buf_append_char(&p->text, ']') != BUF_OK || buf_append_char(&p->text, '\0') != BUF_OK)
        return NULL;
    memmove(p->text.data + 1, p->text.data, p->text.len - 1);
    p->text.data[0] = '[';
    return p->text.data;
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
