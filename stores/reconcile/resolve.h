/*
 * Settling an intent that Neo4j refuses on replay (stores/resolve.c): the
 * operator's way out when the writer stops at such an intent.
 */
#ifndef BISTORE_RESOLVE_H
#define BISTORE_RESOLVE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/result.h"
#include "stores/reconcile/reconcile.h"

struct bistore;

/*
 * Settles intent seq, which must be the one Neo4j refuses, under policy
 * (sqlite_wins or neo4j_wins): its objects are made to agree through the
 * commit protocol (the intent's statements are replaced and replayed
 * exactly once). With dry_run nothing is written. report (caller's):
 * {"seq","tx_id","policy","dry_run","objects":[{"object","id","action",...}]}.
 * 400 invalid_request when seq is not the refused intent or the policy
 * cannot make an object agree (nothing written).
 */
int bistore_resolve_intent(struct bistore *bs, int64_t seq, enum recon_repair policy, bool dry_run,
                           json_t **report, struct bs_error *err);

/* The intent Neo4j refuses: {"seq","tx_id","operations","refused"}; 1 when none. */
int bistore_refused_intent(struct bistore *bs, json_t **out, struct bs_error *err);

#endif
