#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/timeutil.h"

static enum log_level min_level = LOG_INFO;
static const char *const level_names[] = {"DEBUG", "INFO ", "WARN ", "ERROR", "INFO "};

void log_set_level(enum log_level level)
{
    min_level = level;
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

void log_msg(enum log_level level, const char *rid, const char *fmt, ...)
{
    if (level < min_level)
        return;
    char line[2048];
    /* The prefix "<ts> <LEVEL> [<rid>] " by hand: a request logs a line or more. */
    const size_t prefix_cap = sizeof line / 2;
    time_now_rfc3339(line);
    size_t n = TIMESTAMP_LEN - 1;
    line[n++] = ' ';
    n = put_str(line, n, prefix_cap, level_names[level]);
    n = put_str(line, n, prefix_cap, " [");
    n = put_str(line, n, prefix_cap, rid ? rid : "-");
    n = put_str(line, n, prefix_cap, "] ");
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    size_t len = n + (size_t)m;
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
