/*
 * config_parse (server/config.c): the commands (help, version, resolve,
 * migrate) and which options each takes.
 */
#include "tests/unit/config_helpers.h"

Test(config, help_and_version)
{
    clear_env();
    struct config cfg;
    char *h[] = {"bistore", "--help"};
    parse_ok(ARGC(h), h, &cfg);
    cr_expect_eq(cfg.command, CMD_HELP);
    char *v[] = {"bistore", "--version"};
    parse_ok(ARGC(v), v, &cfg);
    cr_expect_eq(cfg.command, CMD_VERSION);
    char *sh[] = {"bistore", "serve", "--help"};
    parse_ok(ARGC(sh), sh, &cfg);
    cr_expect_eq(cfg.command, CMD_HELP);
    cr_expect(strstr(config_usage(), "--listen") != NULL);
    cr_expect(strstr(config_usage(), "--neo4j-password-file") != NULL);
}

Test(config, missing_or_unknown_command)
{
    clear_env();
    char msg[512];
    char *none[] = {"bistore"};
    parse_fails(ARGC(none), none, msg, sizeof msg);
    char *bad[] = {"bistore", "serv"};
    parse_fails(ARGC(bad), bad, msg, sizeof msg);
    cr_expect(strstr(msg, "serv") != NULL, "the message names the command: %s", msg);
}

Test(config, resolve_lists_or_settles)
{
    clear_env();
    struct config cfg;
    char *list[] = {"bistore", "resolve", "--sqlite", "x.db"};
    parse_ok(ARGC(list), list, &cfg);
    cr_assert_eq(cfg.command, CMD_RESOLVE);
    cr_assert_eq(cfg.intent, 0);
    cr_assert_str_empty(cfg.policy);
    char *settle[] = {"bistore",  "resolve",    "--intent", "17",
                      "--policy", "neo4j_wins", "--dry-run"};
    parse_ok(ARGC(settle), settle, &cfg);
    cr_assert_eq(cfg.intent, 17);
    cr_assert_str_eq(cfg.policy, "neo4j_wins");
    cr_assert(cfg.dry_run);
}

Test(config, resolve_needs_intent_and_policy_together)
{
    clear_env();
    char msg[512];
    char *no_policy[] = {"bistore", "resolve", "--intent", "3"};
    parse_fails(ARGC(no_policy), no_policy, msg, sizeof msg);
    cr_assert(strstr(msg, "--intent SEQ and --policy"), "%s", msg);
    char *no_intent[] = {"bistore", "resolve", "--policy", "sqlite_wins"};
    parse_fails(ARGC(no_intent), no_intent, msg, sizeof msg);
    char *bad[] = {"bistore", "resolve", "--intent", "0", "--policy", "sqlite_wins"};
    parse_fails(ARGC(bad), bad, msg, sizeof msg);
    cr_assert(strstr(msg, "--intent"), "%s", msg);
    char *junk[] = {"bistore", "resolve", "--intent", "3x", "--policy", "sqlite_wins"};
    parse_fails(ARGC(junk), junk, msg, sizeof msg);
    char *deep[] = {"bistore", "resolve", "--deep"};
    parse_fails(ARGC(deep), deep, msg, sizeof msg);
    char *elsewhere[] = {"bistore", "repair", "--policy", "sqlite_wins", "--intent", "3"};
    parse_fails(ARGC(elsewhere), elsewhere, msg, sizeof msg);
    cr_assert(strstr(msg, "does not apply"), "%s", msg);
}

/* `bistore migrate` takes the store options only. */
Test(config, migrate_command)
{
    clear_env();
    char msg[512];
    struct config cfg;
    char *ok[] = {"bistore", "migrate", "--neo4j-url", "http://127.0.0.1:7475"};
    parse_ok(ARGC(ok), ok, &cfg);
    cr_expect_eq(cfg.command, CMD_MIGRATE);
    cr_expect_str_eq(cfg.neo4j_url, "http://127.0.0.1:7475");
    char *deep[] = {"bistore", "migrate", "--deep"};
    parse_fails(ARGC(deep), deep, msg, sizeof msg);
    cr_expect(strstr(msg, "does not apply"), "%s", msg);
    char *policy[] = {"bistore", "migrate", "--policy", "sqlite_wins"};
    parse_fails(ARGC(policy), policy, msg, sizeof msg);
    char *intent[] = {"bistore", "migrate", "--intent", "3"};
    parse_fails(ARGC(intent), intent, msg, sizeof msg);
    cr_expect(strstr(config_usage(), "bistore migrate"), "the usage names the command");
}
