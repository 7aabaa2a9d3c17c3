#include "common/ids.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* (unix_ms << 12 | counter) of the last id handed out by this process. */
static _Atomic uint64_t last_stamp;

/* xoshiro256** per thread, seeded from getrandom(). */
static _Thread_local uint64_t rng_state[4];
static _Thread_local int rng_ready;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void)
{
    if (!rng_ready) {
        if (getrandom(rng_state, sizeof rng_state, 0) != (ssize_t)sizeof rng_state) {
            /* No entropy source: fall back to time and address; ids stay unique
             * within the process through the counter. */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            rng_state[0] = (uint64_t)ts.tv_nsec ^ 0x9e3779b97f4a7c15ULL;
            rng_state[1] = (uint64_t)ts.tv_sec;
            rng_state[2] = (uint64_t)(uintptr_t)&rng_state;
            rng_state[3] = 0xbf58476d1ce4e5b9ULL;
        }
        rng_ready = 1;
    }
    uint64_t *s = rng_state;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static uint64_t next_stamp(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now = ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) << 12;
    uint64_t prev = atomic_load_explicit(&last_stamp, memory_order_relaxed);
    for (;;) {
        uint64_t next = now > prev ? now : prev + 1;
        if (atomic_compare_exchange_weak_explicit(&last_stamp, &prev, next, memory_order_relaxed,
                                                  memory_order_relaxed))
            return next;
    }
}

void ids_uuid7(char out[UUID_STR_LEN])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t stamp = next_stamp();
    uint64_t ms = stamp >> 12;
    uint64_t counter = stamp & 0xfff;
    uint64_t rnd = rng_next();
    uint8_t b[16];
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(ms >> (40 - 8 * i));
    b[6] = (uint8_t)(0x70 | (counter >> 8));
    b[7] = (uint8_t)counter;
    b[8] = (uint8_t)(0x80 | ((rnd >> 56) & 0x3f));
    for (int i = 9; i < 16; i++)
        b[i] = (uint8_t)(rnd >> (8 * (15 - i)));
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 15];
    }
    *p = '\0';
}

bool ids_valid_len(const char *s, size_t n)
{
    if (n == 0 || n > ID_MAX_LEN)
        return false;
    if (s[0] == '.' && (n == 1 || (n == 2 && s[1] == '.')))
        return false; /* dot segments: no URL reaches them */
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

bool ids_valid(const char *s)
{
    return ids_valid_len(s, strnlen(s, ID_MAX_LEN + 1));
}

bool ids_valid_name(const char *s)
{
    if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
        return false;
    for (size_t n = 1; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
        if (n >= NAME_MAX_LEN)
            return false;
    }
    return true;
}

int ids_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
