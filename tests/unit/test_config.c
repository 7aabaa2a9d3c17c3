/*
 * config_parse (server/config.c): defaults, flags, BISTORE_* variables,
 * flag over variable, the loopback rule, and the Neo4j password sources
 * (the commands and their own options: test_config_commands.c).
 * Criterion runs each test in its own process, so setenv is local to it.
 */
#include "tests/unit/config_helpers.h"

Test(config, defaults)
{
    clear_env();
    char *argv[] = {"bistore", "serve"};
    struct config cfg;
    parse_ok(ARGC(argv), argv, &cfg);
    cr_expect_eq(cfg.command, CMD_SERVE);
    cr_expect_str_eq(cfg.listen_host, "127.0.0.1");
    cr_expect_eq(cfg.listen_port, 8080);
    cr_expect_str_eq(cfg.neo4j_url, "http://127.0.0.1:7474");
    cr_expect_str_eq(cfg.neo4j_database, "neo4j");
    cr_expect_str_eq(cfg.neo4j_user, "");
    cr_expect_str_eq(cfg.neo4j_password, "");
    cr_expect(cfg.sqlite_path[0] != '\0');
    cr_expect_eq(cfg.max_body_bytes, (size_t)16 << 20, "API.md: a 16 MiB body by default");
    cr_expect_eq(cfg.max_operations, 10000, "API.md: at most 10,000 operations by default");
    cr_expect_gt(cfg.neo4j_timeout_ms, 0);
    cr_expect_gt(cfg.max_connections, 0);
    cr_expect_gt(cfg.max_queue, 0);
    cr_expect_eq(cfg.insecure_no_auth, false);
    cr_expect_str_eq(cfg.log_level, "info");
    cr_expect_str_eq(cfg.neo4j_api, "tx", "the measured default (README, Configuration)");
}

Test(config, neo4j_api)
{
    clear_env();
    struct config cfg;
    char msg[256];
    char *query[] = {"bistore", "serve", "--neo4j-api", "query"};
    parse_ok(ARGC(query), query, &cfg);
    cr_expect_str_eq(cfg.neo4j_api, "query");
    setenv("BISTORE_NEO4J_API", "query", 1);
    char *plain[] = {"bistore", "serve"};
    parse_ok(ARGC(plain), plain, &cfg);
    cr_expect_str_eq(cfg.neo4j_api, "query", "BISTORE_NEO4J_API applies");
    char *flag[] = {"bistore", "serve", "--neo4j-api", "tx"};
    parse_ok(ARGC(flag), flag, &cfg);
    cr_expect_str_eq(cfg.neo4j_api, "tx", "the flag beats the variable");
    clear_env();
    char *bad[] = {"bistore", "serve", "--neo4j-api", "bolt"};
    parse_fails(ARGC(bad), bad, msg, sizeof msg);
    cr_expect(strstr(msg, "--neo4j-api") != NULL, "the refusal names the flag: %s", msg);
}

Test(config, flags)
{
    clear_env();
    char *argv[] = {"bistore",
                    "serve",
                    "--listen",
                    "127.0.0.2:9001",
                    "--sqlite",
                    "/tmp/x.db",
                    "--neo4j-url",
                    "http://neo:7475",
                    "--neo4j-database",
                    "graph",
                    "--neo4j-user",
                    "alice",
                    "--neo4j-timeout-ms",
                    "1234",
                    "--max-body-bytes",
                    "1000",
                    "--max-operations",
                    "7",
                    "--max-connections",
                    "9",
                    "--max-queue",
                    "11",
                    "--log-level",
                    "debug"};
    struct config cfg;
    parse_ok(ARGC(argv), argv, &cfg);
    cr_expect_str_eq(cfg.listen_host, "127.0.0.2");
    cr_expect_eq(cfg.listen_port, 9001);
    cr_expect_str_eq(cfg.sqlite_path, "/tmp/x.db");
    cr_expect_str_eq(cfg.neo4j_url, "http://neo:7475");
    cr_expect_str_eq(cfg.neo4j_database, "graph");
    cr_expect_str_eq(cfg.neo4j_user, "alice");
    cr_expect_eq(cfg.neo4j_timeout_ms, 1234);
    cr_expect_eq(cfg.max_body_bytes, 1000);
    cr_expect_eq(cfg.max_operations, 7);
    cr_expect_eq(cfg.max_connections, 9);
    cr_expect_eq(cfg.max_queue, 11);
    cr_expect_str_eq(cfg.log_level, "debug");
}

