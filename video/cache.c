/* cache.c — the decoded-clip cache: each clip decoded once into an entry file of uint8 RGB samples
 * (and int16 motion-vector fields) with a CRC per sample, read back sample by sample; a RAM tier.
 *
 * Entry file, integers little-endian, one per source file and setting:
 *   offset size
 *      0    8   magic "ACTDCLIP"
 *      8    4   version, VIDEO_CACHE_VERSION
 *     12    4   width        16  4  height
 *     20    4   flags: bit 0 = motion-vector fields stored
 *     24    8   fps as IEEE-754 double bits
 *     32    8   source size in bytes
 *     40    8   source mtime in ns since the epoch
 *     48    4   samples n, 1..VIDEO_CACHE_MAX_SAMPLES
 *     52    4   motion-vector unit: VIDEO_CACHE_MV_ONE per pixel
 *     56    4   path length p
 *     60    4   CRC-32 of bytes 0..59 and the path
 *     64    p   the source path, no NUL
 *   64 + p      n records: [int16 mv [2][H][W], if flagged] [RGB24 [H][W][3]] [int64 pts_us]
 *               [CRC-32 of the record's bytes before it]
 * The file is exactly 64 + p + n * record bytes. A CRC per record lets a reader check just the
 * samples it reads: a training clip needs K * (L + 1) of its samples, not all. */
#include "video/video.h"
#include "video/motion_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE_MAGIC "ACTDCLIP"
#define CACHE_HEADER 64
#define CACHE_FLAG_MV 1u
/* Hash buckets of the RAM tier: a few thousand clips per bucket list at most. */
#define CACHE_RAM_BUCKETS 4096
/* The decoded-clip buffer grows by doubling from this many samples. */
#define CACHE_MIN_CAP 64

enum cache_stat {
    ST_RAM, ST_DISK, ST_DECODE, ST_STALE, ST_CORRUPT, ST_VERSION, ST_WRITE, ST_COUNT
};

/* Why an entry file was not used. */
enum entry_miss { MISS_NONE, MISS_ABSENT, MISS_STALE, MISS_CORRUPT, MISS_VERSION };

struct src_key {
    int64_t size, mtime_ns;
};

/* A whole clip in RAM; immutable once linked, freed only with the cache, so readers use it
 * without a lock. A stale entry stays linked behind its replacement, which shadows it. */
struct ram_entry {
    struct ram_entry *next;
    char *path;
    struct src_key key;
    int n;
    uint8_t *rgb;
    int16_t *mv;
    size_t bytes;
};

struct video_cache {
    char *dir;
    int width, height, with_mv;
    double fps;
    size_t frame_bytes;       /* W * H * 3 */
    size_t field_vals;        /* 2 * W * H */
    size_t rec_bytes;
    size_t ram_budget;
    pthread_mutex_t lock;     /* the RAM tier */
    struct ram_entry *buckets[CACHE_RAM_BUCKETS];
    size_t ram_used;
    int64_t ram_entries;
    atomic_llong stats[ST_COUNT];
    atomic_ullong tmp_seq;
    atomic_int write_warned;
};

enum reader_mode { RM_NONE, RM_RAM, RM_MEM, RM_DISK };

struct video_cache_reader {
    struct video_cache *c;
    const atomic_int *stop;
    struct video_sampler *sampler;  /* made at the first decode */
    enum reader_mode mode;
    int n;
    char path[PATH_MAX];
    char entry[PATH_MAX];
    struct src_key key;
    const struct ram_entry *ram;
    int fd;                         /* the entry, in RM_DISK */
    off_t data_off;
    uint8_t *rgb;                   /* a decoded clip, cap samples */
    int16_t *mv;
    int64_t *pts;
    int cap;
    uint8_t *rec;                   /* one record */
};

/* ---- bytes ---- */

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint64_t double_bits(double d)
{
    uint64_t v;
    memcpy(&v, &d, sizeof v);
    return v;
}

/* The stored int16 fields are little-endian; on a big-endian host swap them in place. */
static void mv_to_from_le(int16_t *v, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (size_t i = 0; i < n; i++)
        v[i] = (int16_t)__builtin_bswap16((uint16_t)v[i]);
#else
    (void)v;
    (void)n;
#endif
}

static int pread_full(int fd, void *buf, size_t n, off_t off)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static void stat_add(struct video_cache *c, enum cache_stat s)
{
    atomic_fetch_add(&c->stats[s], 1);
}

