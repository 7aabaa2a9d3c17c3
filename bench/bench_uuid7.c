/*
 * bench_uuid7: how many UUIDv7 ids ids_uuid7() makes per second on one
 * thread (the target: at least 10 million).
 *
 *   bench_uuid7 [--count N]        (default 20,000,000)
 *
 * Prints the human line and a RESULT line (bench/bench_common.h's format,
 * with tx_per_s = ids per second).
 */
#include <stdio.h>
#include <string.h>

#include "bench/bench_common.h"
#include "common/ids.h"

int main(int argc, char **argv)
{
    long count = 20000000;
    const struct bench_option options[] = {{"--count", OPTION_LONG, &count, 1, 1099511627776.0},
                                           {NULL, OPTION_FLAG, NULL, 0, 0}};
    int parsed =
        bench_parse_args("bench_uuid7", "usage: bench_uuid7 [--count N]\n", argc, argv, options);
    if (parsed != 0)
        return parsed > 0 ? 0 : 2;
    char id[UUID_STR_LEN], last[UUID_STR_LEN] = "";
    unsigned long checksum = 0;
    long out_of_order = 0;
    /* A short warm-up (the per-thread generator is seeded on first use). */
    for (int i = 0; i < 1000; i++)
        ids_uuid7(id);
    double cpu0 = cpu_self();
    double t0 = bench_now();
    for (long i = 0; i < count; i++) {
        ids_uuid7(id);
        checksum += (unsigned char)id[35]; /* keeps the call from being optimised away */
    }
    double t1 = bench_now();
    double cpu1 = cpu_self();
    /* Ordering check on a sample: ids of one thread strictly increase. */
    for (int i = 0; i < 100000; i++) {
        ids_uuid7(id);
        if (last[0] && strcmp(id, last) <= 0)
            out_of_order++;
        memcpy(last, id, sizeof last);
    }
    double secs = t1 - t0;
    double rate = (double)count / secs;
    printf("uuid7: %ld ids in %.3f s on one thread: %.2f million ids/s (%.1f ns each, checksum "
           "%lu, %ld out of order)\n",
           count, secs, rate / 1e6, secs * 1e9 / (double)count, checksum, out_of_order);
    printf("RESULT {\"system\":\"bistore\",\"workload\":\"uuid7\",\"clients\":1,\"ok\":%ld,"
           "\"errors\":%ld,\"seconds\":%.6f,\"tx_per_s\":%.1f,\"client_cpu_s\":%.6f}\n",
           count, out_of_order, secs, rate, cpu1 - cpu0);
    return out_of_order == 0 ? 0 : 1;
}
