/*
 * API keys (API.md, Authentication): the key file, its parser, the
 * constant-time lookup of a presented key, and the key set the gateway
 * serves with, swapped whole on SIGHUP (apikeys_reload) while requests run.
 *
 * The file: one key per line, `<sha256 hex of the key> <scope>[,<scope>...]
 * [name]`; blank lines and lines starting with '#' are ignored. The gateway
 * never holds a key itself, only its SHA-256; neither is ever logged.
 */
#ifndef BISTORE_APIKEYS_H
#define BISTORE_APIKEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define APIKEY_HASH_LEN 32
#define APIKEY_NAME_MAX 63

struct apikey {
    uint8_t hash[APIKEY_HASH_LEN];
    unsigned scopes; /* SCOPE_* bits (handlers/http/request.h) */
    char name[APIKEY_NAME_MAX + 1];
};

/* A parsed key file. */
struct apikey_set {
    struct apikey *keys;
    size_t n;
};

/* Parses the text of a key file (len bytes) into set. 0 on success; -1
 * with a message naming the line number (never its content) in msg. */
int apikeys_parse(const char *text, size_t len, struct apikey_set *set, char *msg, size_t cap);
/* Reads and parses the file at path (apikeys_parse). */
int apikeys_load(const char *path, struct apikey_set *set, char *msg, size_t cap);
void apikeys_set_free(struct apikey_set *set);

/* 1 when the n bytes of a and b are equal, else 0, in time that depends on
 * n alone. */
int apikeys_equal(const uint8_t *a, const uint8_t *b, size_t n);
/* SHA-256 of the len bytes of key into out. 0, or -1 when libcrypto fails. */
int apikeys_sha256(const char *key, size_t len, uint8_t out[APIKEY_HASH_LEN]);
/* Looks up the key whose SHA-256 is hash, comparing it with every key of
 * set in constant time (all of them, whether one matched or not). true
 * with its scopes (and name, when name is not NULL) when one matches. */
bool apikeys_match(const struct apikey_set *set, const uint8_t hash[APIKEY_HASH_LEN],
                   unsigned *scopes, char name[APIKEY_NAME_MAX + 1]);

/* The gateway's key set: loaded from a file, replaced whole by a reload. */
struct apikeys;
/* Loads path; NULL with the reason in msg when it cannot. */
struct apikeys *apikeys_open(const char *path, char *msg, size_t cap);
/* Reads the file again and swaps the set in; on failure the old set stays
 * and -1 says why in msg. On success msg tells how many keys are loaded. */
int apikeys_reload(struct apikeys *keys, char *msg, size_t cap);
/* Checks an Authorization header value ("Bearer KEY"; NULL: none). true
 * with the key's scopes and name when the key is known. */
bool apikeys_check(struct apikeys *keys, const char *authorization, unsigned *scopes,
                   char name[APIKEY_NAME_MAX + 1]);
void apikeys_close(struct apikeys *keys);

#endif
