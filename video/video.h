/* video.h — the public door of video/: sources (decode), the sampler, clips of RGB frames and
 * motion fields, an H.264 MP4 writer, the synthetic action data set, and data sets for training
 * (lists, decoded-clip cache, augmentation, batch loader). video/ depends on common/ and FFmpeg
 * only; it hands float planes to callers, never nn/ types. */
#ifndef ACTIOND_VIDEO_VIDEO_H
#define ACTIOND_VIDEO_VIDEO_H

#include "common/common.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

/* Bounds on every size that reaches video/ from a user or a file: enough for 1080p at 60 fps,
 * small enough that one frame's buffers can never ask for absurd memory. */
#define VIDEO_MIN_SIDE 16
#define VIDEO_MAX_WIDTH 1920
#define VIDEO_MAX_HEIGHT 1080
#define VIDEO_MAX_FPS 60

/* FFmpeg's own log output follows ours: quiet unless debug, because video/ reports every
 * failure itself through err_msg. Process-wide (FFmpeg's setting is); call from main. */
void video_log_setup(enum log_level level);

/* ---- sources: a file or stream, demuxed by libavformat, decoded by libavcodec ---- */

#define VIDEO_MAX_DECODER_THREADS 16
/* Undecodable packets in a row before a source gives up: a camera's burst of loss is a few
 * dozen packets, a file of garbage is thousands. */
#define VIDEO_MAX_CORRUPT_RUN 256
#define VIDEO_DEFAULT_TIMEOUT_MS 10000

struct video_source_opts {
    int threads;               /* decoder threads, 1..VIDEO_MAX_DECODER_THREADS */
    const char *hw_decoder;    /* a libavcodec decoder name ("h264_v4l2m2m"); NULL = software.
                                * When it cannot open, the source logs a warning and decodes in
                                * software. */
    int open_timeout_ms;       /* opening (connect, probe) gives up after this: ERR_TIMEOUT */
    int stall_timeout_ms;      /* no frame for this long while reading: ERR_STALL */
    int export_mvs;            /* ask the decoder for motion vectors (motion kind mv) */
    const atomic_int *stop;    /* if set and non-zero, blocking calls return ERR_EOF; another
                                * thread may set it (a C11 atomic, not a signal flag) */
    const char *rtsp_transport; /* rtsp://: "tcp" (NULL: the default, survives NAT and loss)
                                 * or "udp" */
    const char *input_format;  /* a libavformat demuxer ("v4l2", "mpegts"); NULL probes, and
                                * /dev/video* means "v4l2" */
    const char *video_size;    /* devices: "640x480"; NULL = the device's default */
    int framerate;             /* devices: frames per second; 0 = the device's default */
};

/* One thread, software decoding, 10 s timeouts, no motion vectors, RTSP over TCP. */
void video_source_opts_default(struct video_source_opts *o);

/* A decoded picture, valid until the next video_source_read or video_source_close. */
struct video_frame {
    int width, height;
    int format;               /* an AVPixelFormat */
    const uint8_t *data[4];
    int linesize[4];
    int64_t pts_us;           /* presentation time from the start of the stream */
    int key;                  /* an I-frame */
    const void *av;           /* the AVFrame behind it (side data); NULL for frames made by hand */
};

struct video_source_info {
    int width, height;
    double fps;               /* the stream's average rate; 0 when the container does not say */
    double duration_s;        /* 0 when unknown (live streams) */
    char codec[32];           /* "h264" */
    char decoder[32];         /* the decoder in use: "h264" or a hardware one */
};

struct video_source_stats {
    int64_t packets;          /* video packets read */
    int64_t frames;           /* frames delivered */
    int64_t corrupt;          /* packets skipped: flagged corrupt or refused by the decoder */
    int64_t damaged;          /* frames delivered with errors the decoder concealed */
};

struct video_source;

/* Errors: ERR_NOTFOUND (no such file), ERR_FORMAT (not a readable container or stream),
 * ERR_UNSUPPORTED (no video stream, or no decoder for its codec), ERR_TIMEOUT, ERR_IO. */
