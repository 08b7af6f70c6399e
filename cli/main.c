/* main.c — `actiond`: global flags, help, and dispatch to the subcommands. */
#include "cli/cli.h"
#include "rev.h" /* ACTIOND_GIT_REV, written by the Makefile */
#include "common/common.h"
#include "nn/nn.h"
#include "video/video.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* The subcommands, in the order `actiond --help` lists them. */
static const struct cli_cmd commands[] = {
    {"serve", "run the daemon: watch streams, recognise actions, serve them over HTTP",
     "usage: actiond serve [-c FILE] [--check]\n"
     "  -c, --config FILE   configuration file (default /etc/actiond/actiond.yaml)\n"
     "      --check         validate the configuration and exit (0 valid, 78 invalid)\n",
     cli_cmd_serve},
    {"compress", "prune and Tucker-decompose a model, then fine-tune it",
     "usage: actiond compress -m MODEL -o OUT [-d DATASET] [options]\n"
     "  --target-flops F  --target-params F   the budget: a fraction (0.2) or a factor (5x)\n"
     "                     of the input's cost; both hold when both are given (FLOPs to 0.2)\n"
     "  --target-latency F one-thread latency, measured here: a fraction or a factor (4x);\n"
     "                     the decomposition stage meets it from a table it times (none)\n"
     "  --prune nb|l1|bn|random|none (nb)   --ranks ga|vbmf|uniform|none (ga)\n"
     "  --prune-share F    pruning takes the cost to target^F when both stages run (0.5)\n"
     "  --floor F          never keep fewer than this share of a layer's channels (0.25)\n"
     "  --finetune-epochs N[,M] (12)   --finetune-lr X[,Y] (0.005)   --batch N (8)   --distill\n"
     "                     two values: the pruning stage's, then the decomposition's\n"
     "  --distill-weight W (0.5)   --distill-temp T (1)   the input's share of each target,\n"
     "                     and the temperature of its probabilities (either implies --distill)\n"
     "  --distill-fused F  also pull the fused scores towards the input's, weight F (0; implies\n"
     "                     --distill)\n"
     "  --distill-fused-weights own|input  the fusion weights that term weighs the streams\n"
     "                     by: the model's own, chosen after each epoch, or the input's (own)\n"
     "  --population N (16)   --generations N (10)   --seed S (1)   --threads N (2)\n"
     "  --ga-check N       fine-tune N of the GA's genomes, best to worst fitness, and report\n"
     "                     whether the fitness ranks them as fine-tuning does (0; slow)\n"
     "  --calib-clips N (200)   --val-clips N (all)   --val-split F (0.1)\n"
     "  --bn-batches N     adaptive BN after every cut: batches of 8 calibration clips (4; 0 off)\n"
     "  --report FILE.json   --latency-runs N (20)   --cache DIR   --work DIR (OUT.work)\n"
     "  Without -d only data-free methods run (l1/bn/random, vbmf/uniform), without\n"
     "  fine-tuning.\n",
     cli_cmd_compress},
    {"train", "train a two-stream model on a labelled video folder",
     "usage: actiond train -d DATASET -o MODEL [options]\n"
     "  --arch vgg-small|resnet18 (vgg-small)   --width W channel multiplier (0.5)\n"
     "  --size N input side (112)   --motion mv|flow|diff (mv)   --motion-len L (3)\n"
     "  --segments K (3)   --fps F sampled (10)\n"
     "  --epochs N (30)   --batch N clips (8)   --lr X (0.02)   --weight-decay X (5e-4)\n"
     "  --label-smoothing X (0)   --dropout P (0.5)   --stream rgb|motion|both (both)\n"
     "  --val-split F (0.1)\n"
     "  --threads N trainer (2)   --loader-threads N (2)   --seed S (1)\n"
     "  --resume CKPT   --checkpoint FILE (MODEL.ckpt)   --log FILE (MODEL.train.jsonl)\n"
     "  --stop-after N   end this run after N epochs; --resume continues it\n"
     "  --cache DIR decoded clips (DATASET/.actiond-cache)\n"
     "  --from MODEL   fine-tune MODEL instead of building one (its shape options are\n"
     "                 its own); with --epochs 0 only its fusion weights are chosen again\n",
     cli_cmd_train},
    {"eval", "evaluate a model on a labelled video folder",
     "usage: actiond eval -m MODEL -d DATASET [--split test|train|all] [--json]\n"
     "                    [--threads N] [--cache DIR]\n",
     cli_cmd_eval},
    {"infer", "recognise actions in a file or stream, or run raw tensors through a model",
     "usage: actiond infer -m MODEL FILE|URL [--window S] [--stride S] [--top K] [--json]\n"
     "                    [--threads N] [--hwdec NAME]\n"
     "       actiond infer -m MODEL --input [NAME=]FILE.npy ... --output [NAME=]FILE.npy ...\n"
     "  --window S, --stride S    seconds of video per result, and between results (2, 1)\n"
     "  --top K                   actions listed per window (3)\n"
     "  --json                    one JSON line per window: start, end, top [{action, score}]\n"
     "  --hwdec NAME              a hardware decoder (h264_v4l2m2m on a Pi)\n"
     "  --input [NAME=]FILE.npy   a float32 tensor for input NAME (by position without NAME);\n"
     "                            dimension 0 is the batch\n"
     "  --output [NAME=]FILE.npy  where to write output NAME (by position without NAME)\n"
     "  --ref                     run the scalar reference kernels (slow; for checking)\n"
     "  --threads N               OpenBLAS threads (default 1)\n"
     "",
     cli_cmd_infer},
    {"import", "convert ONNX models into an actiond model file",
     "usage: actiond import MODEL.onnx [--motion MOTION.onnx] -o OUT [metadata options]\n"
     "  --motion MOTION.onnx   a second classifier: the two become one two-stream model\n"
     "  -o, --output OUT       the actiond model file to write\n"
     "metadata the ONNX file cannot carry:\n"
     "  --classes a,b,c | --classes @FILE   class names (FILE: one per line)\n"
     "  --motion-kind none|mv|flow|diff     how the motion input is made\n"
     "  --motion-len L    motion fields per segment (the motion input has 2L channels)\n"
     "  --segments K      TSN segments per clip      --fps F   frames per second sampled\n"
     "  --mean r,g,b --std r,g,b   input normalisation of x/255\n"
     "  --fusion w_rgb,w_motion    late-fusion weights   --arch NAME   a label\n",
     cli_cmd_import},
    {"export", "write an actiond model as ONNX",
     "usage: actiond export MODEL -o OUT.onnx\n", cli_cmd_export},
    {"info", "print a model's layers, parameters and FLOPs",
     "usage: actiond info MODEL [--json]\n", cli_cmd_info},
    {"bench", "measure a model's latency, or the video input's throughput, on this machine",
     "usage: actiond bench (-m MODEL | --arch resnet18|vgg-small [--size N]) [--batch N]\n"
     "                     [--threads N] [--iters N] [--warmup N] [--json]\n"
     "       actiond bench --sgemm [--threads N] [--json]\n"
     "       actiond bench --video FILE --motion mv|diff|flow [--size WxH] [--fps F] [--json]\n"
     "  --arch NAME      a built-in architecture with random weights, 3xNxN input\n"
     "  --batch N        inputs per run (default 1: one image; for a two-stream model one\n"
     "                   segment, so a whole clip is --batch K, K its segments)\n"
     "  --threads N      OpenBLAS threads (default 1)\n"
     "  --iters N        timed runs (default 20); median, p90 and min are reported\n"
     "  --sgemm          the SGEMM rate of the OpenBLAS kernel in use (1024^3)\n"
     "  --video FILE     decode + sample + motion throughput on one thread: every sample\n"
     "                   becomes a one-step clip of --motion at --size (112x112), sampled\n"
     "                   at --fps (default: the file's rate, every frame)\n",
     cli_cmd_bench},
    {"synth", "write a labelled synthetic action data set as H.264 files",
     "usage: actiond synth -o DIR [--classes N] [--clips-per-class N] [--seed S] [--size WxH]\n"
     "                    [--fps F] [--seconds S] [--test-fraction X] [--threads N]\n"
     "       actiond synth --sequence FILE.mp4 [--sequence-seconds S] [--seed S] [--size WxH] ...\n"
     "  -o, --output DIR        write DIR/Class/Class_NNN.mp4, classInd.txt, trainlist.txt, testlist.txt\n"
     "      --classes N         the first N of: bend jack jump pjump run side skip walk wave1 wave2 (10)\n"
     "      --clips-per-class N clips of each class (40)\n"
     "      --seed S            the same seed writes byte-identical files (1)\n"
     "      --size WxH          frame size, even sides (320x240)\n"
     "      --fps F             frames per second (25)\n"
     "      --seconds S         length of each clip (3)\n"
     "      --test-fraction X   share of each class listed in testlist.txt (0.2)\n"
     "      --threads N         clips encoded at once (2)\n"
     "      --sequence FILE.mp4 one long clip of several actions, timeline in FILE.csv\n"
     "      --sequence-seconds S  its length (30)\n",
     cli_cmd_synth},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const struct cli_cmd *cmd_find(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (cmd)
        fprintf(stderr, "actiond: %s: %s (try 'actiond help %s')\n", cmd, msg, cmd);
    else
        fprintf(stderr, "actiond: %s (try 'actiond --help')\n", msg);
    return CLI_EXIT_USAGE;
}

static void print_help(FILE *out)
{
    fprintf(out,
            "usage: actiond [--log-level LEVEL] COMMAND [ARGS...]\n"
            "       actiond help COMMAND | --help | --version\n\n"
            "Recognises human actions in camera streams on small Linux boards.\n\n"
            "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\noptions:\n"
                 "  --log-level LEVEL   error, warn, info (default) or debug\n"
                 "  -h, --help          this text\n"
                 "  -V, --version       version and build\n");
}

static void print_version(void)
{
    printf("actiond %s%s%s\n", ACTIOND_VERSION, ACTIOND_GIT_REV[0] ? " (" : "",
           ACTIOND_GIT_REV[0] ? ACTIOND_GIT_REV ")" : "");
    printf("openblas core: %s\n", nn_blas_core());
}

static int cmd_help(int argc, char **argv)
{
    if (argc < 2) {
        print_help(stdout);
        return CLI_EXIT_OK;
    }
    const struct cli_cmd *c = cmd_find(argv[1]);
    if (!c)
        return cli_usage_error(NULL, "unknown command '%s'", argv[1]);
    printf("actiond %s — %s\n\n%s", c->name, c->summary, c->usage);
    return CLI_EXIT_OK;
}

/* OpenBLAS reads OPENBLAS_CORETYPE only when it loads, before main runs, so a better
 * kernel takes a re-exec. ACTIOND_BLAS_CORE=keep leaves the library's choice alone;
 * ACTIOND_BLAS_CORE=NAME forces a core; a user's own OPENBLAS_CORETYPE always wins. */
static void blas_choose_core(char **argv)
{
    const char *marker = "ACTIOND_BLAS_REEXEC";
    if (getenv(marker)) {
        unsetenv(marker);
        return;
    }
    const char *pref = getenv("ACTIOND_BLAS_CORE");
    if (getenv("OPENBLAS_CORETYPE") || (pref && strcmp(pref, "keep") == 0))
        return;
    const char *core = (pref && *pref && strcmp(pref, "auto") != 0) ? pref : nn_blas_better_core();
    if (!core || strcasecmp(core, nn_blas_core()) == 0)
        return;
    if (!nn_blas_core_fits_arch(core)) {
        log_warn("ACTIOND_BLAS_CORE=%s is a kernel for another CPU architecture; using %s", core,
                 nn_blas_core());
        return;
    }
    setenv("OPENBLAS_CORETYPE", core, 1);
    setenv(marker, "1", 1);
    execv("/proc/self/exe", argv);
    /* Still here: run on, slower but correct. */
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv(marker);
    log_warn("could not re-execute for OpenBLAS core %s; using %s", core, nn_blas_core());
}

static int is_help_flag(const char *s)
{
    return strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0;
}

int main(int argc, char **argv)
{
    blas_choose_core(argv);
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (is_help_flag(argv[i])) {
            print_help(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
            print_version();
            return CLI_EXIT_OK;
        } else if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc) {
            enum log_level lvl;
            if (log_level_parse(argv[++i], &lvl) != 0)
                return cli_usage_error(NULL, "bad log level '%s'", argv[i]);
            log_set_level(lvl);
        } else {
            return cli_usage_error(NULL, "unknown option '%s'", argv[i]);
        }
    }
    video_log_setup(log_get_level()); /* FFmpeg speaks only at debug level */
    if (i >= argc) {
        print_help(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[i], "help") == 0)
        return cmd_help(argc - i, argv + i);
    const struct cli_cmd *c = cmd_find(argv[i]);
    if (!c)
        return cli_usage_error(NULL, "unknown command '%s'", argv[i]);
    if (argc - i > 1 && is_help_flag(argv[i + 1])) {
        printf("actiond %s — %s\n\n%s", c->name, c->summary, c->usage);
        return CLI_EXIT_OK;
    }
    return c->run(argc - i, argv + i);
}
