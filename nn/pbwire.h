/* pbwire.h — a minimal protobuf wire-format reader (bounds-checked, depth-limited) and
 * writer (growable buffer), enough for ONNX files. Internal to nn/. */
#ifndef ACTIOND_NN_PBWIRE_H
#define ACTIOND_NN_PBWIRE_H

#include <stddef.h>
#include <stdint.h>

/* Nested messages deeper than this are refused: ONNX needs about 6 levels
 * (Model > Graph > Node > Attribute > Tensor), and a bound keeps recursion finite. */
#define PB_MAX_DEPTH 32
/* Protobuf itself caps a message at 2 GiB; so do we. */
#define PB_MAX_LEN ((size_t)INT32_MAX)

enum pb_wire { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 };

struct pb_reader {
    const uint8_t *p, *end;
    int depth;
};

/* One field as read: for PB_LEN, data/len span the payload; otherwise u holds the value
 * (PB_I32/PB_I64 raw little-endian bits). */
struct pb_field {
    uint32_t num;
    enum pb_wire wire;
    uint64_t u;
    const uint8_t *data;
    size_t len;
};

void pb_reader_init(struct pb_reader *r, const void *buf, size_t len);
/* Reads the next field: 1 when one was read, 0 at the end, ERR_FORMAT when malformed. */
int pb_next(struct pb_reader *r, struct pb_field *f);
/* A reader over a PB_LEN field's payload, one level deeper; ERR_FORMAT if too deep or
 * the field is not length-delimited. */
int pb_sub(const struct pb_reader *parent, const struct pb_field *f, struct pb_reader *child);
/* Decodes one varint from [*p, end), advancing *p; ERR_FORMAT if truncated or longer
 * than 10 bytes. */
int pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v);
/* Little-endian loads, whatever the host's byte order. */
uint32_t pb_le32(const uint8_t *p);
float pb_float(uint64_t bits32);

/* The writer keeps the first error and ignores later writes, so callers check once. */
struct pb_buf {
    uint8_t *data;
    size_t len, cap;
    int err;
};

void pb_buf_fini(struct pb_buf *b);
void pb_put_varint_field(struct pb_buf *b, uint32_t num, uint64_t v);
void pb_put_float_field(struct pb_buf *b, uint32_t num, float v);
void pb_put_bytes(struct pb_buf *b, uint32_t num, const void *data, size_t len);
void pb_put_string(struct pb_buf *b, uint32_t num, const char *s);
/* Packed repeated int64 (varints), and floats as little-endian bytes (raw_data). */
void pb_put_packed_int64(struct pb_buf *b, uint32_t num, const int64_t *v, size_t n);
void pb_put_floats_le(struct pb_buf *b, uint32_t num, const float *v, size_t n);
/* A nested message: begin returns a mark, end fills in the length in front of it. */
size_t pb_begin(struct pb_buf *b, uint32_t num);
void pb_end(struct pb_buf *b, size_t mark);

#endif
