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

/* Writes a fresh UUIDv7. Thread-safe. */
void ids_uuid7(char out[UUID_STR_LEN]);
/* True when s is a valid supplied id: 1..128 chars of [A-Za-z0-9._:-]. */
bool ids_valid(const char *s);

#endif
