/* fuzz_config.c — libFuzzer harness for config/: any bytes as actiond.yaml through the whole
 * load (libyaml events, schema, values, secrets, paths); a bad file is diagnostics, never a crash. */
#include "fuzz_util.h"
#include "config/config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    fuzz_scratch();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *dir = fuzz_scratch();
    if (fuzz_write_file(dir, "actiond.yaml", data, size) != 0)
        return 0;
    char path[512];
    snprintf(path, sizeof path, "%s/actiond.yaml", dir);
    struct config *cfg = NULL;
    struct config_diags diags;
    int rc = config_load_diags(path, &cfg, &diags);
    if (rc == 0) {
        /* a valid file must also compare with itself as equal and reloadable */
        if (config_diff_reloadable(cfg, cfg, NULL) != 0)
            __builtin_trap();
        for (size_t i = 0; i < cfg->n_streams; i++)
            if (!config_stream_equal(&cfg->streams[i], &cfg->streams[i]))
                __builtin_trap();
        config_free(cfg);
    } else if (cfg) {
        __builtin_trap(); /* a failed load leaves *out untouched */
    }
    return 0;
}