int video_source_open(const char *url, const struct video_source_opts *o, struct video_source **out,
                      struct err_msg *em);
/* 0 and a frame; ERR_EOF at the end of the stream; ERR_STALL when no frame came for
 * stall_timeout_ms; ERR_FORMAT after VIDEO_MAX_CORRUPT_RUN undecodable packets in a row;
 * ERR_IO when reading fails. Corrupt packets on their own are skipped and counted. */
int video_source_read(struct video_source *s, struct video_frame *f, struct err_msg *em);
void video_source_info(const struct video_source *s, struct video_source_info *info);
void video_source_stats(const struct video_source *s, struct video_source_stats *st);
void video_source_close(struct video_source *s);

/* ---- dense optical flow (motion kind flow): Farnebäck polynomial expansion, see flow.c ---- */

/* Bounds of the flow options: past them the work per frame grows with no gain at model sizes
 * (the 7th level of a 1024-pixel side is 16 pixels; a 41-pixel window pools over a third of a
 * 112-pixel frame). */
#define VIDEO_FLOW_MAX_LEVELS 7
#define VIDEO_FLOW_MAX_ITERATIONS 10
#define VIDEO_FLOW_MAX_WINDOW 41
#define VIDEO_FLOW_MAX_POLY_N 4
/* A pyramid level is made only while its shorter side stays at least this: below it the
 * polynomial neighbourhood and the averaging window cover the whole image. */
#define VIDEO_FLOW_MIN_LEVEL_SIDE 12

/* Zero in any field takes its default, so a zeroed struct is the documented configuration. */
struct video_flow_opts {
    int levels;       /* pyramid levels counting full size, 1..VIDEO_FLOW_MAX_LEVELS (3); fewer
                       * when a level would fall under VIDEO_FLOW_MIN_LEVEL_SIDE */
    int iterations;   /* displacement updates per level, 1..VIDEO_FLOW_MAX_ITERATIONS (3) */
    int window;       /* odd side of the Gaussian window that pools the per-pixel constraints,
                       * 3..VIDEO_FLOW_MAX_WINDOW (13; sigma = side / 4) */
    int poly_n;       /* radius of the polynomial fit's neighbourhood, 1..VIDEO_FLOW_MAX_POLY_N (2) */
    float poly_sigma; /* sigma of its Gaussian applicability, (0, poly_n] (0.75 * poly_n) */
};

/* Fills o with the defaults spelled out: 3 levels, 3 iterations, window 13, poly_n 2,
 * poly_sigma 1.5. */
void video_flow_opts_default(struct video_flow_opts *o);

struct video_flow;

/* A flow context for width x height grey images (VIDEO_MIN_SIDE/2..VIDEO_MAX_MODEL_SIDE a side):
 * everything is allocated here, nothing per frame. ERR_RANGE for sizes or options out of bounds. */
int video_flow_new(int width, int height, const struct video_flow_opts *o, struct video_flow **out,
                   struct err_msg *em);
void video_flow_free(struct video_flow *f);
/* Forgets the previous image (a new stream). */
void video_flow_reset(struct video_flow *f);
/* Takes the next image grey[H][W] (any fixed brightness scale, finite values) and writes the
 * flow from the previous image to it into out[2][H][W]: channel 0 = x (right positive), 1 = y
 * (down positive), pixels per image pair, at the previous image's pixels. The previous image's
 * pyramid and expansion are kept, so a stream costs one expansion per image. Returns 1, or 0
 * with out zeroed when there was no previous image. */
int video_flow_push(struct video_flow *f, const float *grey, float *out);
/* The flow from a to b, as push(a) then push(b) after a reset. */
void video_flow_pair(struct video_flow *f, const float *a, const float *b, float *out);

/* ---- the sampler: frames at the model's rate and size, kept in a ring ---- */

/* Samples kept at once: a minute at 16 fps, far above any clip window. */
#define VIDEO_MAX_RING 1024
#define VIDEO_MAX_MODEL_SIDE 1024

