#include "stores/model/canon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/json_text.h"

int canon_hash(const json_t *v, char hex[HASH_STR_LEN])
{
    struct buf b;
    buf_init(&b, (size_t)1 << 31);
    if (json_canon_append(&b, v) != BUF_OK) {
        buf_free(&b);
        return -1;
    }
    XXH64_hash_t h = XXH64(buf_str(&b), b.len, 0);
    buf_free(&b);
    snprintf(hex, HASH_STR_LEN, "%016llx", (unsigned long long)h);
    return 0;
}

json_t *canon_entity_record(const char *id, const char *type, json_t *properties, int64_t version)
{
    return json_pack("{s:s, s:s, s:O, s:I}", "id", id, "type", type, "properties", properties,
                     "version", (json_int_t)version);
}

json_t *canon_relationship_record(const char *id, const char *type, const char *source,
                                  const char *target, json_t *properties, int64_t version)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:O, s:I}", "id", id, "type", type, "source", source,
                     "target", target, "properties", properties, "version", (json_int_t)version);
}

/* Appends sep (',' or the opening '{') and `"key":"value"`, value escaped. */
static enum buf_status append_string_member(struct buf *out, char sep, const char *key,
                                            const char *value)
{
    enum buf_status status = buf_append_char(out, sep);
    if (status == BUF_OK)
        status = json_text_append_string(out, key, strlen(key));
    if (status == BUF_OK)
        status = buf_append_char(out, ':');
    return status == BUF_OK ? json_text_append_string(out, value, strlen(value)) : status;
}

/* hex = XXH64 of the record text in out, which ends with version. */
static int hash_record(struct buf *out, enum buf_status status, int64_t version,
                       char hex[HASH_STR_LEN])
{
    if (status == BUF_OK)
        status = buf_append_str(out, ",\"version\":");
    if (status == BUF_OK)
        status = json_text_append_integer(out, version);
    if (status == BUF_OK)
        status = buf_append_char(out, '}');
    if (status != BUF_OK)
        return -1;
    XXH64_hash_t h = XXH64(buf_str(out), out->len, 0);
    snprintf(hex, HASH_STR_LEN, "%016llx", (unsigned long long)h);
    return 0;
}

/* The record's start, "{"id":...,"properties":{...}", in scratch (reset first). */
static enum buf_status record_head(struct buf *scratch, const struct canon_record *r)
{
    buf_reset(scratch);
    enum buf_status status = append_string_member(scratch, '{', "id", r->id);
    if (status == BUF_OK)
        status = buf_append_str(scratch, ",\"properties\":");
    if (status == BUF_OK)
        status = buf_append(scratch, r->properties, r->properties_len);
    return status;
}

/* Keys in canonical (byte) order: id, properties, source, target, type, version. */
int canon_entity_hash(struct buf *scratch, const struct canon_record *r, char hex[HASH_STR_LEN])
{
    enum buf_status status = record_head(scratch, r);
    if (status == BUF_OK)
        status = append_string_member(scratch, ',', "type", r->type);
    return hash_record(scratch, status, r->version, hex);
}

int canon_relationship_hash(struct buf *scratch, const struct canon_record *r,
                            char hex[HASH_STR_LEN])
{
    enum buf_status status = record_head(scratch, r);
    if (status == BUF_OK)
        status = append_string_member(scratch, ',', "source", r->source);
    if (status == BUF_OK)
        status = append_string_member(scratch, ',', "target", r->target);
    if (status == BUF_OK)
        status = append_string_member(scratch, ',', "type", r->type);
    return hash_record(scratch, status, r->version, hex);
}

int canon_hash_parts(const char *hex, int64_t *h1, int64_t *h2)
{
    uint64_t h = 0;
    for (int i = 0; i < 16; i++) {
        char c = hex ? hex[i] : '\0';
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        h = h << 4 | (uint64_t)d;
    }
    if (hex[16] != '\0')
        return -1;
    *h1 = (int64_t)(h >> 34);
    *h2 = (int64_t)(h >> 4 & 0x3fffffffu);
    return 0;
}

int64_t canon_id_part(const char *id)
{
    if (!id || !id[0])
        return -1;
    uint64_t h = 0;
    for (const char *p = id; *p; p++) {
        const char *at = strchr(CANON_ID_ALPHABET, *p);
        if (!at)
            return -1;
        h = (h * 131 + (uint64_t)(at - CANON_ID_ALPHABET + 1)) & 0x3fffffffu;
    }
    return (int64_t)h;
}

json_t *canon_neo4j_entity_map(const char *id, const json_t *properties, int64_t version,
                               const char *hash)
{
    json_t *m = canon_neo4j_map(id, properties, version, hash);
    int64_t k = canon_id_part(id);
    if (m && k >= 0 && json_object_set_new(m, "_hid", json_integer(k)) != 0) {
        json_decref(m);
        return NULL;
    }
    return m;
}

json_t *canon_neo4j_map(const char *id, const json_t *properties, int64_t version, const char *hash)
{
    /* A shallow copy: the values are shared, and no one changes them. */
    json_t *m = json_copy((json_t *)properties);
    int64_t h1, h2;
    bool parts = canon_hash_parts(hash, &h1, &h2) == 0; /* not from a damaged hash */
    if (!m || json_object_set_new(m, "id", json_string(id)) != 0 ||
        json_object_set_new(m, "_v", json_integer(version)) != 0 ||
        json_object_set_new(m, "_h", json_string(hash)) != 0 ||
        (parts && (json_object_set_new(m, "_h1", json_integer(h1)) != 0 ||
                   json_object_set_new(m, "_h2", json_integer(h2)) != 0))) {
        json_decref(m);
        return NULL;
    }
    return m;
}

bool canon_equal(const json_t *a, const json_t *b)
{
    char *ca = json_canon_dumps(a), *cb = json_canon_dumps(b);
    bool eq = ca && cb && strcmp(ca, cb) == 0;
    free(ca);
    free(cb);
    return eq;
}

json_t *canon_mirrored(const json_t *props)
{
    json_t *m = json_is_object(props) ? json_deep_copy(props) : json_object();
    if (m) {
        json_object_del(m, "id");
        json_object_del(m, "_v");
        json_object_del(m, "_h");
        json_object_del(m, "_h1");
        json_object_del(m, "_h2");
        json_object_del(m, "_hid");
    }
    return m;
}
