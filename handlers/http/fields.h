/*
 * Reading a request: its JSON body, parsed from declarative field specs, and
 * its path arguments, query parameters and headers. Knows no resource: the
 * handlers give the specs (and the checks of the data model, as custom
 * fields).
 *
 * After GNUnet's GNUNET_JSON_Specification, applied as Taler's
 * TALER_MHD_parse_json_data applies it: a table of (name, type, required,
 * destination, limits); fields_parse rejects a field the table does not
 * name, then parses each field in table order, and turns the first bad one
 * into one error naming its path ("properties.x", "operations[3].type").
 * Errors are invalid_request unless a custom field says otherwise.
 */
#ifndef BISTORE_FIELDS_H
#define BISTORE_FIELDS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/result.h"
#include "handlers/http/request.h"

enum field_type {
    FIELD_STRING,  /* const char *: a string (borrowed from the body) */
    FIELD_CHOICE,  /* const char *: one of spec->choices */
    FIELD_BOOLEAN, /* bool */
    FIELD_INTEGER, /* int64_t in spec->min..spec->max */
    FIELD_OBJECT,  /* json_t * (borrowed): an object; with nullable, null too (dest NULL) */
    FIELD_ID,      /* char[ID_MAX_LEN + 1]: an id; absent, with generate: a new UUIDv7 */
    FIELD_CUSTOM,  /* spec->parse does it */
};

struct field_spec {
    const char *name; /* NULL ends a table */
    enum field_type type;
    bool required;
    void *dest; /* as the type says; NULL: checked, not kept. Left alone when absent */
    /* The message for a bad value, or a missing required one (else a generic one). */
    const char *message;
    int64_t min, max;           /* FIELD_INTEGER */
    const char *const *choices; /* FIELD_CHOICE, NULL-terminated */
    bool nullable;              /* FIELD_OBJECT */
    bool generate;              /* FIELD_ID */
    /* FIELD_CUSTOM, called when the field is present: false after filling
     * err (field: path, the field's whole path). */
    bool (*parse)(const json_t *value, const struct field_spec *spec, const char *path,
                  struct bs_error *err);
    void *arg; /* for parse */
};

/* Parses obj by specs (ended by a spec with no name). prefix names obj in
 * error paths ("" at the top, "operations[3]"). */
bool fields_parse(const json_t *obj, const struct field_spec *specs, const char *prefix,
                  struct bs_error *err);
/* Fills err as invalid_request naming path (prefix + "." + name, or name at
 * the top) with message: false, for parsers. */
bool fields_invalid(struct bs_error *err, const char *prefix, const char *name,
                    const char *message);

/* The JSON object body of req, or NULL after answering 415/400 in res. */
json_t *body_object(const struct request *req, struct response *res);
/* Path argument i (req->args[i], whole length) as an id; false after
 * answering 400 invalid_request naming field ("id", "tx_id"). */
bool path_id(const struct request *req, size_t i, const char *field, struct response *res);
/* If-Match: -1 when absent or "*"; the version otherwise; false after 400. */
bool parse_if_match(const struct request *req, int64_t *version, struct response *res);
/* ?limit=: def when absent; false after 400 when not in 1..max. */
bool query_limit(const struct request *req, int def, int max, int *limit, struct response *res);
/* ?name= one of choices (NULL-terminated), or absent (*value NULL); false
 * after 400 with message. */
bool query_choice(const struct request *req, const char *name, const char *const *choices,
                  const char *message, const char **value, struct response *res);

/* Answers 200 {"items": items, "next": next | null}; consumes both. */
void reply_page(struct response *res, json_t *items, char *next);

#endif
