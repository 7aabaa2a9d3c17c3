/*
 * The standby (server/standby.h). Its copy's files: the SQLite file, the
 * follower's <copy>-txid (the replica's transaction it has applied) and
 * <copy>.standby, which names the replica folder the copy follows: a copy
 * is resumed only when that folder is still the newest, and a file without
 * it is not a copy (a deposed primary's file is never overwritten).
 */
#include "server/standby.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "server/litestream.h"

#define CATCH_UP_WAIT_MS 10000
#define RESTORE_ATTEMPTS 3
#define NOTE_MAX 512
#define PROBE_MAX 2048

struct standby {
    struct standby_config cfg;
    struct litestream *follower;
    CURL *curl;
    char health_url[600];
    int64_t following;  /* the epoch of the replica folder followed; -1: none */
    int64_t last_ok_ms; /* the primary's last 200 (or the start) */
    /* the primary answered since the copy began following its replica
     * folder (true at the start): a standby whose replica moved to a new
     * epoch (another took over) does not take over from the old one */
    bool seen;
    bool fenced; /* taking over: the fence is done */
    bool asked;  /* promotion asked for (SIGUSR1): pending until it is done */
    /* a takeover of this copy fenced the store at this epoch and did not
     * get to serve (its .standby says "fenced <epoch>"); -1: none. The copy
     * is taken over again as it is, fencing from that epoch, and never
     * followed again: the old epoch's replica gets nothing Neo4j takes. */
    int64_t resumed_epoch;
    char store_id[64];
    int64_t file_epoch, epoch, seq;
    pthread_mutex_t lock; /* note */
    char note[NOTE_MAX];
    char probe[PROBE_MAX]; /* the primary's /readyz body */
    size_t probe_len;
};