/* ---- the cache ---- */

static int cache_opts_check(const struct video_cache_opts *o, struct err_msg *em)
{
    if (!o->dir || !*o->dir)
        return err_set(em, ERR_INVAL, "cache: no folder given");
    if (strlen(o->dir) > PATH_MAX - 128)
        return err_set(em, ERR_RANGE, "cache: folder name too long");
    if (o->width < VIDEO_MIN_SIDE / 2 || o->width > VIDEO_MAX_MODEL_SIDE ||
        o->height < VIDEO_MIN_SIDE / 2 || o->height > VIDEO_MAX_MODEL_SIDE)
        return err_set(em, ERR_RANGE, "cache: size %dx%d outside %d..%d", o->width, o->height,
                       VIDEO_MIN_SIDE / 2, VIDEO_MAX_MODEL_SIDE);
    if (!(o->fps > 0.0 && o->fps <= VIDEO_MAX_FPS))
        return err_set(em, ERR_RANGE, "cache: fps %g outside (0, %d]", o->fps, VIDEO_MAX_FPS);
    return 0;
}

static int cache_dir_make(const char *dir, struct err_msg *em)
{
    struct stat st;
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return err_set(em, ERR_IO, "%s: cannot create the cache folder: %s", dir, strerror(errno));
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return err_set(em, ERR_IO, "%s: the cache folder is not a folder", dir);
    return 0;
}

int video_cache_new(const struct video_cache_opts *o, struct video_cache **out, struct err_msg *em)
{
    int rc = cache_opts_check(o, em);
    if (rc < 0 || (rc = cache_dir_make(o->dir, em)) < 0)
        return rc;
    struct video_cache *c = calloc(1, sizeof *c);
    if (!c || !(c->dir = strdup(o->dir))) {
        free(c);
        return err_set(em, ERR_NOMEM, "cache: out of memory");
    }
    c->width = o->width;
    c->height = o->height;
    c->fps = o->fps;
    c->with_mv = o->motion_vectors ? 1 : 0;
    c->ram_budget = o->ram_bytes;
    c->frame_bytes = (size_t)o->width * (size_t)o->height * 3;
    c->field_vals = (size_t)o->width * (size_t)o->height * 2;
    c->rec_bytes = (c->with_mv ? c->field_vals * 2 : 0) + c->frame_bytes + 12;
    pthread_mutex_init(&c->lock, NULL);
    *out = c;
    return 0;
}

void video_cache_free(struct video_cache *c)
{
    if (!c)
        return;
    for (int b = 0; b < CACHE_RAM_BUCKETS; b++) {
        for (struct ram_entry *e = c->buckets[b], *next; e; e = next) {
            next = e->next;
            free(e->path);
            free(e->rgb);
            free(e->mv);
            free(e);
        }
    }
    pthread_mutex_destroy(&c->lock);
    free(c->dir);
    free(c);
}

void video_cache_stats(const struct video_cache *c, struct video_cache_stats *st)
{
    struct video_cache *m = (struct video_cache *)c; /* the lock only */
    *st = (struct video_cache_stats){
        .ram_hits = atomic_load(&c->stats[ST_RAM]), .disk_hits = atomic_load(&c->stats[ST_DISK]),
        .decodes = atomic_load(&c->stats[ST_DECODE]), .stale = atomic_load(&c->stats[ST_STALE]),
        .corrupt = atomic_load(&c->stats[ST_CORRUPT]), .version = atomic_load(&c->stats[ST_VERSION]),
        .write_errors = atomic_load(&c->stats[ST_WRITE])};
    pthread_mutex_lock(&m->lock);
    st->ram_entries = c->ram_entries;
    st->ram_used = c->ram_used;
    pthread_mutex_unlock(&m->lock);
}

void cache_settings(const struct video_cache *c, int *width, int *height, double *fps, int *mv)
{
    *width = c->width;
    *height = c->height;
    *fps = c->fps;
    *mv = c->with_mv;
}

int video_cache_entry_path(const struct video_cache *c, const char *src, char *buf, size_t cap,
                           struct err_msg *em)
{
    int n = snprintf(buf, cap, "%s/%016" PRIx64 "-%dx%d-%gfps-%s.adc", c->dir, hash_str(src),
                     c->width, c->height, c->fps, c->with_mv ? "mv" : "rgb");
    if (n < 0 || (size_t)n >= cap)
        return err_set(em, ERR_RANGE, "cache: entry path too long for %s", src);
    return 0;
}

