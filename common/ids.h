/*
 * UUIDv7 (RFC 9562) ids: 48-bit Unix milliseconds, version 7, a 12-bit
 * sub-millisecond counter in rand_a (RFC 9562 section 6.2, method 1), the
 * variant, and 62 random bits. Ids from one process are strictly increasing
 * across all threads (a lock-free counter; a burst of more than 4096 ids in
 * one millisecond borrows from the next millisecond rather than repeat).
 */
#ifndef BISTORE_IDS_H
#define BISTORE_IDS_H

#include <stdbool.h>
#include <stddef.h>

#define UUID_STR_LEN 37 /* 36 chars + NUL, lowercase canonical form */
#define ID_MAX_LEN 128
#define NAME_MAX_LEN 64

/* The id rule in words, for error messages. */
#define IDS_RULE "1..128 characters of [A-Za-z0-9._:-], other than \".\" and \"..\""

/* Writes a fresh UUIDv7. Thread-safe. */
void ids_uuid7(char out[UUID_STR_LEN]);
/*
 * The one id rule, for every id: supplied by a client (in a body or a
 * path), generated here, or found in Neo4j by a reconciliation that would
 * write it (stores/reconcile/repair.c). 1..128 characters of [A-Za-z0-9._:-], except
 * "." and "..", which a URL cannot carry as a path segment (clients and
 * proxies remove them, RFC 3986 section 5.2.4), so a record under them
 * could never be read back. ids_valid_len checks the n bytes at s (a NUL
 * among them fails: a path argument "abc%00zzz" is 7 bytes, not "abc").
 */
bool ids_valid_len(const char *s, size_t n);
bool ids_valid(const char *s);
/* The name rule, ^[A-Za-z][A-Za-z0-9_]{0,63}$: an identifier that may go
 * into query text (entity types, relationship types, property keys: see
 * model_valid_name) or into an error's field path. */
bool ids_valid_name(const char *s);

/* The value of one hexadecimal digit (either case), or -1. */
int ids_hex_digit(char c);

#endif
