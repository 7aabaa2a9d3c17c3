/*
 * The Host header rule (DNS rebinding): a page on some name that resolves
 * to this machine must not reach the API. IP literals and localhost are
 * always served (a rebinding page needs a name of its own), other names
 * only when --allowed-hosts lists them.
 */
#ifndef BISTORE_HOSTS_H
#define BISTORE_HOSTS_H

#include <stdbool.h>

/* True when a request whose Host header is host (NULL: none, as HTTP/1.0
 * may send) is served. allowed: --allowed-hosts, comma separated names
 * ("" none; "*" any). Names compare without case and without a trailing
 * dot; a port in host is ignored. */
bool hosts_allowed(const char *allowed, const char *host);

#endif
