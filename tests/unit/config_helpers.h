/*
 * What the config_parse tests share (test_config.c, test_config_commands.c):
 * a clean environment, parsing that must succeed or fail, temporary files.
 */
#ifndef BISTORE_TEST_CONFIG_HELPERS_H
#define BISTORE_TEST_CONFIG_HELPERS_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/config.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Every variable config_parse reads, cleared so the test's environment
 * cannot leak in. */
static inline void clear_env(void)
{
    static const char *const vars[] = {
        "BISTORE_LISTEN",
        "BISTORE_SQLITE",
        "BISTORE_NEO4J_URL",
        "BISTORE_NEO4J_DATABASE",
        "BISTORE_NEO4J_USER",
        "BISTORE_NEO4J_PASSWORD",
        "BISTORE_NEO4J_PASSWORD_FILE",
        "BISTORE_NEO4J_TIMEOUT_MS",
        "BISTORE_NEO4J_API",
        "BISTORE_MAX_BODY_BYTES",
        "BISTORE_MAX_OPERATIONS",
        "BISTORE_MAX_CONNECTIONS",
        "BISTORE_MAX_CONNECTIONS_PER_IP",
        "BISTORE_HEADER_TIMEOUT",
        "BISTORE_IDLE_TIMEOUT",
        "BISTORE_MAX_HEADER_BYTES",
        "BISTORE_MAX_QUEUE",
        "BISTORE_INSECURE_NO_AUTH",
        "BISTORE_LOG_LEVEL",
        "BISTORE_API_KEYS_FILE",
        "BISTORE_TLS_CERT",
        "BISTORE_TLS_KEY",
        "BISTORE_MAX_JSON_DEPTH",
        "BISTORE_MAX_STRING_BYTES",
        "BISTORE_MAX_PROPERTIES",
        "BISTORE_BODY_TIMEOUT",
        "BISTORE_MAX_BODY_MEMORY",
        "BISTORE_MAX_PAGE_BYTES",
    };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
}

static inline int parse(int argc, char **argv, struct config *cfg, char *msg, size_t cap)
{
    memset(cfg, 0xA5, sizeof *cfg); /* config_parse must set every field */
    msg[0] = '\0';
    return config_parse(argc, argv, cfg, msg, cap);
}

/* Parses argv, which must succeed. */
static inline void parse_ok(int argc, char **argv, struct config *cfg)
{
    char msg[512];
    int rc = parse(argc, argv, cfg, msg, sizeof msg);
    cr_assert_eq(rc, 0, "config_parse failed: %s", msg);
}

/* Parses argv, which must fail with a message; the message goes to msg. */
static inline void parse_fails(int argc, char **argv, char *msg, size_t cap)
{
    struct config cfg;
    int rc = parse(argc, argv, &cfg, msg, cap);
    cr_expect_eq(rc, -1, "config_parse must refuse this (argv[2] = '%s')", argc > 2 ? argv[2] : "");
    cr_expect(msg[0] != '\0', "a refusal needs a message");
}

/* A temporary file holding content; path receives its name. */
static inline void temp_file(char *path, size_t cap, const char *content, size_t len)
{
    snprintf(path, cap, "/tmp/bistore-test-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, content, len), (ssize_t)len);
    close(fd);
}

#endif