struct video_sampler_opts {
    int width, height;        /* the model's input size, VIDEO_MIN_SIDE/2..VIDEO_MAX_MODEL_SIDE */
    double fps;               /* samples per second, (0, VIDEO_MAX_FPS] */
    int capacity;             /* samples kept, 1..VIDEO_MAX_RING */
    float mean[3], std[3];    /* per channel, on x/255: plane = (x/255 - mean) / std */
    int motion_mv;            /* also keep each sample's motion-vector field (needs export_mvs) */
    int motion_flow;          /* also compute each sample's optical flow from the previous one */
    struct video_flow_opts flow; /* with motion_flow; zeroed = the defaults */
};

struct video_sampler;

int video_sampler_new(const struct video_sampler_opts *o, struct video_sampler **out,
                      struct err_msg *em);
void video_sampler_free(struct video_sampler *s);
/* Forgets samples and timing, for a new stream (a reconnect). */
void video_sampler_reset(struct video_sampler *s);
/* Offers a decoded frame. Sampling times are t0 + k/fps from the first frame's t0; a frame is
 * taken when its timestamp reaches the next sampling time (1 ms tolerance), and the next time is
 * the first one after it — so 25 -> 10 fps takes frames 0, 3, 5, 8, 10 ... by timestamp, and a
 * gap in the stream skips sampling times instead of bunching samples. 1 taken, 0 skipped. */
int video_sampler_push(struct video_sampler *s, const struct video_frame *f, struct err_msg *em);
/* Pushes every frame of src until its end: 0 at ERR_EOF, or the source's error. */
int video_sampler_read_all(struct video_sampler *s, struct video_source *src, struct err_msg *em);
/* Samples taken since the last reset; sample i is kept while i >= count - capacity. */
int64_t video_sampler_count(const struct video_sampler *s);
/* Sample i as packed RGB24 at model size and its timestamp; NULL when it is not kept. */
const uint8_t *video_sampler_rgb(const struct video_sampler *s, int64_t i, int64_t *pts_us);
/* Sample i as normalised planes out[3][H][W]; ERR_RANGE when it is not kept. */
int video_sampler_planes(const struct video_sampler *s, int64_t i, float *out);

/* ---- clips: K segments x (one RGB frame + L motion fields), TSN-style ---- */

#define VIDEO_MAX_SEGMENTS 32
#define VIDEO_MAX_MOTION_LEN 16

/* How motion is made. Each of the L steps between consecutive samples gives 2 channels:
 * - DIFF: the temporal difference of luma d = Y(t+1) - Y(t), Y = (0.299R + 0.587G + 0.114B)/255,
 *   split into its positive and negative parts: channel 2l = max(d, 0), 2l+1 = max(-d, 0), so
 *   both lie in [0, 1]; a brightening and a darkening edge stay apart, which a single signed
 *   channel squashed by a ReLU would not.
 * - MV: codec motion vectors, channel 2l = x, 2l+1 = y, pixels per sample at model size.
 *   Needs a source with export_mvs and a sampler with motion_mv.
 * - FLOW: dense optical flow (Farnebäck, video_flow_*) of the luma of samples l -> l+1, channel
 *   2l = x, 2l+1 = y, pixels per sample at model size, computed by the sampler as each sample
 *   arrives (motion_flow); it sees only the sampled frames, so it needs no codec support and
 *   works on any source, at the cost of CPU time per sample. */
enum video_motion { VIDEO_MOTION_DIFF, VIDEO_MOTION_MV, VIDEO_MOTION_FLOW, VIDEO_MOTION_COUNT };

const char *video_motion_name(enum video_motion m);
/* VIDEO_MOTION_COUNT when the name is not a kind. */
enum video_motion video_motion_from_name(const char *name);

struct video_clip_opts {
    int segments;             /* K, 1..VIDEO_MAX_SEGMENTS */
    int length;               /* L, 1..VIDEO_MAX_MOTION_LEN */
    enum video_motion motion;
};

