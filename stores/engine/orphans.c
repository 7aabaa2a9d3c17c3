/*
 * The record of open Neo4j transactions (see struct orphan_log). A plain
 * write(2) is enough: the page cache outlives a killed process, and after
 * a crash of the whole machine Neo4j's own transactions are gone too (the
 * guarded watermark covers a remote Neo4j).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "common/log.h"
#include "stores/engine/internal.h"

/* Writes the list (one path a line) over the file; truncates only what is
 * left of a longer list, and empties it with a truncate alone. */
static int rewrite(struct orphan_log *log)
{
    char text[ORPHANS_MAX * (NEO4J_TX_PATH_MAX + 1)];
    size_t len = 0;
    for (size_t i = 0; i < log->n; i++) {
        size_t n = strlen(log->paths[i]);
        memcpy(text + len, log->paths[i], n); /* n < NEO4J_TX_PATH_MAX: fits */
        text[len + n] = '\n';
        len += n + 1;
    }
    if ((len > 0 && pwrite(log->fd, text, len, 0) != (ssize_t)len) ||
        (len < log->file_len && ftruncate(log->fd, (off_t)len) != 0)) {
        int saved = errno; /* the caller tells a full disk apart (ENOSPC) */
        log_error("cannot write the Neo4j transaction record: %s", strerror(saved));
        errno = saved;
        return -1;
    }
    log->file_len = len;
    return 0;
}

int orphans_open(struct orphan_log *log, const char *sqlite_path)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s.neo4j-tx", sqlite_path) >= (int)sizeof path)
        return -1;
    log->n = 0;
    log->file_len = SIZE_MAX; /* unknown: the first rewrite truncates */
    log->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (log->fd < 0) {
        log_error("cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    /* One process writes a file's stores at a time (its own flock, apart
     * from SQLite's fcntl locks, which a close of another descriptor of
     * the database file would drop: hence this file, not that one). */
    if (flock(log->fd, LOCK_EX | LOCK_NB) != 0) {
        int busy = errno == EWOULDBLOCK;
        close(log->fd);
        log->fd = -1;
        return busy ? ORPHANS_BUSY : -1;
    }
    char text[ORPHANS_MAX * (NEO4J_TX_PATH_MAX + 1) + 1];
    ssize_t n = pread(log->fd, text, sizeof text - 1, 0);
    if (n < 0)
        return -1;
    text[n] = '\0';
    char *save = NULL;
    for (char *line = text; line && *line && log->n < ORPHANS_MAX; line = save) {
        save = strchr(line, '\n');
        if (save)
            *save++ = '\0';
        size_t len = strlen(line);
        if (strncmp(line, "/db/", 4) == 0 && len < NEO4J_TX_PATH_MAX) {
            memcpy(log->paths[log->n], line, len + 1);
            log->n++;
        }
    }
    if (log->n)
        log_warn("found %zu Neo4j transaction(s) left open by an earlier run", log->n);
    return 0;
}

void orphans_close(struct orphan_log *log)
{
    if (log->fd >= 0)
        close(log->fd);
    log->fd = -1;
}

int orphans_add(struct orphan_log *log, const char *tx_path)
{
    if (log->n >= ORPHANS_MAX) {
        errno = ENOBUFS; /* not a full disk */
        return -1;
    }
    snprintf(log->paths[log->n++], NEO4J_TX_PATH_MAX, "%s", tx_path);
    if (rewrite(log) != 0) {
        log->n--;
        return -1;
    }
    return 0;
}

void orphans_remove(struct orphan_log *log, const char *tx_path)
{
    for (size_t i = 0; i < log->n; i++) {
        if (strcmp(log->paths[i], tx_path) == 0) {
            memmove(log->paths[i], log->paths[i + 1], (log->n - i - 1) * sizeof log->paths[0]);
            log->n--;
            rewrite(log); /* a stale line only costs a harmless DELETE later */
            return;
        }
    }
}

int orphans_rollback_all(struct orphan_log *log, struct neo4j_client *neo4j)
{
    size_t i = 0;
    while (i < log->n) {
        struct neo4j_result r = {0};
        enum neo4j_status status = neo4j_rollback(neo4j, log->paths[i], &r);
        neo4j_result_clear(&r);
        if (status == NEO4J_OK || status == NEO4J_TX_GONE || status == NEO4J_CLIENT_ERROR) {
            log_info("rolled back Neo4j transaction %s (%s)", log->paths[i],
                     status == NEO4J_OK ? "was open" : "already gone");
            char done[NEO4J_TX_PATH_MAX];
            snprintf(done, sizeof done, "%s", log->paths[i]);
            orphans_remove(log, done);
            continue;
        }
        if (status == NEO4J_UNAVAILABLE)
            return -1; /* no point waiting out one timeout per transaction */
        i++;
    }
    return log->n == 0 ? 0 : -1;
}