static void set_note(struct standby *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_note(struct standby *s, const char *fmt, ...)
{
    char text[NOTE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&s->lock);
    memcpy(s->note, text, sizeof text);
    pthread_mutex_unlock(&s->lock);
}

void standby_note(void *standby, char *out, size_t cap)
{
    struct standby *s = standby;
    pthread_mutex_lock(&s->lock);
    snprintf(out, cap, "%s", s->note);
    pthread_mutex_unlock(&s->lock);
}

int standby_replica_path(const char *dir, int64_t epoch, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/epoch-%lld", dir, (long long)epoch);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* The newest epoch-<n> folder under dir holding a replica; -1: none. */
static int64_t newest_replica(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int64_t best = -1;
    struct dirent *de;
    while ((de = readdir(d))) {
        long long n;
        char tail;
        char canonical[64];
        if (sscanf(de->d_name, "epoch-%lld%c", &n, &tail) != 1 || n < 0 || n <= best ||
            snprintf(canonical, sizeof canonical, "epoch-%lld", n) >= (int)sizeof canonical ||
            strcmp(canonical, de->d_name) != 0)
            continue;
        char ltx[PATH_MAX];
        struct stat st;
        if (snprintf(ltx, sizeof ltx, "%s/%s/ltx", dir, de->d_name) < (int)sizeof ltx &&
            stat(ltx, &st) == 0 && S_ISDIR(st.st_mode))
            best = n;
    }
    closedir(d);
    return best;
}

static int sidecar(const struct standby *s, const char *suffix, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s%s", s->cfg.store->sqlite_path, suffix);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The replica folder the copy follows (its .standby file), or "". */
static void followed_folder(const struct standby *s, char *out, size_t cap)
{
    char path[PATH_MAX];
    out[0] = '\0';
    FILE *f = sidecar(s, ".standby", path, sizeof path) == 0 ? fopen(path, "r") : NULL;
    if (!f)
        return;
    if (!fgets(out, (int)cap, f))
        out[0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    fclose(f);
}

#define FENCED_MARK "fenced "

/* The .standby file says text (a replica folder, or FENCED_MARK and an
 * epoch): 0, or -1 with the note set. */
static int write_marker(struct standby *s, const char *text)
{
    char marker[PATH_MAX];
    if (sidecar(s, ".standby", marker, sizeof marker) != 0)
        return -1;
    FILE *f = fopen(marker, "w");
    bool written = f && fprintf(f, "%s\n", text) >= 0;
    if (!f || fclose(f) != 0 || !written) {
        set_note(s, "cannot write %s: %s", marker, strerror(errno));
        return -1;
    }
    return 0;
}

/* Removes the copy and its sidecars (the follower is stopped); the
 * marker too unless keep_marker (the copy is replaced at once). */
static void remove_copy(const struct standby *s, bool keep_marker)
{
    const char *suffixes[] = {"", "-txid", "-wal", "-shm", "-journal", ".standby"};
    size_t n = sizeof suffixes / sizeof suffixes[0] - (keep_marker ? 1 : 0);
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        if (sidecar(s, suffixes[i], path, sizeof path) == 0 && unlink(path) != 0 && errno != ENOENT)
            log_warn("standby: cannot remove %s: %s", path, strerror(errno));
    }
}

/* The replica transaction the follower has applied (its -txid file). */
static uint64_t applied_txid(const struct standby *s)
{
    char path[PATH_MAX], text[32] = "";
    FILE *f = sidecar(s, "-txid", path, sizeof path) == 0 ? fopen(path, "r") : NULL;
    if (!f)
        return 0;
    if (!fgets(text, sizeof text, f))
        text[0] = '\0';
    fclose(f);
    return strtoull(text, NULL, 16);
}

/* Follows the newest replica folder; keeps the follower running. */
static void follow_newest(struct standby *s)
{
    char msg[512];
    int64_t n = newest_replica(s->cfg.replica_dir);
    if (n < 0) {
        set_note(s, "waiting for a replica under %s (none holds one yet)", s->cfg.replica_dir);
        return;
    }
    if (n == s->following) {
        bool restarted;
        if (!litestream_keep(s->follower, &restarted, msg, sizeof msg))
            log_warn("standby: litestream's follower: %s", msg);
        else if (restarted)
            log_warn("standby: litestream's follower had stopped: started again");
        return;
    }
    char replica[PATH_MAX], followed[PATH_MAX];
    if (standby_replica_path(s->cfg.replica_dir, n, replica, sizeof replica) != 0) {
        set_note(s, "the replica's path under %s is too long", s->cfg.replica_dir);
        return;
    }
    litestream_halt(s->follower);
    followed_folder(s, followed, sizeof followed);
    char txid[PATH_MAX];
    bool resume = strcmp(followed, replica) == 0 && sidecar(s, "-txid", txid, sizeof txid) == 0 &&
                  exists(txid) && exists(s->cfg.store->sqlite_path);
    if (!resume) {
        remove_copy(s, false);
        if (write_marker(s, replica) != 0)
            return;
    }
    if (litestream_follow(s->follower, replica, msg, sizeof msg) != 0) {
        set_note(s, "cannot follow %s: %s", replica, msg);
        return;
    }
    if (s->following >= 0)
        s->seen = false; /* a new primary: its silence is not the old one's */
    s->following = n;
    log_info("standby: %s %s into %s", resume ? "resuming the copy of" : "following", replica,
             s->cfg.store->sqlite_path);
}

/*
 * The primary holds its lease: its /readyz answered, and not as fenced (a
 * primary deposed by a fence that was never answered here, or by another
 * promotion, holds none). 200, and 503 for another reason (recovering,
 * Neo4j away: a standby could do no better), count as alive.
 */
static bool primary_answers(struct standby *s)
{
    long timeout_ms = (long)s->cfg.lease_timeout_s * 1000 / 3;
    curl_easy_setopt(s->curl, CURLOPT_TIMEOUT_MS, timeout_ms > 1000 ? 1000L : timeout_ms);
    s->probe_len = 0;
    s->probe[0] = '\0';
    long status = 0;
    if (curl_easy_perform(s->curl) != CURLE_OK ||
        curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
        return false;
    if (status == 200)
        return true;
    return status == 503 && !strstr(s->probe, "\"role\":\"fenced\"") &&
           !strstr(s->probe, "\"role\":\"standby\"");
}

/* The probe's answer, its first PROBE_MAX - 1 bytes. */
static size_t keep_probe(char *data, size_t size, size_t n, void *arg)
{
    struct standby *s = arg;
    size_t len = size * n, room = sizeof s->probe - 1 - s->probe_len;
    size_t take = len < room ? len : room;
    memcpy(s->probe + s->probe_len, data, take);
    s->probe_len += take;
    s->probe[s->probe_len] = '\0';
    return len;
}

struct standby *standby_start(const struct standby_config *cfg, char *msg, size_t cap)
{
    struct standby *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(msg, cap, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->following = -1;
    s->last_ok_ms = time_monotonic_ms(); /* the primary has a lease from the start */
    s->seen = true;
    pthread_mutex_init(&s->lock, NULL);
    set_note(s, "starting");
    char marker[PATH_MAX];
    if (sidecar(s, ".standby", marker, sizeof marker) != 0 ||
        (exists(cfg->store->sqlite_path) && !exists(marker))) {
        snprintf(msg, cap,
                 "%s exists and is not a standby's copy (no %s): give --sqlite a new path, or "
                 "remove the file first (a deposed primary's file: what it acknowledged is in "
                 "the replica)",
                 cfg->store->sqlite_path, marker);
        standby_free(s);
        return NULL;
    }
    int n = snprintf(s->health_url, sizeof s->health_url, "%s", cfg->primary_url);
    while (n > 0 && s->health_url[n - 1] == '/')
        s->health_url[--n] = '\0';
    if (n <= 0 || (size_t)n + sizeof "/readyz" > sizeof s->health_url) {
        snprintf(msg, cap, "--standby-of is too long");
        standby_free(s);
        return NULL;
    }
    snprintf(s->health_url + n, sizeof s->health_url - (size_t)n, "/readyz");
    s->follower = litestream_new(cfg->litestream, cfg->store->sqlite_path, msg, cap);
    s->curl = curl_easy_init();
    if (!s->follower || !s->curl) {
        if (s->follower)
            snprintf(msg, cap, "cannot set up libcurl");
        standby_free(s);
        return NULL;
    }
    curl_easy_setopt(s->curl, CURLOPT_URL, s->health_url);
    curl_easy_setopt(s->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s->curl, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
    curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, keep_probe);
    curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->curl, CURLOPT_NOPROXY, "*"); /* the primary, not a proxy, is asked */
    char followed[PATH_MAX];
    followed_folder(s, followed, sizeof followed);
    long long at = 0;
    char tail;
    s->resumed_epoch = -1;
    if (sscanf(followed, FENCED_MARK "%lld%c", &at, &tail) == 1 && at > 0 &&
        exists(cfg->store->sqlite_path))
        s->resumed_epoch = at;
    if (s->resumed_epoch >= 0) {
        log_warn("standby: a takeover of %s fenced the store at epoch %lld and did not get to "
                 "serve: it is taken over again from this copy once the lease runs out",
                 cfg->store->sqlite_path, at);
        set_note(s, "resuming the takeover of %s (fenced at epoch %lld)", cfg->store->sqlite_path,
                 at);
    } else {
        follow_newest(s);
    }
    return s;
}

/*
 * After the fence: the follower catches up with what the replica holds now
 * (the old primary adds nothing Neo4j will take), at most CATCH_UP_WAIT_MS;
 * then it stops. What it lacks then, adoption finds. False when the
 * follower had to be killed (its copy is not to be trusted).
 */
static bool catch_up(struct standby *s, const char *replica)
{
    char msg[512];
    uint64_t newest = 0;
    if (litestream_replica_txid(s->cfg.litestream, replica, &newest, msg, sizeof msg) != 0) {
        log_warn("standby: cannot list the replica's transactions: %s", msg);
        return true;
    }
    if (litestream_follow(s->follower, replica, msg, sizeof msg) != 0) {
        log_warn("standby: cannot resume following %s: %s", replica, msg);
        return true;
    }
    int64_t deadline = time_monotonic_ms() + CATCH_UP_WAIT_MS;
    while (applied_txid(s) < newest && time_monotonic_ms() < deadline)
        time_sleep_ms(20);
    log_info("standby: the copy is at replica transaction %" PRIx64 " of %" PRIx64, applied_txid(s),
             newest);
    return litestream_halt(s->follower);
}

/* The copy restored again from the replica (a fresh one, replacing it). */
static int restore_again(struct standby *s, const char *replica)
{
    char fresh[PATH_MAX], msg[512];
    if (sidecar(s, ".restore", fresh, sizeof fresh) != 0)
        return -1;
    unlink(fresh);
    if (litestream_restore(s->cfg.litestream, replica, fresh, msg, sizeof msg) != 0) {
        log_error("standby: restoring %s again failed: %s", replica, msg);
        return -1;
    }
    remove_copy(s, true);
    if (rename(fresh, s->cfg.store->sqlite_path) != 0) {
        log_error("standby: cannot move %s into place: %s", fresh, strerror(errno));
        return -1;
    }
    return 0;
}

/* Takes over (the lease ran out, or promotion was asked for): true once
 * the copy is the primary's file at s->epoch; false to try again. */
static bool take_over(struct standby *s)
{
    struct bs_error err;
    bs_error_clear(&err);
    char replica[PATH_MAX];
    bool resumed = s->resumed_epoch >= 0;
    int64_t from = resumed ? newest_replica(s->cfg.replica_dir) : s->following;
    if (standby_replica_path(s->cfg.replica_dir, from, replica, sizeof replica) != 0)
        return false;
    bool clean = true;
    char txid[PATH_MAX];
    if (!s->fenced && !resumed && (sidecar(s, "-txid", txid, sizeof txid) != 0 || !exists(txid))) {
        /* the follower's first restore has not finished: no copy yet */
        set_note(s, "taking over once the first copy of %s is complete", replica);
        return false;
    }
    if (!s->fenced) {
        clean = litestream_halt(s->follower); /* a copy no one writes, to read */
        if (bistore_identity(s->cfg.store->sqlite_path, s->store_id, sizeof s->store_id,
                             &s->file_epoch, &err) != 0) {
            set_note(s, "cannot take over: the copy: %s", err.message);
            return false;
        }
        /* resumed: the copy may be at the old epoch; its fence was at this one */
        int64_t from_epoch = resumed ? s->resumed_epoch : s->file_epoch;
        int fenced = bistore_fence(s->cfg.store, s->store_id, from_epoch, &s->epoch, &s->seq, &err);
        if (fenced != 0) {
            /* 1: nothing fenced, and never will be from this copy (another
             * took over, or this is not the store's Neo4j): stay a standby */
            set_note(s, "%s: %s",
                     fenced == 1 ? "cannot take over"
                                 : "taking over: the fence failed (trying again)",
                     err.message);
            log_warn("standby: %s", s->note);
            if (fenced == 1)
                s->asked = false; /* a promotion asked for cannot happen from this copy */
            return false;
        }
        s->fenced = true;
        /* the point of no return: a restart takes over from this copy */
        char mark[64];
        snprintf(mark, sizeof mark, FENCED_MARK "%lld", (long long)s->epoch);
        if (write_marker(s, mark) != 0)
            log_error("standby: %s: a restart before this gateway serves would not resume the "
                      "takeover",
                      s->note);
        log_warn("standby: fenced store %s at epoch %lld: the old primary applies nothing more "
                 "(Neo4j holds intents up to %lld)",
                 s->store_id, (long long)s->epoch, (long long)s->seq);
        if (!resumed) /* a resumed copy follows no replica any more */
            clean = catch_up(s, replica) && clean;
    }
    /* a follower killed may have stopped in the middle of a page batch */
    int rc = clean ? bistore_adopt(s->cfg.store, s->store_id, s->epoch, s->seq, &err) : 1;
    if (!clean)
        bs_error_set(&err, BS_STORAGE_ERROR, "the follower had to be killed");
    for (int i = 0; rc == 1 && i < RESTORE_ATTEMPTS; i++) {
        log_warn("standby: %s; restoring the replica again", err.message);
        bs_error_clear(&err);
        if (restore_again(s, replica) == 0)
            rc = bistore_adopt(s->cfg.store, s->store_id, s->epoch, s->seq, &err);
    }
    if (rc != 0) {
        set_note(s, "taking over: the copy cannot take epoch %lld (trying again): %s",
                 (long long)s->epoch, err.message);
        log_error("standby: %s", s->note);
        return false;
    }
    return true;
}

void standby_served(struct standby *s)
{
    const char *suffixes[] = {"-txid", ".standby"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        char path[PATH_MAX];
        if (sidecar(s, suffixes[i], path, sizeof path) == 0 && unlink(path) != 0 && errno != ENOENT)
            log_warn("cannot remove %s: %s", path, strerror(errno));
    }
}

bool standby_copy_exists(const char *sqlite_path)
{
    char marker[PATH_MAX];
    int n = snprintf(marker, sizeof marker, "%s.standby", sqlite_path);
    return n > 0 && (size_t)n < sizeof marker && exists(marker);
}

bool standby_step(struct standby *s, bool now, int64_t *epoch)
{
    int64_t t = time_monotonic_ms();
    if (now && !s->asked)
        log_warn("standby: promotion asked for: taking over");
    s->asked = s->asked || now;
    now = s->asked;
    if (!s->fenced) {
        if (s->resumed_epoch < 0)
            follow_newest(s);
        bool up = primary_answers(s);
        if (up) {
            s->last_ok_ms = t;
            s->seen = true;
        }
        int64_t silent = t - s->last_ok_ms;
        if (!now && silent < (int64_t)s->cfg.lease_timeout_s * 1000) {
            if (up)
                set_note(s, "following the replica %s/epoch-%lld; the primary at %s answers",
                         s->cfg.replica_dir, (long long)s->following, s->cfg.primary_url);
            else
                set_note(s, "the primary at %s has not answered for %.1f s; taking over at %u s",
                         s->cfg.primary_url, (double)silent / 1000.0, s->cfg.lease_timeout_s);
            return false;
        }
        if (s->following < 0 && s->resumed_epoch < 0) {
            set_note(s, "cannot take over: no replica under %s yet", s->cfg.replica_dir);
            return false;
        }
        if (!now && !s->seen) {
            set_note(s,
                     "following %s/epoch-%lld, a new primary's replica, while %s does not answer: "
                     "another gateway took over; restart this standby with its address",
                     s->cfg.replica_dir, (long long)s->following, s->cfg.primary_url);
            return false;
        }
        if (!now)
            log_warn("standby: the primary at %s has not answered for %.1f s: taking over",
                     s->cfg.primary_url, (double)silent / 1000.0);
    }
    if (!take_over(s))
        return false;
    *epoch = s->epoch;
    return true;
}

void standby_free(struct standby *s)
{
    if (!s)
        return;
    litestream_free(s->follower);
    if (s->curl)
        curl_easy_cleanup(s->curl);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
