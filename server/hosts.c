#include "server/hosts.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#define HOST_NAME_CAP 256

/* Copies the name part of a Host header value (no port, no brackets, no
 * trailing dot) into out; false when it does not fit or is malformed. */
static bool host_name(const char *host, char out[HOST_NAME_CAP])
{
    const char *start = host, *end;
    if (host[0] == '[') { /* [v6]:port */
        start = host + 1;
        end = strchr(start, ']');
        if (!end || (end[1] != '\0' && end[1] != ':'))
            return false;
    } else {
        end = strchr(host, ':');
        if (!end)
            end = host + strlen(host);
        else if (strchr(end + 1, ':')) /* a bare v6 address is not a Host value */
            return false;
    }
    size_t n = (size_t)(end - start);
    while (n && start[n - 1] == '.')
        n--;
    if (n == 0 || n >= HOST_NAME_CAP)
        return false;
    memcpy(out, start, n);
    out[n] = '\0';
    return true;
}

static bool ip_literal(const char *name)
{
    unsigned char addr[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
}

/* True when name is one of the comma-separated names of list. */
static bool listed(const char *list, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        const char *item = p;
        size_t m = n;
        while (m && (*item == ' ')) {
            item++;
            m--;
        }
        while (m && (item[m - 1] == ' ' || item[m - 1] == '.'))
            m--;
        if (m == len && strncasecmp(item, name, len) == 0)
            return true;
        p += n;
        if (*p == ',')
            p++;
    }
    return false;
}

bool hosts_allowed(const char *allowed, const char *host)
{
    if (!host)
        return true;
    if (allowed && strcmp(allowed, "*") == 0)
        return true;
    char name[HOST_NAME_CAP];
    if (!host_name(host, name))
        return false;
    if (ip_literal(name) || strcasecmp(name, "localhost") == 0)
        return true;
    return allowed && listed(allowed, name);
}
