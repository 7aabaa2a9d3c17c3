#include "common/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/timeutil.h"

static enum log_level min_level = LOG_INFO;
static enum log_format format = LOG_TEXT;
static const char *const level_names[] = {"DEBUG", "INFO ", "WARN ", "ERROR", "INFO "};
static const char *const json_levels[] = {"debug", "info", "warn", "error", "info"};

void log_set_level(enum log_level level)
{
    min_level = level;
}

void log_set_format(enum log_format f)
{
    format = f;
}

enum log_format log_get_format(void)
{
    return format;
}

/* Copies s to line + n, cut to end before cap; the new n. */
static size_t put_str(char *line, size_t n, size_t cap, const char *s)
{
    size_t len = strlen(s);
    if (len > cap - n)
        len = cap - n;
    memcpy(line + n, s, len);
    return n + len;
}

/*
 * The length (1..4) of the valid UTF-8 sequence at s (len bytes left), with
 * its code point in *cp; 0 when s does not start one (a stray continuation
 * byte, an overlong form, a surrogate, a code point over U+10FFFF, a cut
 * sequence).
 */
static size_t utf8_sequence(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf; /* the allowed range of the second byte */
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        v = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        v = c & 0x0fu;
        lo = c == 0xe0 ? 0xa0 : 0x80; /* no overlong forms */
        hi = c == 0xed ? 0x9f : 0xbf; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        v = c & 0x07u;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf; /* nothing over U+10FFFF */
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        unsigned char b = s[i];
        if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xbf))
            return 0;
        v = (v << 6) | (b & 0x3fu);
    }
    *cp = v;
    return n;
}

/* Code points a viewer may show as a line break or that reorder the text. */
static bool breaks_lines(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
           (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

size_t log_escape(char *out, size_t cap, const char *in, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)in;
    size_t o = 0, i = 0;
    while (i < len) {
        uint32_t cp = 0;
        size_t n = utf8_sequence(s + i, len - i, &cp);
        char esc[8];
        size_t e = 0;
        if (n == 0 || cp < 0x20 || cp == 0x7f) {
            esc[e++] = '\\';
            esc[e++] = 'x';
            esc[e++] = hex[s[i] >> 4];
            esc[e++] = hex[s[i] & 15];
            n = 1;
        } else if (cp == '\\') {
            esc[e++] = '\\';
            esc[e++] = '\\';
        } else if (breaks_lines(cp)) {
            esc[e++] = '\\';
            esc[e++] = 'u';
            for (int shift = 12; shift >= 0; shift -= 4)
                esc[e++] = hex[(cp >> shift) & 15];
        }
        const char *piece = e ? esc : (const char *)s + i;
        size_t plen = e ? e : n;
        if (o + plen >= cap)
            break; /* cut before it, never inside */
        memcpy(out + o, piece, plen);
        o += plen;
        i += n;
    }
    out[o] = '\0';
    return o;
}

/*
 * Copies in (len bytes) to out (cap >= 1) as the inside of a JSON string:
 * '"' and '\\' escaped, controls, DEL and the line-breaking code points of
 * breaks_lines as \uXXXX, a byte outside valid UTF-8 as \ufffd. Cut before
 * an escape that would not fit; NUL-terminated. Returns the bytes written.
 */
static size_t json_escape(char *out, size_t cap, const char *in, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)in;
    size_t o = 0, i = 0;
    while (i < len) {
        uint32_t cp = 0;
        size_t n = utf8_sequence(s + i, len - i, &cp);
        char esc[8];
        size_t e = 0;
        if (n == 0) {
            memcpy(esc, "\\ufffd", 6);
            e = 6;
            n = 1;
        } else if (cp == '"' || cp == '\\') {
            esc[e++] = '\\';
            esc[e++] = (char)cp;
        } else if (cp < 0x20 || cp == 0x7f || breaks_lines(cp)) {
            esc[e++] = '\\';
            esc[e++] = 'u';
            for (int shift = 12; shift >= 0; shift -= 4)
                esc[e++] = hex[(cp >> shift) & 15];
        }
        const char *piece = e ? esc : (const char *)s + i;
        size_t plen = e ? e : n;
        if (o + plen >= cap)
            break;
        memcpy(out + o, piece, plen);
        o += plen;
        i += n;
    }
    out[o] = '\0';
    return o;
}

