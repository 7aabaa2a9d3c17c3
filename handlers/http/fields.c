/* Reading a request (handlers/http/fields.h). */
#include "handlers/http/fields.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/ids.h"
#include "handlers/http/errors.h"

/* ---- the body, by field specs ---- */

bool fields_invalid(struct bs_error *err, const char *prefix, const char *name, const char *message)
{
    bs_error_field(err, "%s%s%s", prefix, prefix[0] && name[0] ? "." : "", name);
    bs_error_set(err, BS_INVALID_REQUEST, "%s", message);
    return false;
}

/* A message about field name: "'<name>' <what>". */
static bool invalid_named(struct bs_error *err, const char *prefix, const char *name,
                          const char *what)
{
    char message[160];
    snprintf(message, sizeof message, "'%s' %s", name, what);
    return fields_invalid(err, prefix, name, message);
}

static bool bad_value(const struct field_spec *spec, const char *prefix, const char *generic,
                      struct bs_error *err)
{
    return spec->message ? fields_invalid(err, prefix, spec->name, spec->message)
                         : invalid_named(err, prefix, spec->name, generic);
}

/* A field the table does not name: refused, its path named only when the
 * key is a plain identifier (no client text of any shape in a path). */
static bool known_fields(const json_t *obj, const struct field_spec *specs, const char *prefix,
                         struct bs_error *err)
{
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *)obj, key, value) {
        bool known = false;
        for (const struct field_spec *s = specs; s->name && !known; s++)
            known = strcmp(s->name, key) == 0;
        if (known)
            continue;
        char shown[80];
        snprintf(shown, sizeof shown, "%s", key);
        bs_error_field(err, "%s%s%s", prefix, prefix[0] && ids_valid_name(key) ? "." : "",
                       ids_valid_name(key) ? key : "");
        bs_error_set(err, BS_INVALID_REQUEST, "unknown field '%s'", shown);
        return false;
    }
    return true;
}

/* One field that is present. */
static bool parse_field(const json_t *v, const struct field_spec *spec, const char *prefix,
                        struct bs_error *err)
{
    switch (spec->type) {
    case FIELD_STRING:
    case FIELD_CHOICE:
    case FIELD_ID: {
        if (!json_is_string(v))
            return invalid_named(err, prefix, spec->name, "must be a string");
        const char *s = json_string_value(v);
        if (spec->type == FIELD_CHOICE) {
            bool ok = false;
            for (const char *const *c = spec->choices; *c && !ok; c++)
                ok = strcmp(*c, s) == 0;
            if (!ok)
                return bad_value(spec, prefix, "is not one of the values it takes", err);
        }
        if (spec->type == FIELD_ID) {
            if (!ids_valid(s))
                return fields_invalid(err, prefix, spec->name, "an id is " IDS_RULE);
            if (spec->dest)
                snprintf(spec->dest, ID_MAX_LEN + 1, "%s", s);
        } else if (spec->dest) {
            *(const char **)spec->dest = s;
        }
        return true;
    }
    case FIELD_BOOLEAN:
        if (!json_is_boolean(v))
            return bad_value(spec, prefix, "must be true or false", err);
        if (spec->dest)
            *(bool *)spec->dest = json_is_true(v);
        return true;
    case FIELD_INTEGER:
        if (!json_is_integer(v) || json_integer_value(v) < spec->min ||
            json_integer_value(v) > spec->max)
            return bad_value(spec, prefix, "must be an integer in its range", err);
        if (spec->dest)
            *(int64_t *)spec->dest = json_integer_value(v);
        return true;
    case FIELD_OBJECT:
        if (!json_is_object(v) && !(spec->nullable && json_is_null(v)))
            return bad_value(spec, prefix, "must be an object", err);
        if (spec->dest)
            *(const json_t **)spec->dest = json_is_object(v) ? v : NULL;
        return true;
    case FIELD_CUSTOM: {
        char path[BS_ERROR_FIELD_MAX];
        snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "", spec->name);
        return spec->parse(v, spec, path, err);
    }
    }
    return false;
}

