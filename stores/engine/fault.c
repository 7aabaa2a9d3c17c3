#include "stores/engine/fault.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "stores/sqlite/testvfs.h"

static int armed_point = -1;
static long remaining;

void fault_init(void)
{
    const char *spec = getenv("BISTORE_FAULT");
    if (!spec || !spec[0])
        return;
    for (int i = 0; i < FAULT_POINT_COUNT; i++) {
        size_t n = strlen(fault_point_name((enum fault_point)i));
        if (strncmp(spec, fault_point_name((enum fault_point)i), n) != 0 ||
            (spec[n] != '\0' && spec[n] != ':'))
            continue;
        long count = 1;
        if (spec[n] == ':') {
            char *end;
            count = strtol(spec + n + 1, &end, 10);
            if (*end || count < 1) {
                log_error("BISTORE_FAULT=%s: the count must be a positive integer", spec);
                exit(2);
            }
        }
        armed_point = i;
        remaining = count;
        log_warn("fault hook armed: SIGKILL at %s number %ld (test only)",
                 fault_point_name((enum fault_point)i), count);
        return;
    }
    log_error("BISTORE_FAULT=%s: unknown fault point", spec);
    exit(2);
}

void fault_hit(enum fault_point point)
{
    fault_vfs_at(point);
    fault_kill_at(point);
}

void fault_vfs_at(enum fault_point point)
{
    testvfs_hit(fault_point_name(point)); /* an SQLite fault armed after this point */
}

void fault_kill_at(enum fault_point point)
{
    if ((int)point != armed_point)
        return;
    if (--remaining > 0)
        return;
    log_warn("fault hook: SIGKILL at %s", fault_point_name(point));
    kill(getpid(), SIGKILL);
}
