/*
 * Raw Cypher statements of a client (the "cypher" operation): the lexical
 * check that keeps them off the gateway's own labels and properties, and
 * how they travel in a batch (stores/neo4j/cypher.h).
 *
 * The check is lexical, so it refuses what the text and the parameters
 * show: any mention of `_Bistore` (labels of the gateway's bookkeeping
 * nodes, in any case, anywhere: names, strings, comments), and the names
 * `_v`, `_h`, `_h1`, `_h2` and `_hid` (the version, hash and hash parts of
 * every record, the id part of every node), bare or backquoted, or as a
 * string literal (n['_v']). It cannot see names that are built at run time (string concatenation,
 * APOC, a dynamic label or key from an expression); the README says what that costs.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "stores/neo4j/cypher.h"
#include "stores/neo4j/neo4j.h"

#define BISTORE_PREFIX "_bistore"

/* Whether s (len bytes) names one of the record's bookkeeping properties. */
static bool reserved_key(const char *s, size_t len)
{
    if (len == 4 && strncmp(s, "_hid", 4) == 0)
        return true;
    return (len == 2 || (len == 3 && (s[2] == '1' || s[2] == '2') && s[1] == 'h')) && s[0] == '_' &&
           (s[1] == 'v' || s[1] == 'h');
}

/* Whether text (len bytes) holds "_Bistore" in any case. */
static bool mentions_bistore(const char *text, size_t len)
{
    size_t plen = sizeof BISTORE_PREFIX - 1;
    for (size_t i = 0; i + plen <= len; i++)
        if (strncasecmp(text + i, BISTORE_PREFIX, plen) == 0)
            return true;
    return false;
}

static bool ident_char(unsigned char c)
{
    return isalnum(c) || c == '_' || c >= 0x80;
}

static int refuse(struct bs_error *err, const char *what)
{
    bs_error_set(err, BS_INVALID_REQUEST,
                 "a cypher statement may not touch the gateway's own labels and properties "
                 "(_Bistore*, _v, _h): %s",
                 what);
    return -1;
}

/* The end of the quoted run that starts at text[i] (the quote), escapes
 * skipped; len when it is not closed. A backquote is escaped by doubling it. */
static size_t quoted_end(const char *text, size_t len, size_t i, bool *escaped)
{
    char q = text[i];
    *escaped = false;
    for (size_t j = i + 1; j < len; j++) {
        if (q != '`' && text[j] == '\\') {
            *escaped = true;
            j++;
        } else if (text[j] == q) {
            if (q == '`' && j + 1 < len && text[j + 1] == '`') {
                j++;
                continue;
            }
            return j;
        } else if (q == '`' && text[j] == '\\') {
            *escaped = true;
        }
    }
    return len;
}

int cypher_raw_check_text(const char *text, struct bs_error *err)
{
    size_t len = strlen(text);
    if (mentions_bistore(text, len))
        return refuse(err, "it mentions _Bistore");
    for (size_t i = 0; i < len;) {
        char c = text[i];
        if (c == '/' && i + 1 < len && text[i + 1] == '/') { /* a line comment */
            const char *nl = memchr(text + i, '\n', len - i);
            i = nl ? (size_t)(nl - text) + 1 : len;
        } else if (c == '/' && i + 1 < len && text[i + 1] == '*') { /* a block comment */
            const char *end = strstr(text + i + 2, "*/");
            i = end ? (size_t)(end - text) + 2 : len;
        } else if (c == '\'' || c == '"' || c == '`') {
            bool escaped;
            size_t end = quoted_end(text, len, i, &escaped);
            const char *inner = text + i + 1;
            size_t n = (end < len ? end : len) - i - 1;
            if (c == '`' && escaped)
                return refuse(err, "a backquoted name holds an escape");
            if (reserved_key(inner, n))
                return refuse(err, c == '`' ? "it names _v, _h, _h1, _h2 or _hid"
                                            : "a string literal is _v, _h, _h1, _h2 or _hid");
            i = end < len ? end + 1 : len;
        } else if (ident_char((unsigned char)c)) {
            size_t start = i;
            while (i < len && ident_char((unsigned char)text[i]))
                i++;
            bool parameter = start > 0 && text[start - 1] == '$';
            if (!parameter && reserved_key(text + start, i - start))
                return refuse(err, "it names _v, _h, _h1, _h2 or _hid");
        } else {
            i++;
        }
    }
    return 0;
}

/* The parameters, recursively: no map key _v, _h or _Bistore* below the
 * top (whose keys are the parameters' names), no string value _v, _h or
 * one that mentions _Bistore (a dynamic label or key). */
static int check_value(const json_t *v, int depth, struct bs_error *err)
{
    if (depth > 64)
        return refuse(err, "the parameters are nested too deeply to check");
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (reserved_key(s, n) || mentions_bistore(s, n))
            return refuse(err,
                          "a parameter's value is _v, _h, _h1, _h2, _hid or mentions _Bistore");
        return 0;
    }
    if (json_is_array(v)) {
        size_t i;
        const json_t *item;
        json_array_foreach (v, i, item)
            if (check_value(item, depth + 1, err) != 0)
                return -1;
        return 0;
    }
    if (json_is_object(v)) {
        const char *key;
        const json_t *item;
        json_object_foreach ((json_t *)v, key, item) {
            /* the top level's keys are parameter names ($_v), not properties */
            if (depth > 0 && (reserved_key(key, strlen(key)) || mentions_bistore(key, strlen(key))))
                return refuse(err,
                              "a parameter's key is _v, _h, _h1, _h2, _hid or mentions _Bistore");
            if (check_value(item, depth + 1, err) != 0)
                return -1;
        }
    }
    return 0;
}

int cypher_raw_check(const char *text, const json_t *params, struct bs_error *err)
{
    if (cypher_raw_check_text(text, err) != 0)
        return -1;
    return params ? check_value(params, 0, err) : 0;
}

int cypher_add_client_statement(struct cypher_batch *b, const char *text, json_t *params)
{
    if (cypher_add_raw(b, text, params ? params : json_object()) != 0)
        return -1;
    /* The third key marks it: cypher_append_merged and cypher_join_guard
     * take only {statement, parameters}, so a client's statement is never
     * merged with another (not even one of the same text: it may count its
     * rows) nor joined to the guard. "row" is what Neo4j answers anyway. */
    json_t *stmt = json_array_get(b->statements, json_array_size(b->statements) - 1);
    return json_object_set_new(stmt, "resultDataContents", json_pack("[s]", "row"));
}

bool cypher_is_client_statement(const json_t *stmt)
{
    return json_object_get(stmt, "resultDataContents") != NULL;
}

json_t *cypher_rows_as_objects(const json_t *result)
{
    json_t *columns = json_object_get(result, "columns");
    json_t *data = json_object_get(result, "data");
    json_t *rows = json_array();
    size_t i, j;
    json_t *entry, *name;
    json_array_foreach (data, i, entry) {
        json_t *row = json_object_get(entry, "row");
        json_t *obj = json_object();
        if (!rows || !obj || json_array_append_new(rows, obj) != 0) {
            json_decref(obj);
            json_decref(rows);
            return NULL;
        }
        json_array_foreach (columns, j, name) {
            json_t *cell = json_array_get(row, j);
            if (json_is_string(name) &&
                json_object_set(obj, json_string_value(name), cell ? cell : json_null()) != 0) {
                json_decref(rows);
                return NULL;
            }
        }
    }
    return rows;
}
