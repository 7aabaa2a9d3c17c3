/*
 * Litestream's processes for --replica-dir (server/litestream.h). Each
 * command gets a configuration file of its own in the private folder (so
 * no path passes through a URL or the command line's parsing), and runs as
 * a child that gets SIGKILL when the gateway dies (PR_SET_PDEATHSIG).
 */
#define _GNU_SOURCE
#include "server/litestream.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/result.h"
#include "common/timeutil.h"

#define STOP_WAIT_MS 10000
#define SOCKET_WAIT_MS 20000
#define COMMAND_WAIT_MS 120000
#define OUTPUT_MAX 65536
#define FOLLOW_INTERVAL "100ms"

enum ls_kind { LS_NONE, LS_REPLICATE, LS_FOLLOW };

struct litestream {
    char binary[PATH_MAX];
    char db[PATH_MAX]; /* absolute */
    char log_path[PATH_MAX + 32];
    char dir[64]; /* the private folder: socket and configurations */
    char socket[108];
    char config[128];
    char replica[PATH_MAX]; /* of the running command */
    enum ls_kind kind;
    pid_t pid; /* 0: not running */
};

/* A YAML double-quoted scalar of s into f. */
static void yaml_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* The configuration of one command: db (the file Litestream reads or
 * writes) with the folder replica, and the socket for replicate. */
static int write_config(struct litestream *ls, const char *db, const char *replica, bool socket,
                        char *msg, size_t cap)
{
    FILE *f = fopen(ls->config, "w");
    if (!f)
        return msg_fail(msg, cap, "cannot write %s: %s", ls->config, strerror(errno));
    if (socket) {
        fputs("socket:\n  enabled: true\n  path: ", f);
        yaml_string(f, ls->socket);
        fputc('\n', f);
    }
    fputs("dbs:\n  - path: ", f);
    yaml_string(f, db);
    fputs("\n    replica:\n      type: file\n      path: ", f);
    yaml_string(f, replica);
    fputc('\n', f);
    if (fclose(f) != 0)
        return msg_fail(msg, cap, "cannot write %s: %s", ls->config, strerror(errno));
    return 0;
}

/* The environment a child gets: this one without BISTORE_* (the Neo4j
 * password may be among them; Litestream needs none). NULL when out of
 * memory. */
static char **child_environment(void)
{
    extern char **environ;
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 1, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "BISTORE_", 8) != 0)
            env[k++] = environ[i];
    return env;
}

/*
 * Starts argv as a child with stdin from /dev/null and stdout and stderr
 * into out_fd (3 or more: the descriptors below are the process's own); it
 * gets SIGKILL when this process dies, a process group of its own (a
 * terminal's Ctrl-C or a service manager's SIGTERM to the gateway's group
 * reaches the gateway, which stops it after its writer has finished), and
 * none of this process's other descriptors, blocked signals, ignored
 * SIGPIPE or BISTORE_* variables.
 */
static pid_t spawn(char *const argv[], int out_fd)
{
    /* a gateway started with 0, 1 or 2 closed has out_fd among them */
    int given = out_fd;
    if (out_fd < 3 && (out_fd = fcntl(given, F_DUPFD_CLOEXEC, 3)) < 0)
        return -1;
    char **env = child_environment();
    if (!env) {
        if (out_fd != given)
            close(out_fd);
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) {
        free(env);
        if (out_fd != given)
            close(out_fd);
        return pid;
    }
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent || setpgid(0, 0) != 0)
        _exit(127);
    int null = open("/dev/null", O_RDONLY);
    if (null < 0 || dup2(null, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0 ||
        close_range(3, ~0U, 0) != 0)
        _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    execve(argv[0], argv, env);
    _exit(127);
}

/* name as a path to an executable: itself when it holds a '/', else
 * the first match on PATH. */
static int find_binary(const char *name, char *out, size_t cap)
{
    if (strchr(name, '/')) {
        int n = snprintf(out, cap, "%s", name);
        return n > 0 && (size_t)n < cap && access(out, X_OK) == 0 ? 0 : -1;
    }
    const char *path = getenv("PATH");
    while (path && *path) {
        size_t len = strcspn(path, ":");
        int n = snprintf(out, cap, "%.*s/%s", (int)len, path, name);
        if (len > 0 && n > 0 && (size_t)n < cap && access(out, X_OK) == 0)
            return 0;
        path += len + (path[len] == ':');
    }
    return -1;
}

