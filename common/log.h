/*
 * Logging to stderr, one line per event:
 *   2026-11-26T01:02:03.456Z WARN  [request-id] message
 * Client mistakes are WARN, our own faults and store failures ERROR.
 * Thread-safe (one write(2) per line).
 */
#ifndef BISTORE_LOG_H
#define BISTORE_LOG_H

/* LOG_ALWAYS: shown at every level, tagged INFO (the "listening on" line,
 * which tests and scripts read the bound port from). */
enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_ALWAYS };

void log_set_level(enum log_level level);
/* rid: the request id the line belongs to, or NULL. */
void log_msg(enum log_level level, const char *rid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

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
