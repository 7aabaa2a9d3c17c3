/*
 * libFuzzer target: the operator's and the client's configuration texts.
 *
 * Input: a first byte choosing the parser, then its text:
 *   'k' + text: an API key file (apikeys_parse); a parsed set holds at
 *       least one key per accepted line at most, each name NUL-terminated,
 *       and every key matches its own hash (apikeys_match);
 *   'h' + "ALLOWED\nHOST": the Host header rule (hosts_allowed with
 *       --allowed-hosts ALLOWED); an IP literal or localhost is always
 *       served, "*" serves any host;
 *   anything else: both, on the whole text.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/apikeys.h"
#include "server/hosts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_config_files: invariant broken at line %d: %s\n", __LINE__,      \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void fuzz_keys(const char *text, size_t len)
{
    struct apikey_set set = {0};
    char msg[256];
    msg[0] = '\0';
    if (apikeys_parse(text, len, &set, msg, sizeof msg) == 0) {
        size_t lines = 1;
        for (size_t i = 0; i < len; i++)
            lines += text[i] == '\n';
        CHECK(set.n <= lines);
        for (size_t i = 0; i < set.n; i++) {
            CHECK(memchr(set.keys[i].name, '\0', sizeof set.keys[i].name) != NULL);
            CHECK(set.keys[i].scopes != 0);
            unsigned scopes = 0;
            char name[APIKEY_NAME_MAX + 1];
            CHECK(apikeys_match(&set, set.keys[i].hash, &scopes, name));
        }
        apikeys_set_free(&set);
    } else {
        CHECK(memchr(msg, '\0', sizeof msg) != NULL && msg[0] != '\0');
    }
}

static void fuzz_hosts(const char *allowed, const char *host)
{
    bool ok = hosts_allowed(allowed, host);
    if (strcmp(allowed, "*") == 0)
        CHECK(ok);
    CHECK(hosts_allowed(allowed, "127.0.0.1"));
    CHECK(hosts_allowed(allowed, "localhost"));
    CHECK(hosts_allowed(allowed, "[::1]:8080"));
    (void)hosts_allowed(allowed, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 64 * 1024)
        return 0;
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    size_t len = size - 1;
    if (data[0] == 'k') {
        fuzz_keys(text, len);
    } else if (data[0] == 'h') {
        char *nl = strchr(text, '\n');
        if (nl) {
            *nl = '\0';
            fuzz_hosts(text, nl + 1);
        } else {
            fuzz_hosts("", text);
        }
    } else {
        fuzz_keys(text, len);
        fuzz_hosts(text, text);
    }
    free(text);
    return 0;
}