/* Plain float arrays a caller hands to the network's two inputs. */
struct video_clip {
    int segments, length, width, height;
    enum video_motion kind;   /* what motion holds */
    float *rgb;               /* [K][3][H][W], normalised with the sampler's mean/std */
    float *motion;            /* [K][2L][H][W] */
    int64_t first, count;     /* the window: sample indices [first, first + count) */
    int64_t start_us, end_us; /* timestamps of the window's first and last samples */
};

int video_clip_new(const struct video_clip_opts *o, int width, int height, struct video_clip **out,
                   struct err_msg *em);
void video_clip_free(struct video_clip *c);
/* Fills c from the window of samples [first, first + n) (all still kept, n >= L + 1): the window
 * splits into K equal segments and each gives a snippet of L + 1 consecutive samples, centred in
 * its segment, or at a uniformly random place in it drawn from *rng when rng is not NULL (for
 * training); the RGB frame is the snippet's sample L/2, motion step l goes from sample l to l+1. */
int video_clip_fill(struct video_clip *c, const struct video_sampler *s, int64_t first, int64_t n,
                    uint64_t *rng, struct err_msg *em);
/* For a sliding window of `window` samples moved by `stride`: 1 (and *first) when the sample
 * count has just completed a window, else 0. */
int video_clip_window_due(int64_t count, int64_t window, int64_t stride, int64_t *first);

/* ---- H.264 MP4 writer: encodes like a camera (main profile, no B-frames, fixed GOP). ---- */

struct video_writer;

struct video_writer_opts {
    int width, height; /* even, VIDEO_MIN_SIDE..VIDEO_MAX_* */
    int fps;           /* 1..VIDEO_MAX_FPS */
    int gop;           /* frames between I-frames; 0 = 2 s worth */
    int crf;           /* x264 constant rate factor 0..51; 0 = the default 23 */
};

/* The container follows the name: .ts MPEG-TS (streamable), .mkv Matroska, anything else MP4. */
int video_writer_open(const char *path, const struct video_writer_opts *o, struct video_writer **out,
                      struct err_msg *em);
/* Encodes one yuv420p frame (BT.601, limited range): planes Y, U, V with their strides. */
int video_writer_write(struct video_writer *w, const uint8_t *const planes[3], const int strides[3],
                       struct err_msg *em);
/* Flushes the encoder and writes the MP4 index; the file is complete only after this. */
int video_writer_finish(struct video_writer *w, struct err_msg *em);
/* Frees everything; a writer not finished leaves an incomplete file. NULL is a no-op. */
void video_writer_free(struct video_writer *w);

/* ---- synth: a labelled action data set in the spirit of the Weizmann set ---- */

#define VIDEO_SYNTH_CLASS_MAP(X) \
    X(BEND, "bend")              \
    X(JACK, "jack")              \
    X(JUMP, "jump")              \
    X(PJUMP, "pjump")            \
    X(RUN, "run")                \
    X(SIDE, "side")              \
    X(SKIP, "skip")              \
    X(WALK, "walk")              \
    X(WAVE1, "wave1")            \
    X(WAVE2, "wave2")

enum video_synth_class {
#define VIDEO_SYNTH_ENUM_(name, str) VIDEO_SYNTH_##name,
    VIDEO_SYNTH_CLASS_MAP(VIDEO_SYNTH_ENUM_)
#undef VIDEO_SYNTH_ENUM_
    VIDEO_SYNTH_CLASS_COUNT
};

/* No actor at all: an empty scene (tests use it for a motion-free clip). */
#define VIDEO_SYNTH_NONE (-1)

/* Bounds of the synth options: a data set stays below ~10^5 clips and a clip below a minute. */
#define VIDEO_SYNTH_MAX_CLIPS_PER_CLASS 10000
#define VIDEO_SYNTH_MAX_SECONDS 60.0
#define VIDEO_SYNTH_MIN_SECONDS 0.2
#define VIDEO_SYNTH_MAX_SEQUENCE_SECONDS 600.0
#define VIDEO_SYNTH_MAX_THREADS 16
#define VIDEO_SYNTH_MAX_TEST_FRACTION 0.9

