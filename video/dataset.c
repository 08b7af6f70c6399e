/* dataset.c — UCF101-style data sets: classInd.txt, trainlist.txt and testlist.txt over a folder
 * of Class/clip.ext, parsed with file:line errors; missing clips skipped; a stratified val split. */
#include "video/video.h"
#include "video/rng.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Skipped clips named one by one before the rest are only counted: a whole missing folder
 * must not bury the log. */
#define DS_WARN_NAMED 20
/* Salt for the split's random stream, so it never mirrors the loader's. */
#define DS_SPLIT_SALT 0x5350u

/* VIDEO_DATASET_MAX_NAME - 1, spelled out for messages. */
#define MAX_NAME_TEXT "63"
_Static_assert(VIDEO_DATASET_MAX_NAME == 64, "MAX_NAME_TEXT follows VIDEO_DATASET_MAX_NAME");

enum ds_list { DS_TRAIN, DS_TEST, DS_LIST_COUNT };
static const char *const list_names[DS_LIST_COUNT] = {"trainlist.txt", "testlist.txt"};

static const char *const video_exts[] = {"mp4", "m4v", "mov", "mkv", "avi", "webm",
                                         "ts",  "mpg", "mpeg", "flv", "3gp", "wmv"};

struct ds_clip {
    char *path;   /* absolute; the relative path starts at path + dir_len + 1 */
    int label;
};

/* A parsed list line, before the file is looked at. */
struct ds_entry {
    char *rel;
    int label;
    int line;
};

struct ds_entries {
    struct ds_entry *v;
    int n, cap;
};

/* Open-addressed set of relative paths (indices into a string table), for duplicates and for
 * the clips a list names. */
struct pathset {
    int *slot;              /* -1 empty, else an index given by the caller */
    const char **key;       /* the key of each index */
    size_t cap;             /* power of two */
    int n;
};

struct video_dataset {
    char *dir;
    size_t dir_len;
    int n_classes;
    char (*classes)[VIDEO_DATASET_MAX_NAME];
    struct ds_clip *clips;
    int n, cap;
    int skipped;
    struct pathset seen;    /* relative paths of the clips added so far */
    int overlap;            /* clips named by both lists (split "all") */
    const char *overlap_example;
};

/* ---- small helpers ---- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static int pathset_init(struct pathset *ps, size_t cap)
{
    *ps = (struct pathset){0};
    ps->cap = cap;
    ps->slot = malloc(cap * sizeof *ps->slot);
    ps->key = calloc(cap, sizeof *ps->key);
    if (!ps->slot || !ps->key)
        return ERR_NOMEM;
    memset(ps->slot, -1, cap * sizeof *ps->slot);
    return 0;
}

static void pathset_fini(struct pathset *ps)
{
    free(ps->slot);
    free(ps->key);
    *ps = (struct pathset){0};
}

/* The index stored for key, or -1. */
static int pathset_find(const struct pathset *ps, const char *key)
{
    if (!ps->cap)
        return -1;
    for (size_t i = hash_str(key) & (ps->cap - 1);; i = (i + 1) & (ps->cap - 1)) {
        int v = ps->slot[i];
        if (v < 0)
            return -1;
        if (strcmp(ps->key[i], key) == 0)
            return v;
    }
}

static int pathset_add(struct pathset *ps, const char *key, int value)
{
    /* Kept at most half full so probes stay short. */
    if ((size_t)(ps->n + 1) * 2 > ps->cap) {
        struct pathset big;
        if (pathset_init(&big, ps->cap ? ps->cap * 2 : 64) < 0)
            return ERR_NOMEM;
        for (size_t i = 0; i < ps->cap; i++)
            if (ps->slot[i] >= 0)
                pathset_add(&big, ps->key[i], ps->slot[i]);
        pathset_fini(ps);
        *ps = big;
    }
    size_t i = hash_str(key) & (ps->cap - 1);
    while (ps->slot[i] >= 0)
        i = (i + 1) & (ps->cap - 1);
    ps->slot[i] = value;
    ps->key[i] = key;
    ps->n++;
    return 0;
}