Test(config, flags_with_equals)
{
    clear_env();
    char *argv[] = {"bistore", "serve", "--listen=127.0.0.1:7000", "--neo4j-url=http://h:1",
                    "--max-operations=3"};
    struct config cfg;
    parse_ok(ARGC(argv), argv, &cfg);
    cr_expect_eq(cfg.listen_port, 7000);
    cr_expect_str_eq(cfg.neo4j_url, "http://h:1");
    cr_expect_eq(cfg.max_operations, 3);
}

Test(config, env_vars)
{
    clear_env();
    setenv("BISTORE_LISTEN", "127.0.0.1:7001", 1);
    setenv("BISTORE_SQLITE", "/tmp/env.db", 1);
    setenv("BISTORE_NEO4J_URL", "http://envhost:7474", 1);
    setenv("BISTORE_NEO4J_DATABASE", "envdb", 1);
    setenv("BISTORE_NEO4J_USER", "bob", 1);
    setenv("BISTORE_NEO4J_PASSWORD", "s3cret", 1);
    setenv("BISTORE_NEO4J_TIMEOUT_MS", "250", 1);
    setenv("BISTORE_MAX_BODY_BYTES", "4096", 1);
    setenv("BISTORE_MAX_OPERATIONS", "50", 1);
    setenv("BISTORE_MAX_CONNECTIONS", "60", 1);
    setenv("BISTORE_MAX_QUEUE", "70", 1);
    setenv("BISTORE_LOG_LEVEL", "warn", 1);
    char *argv[] = {"bistore", "serve"};
    struct config cfg;
    parse_ok(ARGC(argv), argv, &cfg);
    cr_expect_str_eq(cfg.listen_host, "127.0.0.1");
    cr_expect_eq(cfg.listen_port, 7001);
    cr_expect_str_eq(cfg.sqlite_path, "/tmp/env.db");
    cr_expect_str_eq(cfg.neo4j_url, "http://envhost:7474");
    cr_expect_str_eq(cfg.neo4j_database, "envdb");
    cr_expect_str_eq(cfg.neo4j_user, "bob");
    cr_expect_str_eq(cfg.neo4j_password, "s3cret");
    cr_expect_eq(cfg.neo4j_timeout_ms, 250);
    cr_expect_eq(cfg.max_body_bytes, 4096);
    cr_expect_eq(cfg.max_operations, 50);
    cr_expect_eq(cfg.max_connections, 60);
    cr_expect_eq(cfg.max_queue, 70);
    cr_expect_str_eq(cfg.log_level, "warn");
}

Test(config, flag_beats_variable)
{
    clear_env();
    setenv("BISTORE_NEO4J_URL", "http://from-env:7474", 1);
    setenv("BISTORE_LISTEN", "127.0.0.1:7001", 1);
    setenv("BISTORE_MAX_OPERATIONS", "50", 1);
    setenv("BISTORE_NEO4J_USER", "env_user", 1);
    char *argv[] = {"bistore",  "serve",          "--neo4j-url",      "http://from-flag:7474",
                    "--listen", "127.0.0.1:7002", "--max-operations", "5"};
    struct config cfg;
    parse_ok(ARGC(argv), argv, &cfg);
    cr_expect_str_eq(cfg.neo4j_url, "http://from-flag:7474");
    cr_expect_eq(cfg.listen_port, 7002);
    cr_expect_eq(cfg.max_operations, 5);
    cr_expect_str_eq(cfg.neo4j_user, "env_user", "a variable without a flag still applies");
}

Test(config, listen_port_zero)
{
    clear_env();
    char *argv[] = {"bistore", "serve", "--listen", "127.0.0.1:0"};
    struct config cfg;
    parse_ok(ARGC(argv), argv, &cfg);
    cr_expect_str_eq(cfg.listen_host, "127.0.0.1");
    cr_expect_eq(cfg.listen_port, 0);
}

Test(config, listen_loopback_forms)
{
    clear_env();
    struct config cfg;
    char *v6[] = {"bistore", "serve", "--listen", "[::1]:8081"};
    parse_ok(ARGC(v6), v6, &cfg);
    cr_expect_str_eq(cfg.listen_host, "::1");
    cr_expect_eq(cfg.listen_port, 8081);
    char *lh[] = {"bistore", "serve", "--listen", "localhost:8082"};
    parse_ok(ARGC(lh), lh, &cfg);
    cr_expect_str_eq(cfg.listen_host, "localhost");
    cr_expect_eq(cfg.listen_port, 8082);
}