/* ---- the RAM tier ---- */

static size_t clip_bytes(const struct video_cache *c, int n)
{
    return (size_t)n * (c->frame_bytes + (c->with_mv ? c->field_vals * sizeof(int16_t) : 0));
}

static const struct ram_entry *ram_find(struct video_cache *c, const char *path,
                                        const struct src_key *key)
{
    if (!c->ram_budget)
        return NULL;
    const struct ram_entry *hit = NULL;
    pthread_mutex_lock(&c->lock);
    for (const struct ram_entry *e = c->buckets[hash_str(path) % CACHE_RAM_BUCKETS]; e; e = e->next) {
        if (strcmp(e->path, path) == 0) {
            if (e->key.size == key->size && e->key.mtime_ns == key->mtime_ns)
                hit = e;
            break; /* the newest entry for a path shadows older ones */
        }
    }
    pthread_mutex_unlock(&c->lock);
    return hit;
}

/* Takes bytes out of the budget: 0, or -1 when they do not fit. */
static int ram_reserve(struct video_cache *c, size_t bytes)
{
    int ok = 0;
    pthread_mutex_lock(&c->lock);
    if (c->ram_budget && bytes <= c->ram_budget - c->ram_used) {
        c->ram_used += bytes;
        ok = 1;
    }
    pthread_mutex_unlock(&c->lock);
    return ok ? 0 : -1;
}

static void ram_unreserve(struct video_cache *c, size_t bytes)
{
    pthread_mutex_lock(&c->lock);
    c->ram_used -= bytes;
    pthread_mutex_unlock(&c->lock);
}

static void ram_entry_drop(struct video_cache *c, struct ram_entry *e)
{
    ram_unreserve(c, e->bytes);
    free(e->path);
    free(e->rgb);
    free(e->mv);
    free(e);
}

/* An entry with room for n samples, its bytes reserved; NULL when over budget or out of memory. */
static struct ram_entry *ram_entry_new(struct video_cache *c, const char *path,
                                       const struct src_key *key, int n)
{
    size_t bytes = clip_bytes(c, n);
    if (ram_reserve(c, bytes) < 0)
        return NULL;
    struct ram_entry *e = calloc(1, sizeof *e);
    if (!e) {
        ram_unreserve(c, bytes);
        return NULL;
    }
    *e = (struct ram_entry){.key = *key, .n = n, .bytes = bytes, .path = strdup(path),
                            .rgb = malloc((size_t)n * c->frame_bytes)};
    if (c->with_mv)
        e->mv = malloc((size_t)n * c->field_vals * sizeof(int16_t));
    if (!e->path || !e->rgb || (c->with_mv && !e->mv)) {
        ram_entry_drop(c, e);
        return NULL;
    }
    return e;
}

/* Links a filled entry; if another reader linked the same clip meanwhile, keeps that one. */
static const struct ram_entry *ram_link(struct video_cache *c, struct ram_entry *e)
{
    struct ram_entry **head = &c->buckets[hash_str(e->path) % CACHE_RAM_BUCKETS];
    pthread_mutex_lock(&c->lock);
    for (struct ram_entry *o = *head; o; o = o->next) {
        if (strcmp(o->path, e->path) == 0) {
            if (o->key.size == e->key.size && o->key.mtime_ns == e->key.mtime_ns) {
                pthread_mutex_unlock(&c->lock);
                ram_entry_drop(c, e);
                return o;
            }
            break;
        }
    }
    e->next = *head;
    *head = e;
    c->ram_entries++;
    pthread_mutex_unlock(&c->lock);
    return e;
}

/* ---- sources ---- */

static int src_stat(const char *path, struct src_key *key, struct err_msg *em)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return err_set(em, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return err_set(em, ERR_FORMAT, "%s: not a regular file", path);
    key->size = (int64_t)st.st_size;
    key->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    return 0;
}

/* ---- the reader ---- */

int video_cache_reader_new(struct video_cache *c, const atomic_int *stop,
                           struct video_cache_reader **out, struct err_msg *em)
{
    struct video_cache_reader *r = calloc(1, sizeof *r);
    if (!r)
        return err_set(em, ERR_NOMEM, "cache: out of memory");
    r->c = c;
    r->stop = stop;
    r->fd = -1;
    r->rec = malloc(c->rec_bytes);
    if (!r->rec) {
        free(r);
        return err_set(em, ERR_NOMEM, "cache: out of memory");
    }
    *out = r;
    return 0;
}

