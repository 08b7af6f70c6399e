/* config.c — loading a configuration all-or-nothing, releasing it, and the comparisons a
 * reload needs: which keys changed, and whether they may change on a running daemon. */
#include "config/internal.h"
#include "common/err.h"

#include <stdlib.h>
#include <string.h>

/* A freshly allocated config holding every default. */
static int config_new_defaults(const char *path, struct config **out)
{
    struct config *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return ERR_NOMEM;
    int rc = config_defaults_apply(cfg, false);
    if (rc == 0 && !(cfg->path = strdup(path)))
        rc = ERR_NOMEM;
    if (rc) {
        config_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

int config_load_diags(const char *path, struct config **out, struct config_diags *diags)
{
    config_diags_reset(diags);
    struct config_source src;
    int rc = config_source_read(path, &src, diags);
    if (rc)
        return rc;
    struct config *cfg = NULL;
    rc = config_new_defaults(path, &cfg);
    if (rc == 0)
        rc = config_parse(path, &src, cfg, diags);
    config_source_fini(&src);
    if (rc == 0 && diags->errors)
        rc = ERR_CONFIG;
    if (rc) {
        config_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

int config_load(const char *path, struct config **out, struct err_msg *em)
{
    struct config_diags *d = malloc(sizeof *d);
    if (!d)
        return err_set(em, ERR_NOMEM, "%s: out of memory", path);
    int rc = config_load_diags(path, out, d);
    for (size_t i = 0; i < d->count; i++)
        if (d->item[i].kind == CONFIG_DIAG_WARNING)
            log_warn("%s", d->item[i].text);
    const char *first = config_diag_first_error(d);
    if (rc && first && d->errors > 1)
        err_set(em, rc, "%s (and %zu more)", first, d->errors - 1);
    else if (rc && first)
        err_set(em, rc, "%s", first);
    else if (rc)
        err_set(em, rc, "%s: %s", path, err_str(rc));
    free(d);
    return rc;
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_streams; i++)
        config_fields_free(&cfg->streams[i], true);
    free(cfg->streams);
    config_fields_free(cfg, false);
    free(cfg->path);
    free(cfg);
}

int config_diff_reloadable(const struct config *old_cfg, const struct config *new_cfg,
                           struct err_msg *em)
{
    const char *first = NULL;
    size_t changed = 0;
    for (size_t i = 0; i < config_n_keys; i++) {
        const struct config_key *k = &config_keys[i];
        if (config_key_in_stream(k) || (k->flags & CONFIG_KEY_RELOADABLE) ||
            config_field_equal(k, old_cfg, new_cfg))
            continue;
        if (!first)
            first = k->path;
        changed++;
    }
    if (!first)
        return 0;
    if (changed > 1)
        return err_set(em, ERR_UNSUPPORTED,
                       "key '%s' (and %zu more) changed; a restart is needed to apply it",
                       first, changed - 1);
    return err_set(em, ERR_UNSUPPORTED, "key '%s' changed; a restart is needed to apply it",
                   first);
}

bool config_stream_equal(const struct config_stream *a, const struct config_stream *b)
{
    for (size_t i = 0; i < config_n_keys; i++) {
        const struct config_key *k = &config_keys[i];
        if (config_key_in_stream(k) && !config_field_equal(k, a, b))
            return false;
    }
    return true;
}

const struct config_stream *config_stream_find(const struct config *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->n_streams; i++)
        if (cfg->streams[i].id && strcmp(cfg->streams[i].id, id) == 0)
            return &cfg->streams[i];
    return NULL;
}
