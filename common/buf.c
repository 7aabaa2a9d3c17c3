#include "common/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t limit)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->limit = limit;
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

/* Makes room for `extra` more bytes plus the terminator. */
static enum buf_status buf_reserve(struct buf *b, size_t extra)
{
    if (extra > b->limit || b->len > b->limit - extra)
        return BUF_TOO_BIG;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return BUF_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > (size_t)-1 / 2 ? need : cap * 2;
    if (cap > b->limit + 1)
        cap = b->limit + 1;
    char *p = realloc(b->data, cap);
    if (!p)
        return BUF_NOMEM;
    b->data = p;
    b->cap = cap;
    return BUF_OK;
}

enum buf_status buf_append(struct buf *b, const void *data, size_t len)
{
    enum buf_status status = buf_reserve(b, len);
    if (status != BUF_OK)
        return status;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return BUF_OK;
}

enum buf_status buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

enum buf_status buf_append_char(struct buf *b, char c)
{
    return buf_append(b, &c, 1);
}

enum buf_status buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return BUF_NOMEM;
    if ((size_t)n < sizeof small)
        return buf_append(b, small, (size_t)n);
    enum buf_status status = buf_reserve(b, (size_t)n);
    if (status != BUF_OK)
        return status;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return BUF_OK;
}

const char *buf_str(const struct buf *b)
{
    return b->data ? b->data : "";
}

char *buf_steal(struct buf *b)
{
    char *p = b->data;
    if (!p)
        p = calloc(1, 1);
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