static void reader_close_clip(struct video_cache_reader *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    r->mode = RM_NONE;
    r->ram = NULL;
    r->n = 0;
}

void video_cache_reader_free(struct video_cache_reader *r)
{
    if (!r)
        return;
    reader_close_clip(r);
    video_sampler_free(r->sampler);
    free(r->rgb);
    free(r->mv);
    free(r->pts);
    free(r->rec);
    free(r);
}

/* ---- decoding a clip into the reader's buffer ---- */

static int clipbuf_reserve(struct video_cache_reader *r, int n)
{
    if (n <= r->cap)
        return 0;
    const struct video_cache *c = r->c;
    int cap = r->cap ? r->cap : CACHE_MIN_CAP;
    while (cap < n)
        cap *= 2;
    if (cap > VIDEO_CACHE_MAX_SAMPLES)
        cap = VIDEO_CACHE_MAX_SAMPLES;
    uint8_t *rgb = realloc(r->rgb, (size_t)cap * c->frame_bytes);
    if (rgb)
        r->rgb = rgb;
    int64_t *pts = realloc(r->pts, (size_t)cap * sizeof *pts);
    if (pts)
        r->pts = pts;
    int16_t *mv = NULL;
    if (c->with_mv && (mv = realloc(r->mv, (size_t)cap * c->field_vals * sizeof *mv)))
        r->mv = mv;
    if (!rgb || !pts || (c->with_mv && !mv))
        return ERR_NOMEM;
    r->cap = cap;
    return 0;
}

static int16_t mv_quantise(float v)
{
    float q = nearbyintf(v * VIDEO_CACHE_MV_ONE);
    return (int16_t)(q > 32767.0f ? 32767 : q < -32767.0f ? -32767 : q);
}

/* Copies the sampler's newest sample into slot n of the clip buffer. */
static int clipbuf_append(struct video_cache_reader *r, int n, struct err_msg *em)
{
    const struct video_cache *c = r->c;
    if (clipbuf_reserve(r, n + 1) < 0)
        return err_set(em, ERR_NOMEM, "cache: %s: out of memory", r->path);
    int64_t i = video_sampler_count(r->sampler) - 1;
    memcpy(r->rgb + (size_t)n * c->frame_bytes, video_sampler_rgb(r->sampler, i, &r->pts[n]),
           c->frame_bytes);
    if (c->with_mv) {
        const float *f = sampler_mv(r->sampler, i);
        int16_t *q = r->mv + (size_t)n * c->field_vals;
        for (size_t k = 0; k < c->field_vals; k++)
            q[k] = mv_quantise(f[k]);
    }
    return 0;
}

static int sampler_ready(struct video_cache_reader *r, struct err_msg *em)
{
    if (r->sampler) {
        video_sampler_reset(r->sampler);
        return 0;
    }
    const struct video_cache *c = r->c;
    /* Samples are copied out one by one, so the ring needs to hold only the newest. */
    struct video_sampler_opts so = {.width = c->width, .height = c->height, .fps = c->fps,
                                    .capacity = 1, .mean = {0, 0, 0}, .std = {1, 1, 1},
                                    .motion_mv = c->with_mv};
    return video_sampler_new(&so, &r->sampler, em);
}

static int stopped(const struct video_cache_reader *r)
{
    return r->stop && atomic_load(r->stop);
}

/* Pushes the source's frames through the sampler into the clip buffer; r->n samples result. */
static int decode_frames(struct video_cache_reader *r, struct video_source *src, struct err_msg *em)
{
    struct video_frame f;
    int n = 0, rc;
    for (;;) {
        if (stopped(r))
            return err_set(em, ERR_EOF, "%s: stopped", r->path);
        rc = video_source_read(src, &f, em);
        if (rc == ERR_EOF)
            break;
        if (rc < 0 && n > 0) {
            log_warn("cache: %s: %s; keeping the %d samples before it", r->path, err_text(em, rc), n);
            break;
        }
        if (rc < 0 || (rc = video_sampler_push(r->sampler, &f, em)) < 0)
            return rc;
        if (rc == 0)
            continue;
        if (n == VIDEO_CACHE_MAX_SAMPLES) {
            log_warn("cache: %s: longer than %d samples; keeping the first %d", r->path,
                     VIDEO_CACHE_MAX_SAMPLES, VIDEO_CACHE_MAX_SAMPLES);
            break;
        }
        if ((rc = clipbuf_append(r, n, em)) < 0)
            return rc;
        n++;
    }
    if (n == 0)
        return err_set(em, ERR_FORMAT, "%s: no frames decoded", r->path);
    r->n = n;
    return 0;
}

