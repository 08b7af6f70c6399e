/* fuzz_npy.c — libFuzzer harness for the .npy reader (nn/npy.c): any bytes as a .npy file; what
 * reads has as many floats as its shape says, and every one of them can be touched. */
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
    struct nn_shape shape;
    float *v = NULL;
    struct err_msg em;
    if (nn_npy_read_mem(data, size, &shape, &v, &em) != 0)
        return 0;
    int64_t n = nn_shape_elems(&shape);
    float sum = 0;
    for (int64_t i = 0; i < n; i++) /* ASan catches a buffer shorter than the shape */
        sum += v[i];
    free(v);
    return sum != sum && n < 0; /* keeps the reads; never true */
}
