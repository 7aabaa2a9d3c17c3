/*
 * Compact JSON text, written into bounded buffers, in two key orders.
 *
 * Both forms: no whitespace, strings as UTF-8 with only '"', '\\' and control
 * characters escaped (\b \f \n \r \t, else \u00XX), integers in decimal,
 * reals in the shortest form that reads back to the same double and always
 * with a '.' or an exponent (so 1.0 stays a real).
 *
 *   text form       object keys in insertion order: how answers, intents and
 *                   Neo4j requests are written (faster than json_dumps, and
 *                   reals in their shortest exact form);
 *   canonical form  object keys sorted by byte value: what record hashes are
 *                   computed over (stores/model/canon.h), so the same value
 *                   read back from either store gives the same bytes.
 */
#ifndef BISTORE_JSON_TEXT_H
#define BISTORE_JSON_TEXT_H

#include <jansson.h>

#include "common/buf.h"

/* Appends v to out in the text form. */
enum buf_status json_text_append(struct buf *out, const json_t *v);
/* Appends v to out in the canonical form. */
enum buf_status json_canon_append(struct buf *out, const json_t *v);
/* The text form of v as a new string (free() it), or NULL on no memory. */
char *json_text_dumps(const json_t *v);
/* The canonical form of v as a new string (free() it), or NULL on no memory. */
char *json_canon_dumps(const json_t *v);

/* The pieces, for writers of a known shape (record hashes): a JSON string
 * of the len bytes at s, and an integer. */
enum buf_status json_text_append_string(struct buf *out, const char *s, size_t len);
enum buf_status json_text_append_integer(struct buf *out, json_int_t v);

#endif
