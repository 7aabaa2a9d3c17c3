#ifndef BISTORE_TIMEUTIL_H
#define BISTORE_TIMEUTIL_H

#include <stdint.h>
#include <time.h>

/* RFC 3339 UTC with milliseconds: "2026-11-26T01:02:03.456Z" (24 chars + NUL). */
#define TIMESTAMP_LEN 25
void time_now_rfc3339(char out[TIMESTAMP_LEN]);
void time_format_rfc3339(int64_t unix_ms, char out[TIMESTAMP_LEN]);
int64_t time_now_unix_ms(void);
/* Monotonic clock in milliseconds, for deadlines and durations. */
int64_t time_monotonic_ms(void);
/* Sleeps ms milliseconds (a signal does not cut it short). */
void time_sleep_ms(int64_t ms);
/* The CLOCK_REALTIME moment ms milliseconds from now, as
 * pthread_cond_timedwait takes it. */
struct timespec time_realtime_after_ms(int64_t ms);

#endif