struct litestream *litestream_new(const char *binary, const char *db_path, char *msg, size_t cap)
{
    struct litestream *ls = calloc(1, sizeof *ls);
    if (!ls) {
        msg_fail(msg, cap, "out of memory");
        return NULL;
    }
    snprintf(ls->dir, sizeof ls->dir, "/tmp/bistore-ls-XXXXXX");
    if (path_absolute(db_path, ls->db, sizeof ls->db) != 0) {
        msg_fail(msg, cap, "the path of %s is too long", db_path);
        free(ls);
        return NULL;
    }
    if (find_binary(binary, ls->binary, sizeof ls->binary) != 0) {
        msg_fail(msg, cap,
                 "no Litestream at '%s' (--litestream; scripts/litestream.sh build installs it)",
                 binary);
        free(ls);
        return NULL;
    }
    if (!mkdtemp(ls->dir)) {
        msg_fail(msg, cap, "cannot make a folder for Litestream's socket: %s", strerror(errno));
        free(ls);
        return NULL;
    }
    snprintf(ls->socket, sizeof ls->socket, "%s/ctl.sock", ls->dir);
    snprintf(ls->config, sizeof ls->config, "%s/litestream.yml", ls->dir);
    snprintf(ls->log_path, sizeof ls->log_path, "%s.litestream.log", ls->db);
    return ls;
}

const char *litestream_socket(const struct litestream *ls)
{
    return ls->socket;
}

