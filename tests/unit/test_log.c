/*
 * The log's escaping (common/log.c): log_escape and the lines log_msg
 * writes. Client text (paths, methods, ids, what Neo4j echoes) reaches the
 * log; none of it may end a line, start one, or put a control character or
 * invalid UTF-8 into it.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

/* log_escape of the n bytes at in into a large buffer; checks the result's length. */
static const char *esc_n(const char *in, size_t n)
{
    static char out[4096];
    size_t len = log_escape(out, sizeof out, in, n);
    cr_assert_eq(len, strlen(out), "the returned length is the string's");
    return out;
}

static const char *esc(const char *in)
{
    return esc_n(in, strlen(in));
}

Test(log_escape, plain_text_passes)
{
    cr_expect_str_eq(esc("GET /v1/entities/abc%00zzz -> 400 (0 ms)"),
                     "GET /v1/entities/abc%00zzz -> 400 (0 ms)");
    cr_expect_str_eq(esc(""), "");
    cr_expect_str_eq(esc("[]{}'\"~`!@#$^&*()_+=|<>?,.;:"), "[]{}'\"~`!@#$^&*()_+=|<>?,.;:");
}

Test(log_escape, line_breaks_and_controls_are_hex)
{
    cr_expect_str_eq(esc("a\nb"), "a\\x0ab");
    cr_expect_str_eq(esc("a\r\nb"), "a\\x0d\\x0ab");
    cr_expect_str_eq(esc("\x1b[31mred"), "\\x1b[31mred");
    cr_expect_str_eq(esc("t\tab"), "t\\x09ab");
    cr_expect_str_eq(esc("bell\a del\x7f"), "bell\\x07 del\\x7f");
    cr_expect_str_eq(esc("\x01\x1f"), "\\x01\\x1f");
    cr_expect_str_eq(esc_n("a\0b", 3), "a\\x00b", "a NUL inside the length is escaped too");
}

Test(log_escape, a_forged_line_stays_on_its_line)
{
    const char *forged = "x\r\n2001-02-03T04:05:06.789Z INFO  [forged] admin key accepted";
    const char *out = esc(forged);
    cr_expect_null(strchr(out, '\n'));
    cr_expect_null(strchr(out, '\r'));
    cr_expect_str_eq(out, "x\\x0d\\x0a2001-02-03T04:05:06.789Z INFO  [forged] admin key accepted");
}

Test(log_escape, backslash_is_doubled)
{
    /* so that a literal "\x0a" from a client cannot pass for an escaped LF */
    cr_expect_str_eq(esc("a\\x0ab"), "a\\\\x0ab");
    cr_expect_str_eq(esc("\\"), "\\\\");
}

Test(log_escape, valid_utf8_passes)
{
    cr_expect_str_eq(esc("caf\xc3\xa9"), "caf\xc3\xa9");                           /* é */
    cr_expect_str_eq(esc("\xe6\x97\xa5\xe6\x9c\xac"), "\xe6\x97\xa5\xe6\x9c\xac"); /* 日本 */
    cr_expect_str_eq(esc("\xf0\x9f\x98\x80"), "\xf0\x9f\x98\x80");                 /* U+1F600 */
    cr_expect_str_eq(esc("\xef\xbf\xbd"), "\xef\xbf\xbd");                         /* U+FFFD */
    cr_expect_str_eq(esc("\xf4\x8f\xbf\xbf"), "\xf4\x8f\xbf\xbf");                 /* U+10FFFF */
}