struct video_synth_opts {
    int classes;          /* the first N classes of the table, 1..VIDEO_SYNTH_CLASS_COUNT */
    int clips_per_class;  /* 1..VIDEO_SYNTH_MAX_CLIPS_PER_CLASS */
    uint64_t seed;
    int width, height;    /* even, VIDEO_MIN_SIDE..VIDEO_MAX_* */
    int fps;              /* 1..VIDEO_MAX_FPS */
    double seconds;       /* per clip, VIDEO_SYNTH_MIN_SECONDS..VIDEO_SYNTH_MAX_SECONDS */
    double test_fraction; /* share of each class in testlist.txt, 0..VIDEO_SYNTH_MAX_TEST_FRACTION */
    int threads;          /* clips encoded at once, 1..VIDEO_SYNTH_MAX_THREADS */
    int progress;         /* log a progress line every this many clips; 0 = never */
};

/* 10 classes, 40 clips per class, 320x240, 25 fps, 3 s, 20 % test, 2 threads, seed 1. */
void video_synth_opts_default(struct video_synth_opts *o);
/* 0 or ERR_RANGE naming the field out of bounds. */
int video_synth_opts_check(const struct video_synth_opts *o, struct err_msg *em);

const char *video_synth_class_name(int cls);
/* The class index for a name, or -1. */
int video_synth_class_find(const char *name);

/* Writes DIR/Class/Class_NNN.mp4 for every clip, DIR/classInd.txt ("1 bend"), DIR/trainlist.txt
 * ("bend/bend_000.mp4 1") and DIR/testlist.txt ("bend/bend_004.mp4"). Clip j of a class goes to
 * the test list when floor((j+1)m/n) > floor(jm/n), m = round(n * test_fraction) kept within
 * [1, n-1] when n >= 2 and the fraction is not 0: the test clips spread evenly over each class.
 * Same options and seed give byte-identical files, whatever the thread count. */
int video_synth_dataset(const char *dir, const struct video_synth_opts *o, struct err_msg *em);

/* One clip, for tests and tools that need control over what moves. */
struct video_synth_clip {
    int cls;             /* a class, or VIDEO_SYNTH_NONE */
    uint64_t seed;       /* everything random in the clip comes from this */
    int direction;       /* +1 moves/faces right, -1 left, 0 random */
    float speed_px_s;    /* > 0: the actor travels at exactly this many pixels per second */
    int figure_height;   /* > 0: the actor's height in pixels */
    int clean;           /* 1: no noise, shake, pan, flicker or distractors */
};

int video_synth_clip_write(const char *path, const struct video_synth_clip *c,
                           const struct video_synth_opts *o, struct err_msg *em);

/* One long clip of one actor doing several actions in turn (2.5-5 s each, never the same twice
 * running, from the first o->classes classes), with a static camera; `seconds` is its length.
 * The timeline goes to timeline_path as CSV: a header "start_s,end_s,action", then one row per
 * action, e.g. "0.000,3.240,walk"; rows tile [0, seconds). */
int video_synth_sequence(const char *mp4_path, const char *timeline_path,
                         const struct video_synth_opts *o, double seconds, struct err_msg *em);

/* ---- data sets: UCF101-style folders and lists, a decoded-clip cache, augmentation, batches ---- */

/* Bounds on what a data set folder may hold. A list line fits a long relative path and a label;
 * UCF101 has 13320 clips in 101 classes and Kinetics-700 about 650 000 in 700. */
#define VIDEO_DATASET_MAX_LINE 1024
#define VIDEO_DATASET_MAX_CLIPS 1000000
#define VIDEO_DATASET_MAX_CLASSES 1000
#define VIDEO_DATASET_MAX_NAME 64      /* a class name, with its NUL */
#define VIDEO_DATASET_MAX_PATH 512     /* a clip's path relative to the folder, with its NUL */
#define VIDEO_DATASET_MAX_VAL_FRACTION 0.9

struct video_dataset;

