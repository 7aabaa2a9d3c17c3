/*
 * struct buf (common/buf.h): the stated limit holds, a refused append
 * changes nothing, printf of long strings; pagination cursors
 * (common/cursor.h): round trips and refusal of anything not ours.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/cursor.h"

/* ---- struct buf ---- */

Test(buf, empty_is_empty_string)
{
    struct buf b;
    buf_init(&b, 100);
    cr_expect_str_eq(buf_str(&b), "");
    cr_expect_eq(b.len, 0);
    char *s = buf_steal(&b);
    cr_assert_not_null(s, "steal of an empty buffer gives \"\", not NULL");
    cr_expect_str_eq(s, "");
    free(s);
    buf_free(&b);
}

Test(buf, appends_and_terminates)
{
    struct buf b;
    buf_init(&b, 100);
    cr_assert_eq(buf_append_str(&b, "abc"), BUF_OK);
    cr_assert_eq(buf_append_char(&b, '-'), BUF_OK);
    cr_assert_eq(buf_append(&b, "xyz!", 3), BUF_OK);
    cr_assert_eq(buf_printf(&b, "%d:%s", 42, "q"), BUF_OK);
    cr_expect_str_eq(buf_str(&b), "abc-xyz42:q");
    cr_expect_eq(b.len, 11);
    cr_expect_eq(b.data[b.len], '\0');
    buf_free(&b);
}

Test(buf, exactly_at_limit_works)
{
    struct buf b;
    buf_init(&b, 8);
    cr_expect_eq(buf_append_str(&b, "12345678"), BUF_OK);
    cr_expect_eq(b.len, 8);
    cr_expect_str_eq(buf_str(&b), "12345678");
    cr_expect_eq(buf_append(&b, "", 0), BUF_OK, "an empty append at the limit is fine");
    buf_free(&b);

    buf_init(&b, 8);
    cr_expect_eq(buf_append_str(&b, "1234"), BUF_OK);
    cr_expect_eq(buf_append_str(&b, "5678"), BUF_OK);
    cr_expect_str_eq(buf_str(&b), "12345678");
    buf_free(&b);
}

Test(buf, past_limit_refused_unchanged)
{
    struct buf b;
    buf_init(&b, 8);
    cr_assert_eq(buf_append_str(&b, "12345"), BUF_OK);
    cr_expect_eq(buf_append_str(&b, "6789"), BUF_TOO_BIG);
    cr_expect_eq(b.len, 5);
    cr_expect_str_eq(buf_str(&b), "12345");
    cr_expect_eq(buf_append_char(&b, 'x'), BUF_OK);
    cr_expect_eq(buf_append_str(&b, "yz"), BUF_OK);
    cr_expect_eq(b.len, 8);
    cr_expect_eq(buf_append_char(&b, '!'), BUF_TOO_BIG);
    cr_expect_str_eq(buf_str(&b), "12345xyz");
    cr_expect_eq(buf_printf(&b, "%s", "!"), BUF_TOO_BIG);
    cr_expect_str_eq(buf_str(&b), "12345xyz");
    cr_expect_eq(b.len, 8);
    buf_free(&b);
}

Test(buf, first_append_past_limit)
{
    struct buf b;
    buf_init(&b, 3);
    cr_expect_eq(buf_append_str(&b, "abcd"), BUF_TOO_BIG);
    cr_expect_eq(b.len, 0);
    cr_expect_str_eq(buf_str(&b), "");
    buf_free(&b);
}

Test(buf, huge_length_does_not_wrap)
{
    struct buf b;
    buf_init(&b, 16);
    cr_assert_eq(buf_append_str(&b, "ab"), BUF_OK);
    cr_expect_eq(buf_append(&b, "x", (size_t)-1), BUF_TOO_BIG);
    cr_expect_eq(buf_append(&b, "x", (size_t)-1 - 1), BUF_TOO_BIG);
    cr_expect_str_eq(buf_str(&b), "ab");
    buf_free(&b);
}

Test(buf, zero_limit)
{
    struct buf b;
    buf_init(&b, 0);
    cr_expect_eq(buf_append_char(&b, 'a'), BUF_TOO_BIG);
    cr_expect_eq(buf_append(&b, "", 0), BUF_OK);
    cr_expect_str_eq(buf_str(&b), "");
    buf_free(&b);
}

Test(buf, capacity_never_passes_limit_plus_one)
{
    struct buf b;
    buf_init(&b, 1000);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(buf_append_char(&b, (char)('a' + i % 26)), BUF_OK);
    cr_expect_eq(b.len, 1000);
    cr_expect_leq(b.cap, 1001);
    cr_expect_eq(buf_append_char(&b, 'z'), BUF_TOO_BIG);
    buf_free(&b);
}

Test(buf, printf_long_strings)
{
    size_t n = 100000;
    char *big = malloc(n + 1);
    cr_assert_not_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    big[n] = '\0';
    struct buf b;
    buf_init(&b, 1 << 20);
    cr_assert_eq(buf_append_str(&b, "<"), BUF_OK);
    cr_assert_eq(buf_printf(&b, "[%s|%d]", big, 7), BUF_OK);
    cr_expect_eq(b.len, 1 + n + 4);
    cr_expect_eq(memcmp(b.data, "<[", 2), 0);
    cr_expect_eq(memcmp(b.data + 2, big, n), 0);
    cr_expect_str_eq(b.data + 2 + n, "|7]");
    cr_expect_eq(strlen(buf_str(&b)), b.len);
    buf_free(&b);
    free(big);
}