Test(log_escape, invalid_utf8_is_hex_byte_by_byte)
{
    cr_expect_str_eq(esc("a\xff"
                         "b"),
                     "a\\xffb");
    cr_expect_str_eq(esc("\x80"), "\\x80");                            /* a lone continuation */
    cr_expect_str_eq(esc("\xc0\xaf"), "\\xc0\\xaf");                   /* overlong '/' */
    cr_expect_str_eq(esc("\xe0\x80\xaf"), "\\xe0\\x80\\xaf");          /* overlong, 3 bytes */
    cr_expect_str_eq(esc("\xed\xa0\x80"), "\\xed\\xa0\\x80");          /* a surrogate */
    cr_expect_str_eq(esc("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80"); /* over U+10FFFF */
    cr_expect_str_eq(esc("\xe6\x97"), "\\xe6\\x97");                   /* cut at the end */
    cr_expect_str_eq(esc("\xe6\x97"
                         "a"),
                     "\\xe6\\x97a"); /* cut before ASCII */
    cr_expect_str_eq(esc("\xc3\xa9\xc3"), "\xc3\xa9\\xc3");
}

Test(log_escape, unicode_line_breaks_and_direction_marks_are_escaped)
{
    cr_expect_str_eq(esc("a\xc2\x85"
                         "b"),
                     "a\\u0085b");                /* NEL, a C1 control */
    cr_expect_str_eq(esc("\xc2\x9b"), "\\u009b"); /* C1 CSI */
    cr_expect_str_eq(esc("a\xe2\x80\xa8"
                         "b"),
                     "a\\u2028b");                    /* LINE SEPARATOR */
    cr_expect_str_eq(esc("\xe2\x80\xa9"), "\\u2029"); /* PARAGRAPH SEPARATOR */
    cr_expect_str_eq(esc("\xe2\x80\xae"), "\\u202e"); /* RIGHT-TO-LEFT OVERRIDE */
    cr_expect_str_eq(esc("\xe2\x81\xa6"), "\\u2066"); /* LEFT-TO-RIGHT ISOLATE */
    cr_expect_str_eq(esc("\xc2\xa0"), "\xc2\xa0", "U+00A0 is printable");
}

Test(log_escape, cuts_before_what_does_not_fit)
{
    char out[8];
    memset(out, 'X', sizeof out);
    size_t n = log_escape(out, sizeof out, "abc\ndef", 7);
    /* "abc\x0a" is 7 bytes and the NUL the 8th */
    cr_expect_eq(n, 7);
    cr_expect_str_eq(out, "abc\\x0a");
    n = log_escape(out, 6, "abc\ndef", 7);
    cr_expect_eq(n, 3, "the escape does not fit: cut before it");
    cr_expect_str_eq(out, "abc");
    n = log_escape(out, 5, "ab\xc3\xa9", 4);
    cr_expect_eq(n, 4);
    n = log_escape(out, 4, "ab\xc3\xa9", 4);
    cr_expect_eq(n, 2, "a UTF-8 sequence is never split");
    cr_expect_str_eq(out, "ab");
    n = log_escape(out, 1, "abc", 3);
    cr_expect_eq(n, 0);
    cr_expect_str_eq(out, "");
}

Test(log_msg, one_line_with_the_prefix_whatever_the_text, .init = cr_redirect_stderr)
{
    log_msg(LOG_WARN, "rid-1", "GET %s -> 400", "/x\r\n2001-02-03T04:05:06.789Z INFO  [f] y\x1b");
    log_msg(LOG_ERROR, "bad\nrid", "%s", "z");
    fflush(stderr);
    FILE *f = cr_get_redirected_stderr();
    char line[4096];
    cr_assert_not_null(fgets(line, sizeof line, f));
    size_t n = strlen(line);
    cr_assert(n > 25 && line[n - 1] == '\n', "a line ends with its newline: '%s'", line);
    cr_expect(line[4] == '-' && line[10] == 'T' && line[23] == 'Z', "timestamp prefix: '%s'", line);
    const char *body = strstr(line, "WARN  [rid-1] ");
    cr_assert_not_null(body, "prefix: '%s'", line);
    cr_expect_str_eq(body,
                     "WARN  [rid-1] GET /x\\x0d\\x0a2001-02-03T04:05:06.789Z INFO  [f] y\\x1b -> "
                     "400\n");
    cr_assert_not_null(fgets(line, sizeof line, f));
    cr_expect_not_null(strstr(line, "ERROR [bad\\x0arid] z\n"), "the request id is escaped: '%s'",
                       line);
    cr_expect_null(fgets(line, sizeof line, f), "two calls, two lines");
}

Test(log_msg, a_long_message_is_cut_but_stays_one_line, .init = cr_redirect_stderr)
{
    char *big = malloc(10000);
    cr_assert_not_null(big);
    for (size_t i = 0; i < 9999; i++)
        big[i] = i % 2 ? '\n' : 'a';
    big[9999] = '\0';
    log_msg(LOG_WARN, NULL, "%s", big);
    free(big);
    fflush(stderr);
    FILE *f = cr_get_redirected_stderr();
    char line[8192];
    cr_assert_not_null(fgets(line, sizeof line, f));
    size_t n = strlen(line);
    cr_expect(n <= 2048 && line[n - 1] == '\n', "one line of at most 2048 bytes (%zu)", n);
    cr_expect_null(strchr(line, '\r'));
    cr_expect_null(fgets(line, sizeof line, f), "still one line");
}