Test(config, non_loopback_needs_insecure_no_auth)
{
    clear_env();
    char msg[512];
    char *bad[] = {"bistore", "serve", "--listen", "0.0.0.0:8080"};
    parse_fails(ARGC(bad), bad, msg, sizeof msg);
    cr_expect(strstr(msg, "0.0.0.0") != NULL, "the message names the address: %s", msg);
    cr_expect(strstr(msg, "--insecure-no-auth") != NULL, "the message tells the way out: %s", msg);

    char *ok[] = {"bistore", "serve", "--listen", "0.0.0.0:8080", "--insecure-no-auth"};
    struct config cfg;
    parse_ok(ARGC(ok), ok, &cfg);
    cr_expect_str_eq(cfg.listen_host, "0.0.0.0");
    cr_expect_eq(cfg.listen_port, 8080);
    cr_expect(cfg.insecure_no_auth);

    /* the order of the flags does not matter */
    char *ok2[] = {"bistore", "serve", "--insecure-no-auth", "--listen", "10.1.2.3:80"};
    parse_ok(ARGC(ok2), ok2, &cfg);
    cr_expect(cfg.insecure_no_auth);
}

Test(config, non_loopback_from_env_needs_insecure_no_auth)
{
    clear_env();
    setenv("BISTORE_LISTEN", "[::]:8080", 1);
    char msg[512];
    char *argv[] = {"bistore", "serve"};
    parse_fails(ARGC(argv), argv, msg, sizeof msg);
    setenv("BISTORE_INSECURE_NO_AUTH", "1", 1);
    struct config cfg;
    parse_ok(ARGC(argv), argv, &cfg);
    cr_expect(cfg.insecure_no_auth);
}

Test(config, api_keys_allow_a_non_loopback_listen)
{
    clear_env();
    struct config cfg;
    char *ok[] = {"bistore", "serve", "--listen", "0.0.0.0:8080", "--api-keys-file", "/etc/k"};
    parse_ok(ARGC(ok), ok, &cfg);
    cr_expect_str_eq(cfg.api_keys_file, "/etc/k");
    cr_expect_not(cfg.insecure_no_auth);
    setenv("BISTORE_API_KEYS_FILE", "/etc/from-env", 1);
    char *env[] = {"bistore", "serve", "--listen", "10.1.2.3:80"};
    parse_ok(ARGC(env), env, &cfg);
    cr_expect_str_eq(cfg.api_keys_file, "/etc/from-env");
    unsetenv("BISTORE_API_KEYS_FILE");
    char msg[512];
    parse_fails(ARGC(env), env, msg, sizeof msg);
    cr_expect(strstr(msg, "--api-keys-file") != NULL, "the message names the way: %s", msg);
}

Test(config, tls_cert_and_key_go_together)
{
    clear_env();
    struct config cfg;
    char msg[512];
    char *cert[] = {"bistore", "serve", "--tls-cert", "c.pem"};
    parse_fails(ARGC(cert), cert, msg, sizeof msg);
    cr_expect(strstr(msg, "--tls-key") != NULL, "%s", msg);
    char *key[] = {"bistore", "serve", "--tls-key", "k.pem"};
    parse_fails(ARGC(key), key, msg, sizeof msg);
    char *both[] = {"bistore", "serve", "--tls-cert", "c.pem", "--tls-key", "k.pem"};
    parse_ok(ARGC(both), both, &cfg);
    cr_expect_str_eq(cfg.tls_cert, "c.pem");
    cr_expect_str_eq(cfg.tls_key, "k.pem");
}

Test(config, loopback_detection)
{
    cr_expect(config_is_loopback("127.0.0.1"));
    cr_expect(config_is_loopback("127.1.2.3"));
    cr_expect(config_is_loopback("::1"));
    cr_expect(config_is_loopback("localhost"));
    cr_expect_not(config_is_loopback("0.0.0.0"));
    cr_expect_not(config_is_loopback("::"));
    cr_expect_not(config_is_loopback("10.0.0.1"));
    cr_expect_not(config_is_loopback("128.0.0.1"));
    cr_expect_not(config_is_loopback("1127.0.0.1"));
    cr_expect_not(config_is_loopback("example.com"));
    cr_expect_not(config_is_loopback(""));
}

/* config.h: "True for 127.0.0.0/8, ::1 and localhost". http.c resolves the
 * host with getaddrinfo, so a host NAME that merely starts with "127." is not
 * in 127.0.0.0/8: it can resolve to any address and bind it without keys. */
Test(config, loopback_rejects_hostnames_starting_with_127)
{
    cr_expect_not(config_is_loopback("127.example.com"),
                  "'127.example.com' is a DNS name, not an address in 127.0.0.0/8");
    cr_expect_not(config_is_loopback("127.0.0.1.nip.io"));
    cr_expect_not(config_is_loopback("127."));
}

