/* What every handler gets: the stores and the limits the handlers apply. */
#ifndef BISTORE_APP_H
#define BISTORE_APP_H

#include <stddef.h>

#include "stores/bistore.h"

struct app {
    struct bistore *store;
    size_t max_operations;     /* per transaction; more: 413 */
    bool allow_raw_statements; /* --allow-raw-statements: raw cypher/sql operations */
};

#endif
