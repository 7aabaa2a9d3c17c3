/*
 * Logging to stderr, one line per event:
 *   2026-11-26T01:02:03.456Z WARN  [request-id] message
 * Client mistakes are WARN, our own faults and store failures ERROR.
 * Thread-safe (one write(2) per line).
 *
 * Messages carry client text (paths, methods, ids, what Neo4j echoes), so
 * log_msg escapes the request id and the formatted message with
 * log_escape: whatever a client sends, a line is one line, starts with the
 * prefix above and holds no control character.
 */
#ifndef BISTORE_LOG_H
#define BISTORE_LOG_H

#include <stddef.h>

/* LOG_ALWAYS: shown at every level, tagged INFO (the "listening on" line,
 * which tests and scripts read the bound port from). */
enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_ALWAYS };

void log_set_level(enum log_level level);

/*
 * LOG_TEXT: the lines above. LOG_JSON: one JSON object per line,
 * {"time", "level" ("debug" | "info" | "warn" | "error"), "request_id"
 * (when there is one), "msg"}, and for a request (log_request) also
 * "method", "route", "path", "status", "duration_ms", "tx_id" and "key"
 * (the API key's name; each when there is one). Strings are JSON-escaped; a line is one line
 * whatever a client sends.
 */
enum log_format { LOG_TEXT, LOG_JSON };
void log_set_format(enum log_format format);
enum log_format log_get_format(void);

/* The line of one answered HTTP request. route: the route's name or
 * "unmatched"; tx_id and key (the name of the request's API key, never
 * the key) may be NULL. */
void log_request(enum log_level level, const char *rid, const char *method, const char *route,
                 const char *path, unsigned status, double duration_ms, const char *tx_id,
                 const char *key);
/* rid: the request id the line belongs to, or NULL. */
void log_msg(enum log_level level, const char *rid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Copies the len bytes of in to out (cap bytes of room, cap >= 1) with all
 * that could break or fake a log line escaped: C0 controls (CR, LF, ESC, NUL
 * among them), DEL and every byte that is not part of valid UTF-8 become
 * \xHH; the backslash becomes \\ (so an escape in the input cannot pass for
 * one of ours); the code points that terminals and viewers take as line
 * breaks or direction changes (C1 controls U+0080..U+009F, U+2028, U+2029,
 * U+202A..U+202E, U+2066..U+2069) become \uHHHH. Other valid UTF-8 passes.
 * Stops before a character or escape that would not fit, never in the
 * middle of one; out is always NUL-terminated. Returns the bytes written,
 * without the NUL. Thread-safe, no allocation.
 */
size_t log_escape(char *out, size_t cap, const char *in, size_t len);

#define log_info(...) log_msg(LOG_INFO, NULL, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, NULL, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, NULL, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, NULL, __VA_ARGS__)

/* Always-on assertion for invariants of the commit protocol: logs and aborts. */
#define BS_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            bs_assert_fail(#cond, __FILE__, __LINE__);                                             \
    } while (0)
_Noreturn void bs_assert_fail(const char *cond, const char *file, int line);

#endif
