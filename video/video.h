/* video.h — the public door of video/: an H.264 MP4 writer and the synthetic action data set.
 * video/ depends on common/ and FFmpeg only; it hands float planes to callers, never nn/ types. */
#ifndef ACTIOND_VIDEO_VIDEO_H
#define ACTIOND_VIDEO_VIDEO_H

#include "common/common.h"

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

/* ---- H.264 MP4 writer: encodes like a camera (main profile, no B-frames, fixed GOP). ---- */

struct video_writer;

struct video_writer_opts {
    int width, height; /* even, VIDEO_MIN_SIDE..VIDEO_MAX_* */
    int fps;           /* 1..VIDEO_MAX_FPS */
    int gop;           /* frames between I-frames; 0 = 2 s worth */
    int crf;           /* x264 constant rate factor 0..51; 0 = the default 23 */
};

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

#endif