static bool socket_answers(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* Starts the command of ls->kind with ls->replica. */
static int start(struct litestream *ls, char *msg, size_t cap)
{
    bool replicate = ls->kind == LS_REPLICATE;
    if (write_config(ls, ls->db, ls->replica, replicate, msg, cap) != 0)
        return -1;
    int log = open(ls->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0)
        return msg_fail(msg, cap, "cannot open %s: %s", ls->log_path, strerror(errno));
    char *replicate_argv[] = {ls->binary, "replicate", "-no-expand-env",
                              "-config",  ls->config,  NULL};
    char *follow_argv[] = {ls->binary,
                           "restore",
                           "-no-expand-env",
                           "-config",
                           ls->config,
                           "-f",
                           "-follow-interval",
                           FOLLOW_INTERVAL,
                           "-o",
                           ls->db,
                           ls->db,
                           NULL};
    if (replicate)
        unlink(ls->socket);
    ls->pid = spawn(replicate ? replicate_argv : follow_argv, log);
    close(log);
    if (ls->pid < 0) {
        ls->pid = 0;
        return msg_fail(msg, cap, "cannot start %s: %s", ls->binary, strerror(errno));
    }
    if (!replicate)
        return 0;
    int64_t deadline = time_monotonic_ms() + SOCKET_WAIT_MS;
    while (!socket_answers(ls->socket)) {
        int status;
        if (waitpid(ls->pid, &status, WNOHANG) == ls->pid) {
            ls->pid = 0;
            return msg_fail(msg, cap, "litestream replicate exited at once (status %d): see %s",
                            WIFEXITED(status) ? WEXITSTATUS(status) : -1, ls->log_path);
        }
        if (time_monotonic_ms() > deadline) {
            litestream_halt(ls);
            return msg_fail(msg, cap, "litestream's socket did not answer in %d s: see %s",
                            SOCKET_WAIT_MS / 1000, ls->log_path);
        }
        time_sleep_ms(20);
    }
    return 0;
}

static int begin(struct litestream *ls, enum ls_kind kind, const char *replica, char *msg,
                 size_t cap)
{
    litestream_halt(ls);
    if (path_absolute(replica, ls->replica, sizeof ls->replica) != 0)
        return msg_fail(msg, cap, "the path of %s is too long", replica);
    ls->kind = kind;
    return start(ls, msg, cap);
}

int litestream_replicate(struct litestream *ls, const char *replica, char *msg, size_t cap)
{
    return begin(ls, LS_REPLICATE, replica, msg, cap);
}

int litestream_follow(struct litestream *ls, const char *replica, char *msg, size_t cap)
{
    return begin(ls, LS_FOLLOW, replica, msg, cap);
}

bool litestream_keep(struct litestream *ls, bool *restarted, char *msg, size_t cap)
{
    *restarted = false;
    int status;
    if (ls->pid > 0 && waitpid(ls->pid, &status, WNOHANG) == 0)
        return true; /* running (-1: not our child any more, so gone) */
    ls->pid = 0;
    if (ls->kind == LS_NONE)
        return false;
    *restarted = true;
    return start(ls, msg, cap) == 0;
}

bool litestream_halt(struct litestream *ls)
{
    if (!ls || ls->pid <= 0)
        return true;
    bool clean = true;
    kill(ls->pid, SIGCONT); /* a stopped one cannot take SIGTERM */
    kill(ls->pid, SIGTERM);
    int64_t deadline = time_monotonic_ms() + STOP_WAIT_MS;
    int status;
    while (waitpid(ls->pid, &status, WNOHANG) == 0) {
        if (time_monotonic_ms() > deadline) {
            log_warn("litestream (pid %d) did not stop on SIGTERM: killed", (int)ls->pid);
            kill(ls->pid, SIGKILL);
            waitpid(ls->pid, &status, 0);
            clean = false;
            break;
        }
        time_sleep_ms(10);
    }
    ls->pid = 0;
    return clean;
}

void litestream_free(struct litestream *ls)
{
    if (!ls)
        return;
    litestream_halt(ls);
    unlink(ls->socket);
    unlink(ls->config);
    rmdir(ls->dir);
    free(ls);
}

/* Runs a one-shot command with a configuration of db and replica; its
 * output into out (NUL-terminated). The exit status, or -1 with msg. */
static int run_command(const char *binary, const char *verb, const char *const args[],
                       const char *db, const char *replica, char *out, size_t out_cap, char *msg,
                       size_t cap)
{
    struct litestream *ls = litestream_new(binary, db, msg, cap);
    if (!ls)
        return -1;
    int rc = -1, fds[2] = {-1, -1};
    if (path_absolute(replica, ls->replica, sizeof ls->replica) != 0) {
        msg_fail(msg, cap, "the path of %s is too long", replica);
        goto out;
    }
    if (write_config(ls, ls->db, ls->replica, false, msg, cap) != 0)
        goto out;
    if (pipe2(fds, O_CLOEXEC) != 0) {
        msg_fail(msg, cap, "pipe: %s", strerror(errno));
        goto out;
    }
    char *argv[16] = {ls->binary, (char *)verb, "-no-expand-env", "-config", ls->config};
    size_t n = 5;
    for (size_t i = 0; args[i] && n < 14; i++)
        argv[n++] = (char *)args[i];
    argv[n++] = ls->db;
    argv[n] = NULL;
    pid_t pid = spawn(argv, fds[1]);
    close(fds[1]);
    fds[1] = -1;
    if (pid < 0) {
        msg_fail(msg, cap, "cannot start %s: %s", binary, strerror(errno));
        goto out;
    }
    size_t len = 0;
    int64_t deadline = time_monotonic_ms() + COMMAND_WAIT_MS;
    for (;;) {
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        int64_t left = deadline - time_monotonic_ms();
        int ready = left > 0 ? poll(&p, 1, (int)left) : 0;
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0) {
            kill(pid, SIGKILL); /* hung, or poll failed: it ends here */
            break;
        }
        char buf[4096];
        ssize_t got = read(fds[0], buf, sizeof buf);
        if (got <= 0)
            break;
        size_t take = (size_t)got < out_cap - 1 - len ? (size_t)got : out_cap - 1 - len;
        memcpy(out + len, buf, take);
        len += take;
    }
    out[len] = '\0';
    int status;
    if (waitpid(pid, &status, 0) != pid)
        msg_fail(msg, cap, "litestream %s: lost its process", verb);
    else if (!WIFEXITED(status))
        msg_fail(msg, cap, "litestream %s was killed (signal %d)", verb,
                 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    else
        rc = WEXITSTATUS(status);
out:
    if (fds[0] >= 0)
        close(fds[0]);
    litestream_free(ls);
    return rc;
}

/* The last line of text, for an error message. */
static const char *last_line(char *text)
{
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        text[--n] = '\0';
    char *nl = strrchr(text, '\n');
    return nl ? nl + 1 : text;
}

int litestream_restore(const char *binary, const char *replica, const char *out, char *msg,
                       size_t cap)
{
    char *text = malloc(OUTPUT_MAX);
    if (!text)
        return msg_fail(msg, cap, "out of memory");
    const char *args[] = {"-o", out, NULL};
    int rc = run_command(binary, "restore", args, out, replica, text, OUTPUT_MAX, msg, cap);
    if (rc > 0)
        msg_fail(msg, cap, "litestream restore exited with %d: %s", rc, last_line(text));
    free(text);
    return rc == 0 ? 0 : -1;
}

int litestream_replica_txid(const char *binary, const char *replica, uint64_t *txid, char *msg,
                            size_t cap)
{
    const char *args[] = {"-level", "all", NULL};
    /* the database path only names the replica: a name that is not there */
    char db[PATH_MAX], abs[PATH_MAX - 8];
    if (path_absolute(replica, abs, sizeof abs) != 0)
        return msg_fail(msg, cap, "the path of %s is too long", replica);
    snprintf(db, sizeof db, "%s.db", abs);
    char *text = malloc(OUTPUT_MAX);
    if (!text)
        return msg_fail(msg, cap, "out of memory");
    int rc = run_command(binary, "ltx", args, db, replica, text, OUTPUT_MAX, msg, cap);
    if (rc != 0) {
        if (rc > 0)
            msg_fail(msg, cap, "litestream ltx exited with %d: %s", rc, last_line(text));
        free(text);
        return -1;
    }
    *txid = 0;
    /* lines: level min_txid max_txid size created (the first is the header) */
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        char level[16], min[32], max[32];
        if (sscanf(line, "%15s %31s %31s", level, min, max) == 3 && level[0] >= '0' &&
            level[0] <= '9') {
            char *end;
            uint64_t v = strtoull(max, &end, 16);
            if (*end == '\0' && v > *txid)
                *txid = v;
        }
        line = nl ? nl + 1 : line + strlen(line);
    }
    free(text);
    return 0;
}
