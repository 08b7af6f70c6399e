/* fuzz_util.h — what the libFuzzer harnesses share: a private scratch folder made once per
 * process, and writing an input into a file there (for parsers that read paths, not buffers). */
#ifndef ACTIOND_TESTS_FUZZ_UTIL_H
#define ACTIOND_TESTS_FUZZ_UTIL_H

#include "common/log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A scratch folder for this process, made at the first call; libFuzzer's -fork and -jobs
 * run several processes, so each needs its own. Removed by fuzz_scratch_cleanup at exit. */
static char fuzz_scratch_dir[64];

static inline void fuzz_scratch_cleanup(void)
{
    char cmd[128];
    if (fuzz_scratch_dir[0]) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_scratch_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "fuzz: could not remove %s\n", fuzz_scratch_dir);
    }
}

static inline const char *fuzz_scratch(void)
{
    if (!fuzz_scratch_dir[0]) {
        snprintf(fuzz_scratch_dir, sizeof fuzz_scratch_dir, "/tmp/actiond-fuzz-XXXXXX");
        if (!mkdtemp(fuzz_scratch_dir)) {
            perror("fuzz: mkdtemp");
            _exit(1); /* the harness cannot run at all: not a finding */
        }
        atexit(fuzz_scratch_cleanup);
    }
    return fuzz_scratch_dir;
}

/* Writes len bytes to dir/name; a missing file when data is NULL. 0 or -1. */
static inline int fuzz_write_file(const char *dir, const char *name, const uint8_t *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
    if (!data)
        return 0;
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = len ? fwrite(data, 1, len, f) : 0;
    return fclose(f) == 0 && n == len ? 0 : -1;
}

/* Parsers report bad input on stderr at warn level; thousands of lines a second would bury
 * libFuzzer's own report, so the harnesses keep only errors. */
static inline void fuzz_quiet(void)
{
    log_set_level(LOG_LVL_ERROR);
}

#endif