/* Opens the data set in folder dir for split "train", "test" or "all":
 * - classInd.txt ("1 bend", numbered 1..N) names the classes; without it the classes are the
 *   folder's subfolders in byte order, numbered from 1.
 * - trainlist.txt lines are "Class/clip.ext LABEL" (LABEL 1-based), testlist.txt lines
 *   "Class/clip.ext"; either list may carry the label or leave it to the folder name. Blank lines,
 *   '#' comments, CR LF endings and a UTF-8 BOM are accepted.
 * - A split whose list is missing is every clip in the class folders (*.mp4, *.avi, ...) that
 *   the other list does not name; with no lists at all every split is every clip found.
 * - "all" is train then test; a clip in both lists is kept once, with a warning.
 * Errors name the file and line: "trainlist.txt:12: label 11 out of range 1..10" (ERR_RANGE),
 * bad syntax (ERR_FORMAT), a path that is absolute or has a "..", "." or empty component
 * (ERR_INVAL: a list never reaches outside its folder). A listed clip that is missing, not a
 * regular file, empty or unreadable is skipped with a warning naming it; no clip left is
 * ERR_NOTFOUND. Symbolic links inside the folder are followed, deliberately: they are how large
 * sets are assembled from other disks. */
int video_dataset_open(const char *dir, const char *split, struct video_dataset **out,
                       struct err_msg *em);
void video_dataset_free(struct video_dataset *ds);
/* The folder as an absolute path. */
const char *video_dataset_dir(const struct video_dataset *ds);
int video_dataset_count(const struct video_dataset *ds);
int video_dataset_class_count(const struct video_dataset *ds);
/* Class cls (0-based) or NULL. */
const char *video_dataset_class_name(const struct video_dataset *ds, int cls);
/* Clip i's absolute path (what video_source_open takes) and its path relative to the folder;
 * NULL when i is out of range. */
const char *video_dataset_path(const struct video_dataset *ds, int i);
const char *video_dataset_relpath(const struct video_dataset *ds, int i);
/* Clip i's class, 0-based; -1 when i is out of range. */
int video_dataset_label(const struct video_dataset *ds, int i);
/* Listed clips left out because they were missing or unreadable. */
int video_dataset_skipped(const struct video_dataset *ds);

/* Carves a validation split out of ds, class by class: of a class's n clips, m = round(n * f)
 * (kept within [1, n-1] when n >= 2 and f > 0) chosen at random from seed go to val, the rest
 * to train. train and val must each hold video_dataset_count(ds) ints; both come out in
 * ascending order. Same data set, fraction and seed give the same split. f in
 * [0, VIDEO_DATASET_MAX_VAL_FRACTION]. */
int video_dataset_split(const struct video_dataset *ds, double val_fraction, uint64_t seed,
                        int *train, int *n_train, int *val, int *n_val, struct err_msg *em);

/* The decoded-clip cache. A clip is decoded once, at the model's fps and size, into one file per
 * clip and setting in the cache folder: every sample as packed RGB24 and, for motion vectors,
 * the field [2][H][W] as int16 in 1/VIDEO_CACHE_MV_ONE pixel (DIFF is recomputed from the RGB,
 * which costs less than reading it). The file carries a magic, a version, its key (the source's
 * path, size and mtime; width, height, fps, whether it holds vectors) and a CRC-32 per sample;
 * an entry that is stale, corrupt or of another version is decoded again, never used. Entries
 * are written to a temporary name and renamed, so readers never see half a file. The format is
 * described at the top of video/cache.c. An optional RAM tier keeps whole decoded clips up to a
 * byte budget: the first clips that fit stay (under a random order per epoch LRU would evict
 * as often as it hits, for the same hit rate). */
#define VIDEO_CACHE_MV_ONE 32
/* Samples kept of one clip: 41 s at 25 fps; a longer clip keeps its first this many, with a
 * warning. */
#define VIDEO_CACHE_MAX_SAMPLES VIDEO_MAX_RING
#define VIDEO_CACHE_VERSION 2 /* 2: frames resized with SWS_AREA */

