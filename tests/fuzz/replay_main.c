/*
 * Replays a fuzz target's corpus without libFuzzer (a normal ctest with
 * gcc, in the release and ASan builds): each argument is a file or a
 * folder of files, each file fed once to LLVMFuzzerTestOneInput. A broken
 * invariant aborts, as under libFuzzer; exit 1 when no file was read.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *data = malloc(cap);
    if (!data) {
        fclose(f);
        return -1;
    }
    size_t got;
    while ((got = fread(data + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *bigger = realloc(data, cap * 2);
            if (!bigger) {
                free(data);
                fclose(f);
                return -1;
            }
            data = bigger;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(data);
        fprintf(stderr, "%s: read error\n", path);
        return -1;
    }
    fprintf(stderr, "replay %s (%zu bytes)\n", path, n);
    (void)LLVMFuzzerTestOneInput(data, n);
    free(data);
    return 0;
}

int main(int argc, char **argv)
{
    size_t files = 0;
    for (int a = 1; a < argc; a++) {
        struct stat st;
        if (stat(argv[a], &st) != 0) {
            perror(argv[a]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (replay_file(argv[a]) != 0)
                return 1;
            files++;
            continue;
        }
        struct dirent **names;
        int n = scandir(argv[a], &names, NULL, alphasort);
        if (n < 0) {
            perror(argv[a]);
            return 1;
        }
        int rc = 0;
        for (int i = 0; i < n; i++) {
            char path[4096];
            if (rc == 0 && names[i]->d_name[0] != '.') {
                int w = snprintf(path, sizeof path, "%s/%s", argv[a], names[i]->d_name);
                if (w < 0 || (size_t)w >= sizeof path || replay_file(path) != 0)
                    rc = 1;
                else
                    files++;
            }
            free(names[i]);
        }
        free(names);
        if (rc)
            return 1;
    }
    printf("replayed %zu inputs\n", files);
    return files ? 0 : 1;
}
