/* test_dataset.c — unit tests of video/'s data set path: list parsing and its errors, the
 * validation split, the decoded-clip cache, augmentation and the batch loader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "video/video.h"

#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One small synth set for the suite: 3 classes x 3 clips, 64x48, 1 s; one clip per class in
 * testlist.txt. The loader samples it at 32x24. */
#define SET_CLASSES 3
#define SET_CLIPS 3
#define MW 32
#define MH 24

static char set_dir[64];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void temp_dir(char *buf, size_t cap)
{
    snprintf(buf, cap, "/tmp/actiond-ds-XXXXXX");
    assert_non_null(mkdtemp(buf));
}

static void put_file(const char *dir, const char *name, const void *data, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void put_text(const char *dir, const char *name, const char *text)
{
    put_file(dir, name, text, strlen(text));
}

static int group_setup(void **state)
{
    (void)state;
    video_log_setup(LOG_LVL_ERROR);
    log_set_level(LOG_LVL_ERROR);
    snprintf(set_dir, sizeof set_dir, "/tmp/actiond-dsset-XXXXXX");
    if (!mkdtemp(set_dir))
        return -1;
    struct video_synth_opts o;
    video_synth_opts_default(&o);
    o.classes = SET_CLASSES;
    o.clips_per_class = SET_CLIPS;
    o.width = 64;
    o.height = 48;
    o.seconds = 1.0;
    o.test_fraction = 0.34;
    struct err_msg em = {{0}};
    int rc = video_synth_dataset(set_dir, &o, &em);
    if (rc < 0)
        fprintf(stderr, "synth: %s\n", err_text(&em, rc));
    return rc;
}

static int group_teardown(void **state)
{
    (void)state;
    rm_rf(set_dir);
    return 0;
}

/* ---- capturing the log ---- */

struct capture {
    int saved;
    char path[64];
};

static void capture_start(struct capture *c)
{
    snprintf(c->path, sizeof c->path, "/tmp/actiond-log-XXXXXX");
    int fd = mkstemp(c->path);
    assert_true(fd >= 0);
    c->saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
    log_set_level(LOG_LVL_WARN);
}

/* Restores stderr and returns what was logged (caller frees). */
static char *capture_end(struct capture *c)
{
    log_set_level(LOG_LVL_ERROR);
    dup2(c->saved, STDERR_FILENO);
    close(c->saved);
    FILE *f = fopen(c->path, "rb");
    assert_non_null(f);
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    unlink(c->path);
    return buf;
}

/* ---- a fake set for list parsing: files that exist, never decoded ---- */

static const char *const fake_classes[3] = {"bend", "jack", "jump"};

static void fake_set(char *dir, size_t cap)
{
    temp_dir(dir, cap);
    for (int c = 0; c < 3; c++) {
        char sub[256];
        snprintf(sub, sizeof sub, "%s/%s", dir, fake_classes[c]);
        assert_int_equal(mkdir(sub, 0755), 0);
        for (int j = 0; j < 3; j++) {
            char name[64];
            snprintf(name, sizeof name, "%s/%c.mp4", fake_classes[c], 'a' + j);
            put_text(dir, name, "x");
        }
    }
    put_text(dir, "classInd.txt", "1 bend\n2 jack\n3 jump\n");
}

static int open_err(const char *dir, const char *split, struct err_msg *em)
{
    struct video_dataset *ds = NULL;
    memset(em, 0, sizeof *em);
    int rc = video_dataset_open(dir, split, &ds, em);
    video_dataset_free(ds);
    return rc;
}

/* The open fails with code and a message holding `words`. */
static void expect_list_error(const char *dir, const char *file, const char *text, int code,
                              const char *words)
{
    put_text(dir, file, text);
    struct err_msg em;
    int rc = open_err(dir, "all", &em);
    if (rc != code || !strstr(em.text, words))
        fail_msg("%s: got %s '%s', want %s with '%s'", file, err_name(rc), em.text, err_name(code),
                 words);
}

static struct video_dataset *open_ok(const char *dir, const char *split)
{
    struct video_dataset *ds = NULL;
    struct err_msg em = {{0}};
    int rc = video_dataset_open(dir, split, &ds, &em);
    if (rc < 0)
        fail_msg("%s: %s", dir, err_text(&em, rc));
    return ds;
}

/* ---- data set lists ---- */

static void test_dataset_synth_splits(void **state)
{
    (void)state;
    struct video_dataset *tr = open_ok(set_dir, "train"), *te = open_ok(set_dir, "test");
    struct video_dataset *all = open_ok(set_dir, "all");
    assert_int_equal(video_dataset_count(tr), SET_CLASSES * (SET_CLIPS - 1));
    assert_int_equal(video_dataset_count(te), SET_CLASSES);
    assert_int_equal(video_dataset_count(all), SET_CLASSES * SET_CLIPS);
    assert_int_equal(video_dataset_class_count(tr), SET_CLASSES);
    assert_string_equal(video_dataset_class_name(tr, 0), "bend");
    assert_string_equal(video_dataset_class_name(tr, 2), "jump");
    assert_null(video_dataset_class_name(tr, 3));
    for (int i = 0; i < video_dataset_count(all); i++) {
        const char *rel = video_dataset_relpath(all, i);
        int label = video_dataset_label(all, i);
        const char *cls = video_dataset_class_name(all, label);
        /* The label is the folder's class; the path is the folder plus the relative path. */
        assert_memory_equal(rel, cls, strlen(cls));
        assert_int_equal(rel[strlen(cls)], '/');
        const char *path = video_dataset_path(all, i);
        assert_int_equal(path[0], '/');
        assert_string_equal(path + strlen(video_dataset_dir(all)) + 1, rel);
    }
    /* The test list carries no labels: they come from the folder through classInd. */
    assert_string_equal(video_dataset_relpath(te, 1), "jack/jack_002.mp4");
    assert_int_equal(video_dataset_label(te, 1), 1);
    assert_null(video_dataset_path(tr, -1));
    assert_int_equal(video_dataset_label(tr, 99), -1);
    assert_int_equal(video_dataset_skipped(tr), 0);
    struct err_msg em;
    assert_int_equal(open_err(set_dir, "val", &em), ERR_INVAL);
    assert_int_equal(open_err("/nonexistent/actiond", "train", &em), ERR_NOTFOUND);
    video_dataset_free(tr);
    video_dataset_free(te);
    video_dataset_free(all);
    video_dataset_free(NULL);
}

static void test_classind_errors(void **state)
{
    (void)state;
    char dir[64];
    fake_set(dir, sizeof dir);
    put_text(dir, "trainlist.txt", "bend/a.mp4 1\n");
    const char *f = "classInd.txt";
    expect_list_error(dir, f, "1 bend\n2\n", ERR_FORMAT, "classInd.txt:2: expected 'INDEX NAME'");
    expect_list_error(dir, f, "1 bend\nx jack\n", ERR_FORMAT, "classInd.txt:2: index 'x' is not a number");
    expect_list_error(dir, f, "1 bend\n0 jack\n", ERR_RANGE, "classInd.txt:2: index 0 out of range 1..1000");
    expect_list_error(dir, f, "1 bend\n1001 jack\n", ERR_RANGE, "classInd.txt:2: index 1001 out of range");
    expect_list_error(dir, f, "1 bend\n\n1 jack\n", ERR_FORMAT, "classInd.txt:3: class 1 listed twice (first on line 1)");
    expect_list_error(dir, f, "1 bend\n2 bend\n", ERR_FORMAT, "classInd.txt:2: class name 'bend' listed twice");
    expect_list_error(dir, f, "1 bend\n3 jump\n", ERR_FORMAT, "classes must be numbered 1..3: 2 is missing");
    expect_list_error(dir, f, "# nothing\n\n", ERR_FORMAT, "classInd.txt: no classes");
    expect_list_error(dir, f, "1 bend\n2 a/b\n", ERR_FORMAT, "classInd.txt:2: class name 'a/b' contains '/'");
    expect_list_error(dir, f, "1 ..\n", ERR_FORMAT, "classInd.txt:1: class name '..' is not a folder name");
    char longname[200];
    snprintf(longname, sizeof longname, "1 %0100d\n", 7);
    expect_list_error(dir, f, longname, ERR_FORMAT, "classInd.txt:1: class name longer than 63 bytes");
    /* A line over the bound, and binary junk. */
    char *big = malloc(VIDEO_DATASET_MAX_LINE + 16);
    memset(big, 'a', VIDEO_DATASET_MAX_LINE + 8);
    memcpy(big, "1 bend\n2 ", 9);
    big[VIDEO_DATASET_MAX_LINE + 8] = '\n';
    put_file(dir, f, big, VIDEO_DATASET_MAX_LINE + 9);
    struct err_msg em;
    assert_int_equal(open_err(dir, "train", &em), ERR_RANGE);
    assert_non_null(strstr(em.text, "classInd.txt:2: line longer than 1024 bytes"));
    put_file(dir, f, "1 bend\n2 ja\0ck\n", 15);
    assert_int_equal(open_err(dir, "train", &em), ERR_FORMAT);
    assert_non_null(strstr(em.text, "classInd.txt:2: NUL byte"));
    free(big);
    rm_rf(dir);
}

static void test_list_errors(void **state)
{
    (void)state;
    char dir[64];
    fake_set(dir, sizeof dir);
    put_text(dir, "testlist.txt", "bend/c.mp4\n");
    const char *t = "trainlist.txt";
    expect_list_error(dir, t, "bend/a.mp4 1\nbend/b.mp4 4\n", ERR_RANGE,
                      "trainlist.txt:2: label 4 out of range 1..3");
    expect_list_error(dir, t, "bend/a.mp4 0\n", ERR_RANGE, "trainlist.txt:1: label 0 out of range 1..3");
    expect_list_error(dir, t, "bend/a.mp4 one\n", ERR_FORMAT, "trainlist.txt:1: label 'one' is not a number");
    expect_list_error(dir, t, "bend/a.mp4 1 2\n", ERR_FORMAT, "trainlist.txt:1: expected 'Class/clip.ext [LABEL]'");
    expect_list_error(dir, t, "bend/a.mp4 1\n# c\nbend/a.mp4 1\n", ERR_FORMAT,
                      "trainlist.txt:3: 'bend/a.mp4' listed twice (first on line 1)");
    expect_list_error(dir, t, "bend/a.mp4 2\n", ERR_FORMAT,
                      "trainlist.txt:1: label 2 (jack) but the clip is in folder 'bend'");
    expect_list_error(dir, t, "a.mp4\n", ERR_FORMAT, "trainlist.txt:1: no label, and 'a.mp4' is not in a class folder");
    put_text(dir, t, "bend/a.mp4 1\n");
    expect_list_error(dir, "testlist.txt", "bend/c.mp4\nwalk/x.mp4\n", ERR_FORMAT,
                      "testlist.txt:2: no label, and 'walk/x.mp4' is not in a class folder");
    /* A label outside a class folder is taken as given. */
    put_text(dir, "testlist.txt", "bend/c.mp4\n");
    char other[300];
    snprintf(other, sizeof other, "%s/misc", dir);
    assert_int_equal(mkdir(other, 0755), 0);
    put_text(dir, "misc/z.mp4", "x");
    put_text(dir, t, "misc/z.mp4 3\n");
    struct video_dataset *ds = open_ok(dir, "train");
    assert_int_equal(video_dataset_label(ds, 0), 2);
    video_dataset_free(ds);
    rm_rf(dir);
}

static void test_list_path_traversal_refused(void **state)
{
    (void)state;
    char dir[64];
    fake_set(dir, sizeof dir);
    const char *t = "trainlist.txt";
    expect_list_error(dir, t, "bend/a.mp4 1\n/etc/passwd 1\n", ERR_INVAL,
                      "trainlist.txt:2: path '/etc/passwd' is absolute");
    expect_list_error(dir, t, "../../etc/passwd 1\n", ERR_INVAL, "trainlist.txt:1: path '../../etc/passwd' has a '..' component");
    expect_list_error(dir, t, "bend/../../x.mp4 1\n", ERR_INVAL, "has a '..' component");
    expect_list_error(dir, t, "bend/..\n", ERR_INVAL, "has a '..' component");
    expect_list_error(dir, t, "./bend/a.mp4 1\n", ERR_INVAL, "has a '.' component");
    expect_list_error(dir, t, "bend//a.mp4 1\n", ERR_INVAL, "has an empty component");
    put_text(dir, t, "bend/a.mp4 1\n");
    expect_list_error(dir, "testlist.txt", "bend/a.mp4\n\n\n../jack/a.mp4\n", ERR_INVAL,
                      "testlist.txt:4: path '../jack/a.mp4' has a '..' component");
    rm_rf(dir);
}

static void test_list_syntax_tolerated(void **state)
{
    (void)state;
    char dir[64];
    fake_set(dir, sizeof dir);
    /* A BOM, CR LF endings, comments, blank lines, tabs, trailing blanks, no final newline. */
    put_text(dir, "classInd.txt", "\xEF\xBB\xBF" "1 bend\r\n2 jack\r\n\r\n3\tjump  \r\n");
    put_text(dir, "trainlist.txt", "# train\r\nbend/a.mp4 1\r\n  jack/a.mp4\t2 \r\njump/a.mp4 3");
    put_text(dir, "testlist.txt", "bend/b.mp4\r\n");
    struct video_dataset *ds = open_ok(dir, "train");
    assert_int_equal(video_dataset_count(ds), 3);
    assert_string_equal(video_dataset_relpath(ds, 1), "jack/a.mp4");
    assert_int_equal(video_dataset_label(ds, 2), 2);
    assert_string_equal(video_dataset_class_name(ds, 2), "jump");
    video_dataset_free(ds);
    rm_rf(dir);
}

static void test_missing_clip_skipped_with_warning(void **state)
{
    (void)state;
    char dir[64];
    fake_set(dir, sizeof dir);
    char sub[128];
    snprintf(sub, sizeof sub, "%s/jump/sub", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    put_text(dir, "trainlist.txt", "bend/a.mp4 1\njack/gone.mp4 2\njump/a.mp4 3\njump/sub 3\n");
    put_text(dir, "testlist.txt", "bend/b.mp4\n");
    struct capture cap;
    capture_start(&cap);
    struct video_dataset *ds = NULL;
    struct err_msg em = {{0}};
    int rc = video_dataset_open(dir, "train", &ds, &em);
    char *log = capture_end(&cap);
    assert_int_equal(rc, 0);
    assert_int_equal(video_dataset_count(ds), 2);
    assert_int_equal(video_dataset_skipped(ds), 2);
    assert_non_null(strstr(log, "trainlist.txt:2: jack/gone.mp4: No such file or directory; skipped"));
    assert_non_null(strstr(log, "trainlist.txt:4: jump/sub: not a regular file; skipped"));
    free(log);
    video_dataset_free(ds);
    /* An empty file is no clip either. */
    put_text(dir, "jack/empty.mp4", "");
    put_text(dir, "trainlist.txt", "jack/empty.mp4 2\n");
    capture_start(&cap);
    rc = open_err(dir, "train", &em);
    log = capture_end(&cap);
    assert_int_equal(rc, ERR_NOTFOUND);
    assert_non_null(strstr(log, "jack/empty.mp4: empty file; skipped"));
    assert_non_null(strstr(em.text, "no readable clips in split 'train' (every listed clip was skipped)"));
    free(log);
    rm_rf(dir);
}

static void test_empty_set_is_an_error(void **state)
{
    (void)state;
    char dir[64];
    fake_set(dir, sizeof dir);
    struct capture cap;
    put_text(dir, "trainlist.txt", "bend/x.mp4 1\njack/y.mp4 2\n");
    put_text(dir, "testlist.txt", "# none yet\n");
    struct err_msg em;
    capture_start(&cap);
    int rc = open_err(dir, "train", &em);
    free(capture_end(&cap));
    assert_int_equal(rc, ERR_NOTFOUND);
    assert_non_null(strstr(em.text, "no readable clips in split 'train'"));
    assert_int_equal(open_err(dir, "test", &em), ERR_NOTFOUND);
    rm_rf(dir);
}

static void test_missing_lists_use_the_folders(void **state)
{
    (void)state;
    char dir[64];
    fake_set(dir, sizeof dir);
    put_text(dir, "bend/notes.txt", "not a clip");
    /* No lists at all: every split is every clip, in class then name order. */
    struct video_dataset *ds = open_ok(dir, "test");
    assert_int_equal(video_dataset_count(ds), 9);
    assert_string_equal(video_dataset_relpath(ds, 0), "bend/a.mp4");
    assert_string_equal(video_dataset_relpath(ds, 8), "jump/c.mp4");
    assert_int_equal(video_dataset_label(ds, 4), 1);
    video_dataset_free(ds);
    /* Only a test list: train is the rest of the folders. */
    put_text(dir, "testlist.txt", "bend/a.mp4\njump/c.mp4\n");
    ds = open_ok(dir, "train");
    assert_int_equal(video_dataset_count(ds), 7);
    for (int i = 0; i < 7; i++) {
        assert_string_not_equal(video_dataset_relpath(ds, i), "bend/a.mp4");
        assert_string_not_equal(video_dataset_relpath(ds, i), "jump/c.mp4");
    }
    video_dataset_free(ds);
    ds = open_ok(dir, "all");
    assert_int_equal(video_dataset_count(ds), 9);
    video_dataset_free(ds);
    /* Only a train list: test is the rest. */
    char path[128];
    snprintf(path, sizeof path, "%s/testlist.txt", dir);
    unlink(path);
    put_text(dir, "trainlist.txt", "bend/a.mp4 1\nbend/b.mp4 1\njack/a.mp4 2\njack/b.mp4 2\n"
                                   "jump/a.mp4 3\njump/b.mp4 3\n");
    ds = open_ok(dir, "test");
    assert_int_equal(video_dataset_count(ds), 3);
    assert_string_equal(video_dataset_relpath(ds, 2), "jump/c.mp4");
    video_dataset_free(ds);
    /* No classInd.txt: the subfolders, sorted, are the classes; hidden ones (the loader's
     * .actiond-cache) are not. */
    snprintf(path, sizeof path, "%s/classInd.txt", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/.actiond-cache", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    ds = open_ok(dir, "train");
    assert_int_equal(video_dataset_class_count(ds), 3);
    assert_string_equal(video_dataset_class_name(ds, 1), "jack");
    video_dataset_free(ds);
    rm_rf(dir);
}

static void test_all_keeps_overlap_once(void **state)
{
    (void)state;
    char dir[64];
    fake_set(dir, sizeof dir);
    put_text(dir, "trainlist.txt", "bend/a.mp4 1\njack/a.mp4 2\n");
    put_text(dir, "testlist.txt", "jack/a.mp4\njump/a.mp4\n");
    struct capture cap;
    capture_start(&cap);
    struct video_dataset *ds = open_ok(dir, "all");
    char *log = capture_end(&cap);
    assert_int_equal(video_dataset_count(ds), 3);
    assert_non_null(strstr(log, "1 clips are in both lists (jack/a.mp4 first); kept once"));
    free(log);
    video_dataset_free(ds);
    rm_rf(dir);
}

static void test_split_deterministic_and_stratified(void **state)
{
    (void)state;
    char dir[64];
    temp_dir(dir, sizeof dir);
    /* 4 classes of 10, 5, 2 and 1 clips. */
    static const int sizes[4] = {10, 5, 2, 1};
    char ind[128] = "", list[4096] = "";
    for (int c = 0; c < 4; c++) {
        char sub[128];
        snprintf(sub, sizeof sub, "%s/c%d", dir, c);
        assert_int_equal(mkdir(sub, 0755), 0);
        snprintf(ind + strlen(ind), sizeof ind - strlen(ind), "%d c%d\n", c + 1, c);
        for (int j = 0; j < sizes[c]; j++) {
            char name[64];
            snprintf(name, sizeof name, "c%d/v%02d.mp4", c, j);
            put_text(dir, name, "x");
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s %d\n", name, c + 1);
        }
    }
    put_text(dir, "classInd.txt", ind);
    put_text(dir, "trainlist.txt", list);
    struct video_dataset *ds = open_ok(dir, "train");
    int n = video_dataset_count(ds);
    assert_int_equal(n, 18);
    int tr[18], va[18], tr2[18], va2[18], nt, nv, nt2, nv2;
    assert_int_equal(video_dataset_split(ds, 0.2, 7, tr, &nt, va, &nv, NULL), 0);
    /* round(n * 0.2) within [1, n-1]: 2, 1, 1, 0. */
    int per[4] = {0};
    for (int i = 0; i < nv; i++)
        per[video_dataset_label(ds, va[i])]++;
    assert_int_equal(per[0], 2);
    assert_int_equal(per[1], 1);
    assert_int_equal(per[2], 1);
    assert_int_equal(per[3], 0);
    assert_int_equal(nt + nv, n);
    /* A partition, both sides ascending. */
    int seen[18] = {0};
    for (int i = 0; i < nt; i++) {
        seen[tr[i]]++;
        if (i)
            assert_true(tr[i] > tr[i - 1]);
    }
    for (int i = 0; i < nv; i++) {
        seen[va[i]]++;
        if (i)
            assert_true(va[i] > va[i - 1]);
    }
    for (int i = 0; i < n; i++)
        assert_int_equal(seen[i], 1);
    /* Same seed, same split; another seed, another split (of class 0's 10 clips). */
    assert_int_equal(video_dataset_split(ds, 0.2, 7, tr2, &nt2, va2, &nv2, NULL), 0);
    assert_int_equal(nv2, nv);
    assert_memory_equal(va2, va, (size_t)nv * sizeof(int));
    int differs = 0;
    for (uint64_t seed = 8; seed < 12; seed++) {
        assert_int_equal(video_dataset_split(ds, 0.2, seed, tr2, &nt2, va2, &nv2, NULL), 0);
        differs |= memcmp(va2, va, (size_t)nv * sizeof(int)) != 0;
    }
    assert_true(differs);
    assert_int_equal(video_dataset_split(ds, 0.0, 7, tr2, &nt2, va2, &nv2, NULL), 0);
    assert_int_equal(nt2, n);
    assert_int_equal(nv2, 0);
    struct err_msg em = {{0}};
    assert_int_equal(video_dataset_split(ds, 0.95, 7, tr2, &nt2, va2, &nv2, &em), ERR_RANGE);
    video_dataset_free(ds);
    rm_rf(dir);
}

/* ---- the cache ---- */

static struct video_cache *cache_make(const char *dir, int mv, size_t ram)
{
    struct video_cache_opts o = {.dir = dir, .width = MW, .height = MH, .fps = 25.0,
                                 .motion_vectors = mv, .ram_bytes = ram};
    struct video_cache *c = NULL;
    struct err_msg em = {{0}};
    int rc = video_cache_new(&o, &c, &em);
    if (rc < 0)
        fail_msg("%s", err_text(&em, rc));
    return c;
}

static void clip_path(char *buf, size_t cap, int cls, int j)
{
    snprintf(buf, cap, "%s/%s/%s_%03d.mp4", set_dir, video_synth_class_name(cls),
             video_synth_class_name(cls), j);
}

/* Opens path through r and copies every sample's RGB (and MV) out; returns the count. */
static int read_clip(struct video_cache_reader *r, const char *path, uint8_t *rgb, int16_t *mv)
{
    int n = 0;
    struct err_msg em = {{0}};
    int rc = video_cache_reader_open(r, path, &n, &em);
    if (rc < 0)
        fail_msg("%s", err_text(&em, rc));
    size_t fb = (size_t)MW * MH * 3, mvn = (size_t)MW * MH * 2;
    for (int i = 0; i < n; i++) {
        const uint8_t *p;
        const int16_t *q;
        rc = video_cache_reader_sample(r, i, &p, &q, &em);
        if (rc < 0)
            fail_msg("%s", err_text(&em, rc));
        memcpy(rgb + (size_t)i * fb, p, fb);
        if (mv)
            memcpy(mv + (size_t)i * mvn, q, mvn * sizeof *q);
    }
    return n;
}

struct cache_fx {
    char dir[64];
    char src[256];
    char entry[512];
    struct video_cache *c;
    struct video_cache_reader *r;
    uint8_t *ref, *got;
    int n;
};

static void cache_fx_open(struct cache_fx *f, int mv)
{
    temp_dir(f->dir, sizeof f->dir);
    clip_path(f->src, sizeof f->src, 1, 0);
    f->c = cache_make(f->dir, mv, 0);
    assert_int_equal(video_cache_reader_new(f->c, NULL, &f->r, NULL), 0);
    assert_int_equal(video_cache_entry_path(f->c, f->src, f->entry, sizeof f->entry, NULL), 0);
    f->ref = malloc((size_t)VIDEO_CACHE_MAX_SAMPLES * MW * MH * 3);
    f->got = malloc((size_t)VIDEO_CACHE_MAX_SAMPLES * MW * MH * 3);
    f->n = read_clip(f->r, f->src, f->ref, NULL);
}

static void cache_fx_close(struct cache_fx *f)
{
    video_cache_reader_free(f->r);
    video_cache_free(f->c);
    free(f->ref);
    free(f->got);
    rm_rf(f->dir);
}

static void flip_byte(const char *path, long off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char b;
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= 0x5a;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

static void test_cache_hit_after_first_decode(void **state)
{
    (void)state;
    struct cache_fx f;
    cache_fx_open(&f, 0);
    struct video_cache_stats st;
    video_cache_stats(f.c, &st);
    assert_int_equal(st.decodes, 1);
    assert_int_equal(st.disk_hits, 0);
    assert_int_equal(f.n, 25); /* 1 s at 25 fps */
    struct stat sb;
    assert_int_equal(stat(f.entry, &sb), 0);
    /* Read back from the entry, by this reader and a new cache on the same folder. */
    assert_int_equal(read_clip(f.r, f.src, f.got, NULL), f.n);
    assert_memory_equal(f.got, f.ref, (size_t)f.n * MW * MH * 3);
    struct video_cache *c2 = cache_make(f.dir, 0, 0);
    struct video_cache_reader *r2 = NULL;
    assert_int_equal(video_cache_reader_new(c2, NULL, &r2, NULL), 0);
    assert_int_equal(read_clip(r2, f.src, f.got, NULL), f.n);
    assert_memory_equal(f.got, f.ref, (size_t)f.n * MW * MH * 3);
    video_cache_stats(f.c, &st);
    assert_int_equal(st.decodes, 1);
    assert_int_equal(st.disk_hits, 1);
    video_cache_stats(c2, &st);
    assert_int_equal(st.decodes, 0);
    assert_int_equal(st.disk_hits, 1);
    /* Another setting is another entry: the mv cache decodes the clip for itself. */
    struct video_cache *c3 = cache_make(f.dir, 1, 0);
    char other[512];
    assert_int_equal(video_cache_entry_path(c3, f.src, other, sizeof other, NULL), 0);
    assert_string_not_equal(other, f.entry);
    video_cache_reader_free(r2);
    video_cache_free(c2);
    video_cache_free(c3);
    cache_fx_close(&f);
}

static void test_cache_stale_entry_redecoded(void **state)
{
    (void)state;
    struct cache_fx f;
    cache_fx_open(&f, 0);
    /* A source that changed (a new mtime is enough) invalidates its entry. */
    char copy[300];
    snprintf(copy, sizeof copy, "%s/clip.mp4", f.dir);
    struct stat sb;
    assert_int_equal(stat(f.src, &sb), 0);
    FILE *in = fopen(f.src, "rb"), *out = fopen(copy, "wb");
    char buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, in)) > 0)
        fwrite(buf, 1, k, out);
    fclose(in);
    fclose(out);
    assert_int_equal(read_clip(f.r, copy, f.got, NULL), f.n);
    struct timespec ts[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
    assert_int_equal(utimensat(AT_FDCWD, copy, ts, 0), 0);
    assert_int_equal(read_clip(f.r, copy, f.got, NULL), f.n);
    assert_memory_equal(f.got, f.ref, (size_t)f.n * MW * MH * 3);
    struct video_cache_stats st;
    video_cache_stats(f.c, &st);
    assert_int_equal(st.stale, 1);
    assert_int_equal(st.decodes, 3);
    /* The new entry holds: no more decodes. */
    assert_int_equal(read_clip(f.r, copy, f.got, NULL), f.n);
    video_cache_stats(f.c, &st);
    assert_int_equal(st.decodes, 3);
    assert_int_equal(st.disk_hits, 1);
    cache_fx_close(&f);
}

static void test_cache_corrupt_entry_redecoded(void **state)
{
    (void)state;
    struct cache_fx f;
    cache_fx_open(&f, 1);
    struct video_cache_stats st;
    struct capture cap;
    /* A byte of the header (the path): refused on open. */
    flip_byte(f.entry, 70);
    capture_start(&cap);
    assert_int_equal(read_clip(f.r, f.src, f.got, NULL), f.n);
    char *log = capture_end(&cap);
    assert_non_null(strstr(log, "is damaged (bad header); decoding again"));
    free(log);
    assert_memory_equal(f.got, f.ref, (size_t)f.n * MW * MH * 3);
    video_cache_stats(f.c, &st);
    assert_int_equal(st.corrupt, 1);
    assert_int_equal(st.decodes, 2);
    /* A byte of the last sample's pixels: found when that sample is read, answered from a fresh
     * decode, identical. */
    struct stat sb;
    assert_int_equal(stat(f.entry, &sb), 0);
    flip_byte(f.entry, (long)sb.st_size - 100);
    capture_start(&cap);
    assert_int_equal(read_clip(f.r, f.src, f.got, NULL), f.n);
    log = capture_end(&cap);
    assert_non_null(strstr(log, "is damaged (a sample's CRC)"));
    free(log);
    assert_memory_equal(f.got, f.ref, (size_t)f.n * MW * MH * 3);
    video_cache_stats(f.c, &st);
    assert_int_equal(st.corrupt, 2);
    assert_int_equal(st.decodes, 3);
    /* Cut short: refused before reading. */
    assert_int_equal(truncate(f.entry, sb.st_size - 1), 0);
    capture_start(&cap);
    assert_int_equal(read_clip(f.r, f.src, f.got, NULL), f.n);
    free(capture_end(&cap));
    video_cache_stats(f.c, &st);
    assert_int_equal(st.corrupt, 3);
    assert_int_equal(st.decodes, 4);
    /* And the fresh entry is good again. */
    assert_int_equal(read_clip(f.r, f.src, f.got, NULL), f.n);
    video_cache_stats(f.c, &st);
    assert_int_equal(st.decodes, 4);
    cache_fx_close(&f);
}

static void test_cache_version_mismatch_redecoded(void **state)
{
    (void)state;
    struct cache_fx f;
    cache_fx_open(&f, 0);
    int fd = open(f.entry, O_RDWR);
    unsigned char v[4] = {VIDEO_CACHE_VERSION + 1, 0, 0, 0};
    assert_int_equal(pwrite(fd, v, 4, 8), 4);
    close(fd);
    assert_int_equal(read_clip(f.r, f.src, f.got, NULL), f.n);
    struct video_cache_stats st;
    video_cache_stats(f.c, &st);
    assert_int_equal(st.version, 1);
    assert_int_equal(st.corrupt, 0);
    assert_int_equal(st.decodes, 2);
    unsigned char head[12];
    fd = open(f.entry, O_RDONLY);
    assert_int_equal(pread(fd, head, 12, 0), 12);
    close(fd);
    assert_memory_equal(head, "ACTDCLIP", 8);
    assert_int_equal(head[8], VIDEO_CACHE_VERSION);
    cache_fx_close(&f);
}

static void test_cache_ram_tier(void **state)
{
    (void)state;
    char dir[64];
    temp_dir(dir, sizeof dir);
    char a[256], b[256];
    clip_path(a, sizeof a, 0, 0);
    clip_path(b, sizeof b, 0, 1);
    size_t one = (size_t)25 * MW * MH * 3;
    /* Room for one clip: the first stays, the second is read from its entry every time. */
    struct video_cache *c = cache_make(dir, 0, one + one / 2);
    struct video_cache_reader *r = NULL;
    assert_int_equal(video_cache_reader_new(c, NULL, &r, NULL), 0);
    uint8_t *ref = malloc(one), *got = malloc(one);
    read_clip(r, a, ref, NULL);
    read_clip(r, b, got, NULL);
    read_clip(r, a, got, NULL);
    assert_memory_equal(got, ref, one);
    read_clip(r, b, got, NULL);
    struct video_cache_stats st;
    video_cache_stats(c, &st);
    assert_int_equal(st.decodes, 2);
    assert_int_equal(st.ram_hits, 1);
    assert_int_equal(st.disk_hits, 1);
    assert_int_equal(st.ram_entries, 1);
    assert_int_equal(st.ram_used, one);
    video_cache_reader_free(r);
    video_cache_free(c);
    /* A new cache with room for both fills its RAM from the entries. */
    c = cache_make(dir, 0, 4 * one);
    assert_int_equal(video_cache_reader_new(c, NULL, &r, NULL), 0);
    read_clip(r, a, got, NULL);
    read_clip(r, b, got, NULL);
    read_clip(r, a, got, NULL);
    assert_memory_equal(got, ref, one);
    video_cache_stats(c, &st);
    assert_int_equal(st.decodes, 0);
    assert_int_equal(st.disk_hits, 2);
    assert_int_equal(st.ram_hits, 1);
    assert_int_equal(st.ram_entries, 2);
    video_cache_reader_free(r);
    video_cache_free(c);
    free(ref);
    free(got);
    rm_rf(dir);
}

static void test_cache_errors(void **state)
{
    (void)state;
    char dir[64];
    temp_dir(dir, sizeof dir);
    struct video_cache *c = cache_make(dir, 0, 0);
    struct video_cache_reader *r = NULL;
    assert_int_equal(video_cache_reader_new(c, NULL, &r, NULL), 0);
    struct err_msg em = {{0}};
    int n = -1;
    const uint8_t *p;
    const int16_t *q;
    assert_int_equal(video_cache_reader_sample(r, 0, &p, &q, &em), ERR_INVAL);
    assert_int_equal(video_cache_reader_open(r, "/nonexistent/a.mp4", &n, &em), ERR_NOTFOUND);
    put_text(dir, "junk.mp4", "this is not a video at all, only some bytes of text");
    char junk[128];
    snprintf(junk, sizeof junk, "%s/junk.mp4", dir);
    assert_int_equal(video_cache_reader_open(r, junk, &n, &em), ERR_FORMAT);
    char src[256];
    clip_path(src, sizeof src, 0, 0);
    assert_int_equal(video_cache_reader_open(r, src, &n, &em), 0);
    assert_int_equal(video_cache_reader_sample(r, n, &p, &q, &em), ERR_RANGE);
    video_cache_reader_free(r);
    video_cache_reader_free(NULL);
    video_cache_free(c);
    video_cache_free(NULL);
    struct video_cache_opts o = {.dir = dir, .width = 2000, .height = MH, .fps = 25};
    assert_int_equal(video_cache_new(&o, &c, &em), ERR_RANGE);
    o.width = MW;
    o.fps = 0;
    assert_int_equal(video_cache_new(&o, &c, &em), ERR_RANGE);
    o.fps = 25;
    o.dir = junk; /* a file, not a folder */
    assert_int_equal(video_cache_new(&o, &c, &em), ERR_IO);
    rm_rf(dir);
}

/* ---- augmentation ---- */

#define AW 16
#define AH 12

static void test_augment_flip_mirrors_rgb_and_negates_mv(void **state)
{
    (void)state;
    uint8_t src[AH][AW][3], dst[AH][AW][3];
    int16_t mv[2][AH][AW];
    float out[2][AH][AW];
    for (int y = 0; y < AH; y++)
        for (int x = 0; x < AW; x++) {
            for (int c = 0; c < 3; c++)
                src[y][x][c] = (uint8_t)(x * 13 + y * 7 + c * 50);
            mv[0][y][x] = (int16_t)(x * 3 - y); /* in 1/32 pixel */
            mv[1][y][x] = (int16_t)(y * 5 + x);
        }
    struct video_augment a = {0, 0, AW, AH, 1};
    video_augment_rgb(&a, &src[0][0][0], AW, AH, &dst[0][0][0]);
    video_augment_mv(&a, &mv[0][0][0], AW, AH, &out[0][0][0]);
    for (int y = 0; y < AH; y++)
        for (int x = 0; x < AW; x++) {
            assert_memory_equal(dst[y][x], src[y][AW - 1 - x], 3);
            assert_float_equal(out[0][y][x], -mv[0][y][AW - 1 - x] / 32.0f, 1e-6);
            assert_float_equal(out[1][y][x], mv[1][y][AW - 1 - x] / 32.0f, 1e-6);
        }
    /* Evaluation's identity is an exact copy. */
    video_augment_identity(AW, AH, &a);
    assert_int_equal(a.w, AW);
    assert_int_equal(a.flip, 0);
    video_augment_rgb(&a, &src[0][0][0], AW, AH, &dst[0][0][0]);
    assert_memory_equal(dst, src, sizeof src);
    video_augment_mv(&a, &mv[0][0][0], AW, AH, &out[0][0][0]);
    for (int y = 0; y < AH; y++)
        for (int x = 0; x < AW; x++)
            assert_float_equal(out[0][y][x], mv[0][y][x] / 32.0f, 1e-6);
}

static void test_augment_crop_scales_and_keeps_size(void **state)
{
    (void)state;
    uint8_t src[AH][AW][3], dst[AH][AW][3];
    int16_t mv[2][AH][AW];
    float out[2][AH][AW];
    /* A horizontal ramp: a crop of its middle half, stretched to the frame, is a steeper ramp
     * over the crop's values, still increasing. */
    for (int y = 0; y < AH; y++)
        for (int x = 0; x < AW; x++) {
            for (int c = 0; c < 3; c++)
                src[y][x][c] = (uint8_t)(x * 16);
            mv[0][y][x] = 32; /* 1 pixel right */
            mv[1][y][x] = -64; /* 2 pixels up */
        }
    struct video_augment a = {4, 3, AW / 2, AH / 2, 0};
    memset(dst, 0, sizeof dst);
    video_augment_rgb(&a, &src[0][0][0], AW, AH, &dst[0][0][0]);
    for (int y = 0; y < AH; y++)
        for (int x = 0; x < AW; x++) {
            assert_in_range(dst[y][x][0], 4 * 16, (4 + AW / 2 - 1) * 16);
            if (x > 0)
                assert_true(dst[y][x][0] >= dst[y][x - 1][0]);
            assert_int_equal(dst[y][x][0], dst[0][x][0]);
        }
    assert_true(dst[0][AW - 1][0] - dst[0][0][0] >= (AW / 2 - 2) * 16);
    /* Motion stretches with the picture: x2 both ways here. */
    video_augment_mv(&a, &mv[0][0][0], AW, AH, &out[0][0][0]);
    for (int y = 0; y < AH; y++)
        for (int x = 0; x < AW; x++) {
            assert_float_equal(out[0][y][x], 2.0f, 1e-5);
            assert_float_equal(out[1][y][x], -4.0f, 1e-5);
        }
    /* Random draws: inside the frame, area and aspect within their bounds, both mirrors seen,
     * the same for the same seed. */
    int flips = 0;
    for (uint64_t s = 1; s <= 300; s++) {
        uint64_t r1 = s, r2 = s;
        struct video_augment b, c;
        video_augment_random(&r1, 112, 112, &b);
        video_augment_random(&r2, 112, 112, &c);
        assert_memory_equal(&b, &c, sizeof b);
        assert_true(b.x >= 0 && b.y >= 0 && b.x + b.w <= 112 && b.y + b.h <= 112);
        double area = (double)b.w * b.h / (112.0 * 112.0);
        assert_true(area >= 0.8 * 0.86 && area <= 1.0);
        double aspect = (double)b.w / b.h;
        assert_true(aspect >= 0.74 && aspect <= 1.36);
        flips += b.flip;
    }
    assert_in_range(flips, 100, 200);
}

/* ---- the loader ---- */

static void loader_opts(struct video_loader_opts *o, const char *cache_dir)
{
    video_loader_opts_default(o);
    o->width = MW;
    o->height = MH;
    o->segments = 3;
    o->length = 2;
    o->batch = 4;
    o->cache_dir = cache_dir;
}

static struct video_loader *loader_make(const struct video_dataset *ds, const int *idx, int n,
                                        const struct video_loader_opts *o)
{
    struct video_loader *ld = NULL;
    struct err_msg em = {{0}};
    int rc = video_loader_new(ds, idx, n, o, &ld, &em);
    if (rc < 0)
        fail_msg("%s", err_text(&em, rc));
    return ld;
}

static const struct video_batch *next_ok(struct video_loader *ld)
{
    const struct video_batch *b = NULL;
    struct err_msg em = {{0}};
    int rc = video_loader_next(ld, &b, &em);
    if (rc < 0)
        fail_msg("%s", err_text(&em, rc));
    return b;
}

static void test_loader_batch_shapes_and_labels(void **state)
{
    (void)state;
    char cache[64];
    temp_dir(cache, sizeof cache);
    struct video_dataset *ds = open_ok(set_dir, "train");
    struct video_loader_opts o;
    loader_opts(&o, cache);
    o.motion = VIDEO_MOTION_MV;
    struct video_loader *ld = loader_make(ds, NULL, 0, &o);
    /* 6 clips in batches of 4: 4 then 2, the second ending the epoch. */
    for (int e = 0; e < 2; e++) {
        const struct video_batch *b = next_ok(ld);
        assert_int_equal(b->clips, 4);
        assert_int_equal(b->epoch, e);
        assert_int_equal(b->step, 0);
        assert_false(b->epoch_end);
        assert_int_equal(b->segments, 3);
        assert_int_equal(b->length, 2);
        assert_int_equal(b->width, MW);
        assert_int_equal(b->height, MH);
        for (int i = 0; i < b->clips; i++)
            assert_int_equal(b->labels[i], video_dataset_label(ds, b->index[i]));
        /* Every value of both arrays was written, and finite: [B*K][3][H][W], [B*K][2L][H][W]. */
        size_t nr = (size_t)b->clips * 3 * 3 * MW * MH, nm = (size_t)b->clips * 3 * 4 * MW * MH;
        for (size_t i = 0; i < nr; i++)
            assert_true(isfinite(b->rgb[i]));
        for (size_t i = 0; i < nm; i++)
            assert_true(isfinite(b->motion[i]) && fabsf(b->motion[i]) < 100.0f);
        b = next_ok(ld);
        assert_int_equal(b->clips, 2);
        assert_int_equal(b->step, 1);
        assert_true(b->epoch_end);
        for (int i = 0; i < b->clips; i++)
            assert_int_equal(b->labels[i], video_dataset_label(ds, b->index[i]));
    }
    struct video_loader_stats st;
    video_loader_stats(ld, &st);
    assert_int_equal(st.batches, 4);
    assert_int_equal(st.clips, 12);
    assert_int_equal(st.failed, 0);
    video_loader_free(ld);
    video_dataset_free(ds);
    rm_rf(cache);
}

static void test_loader_every_clip_once_per_epoch(void **state)
{
    (void)state;
    char cache[64];
    temp_dir(cache, sizeof cache);
    struct video_dataset *ds = open_ok(set_dir, "all");
    struct video_loader_opts o;
    loader_opts(&o, cache);
    o.threads = 3;
    int n = video_dataset_count(ds), prev[16], order[16];
    struct video_loader *ld = loader_make(ds, NULL, 0, &o);
    for (int e = 0; e < 3; e++) {
        int seen[16] = {0}, k = 0;
        for (;;) {
            const struct video_batch *b = next_ok(ld);
            assert_int_equal(b->epoch, e);
            for (int i = 0; i < b->clips; i++) {
                seen[b->index[i]]++;
                order[k++] = b->index[i];
            }
            if (b->epoch_end)
                break;
        }
        assert_int_equal(k, n);
        for (int i = 0; i < n; i++)
            assert_int_equal(seen[i], 1);
        /* Shuffled anew each epoch. */
        if (e > 0)
            assert_memory_not_equal(order, prev, (size_t)n * sizeof(int));
        memcpy(prev, order, sizeof order);
    }
    video_loader_free(ld);
    /* A subset by index, unshuffled: exactly those clips, in that order. */
    int pick[3] = {7, 2, 4};
    o.shuffle = 0;
    o.batch = 2;
    ld = loader_make(ds, pick, 3, &o);
    const struct video_batch *b = next_ok(ld);
    assert_int_equal(b->index[0], 7);
    assert_int_equal(b->index[1], 2);
    b = next_ok(ld);
    assert_int_equal(b->clips, 1);
    assert_int_equal(b->index[0], 4);
    assert_true(b->epoch_end);
    video_loader_free(ld);
    video_dataset_free(ds);
    rm_rf(cache);
}

/* Two epochs of batches, flattened. */
struct run {
    float *rgb, *motion;
    int *index;
    size_t nr, nm, ni;
};

static void run_collect(struct video_loader *ld, struct run *r, int epochs)
{
    *r = (struct run){0};
    size_t cap = 64;
    r->index = malloc(cap * sizeof(int));
    for (int e = 0; e < epochs;) {
        const struct video_batch *b = next_ok(ld);
        size_t fr = (size_t)b->clips * b->segments * 3 * b->width * b->height;
        size_t fm = (size_t)b->clips * b->segments * 2 * b->length * b->width * b->height;
        r->rgb = realloc(r->rgb, (r->nr + fr) * sizeof(float));
        r->motion = realloc(r->motion, (r->nm + fm) * sizeof(float));
        memcpy(r->rgb + r->nr, b->rgb, fr * sizeof(float));
        memcpy(r->motion + r->nm, b->motion, fm * sizeof(float));
        r->nr += fr;
        r->nm += fm;
        for (int i = 0; i < b->clips; i++)
            r->index[r->ni++] = b->index[i];
        e += b->epoch_end;
    }
}

static void run_free(struct run *r)
{
    free(r->rgb);
    free(r->motion);
    free(r->index);
}

static void test_loader_same_seed_same_batches(void **state)
{
    (void)state;
    char cache[64];
    temp_dir(cache, sizeof cache);
    struct video_dataset *ds = open_ok(set_dir, "all");
    for (int kind = 0; kind < 2; kind++) {
        struct video_loader_opts o;
        loader_opts(&o, cache);
        o.motion = kind ? VIDEO_MOTION_MV : VIDEO_MOTION_DIFF;
        o.seed = 42;
        /* Cold with one thread, then warm from the cache with four: the same bytes. */
        o.threads = 1;
        struct video_loader *ld = loader_make(ds, NULL, 0, &o);
        struct run a, b, c;
        run_collect(ld, &a, 2);
        video_loader_free(ld);
        o.threads = 4;
        ld = loader_make(ds, NULL, 0, &o);
        run_collect(ld, &b, 2);
        struct video_loader_stats st;
        video_loader_stats(ld, &st);
        assert_int_equal(st.cache.decodes, 0);
        video_loader_free(ld);
        assert_int_equal(a.ni, b.ni);
        assert_memory_equal(a.index, b.index, a.ni * sizeof(int));
        assert_memory_equal(a.rgb, b.rgb, a.nr * sizeof(float));
        assert_memory_equal(a.motion, b.motion, a.nm * sizeof(float));
        /* Another seed: another order and other crops. */
        o.seed = 43;
        ld = loader_make(ds, NULL, 0, &o);
        run_collect(ld, &c, 2);
        video_loader_free(ld);
        assert_memory_not_equal(a.index, c.index, a.ni * sizeof(int));
        run_free(&a);
        run_free(&b);
        run_free(&c);
    }
    video_dataset_free(ds);
    rm_rf(cache);
}

/* The clip the sampler and video_clip_fill make of a whole file, centred snippets. */
static struct video_clip *clip_reference(const char *path, const struct video_loader_opts *lo)
{
    struct video_source_opts so;
    video_source_opts_default(&so);
    so.export_mvs = lo->motion == VIDEO_MOTION_MV;
    struct video_source *s = NULL;
    assert_int_equal(video_source_open(path, &so, &s, NULL), 0);
    struct video_sampler_opts o = {.width = lo->width, .height = lo->height, .fps = lo->fps,
                                   .capacity = 256, .motion_mv = so.export_mvs};
    memcpy(o.mean, lo->mean, sizeof o.mean);
    memcpy(o.std, lo->std, sizeof o.std);
    struct video_sampler *sm = NULL;
    assert_int_equal(video_sampler_new(&o, &sm, NULL), 0);
    assert_int_equal(video_sampler_read_all(sm, s, NULL), 0);
    struct video_clip_opts co = {.segments = lo->segments, .length = lo->length, .motion = lo->motion};
    struct video_clip *c = NULL;
    assert_int_equal(video_clip_new(&co, lo->width, lo->height, &c, NULL), 0);
    assert_int_equal(video_clip_fill(c, sm, 0, video_sampler_count(sm), NULL, NULL), 0);
    video_sampler_free(sm);
    video_source_close(s);
    return c;
}

static void test_loader_eval_matches_the_sampler(void **state)
{
    (void)state;
    char cache[64];
    temp_dir(cache, sizeof cache);
    struct video_dataset *ds = open_ok(set_dir, "test");
    for (int kind = 0; kind < 2; kind++) {
        struct video_loader_opts o;
        loader_opts(&o, cache);
        o.motion = kind ? VIDEO_MOTION_MV : VIDEO_MOTION_DIFF;
        o.augment = 0;
        o.shuffle = 0;
        o.batch = 1;
        o.length = 3;
        struct video_loader *ld = loader_make(ds, NULL, 0, &o);
        for (int i = 0; i < video_dataset_count(ds); i++) {
            const struct video_batch *b = next_ok(ld);
            assert_int_equal(b->index[0], i);
            struct video_clip *c = clip_reference(video_dataset_path(ds, i), &o);
            size_t nr = (size_t)3 * 3 * MW * MH, nm = (size_t)3 * 6 * MW * MH;
            /* Same pixels, same normalisation, same snippets: bit for bit. */
            assert_memory_equal(b->rgb, c->rgb, nr * sizeof(float));
            if (kind == 0) {
                assert_memory_equal(b->motion, c->motion, nm * sizeof(float));
            } else {
                /* Vectors pass through int16 in 1/32 pixel: half a step at most. */
                double err = 0, mag = 0;
                for (size_t k = 0; k < nm; k++) {
                    err = fmax(err, fabsf(b->motion[k] - c->motion[k]));
                    mag += fabsf(c->motion[k]);
                }
                assert_true(err <= 0.5 / VIDEO_CACHE_MV_ONE + 1e-6);
                assert_true(mag > 1.0); /* the clip moves */
            }
            video_clip_free(c);
        }
        video_loader_free(ld);
    }
    video_dataset_free(ds);
    rm_rf(cache);
}

static void test_loader_augment_changes_pixels_not_shapes(void **state)
{
    (void)state;
    char cache[64];
    temp_dir(cache, sizeof cache);
    struct video_dataset *ds = open_ok(set_dir, "test");
    struct video_loader_opts o;
    loader_opts(&o, cache);
    o.shuffle = 0;
    o.batch = 3;
    o.augment = 0;
    struct video_loader *ld = loader_make(ds, NULL, 0, &o);
    struct run eval, train;
    run_collect(ld, &eval, 1);
    video_loader_free(ld);
    o.augment = 1;
    ld = loader_make(ds, NULL, 0, &o);
    run_collect(ld, &train, 1);
    video_loader_free(ld);
    assert_int_equal(train.nr, eval.nr);
    assert_int_equal(train.nm, eval.nm);
    assert_memory_not_equal(train.rgb, eval.rgb, eval.nr * sizeof(float));
    /* RGB stays within what normalised bytes can be. */
    float lo = 0, hi = 0;
    for (int c = 0; c < 3; c++) {
        lo = fminf(lo, -o.mean[c] / o.std[c]);
        hi = fmaxf(hi, (1.0f - o.mean[c]) / o.std[c]);
    }
    for (size_t i = 0; i < train.nr; i++)
        assert_true(train.rgb[i] >= lo - 1e-4f && train.rgb[i] <= hi + 1e-4f);
    for (size_t i = 0; i < train.nm; i++)
        assert_true(train.motion[i] >= 0.0f && train.motion[i] <= 1.0f);
    run_free(&eval);
    run_free(&train);
    video_dataset_free(ds);
    rm_rf(cache);
}

static void test_loader_skips_a_corrupt_clip(void **state)
{
    (void)state;
    char dir[64], cache[64];
    temp_dir(dir, sizeof dir);
    temp_dir(cache, sizeof cache);
    /* Two good clips (symbolic links into the suite's set) and a garbage .mp4 between them. */
    char sub[128], target[256], link[256];
    snprintf(sub, sizeof sub, "%s/bend", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    for (int j = 0; j < 2; j++) {
        clip_path(target, sizeof target, 0, j);
        snprintf(link, sizeof link, "%s/bend/g%d.mp4", dir, j);
        assert_int_equal(symlink(target, link), 0);
    }
    unsigned char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)(i * 2654435761u >> 13);
    put_file(dir, "bend/bad.mp4", junk, sizeof junk);
    put_text(dir, "classInd.txt", "1 bend\n");
    put_text(dir, "trainlist.txt", "bend/g0.mp4 1\nbend/bad.mp4 1\nbend/g1.mp4 1\n");
    struct video_dataset *ds = open_ok(dir, "train");
    assert_int_equal(video_dataset_count(ds), 3);
    struct video_loader_opts o;
    loader_opts(&o, cache);
    o.batch = 2;
    o.shuffle = 0;
    struct capture cap;
    capture_start(&cap);
    struct video_loader *ld = loader_make(ds, NULL, 0, &o);
    /* The bad clip's place goes to the next one: one full batch, epoch over. */
    const struct video_batch *b = next_ok(ld);
    assert_int_equal(b->clips, 2);
    assert_int_equal(b->index[0], 0);
    assert_int_equal(b->index[1], 2);
    assert_true(b->epoch_end);
    b = next_ok(ld);
    assert_int_equal(b->epoch, 1);
    assert_int_equal(b->clips, 2);
    assert_true(b->epoch_end);
    struct video_loader_stats st;
    video_loader_stats(ld, &st);
    video_loader_free(ld);
    char *log = capture_end(&cap);
    assert_int_equal(st.failed, 1);
    assert_non_null(strstr(log, "loader: skipping bend/bad.mp4: "));
    /* Named once, not every epoch. */
    assert_null(strstr(strstr(log, "skipping") + 1, "skipping"));
    free(log);
    video_dataset_free(ds);
    /* Nothing readable at all: a clear error, not a hang. */
    put_text(dir, "trainlist.txt", "bend/bad.mp4 1\n");
    ds = open_ok(dir, "train");
    capture_start(&cap);
    ld = loader_make(ds, NULL, 0, &o);
    const struct video_batch *none = NULL;
    struct err_msg em = {{0}};
    int rc = video_loader_next(ld, &none, &em);
    video_loader_free(ld);
    free(capture_end(&cap));
    assert_int_equal(rc, ERR_FORMAT);
    assert_non_null(strstr(em.text, "none of the 1 clips could be read"));
    video_dataset_free(ds);
    rm_rf(dir);
    rm_rf(cache);
}

static void test_loader_free_while_working(void **state)
{
    (void)state;
    char cache[64];
    temp_dir(cache, sizeof cache);
    struct video_dataset *ds = open_ok(set_dir, "all");
    struct video_loader_opts o;
    loader_opts(&o, cache);
    o.motion = VIDEO_MOTION_MV;
    o.threads = 3;
    /* Freed at once (decodes in flight), after one batch, and mid-epoch with a full ring. */
    video_loader_free(loader_make(ds, NULL, 0, &o));
    struct video_loader *ld = loader_make(ds, NULL, 0, &o);
    next_ok(ld);
    video_loader_free(ld);
    ld = loader_make(ds, NULL, 0, &o);
    next_ok(ld);
    usleep(200000);
    video_loader_free(ld);
    video_loader_free(NULL);
    video_dataset_free(ds);
    rm_rf(cache);
}

static void test_loader_option_errors(void **state)
{
    (void)state;
    char cache[64];
    temp_dir(cache, sizeof cache);
    struct video_dataset *ds = open_ok(set_dir, "train");
    struct video_loader_opts o;
    struct video_loader *ld = NULL;
    struct err_msg em = {{0}};
    /* One bad field at a time. */
    for (int field = 0; field < 8; field++) {
        loader_opts(&o, cache);
        switch (field) {
        case 0: o.width = 4; break;
        case 1: o.height = 2000; break;
        case 2: o.segments = 0; break;
        case 3: o.length = VIDEO_MAX_MOTION_LEN + 1; break;
        case 4: o.batch = 0; break;
        case 5: o.batch = VIDEO_LOADER_MAX_BATCH + 1; break;
        case 6: o.threads = 0; break;
        default: o.fps = 0; break;
        }
        assert_int_equal(video_loader_new(ds, NULL, 0, &o, &ld, &em), ERR_RANGE);
    }
    loader_opts(&o, cache);
    o.std[1] = 0;
    assert_int_equal(video_loader_new(ds, NULL, 0, &o, &ld, &em), ERR_RANGE);
    loader_opts(&o, cache);
    int idx[2] = {0, 99};
    assert_int_equal(video_loader_new(ds, idx, 2, &o, &ld, &em), ERR_RANGE);
    assert_non_null(strstr(em.text, "clip index 99"));
    /* Buffers past the bound are refused up front, not allocated. */
    o.width = o.height = 1024;
    o.segments = 32;
    o.length = 16;
    o.batch = 256;
    assert_int_equal(video_loader_new(ds, NULL, 0, &o, &ld, &em), ERR_RANGE);
    assert_non_null(strstr(em.text, "MiB"));
    /* A shared cache must hold what the loader wants. */
    loader_opts(&o, cache);
    o.motion = VIDEO_MOTION_MV;
    o.cache = cache_make(cache, 0, 0);
    assert_int_equal(video_loader_new(ds, NULL, 0, &o, &ld, &em), ERR_INVAL);
    video_cache_free(o.cache);
    video_dataset_free(ds);
    rm_rf(cache);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dataset_synth_splits),
        cmocka_unit_test(test_classind_errors),
        cmocka_unit_test(test_list_errors),
        cmocka_unit_test(test_list_path_traversal_refused),
        cmocka_unit_test(test_list_syntax_tolerated),
        cmocka_unit_test(test_missing_clip_skipped_with_warning),
        cmocka_unit_test(test_empty_set_is_an_error),
        cmocka_unit_test(test_missing_lists_use_the_folders),
        cmocka_unit_test(test_all_keeps_overlap_once),
        cmocka_unit_test(test_split_deterministic_and_stratified),
        cmocka_unit_test(test_cache_hit_after_first_decode),
        cmocka_unit_test(test_cache_stale_entry_redecoded),
        cmocka_unit_test(test_cache_corrupt_entry_redecoded),
        cmocka_unit_test(test_cache_version_mismatch_redecoded),
        cmocka_unit_test(test_cache_ram_tier),
        cmocka_unit_test(test_cache_errors),
        cmocka_unit_test(test_augment_flip_mirrors_rgb_and_negates_mv),
        cmocka_unit_test(test_augment_crop_scales_and_keeps_size),
        cmocka_unit_test(test_loader_batch_shapes_and_labels),
        cmocka_unit_test(test_loader_every_clip_once_per_epoch),
        cmocka_unit_test(test_loader_same_seed_same_batches),
        cmocka_unit_test(test_loader_eval_matches_the_sampler),
        cmocka_unit_test(test_loader_augment_changes_pixels_not_shapes),
        cmocka_unit_test(test_loader_skips_a_corrupt_clip),
        cmocka_unit_test(test_loader_free_while_working),
        cmocka_unit_test(test_loader_option_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