Test(config, bad_numbers_fail)
{
    clear_env();
    static const char *const cases[][2] = {
        {"--max-body-bytes", "abc"},     {"--max-body-bytes", "-1"},
        {"--max-body-bytes", "0"},       {"--max-body-bytes", "12k"},
        {"--max-body-bytes", ""},        {"--max-operations", "1.5"},
        {"--max-operations", "0"},       {"--max-connections", "x"},
        {"--max-queue", "-5"},           {"--neo4j-timeout-ms", "0"},
        {"--neo4j-timeout-ms", "ten"},   {"--max-body-bytes", "99999999999999999999999"},
        {"--listen", "127.0.0.1:65536"}, {"--listen", "127.0.0.1:-1"},
        {"--listen", "127.0.0.1:80x"},   {"--listen", "127.0.0.1:"},
        {"--listen", "127.0.0.1"},       {"--listen", ":8080"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[] = {"bistore", "serve", (char *)cases[i][0], (char *)cases[i][1]};
        char msg[512];
        parse_fails(ARGC(argv), argv, msg, sizeof msg);
    }
}

Test(config, replica_socket_and_timeout)
{
    clear_env();
    char *none[] = {"bistore", "serve"};
    struct config cfg;
    parse_ok(ARGC(none), none, &cfg);
    cr_expect_str_eq(cfg.replica_socket, "");
    cr_expect_eq(cfg.replica_timeout_s, 5);
    char *argv[] = {"bistore",           "serve", "--replica-socket", "/run/ls.sock",
                    "--replica-timeout", "2"};
    parse_ok(ARGC(argv), argv, &cfg);
    cr_expect_str_eq(cfg.replica_socket, "/run/ls.sock");
    cr_expect_eq(cfg.replica_timeout_s, 2);
    setenv("BISTORE_REPLICA_SOCKET", "/run/env.sock", 1);
    parse_ok(ARGC(none), none, &cfg);
    cr_expect_str_eq(cfg.replica_socket, "/run/env.sock");
    unsetenv("BISTORE_REPLICA_SOCKET");
    /* a Unix socket's path is at most 107 bytes; a timeout is 1..3600 s */
    char long_path[200];
    memset(long_path, 'x', sizeof long_path - 1);
    long_path[0] = '/';
    long_path[sizeof long_path - 1] = '\0';
    static const char *const bad[][2] = {
        {"--replica-timeout", "0"}, {"--replica-timeout", "3601"}, {"--replica-timeout", "x"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *b[] = {"bistore", "serve", (char *)bad[i][0], (char *)bad[i][1]};
        char msg[512];
        parse_fails(ARGC(b), b, msg, sizeof msg);
    }
    char *too_long[] = {"bistore", "serve", "--replica-socket", long_path};
    char msg[512];
    parse_fails(ARGC(too_long), too_long, msg, sizeof msg);
}

Test(config, replica_dir_and_standby)
{
    clear_env();
    char *none[] = {"bistore", "serve"};
    struct config cfg;
    parse_ok(ARGC(none), none, &cfg);
    cr_expect_str_eq(cfg.replica_dir, "");
    cr_expect_str_eq(cfg.litestream, "litestream", "README: found on PATH");
    cr_expect_str_eq(cfg.standby_of, "");
    cr_expect_eq(cfg.lease_timeout_s, 5);
    char *argv[] = {
        "bistore",         "serve",        "--replica-dir", "/replicas",       "--litestream",
        "/opt/litestream", "--standby-of", "http://p:8080", "--lease-timeout", "2"};
    parse_ok(ARGC(argv), argv, &cfg);
    cr_expect_str_eq(cfg.replica_dir, "/replicas");
    cr_expect_str_eq(cfg.litestream, "/opt/litestream");
    cr_expect_str_eq(cfg.standby_of, "http://p:8080");
    cr_expect_eq(cfg.lease_timeout_s, 2);
    setenv("BISTORE_STANDBY_OF", "https://env:1", 1);
    setenv("BISTORE_REPLICA_DIR", "/env-replicas", 1);
    parse_ok(ARGC(none), none, &cfg);
    cr_expect_str_eq(cfg.standby_of, "https://env:1");
    cr_expect_str_eq(cfg.replica_dir, "/env-replicas");
    unsetenv("BISTORE_STANDBY_OF");
    unsetenv("BISTORE_REPLICA_DIR");
    /* a standby needs the replicas; the two ways to a Litestream exclude
     * each other; a lease is 1..3600 s; the primary is an http(s) URL */
    static const char *const bad[][4] = {
        {"--standby-of", "http://p:8080", NULL, NULL},
        {"--replica-dir", "/r", "--replica-socket", "/run/ls.sock"},
        {"--lease-timeout", "0", NULL, NULL},
        {"--lease-timeout", "3601", NULL, NULL},
        {"--replica-dir", "/r", "--standby-of", "p:8080"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *b[] = {"bistore",         "serve",           (char *)bad[i][0],
                     (char *)bad[i][1], (char *)bad[i][2], (char *)bad[i][3]};
        char msg[512];
        parse_fails(bad[i][2] ? 6 : 4, b, msg, sizeof msg);
    }
}

Test(config, connection_limits)
{
    clear_env();
    struct config cfg;
    char *none[] = {"bistore", "serve"};
    parse_ok(ARGC(none), none, &cfg);
    cr_expect_eq(cfg.max_connections_per_ip, 256, "README: 256 per client address");
    cr_expect_eq(cfg.header_timeout_s, 10);
    cr_expect_eq(cfg.idle_timeout_s, 30);
    cr_expect_eq(cfg.max_header_bytes, 32768);
    setenv("BISTORE_MAX_CONNECTIONS_PER_IP", "0", 1);
    setenv("BISTORE_HEADER_TIMEOUT", "3", 1);
    setenv("BISTORE_IDLE_TIMEOUT", "4", 1);
    setenv("BISTORE_MAX_HEADER_BYTES", "8192", 1);
    parse_ok(ARGC(none), none, &cfg);
    cr_expect_eq(cfg.max_connections_per_ip, 0, "0: no limit");
    cr_expect_eq(cfg.header_timeout_s, 3);
    cr_expect_eq(cfg.idle_timeout_s, 4);
    cr_expect_eq(cfg.max_header_bytes, 8192);
    char *flags[] = {
        "bistore",        "serve", "--max-connections-per-ip", "7",   "--header-timeout", "5",
        "--idle-timeout", "6",     "--max-header-bytes",       "4096"};
    parse_ok(ARGC(flags), flags, &cfg);
    cr_expect_eq(cfg.max_connections_per_ip, 7);
    cr_expect_eq(cfg.header_timeout_s, 5);
    cr_expect_eq(cfg.idle_timeout_s, 6);
    cr_expect_eq(cfg.max_header_bytes, 4096);
    clear_env();
    static const char *const bad[][2] = {
        {"--header-timeout", "0"},         {"--idle-timeout", "0"},
        {"--header-timeout", "3601"},      {"--max-header-bytes", "4095"},
        {"--max-header-bytes", "2000000"}, {"--max-connections-per-ip", "x"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *argv[] = {"bistore", "serve", (char *)bad[i][0], (char *)bad[i][1]};
        char msg[512];
        parse_fails(ARGC(argv), argv, msg, sizeof msg);
    }
}

Test(config, bad_number_in_env_fails)
{
    clear_env();
    setenv("BISTORE_MAX_OPERATIONS", "lots", 1);
    char *argv[] = {"bistore", "serve"};
    char msg[512];
    parse_fails(ARGC(argv), argv, msg, sizeof msg);
}

/* A timeout too big for a long must not become a negative timeout. */
Test(config, timeout_overflow_fails)
{
    clear_env();
    char *argv[] = {"bistore", "serve", "--neo4j-timeout-ms", "9223372036854775808"};
    char msg[512];
    struct config cfg;
    int rc = parse(ARGC(argv), argv, &cfg, msg, sizeof msg);
    cr_expect(rc == -1 || cfg.neo4j_timeout_ms > 0,
              "--neo4j-timeout-ms 9223372036854775808 was accepted as %ld ms",
              cfg.neo4j_timeout_ms);
}

/* "-1" is refused, but a leading space hides the sign from the check and
 * strtoull wraps it to 2^64-1. */
Test(config, negative_number_with_leading_space_fails)
{
    clear_env();
    char *argv[] = {"bistore", "serve", "--max-body-bytes", " -1"};
    char msg[512];
    struct config cfg;
    int rc = parse(ARGC(argv), argv, &cfg, msg, sizeof msg);
    cr_expect_eq(rc, -1, "' -1' was accepted as max_body_bytes = %zu", cfg.max_body_bytes);
}

Test(config, unknown_options_fail)
{
    clear_env();
    char msg[512];
    char *a[] = {"bistore", "serve", "--bogus", "1"};
    parse_fails(ARGC(a), a, msg, sizeof msg);
    cr_expect(strstr(msg, "bogus") != NULL, "the message names the option: %s", msg);
    char *b[] = {"bistore", "serve", "--bogus=1"};
    parse_fails(ARGC(b), b, msg, sizeof msg);
    char *c[] = {"bistore", "serve", "listen", "127.0.0.1:1"};
    parse_fails(ARGC(c), c, msg, sizeof msg);
    char *d[] = {"bistore", "serve", "-l", "127.0.0.1:1"};
    parse_fails(ARGC(d), d, msg, sizeof msg);
    char *e[] = {"bistore", "serve", "--listen"}; /* no value */
    parse_fails(ARGC(e), e, msg, sizeof msg);
}

Test(config, password_on_command_line_refused)
{
    clear_env();
    char msg[512];
    char *a[] = {"bistore", "serve", "--neo4j-password", "hunter2"};
    parse_fails(ARGC(a), a, msg, sizeof msg);
    cr_expect(strstr(msg, "hunter2") == NULL, "the message must not echo the password: %s", msg);
    char *b[] = {"bistore", "serve", "--neo4j-password=hunter2"};
    parse_fails(ARGC(b), b, msg, sizeof msg);
    cr_expect(strstr(msg, "hunter2") == NULL, "the message must not echo the password: %s", msg);
}

Test(config, password_file)
{
    clear_env();
    char path[64];
    temp_file(path, sizeof path, "pa ss\tword\n", 11);
    char *argv[] = {"bistore", "serve", "--neo4j-password-file", path};
    struct config cfg;
    parse_ok(ARGC(argv), argv, &cfg);
    cr_expect_str_eq(cfg.neo4j_password, "pa ss\tword", "trailing newline stripped, rest kept");
    unlink(path);
}

Test(config, password_file_crlf_and_no_newline)
{
    clear_env();
    char path[64];
    struct config cfg;
    temp_file(path, sizeof path, "secret\r\n", 8);
    char *a[] = {"bistore", "serve", "--neo4j-password-file", path};
    parse_ok(ARGC(a), a, &cfg);
    cr_expect_str_eq(cfg.neo4j_password, "secret");
    unlink(path);

    temp_file(path, sizeof path, "secret", 6);
    char *b[] = {"bistore", "serve", "--neo4j-password-file", path};
    parse_ok(ARGC(b), b, &cfg);
    cr_expect_str_eq(cfg.neo4j_password, "secret");
    unlink(path);
}

Test(config, password_file_from_env)
{
    clear_env();
    char path[64];
    temp_file(path, sizeof path, "fromfile\n", 9);
    setenv("BISTORE_NEO4J_PASSWORD_FILE", path, 1);
    char *argv[] = {"bistore", "serve"};
    struct config cfg;
    parse_ok(ARGC(argv), argv, &cfg);
    cr_expect_str_eq(cfg.neo4j_password, "fromfile");
    unlink(path);
}

Test(config, password_file_missing_fails)
{
    clear_env();
    char *argv[] = {"bistore", "serve", "--neo4j-password-file", "/nonexistent/bistore/pw"};
    char msg[512];
    parse_fails(ARGC(argv), argv, msg, sizeof msg);
    cr_expect(strstr(msg, "/nonexistent/bistore/pw") != NULL, "the message names the file: %s",
              msg);
}

/* A too-long BISTORE_NEO4J_PASSWORD is refused ("is too long"); a too-long
 * password file must not be cut silently to 255 bytes either (Neo4j would
 * then refuse a password that is not the one in the file). */
Test(config, password_too_long)
{
    clear_env();
    char pw[301];
    memset(pw, 'p', 300);
    pw[300] = '\0';
    char msg[512];
    char *argv[] = {"bistore", "serve"};
    setenv("BISTORE_NEO4J_PASSWORD", pw, 1);
    parse_fails(ARGC(argv), argv, msg, sizeof msg);
    unsetenv("BISTORE_NEO4J_PASSWORD");

    char path[64];
    temp_file(path, sizeof path, pw, 300);
    char *f[] = {"bistore", "serve", "--neo4j-password-file", path};
    struct config cfg;
    int rc = parse(ARGC(f), f, &cfg, msg, sizeof msg);
    cr_expect(rc == -1 || strcmp(cfg.neo4j_password, pw) == 0,
              "a 300-byte password file was accepted and cut to %zu bytes",
              strlen(cfg.neo4j_password));
    unlink(path);
}

Test(config, insecure_no_auth_env_false)
{
    clear_env();
    setenv("BISTORE_INSECURE_NO_AUTH", "false", 1);
    char *argv[] = {"bistore", "serve"};
    struct config cfg;
    parse_ok(ARGC(argv), argv, &cfg);
    cr_expect_not(cfg.insecure_no_auth);
}

/* Only "0" and "false" turn --insecure-no-auth off: BISTORE_INSECURE_NO_AUTH=off
 * (or "no", "FALSE") turns the loopback protection OFF, the opposite of what
 * was written. A value that is not understood must be refused or read as false. */
Test(config, insecure_no_auth_off_values_do_not_enable)
{
    static const char *const offs[] = {"off", "no", "FALSE", "False"};
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        clear_env();
        setenv("BISTORE_INSECURE_NO_AUTH", offs[i], 1);
        char *argv[] = {"bistore", "serve", "--listen", "0.0.0.0:8080"};
        char msg[512];
        struct config cfg;
        int rc = parse(ARGC(argv), argv, &cfg, msg, sizeof msg);
        cr_expect_eq(rc, -1,
                     "BISTORE_INSECURE_NO_AUTH=%s let the gateway listen on 0.0.0.0 without keys",
                     offs[i]);
    }
}

/* The usage names four levels; anything else is kept as given and main.c
 * silently falls back to info. */
Test(config, unknown_log_level_fails)
{
    clear_env();
    char *argv[] = {"bistore", "serve", "--log-level", "verbose"};
    char msg[512];
    struct config cfg;
    int rc = parse(ARGC(argv), argv, &cfg, msg, sizeof msg);
    cr_expect_eq(rc, -1, "--log-level verbose was accepted as '%s'", cfg.log_level);
}

Test(config, known_log_levels)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        clear_env();
        char *argv[] = {"bistore", "serve", "--log-level", (char *)levels[i]};
        struct config cfg;
        parse_ok(ARGC(argv), argv, &cfg);
        cr_expect_str_eq(cfg.log_level, levels[i]);
    }
}

/* A Neo4j URL with user:password@ is refused, and the message never repeats
 * the password; a URL that is not http(s) is refused too. */
Test(config, neo4j_url_with_credentials_refused)
{
    clear_env();
    char msg[512];
    char *argv[] = {"bistore", "serve", "--neo4j-url", "http://neo4j:s3cret@127.0.0.1:7474"};
    parse_fails(ARGC(argv), argv, msg, sizeof msg);
    cr_expect(strstr(msg, "credentials") != NULL, "message: %s", msg);
    cr_expect(strstr(msg, "s3cret") == NULL, "the password leaked into: %s", msg);
    setenv("BISTORE_NEO4J_URL", "https://u:pw-in-env@neo:7473/", 1);
    char *argv2[] = {"bistore", "check"};
    parse_fails(ARGC(argv2), argv2, msg, sizeof msg);
    cr_expect(strstr(msg, "pw-in-env") == NULL, "the password leaked into: %s", msg);
    clear_env();
    char *argv3[] = {"bistore", "serve", "--neo4j-url", "ftp://127.0.0.1:7474"};
    parse_fails(ARGC(argv3), argv3, msg, sizeof msg);
    char *argv4[] = {"bistore", "serve", "--neo4j-url", "http://"};
    parse_fails(ARGC(argv4), argv4, msg, sizeof msg);
    /* an '@' after the authority (a path or query) is not a credential */
    char *argv5[] = {"bistore", "serve", "--neo4j-url", "http://127.0.0.1:7474/a@b"};
    struct config cfg;
    parse_ok(ARGC(argv5), argv5, &cfg);
    cr_expect_str_eq(cfg.neo4j_url, "http://127.0.0.1:7474/a@b");
}

Test(config, monitoring_flags)
{
    clear_env();
    char *argv0[] = {"bistore", "serve"};
    struct config cfg;
    parse_ok(ARGC(argv0), argv0, &cfg);
    cr_expect_str_eq(cfg.log_format, "auto");
    cr_expect_float_eq(cfg.alert_failure_rate, 0.01, 1e-12);
    cr_expect_eq(cfg.alert_failure_window_s, 300);
    cr_expect_eq(cfg.alert_failure_min, 5);
    cr_expect_eq(cfg.alert_recovery_s, 30);
    cr_expect_str_eq(cfg.alert_webhook, "");
    setenv("BISTORE_ALERT_PENDING_SECONDS", "7", 1);
    setenv("BISTORE_LOG_FORMAT", "text", 1);
    char *argv[] = {"bistore",
                    "serve",
                    "--log-format",
                    "json",
                    "--alert-failure-rate",
                    "0.25",
                    "--alert-webhook",
                    "http://127.0.0.1:9/h",
                    "--alert-webhook-queue",
                    "3",
                    "--alert-neo4j-seconds",
                    "0"};
    parse_ok(ARGC(argv), argv, &cfg);
    cr_expect_str_eq(cfg.log_format, "json"); /* the flag beats the variable */
    cr_expect_eq(cfg.alert_pending_s, 7);
    cr_expect_float_eq(cfg.alert_failure_rate, 0.25, 1e-12);
    cr_expect_str_eq(cfg.alert_webhook, "http://127.0.0.1:9/h");
    cr_expect_eq(cfg.alert_webhook_queue, 3);
    cr_expect_eq(cfg.alert_neo4j_s, 0);
    unsetenv("BISTORE_ALERT_PENDING_SECONDS");
    unsetenv("BISTORE_LOG_FORMAT");
    char msg[512];
    char *bad_rate[] = {"bistore", "serve", "--alert-failure-rate", "1.5"};
    parse_fails(ARGC(bad_rate), bad_rate, msg, sizeof msg);
    char *bad_format[] = {"bistore", "serve", "--log-format", "xml"};
    parse_fails(ARGC(bad_format), bad_format, msg, sizeof msg);
    char *bad_hook[] = {"bistore", "serve", "--alert-webhook", "file:///etc/passwd"};
    parse_fails(ARGC(bad_hook), bad_hook, msg, sizeof msg);
    char *bad_window[] = {"bistore", "serve", "--alert-failure-window", "0"};
    parse_fails(ARGC(bad_window), bad_window, msg, sizeof msg);
}

/* The request limits of issue 13: defaults, flags, variables, bounds. */
Test(config, request_limits)
{
    clear_env();
    char *plain[] = {"bistore", "serve"};
    struct config cfg;
    parse_ok(ARGC(plain), plain, &cfg);
    cr_expect_eq(cfg.max_json_depth, 64);
    cr_expect_eq(cfg.max_string_bytes, (size_t)1 << 20);
    cr_expect_eq(cfg.max_properties, 1024);
    char *argv[] = {"bistore",          "serve", "--max-json-depth", "8", "--max-string-bytes=100",
                    "--max-properties", "5"};
    parse_ok(ARGC(argv), argv, &cfg);
    cr_expect_eq(cfg.max_json_depth, 8);
    cr_expect_eq(cfg.max_string_bytes, 100);
    cr_expect_eq(cfg.max_properties, 5);
    setenv("BISTORE_MAX_JSON_DEPTH", "9", 1);
    setenv("BISTORE_MAX_STRING_BYTES", "200", 1);
    setenv("BISTORE_MAX_PROPERTIES", "6", 1);
    parse_ok(ARGC(plain), plain, &cfg);
    cr_expect_eq(cfg.max_json_depth, 9);
    cr_expect_eq(cfg.max_string_bytes, 200);
    cr_expect_eq(cfg.max_properties, 6);
    clear_env();
    parse_ok(ARGC(plain), plain, &cfg);
    cr_expect_eq(cfg.body_timeout_s, 60);
    cr_expect_eq(cfg.max_body_memory, (size_t)256 << 20);
    cr_expect_eq(cfg.max_page_bytes, (size_t)8 << 20);
    char *more[] = {
        "bistore",          "serve", "--body-timeout", "5", "--max-body-memory=33554432",
        "--max-page-bytes", "65536"};
    parse_ok(ARGC(more), more, &cfg);
    cr_expect_eq(cfg.body_timeout_s, 5);
    cr_expect_eq(cfg.max_body_memory, (size_t)32 << 20);
    cr_expect_eq(cfg.max_page_bytes, 65536);
    setenv("BISTORE_BODY_TIMEOUT", "7", 1);
    setenv("BISTORE_MAX_BODY_MEMORY", "20000000", 1);
    setenv("BISTORE_MAX_PAGE_BYTES", "5000", 1);
    parse_ok(ARGC(plain), plain, &cfg);
    cr_expect_eq(cfg.body_timeout_s, 7);
    cr_expect_eq(cfg.max_body_memory, 20000000);
    cr_expect_eq(cfg.max_page_bytes, 5000);
    clear_env();
    char msg[512];
    /* 8 MiB of body memory cannot hold one body of the default 16 MiB. */
    char *below[] = {"bistore", "serve", "--max-body-memory", "8388608"};
    parse_fails(ARGC(below), below, msg, sizeof msg);
    cr_expect(strstr(msg, "--max-body-bytes") != NULL, "%s", msg);
    char *fits[] = {"bistore",          "serve",  "--max-body-memory", "8388608",
                    "--max-body-bytes", "8388608"};
    parse_ok(ARGC(fits), fits, &cfg);
    static const char *const bad[][2] = {
        {"--body-timeout", "0"},
        {"--body-timeout", "86401"},
        {"--max-body-memory", "1000"},
        {"--max-page-bytes", "4095"},
        {"--max-page-bytes", "x"},
        {"--max-json-depth", "3"},
        {"--max-json-depth", "x"},
        {"--max-string-bytes", "0"},
        {"--max-properties", "0"},
        {"--max-properties", "65537"},
        {"--max-string-bytes", "2147483648"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *args[] = {"bistore", "serve", (char *)bad[i][0], (char *)bad[i][1]};
        parse_fails(ARGC(args), args, msg, sizeof msg);
    }
}
