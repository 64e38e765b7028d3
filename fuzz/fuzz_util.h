/* Helpers shared by the fuzz targets: a hard check that libFuzzer reports as a crash,
 * and scratch files for readers that take a path. */
#ifndef SNNCL_FUZZ_UTIL_H
#define SNNCL_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A broken invariant: print it and abort, so libFuzzer keeps the input as a crash. */
#define FUZZ_CHECK(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

/* "<dir>/snncl-fuzz-<pid>-<tag>" in /dev/shm (memory, so no disk traffic) or, without
 * it, $TMPDIR or /tmp; the pid keeps parallel fuzzer processes apart. */
static inline void fuzz_scratch_path(char *buf, size_t size, const char *tag) {
    struct stat sb;
    const char *dir = "/dev/shm";
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || access(dir, W_OK) != 0) {
        dir = getenv("TMPDIR");
        if (!dir || !dir[0]) dir = "/tmp";
    }
    snprintf(buf, size, "%s/snncl-fuzz-%ld-%s", dir, (long)getpid(), tag);
}

/* Writes bytes to path (replacing it); aborts when that fails, as no input can cause it. */
static inline void fuzz_write_file(const char *path, const uint8_t *bytes, size_t size) {
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(size == 0 || fwrite(bytes, 1, size, f) == size);
    FUZZ_CHECK(fclose(f) == 0);
}

#endif