/* Appends ,"key":"<s escaped>" to line (n used of cap, one byte kept). */
static size_t put_json_field(char *line, size_t n, size_t cap, const char *key, const char *s)
{
    n = put_str(line, n, cap - 1, ",\"");
    n = put_str(line, n, cap - 1, key);
    n = put_str(line, n, cap - 1, "\":\"");
    n += json_escape(line + n, cap - 1 - n, s, strlen(s));
    return put_str(line, n, cap - 1, "\"");
}

/* A JSON line: time, level, request_id, then extra (already JSON: ,"k":v
 * pairs, or ""), then msg last. */
static void write_json(enum log_level level, const char *rid, const char *extra, const char *msg,
                       size_t msg_len)
{
    char line[4096];
    char ts[TIMESTAMP_LEN];
    time_now_rfc3339(ts);
    size_t n = put_str(line, 0, sizeof line - 1, "{\"time\":\"");
    n = put_str(line, n, sizeof line - 1, ts);
    n = put_str(line, n, sizeof line - 1, "\",\"level\":\"");
    n = put_str(line, n, sizeof line - 1, json_levels[level]);
    n = put_str(line, n, sizeof line - 1, "\"");
    if (rid)
        n = put_json_field(line, n, sizeof line, "request_id", rid);
    n = put_str(line, n, sizeof line - 1, extra);
    n = put_str(line, n, sizeof line - 1, ",\"msg\":\"");
    /* keep room for the closing quote, brace and newline */
    size_t room = sizeof line - n > 4 ? sizeof line - n - 3 : 1;
    n += json_escape(line + n, room, msg, msg_len);
    n = put_str(line, n, sizeof line, "\"}\n");
    if (line[n - 1] != '\n') /* cannot happen: room was kept; never a broken line */
        line[n - 1] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

void log_request(enum log_level level, const char *rid, const char *method, const char *route,
                 const char *path, unsigned status, double duration_ms, const char *tx_id,
                 const char *key)
{
    if (level < min_level)
        return;
    if (format == LOG_TEXT) {
        log_msg(level, rid, "%s %s -> %u (%.0f ms)%s%s", method, path, status, duration_ms,
                tx_id ? " tx " : "", tx_id ? tx_id : "");
        return;
    }
    char extra[2048];
    size_t n = put_json_field(extra, 0, sizeof extra, "method", method);
    n = put_json_field(extra, n, sizeof extra, "route", route);
    n = put_json_field(extra, n, sizeof extra, "path", path);
    char nums[96];
    snprintf(nums, sizeof nums, ",\"status\":%u,\"duration_ms\":%.3f", status, duration_ms);
    n = put_str(extra, n, sizeof extra - 1, nums);
    if (tx_id)
        n = put_json_field(extra, n, sizeof extra, "tx_id", tx_id);
    if (key && key[0])
        n = put_json_field(extra, n, sizeof extra, "key", key);
    extra[n] = '\0';
    char msg[2048];
    int m = snprintf(msg, sizeof msg, "%s %s -> %u (%.0f ms)", method, path, status, duration_ms);
    if (m < 0)
        return;
    write_json(level, rid, extra, msg, (size_t)m < sizeof msg ? (size_t)m : sizeof msg - 1);
}

void log_msg(enum log_level level, const char *rid, const char *fmt, ...)
{
    if (level < min_level)
        return;
    char line[2048], msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    size_t msg_len = (size_t)m < sizeof msg ? (size_t)m : sizeof msg - 1;
    if (format == LOG_JSON) {
        write_json(level, rid, "", msg, msg_len);
        return;
    }
    /* The prefix "<ts> <LEVEL> [<rid>] " by hand: a request logs a line or more. */
    const size_t prefix_cap = sizeof line / 2;
    time_now_rfc3339(line);
    size_t n = TIMESTAMP_LEN - 1;
    line[n++] = ' ';
    n = put_str(line, n, prefix_cap, level_names[level]);
    n = put_str(line, n, prefix_cap, " [");
    if (rid)
        n += log_escape(line + n, prefix_cap - n, rid, strlen(rid));
    else
        n = put_str(line, n, prefix_cap, "-");
    n = put_str(line, n, prefix_cap, "] ");
    /* long lines are cut, never overflowed; one byte stays for the newline */
    n += log_escape(line + n, sizeof line - n - 1, msg, msg_len);
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

_Noreturn void bs_assert_fail(const char *cond, const char *file, int line)
{
    log_msg(LOG_ERROR, NULL, "invariant violated: %s at %s:%d", cond, file, line);
    abort();
}
