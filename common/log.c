#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/timeutil.h"

static enum log_level min_level = LOG_INFO;
static const char *const level_names[] = {"DEBUG", "INFO ", "WARN ", "ERROR", "INFO "};

void log_set_level(enum log_level level)
{
    min_level = level;
}

void log_msg(enum log_level level, const char *rid, const char *fmt, ...)
{
    if (level < min_level)
        return;
    char line[2048];
    char ts[TIMESTAMP_LEN];
    time_now_rfc3339(ts);
    int n = snprintf(line, sizeof line, "%s %s [%s] ", ts, level_names[level], rid ? rid : "-");
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof line - 2)
        len = sizeof line - 2; /* long lines are cut, never overflowed */
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

_Noreturn void bs_assert_fail(const char *cond, const char *file, int line)
{
    log_msg(LOG_ERROR, NULL, "invariant violated: %s at %s:%d", cond, file, line);
    abort();
}
