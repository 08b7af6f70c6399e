/* cmd_serve.c — `actiond serve`: argument parsing, `--check` (validate the configuration
 * and exit), and the daemon (daemon_serve) after the same validation. */
#include "cli/cli.h"
#include "common/err.h"
#include "config/config.h"
#include "daemon/daemon.h"
#include "nn/nn.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct serve_args {
    const char *config;
    bool check;
    bool dump_schema; /* hidden: prints the key table docs/config.md is made from */
};

static int serve_parse_args(int argc, char **argv, struct serve_args *a)
{
    a->config = CONFIG_DEFAULT_PATH;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--check") == 0) {
            a->check = true;
        } else if (strcmp(s, "--dump-schema") == 0) {
            a->dump_schema = true;
        } else if (strcmp(s, "-c") == 0 || strcmp(s, "--config") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error("serve", "%s needs a file", s);
            a->config = argv[++i];
        } else if (strncmp(s, "--config=", 9) == 0) {
            a->config = s + 9;
        } else {
            return cli_usage_error("serve", "unknown argument '%s'", s);
        }
    }
    if (a->config[0] == '\0')
        return cli_usage_error("serve", "the configuration file name is empty");
    return CLI_EXIT_OK;
}

/* --check goes as far as the daemon's start would: the model must load and know every
 * action a stream reports. Returns the number of problems, each one line on stderr. */
static int check_model(const struct config *cfg)
{
    struct nn_model *m = NULL;
    struct err_msg em = {{0}};
    int rc = nn_model_load(cfg->model, &m, &em);
    if (rc) {
        fprintf(stderr, "%s: model: %s\n", cfg->path, err_text(&em, rc));
        return 1;
    }
    int problems = 0;
    for (size_t s = 0; s < cfg->n_streams; s++) {
        const struct config_strlist *a = &cfg->streams[s].actions;
        for (size_t i = 0; i < a->count; i++) {
            int found = 0;
            for (int c = 0; c < m->meta.n_classes && !found; c++) {
                char name[NN_CLASS_NAME_MAX];
                nn_model_class_name(m, c, name, sizeof name);
                found = strcmp(name, a->items[i]) == 0;
            }
            if (!found) {
                fprintf(stderr, "%s: stream '%s': the model %s has no action '%s'\n", cfg->path,
                        cfg->streams[s].id, cfg->model, a->items[i]);
                problems++;
            }
        }
    }
    nn_model_free(m);
    return problems;
}

/* Every problem one line on stderr, compiler style; the verdict on stdout unless quiet. */
static int serve_check(const char *path, bool quiet)
{
    struct config_diags *d = malloc(sizeof *d);
    if (!d) {
        fprintf(stderr, "actiond: serve: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    struct config *cfg = NULL;
    int rc = config_load_diags(path, &cfg, d);
    /* quiet: warnings are left to the daemon's own load, which logs them */
    for (size_t i = 0; i < d->count; i++)
        if (!quiet || d->item[i].kind == CONFIG_DIAG_ERROR)
            fprintf(stderr, "%s\n", d->item[i].text);
    size_t unseen = d->errors + d->warnings - d->count;
    if (unseen)
        fprintf(stderr, "%s: %zu more messages not shown\n", path, unseen);
    int status = CLI_EXIT_OK;
    if (rc == 0 && !quiet && check_model(cfg) > 0) {
        status = CLI_EXIT_CONFIG;
    } else if (rc == 0 && !quiet) {
        printf("%s: ok, %zu stream%s\n", path, cfg->n_streams, cfg->n_streams == 1 ? "" : "s");
    } else if (rc == 0) {
        /* valid; nothing to say */
    } else if (rc == ERR_NOMEM) {
        fprintf(stderr, "actiond: serve: %s: out of memory\n", path);
        status = CLI_EXIT_FAIL;
    } else {
        status = CLI_EXIT_CONFIG;
    }
    config_free(cfg);
    free(d);
    return status;
}

int cli_cmd_serve(int argc, char **argv)
{
    struct serve_args a = {0};
    int rc = serve_parse_args(argc, argv, &a);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (a.dump_schema)
        return config_schema_write_markdown(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    if (a.check)
        return serve_check(a.config, false);
    /* A config that does not validate is reported in full, as --check does, and exits 78. */
    int status = serve_check(a.config, true);
    if (status != CLI_EXIT_OK)
        return status;
    struct err_msg em = {{0}};
    rc = daemon_serve(a.config, &em);
    if (rc == 0)
        return CLI_EXIT_OK;
    fprintf(stderr, "actiond: serve: %s\n", err_text(&em, rc));
    return rc == ERR_CONFIG ? CLI_EXIT_CONFIG : CLI_EXIT_FAIL;
}
