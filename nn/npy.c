/* npy.c — NumPy .npy files (format 1.0 and 2.0) holding little-endian float32 in C order:
 * how tests and tools hand tensors to and from PyTorch/NumPy. */
#include "nn/nn.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
/* A header is one short Python dict; NumPy itself refuses ones over 10 KB by default. */
#define NPY_MAX_HEADER 65536
/* Version 1.0 pads the header so the data starts 64-byte aligned. */
#define NPY_ALIGN 64

/* A cursor over the header's dict text. */
struct hdr {
    const char *p, *end;
};

static void skip_space(struct hdr *h)
{
    while (h->p < h->end && isspace((unsigned char)*h->p))
        h->p++;
}

static int eat(struct hdr *h, char c)
{
    skip_space(h);
    if (h->p < h->end && *h->p == c) {
        h->p++;
        return 1;
    }
    return 0;
}

/* A quoted Python string ('...' or "...") into out. */
static int read_str(struct hdr *h, char *out, size_t cap)
{
    skip_space(h);
    if (h->p >= h->end || (*h->p != '\'' && *h->p != '"'))
        return -1;
    char q = *h->p++;
    size_t n = 0;
    while (h->p < h->end && *h->p != q) {
        if (n + 1 >= cap)
            return -1;
        out[n++] = *h->p++;
    }
    if (h->p >= h->end)
        return -1;
    h->p++;
    out[n] = '\0';
    return 0;
}

static int read_shape(struct hdr *h, struct nn_shape *s)
{
    int64_t elems = 1;
    s->ndim = 0;
    if (!eat(h, '('))
        return -1;
    while (!eat(h, ')')) {
        skip_space(h);
        if (s->ndim >= NN_MAX_DIMS || h->p >= h->end || !isdigit((unsigned char)*h->p))
            return -1;
        long long v = 0;
        while (h->p < h->end && isdigit((unsigned char)*h->p)) {
            v = v * 10 + (*h->p++ - '0');
            if (v > NN_MAX_DIM)
                return -1;
        }
        if (v < 1 || (elems *= v) > NN_MAX_ELEMS)
            return -1;
        s->d[s->ndim++] = (int)v;
        if (!eat(h, ',') && !(skip_space(h), h->p < h->end && *h->p == ')'))
            return -1;
    }
    return s->ndim ? 0 : -1;
}

static int read_bool(struct hdr *h, int *v)
{
    skip_space(h);
    size_t left = (size_t)(h->end - h->p);
    if (left >= 4 && memcmp(h->p, "True", 4) == 0) {
        h->p += 4;
        *v = 1;
        return 0;
    }
    if (left >= 5 && memcmp(h->p, "False", 5) == 0) {
        h->p += 5;
        *v = 0;
        return 0;
    }
    return -1;
}

/* Parses {'descr': '<f4', 'fortran_order': False, 'shape': (...), } in any key order. */
static int parse_header(struct hdr *h, struct nn_shape *shape, struct err_msg *em)
{
    char key[32], descr[16];
    int seen = 0, fortran = 0;
    if (!eat(h, '{'))
        return err_set(em, ERR_FORMAT, "header is not a dict");
    while (!eat(h, '}')) {
        if (read_str(h, key, sizeof key) || !eat(h, ':'))
            return err_set(em, ERR_FORMAT, "malformed header");
        if (strcmp(key, "descr") == 0 && !(seen & 1)) {
            if (read_str(h, descr, sizeof descr))
                return err_set(em, ERR_FORMAT, "malformed 'descr'");
            if (strcmp(descr, "<f4") != 0)
                return err_set(em, ERR_UNSUPPORTED, "dtype '%s' (only '<f4' is supported)",
                               descr);
            seen |= 1;
        } else if (strcmp(key, "fortran_order") == 0 && !(seen & 2)) {
            if (read_bool(h, &fortran))
                return err_set(em, ERR_FORMAT, "malformed 'fortran_order'");
            if (fortran)
                return err_set(em, ERR_UNSUPPORTED, "fortran_order True (only C order)");
            seen |= 2;
        } else if (strcmp(key, "shape") == 0 && !(seen & 4)) {
            if (read_shape(h, shape))
                return err_set(em, ERR_FORMAT,
                               "malformed or unsupported shape (1..%d dims, each 1..%d)",
                               NN_MAX_DIMS, NN_MAX_DIM);
            seen |= 4;
        } else {
            return err_set(em, ERR_FORMAT, "unexpected or repeated key '%s'", key);
        }
        if (!eat(h, ',') && !(skip_space(h), h->p < h->end && *h->p == '}'))
            return err_set(em, ERR_FORMAT, "malformed header");
    }
    if (seen != 7)
        return err_set(em, ERR_FORMAT, "header lacks descr, fortran_order or shape");
    return 0;
}

