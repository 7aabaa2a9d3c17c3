/*
 * The pieces of the commit protocol (commit.c) that the pipelined commit of
 * a large transaction (pipeline.c) runs too: a group, its members, the
 * outcome of a step, and the steps both run. Inside stores/engine/ only.
 */
#ifndef BISTORE_COMMIT_H
#define BISTORE_COMMIT_H

#include "stores/engine/internal.h"

/* How a step of the protocol ended. */
enum step {
    STEP_NEXT,        /* on to the next step */
    STEP_DECIDED,     /* the group is decided: every member has its answer */
    STEP_FAILED,      /* undo (both stores rolled back); every member in the group answers
                         the group's error */
    STEP_RETRY_ALONE, /* Neo4j refused a statement of a group of several: undo quietly,
                         then each member again alone, so one cannot fail its neighbours */
    STEP_REQUEUE,     /* the flight before this group did not land: undo quietly; the
                         members go again after the replay (COMMIT_REQUEUE) */
};

/* Where a member of a group stands. */
enum member_status {
    MEMBER_WAITING,  /* not applied yet */
    MEMBER_APPLIED,  /* its rows and intent (seq) are in the group's SQLite transaction */
    MEMBER_LEFT,     /* left the group inside its transaction (an idempotent repeat, a
                        404/409/412): its answer stands only if the group commits */
    MEMBER_ANSWERED, /* answered before the group began (out of memory) */
};

/* A member whose statements go to Neo4j while it is applied (pipelined). */
struct member_pipe {
    /* The statements not sent yet go out (after it the text below is
     * whole; the intent is written while they run): 0, or -1 with err. */
    int (*flush)(void *arg, struct apply_state *state, struct bs_error *err);
    /* Every answer checked: 0, or -1 with err. */
    int (*finish)(void *arg, struct apply_state *state, struct bs_error *err);
    /* Every data statement sent, as the JSON array text the intent keeps. */
    const char *(*statements_text)(void *arg);
    /* The member failed: waits for a request still in flight. */
    void (*settle)(void *arg);
    void *arg;
};

struct member {
    struct commit_item *item;
    struct apply_state state;
    char tx_id[UUID_STR_LEN];
    enum member_status status;
    int64_t seq;                    /* its intent, once applied */
    size_t first_stmt;              /* its first data statement in the group's list */
    json_t *result;                 /* its answer, given out at the commit point */
    const struct member_pipe *pipe; /* NULL: its statements go with the group's */
    /* An idempotent repeat of a member of this group (the same key at the
     * same moment): its answer says Neo4j's outcome of the group, as the
     * first's does, not the "pending" of the moment it was read. */
    bool repeats_member;
};

struct group {
    struct engine *e;
    struct member *members;
    size_t n;
    size_t applied; /* members applied (MEMBER_APPLIED) */
    struct neo4j_tx tx;
    json_t *statements; /* the guard, then the members' data statements */
    size_t *want;       /* rows each data statement must touch */
    size_t n_data;      /* data statements */
    bool joined;        /* the one data statement travels joined to the guard */
    struct neo4j_result r;
    struct bs_error err;    /* the group's error, when a step fails */
    struct member *aborted; /* the member at fault, recorded as aborted after the undo */
    bool may_fly;           /* Neo4j's commit may be left in flight (commit_group) */
    bool in_flight;         /* it was */
};

/* The steps both commits run, in this order among their own. */
enum step group_init(struct group *g, struct engine *e, struct commit_item *items, size_t n);
enum step begin_sqlite(struct group *g);
enum step apply_members(struct group *g);
enum step commit_point(struct group *g);
/* Undoes a failed group (the Neo4j transaction DELETEd, SQLite rolled
 * back, every member told), then frees it. */
void group_end(struct group *g, enum step outcome);

/* A transaction of PIPELINE_MIN_OPS operations or more, alone (pipeline.c). */
void commit_pipelined(struct engine *e, struct commit_item *item);

#endif