struct video_cache_opts {
    const char *dir;          /* the cache folder; created (one level) when missing */
    int width, height;        /* the model's input size */
    double fps;               /* samples per second */
    int motion_vectors;       /* also decode and keep codec motion vectors (motion kind mv) */
    size_t ram_bytes;         /* RAM tier budget; 0 = none */
};

struct video_cache_stats {
    int64_t ram_hits, disk_hits;   /* clips opened from RAM, from an entry file */
    int64_t decodes;               /* clips decoded (cold, or replacing a bad entry) */
    int64_t stale, corrupt, version; /* entries refused, by reason */
    int64_t write_errors;          /* entries that could not be written */
    int64_t ram_entries;
    size_t ram_used;
};

struct video_cache;
struct video_cache_reader;

int video_cache_new(const struct video_cache_opts *o, struct video_cache **out, struct err_msg *em);
/* Frees the cache and its RAM tier; every reader of it must be freed first. NULL is a no-op. */
void video_cache_free(struct video_cache *c);
void video_cache_stats(const struct video_cache *c, struct video_cache_stats *st);
/* The entry file's path for a source file (for tools and tests); 0 or ERR_RANGE if too long. */
int video_cache_entry_path(const struct video_cache *c, const char *src, char *buf, size_t cap,
                           struct err_msg *em);

/* A reader opens one clip at a time through the cache; one per thread. stop (may be NULL), set
 * by another thread, ends a decode in progress at the next frame (ERR_EOF): files never block
 * long, and a C11 atomic is what one thread may safely set for another. */
int video_cache_reader_new(struct video_cache *c, const atomic_int *stop,
                           struct video_cache_reader **out, struct err_msg *em);
void video_cache_reader_free(struct video_cache_reader *r);
/* Opens the clip at path (an absolute path is the stable key): from RAM, from its entry file,
 * or by decoding it (then writing the entry). *samples gets the sample count, >= 1. Errors are
 * the source's (ERR_NOTFOUND, ERR_FORMAT, ...), ERR_FORMAT when no frame decodes. */
int video_cache_reader_open(struct video_cache_reader *r, const char *path, int *samples,
                            struct err_msg *em);
/* Sample i of the open clip: RGB24 [H][W][3] and, with motion vectors, the field [2][H][W] in
 * 1/VIDEO_CACHE_MV_ONE pixel (else *mv = NULL). Valid until the next call on r. A sample whose
 * CRC fails makes the reader decode the clip again and answer from that. */
int video_cache_reader_sample(struct video_cache_reader *r, int i, const uint8_t **rgb,
                              const int16_t **mv, struct err_msg *em);

/* Training augmentation on decoded uint8 samples, before normalisation: a random crop whose area
 * is VIDEO_AUGMENT_MIN_AREA..1 of the frame with an aspect ratio of 3/4..4/3 of the frame's
 * (clipped to the frame), resized back to the frame's size (bilinear), then a left-right mirror
 * with probability 1/2. One draw serves every frame and motion field of a clip. Motion vectors
 * are scaled by the resize and their x negated by the mirror; DIFF, made from the augmented
 * frames, is mirrored with them and has no direction to flip. */
#define VIDEO_AUGMENT_MIN_AREA 0.8

struct video_augment {
    int x, y, w, h;           /* the crop within the width x height sample */
    int flip;                 /* mirror left-right */
};

/* The whole frame, no mirror: what evaluation uses. */
void video_augment_identity(int width, int height, struct video_augment *a);
/* Draws a crop and a mirror from *rng (video/'s splitmix64 state). */
void video_augment_random(uint64_t *rng, int width, int height, struct video_augment *a);
/* src and dst RGB24 [height][width][3], distinct buffers. */
void video_augment_rgb(const struct video_augment *a, const uint8_t *src, int width, int height,
                       uint8_t *dst);
/* src int16 [2][height][width] in 1/VIDEO_CACHE_MV_ONE pixel; dst float [2][height][width] in
 * pixels of the augmented frame. */
