/* cmd_onnx.c — `actiond import` and `actiond export`: ONNX in and out. */
#include "cli/cli.h"
#include "common/common.h"
#include "nn/nn.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Metadata an ONNX file cannot carry, given on the command line. */
struct meta_flags {
    const char *classes, *motion, *arch;
    const char *mean, *std, *fusion;
    int segments, motion_len;
    double fps;
};

/* Parses "a,b,c" into exactly n floats. */
static int parse_floats(const char *s, float *out, int n)
{
    const char *p = s;
    for (int i = 0; i < n; i++) {
        char *end;
        out[i] = strtof(p, &end);
        if (end == p || (i < n - 1 && *end != ',') || (i == n - 1 && *end != '\0'))
            return -1;
        p = end + 1;
    }
    return 0;
}

/* Class names: a comma list, or @FILE with one name per line. */
static int set_classes(struct nn_model *m, const char *spec, struct err_msg *em)
{
    char *buf = NULL;
    if (spec[0] == '@') {
        FILE *f = fopen(spec + 1, "r");
        if (!f)
            return err_set(em, ERR_NOTFOUND, "%s: cannot open", spec + 1);
        size_t cap = (size_t)NN_MAX_CLASSES * NN_CLASS_NAME_MAX;
        buf = calloc(1, cap + 1);
        size_t n = buf ? fread(buf, 1, cap, f) : 0;
        fclose(f);
        if (!buf)
            return err_set(em, ERR_NOMEM, "out of memory");
        buf[n] = '\0';
    } else {
        buf = strdup(spec);
        if (!buf)
            return err_set(em, ERR_NOMEM, "out of memory");
    }
    const char *names[NN_MAX_CLASSES];
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, spec[0] == '@' ? "\r\n" : ",", &save); t;
         t = strtok_r(NULL, spec[0] == '@' ? "\r\n" : ",", &save)) {
        if (n == NN_MAX_CLASSES) {
            free(buf);
            return err_set(em, ERR_RANGE, "more than %d classes", NN_MAX_CLASSES);
        }
        names[n++] = t;
    }
    int rc = nn_model_set_classes(m, n, names, em);
    free(buf);
    return rc;
}

static int apply_meta(struct nn_model *m, const struct meta_flags *f, struct err_msg *em)
{
    struct nn_meta *mt = &m->meta;
    if (f->classes) {
        int rc = set_classes(m, f->classes, em);
        if (rc)
            return rc;
    }
    if (f->motion) {
        mt->motion = nn_motion_from_name(f->motion);
        if (mt->motion == NN_MOTION_COUNT)
            return err_set(em, ERR_INVAL, "--motion-kind: '%s' is not none, mv, flow or diff",
                           f->motion);
    }
    if (f->motion_len)
        mt->motion_len = f->motion_len;
    if (f->segments)
        mt->segments = f->segments;
    if (f->fps > 0)
        mt->fps = (float)f->fps;
    if (f->arch)
        snprintf(mt->arch, sizeof mt->arch, "%s", f->arch);
    if (f->mean && parse_floats(f->mean, mt->mean, 3))
        return err_set(em, ERR_INVAL, "--mean: expected three numbers 'r,g,b'");
    if (f->std && parse_floats(f->std, mt->std, 3))
        return err_set(em, ERR_INVAL, "--std: expected three numbers 'r,g,b'");
    if (f->fusion) {
        float w[2];
        if (parse_floats(f->fusion, w, 2))
            return err_set(em, ERR_INVAL, "--fusion: expected two numbers 'w_rgb,w_motion'");
        return nn_model_set_fusion(m, w[0], w[1], em);
    }
    return 0;
}

/* --motion-len, --segments, --fps: the model's own bounds (saving checks them again). */
static int meta_number_arg(int ch, const char *s, struct meta_flags *f)
{
    if (ch == 'L')
        return cli_int_arg("import", "--motion-len", s, 1, NN_MODEL_MAX_MOTION_LEN,
                           &f->motion_len);
    if (ch == 'K')
        return cli_int_arg("import", "--segments", s, 1, NN_MAX_BATCH, &f->segments);
    return cli_float_arg("import", "--fps", s, 0.01, NN_MODEL_MAX_FPS, &f->fps);
}

int cli_cmd_import(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"motion", required_argument, NULL, 'M'},   {"output", required_argument, NULL, 'o'},
        {"classes", required_argument, NULL, 'c'},  {"motion-kind", required_argument, NULL, 'k'},
        {"motion-len", required_argument, NULL, 'L'}, {"segments", required_argument, NULL, 'K'},
        {"fps", required_argument, NULL, 'f'},      {"mean", required_argument, NULL, 'm'},
        {"std", required_argument, NULL, 's'},      {"fusion", required_argument, NULL, 'w'},
        {"arch", required_argument, NULL, 'a'},     {NULL, 0, NULL, 0},
    };
    const char *motion = NULL, *out = NULL;
    struct meta_flags mf = {0};
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "o:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'M': motion = optarg; break;
        case 'o': out = optarg; break;
        case 'c': mf.classes = optarg; break;
        case 'k': mf.motion = optarg; break;
        case 'L': case 'K': case 'f':
            if (meta_number_arg(ch, optarg, &mf))
                return CLI_EXIT_USAGE;
            break;
        case 'm': mf.mean = optarg; break;
        case 's': mf.std = optarg; break;
        case 'w': mf.fusion = optarg; break;
        case 'a': mf.arch = optarg; break;
        default:
            return cli_usage_error("import", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("import", "expected one MODEL.onnx");
    if (!out)
        return cli_usage_error("import", "-o OUT is required");
    struct err_msg em = {{0}};
    struct nn_model *m = NULL;
    int rc = motion ? nn_onnx_import_two_stream(argv[optind], motion, &m, &em)
                    : nn_onnx_import(argv[optind], &m, &em);
    if (rc == 0)
        rc = apply_meta(m, &mf, &em);
    if (rc == 0) /* saving checks every metadata value against its bounds */
        rc = nn_model_save(m, out, &em);
    nn_model_free(m);
    if (rc) {
        fprintf(stderr, "actiond: import: %s\n", err_text(&em, rc));
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

int cli_cmd_export(int argc, char **argv)
{
    static const struct option longopts[] = {{"output", required_argument, NULL, 'o'},
                                             {NULL, 0, NULL, 0}};
    const char *out = NULL;
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "o:", longopts, NULL)) != -1) {
        if (ch != 'o')
            return cli_usage_error("export", "unknown or incomplete option '%s'", argv[optind - 1]);
        out = optarg;
    }
    if (argc - optind != 1)
        return cli_usage_error("export", "expected one MODEL");
    if (!out)
        return cli_usage_error("export", "-o OUT.onnx is required");
    struct err_msg em = {{0}};
    struct nn_model *m = NULL;
    int rc = nn_model_load(argv[optind], &m, &em);
    if (rc == 0)
        rc = nn_onnx_export(m, out, &em);
    nn_model_free(m);
    if (rc) {
        fprintf(stderr, "actiond: export: %s\n", err_text(&em, rc));
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}
