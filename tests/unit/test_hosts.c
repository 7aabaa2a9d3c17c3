/* hosts_allowed (server/hosts.c): the Host header rule against DNS rebinding. */
#include <criterion/criterion.h>

#include "server/hosts.h"

Test(hosts, ip_literals_and_localhost_always)
{
    cr_expect(hosts_allowed("", "127.0.0.1:8080"));
    cr_expect(hosts_allowed("", "10.1.2.3"));
    cr_expect(hosts_allowed("", "[::1]:8080"));
    cr_expect(hosts_allowed("", "[fe80::1]"));
    cr_expect(hosts_allowed("", "localhost:8080"));
    cr_expect(hosts_allowed("", "LOCALHOST."));
    cr_expect(hosts_allowed("", NULL), "no Host header (HTTP/1.0) is served");
}

Test(hosts, other_names_only_when_listed)
{
    cr_expect_not(hosts_allowed("", "evil.example:8080"));
    cr_expect_not(hosts_allowed("", "attacker.127.0.0.1.nip.io"));
    cr_expect_not(hosts_allowed("gw.lab", "gw.lab.evil:8080"));
    cr_expect_not(hosts_allowed("gw.lab", "w.lab"));
    cr_expect(hosts_allowed("gw.lab", "gw.lab:8080"));
    cr_expect(hosts_allowed("a.example, GW.Lab.", "gw.lab"));
    cr_expect(hosts_allowed("a.example,gw.lab", "A.EXAMPLE."));
    cr_expect(hosts_allowed("*", "anything.example"));
}

Test(hosts, malformed_values_refused)
{
    cr_expect_not(hosts_allowed("", ""));
    cr_expect_not(hosts_allowed("", ":8080"));
    cr_expect_not(hosts_allowed("", "[::1"));
    cr_expect_not(hosts_allowed("", "[::1]x"));
    cr_expect_not(hosts_allowed("", "::1"));
    cr_expect_not(hosts_allowed("", "."));
}