void video_augment_mv(const struct video_augment *a, const int16_t *src, int width, int height,
                      float *dst);

/* The batch loader: clips of a data set, decoded through the cache by worker threads, sampled TSN
 * style, augmented, normalised and packed into batches ahead of the caller (double-buffered).
 * For an epoch the clips are put in an order (shuffled from seed and the epoch number, or as
 * given), every clip once; each clip's snippet offsets and augmentation come from seed, the
 * epoch and the clip alone, so batches are identical for a seed whatever the threads' timing. A
 * clip that cannot be read is skipped with a warning naming it (the batch takes the next clip)
 * and left out of later epochs; an epoch with no readable clip is an error. */
#define VIDEO_LOADER_MAX_BATCH 256
#define VIDEO_LOADER_MAX_THREADS 16
/* All the loader's float buffers together: batches, staged clips. */
#define VIDEO_LOADER_MAX_BYTES ((size_t)2 << 30)

struct video_loader_opts {
    int width, height;        /* the model's input */
    double fps;
    float mean[3], std[3];    /* RGB planes are (x/255 - mean) / std, as the sampler makes them */
    int segments, length;     /* K, L */
    enum video_motion motion;
    int batch;                /* clips per batch, 1..VIDEO_LOADER_MAX_BATCH */
    int shuffle;              /* a new order every epoch */
    int augment;              /* training: random snippets in each segment and augmentation;
                               * 0: centred snippets, frames as decoded (evaluation) */
    uint64_t seed;
    int threads;              /* workers reading and preparing clips, 1..VIDEO_LOADER_MAX_THREADS;
                               * one more thread packs the batches */
    struct video_cache *cache; /* shared with other loaders (settings must match), or NULL: */
    const char *cache_dir;    /*   the loader's own cache here; NULL = DIR/.actiond-cache */
    size_t ram_bytes;         /*   and its RAM tier budget */
};

/* A batch: plain float arrays for the network's two inputs. Memory use is about
 * (3 * batch + threads) clips of K * (3 + 2L) * H * W floats. */
struct video_batch {
    int clips;                /* in this batch: `batch`, fewer only at the end of an epoch */
    int segments, length, width, height;
    float *rgb;               /* [clips * K][3][H][W] */
    float *motion;            /* [clips * K][2L][H][W]: DIFF in [0, 1], MV in pixels per sample,
                               * exactly as video_clip_fill makes them */
    int *labels;              /* [clips], 0-based */
    int *index;               /* [clips], the clips' data set indices */
    int64_t epoch;            /* from 0 */
    int64_t step;             /* the batch's number within its epoch, from 0 */
    int epoch_end;            /* the last batch of its epoch */
};

struct video_loader_stats {
    int64_t batches, clips;   /* handed out */
    int64_t failed;           /* clip reads that failed (each bad clip once) */
    double wait_s;            /* time video_loader_next spent waiting */
    struct video_cache_stats cache;
};

struct video_loader;

/* 112x112, 25 fps, ImageNet mean/std, K=3, L=5, diff, batch 8, shuffle, augment, seed 1,
 * 2 threads, default cache folder, no RAM tier. */
void video_loader_opts_default(struct video_loader_opts *o);
/* Loads clips indices[0..n) of ds (indices NULL: all of them); ds must outlive the loader.
 * Threads start at once and work ahead. */
int video_loader_new(const struct video_dataset *ds, const int *indices, int n,
                     const struct video_loader_opts *o, struct video_loader **out,
                     struct err_msg *em);
/* The next batch, valid until the next call or the free. Epochs follow each other without end;
 * the caller stops when it has had enough (epoch_end marks the boundaries). */
int video_loader_next(struct video_loader *ld, const struct video_batch **batch, struct err_msg *em);
void video_loader_stats(const struct video_loader *ld, struct video_loader_stats *st);
/* Stops the threads (a decode in progress is interrupted) and frees everything; safe at any
 * time. NULL is a no-op. */
void video_loader_free(struct video_loader *ld);

#endif
