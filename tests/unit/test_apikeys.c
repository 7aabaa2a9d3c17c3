/*
 * server/apikeys.c: the key file parser (what it takes, what it refuses and
 * that its message names the line, never its content), SHA-256 against the
 * FIPS 180-2 vectors, the constant-time compare, and the lookup.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "handlers/http/request.h"
#include "server/apikeys.h"

#define H_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define H_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static int parse(const char *text, struct apikey_set *set, char *msg, size_t cap)
{
    return apikeys_parse(text, strlen(text), set, msg, cap);
}

static void hex(const uint8_t *h, char out[65])
{
    for (size_t i = 0; i < APIKEY_HASH_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

Test(apikeys, sha256_vectors)
{
    uint8_t h[APIKEY_HASH_LEN];
    char x[65];
    cr_assert_eq(apikeys_sha256("abc", 3, h), 0);
    hex(h, x);
    cr_assert_str_eq(x, H_ABC);
    cr_assert_eq(apikeys_sha256("", 0, h), 0);
    hex(h, x);
    cr_assert_str_eq(x, H_EMPTY);
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    cr_assert_eq(apikeys_sha256(two, strlen(two), h), 0);
    hex(h, x);
    cr_assert_str_eq(x, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

Test(apikeys, parses_lines_scopes_names_comments_and_blanks)
{
    struct apikey_set set;
    char msg[200] = "";
    const char *text = "# the team's keys\n"
                       "\n"
                       "   \t\n" H_ABC " read alice\r\n"
                       "  # indented comment\n" H_EMPTY "\tread,write,admin\n";
    cr_assert_eq(parse(text, &set, msg, sizeof msg), 0, "%s", msg);
    cr_assert_eq(set.n, 2);
    cr_assert_eq(set.keys[0].scopes, SCOPE_READ);
    cr_assert_str_eq(set.keys[0].name, "alice");
    cr_assert_eq(set.keys[0].hash[0], 0xba);
    cr_assert_eq(set.keys[0].hash[31], 0xad);
    cr_assert_eq(set.keys[1].scopes, SCOPE_READ | SCOPE_WRITE | SCOPE_ADMIN);
    cr_assert_str_eq(set.keys[1].name, "");
    apikeys_set_free(&set);
    /* uppercase hex and no trailing newline */
    char upper[128];
    snprintf(upper, sizeof upper, "%s write", H_ABC);
    for (char *p = upper; *p != ' '; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 32);
    cr_assert_eq(parse(upper, &set, msg, sizeof msg), 0, "%s", msg);
    cr_assert_eq(set.n, 1);
    cr_assert_eq(set.keys[0].hash[0], 0xba);
    cr_assert_eq(set.keys[0].scopes, SCOPE_WRITE);
    apikeys_set_free(&set);
    cr_assert_eq(parse("", &set, msg, sizeof msg), 0);
    cr_assert_eq(set.n, 0);
    apikeys_set_free(&set);
}

Test(apikeys, refuses_bad_lines_naming_the_line_not_the_content)
{
    static const char *const bad[] = {
        H_ABC,                     /* no scopes */
        H_ABC " reed",             /* unknown scope */
        H_ABC " read,",            /* empty scope */
        H_ABC " ,read",            /* empty scope */
        H_ABC " read,,write",      /* empty scope */
        H_ABC " READ",             /* scopes are lower case */
        H_ABC " read alice extra", /* four fields */
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a read", /* 63 digits */
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015adX read",
        "zz7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad read",
        "secret-key read",
        H_ABC " read aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 64 */
        H_ABC " read al\"ice",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "# ok\n%s read\n\n%s\n", H_EMPTY, bad[i]);
        struct apikey_set set;
        char msg[200] = "";
        cr_assert_eq(parse(text, &set, msg, sizeof msg), -1, "accepted: %s", bad[i]);
        cr_assert_eq(strncmp(msg, "line 4: ", 8), 0, "%s: message %s", bad[i], msg);
        cr_assert_null(strstr(msg, "ba7816"), "the message shows the line: %s", msg);
        cr_assert_null(strstr(msg, "secret"), "the message shows the line: %s", msg);
        cr_assert_null(set.keys);
    }
    /* the same hash twice */
    struct apikey_set set;
    char msg[200] = "";
    cr_assert_eq(parse(H_ABC " read a\n" H_ABC " write b\n", &set, msg, sizeof msg), -1);
    cr_assert_eq(strncmp(msg, "line 2: ", 8), 0, "%s", msg);
    /* a NUL inside a line */
    static const char nul[] = H_ABC " read\0x\n";
    cr_assert_eq(apikeys_parse(nul, sizeof nul - 1, &set, msg, sizeof msg), -1);
    cr_assert_eq(strncmp(msg, "line 1: ", 8), 0, "%s", msg);
}

