#include "common/timeutil.h"

#include <errno.h>
#include <time.h>

int64_t time_now_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void time_sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int64_t time_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes v as exactly n decimal digits (the caller keeps v below 10^n). */
static char *put_digits(char *p, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + n;
}

/* By hand rather than snprintf: every log line and every write stamps one. */
void time_format_rfc3339(int64_t unix_ms, char out[TIMESTAMP_LEN])
{
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    /* Fields are bounded by gmtime_r; the modulos keep each in its width. */
    char *p = put_digits(out, (unsigned)(tm.tm_year + 1900) % 10000u, 4);
    *p++ = '-';
    p = put_digits(p, (unsigned)(tm.tm_mon + 1) % 100u, 2);
    *p++ = '-';
    p = put_digits(p, (unsigned)tm.tm_mday % 100u, 2);
    *p++ = 'T';
    p = put_digits(p, (unsigned)tm.tm_hour % 100u, 2);
    *p++ = ':';
    p = put_digits(p, (unsigned)tm.tm_min % 100u, 2);
    *p++ = ':';
    p = put_digits(p, (unsigned)tm.tm_sec % 100u, 2);
    *p++ = '.';
    p = put_digits(p, (unsigned)(unix_ms % 1000) % 1000u, 3);
    *p++ = 'Z';
    *p = '\0';
}

void time_now_rfc3339(char out[TIMESTAMP_LEN])
{
    time_format_rfc3339(time_now_unix_ms(), out);
}

struct timespec time_realtime_after_ms(int64_t ms)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += (time_t)(ms / 1000);
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}
