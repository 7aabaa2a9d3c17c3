/*
 * RFC 3339 timestamps (common/timeutil.h): the exact text for known
 * instants, zero padding in every field, and "now" in the same shape.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <string.h>

#include "common/timeutil.h"

static void expect_format(int64_t unix_ms, const char *want)
{
    char got[TIMESTAMP_LEN];
    memset(got, 'x', sizeof got);
    time_format_rfc3339(unix_ms, got);
    cr_expect_str_eq(got, want);
}

Test(timeutil, known_instants)
{
    expect_format(0, "1970-01-01T00:00:00.000Z");
    expect_format(1795654923456, "2026-11-26T01:02:03.456Z");
    expect_format(951782400999, "2000-02-29T00:00:00.999Z");
    expect_format(253402300799999, "9999-12-31T23:59:59.999Z");
}

Test(timeutil, now_has_the_shape)
{
    char ts[TIMESTAMP_LEN];
    time_now_rfc3339(ts);
    cr_assert_eq(strlen(ts), TIMESTAMP_LEN - 1);
    const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; i < TIMESTAMP_LEN - 1; i++) {
        if (shape[i] == 'd')
            cr_expect(isdigit((unsigned char)ts[i]), "position %zu of %s", i, ts);
        else
            cr_expect_eq(ts[i], shape[i], "position %zu of %s", i, ts);
    }
}