int nn_npy_read_mem(const void *buf, size_t len, struct nn_shape *shape, float **data,
                    struct err_msg *em)
{
    const unsigned char *b = buf;
    if (len < NPY_MAGIC_LEN + 4 || memcmp(b, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
        return err_set(em, ERR_FORMAT, "not a .npy file (bad magic)");
    int major = b[6];
    size_t hlen, at;
    if (major == 1) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
        at = 10;
    } else if (major == 2 && len >= 12) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        at = 12;
    } else {
        return err_set(em, ERR_VERSION, "npy format %d.%d (only 1.0 and 2.0)", major, b[7]);
    }
    if (hlen > NPY_MAX_HEADER || hlen > len - at)
        return err_set(em, ERR_FORMAT, "header length %zu does not fit the file", hlen);
    struct hdr h = {(const char *)b + at, (const char *)b + at + hlen};
    struct nn_shape s;
    int rc = parse_header(&h, &s, em);
    if (rc)
        return rc;
    int64_t n = nn_shape_elems(&s);
    size_t body = len - at - hlen;
    if (n > NN_MAX_ELEMS || (uint64_t)body != (uint64_t)n * 4)
        return err_set(em, ERR_FORMAT, "%zu data bytes, but the shape needs %lld floats", body,
                       (long long)n);
    float *out = malloc((size_t)n * sizeof(float));
    if (!out)
        return err_set(em, ERR_NOMEM, "out of memory for %lld floats", (long long)n);
    const unsigned char *d = b + at + hlen;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)d[4 * i] | (uint32_t)d[4 * i + 1] << 8 |
                     (uint32_t)d[4 * i + 2] << 16 | (uint32_t)d[4 * i + 3] << 24;
        memcpy(&out[i], &u, sizeof u);
    }
    *shape = s;
    *data = out;
    return 0;
}

static int slurp(const char *path, unsigned char **buf, size_t *len, struct err_msg *em)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return err_set(em, ERR_IO, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    const size_t max = (size_t)NN_MAX_ELEMS * 4 + NPY_MAX_HEADER + 16;
    unsigned char *p = malloc(cap);
    while (p) {
        n += fread(p + n, 1, cap - n, f);
        if (n < cap || cap >= max)
            break;
        unsigned char *q = realloc(p, cap * 2);
        if (!q) {
            free(p);
            p = NULL;
            break;
        }
        p = q;
        cap *= 2;
    }
    int rc = !p ? ERR_NOMEM : ferror(f) || (n == cap && cap >= max) ? ERR_IO : 0;
    fclose(f);
    if (rc) {
        free(p);
        return err_set(em, rc, "%s: cannot read the file (or it is too large)", path);
    }
    *buf = p;
    *len = n;
    return 0;
}

int nn_npy_read(const char *path, struct nn_shape *shape, float **data, struct err_msg *em)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc = slurp(path, &buf, &len, em);
    if (rc)
        return rc;
    struct err_msg inner = {{0}};
    rc = nn_npy_read_mem(buf, len, shape, data, &inner);
    free(buf);
    if (rc)
        err_set(em, rc, "%s: %s", path, err_text(&inner, rc));
    return rc;
}

int nn_npy_write(const char *path, const struct nn_shape *shape, const float *data,
                 struct err_msg *em)
{
    if (shape->ndim < 1 || shape->ndim > NN_MAX_DIMS)
        return err_set(em, ERR_RANGE, "%s: %d dimensions (1..%d)", path, shape->ndim,
                       NN_MAX_DIMS);
    char dict[256];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < shape->ndim; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%d,%s", shape->d[i],
                      i + 1 < shape->ndim ? " " : "");
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    /* Spaces then a newline pad magic + version + length + dict to the alignment. */
    size_t total = (10 + (size_t)n + 1 + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
    unsigned char head[10 + 256 + NPY_ALIGN];
    size_t hlen = total - 10;
    memcpy(head, NPY_MAGIC "\x01\x00", 8);
    head[8] = (unsigned char)(hlen & 0xff);
    head[9] = (unsigned char)(hlen >> 8);
    memset(head + 10, ' ', hlen);
    memcpy(head + 10, dict, (size_t)n);
    head[total - 1] = '\n';
    FILE *f = fopen(path, "wb");
    if (!f)
        return err_set(em, ERR_IO, "%s: %s", path, strerror(errno));
    int64_t elems = nn_shape_elems(shape);
    int ok = fwrite(head, 1, total, f) == total;
    for (int64_t i = 0; ok && i < elems; i++) {
        uint32_t u;
        unsigned char le[4];
        memcpy(&u, &data[i], sizeof u);
        for (int k = 0; k < 4; k++)
            le[k] = (unsigned char)(u >> (8 * k));
        ok = fwrite(le, 1, 4, f) == 4;
    }
    if (fclose(f) != 0)
        ok = 0;
    return ok ? 0 : err_set(em, ERR_IO, "%s: write failed", path);
}
