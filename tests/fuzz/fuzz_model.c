/* fuzz_model.c — libFuzzer harness for the model loader (nn/model_io.c, model_json.c): any bytes
 * as a model file; a model that loads must also plan, so its graph is one the engine can run. */
#include "fuzz_util.h"
#include "common/crc32.h"
#include "common/err.h"
#include "nn/nn.h"

/* The container's layout (docs/model-format.md), for the CRC fix-up below. */
enum { H_COUNT = 12, H_DIR_OFF = 16, H_FILE_SIZE = 24, H_DIR_CRC = 32, H_CRC = 60, HEADER = 64,
       ENTRY = 128, E_OFF = 88, E_SIZE = 96, E_CRC = 104 };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

/* Rewrites the file size and every CRC that lies inside the buffer, so that mutations reach
 * the directory, the JSON and the tensors instead of stopping at the first checksum. */
static void fix_up(uint8_t *b, size_t len)
{
    if (len < HEADER)
        return;
    put_le(b + H_FILE_SIZE, len, 8);
    uint64_t count = get_le(b + H_COUNT, 4), dir = get_le(b + H_DIR_OFF, 8);
    if (count <= 4096 && dir >= HEADER && dir <= len && count * ENTRY <= len - dir) {
        for (uint64_t i = 0; i < count; i++) {
            uint8_t *e = b + dir + i * ENTRY;
            uint64_t off = get_le(e + E_OFF, 8), size = get_le(e + E_SIZE, 8);
            if (off <= len && size <= len - off)
                put_le(e + E_CRC, crc32_update(0, b + off, (size_t)size), 4);
        }
        put_le(b + H_DIR_CRC, crc32_update(0, b + dir, (size_t)(count * ENTRY)), 4);
    }
    put_le(b + H_CRC, crc32_update(0, b, H_CRC), 4);
}

static void load(const uint8_t *data, size_t size)
{
    struct nn_model *m = NULL;
    struct err_msg em;
    if (nn_model_load_mem(data, size, &m, &em) != 0)
        return;
    struct nn_plan *p = NULL;
    if (nn_plan_new(m->graph, 1, &p, &em) == 0)
        nn_plan_free(p);
    nn_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    load(data, size); /* as given: the checksums are checked too */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    fix_up(copy, size);
    if (memcmp(copy, data, size) != 0)
        load(copy, size);
    free(copy);
    return 0;
}
