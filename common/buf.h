/*
 * A growable byte buffer with a stated size limit (after curl's dynbuf).
 *
 * Every buffer is created with the most bytes it may ever hold; an append
 * that would pass it fails with BUF_TOO_BIG and leaves the buffer as it was,
 * so no buffer grows without bound. The content is always NUL-terminated
 * (the terminator is not counted in len nor in the limit).
 */
#ifndef BISTORE_BUF_H
#define BISTORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

enum buf_status { BUF_OK = 0, BUF_NOMEM, BUF_TOO_BIG };

struct buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t cap;
    size_t limit; /* most bytes the buffer may hold */
};

void buf_init(struct buf *b, size_t limit);
void buf_free(struct buf *b);
/* Empties the buffer and keeps its memory. */
void buf_reset(struct buf *b);
enum buf_status buf_append(struct buf *b, const void *data, size_t len);
enum buf_status buf_append_str(struct buf *b, const char *s);
enum buf_status buf_append_char(struct buf *b, char c);
enum buf_status buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The content as a C string ("" when empty); owned by the buffer. */
const char *buf_str(const struct buf *b);
/* Hands the content to the caller (free() it) and empties the buffer. */
char *buf_steal(struct buf *b);

#endif