static void entries_fini(struct ds_entries *es)
{
    for (int i = 0; i < es->n; i++)
        free(es->v[i].rel);
    free(es->v);
    *es = (struct ds_entries){0};
}

static int entries_push(struct ds_entries *es, const char *rel, int label, int line)
{
    if (es->n == es->cap) {
        int cap = es->cap ? es->cap * 2 : 256;
        struct ds_entry *v = realloc(es->v, (size_t)cap * sizeof *v);
        if (!v)
            return ERR_NOMEM;
        es->v = v;
        es->cap = cap;
    }
    char *copy = strdup(rel);
    if (!copy)
        return ERR_NOMEM;
    es->v[es->n++] = (struct ds_entry){copy, label, line};
    return 0;
}

static int join_path(char *buf, size_t cap, const char *a, const char *b)
{
    int n = snprintf(buf, cap, "%s/%s", a, b);
    return n < 0 || (size_t)n >= cap ? ERR_RANGE : 0;
}

static int file_exists(const char *dir, const char *name)
{
    char path[PATH_MAX];
    struct stat st;
    return join_path(path, sizeof path, dir, name) == 0 && stat(path, &st) == 0;
}

/* ---- reading a list file line by line, with bounds ---- */

struct lines {
    FILE *f;
    const char *name;   /* for messages: "trainlist.txt" */
    int lineno;
    char buf[VIDEO_DATASET_MAX_LINE + 1];
};