Test(apikeys, equal_compares_every_byte)
{
    uint8_t a[32], b[32];
    memset(a, 0x5a, sizeof a);
    memcpy(b, a, sizeof b);
    cr_assert_eq(apikeys_equal(a, b, 32), 1);
    for (size_t i = 0; i < 32; i++) {
        for (unsigned bit = 0; bit < 8; bit++) {
            b[i] = (uint8_t)(a[i] ^ (1u << bit));
            cr_assert_eq(apikeys_equal(a, b, 32), 0, "byte %zu bit %u", i, bit);
            b[i] = a[i];
        }
    }
    b[31] = 0;
    cr_assert_eq(apikeys_equal(a, b, 31), 1, "only n bytes are compared");
    cr_assert_eq(apikeys_equal(a, b, 0), 1);
}

Test(apikeys, match_finds_any_line_and_only_its_scopes)
{
    struct apikey_set set;
    char msg[200] = "";
    cr_assert_eq(
        parse(H_EMPTY " admin first\n" H_ABC " read,write second\n", &set, msg, sizeof msg), 0,
        "%s", msg);
    uint8_t h[APIKEY_HASH_LEN];
    unsigned scopes = 0;
    char name[APIKEY_NAME_MAX + 1] = "";
    cr_assert_eq(apikeys_sha256("abc", 3, h), 0);
    cr_assert(apikeys_match(&set, h, &scopes, name));
    cr_assert_eq(scopes, SCOPE_READ | SCOPE_WRITE);
    cr_assert_str_eq(name, "second");
    cr_assert_eq(apikeys_sha256("", 0, h), 0);
    cr_assert(apikeys_match(&set, h, &scopes, name));
    cr_assert_eq(scopes, SCOPE_ADMIN);
    cr_assert_str_eq(name, "first");
    cr_assert_eq(apikeys_sha256("abd", 3, h), 0);
    scopes = 99;
    cr_assert_not(apikeys_match(&set, h, &scopes, name));
    cr_assert_eq(scopes, 99, "no scopes for an unknown key");
    apikeys_set_free(&set);
}

Test(apikeys, open_check_and_reload_keep_the_old_set_on_a_bad_file)
{
    char path[] = "/tmp/bistore-apikeys-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "%s read one\n", H_ABC);
    fclose(f);
    char msg[1400] = "";
    struct apikeys *keys = apikeys_open(path, msg, sizeof msg);
    cr_assert_not_null(keys, "%s", msg);
    unsigned scopes = 0;
    char name[APIKEY_NAME_MAX + 1];
    cr_assert(apikeys_check(keys, "Bearer abc", &scopes, name));
    cr_assert_eq(scopes, SCOPE_READ);
    cr_assert(apikeys_check(keys, "bearer   abc ", &scopes, name));
    cr_assert_not(apikeys_check(keys, "Bearer abcd", &scopes, name));
    cr_assert_not(apikeys_check(keys, "Basic abc", &scopes, name));
    cr_assert_not(apikeys_check(keys, "Bearerabc", &scopes, name));
    cr_assert_not(apikeys_check(keys, "Bearer ", &scopes, name));
    cr_assert_not(apikeys_check(keys, NULL, &scopes, name));
    f = fopen(path, "w");
    fprintf(f, "%s write two\nnot a line\n", H_EMPTY);
    fclose(f);
    cr_assert_eq(apikeys_reload(keys, msg, sizeof msg), -1);
    cr_assert_not_null(strstr(msg, "line 2"), "%s", msg);
    cr_assert(apikeys_check(keys, "Bearer abc", &scopes, name), "the old key still works");
    f = fopen(path, "w");
    fprintf(f, "%s write two\n", H_EMPTY);
    fclose(f);
    cr_assert_eq(apikeys_reload(keys, msg, sizeof msg), 0, "%s", msg);
    cr_assert_not(apikeys_check(keys, "Bearer abc", &scopes, name), "the removed key is gone");
    cr_assert_not(apikeys_check(keys, "Bearer ", &scopes, name));
    apikeys_close(keys);
    unlink(path);
    cr_assert_null(apikeys_open("/nonexistent/keys", msg, sizeof msg));
}
