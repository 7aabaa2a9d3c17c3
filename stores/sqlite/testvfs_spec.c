#include "stores/sqlite/testvfs_spec.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/fault_points.h"
#include "stores/sqlite/testvfs.h"

const char *const testvfs_op_names[] = {"read", "write", "sync", "truncate", "any"};
const char *const testvfs_kind_names[] = {"db", "wal", "journal", "any"};

static const struct {
    const char *name;
    int rc;
} rc_names[] = {
    {"full", SQLITE_FULL},
    {"ioerr", SQLITE_IOERR},
    {"ioerr_read", SQLITE_IOERR_READ},
    {"ioerr_short_read", SQLITE_IOERR_SHORT_READ},
    {"ioerr_write", SQLITE_IOERR_WRITE},
    {"ioerr_fsync", SQLITE_IOERR_FSYNC},
    {"ioerr_truncate", SQLITE_IOERR_TRUNCATE},
    {"ioerr_nomem", SQLITE_IOERR_NOMEM},
    {"nomem", SQLITE_IOERR_NOMEM},
};

int testvfs_default_rc(enum op op)
{
    switch (op) {
    case OP_READ: return SQLITE_IOERR_READ;
    case OP_WRITE: return SQLITE_IOERR_WRITE;
    case OP_SYNC: return SQLITE_IOERR_FSYNC;
    default: return SQLITE_IOERR_TRUNCATE;
    }
}

const char *testvfs_rc_name(int rc)
{
    for (size_t i = 0; i < sizeof rc_names / sizeof rc_names[0]; i++)
        if (rc_names[i].rc == rc)
            return rc_names[i].name;
    return "?";
}

static int parse_count(const char *v, long min, long *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < min)
        return -1;
    *out = n;
    return 0;
}

static int pick(const char *v, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v, names[i]) == 0)
            return i;
    return -1;
}

static bool known_point(const char *p)
{
    if (strcmp(p, "ready") == 0)
        return true;
    for (int i = 0; i < FAULT_POINT_COUNT; i++)
        if (strcmp(p, fault_point_name((enum fault_point)i)) == 0)
            return true;
    return false;
}

static int parse_after(const char *v, struct testvfs_spec *s)
{
    const char *colon = strchr(v, ':');
    size_t n = colon ? (size_t)(colon - v) : strlen(v);
    if (n == 0 || n >= sizeof s->after)
        return -1;
    memcpy(s->after, v, n);
    s->after[n] = '\0';
    s->after_count = 1;
    if (colon && parse_count(colon + 1, 1, &s->after_count) != 0)
        return -1;
    return known_point(s->after) ? 0 : -1;
}

static int parse_rc(const char *v, int *rc)
{
    if (strncasecmp(v, "sqlite_", 7) == 0)
        v += 7;
    for (size_t i = 0; i < sizeof rc_names / sizeof rc_names[0]; i++)
        if (strcasecmp(v, rc_names[i].name) == 0) {
            *rc = rc_names[i].rc;
            return 0;
        }
    return -1;
}

/* True when item's key (before any '=') is name. */
static bool key_is(const char *item, size_t klen, const char *name)
{
    return strlen(name) == klen && strncmp(item, name, klen) == 0;
}

/* One key=value or flag of the spec into s; -1 when it is not one. */
static int parse_item(const char *item, struct testvfs_spec *s)
{
    const char *eq = strchr(item, '=');
    const char *v = eq ? eq + 1 : NULL;
    size_t klen = eq ? (size_t)(eq - item) : strlen(item);
    bool power = s->mode == MODE_POWERLOSS;
    if (v && key_is(item, klen, "after"))
        return parse_after(v, s);
    if (!v && key_is(item, klen, "trace"))
        return s->trace = true, 0;
    if (v && key_is(item, klen, "autocheckpoint"))
        return parse_count(v, 1, &s->autocheckpoint);
    if (power && v && key_is(item, klen, "cut"))
        return parse_count(v, 1, &s->cut);
    if (power && v && key_is(item, klen, "seed")) {
        long seed;
        if (parse_count(v, 0, &seed) != 0)
            return -1;
        s->seed = (uint64_t)seed;
        return 0;
    }
    if (power && !v && key_is(item, klen, "torn"))
        return s->torn = true, 0;
    if (power && !v && key_is(item, klen, "nofsync"))
        return s->nofsync = true, 0;
    if (power && v && key_is(item, klen, "then")) {
        if (strcmp(v, "kill") != 0 && strcmp(v, "stop") != 0)
            return -1;
        s->stop = strcmp(v, "stop") == 0;
        return 0;
    }
    if (!power && v && key_is(item, klen, "op")) {
        int i = pick(v, testvfs_op_names, OP_ANY + 1);
        return i < 0 ? -1 : (s->op = (enum op)i, 0);
    }
    if (!power && v && key_is(item, klen, "file")) {
        int i = pick(v, testvfs_kind_names, KIND_ANY + 1);
        return i < 0 ? -1 : (s->file = (enum kind)i, 0);
    }
    if (!power && v && key_is(item, klen, "nth"))
        return parse_count(v, 1, &s->nth);
    if (!power && v && key_is(item, klen, "times")) {
        if (strcmp(v, "forever") == 0)
            return s->times = -1, 0;
        return parse_count(v, 1, &s->times);
    }
    if (!power && v && key_is(item, klen, "rc"))
        return parse_rc(v, &s->rc);
    return -1;
}

/* Splits text at commas: the mode first, then the items. */
int testvfs_spec_parse(const char *text, struct testvfs_spec *s, char *msg, size_t cap)
{
    *s = (struct testvfs_spec){.seed = 1, .op = OP_NONE, .file = KIND_ANY, .nth = 1, .times = 1};
    char *copy = strdup(text);
    if (!copy)
        return snprintf(msg, cap, "out of memory"), -1;
    int rc = 0;
    char *item = copy;
    for (int i = 0; item && rc == 0; i++) {
        char *comma = strchr(item, ',');
        if (comma)
            *comma = '\0';
        if (i == 0 && strcmp(item, "powerloss") == 0) {
            s->mode = MODE_POWERLOSS;
        } else if (i == 0 && strcmp(item, "error") == 0) {
            s->mode = MODE_ERROR;
        } else if (i == 0) {
            snprintf(msg, cap, "%s=%s: the mode must be powerloss or error", TESTVFS_ENV, text);
            rc = -1;
        } else if (parse_item(item, s) != 0) {
            snprintf(msg, cap, "%s=%s: bad item '%s' (see stores/sqlite/testvfs.h)", TESTVFS_ENV,
                     text, item);
            rc = -1;
        }
        item = comma ? comma + 1 : NULL;
    }
    if (rc == 0 && s->mode == MODE_POWERLOSS && s->cut < 1) {
        snprintf(msg, cap, "%s=%s: powerloss needs cut=N (N >= 1)", TESTVFS_ENV, text);
        rc = -1;
    }
    if (rc == 0 && s->mode == MODE_ERROR && s->op == OP_NONE) {
        snprintf(msg, cap, "%s=%s: error needs op=read|write|sync|truncate|any", TESTVFS_ENV, text);
        rc = -1;
    }
    free(copy);
    return rc;
}
