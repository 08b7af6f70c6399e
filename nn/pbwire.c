/* pbwire.c — protobuf wire format: a reader that checks every length against what is
 * left of its buffer before touching it, and a writer into a growable buffer. */
#include "nn/pbwire.h"

#include "common/err.h"

#include <stdlib.h>
#include <string.h>

void pb_reader_init(struct pb_reader *r, const void *buf, size_t len)
{
    r->p = buf;
    r->end = r->p ? r->p + len : NULL; /* NULL + 0 is undefined in C */
    r->depth = 0;
}

int pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    const uint8_t *q = *p;
    /* 10 bytes hold 64 bits; the 10th may only contribute its lowest bit. */
    for (int i = 0; i < 10; i++) {
        if (q >= end)
            return ERR_FORMAT;
        uint8_t c = *q++;
        if (i == 9 && c > 1)
            return ERR_FORMAT;
        x |= (uint64_t)(c & 0x7f) << (7 * i);
        if (!(c & 0x80)) {
            *p = q;
            *v = x;
            return 0;
        }
    }
    return ERR_FORMAT;
}

uint32_t pb_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)pb_le32(p) | (uint64_t)pb_le32(p + 4) << 32;
}

float pb_float(uint64_t bits32)
{
    uint32_t u = (uint32_t)bits32;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

int pb_next(struct pb_reader *r, struct pb_field *f)
{
    if (r->p >= r->end)
        return 0;
    uint64_t key;
    if (pb_varint(&r->p, r->end, &key))
        return ERR_FORMAT;
    /* Field 0 is reserved; numbers stop at 2^29 - 1. */
    if ((key >> 3) == 0 || (key >> 3) > 0x1fffffff)
        return ERR_FORMAT;
    memset(f, 0, sizeof *f);
    f->num = (uint32_t)(key >> 3);
    f->wire = (enum pb_wire)(key & 7);
    size_t left;
    switch (f->wire) {
    case PB_VARINT: return pb_varint(&r->p, r->end, &f->u) ? ERR_FORMAT : 1;
    case PB_I64:
        if ((size_t)(r->end - r->p) < 8)
            return ERR_FORMAT;
        f->u = le64(r->p);
        r->p += 8;
        return 1;
    case PB_I32:
        if ((size_t)(r->end - r->p) < 4)
            return ERR_FORMAT;
        f->u = pb_le32(r->p);
        r->p += 4;
        return 1;
    case PB_LEN:
        if (pb_varint(&r->p, r->end, &f->u))
            return ERR_FORMAT;
        left = (size_t)(r->end - r->p);
        if (f->u > left)
            return ERR_FORMAT;
        f->data = r->p;
        f->len = (size_t)f->u;
        r->p += f->len;
        return 1;
    }
    return ERR_FORMAT; /* groups (3, 4) and the unused wire types 6, 7 */
}

int pb_sub(const struct pb_reader *parent, const struct pb_field *f, struct pb_reader *child)
{
    if (f->wire != PB_LEN || parent->depth + 1 > PB_MAX_DEPTH)
        return ERR_FORMAT;
    pb_reader_init(child, f->data, f->len);
    child->depth = parent->depth + 1;
    return 0;
}

/* ---- writer ---- */

void pb_buf_fini(struct pb_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static int reserve(struct pb_buf *b, size_t more)
{
    if (b->err)
        return b->err;
    if (more > PB_MAX_LEN || b->len > PB_MAX_LEN - more)
        return b->err = ERR_RANGE;
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return b->err = ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

static size_t encode_varint(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

static void put_raw(struct pb_buf *b, const void *p, size_t n)
{
    if (reserve(b, n) == 0 && n) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
    }
}

static void put_varint(struct pb_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    put_raw(b, tmp, encode_varint(tmp, v));
}

static void put_tag(struct pb_buf *b, uint32_t num, enum pb_wire w)
{
    put_varint(b, (uint64_t)num << 3 | (uint64_t)w);
}

void pb_put_varint_field(struct pb_buf *b, uint32_t num, uint64_t v)
{
    put_tag(b, num, PB_VARINT);
    put_varint(b, v);
}

static void le32_store(uint8_t *p, uint32_t u)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(u >> (8 * i));
}

void pb_put_float_field(struct pb_buf *b, uint32_t num, float v)
{
    uint32_t u;
    uint8_t tmp[4];
    memcpy(&u, &v, sizeof u);
    le32_store(tmp, u);
    put_tag(b, num, PB_I32);
    put_raw(b, tmp, 4);
}

void pb_put_bytes(struct pb_buf *b, uint32_t num, const void *data, size_t len)
{
    put_tag(b, num, PB_LEN);
    put_varint(b, len);
    put_raw(b, data, len);
}

void pb_put_string(struct pb_buf *b, uint32_t num, const char *s)
{
    pb_put_bytes(b, num, s, strlen(s));
}

void pb_put_packed_int64(struct pb_buf *b, uint32_t num, const int64_t *v, size_t n)
{
    size_t mark = pb_begin(b, num);
    for (size_t i = 0; i < n; i++)
        put_varint(b, (uint64_t)v[i]); /* negatives take 10 bytes, as protobuf says */
    pb_end(b, mark);
}

void pb_put_floats_le(struct pb_buf *b, uint32_t num, const float *v, size_t n)
{
    if (n > PB_MAX_LEN / 4) {
        b->err = b->err ? b->err : ERR_RANGE;
        return;
    }
    put_tag(b, num, PB_LEN);
    put_varint(b, n * 4);
    if (reserve(b, n * 4))
        return;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], sizeof u);
        le32_store(b->data + b->len + 4 * i, u);
    }
    b->len += n * 4;
}

size_t pb_begin(struct pb_buf *b, uint32_t num)
{
    put_tag(b, num, PB_LEN);
    return b->len;
}

void pb_end(struct pb_buf *b, size_t mark)
{
    if (b->err)
        return;
    size_t body = b->len - mark;
    uint8_t tmp[10];
    size_t n = encode_varint(tmp, body);
    if (reserve(b, n))
        return;
    memmove(b->data + mark + n, b->data + mark, body);
    memcpy(b->data + mark, tmp, n);
    b->len += n;
}
