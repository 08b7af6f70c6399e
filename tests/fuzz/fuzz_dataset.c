/* fuzz_dataset.c — libFuzzer harness for the data-set lists (video/dataset.c): the input holds
 * the split and the three list files, separated by lines "%%":
 *     SPLIT \n%%\n classInd.txt \n%%\n trainlist.txt \n%%\n testlist.txt
 * a part that is exactly "!" is a missing file. The folder holds real class folders and clips. */
#include "fuzz_util.h"
#include "common/err.h"
#include "video/video.h"

#include <sys/stat.h>

#define FUZZ_DS_PARTS 4
static const char *const part_files[FUZZ_DS_PARTS] = {NULL, "classInd.txt", "trainlist.txt",
                                                      "testlist.txt"};
static char ds_dir[512];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    static const char *const clips[] = {"bend/a.mp4", "bend/b.avi", "walk/c.mp4", "walk/d.txt",
                                        "Wave Hands/e.mkv", "run/empty.mp4"};
    snprintf(ds_dir, sizeof ds_dir, "%s/ds", fuzz_scratch());
    mkdir(ds_dir, 0700);
    for (size_t i = 0; i < sizeof clips / sizeof *clips; i++) {
        char sub[600];
        snprintf(sub, sizeof sub, "%s/%s", ds_dir, clips[i]);
        *strrchr(sub, '/') = '\0';
        mkdir(sub, 0700);
        bool empty = strstr(clips[i], "empty") != NULL;
        fuzz_write_file(ds_dir, clips[i], (const uint8_t *)"not really a video", empty ? 0 : 18);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part[FUZZ_DS_PARTS] = {0};
    size_t len[FUZZ_DS_PARTS] = {0};
    const uint8_t *p = data, *end = data + size;
    int n = 0;
    while (n < FUZZ_DS_PARTS) {
        const uint8_t *sep = memmem(p, (size_t)(end - p), "\n%%\n", 4);
        part[n] = p;
        len[n] = sep ? (size_t)(sep - p) : (size_t)(end - p);
        n++;
        if (!sep)
            break;
        p = sep + 4;
    }
    char split[8] = "train";
    if (n > 0 && len[0] > 0 && len[0] < sizeof split) {
        memcpy(split, part[0], len[0]);
        split[len[0]] = '\0';
    }
    for (int i = 1; i < FUZZ_DS_PARTS; i++) {
        bool missing = i >= n || (len[i] == 1 && part[i][0] == '!');
        if (fuzz_write_file(ds_dir, part_files[i], missing ? NULL : part[i], len[i]) != 0)
            return 0;
    }
    struct video_dataset *ds = NULL;
    struct err_msg em;
    if (video_dataset_open(ds_dir, split, &ds, &em) != 0)
        return 0;
    int count = video_dataset_count(ds), classes = video_dataset_class_count(ds);
    for (int i = 0; i < count; i++) {
        int label = video_dataset_label(ds, i);
        if (label < 0 || label >= classes || !video_dataset_path(ds, i))
            __builtin_trap();
    }
    if (count > 0) {
        int *train = malloc(sizeof(int) * (size_t)count), *val = malloc(sizeof(int) * (size_t)count);
        int nt = 0, nv = 0;
        if (train && val && video_dataset_split(ds, 0.25, 7, train, &nt, val, &nv, &em) == 0 &&
            nt + nv != count)
            __builtin_trap();
        free(train);
        free(val);
    }
    video_dataset_free(ds);
    return 0;
}
