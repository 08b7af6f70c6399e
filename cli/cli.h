/* cli.h — the subcommand table shared by the dispatcher and the subcommand files.
 * cli/ parses arguments and dispatches; the work lives in the modules. */
#ifndef ACTIOND_CLI_CLI_H
#define ACTIOND_CLI_CLI_H

#include "video/video.h"

#include <stdint.h>

/* Exit statuses of DESIGN.md's command-line contract. */
enum cli_exit {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAIL = 1,
    CLI_EXIT_USAGE = 2,
    CLI_EXIT_CONFIG = 78, /* EX_CONFIG */
};

struct cli_cmd {
    const char *name;
    const char *summary;
    const char *usage; /* the full help text, options one per line */
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
};

/* The subcommands, one file each. */
int cli_cmd_info(int argc, char **argv);
int cli_cmd_bench(int argc, char **argv);
int cli_cmd_infer(int argc, char **argv);
int cli_cmd_import(int argc, char **argv);
int cli_cmd_export(int argc, char **argv);
int cli_cmd_serve(int argc, char **argv);
int cli_cmd_train(int argc, char **argv);
int cli_cmd_eval(int argc, char **argv);
int cli_cmd_compress(int argc, char **argv);

/* Prints "actiond: <cmd>: <message>" and returns CLI_EXIT_USAGE, for bad flags. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses the whole of s as an integer / a number within [lo, hi] into *out; otherwise a
 * usage error naming flag (its return value). */
int cli_int_arg(const char *cmd, const char *flag, const char *s, int lo, int hi, int *out);
int cli_float_arg(const char *cmd, const char *flag, const char *s, double lo, double hi,
                  double *out);
/* A random seed: decimal digits only, within 64 bits. */
int cli_seed_arg(const char *cmd, const char *flag, const char *s, uint64_t *out);

/* Subcommands, one file each (cli/cmd_NAME.c); argv[0] is the subcommand's name. */
int cli_cmd_synth(int argc, char **argv);

/* `bench --video`, parsed by cmd_bench.c and run by bench_video.c. */
struct cli_bench_video_opts {
    const char *path;
    enum video_motion motion;
    double fps;        /* samples per second; 0 = the file's rate */
    int width, height; /* the model size the sampler makes */
    int json;
};
int cli_bench_video(const struct cli_bench_video_opts *o);

#endif