static int decode_clip(struct video_cache_reader *r, struct err_msg *em)
{
    struct video_source_opts so;
    video_source_opts_default(&so);
    so.export_mvs = r->c->with_mv;
    struct video_source *src = NULL;
    int rc = video_source_open(r->path, &so, &src, em);
    if (rc == 0 && (rc = sampler_ready(r, em)) == 0)
        rc = decode_frames(r, src, em);
    video_source_close(src);
    return rc;
}

/* ---- entry files ---- */

static void header_encode(const struct video_cache_reader *r, uint8_t *h)
{
    const struct video_cache *c = r->c;
    memset(h, 0, CACHE_HEADER);
    memcpy(h, CACHE_MAGIC, 8);
    put32(h + 8, VIDEO_CACHE_VERSION);
    put32(h + 12, (uint32_t)c->width);
    put32(h + 16, (uint32_t)c->height);
    put32(h + 20, c->with_mv ? CACHE_FLAG_MV : 0);
    put64(h + 24, double_bits(c->fps));
    put64(h + 32, (uint64_t)r->key.size);
    put64(h + 40, (uint64_t)r->key.mtime_ns);
    put32(h + 48, (uint32_t)r->n);
    put32(h + 52, VIDEO_CACHE_MV_ONE);
    size_t plen = strlen(r->path);
    put32(h + 56, (uint32_t)plen);
    put32(h + 60, crc32_update(crc32_update(0, h, 60), r->path, plen));
}

/* Checks a header (magic and version already seen) against the reader's clip and settings. */
static enum entry_miss header_check(const struct video_cache_reader *r, const uint8_t *h,
                                    const char *path, size_t plen)
{
    const struct video_cache *c = r->c;
    if (crc32_update(crc32_update(0, h, 60), path, plen) != get32(h + 60))
        return MISS_CORRUPT;
    uint32_t n = get32(h + 48);
    if (get32(h + 12) != (uint32_t)c->width || get32(h + 16) != (uint32_t)c->height ||
        get32(h + 20) != (c->with_mv ? CACHE_FLAG_MV : 0) || get64(h + 24) != double_bits(c->fps) ||
        get32(h + 52) != VIDEO_CACHE_MV_ONE || n < 1 || n > VIDEO_CACHE_MAX_SAMPLES)
        return MISS_CORRUPT; /* the name says these settings, so the file is damaged */
    /* Another clip whose path hashes alike, or this one changed since: decode again. */
    if (plen != strlen(r->path) || memcmp(path, r->path, plen) != 0 ||
        (int64_t)get64(h + 32) != r->key.size || (int64_t)get64(h + 40) != r->key.mtime_ns)
        return MISS_STALE;
    return MISS_NONE;
}

static enum entry_miss entry_check(struct video_cache_reader *r, int fd)
{
    uint8_t h[CACHE_HEADER];
    char path[PATH_MAX];
    struct stat st;
    if (pread_full(fd, h, sizeof h, 0) < 0 || memcmp(h, CACHE_MAGIC, 8) != 0)
        return MISS_CORRUPT;
    /* The version first: another version may lay out the rest differently. */
    if (get32(h + 8) != VIDEO_CACHE_VERSION)
        return MISS_VERSION;
    size_t plen = get32(h + 56);
    if (plen >= sizeof path || pread_full(fd, path, plen, CACHE_HEADER) < 0)
        return MISS_CORRUPT;
    enum entry_miss m = header_check(r, h, path, plen);
    if (m != MISS_NONE)
        return m;
    r->n = (int)get32(h + 48);
    r->data_off = (off_t)(CACHE_HEADER + plen);
    /* A file cut short (a crash mid-write before the rename cannot leave one, a full disk
     * or a copy can) is refused before any record is read. */
    if (fstat(fd, &st) < 0 || st.st_size != r->data_off + (off_t)r->n * (off_t)r->c->rec_bytes)
        return MISS_CORRUPT;
    return MISS_NONE;
}

