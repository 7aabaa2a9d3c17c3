#include "common/result.h"

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

static const struct {
    const char *name;
    unsigned http_status;
    const char *hint;
} table[BS_CODE_COUNT] = {
#define BS_ERROR_ROW(code, name, status, hint) [code] = {name, status, hint},
    BS_ERROR_TABLE(BS_ERROR_ROW)
#undef BS_ERROR_ROW
};

static bool in_range(enum bs_code code)
{
    return (int)code >= 0 && code < BS_CODE_COUNT;
}

const char *bs_code_name(enum bs_code code)
{
    return in_range(code) ? table[code].name : table[BS_STORAGE_ERROR].name;
}

unsigned bs_code_http_status(enum bs_code code)
{
    return in_range(code) ? table[code].http_status : 500;
}

const char *bs_code_hint(enum bs_code code)
{
    return in_range(code) ? table[code].hint : table[BS_STORAGE_ERROR].hint;
}

void bs_error_clear(struct bs_error *err)
{
    err->code = BS_OK;
    err->message[0] = '\0';
    err->field[0] = '\0';
    err->op_index = -1;
}

enum bs_code bs_error_set(struct bs_error *err, enum bs_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    err->code = code;
    return code;
}

void bs_error_field(struct bs_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->field, sizeof err->field, fmt, ap);
    va_end(ap);
}

int msg_fail(char *msg, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    return -1;
}

int path_absolute(const char *path, char *out, size_t cap)
{
    char cwd[PATH_MAX];
    int n = path[0] == '/'            ? snprintf(out, cap, "%s", path)
            : getcwd(cwd, sizeof cwd) ? snprintf(out, cap, "%s/%s", cwd, path)
                                      : -1;
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}
