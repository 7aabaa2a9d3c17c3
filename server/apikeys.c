#include "server/apikeys.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/ids.h"
#include "handlers/http/request.h"

/* A key file larger than this is refused (a key is a line of ~100 bytes). */
#define APIKEYS_FILE_MAX ((size_t)16 << 20)

static int fail(char *msg, size_t cap, size_t line, const char *why)
{
    snprintf(msg, cap, "line %zu: %s", line, why);
    return -1;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* The next whitespace-separated field of [*p, end): its start and length. */
static size_t next_field(const char **p, const char *end, const char **field)
{
    while (*p < end && is_space(**p))
        (*p)++;
    *field = *p;
    while (*p < end && !is_space(**p))
        (*p)++;
    return (size_t)(*p - *field);
}

static int parse_scopes(const char *s, size_t n, unsigned *scopes)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"read", SCOPE_READ}, {"write", SCOPE_WRITE}, {"admin", SCOPE_ADMIN}};
    *scopes = 0;
    size_t i = 0;
    while (i <= n) {
        size_t j = i;
        while (j < n && s[j] != ',')
            j++;
        unsigned bit = 0;
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
            if (strlen(names[k].name) == j - i && memcmp(names[k].name, s + i, j - i) == 0)
                bit = names[k].bit;
        if (!bit)
            return -1;
        *scopes |= bit;
        i = j + 1;
    }
    return 0;
}

/* One non-blank, non-comment line [p, end) into key. */
static int parse_line(const char *p, const char *end, size_t line, struct apikey *key, char *msg,
                      size_t cap)
{
    const char *f;
    size_t n = next_field(&p, end, &f);
    if (n != 2 * APIKEY_HASH_LEN)
        return fail(msg, cap, line, "the first field is not 64 hex digits (a SHA-256)");
    for (size_t i = 0; i < APIKEY_HASH_LEN; i++) {
        int hi = ids_hex_digit(f[2 * i]), lo = ids_hex_digit(f[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return fail(msg, cap, line, "the first field is not 64 hex digits (a SHA-256)");
        key->hash[i] = (uint8_t)(hi << 4 | lo);
    }
    n = next_field(&p, end, &f);
    if (n == 0)
        return fail(msg, cap, line, "no scopes after the hash (read, write, admin)");
    if (parse_scopes(f, n, &key->scopes) != 0)
        return fail(msg, cap, line,
                    "the scopes are not a comma-separated list of read, write and admin");
    n = next_field(&p, end, &f);
    if (n > APIKEY_NAME_MAX)
        return fail(msg, cap, line, "the name is longer than 63 bytes");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)f[i] < 0x21 || (unsigned char)f[i] > 0x7e || f[i] == '"' || f[i] == '\\')
            return fail(msg, cap, line, "the name holds a byte other than printable ASCII");
    memcpy(key->name, f, n);
    key->name[n] = '\0';
    const char *rest;
    if (next_field(&p, end, &rest) != 0)
        return fail(msg, cap, line, "more than three fields (hash, scopes, name)");
    return 0;
}

int apikeys_parse(const char *text, size_t len, struct apikey_set *set, char *msg, size_t cap)
{
    set->keys = NULL;
    set->n = 0;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    struct apikey *keys = calloc(lines + 1, sizeof *keys);
    if (!keys) {
        snprintf(msg, cap, "out of memory");
        return -1;
    }
    const char *p = text, *end = text + len;
    size_t line = 0, n = 0;
    while (p < end) {
        line++;
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *stop = eol ? eol : end;
        const char *e = stop;
        if (e > p && e[-1] == '\r')
            e--;
        const char *s = p;
        while (s < e && is_space(*s))
            s++;
        p = eol ? eol + 1 : end;
        if (s == e || *s == '#')
            continue;
        if (memchr(s, '\0', (size_t)(e - s)) || parse_line(s, e, line, &keys[n], msg, cap) != 0) {
            if (memchr(s, '\0', (size_t)(e - s)))
                fail(msg, cap, line, "a NUL byte");
            free(keys);
            return -1;
        }
        for (size_t k = 0; k < n; k++)
            if (apikeys_equal(keys[k].hash, keys[n].hash, APIKEY_HASH_LEN)) {
                free(keys);
                return fail(msg, cap, line, "the same hash as an earlier line");
            }
        n++;
    }
    set->keys = keys;
    set->n = n;
    return 0;
}