static int is_blank(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static char *trim(char *s)
{
    while (is_blank((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && is_blank((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Reads one raw line into l->buf: 1, 0 at the end, or an error. */
static int lines_read(struct lines *l, struct err_msg *em)
{
    size_t len = 0;
    int c;
    l->lineno++;
    while ((c = getc(l->f)) != EOF && c != '\n') {
        if (c == '\0')
            return err_set(em, ERR_FORMAT, "%s:%d: NUL byte: not a text file", l->name, l->lineno);
        if (len == VIDEO_DATASET_MAX_LINE)
            return err_set(em, ERR_RANGE, "%s:%d: line longer than %d bytes", l->name, l->lineno,
                           VIDEO_DATASET_MAX_LINE);
        l->buf[len++] = (char)c;
    }
    if (ferror(l->f))
        return err_set(em, ERR_IO, "%s: read error: %s", l->name, strerror(errno));
    l->buf[len] = '\0';
    return c == EOF && len == 0 ? 0 : 1;
}

/* The next line with content, trimmed: 1 and *out, 0 at the end, or an error. */
static int lines_next(struct lines *l, char **out, struct err_msg *em)
{
    for (;;) {
        int rc = lines_read(l, em);
        if (rc <= 0)
            return rc;
        char *s = l->buf;
        if (l->lineno == 1 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
            s += 3; /* a BOM from an editor on Windows */
        s = trim(s);
        if (*s && *s != '#') {
            *out = s;
            return 1;
        }
    }
}

/* Splits s at blanks into at most max tokens; returns how many there were, max + 1 if more. */
static int tokenize(char *s, char **tok, int max)
{
    int n = 0;
    while (*s) {
        while (is_blank((unsigned char)*s))
            s++;
        if (!*s)
            break;
        if (n == max)
            return max + 1;
        tok[n++] = s;
        while (*s && !is_blank((unsigned char)*s))
            s++;
        if (*s)
            *s++ = '\0';
    }
    return n;
}

static int parse_int(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end)
        return -1;
    *out = v;
    return 0;
}

/* ---- classes ---- */

static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* A class name is also a folder name: one path component, printable. */
static const char *class_name_problem(const char *name)
{
    if (strlen(name) >= VIDEO_DATASET_MAX_NAME)
        return "longer than " MAX_NAME_TEXT " bytes";
    if (strchr(name, '/'))
        return "contains '/'";
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return "is not a folder name";
    if (has_control(name))
        return "contains a control character";
    return NULL;
}

static int class_find(const struct video_dataset *ds, const char *name)
{
    for (int i = 0; i < ds->n_classes; i++)
        if (strcmp(ds->classes[i], name) == 0)
            return i;
    /* UCF101's lists and folders disagree in case for one class (HandStandPushups). */
    for (int i = 0; i < ds->n_classes; i++)
        if (strcasecmp(ds->classes[i], name) == 0)
            return i;
    return -1;
}

static int classind_line(struct video_dataset *ds, struct lines *l, char *s, int *line_of,
                         struct err_msg *em)
{
    char *tok[2];
    long idx;
    if (tokenize(s, tok, 2) != 2)
        return err_set(em, ERR_FORMAT, "%s:%d: expected 'INDEX NAME'", l->name, l->lineno);
    if (parse_int(tok[0], &idx) < 0)
        return err_set(em, ERR_FORMAT, "%s:%d: index '%s' is not a number", l->name, l->lineno,
                       tok[0]);
    if (idx < 1 || idx > VIDEO_DATASET_MAX_CLASSES)
        return err_set(em, ERR_RANGE, "%s:%d: index %ld out of range 1..%d", l->name, l->lineno,
                       idx, VIDEO_DATASET_MAX_CLASSES);
    const char *why = class_name_problem(tok[1]);
    if (why && strlen(tok[1]) >= VIDEO_DATASET_MAX_NAME)
        return err_set(em, ERR_FORMAT, "%s:%d: class name %s", l->name, l->lineno, why);
    if (why)
        return err_set(em, ERR_FORMAT, "%s:%d: class name '%s' %s", l->name, l->lineno, tok[1], why);
    int c = (int)idx - 1;
    if (line_of[c])
        return err_set(em, ERR_FORMAT, "%s:%d: class %ld listed twice (first on line %d)",
                       l->name, l->lineno, idx, line_of[c]);
    for (int i = 0; i < VIDEO_DATASET_MAX_CLASSES; i++)
        if (line_of[i] && strcmp(ds->classes[i], tok[1]) == 0)
            return err_set(em, ERR_FORMAT, "%s:%d: class name '%s' listed twice (first on line %d)",
                           l->name, l->lineno, tok[1], line_of[i]);
    snprintf(ds->classes[c], VIDEO_DATASET_MAX_NAME, "%s", tok[1]);
    line_of[c] = l->lineno;
    if (c + 1 > ds->n_classes)
        ds->n_classes = c + 1;
    return 0;
}

static int classind_read(struct video_dataset *ds, FILE *f, struct err_msg *em)
{
    int *line_of = calloc(VIDEO_DATASET_MAX_CLASSES, sizeof *line_of);
    if (!line_of)
        return err_set(em, ERR_NOMEM, "classInd.txt: out of memory");
    struct lines l = {.f = f, .name = "classInd.txt"};
    char *s;
    int rc;
    while ((rc = lines_next(&l, &s, em)) > 0)
        if ((rc = classind_line(ds, &l, s, line_of, em)) < 0)
            break;
    for (int c = 0; rc == 0 && c < ds->n_classes; c++)
        if (!line_of[c])
            rc = err_set(em, ERR_FORMAT, "classInd.txt: classes must be numbered 1..%d: %d is missing",
                         ds->n_classes, c + 1);
    if (rc == 0 && ds->n_classes == 0)
        rc = err_set(em, ERR_FORMAT, "classInd.txt: no classes");
    free(line_of);
    return rc;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(a, b);
}

static int is_subdir(const char *dir, const struct dirent *d)
{
    char path[PATH_MAX];
    struct stat st;
    if (d->d_name[0] == '.' || join_path(path, sizeof path, dir, d->d_name) < 0)
        return 0;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Without classInd.txt: the subfolders, sorted, are the classes. */
static int classes_from_folders(struct video_dataset *ds, struct err_msg *em)
{
    DIR *d = opendir(ds->dir);
    if (!d)
        return err_set(em, ERR_IO, "%s: %s", ds->dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (!is_subdir(ds->dir, e))
            continue;
        if (class_name_problem(e->d_name)) {
            log_warn("dataset: %s/%.*s: folder name unusable as a class; ignored", ds->dir, 80,
                     e->d_name);
            continue;
        }
        if (ds->n_classes == VIDEO_DATASET_MAX_CLASSES)
            rc = err_set(em, ERR_RANGE, "%s: more than %d class folders", ds->dir,
                         VIDEO_DATASET_MAX_CLASSES);
        else
            snprintf(ds->classes[ds->n_classes++], VIDEO_DATASET_MAX_NAME, "%.*s",
                     VIDEO_DATASET_MAX_NAME - 1, e->d_name);
    }
    closedir(d);
    if (rc == 0 && ds->n_classes == 0)
        rc = err_set(em, ERR_NOTFOUND, "%s: no classInd.txt and no class folders", ds->dir);
    if (rc == 0)
        qsort(ds->classes, (size_t)ds->n_classes, sizeof ds->classes[0], cmp_names);
    return rc;
}

static int classes_load(struct video_dataset *ds, struct err_msg *em)
{
    ds->classes = calloc(VIDEO_DATASET_MAX_CLASSES, sizeof *ds->classes);
    if (!ds->classes)
        return err_set(em, ERR_NOMEM, "dataset: out of memory");
    char path[PATH_MAX];
    if (join_path(path, sizeof path, ds->dir, "classInd.txt") < 0)
        return err_set(em, ERR_RANGE, "%s: folder name too long", ds->dir);
    FILE *f = fopen(path, "r");
    if (!f && errno == ENOENT)
        return classes_from_folders(ds, em);
    if (!f)
        return err_set(em, ERR_IO, "%s: %s", path, strerror(errno));
    int rc = classind_read(ds, f, em);
    fclose(f);
    return rc;
}

/* ---- list lines ---- */

/* NULL when rel is a plain relative path inside the folder, else why not. Only canonical
 * paths pass ("a/./b", "a//b" too are refused), so one clip has one spelling. */
static const char *rel_problem(const char *rel)
{
    if (strlen(rel) >= VIDEO_DATASET_MAX_PATH)
        return "is too long";
    if (rel[0] == '/')
        return "is absolute";
    if (has_control(rel))
        return "contains a control character";
    for (const char *p = rel;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0)
            return "has an empty component";
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return "has a '..' component";
        if (n == 1 && p[0] == '.')
            return "has a '.' component";
        if (!slash)
            return NULL;
        p = slash + 1;
    }
}

/* The class named by rel's first component, -1 if none. */
static int folder_class(const struct video_dataset *ds, const char *rel)
{
    const char *slash = strchr(rel, '/');
    if (!slash || slash - rel >= VIDEO_DATASET_MAX_NAME)
        return -1;
    char name[VIDEO_DATASET_MAX_NAME];
    memcpy(name, rel, (size_t)(slash - rel));
    name[slash - rel] = '\0';
    return class_find(ds, name);
}

static int list_label(const struct video_dataset *ds, const struct lines *l, char *const tok[2],
                      int ntok, int *label, struct err_msg *em)
{
    int folder = folder_class(ds, tok[0]);
    if (ntok == 1) {
        if (folder < 0)
            return err_set(em, ERR_FORMAT, "%s:%d: no label, and '%s' is not in a class folder",
                           l->name, l->lineno, tok[0]);
        *label = folder;
        return 0;
    }
    long v;
    if (parse_int(tok[1], &v) < 0)
        return err_set(em, ERR_FORMAT, "%s:%d: label '%.*s' is not a number", l->name, l->lineno,
                       40, tok[1]);
    if (v < 1 || v > ds->n_classes)
        return err_set(em, ERR_RANGE, "%s:%d: label %ld out of range 1..%d", l->name, l->lineno, v,
                       ds->n_classes);
    if (folder >= 0 && folder != v - 1)
        return err_set(em, ERR_FORMAT, "%s:%d: label %ld (%s) but the clip is in folder '%s'",
                       l->name, l->lineno, v, ds->classes[v - 1], ds->classes[folder]);
    *label = (int)v - 1;
    return 0;
}

static int list_line(const struct video_dataset *ds, const struct lines *l, char *s,
                     struct ds_entries *es, struct pathset *names, struct err_msg *em)
{
    char *tok[2];
    int ntok = tokenize(s, tok, 2);
    if (ntok > 2)
        return err_set(em, ERR_FORMAT, "%s:%d: expected 'Class/clip.ext [LABEL]'", l->name,
                       l->lineno);
    const char *why = rel_problem(tok[0]);
    if (why)
        return err_set(em, ERR_INVAL, "%s:%d: path '%.*s' %s: a list names clips inside its folder",
                       l->name, l->lineno, 200, tok[0], why);
    int label = -1, rc;
    if ((rc = list_label(ds, l, tok, ntok, &label, em)) < 0)
        return rc;
    int first = pathset_find(names, tok[0]);
    if (first >= 0)
        return err_set(em, ERR_FORMAT, "%s:%d: '%s' listed twice (first on line %d)", l->name,
                       l->lineno, tok[0], es->v[first].line);
    if (es->n == VIDEO_DATASET_MAX_CLIPS)
        return err_set(em, ERR_RANGE, "%s:%d: more than %d clips", l->name, l->lineno,
                       VIDEO_DATASET_MAX_CLIPS);
    if (entries_push(es, tok[0], label, l->lineno) < 0 ||
        pathset_add(names, es->v[es->n - 1].rel, es->n - 1) < 0)
        return err_set(em, ERR_NOMEM, "%s: out of memory", l->name);
    return 0;
}

/* Parses a list into entries; names gets every relative path. */
static int list_read(const struct video_dataset *ds, enum ds_list which, struct ds_entries *es,
                     struct pathset *names, struct err_msg *em)
{
    char path[PATH_MAX];
    if (join_path(path, sizeof path, ds->dir, list_names[which]) < 0)
        return err_set(em, ERR_RANGE, "%s: folder name too long", ds->dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return err_set(em, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s", path, strerror(errno));
    struct lines l = {.f = f, .name = list_names[which]};
    char *s;
    int rc;
    while ((rc = lines_next(&l, &s, em)) > 0)
        if ((rc = list_line(ds, &l, s, es, names, em)) < 0)
            break;
    fclose(f);
    return rc;
}

/* ---- scanning class folders ---- */

static int is_video_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (name[0] == '.' || !dot)
        return 0;
    for (size_t i = 0; i < sizeof video_exts / sizeof video_exts[0]; i++)
        if (strcasecmp(dot + 1, video_exts[i]) == 0)
            return 1;
    return 0;
}

static int cmp_entry_rel(const void *a, const void *b)
{
    return strcmp(((const struct ds_entry *)a)->rel, ((const struct ds_entry *)b)->rel);
}

/* Every video file in class c's folder, in byte order, as entries (line 0). */
static int scan_class(const struct video_dataset *ds, int c, struct ds_entries *es,
                      struct err_msg *em)
{
    char path[PATH_MAX];
    if (join_path(path, sizeof path, ds->dir, ds->classes[c]) < 0)
        return err_set(em, ERR_RANGE, "%s: folder name too long", ds->dir);
    DIR *d = opendir(path);
    if (!d) {
        log_warn("dataset: %s: class folder unreadable (%s)", path, strerror(errno));
        return 0;
    }
    int start = es->n, rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        char rel[VIDEO_DATASET_MAX_PATH];
        if (!is_video_name(e->d_name))
            continue;
        if (join_path(rel, sizeof rel, ds->classes[c], e->d_name) < 0 || rel_problem(rel)) {
            log_warn("dataset: %s/%.*s: name unusable; ignored", path, 80, e->d_name);
            continue;
        }
        if (es->n == VIDEO_DATASET_MAX_CLIPS)
            rc = err_set(em, ERR_RANGE, "%s: more than %d clips", ds->dir, VIDEO_DATASET_MAX_CLIPS);
        else if (entries_push(es, rel, c, 0) < 0)
            rc = err_set(em, ERR_NOMEM, "dataset: out of memory");
    }
    closedir(d);
    qsort(es->v + start, (size_t)(es->n - start), sizeof *es->v, cmp_entry_rel);
    return rc;
}

/* The clips in the class folders that `other` does not name. */
static int scan_except(const struct video_dataset *ds, const struct pathset *other,
                       struct ds_entries *es, struct err_msg *em)
{
    struct ds_entries all = {0};
    int rc = 0;
    for (int c = 0; rc == 0 && c < ds->n_classes; c++)
        rc = scan_class(ds, c, &all, em);
    for (int i = 0; rc == 0 && i < all.n; i++)
        if (pathset_find(other, all.v[i].rel) < 0 && entries_push(es, all.v[i].rel, all.v[i].label, 0) < 0)
            rc = err_set(em, ERR_NOMEM, "dataset: out of memory");
    entries_fini(&all);
    return rc;
}

/* ---- adding clips that exist ---- */

/* NULL when the clip can be read, else why not. */
static const char *clip_problem(const char *path, char *why, size_t cap)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, cap, "%s", strerror(errno));
        return why;
    }
    const char *bad = NULL;
    if (fstat(fd, &st) < 0)
        bad = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        bad = "not a regular file";
    else if (st.st_size == 0)
        bad = "empty file";
    if (bad)
        snprintf(why, cap, "%s", bad);
    close(fd);
    return bad ? why : NULL;
}

static void warn_skipped(struct video_dataset *ds, const char *list, const struct ds_entry *e,
                         const char *why)
{
    ds->skipped++;
    if (ds->skipped > DS_WARN_NAMED)
        return;
    if (e->line > 0)
        log_warn("dataset: %s:%d: %s: %s; skipped", list, e->line, e->rel, why);
    else
        log_warn("dataset: %s/%s: %s; skipped", ds->dir, e->rel, why);
}

static int clips_push(struct video_dataset *ds, const char *path, int label)
{
    if (ds->n == ds->cap) {
        int cap = ds->cap ? ds->cap * 2 : 256;
        struct ds_clip *v = realloc(ds->clips, (size_t)cap * sizeof *v);
        if (!v)
            return ERR_NOMEM;
        ds->clips = v;
        ds->cap = cap;
    }
    char *copy = strdup(path);
    if (!copy)
        return ERR_NOMEM;
    ds->clips[ds->n++] = (struct ds_clip){copy, label};
    return 0;
}

static int add_entries(struct video_dataset *ds, const char *list, const struct ds_entries *es,
                       struct err_msg *em)
{
    for (int i = 0; i < es->n; i++) {
        const struct ds_entry *e = &es->v[i];
        char path[PATH_MAX], why[128];
        if (pathset_find(&ds->seen, e->rel) >= 0) {
            if (ds->overlap++ == 0)
                ds->overlap_example = ds->clips[pathset_find(&ds->seen, e->rel)].path + ds->dir_len + 1;
            continue;
        }
        if (join_path(path, sizeof path, ds->dir, e->rel) < 0)
            return err_set(em, ERR_RANGE, "%s: path too long", e->rel);
        if (clip_problem(path, why, sizeof why)) {
            warn_skipped(ds, list, e, why);
            continue;
        }
        if (ds->n == VIDEO_DATASET_MAX_CLIPS)
            return err_set(em, ERR_RANGE, "%s: more than %d clips", ds->dir, VIDEO_DATASET_MAX_CLIPS);
        if (clips_push(ds, path, e->label) < 0 ||
            pathset_add(&ds->seen, ds->clips[ds->n - 1].path + ds->dir_len + 1, ds->n - 1) < 0)
            return err_set(em, ERR_NOMEM, "dataset: out of memory");
    }
    return 0;
}

/* One split: its list when there is one, else the folders minus the other list. */
static int add_split(struct video_dataset *ds, enum ds_list which, struct err_msg *em)
{
    enum ds_list other = which == DS_TRAIN ? DS_TEST : DS_TRAIN;
    struct ds_entries es = {0}, other_es = {0};
    struct pathset names = {0}, other_names = {0};
    int rc;
    if (file_exists(ds->dir, list_names[which])) {
        rc = list_read(ds, which, &es, &names, em);
    } else {
        rc = 0;
        if (file_exists(ds->dir, list_names[other]))
            rc = list_read(ds, other, &other_es, &other_names, em);
        if (rc == 0) {
            log_info("dataset: %s: no %s; using the clips in the class folders%s%s", ds->dir,
                     list_names[which], other_es.n ? " not in " : "",
                     other_es.n ? list_names[other] : "");
            rc = scan_except(ds, &other_names, &es, em);
        }
    }
    if (rc == 0)
        rc = add_entries(ds, list_names[which], &es, em);
    entries_fini(&es);
    entries_fini(&other_es);
    pathset_fini(&names);
    pathset_fini(&other_names);
    return rc;
}

/* ---- the public door ---- */

static int dataset_load(struct video_dataset *ds, const char *split, struct err_msg *em)
{
    int rc = classes_load(ds, em);
    if (rc < 0)
        return rc;
    if (strcmp(split, "train") == 0 || strcmp(split, "all") == 0)
        rc = add_split(ds, DS_TRAIN, em);
    if (rc == 0 && (strcmp(split, "test") == 0 || strcmp(split, "all") == 0))
        rc = add_split(ds, DS_TEST, em);
    if (rc < 0)
        return rc;
    if (ds->skipped > DS_WARN_NAMED)
        log_warn("dataset: %s: %d more clips skipped", ds->dir, ds->skipped - DS_WARN_NAMED);
    if (ds->overlap)
        log_warn("dataset: %s: %d clips are in both lists (%s first); kept once", ds->dir,
                 ds->overlap, ds->overlap_example);
    if (ds->n == 0)
        return err_set(em, ERR_NOTFOUND, "%s: no readable clips in split '%s'%s", ds->dir, split,
                       ds->skipped ? " (every listed clip was skipped)" : "");
    return 0;
}

int video_dataset_open(const char *dir, const char *split, struct video_dataset **out,
                       struct err_msg *em)
{
    if (!split || (strcmp(split, "train") && strcmp(split, "test") && strcmp(split, "all")))
        return err_set(em, ERR_INVAL, "dataset: split '%s' is not train, test or all",
                       split ? split : "(null)");
    struct video_dataset *ds = calloc(1, sizeof *ds);
    if (!ds)
        return err_set(em, ERR_NOMEM, "dataset: out of memory");
    struct stat st;
    int rc = 0;
    if (!(ds->dir = realpath(dir, NULL)))
        rc = err_set(em, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s", dir, strerror(errno));
    else if (stat(ds->dir, &st) < 0 || !S_ISDIR(st.st_mode))
        rc = err_set(em, ERR_INVAL, "%s: not a folder", dir);
    else if ((ds->dir_len = strlen(ds->dir)) > PATH_MAX - VIDEO_DATASET_MAX_PATH - 2)
        rc = err_set(em, ERR_RANGE, "%s: folder name too long", dir);
    if (rc == 0)
        rc = dataset_load(ds, split, em);
    if (rc < 0) {
        video_dataset_free(ds);
        return rc;
    }
    pathset_fini(&ds->seen); /* its keys point into clips; not needed once loaded */
    *out = ds;
    return 0;
}

void video_dataset_free(struct video_dataset *ds)
{
    if (!ds)
        return;
    for (int i = 0; i < ds->n; i++)
        free(ds->clips[i].path);
    free(ds->clips);
    free(ds->classes);
    pathset_fini(&ds->seen);
    free(ds->dir);
    free(ds);
}

const char *video_dataset_dir(const struct video_dataset *ds)
{
    return ds->dir;
}

int video_dataset_count(const struct video_dataset *ds)
{
    return ds->n;
}

int video_dataset_class_count(const struct video_dataset *ds)
{
    return ds->n_classes;
}

const char *video_dataset_class_name(const struct video_dataset *ds, int cls)
{
    return cls >= 0 && cls < ds->n_classes ? ds->classes[cls] : NULL;
}

const char *video_dataset_path(const struct video_dataset *ds, int i)
{
    return i >= 0 && i < ds->n ? ds->clips[i].path : NULL;
}

const char *video_dataset_relpath(const struct video_dataset *ds, int i)
{
    return i >= 0 && i < ds->n ? ds->clips[i].path + ds->dir_len + 1 : NULL;
}

int video_dataset_label(const struct video_dataset *ds, int i)
{
    return i >= 0 && i < ds->n ? ds->clips[i].label : -1;
}

int video_dataset_skipped(const struct video_dataset *ds)
{
    return ds->skipped;
}

/* ---- the validation split ---- */

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* How many of a class's n clips go to validation: like synth's test share, never all of them. */
static int val_share(int n, double f)
{
    if (f <= 0.0 || n < 2)
        return 0;
    long m = lround(n * f);
    return (int)(m < 1 ? 1 : m > n - 1 ? n - 1 : m);
}

int video_dataset_split(const struct video_dataset *ds, double val_fraction, uint64_t seed,
                        int *train, int *n_train, int *val, int *n_val, struct err_msg *em)
{
    if (!(val_fraction >= 0.0 && val_fraction <= VIDEO_DATASET_MAX_VAL_FRACTION))
        return err_set(em, ERR_RANGE, "validation fraction %g outside 0..%g", val_fraction,
                       VIDEO_DATASET_MAX_VAL_FRACTION);
    int C = ds->n_classes;
    int *start = calloc((size_t)C + 1, sizeof *start), *cursor = malloc((size_t)C * sizeof(int));
    int *byclass = malloc((size_t)ds->n * sizeof(int));
    if (!start || !cursor || !byclass) {
        free(start);
        free(cursor);
        free(byclass);
        return err_set(em, ERR_NOMEM, "split: out of memory");
    }
    /* Counting sort by class keeps each class's clips in data set order before the shuffle. */
    for (int i = 0; i < ds->n; i++)
        start[ds->clips[i].label + 1]++;
    for (int c = 0; c < C; c++)
        start[c + 1] += start[c];
    memcpy(cursor, start, (size_t)C * sizeof(int));
    for (int i = 0; i < ds->n; i++)
        byclass[cursor[ds->clips[i].label]++] = i;
    int nt = 0, nv = 0;
    for (int c = 0; c < C; c++) {
        int *v = byclass + start[c], n = start[c + 1] - start[c];
        uint64_t rng = rng_derive(seed ^ DS_SPLIT_SALT, (uint64_t)c, (uint64_t)n);
        for (int i = n - 1; i > 0; i--) {
            int j = rng_int(&rng, i + 1), t = v[i];
            v[i] = v[j];
            v[j] = t;
        }
        int m = val_share(n, val_fraction);
        for (int i = 0; i < n; i++) {
            if (i < m)
                val[nv++] = v[i];
            else
                train[nt++] = v[i];
        }
    }
    qsort(train, (size_t)nt, sizeof *train, cmp_int);
    qsort(val, (size_t)nv, sizeof *val, cmp_int);
    *n_train = nt;
    *n_val = nv;
    free(start);
    free(cursor);
    free(byclass);
    return 0;
}
