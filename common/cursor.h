/*
 * Opaque pagination cursors: base64url (no padding) of a key. Clients must
 * treat them as opaque; the gateway decodes and validates them.
 */
#ifndef BISTORE_CURSOR_H
#define BISTORE_CURSOR_H

#include <stddef.h>

#define CURSOR_MAX_LEN 256 /* encoded */

/* The cursor of key (free() it), or NULL on no memory. */
char *cursor_encode(const char *key);
/* Decodes into out (NUL-terminated); -1 when the cursor is not one of ours. */
int cursor_decode(const char *cursor, char *out, size_t cap);

#endif
