/*
 * The spec of the SQLite fault shim, parsed (the syntax is in
 * stores/sqlite/testvfs.h). Internal to stores/sqlite/testvfs*.c.
 */
#ifndef BISTORE_TESTVFS_SPEC_H
#define BISTORE_TESTVFS_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mode { MODE_POWERLOSS, MODE_ERROR };
enum op { OP_READ, OP_WRITE, OP_SYNC, OP_TRUNCATE, OP_ANY, OP_NONE };
enum kind { KIND_DB, KIND_WAL, KIND_JOURNAL, KIND_ANY };

/* Their names in a spec (OP_NONE has none). */
extern const char *const testvfs_op_names[];
extern const char *const testvfs_kind_names[];

/* A parsed BISTORE_SQLITE_FAULT (stores/sqlite/testvfs.h has the syntax). */
struct testvfs_spec {
    enum mode mode;
    char after[32]; /* "" when counting starts at once */
    long after_count;
    /* powerloss */
    long cut;
    uint64_t seed;
    bool torn, stop, nofsync;
    bool trace;          /* log every modelled write, sync and truncate */
    long autocheckpoint; /* > 0: wal_autocheckpoint of every new connection */
    /* error */
    enum op op;
    enum kind file;
    long nth, times; /* times < 0: for ever */
    int rc;          /* 0: the code of the call's kind */
};

/* Parses text into s: 0, or -1 with msg filled (naming the bad item). */
int testvfs_spec_parse(const char *text, struct testvfs_spec *s, char *msg, size_t cap);
/* The code a failed call of kind op returns by default (SQLITE_IOERR_READ...). */
int testvfs_default_rc(enum op op);
/* The spec's name of an SQLite code ("full", "ioerr_fsync"), or "?". */
const char *testvfs_rc_name(int rc);

#endif