static void entry_refuse(struct video_cache_reader *r, enum entry_miss why, const char *what)
{
    static const enum cache_stat stat_of[] = {[MISS_STALE] = ST_STALE, [MISS_CORRUPT] = ST_CORRUPT,
                                              [MISS_VERSION] = ST_VERSION};
    stat_add(r->c, stat_of[why]);
    if (why == MISS_CORRUPT)
        log_warn("cache: %s: entry for %s is damaged (%s); decoding again", r->entry, r->path, what);
    else
        log_debug("cache: %s: entry for %s is %s; decoding again", r->entry, r->path, what);
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    unlink(r->entry);
}

/* Opens the entry file: MISS_NONE with r->fd, r->n, r->data_off set, or why not. */
static enum entry_miss entry_open(struct video_cache_reader *r)
{
    int fd = open(r->entry, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return MISS_ABSENT;
    r->fd = fd;
    enum entry_miss m = entry_check(r, fd);
    if (m != MISS_NONE)
        entry_refuse(r, m, m == MISS_STALE ? "stale" : m == MISS_VERSION ? "of another version"
                                                                         : "bad header");
    return m;
}

/* Reads record i into r->rec: 0, or -1 when it cannot be read or fails its CRC. */
static int record_read(struct video_cache_reader *r, int i)
{
    const struct video_cache *c = r->c;
    size_t body = c->rec_bytes - 4;
    if (pread_full(r->fd, r->rec, c->rec_bytes, r->data_off + (off_t)i * (off_t)c->rec_bytes) < 0 ||
        crc32_update(0, r->rec, body) != get32(r->rec + body))
        return -1;
    if (c->with_mv)
        mv_to_from_le((int16_t *)(void *)r->rec, c->field_vals);
    return 0;
}

static void record_encode(struct video_cache_reader *r, int i)
{
    const struct video_cache *c = r->c;
    uint8_t *p = r->rec;
    if (c->with_mv) {
        memcpy(p, r->mv + (size_t)i * c->field_vals, c->field_vals * sizeof(int16_t));
        mv_to_from_le((int16_t *)(void *)p, c->field_vals);
        p += c->field_vals * sizeof(int16_t);
    }
    memcpy(p, r->rgb + (size_t)i * c->frame_bytes, c->frame_bytes);
    p += c->frame_bytes;
    put64(p, (uint64_t)r->pts[i]);
    p += 8;
    put32(p, crc32_update(0, r->rec, (size_t)(p - r->rec)));
}

static int entry_write_to(struct video_cache_reader *r, int fd)
{
    uint8_t h[CACHE_HEADER];
    header_encode(r, h);
    if (write_full(fd, h, sizeof h) < 0 || write_full(fd, r->path, strlen(r->path)) < 0)
        return -1;
    for (int i = 0; i < r->n; i++) {
        record_encode(r, i);
        if (write_full(fd, r->rec, r->c->rec_bytes) < 0)
            return -1;
    }
    return 0;
}

/* Writes the decoded clip under a temporary name and renames it into place: a reader sees the
 * old entry or the new one, never half of one. No fsync: an entry lost or torn by a power cut
 * fails its checks and is decoded again. Failing to write costs speed, not correctness. */
static void entry_write(struct video_cache_reader *r)
{
    struct video_cache *c = r->c;
    char tmp[PATH_MAX + 64];
    const char *base = strrchr(r->entry, '/') + 1;
    snprintf(tmp, sizeof tmp, "%s/.%s.%ld.%llu.tmp", c->dir, base, (long)getpid(),
             (unsigned long long)atomic_fetch_add(&c->tmp_seq, 1));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    int ok = fd >= 0 && entry_write_to(r, fd) == 0;
    int err = errno;
    if (fd >= 0 && close(fd) < 0 && ok) {
        ok = 0;
        err = errno;
    }
    if (ok && rename(tmp, r->entry) < 0) {
        ok = 0;
        err = errno;
    }
    if (ok)
        return;
    if (fd >= 0)
        unlink(tmp);
    stat_add(c, ST_WRITE);
    if (!atomic_exchange(&c->write_warned, 1))
        log_warn("cache: cannot write entries in %s (%s); clips are decoded again every time",
                 c->dir, strerror(err));
}

/* ---- opening a clip ---- */

/* Decodes the clip (cold, or in place of a refused entry) and stores it. */
static int decode_and_store(struct video_cache_reader *r, struct err_msg *em)
{
    reader_close_clip(r);
    stat_add(r->c, ST_DECODE);
    int rc = decode_clip(r, em);
    if (rc < 0)
        return rc;
    entry_write(r);
    struct ram_entry *e = ram_entry_new(r->c, r->path, &r->key, r->n);
    if (e) {
        memcpy(e->rgb, r->rgb, (size_t)r->n * r->c->frame_bytes);
        if (r->c->with_mv)
            memcpy(e->mv, r->mv, (size_t)r->n * r->c->field_vals * sizeof(int16_t));
        ram_link(r->c, e);
    }
    r->mode = RM_MEM;
    return 0;
}

/* Reads every record of the open entry into a RAM entry: 0, 1 when it does not fit, -1 when a
 * record is bad (the entry is refused). */
static int ram_from_disk(struct video_cache_reader *r)
{
    const struct video_cache *c = r->c;
    struct ram_entry *e = ram_entry_new(r->c, r->path, &r->key, r->n);
    if (!e)
        return 1;
    size_t mv_bytes = c->with_mv ? c->field_vals * sizeof(int16_t) : 0;
    for (int i = 0; i < r->n; i++) {
        if (record_read(r, i) < 0) {
            ram_entry_drop(r->c, e);
            entry_refuse(r, MISS_CORRUPT, "a sample's CRC");
            return -1;
        }
        if (c->with_mv)
            memcpy(e->mv + (size_t)i * c->field_vals, r->rec, mv_bytes);
        memcpy(e->rgb + (size_t)i * c->frame_bytes, r->rec + mv_bytes, c->frame_bytes);
    }
    close(r->fd);
    r->fd = -1;
    r->ram = ram_link(r->c, e);
    r->mode = RM_RAM;
    return 0;
}

int video_cache_reader_open(struct video_cache_reader *r, const char *path, int *samples,
                            struct err_msg *em)
{
    reader_close_clip(r);
    if (strlen(path) >= sizeof r->path)
        return err_set(em, ERR_RANGE, "cache: path too long: %.80s...", path);
    strcpy(r->path, path);
    int rc = src_stat(path, &r->key, em);
    if (rc < 0)
        return rc;
    if ((r->ram = ram_find(r->c, path, &r->key))) {
        stat_add(r->c, ST_RAM);
        r->mode = RM_RAM;
        r->n = r->ram->n;
        *samples = r->n;
        return 0;
    }
    if ((rc = video_cache_entry_path(r->c, path, r->entry, sizeof r->entry, em)) < 0)
        return rc;
    if (entry_open(r) == MISS_NONE) {
        stat_add(r->c, ST_DISK);
        r->mode = RM_DISK;
        if (ram_from_disk(r) >= 0) {
            *samples = r->n;
            return 0;
        }
    }
    if ((rc = decode_and_store(r, em)) < 0)
        return rc;
    *samples = r->n;
    return 0;
}

int video_cache_reader_sample(struct video_cache_reader *r, int i, const uint8_t **rgb,
                              const int16_t **mv, struct err_msg *em)
{
    const struct video_cache *c = r->c;
    if (r->mode == RM_NONE)
        return err_set(em, ERR_INVAL, "cache: no clip open");
    if (i < 0 || i >= r->n)
        return err_set(em, ERR_RANGE, "cache: %s: sample %d outside 0..%d", r->path, i, r->n - 1);
    if (r->mode == RM_DISK && record_read(r, i) == 0) {
        size_t mv_bytes = c->with_mv ? c->field_vals * sizeof(int16_t) : 0;
        *rgb = r->rec + mv_bytes;
        *mv = c->with_mv ? (const int16_t *)(const void *)r->rec : NULL;
        return 0;
    }
    if (r->mode == RM_DISK) {
        int n = r->n;
        entry_refuse(r, MISS_CORRUPT, "a sample's CRC");
        int rc = decode_and_store(r, em);
        if (rc < 0)
            return rc;
        if (r->n != n) /* the decoder changed under the entry; the caller's picks are void */
            return err_set(em, ERR_CORRUPT, "cache: %s: %d samples decoded, the entry said %d",
                           r->path, r->n, n);
    }
    const uint8_t *base = r->mode == RM_RAM ? r->ram->rgb : r->rgb;
    const int16_t *mvb = r->mode == RM_RAM ? r->ram->mv : r->mv;
    *rgb = base + (size_t)i * c->frame_bytes;
    *mv = c->with_mv ? mvb + (size_t)i * c->field_vals : NULL;
    return 0;
}
