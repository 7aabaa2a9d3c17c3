#include "common/cursor.h"

#include <stdlib.h>
#include <string.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *cursor_encode(const char *key)
{
    size_t n = strlen(key);
    char *out = malloc((n + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    const unsigned char *in = (const unsigned char *)key;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = alphabet[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = alphabet[v & 63];
    }
    out[o] = '\0';
    return out;
}

static int value_of(char c)
{
    const char *p = c ? strchr(alphabet, c) : NULL;
    return p ? (int)(p - alphabet) : -1;
}

int cursor_decode(const char *cursor, char *out, size_t cap)
{
    size_t n = strlen(cursor);
    if (n == 0 || n > CURSOR_MAX_LEN || n % 4 == 1)
        return -1;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = value_of(cursor[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= cap)
                return -1;
            char c = (char)((acc >> bits) & 0xff);
            if (c == '\0')
                return -1;
            out[o++] = c;
        }
    }
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -1; /* leftover bits: not what cursor_encode writes */
    out[o] = '\0';
    return 0;
}