int apikeys_load(const char *path, struct apikey_set *set, char *msg, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(msg, cap, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    size_t size = 4096, len = 0;
    char *text = malloc(size);
    int rc = -1;
    while (text) {
        size_t got = fread(text + len, 1, size - len, f);
        len += got;
        if (len < size) {
            if (ferror(f))
                snprintf(msg, cap, "cannot read %s", path);
            else
                rc = 0;
            break;
        }
        if (size >= APIKEYS_FILE_MAX) {
            snprintf(msg, cap, "%s is larger than %zu bytes", path, APIKEYS_FILE_MAX);
            break;
        }
        char *bigger = realloc(text, size * 2);
        if (!bigger)
            break;
        text = bigger;
        size *= 2;
    }
    fclose(f);
    if (!text || (rc != 0 && !msg[0]))
        snprintf(msg, cap, "out of memory reading %s", path);
    if (rc == 0) {
        char why[200];
        rc = apikeys_parse(text, len, set, why, sizeof why);
        if (rc != 0)
            snprintf(msg, cap, "%s: %s", path, why);
    }
    if (text) /* the hashes are not secrets, but clear them anyway */
        memset(text, 0, len);
    free(text);
    return rc;
}

void apikeys_set_free(struct apikey_set *set)
{
    free(set->keys);
    set->keys = NULL;
    set->n = 0;
}

int apikeys_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    volatile uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (uint8_t)(a[i] ^ b[i]);
    /* d is 0..255: (d - 1) >> 8 has its low bit set only for 0 */
    return (int)((((unsigned)d - 1u) >> 8) & 1u);
}

int apikeys_sha256(const char *key, size_t len, uint8_t out[APIKEY_HASH_LEN])
{
    unsigned n = 0;
    if (EVP_Digest(key, len, out, &n, EVP_sha256(), NULL) != 1 || n != APIKEY_HASH_LEN)
        return -1;
    return 0;
}

bool apikeys_match(const struct apikey_set *set, const uint8_t hash[APIKEY_HASH_LEN],
                   unsigned *scopes, char name[APIKEY_NAME_MAX + 1])
{
    unsigned found = 0, got = 0;
    size_t which = 0;
    for (size_t i = 0; i < set->n; i++) {
        unsigned eq = (unsigned)apikeys_equal(set->keys[i].hash, hash, APIKEY_HASH_LEN);
        unsigned mask = 0u - eq;
        got |= set->keys[i].scopes & mask;
        which |= i & ((size_t)0 - (size_t)eq);
        found |= eq;
    }
    if (!found)
        return false;
    *scopes = got;
    if (name)
        snprintf(name, APIKEY_NAME_MAX + 1, "%s", set->keys[which].name);
    return true;
}

struct apikeys {
    pthread_mutex_t mu;
    struct apikey_set set; /* under mu */
    char path[1024];
};

struct apikeys *apikeys_open(const char *path, char *msg, size_t cap)
{
    struct apikeys *keys = calloc(1, sizeof *keys);
    if (!keys) {
        snprintf(msg, cap, "out of memory");
        return NULL;
    }
    snprintf(keys->path, sizeof keys->path, "%s", path);
    if (pthread_mutex_init(&keys->mu, NULL) != 0) {
        snprintf(msg, cap, "cannot make a mutex");
        free(keys);
        return NULL;
    }
    msg[0] = '\0';
    if (apikeys_load(path, &keys->set, msg, cap) != 0) {
        pthread_mutex_destroy(&keys->mu);
        free(keys);
        return NULL;
    }
    return keys;
}

int apikeys_reload(struct apikeys *keys, char *msg, size_t cap)
{
    struct apikey_set fresh, old;
    msg[0] = '\0';
    if (apikeys_load(keys->path, &fresh, msg, cap) != 0)
        return -1;
    pthread_mutex_lock(&keys->mu);
    old = keys->set;
    keys->set = fresh;
    pthread_mutex_unlock(&keys->mu);
    apikeys_set_free(&old);
    snprintf(msg, cap, "%zu API keys loaded from %s", fresh.n, keys->path);
    return 0;
}

bool apikeys_check(struct apikeys *keys, const char *authorization, unsigned *scopes,
                   char name[APIKEY_NAME_MAX + 1])
{
    if (!authorization || strncasecmp(authorization, "Bearer", 6) != 0 ||
        !is_space(authorization[6]))
        return false;
    const char *k = authorization + 6;
    while (is_space(*k))
        k++;
    size_t len = strlen(k);
    while (len && is_space(k[len - 1]))
        len--;
    uint8_t hash[APIKEY_HASH_LEN];
    if (len == 0 || apikeys_sha256(k, len, hash) != 0)
        return false;
    pthread_mutex_lock(&keys->mu);
    bool ok = apikeys_match(&keys->set, hash, scopes, name);
    pthread_mutex_unlock(&keys->mu);
    return ok;
}

void apikeys_close(struct apikeys *keys)
{
    if (!keys)
        return;
    apikeys_set_free(&keys->set);
    pthread_mutex_destroy(&keys->mu);
    free(keys);
}
