/*
 * Compact JSON text (common/json_text.h): one writer for both key orders,
 * with strings, integers and reals written by hand the same way in both.
 */
#include "common/json_text.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum buf_status json_text_append_string(struct buf *out, const char *s, size_t len)
{
    enum buf_status status = buf_append_char(out, '"');
    size_t run = 0; /* bytes copied as they are, flushed in one append */
    for (size_t i = 0; i < len && status == BUF_OK; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20) {
                snprintf(u, sizeof u, "\\u%04x", c);
                esc = u;
            }
        }
        if (!esc) {
            run++;
            continue;
        }
        status = buf_append(out, s + i - run, run);
        run = 0;
        if (status == BUF_OK)
            status = buf_append_str(out, esc);
    }
    if (status == BUF_OK)
        status = buf_append(out, s + len - run, run);
    if (status == BUF_OK)
        status = buf_append_char(out, '"');
    return status;
}

/* Decimal, by hand: answers and hashed records write several integers each. */
enum buf_status json_text_append_integer(struct buf *out, json_int_t v)
{
    char tmp[24];
    char *p = tmp + sizeof tmp;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    return buf_append(out, p, (size_t)(tmp + sizeof tmp - p));
}

static enum buf_status append_real(struct buf *out, double d)
{
    char tmp[40];
    /* Shortest precision that reads back to the same double. */
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    /* %g writes whole numbers with trailing zeros in exponent form (10.0 as
     * 1e+01); below 1e16 write them out in full instead. */
    if (strpbrk(tmp, "eE") && d == floor(d) && fabs(d) < 1e16)
        snprintf(tmp, sizeof tmp, "%.1f", d);
    if (!strpbrk(tmp, ".eEn")) { /* keep a real recognisable: 1 -> 1.0 */
        size_t n = strlen(tmp);
        if (n + 2 < sizeof tmp)
            memcpy(tmp + n, ".0", 3);
    }
    return buf_append_str(out, tmp);
}

static int compare_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static enum buf_status append_value(struct buf *out, const json_t *v, bool sorted);

/* Keys in insertion order (for answers to clients). */
static enum buf_status append_object_ordered(struct buf *out, const json_t *v)
{
    enum buf_status status = buf_append_char(out, '{');
    bool first = true;
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *)v, key, value) {
        if (status != BUF_OK)
            break;
        if (!first)
            status = buf_append_char(out, ',');
        first = false;
        if (status == BUF_OK)
            status = json_text_append_string(out, key, strlen(key));
        if (status == BUF_OK)
            status = buf_append_char(out, ':');
        if (status == BUF_OK)
            status = append_value(out, value, false);
    }
    return status == BUF_OK ? buf_append_char(out, '}') : status;
}

static enum buf_status append_object(struct buf *out, const json_t *v)
{
    size_t n = json_object_size(v);
    const char *small[32];
    const char **keys = n <= 32 ? small : malloc(n * sizeof *keys);
    if (!keys)
        return BUF_NOMEM;
    size_t i = 0;
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *)v, key, value)
        keys[i++] = key;
    qsort(keys, n, sizeof *keys, compare_keys);
    enum buf_status status = buf_append_char(out, '{');
    for (i = 0; i < n && status == BUF_OK; i++) {
        if (i)
            status = buf_append_char(out, ',');
        if (status == BUF_OK)
            status = json_text_append_string(out, keys[i], strlen(keys[i]));
        if (status == BUF_OK)
            status = buf_append_char(out, ':');
        if (status == BUF_OK)
            status = json_canon_append(out, json_object_get(v, keys[i]));
    }
    if (status == BUF_OK)
        status = buf_append_char(out, '}');
    if (keys != small)
        free(keys);
    return status;
}

enum buf_status json_canon_append(struct buf *out, const json_t *v)
{
    return append_value(out, v, true);
}

enum buf_status json_text_append(struct buf *out, const json_t *v)
{
    return append_value(out, v, false);
}

static enum buf_status append_value(struct buf *out, const json_t *v, bool sorted)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return sorted ? append_object(out, v) : append_object_ordered(out, v);
    case JSON_ARRAY: {
        enum buf_status status = buf_append_char(out, '[');
        for (size_t i = 0; i < json_array_size(v) && status == BUF_OK; i++) {
            if (i)
                status = buf_append_char(out, ',');
            if (status == BUF_OK)
                status = append_value(out, json_array_get(v, i), sorted);
        }
        return status == BUF_OK ? buf_append_char(out, ']') : status;
    }
    case JSON_STRING:
        return json_text_append_string(out, json_string_value(v), json_string_length(v));
    case JSON_INTEGER: return json_text_append_integer(out, json_integer_value(v));
    case JSON_REAL: return append_real(out, json_real_value(v));
    case JSON_TRUE: return buf_append_str(out, "true");
    case JSON_FALSE: return buf_append_str(out, "false");
    case JSON_NULL: return buf_append_str(out, "null");
    }
    return buf_append_str(out, "null");
}

/* The text append() makes of v, as a new string; NULL on no memory. */
static char *dumps_with(enum buf_status (*append)(struct buf *, const json_t *), const json_t *v)
{
    struct buf b;
    buf_init(&b, (size_t)1 << 31);
    if (append(&b, v) != BUF_OK) {
        buf_free(&b);
        return NULL;
    }
    return buf_steal(&b);
}

char *json_canon_dumps(const json_t *v)
{
    return dumps_with(json_canon_append, v);
}

char *json_text_dumps(const json_t *v)
{
    return dumps_with(json_text_append, v);
}
