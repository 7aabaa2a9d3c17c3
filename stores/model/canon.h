/*
 * The content hash of mirrored records, and the forms a record takes in
 * each store.
 *
 * The hash of a record is XXH64 (seed 0) of its canonical JSON
 * (json_canon_append, common/json_text.h), written as 16 lowercase hex
 * digits; that string is SQLite's `hash` and Neo4j's `_h`. Both stores'
 * content is compared through the canonical form, so the same value read
 * back from Neo4j or SQLite gives the same bytes.
 */
#ifndef BISTORE_CANON_H
#define BISTORE_CANON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/json_text.h"

#define HASH_STR_LEN 17

/* hex = XXH64 of the canonical JSON of v. Returns 0, or -1 on no memory. */
int canon_hash(const json_t *v, char hex[HASH_STR_LEN]);

/*
 * The hashed form of an entity: {"id","properties","type","version"}.
 * Of a relationship: {"id","properties","source","target","type","version"}.
 * New references (json_decref them); NULL on no memory.
 */
json_t *canon_entity_record(const char *id, const char *type, json_t *properties, int64_t version);
json_t *canon_relationship_record(const char *id, const char *type, const char *source,
                                  const char *target, json_t *properties, int64_t version);

/*
 * The same hashes without building the record: properties given as their
 * canonical JSON text (json_canon_append), which the caller also stores. What
 * canon_hash gives for canon_entity_record / canon_relationship_record of
 * the same fields (source and target unused for an entity). scratch is
 * the caller's (reset here, kept for the next call). 0, or -1 on no memory.
 */
struct canon_record {
    const char *id, *type, *source, *target;
    const char *properties;
    size_t properties_len;
    int64_t version;
};
int canon_entity_hash(struct buf *scratch, const struct canon_record *r, char hex[HASH_STR_LEN]);
int canon_relationship_hash(struct buf *scratch, const struct canon_record *r,
                            char hex[HASH_STR_LEN]);

/*
 * The hash's two 30-bit parts, which reconciliation sums per id range in
 * each store (stores/reconcile/ranges.c): h1 is bits 63..34 of the 64-bit
 * hash, h2 bits 33..4. Thirty bits each, so a sum over 2^33 records still
 * fits a signed 64-bit integer (SQLite's sum() and Cypher's both stop at
 * that, SQLite with an error); two parts, so that two records' differences
 * cancel in both sums with odds of about 2^-60. Neo4j stores them as _h1 and
 * _h2 beside _h (written with it, so they are never older than it); SQLite
 * derives them from its hash column in the query. 0, or -1 when hex is not
 * 16 lowercase hex digits.
 */
int canon_hash_parts(const char *hex, int64_t *h1, int64_t *h2);

/*
 * The id part of an entity: a 30-bit polynomial hash of its id, h = (h *
 * 131 + code(c)) mod 2^30 over its characters, code(c) the position (from
 * 1) of c in CANON_ID_ALPHABET (the id rule's characters in byte order);
 * -1 for an empty id or one with any other character. Neo4j stores it as
 * _hid on the entity's node (an id never changes, so neither does it); a
 * relationship range's checksum sums it over its endpoints, which SQLite
 * computes from source_id and target_id without reading the entities.
 */
#define CANON_ID_ALPHABET "-.0123456789:ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
int64_t canon_id_part(const char *id);

/* The checksum of a range of records in one store: how many, and the sums
 * of their hash parts and versions; for relationships also the sums of the
 * id parts of their source and target entities, which tell where each one
 * points (a relationship moved to another node keeps its own hash; 0 for
 * entities). */
struct canon_sums {
    int64_t count, h1, h2, version, source, target;
};

/*
 * The property map Neo4j holds for a record: its mirrored properties plus
 * id, _v, _h, _h1 and _h2 (no parts when hash is not 16 hex digits: a
 * repair from a damaged row); a new reference, NULL on no memory.
 */
json_t *canon_neo4j_map(const char *id, const json_t *properties, int64_t version,
                        const char *hash);
/* An entity's: the same plus _hid (canon_id_part; none for an id outside
 * the rule). */
json_t *canon_neo4j_entity_map(const char *id, const json_t *properties, int64_t version,
                               const char *hash);
/* True when a and b have the same canonical JSON (false when out of memory). */
bool canon_equal(const json_t *a, const json_t *b);

/* The mirrored properties of a Neo4j property map: without id, _v, _h, _h1,
 * _h2 and _hid (a new object; an empty one when props is not an object). */
json_t *canon_mirrored(const json_t *props);

#endif
