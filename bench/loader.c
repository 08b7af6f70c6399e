/* loader.c — drives video_loader over a data set for a number of epochs with nothing else running
 * and prints one JSON line per epoch: clips/s the loader sustains, cold (decoding) or warm (cached).
 * Built and run by bench/loader.sh. */
#include "video/video.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

struct args {
    const char *dir, *cache;
    const char *split;
    int epochs;
    size_t ram_mb;
    struct video_loader_opts o;
};

static int usage(void)
{
    fprintf(stderr, "usage: loader DIR --cache DIR [--split train] [--epochs N] [--motion diff|mv] "
                    "[--length L] [--segments K] [--size N] [--batch B] [--threads T] "
                    "[--ram-mb M] [--eval]\n");
    return 2;
}

static int parse(int argc, char **argv, struct args *a)
{
    video_loader_opts_default(&a->o);
    a->split = "train";
    a->epochs = 2;
    if (argc < 2)
        return -1;
    a->dir = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(k, "--eval") == 0) {
            a->o.augment = 0;
            a->o.shuffle = 0;
            continue;
        }
        if (!v)
            return -1;
        i++;
        if (strcmp(k, "--cache") == 0)
            a->cache = v;
        else if (strcmp(k, "--split") == 0)
            a->split = v;
        else if (strcmp(k, "--epochs") == 0)
            a->epochs = atoi(v);
        else if (strcmp(k, "--motion") == 0)
            a->o.motion = video_motion_from_name(v);
        else if (strcmp(k, "--length") == 0)
            a->o.length = atoi(v);
        else if (strcmp(k, "--segments") == 0)
            a->o.segments = atoi(v);
        else if (strcmp(k, "--size") == 0)
            a->o.width = a->o.height = atoi(v);
        else if (strcmp(k, "--batch") == 0)
            a->o.batch = atoi(v);
        else if (strcmp(k, "--threads") == 0)
            a->o.threads = atoi(v);
        else if (strcmp(k, "--ram-mb") == 0)
            a->ram_mb = (size_t)atol(v);
        else
            return -1;
    }
    a->o.cache_dir = a->cache;
    a->o.ram_bytes = a->ram_mb << 20;
    return a->cache && a->epochs >= 1 ? 0 : -1;
}

/* CPU seconds this process has used, all threads. */
static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) * 1e-6;
}

/* Pulls batches until `epochs` epochs have ended, printing each epoch's rate. */
static int run(struct video_loader *ld, int epochs, struct err_msg *em)
{
    uint64_t t0 = clock_mono_ns();
    double cpu0 = cpu_seconds();
    int64_t clips = 0;
    struct video_loader_stats prev = {0};
    for (int e = 0; e < epochs;) {
        const struct video_batch *b;
        int rc = video_loader_next(ld, &b, em);
        if (rc < 0)
            return rc;
        clips += b->clips;
        if (!b->epoch_end)
            continue;
        uint64_t t1 = clock_mono_ns();
        struct video_loader_stats st;
        video_loader_stats(ld, &st);
        double s = clock_elapsed_s(t0, t1), cpu1 = cpu_seconds();
        printf("{\"epoch\":%d,\"clips\":%lld,\"seconds\":%.3f,\"clips_per_s\":%.1f,"
               "\"cpu_ms_per_clip\":%.2f,\"decodes\":%lld,\"disk_hits\":%lld,\"ram_hits\":%lld,"
               "\"next_wait_s\":%.3f}\n",
               e, (long long)clips, s, (double)clips / s, (cpu1 - cpu0) * 1e3 / (double)clips,
               (long long)(st.cache.decodes - prev.cache.decodes),
               (long long)(st.cache.disk_hits - prev.cache.disk_hits),
               (long long)(st.cache.ram_hits - prev.cache.ram_hits), st.wait_s - prev.wait_s);
        fflush(stdout);
        prev = st;
        clips = 0;
        t0 = t1;
        cpu0 = cpu1;
        e++;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct args a = {0};
    if (parse(argc, argv, &a) < 0)
        return usage();
    video_log_setup(LOG_LVL_WARN);
    struct err_msg em = {{0}};
    struct video_dataset *ds = NULL;
    struct video_loader *ld = NULL;
    int rc = video_dataset_open(a.dir, a.split, &ds, &em);
    if (rc == 0)
        rc = video_loader_new(ds, NULL, 0, &a.o, &ld, &em);
    if (rc == 0)
        rc = run(ld, a.epochs, &em);
    if (rc < 0)
        fprintf(stderr, "loader: %s\n", err_text(&em, rc));
    video_loader_free(ld);
    video_dataset_free(ds);
    return rc < 0 ? 1 : 0;
}
