#include "stores/engine/fault.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "stores/sqlite/testvfs.h"

static const char *const point_names[FAULT_POINT_COUNT] = {
    "after_begin", "after_neo4j_statements", "after_sqlite_commit", "after_neo4j_commit"};

static int armed_point = -1;
static long remaining;

void fault_init(void)
{
    const char *spec = getenv("BISTORE_FAULT");
    if (!spec || !spec[0])
        return;
    for (int i = 0; i < FAULT_POINT_COUNT; i++) {
        size_t n = strlen(point_names[i]);
        if (strncmp(spec, point_names[i], n) != 0 || (spec[n] != '\0' && spec[n] != ':'))
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
        log_warn("fault hook armed: SIGKILL at %s number %ld (test only)", point_names[i], count);
        return;
    }
    log_error("BISTORE_FAULT=%s: unknown fault point", spec);
    exit(2);
}

const char *fault_point_name(enum fault_point point)
{
    return point_names[point];
}

void fault_hit(enum fault_point point)
{
    testvfs_hit(point_names[point]); /* an SQLite fault armed after this point */
    if ((int)point != armed_point)
        return;
    if (--remaining > 0)
        return;
    log_warn("fault hook: SIGKILL at %s", point_names[point]);
    kill(getpid(), SIGKILL);
}