bool fields_parse(const json_t *obj, const struct field_spec *specs, const char *prefix,
                  struct bs_error *err)
{
    if (!known_fields(obj, specs, prefix, err))
        return false;
    for (const struct field_spec *spec = specs; spec->name; spec++) {
        json_t *v = json_object_get(obj, spec->name);
        if (v) {
            if (!parse_field(v, spec, prefix, err))
                return false;
        } else if (spec->required) {
            return bad_value(spec, prefix, "is required", err);
        } else if (spec->type == FIELD_ID && spec->generate && spec->dest) {
            ids_uuid7(spec->dest);
        }
    }
    return true;
}

/* ---- the body itself ---- */

static bool is_json_content_type(const char *ct)
{
    if (!ct)
        return false;
    size_t n = strlen("application/json");
    if (strncasecmp(ct, "application/json", n) != 0)
        return false;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

/* What json_within found: within the limits, or the first one passed. */
enum json_budget { JSON_WITHIN, JSON_TOO_MANY, JSON_TOO_DEEP };

/* The limits json_within applies; 0: none. */
struct json_limits {
    size_t values, containers, depth;
};

/* What a parsed tree costs in memory beyond its text, as measured with
 * jansson 2.14 on glibc (RSS peak over a request): about 40 bytes per
 * number, 80 per short string, 130 per empty array and 330 per object of
 * one member. The budget takes a bound above those, plus the text again
 * (strings and keys are copied out of it). */
#define JSON_TREE_VALUE_BYTES 80
#define JSON_TREE_CONTAINER_BYTES 384

/*
 * Counts the values (a comma outside strings starts one more), the objects
 * and arrays and their nesting depth of a JSON text, stopping once one
 * passes its limit. Lexical only (the parser still judges the syntax: an
 * unbalanced bracket only makes the depth wrong for a text it refuses), so
 * a body that would cost a gigabyte as a tree, or a deep stack in the
 * parser, is refused after one pass over its bytes, with no allocation.
 * *n_values and *n_containers: what it counted.
 */
static enum json_budget json_within(const char *s, size_t n, const struct json_limits *lim,
                                    size_t *n_values, size_t *n_containers)
{
    size_t values = 1, containers = 0, depth = 0;
    *n_values = values;
    *n_containers = containers;
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == ',') {
            if (lim->values && ++values > lim->values)
                return JSON_TOO_MANY;
        } else if (c == '{' || c == '[') {
            if (lim->containers && ++containers > lim->containers)
                return JSON_TOO_MANY;
            if (lim->depth && ++depth > lim->depth)
                return JSON_TOO_DEEP;
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    *n_values = values;
    *n_containers = containers;
    return JSON_WITHIN;
}

json_t *body_object(const struct request *req, struct response *res)
{
    if (!is_json_content_type(request_header(req, "Content-Type"))) {
        reply_errorf(res, BS_UNSUPPORTED_MEDIA_TYPE, NULL,
                     "the body must be JSON, sent with Content-Type: application/json");
        return NULL;
    }
    if (!req->body || req->body_len == 0) {
        reply_errorf(res, BS_INVALID_JSON, NULL, "the body is empty; a JSON object is needed");
        return NULL;
    }
    const struct json_limits lim = {req->max_json_values, req->max_json_containers,
                                    req->max_json_depth};
    size_t values, containers;
    switch (json_within(req->body, req->body_len, &lim, &values, &containers)) {
    case JSON_WITHIN: break;
    case JSON_TOO_MANY:
        reply_errorf(res, BS_PAYLOAD_TOO_LARGE, NULL,
                     "the body holds more than %zu JSON values or %zu objects and arrays",
                     req->max_json_values, req->max_json_containers);
        return NULL;
    case JSON_TOO_DEEP:
        reply_errorf(res, BS_INVALID_REQUEST, NULL,
                     "the body nests objects and arrays more than %zu deep (--max-json-depth)",
                     req->max_json_depth);
        return NULL;
    }
    /* The tree's memory is taken from the budget before it is built. */
    size_t tree_bytes =
        req->body_len + values * JSON_TREE_VALUE_BYTES + containers * JSON_TREE_CONTAINER_BYTES;
    if (req->reserve && req->body_len + tree_bytes > req->max_request_memory) {
        reply_errorf(res, BS_PAYLOAD_TOO_LARGE, NULL,
                     "parsing this body (%zu JSON values, %zu objects and arrays) would take "
                     "about %zu MiB with its text, more than the gateway may hold for requests "
                     "(--max-body-memory, %zu MiB)",
                     values, containers, (req->body_len + tree_bytes) >> 20,
                     req->max_request_memory >> 20);
        return NULL;
    }
    if (req->reserve && !req->reserve(req->reserve_ctx, tree_bytes)) {
        reply_errorf(res, BS_OVERLOADED, NULL,
                     "parsing this body (%zu JSON values, %zu objects and arrays: about %zu MiB) "
                     "does not fit in the request memory the gateway may hold at once "
                     "(--max-body-memory); retry shortly",
                     values, containers, tree_bytes >> 20);
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        reply_errorf(res, BS_INVALID_JSON, NULL, "malformed JSON at line %d column %d: %s",
                     jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        reply_errorf(res, BS_INVALID_REQUEST, NULL, "the body must be a JSON object");
        return NULL;
    }
    return doc;
}

/* ---- path, query, headers ---- */

bool path_id(const struct request *req, size_t i, const char *field, struct response *res)
{
    if (i < req->n_args && ids_valid_len(req->args[i], req->arg_len[i]))
        return true;
    reply_errorf(res, BS_INVALID_REQUEST, field,
                 "'%s' in the path is not an id: an id is " IDS_RULE " (after percent-decoding)",
                 field);
    return false;
}

bool parse_if_match(const struct request *req, int64_t *version, struct response *res)
{
    const char *v = request_header(req, "If-Match");
    *version = -1;
    if (!v || strcmp(v, "*") == 0)
        return true;
    if (strncmp(v, "W/", 2) == 0)
        v += 2;
    bool quoted = v[0] == '"';
    const char *digits = quoted ? v + 1 : v;
    size_t nd = strspn(digits, "0123456789");
    /* Digits only (strtoll alone takes a sign and blanks), at most 18 of
       them (no overflow to LLONG_MAX). */
    char *end = NULL;
    long long n = nd >= 1 && nd <= 18 ? strtoll(digits, &end, 10) : 0;
    if (nd < 1 || nd > 18 || end != digits + nd || n < 1 ||
        (quoted ? strcmp(end, "\"") != 0 : *end)) {
        reply_errorf(res, BS_INVALID_REQUEST, "If-Match",
                     "If-Match must be an entity version as its ETag gives it, e.g. \"3\"");
        return false;
    }
    *version = n;
    return true;
}

bool query_limit(const struct request *req, int def, int max, int *limit, struct response *res)
{
    const char *v = request_query(req, "limit");
    *limit = def;
    if (!v)
        return true;
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < 1 || n > max) {
        reply_errorf(res, BS_INVALID_REQUEST, "limit", "limit must be an integer in 1..%d", max);
        return false;
    }
    *limit = (int)n;
    return true;
}

bool query_choice(const struct request *req, const char *name, const char *const *choices,
                  const char *message, const char **value, struct response *res)
{
    *value = request_query(req, name);
    bool known = !*value;
    for (const char *const *c = choices; *value && *c && !known; c++)
        known = strcmp(*c, *value) == 0;
    if (!known)
        reply_errorf(res, BS_INVALID_REQUEST, name, "%s", message);
    return known;
}

/* ---- answers ---- */

void reply_page(struct response *res, json_t *items, char *next)
{
    json_t *body = json_pack("{s:o, s:s?}", "items", items, "next", next);
    free(next);
    if (body)
        reply_json(res, 200, body);
    else
        reply_errorf(res, BS_STORAGE_ERROR, NULL, "out of memory");
}
