/* cmd_onnx.c — `actiond import` and `actiond export`: ONNX in and out. */
#include "cli/cli.h"
#include "common/common.h"
#include "nn/nn.h"

#include <getopt.h>
#include <stdio.h>

int cli_cmd_import(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"motion", required_argument, NULL, 'M'},
        {"output", required_argument, NULL, 'o'},
        {NULL, 0, NULL, 0},
    };
    const char *motion = NULL, *out = NULL;
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "o:", longopts, NULL)) != -1) {
        if (ch == 'M')
            motion = optarg;
        else if (ch == 'o')
            out = optarg;
        else
            return cli_usage_error("import", "unknown or incomplete option '%s'", argv[optind - 1]);
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
