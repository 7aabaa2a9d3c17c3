/*
 * Canonical JSON and the content hash of mirrored records.
 *
 * Canonical form: object keys sorted by byte value, no whitespace, strings
 * as UTF-8 with only '"', '\\' and control characters escaped (\b \f \n \r
 * \t, else \u00XX), integers in decimal, reals in the shortest form that
 * reads back to the same double and always with a '.' or an exponent (so
 * 1.0 stays a real). Both stores' content is compared through this form, so
 * the same value read back from Neo4j or SQLite gives the same bytes.
 *
 * The hash of a record is XXH64 (seed 0) of its canonical JSON, written as
 * 16 lowercase hex digits; that string is SQLite's `hash` and Neo4j's `_h`.
 */
#ifndef BISTORE_CANON_H
#define BISTORE_CANON_H

#include <jansson.h>
#include <stdint.h>

#include "common/buf.h"

#define HASH_STR_LEN 17

/* Appends the canonical JSON of v to out. */
enum buf_status canon_append(struct buf *out, const json_t *v);
/* Compact JSON of v with keys in insertion order and reals as in the
 * canonical form (shortest round trip): how answers are written. */
enum buf_status json_text_append(struct buf *out, const json_t *v);
/* The canonical JSON of v as a new string (free() it), or NULL on no memory. */
char *canon_dumps(const json_t *v);
/* json_text_append's text of v as a new string (free() it), or NULL on no
 * memory: how intents and Neo4j requests are written (faster than
 * json_dumps, and reals in their shortest exact form). */
char *json_text_dumps(const json_t *v);
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
 * canonical JSON text (canon_append), which the caller also stores. What
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
 * The property map Neo4j holds for a record: its mirrored properties plus
 * id, _v and _h (a new reference; NULL on no memory).
 */
json_t *canon_neo4j_map(const char *id, const json_t *properties, int64_t version,
                        const char *hash);
/* The mirrored properties of a Neo4j property map: without id, _v and _h
 * (a new object; an empty one when props is not an object). */
json_t *canon_mirrored(const json_t *props);

#endif
