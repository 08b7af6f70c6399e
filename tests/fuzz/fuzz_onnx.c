/* fuzz_onnx.c — libFuzzer harness for the ONNX importer (nn/onnx.c over nn/pbwire.c): any bytes
 * as a .onnx file; what imports must also plan. */
#include "fuzz_util.h"
#include "common/err.h"
#include "nn/nn.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct nn_model *m = NULL;
    struct err_msg em;
    if (nn_onnx_import_mem(data, size, &m, &em) != 0)
        return 0;
    struct nn_plan *p = NULL;
    if (nn_plan_new(m->graph, 1, &p, &em) == 0)
        nn_plan_free(p);
    nn_model_free(m);
    return 0;
}