Test(buf, printf_exactly_256)
{
    /* buf_printf formats into a 256-byte scratch first: check the edges. */
    for (size_t n = 250; n <= 260; n++) {
        char *s = malloc(n + 1);
        cr_assert_not_null(s);
        memset(s, 'q', n);
        s[n] = '\0';
        struct buf b;
        buf_init(&b, 4096);
        cr_assert_eq(buf_append_str(&b, "ab"), BUF_OK);
        cr_assert_eq(buf_printf(&b, "%s", s), BUF_OK);
        cr_expect_eq(b.len, n + 2, "n=%zu", n);
        cr_expect_eq(strlen(buf_str(&b)), n + 2, "n=%zu", n);
        cr_expect_eq(memcmp(b.data + 2, s, n), 0);
        buf_free(&b);
        free(s);
    }
}

Test(buf, printf_long_past_limit_unchanged)
{
    char big[1000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    struct buf b;
    buf_init(&b, 500);
    cr_assert_eq(buf_append_str(&b, "keep"), BUF_OK);
    cr_expect_eq(buf_printf(&b, "%s", big), BUF_TOO_BIG);
    cr_expect_str_eq(buf_str(&b), "keep");
    cr_expect_eq(b.len, 4);
    buf_free(&b);
}

Test(buf, reset_and_steal)
{
    struct buf b;
    buf_init(&b, 64);
    cr_assert_eq(buf_append_str(&b, "hello"), BUF_OK);
    buf_reset(&b);
    cr_expect_eq(b.len, 0);
    cr_expect_str_eq(buf_str(&b), "");
    cr_assert_eq(buf_append_str(&b, "again"), BUF_OK);
    char *s = buf_steal(&b);
    cr_expect_str_eq(s, "again");
    cr_expect_eq(b.len, 0);
    cr_expect_null(b.data);
    cr_expect_str_eq(buf_str(&b), "");
    free(s);
    cr_assert_eq(buf_append_str(&b, "reuse"), BUF_OK, "the limit survives a steal");
    cr_expect_str_eq(buf_str(&b), "reuse");
    buf_free(&b);
}

Test(buf, embedded_nul_counted)
{
    struct buf b;
    buf_init(&b, 10);
    cr_assert_eq(buf_append(&b, "a\0b", 3), BUF_OK);
    cr_expect_eq(b.len, 3);
    cr_expect_eq(memcmp(b.data, "a\0b", 4), 0);
    buf_free(&b);
}

/* ---- cursors ---- */

static void round_trip(const char *key)
{
    char *c = cursor_encode(key);
    cr_assert_not_null(c);
    for (const char *p = c; *p; p++)
        cr_expect((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_',
                  "cursor '%s' of '%s' is not base64url without padding", c, key);
    char out[512];
    memset(out, 'X', sizeof out);
    cr_expect_eq(cursor_decode(c, out, sizeof out), 0, "cursor '%s' of '%s' does not decode", c,
                 key);
    cr_expect_str_eq(out, key);
    free(c);
}

Test(cursor, round_trips)
{
    round_trip("entity_3f2a9c1b7d20");
    round_trip("a");
    round_trip("ab");
    round_trip("abc");
    round_trip("abcd");
    round_trip("a:b.c-d_e");
    round_trip("01890a5d-ac96-774b-bcce-b302099a8057");
    round_trip("src\x1fid");                /* composite keys with a separator */
    round_trip("\xff\xfe\xfd\xc3\xa9 ?&/"); /* every byte but NUL */
    char id[129];
    memset(id, 'z', 128);
    id[128] = '\0';
    round_trip(id);
}

Test(cursor, known_encoding)
{
    /* base64url without padding, RFC 4648 section 5 */
    char *c = cursor_encode("f");
    cr_expect_str_eq(c, "Zg");
    free(c);
    c = cursor_encode("fo");
    cr_expect_str_eq(c, "Zm8");
    free(c);
    c = cursor_encode("foo");
    cr_expect_str_eq(c, "Zm9v");
    free(c);
    c = cursor_encode("\xfb\xff");
    cr_expect_str_eq(c, "-_8");
    free(c);
}

Test(cursor, rejects_garbage)
{
    static const char *const bad[] = {
        "",      "!!",      "a",    /* one char can't hold a byte */
        "Zm9vY",                    /* 4k+1 chars */
        "Zm9v=",                    /* padding is not ours */
        "Zg==",  "Zm 9v",   "Zm+v", /* standard base64, not url */
        "Zm/v",  "Zm9v\n",  "AA",   /* decodes to a NUL byte */
        "AAAA",  "Zm8AZm8", "YQBi", /* "a\0b" */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[512];
        cr_expect_eq(cursor_decode(bad[i], out, sizeof out), -1, "'%s' must be rejected", bad[i]);
    }
}

Test(cursor, rejects_over_long)
{
    char c[CURSOR_MAX_LEN + 5];
    memset(c, 'Q', CURSOR_MAX_LEN + 4);
    c[CURSOR_MAX_LEN + 4] = '\0';
    char out[1024];
    cr_expect_eq(cursor_decode(c, out, sizeof out), -1);

    /* At the limit it decodes. */
    c[CURSOR_MAX_LEN] = '\0';
    cr_expect_eq(cursor_decode(c, out, sizeof out), 0);
}

Test(cursor, respects_output_capacity)
{
    char *c = cursor_encode("abcdefgh");
    cr_assert_not_null(c);
    char out[9];
    cr_expect_eq(cursor_decode(c, out, sizeof out), 0, "8 bytes + NUL fit in 9");
    cr_expect_str_eq(out, "abcdefgh");
    char small[8];
    cr_expect_eq(cursor_decode(c, small, sizeof small), -1, "8 bytes + NUL do not fit in 8");
    free(c);
}
