/* model_stub.c — TEMPORARY: minimal nn_model_new/free/set_classes and nn_motion_name so the
 * onnx branch builds alone; deleted at merge in favour of nn/model.c. */
#include "nn/nn.h"

#include <stdlib.h>
#include <string.h>

struct nn_model *nn_model_new(void)
{
    struct nn_model *m = calloc(1, sizeof *m);
    if (!m || !(m->graph = nn_graph_new())) {
        free(m);
        return NULL;
    }
    m->meta = (struct nn_meta){.height = 112, .width = 112, .mean = {0.485f, 0.456f, 0.406f},
                               .std = {0.229f, 0.224f, 0.225f}, .motion_scale = 1.f,
                               .motion = NN_MOTION_NONE, .motion_len = 1, .segments = 1,
                               .fusion = {1.f, 1.f}, .fps = 25.f};
    return m;
}

void nn_model_free(struct nn_model *m)
{
    if (!m)
        return;
    nn_graph_free(m->graph);
    free(m->meta.classes);
    free(m);
}

int nn_model_set_classes(struct nn_model *m, int n, const char *const *names, struct err_msg *em)
{
    if (n < 0 || n > NN_MAX_CLASSES)
        return err_set(em, ERR_RANGE, "%d classes (0..%d allowed)", n, NN_MAX_CLASSES);
    char(*c)[NN_CLASS_NAME_MAX] = n ? calloc((size_t)n, sizeof *c) : NULL;
    if (n && !c)
        return err_set(em, ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        if (strlen(names[i]) >= NN_CLASS_NAME_MAX) {
            free(c);
            return err_set(em, ERR_RANGE, "class name '%.32s...' too long", names[i]);
        }
        strcpy(c[i], names[i]);
    }
    free(m->meta.classes);
    m->meta.classes = c;
    m->meta.n_classes = n;
    return 0;
}

const char *nn_motion_name(enum nn_motion m)
{
    static const char *const names[NN_MOTION_COUNT] = {"none", "mv", "flow", "diff"};
    return (unsigned)m < NN_MOTION_COUNT ? names[m] : "?";
}
