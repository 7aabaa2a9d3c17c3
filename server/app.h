/* What every handler gets: the stores and the configuration. */
#ifndef BISTORE_APP_H
#define BISTORE_APP_H

#include "server/config.h"
#include "stores/bistore.h"

struct app {
    struct bistore *store;
    const struct config *cfg;
};

#endif
