/* crc32.c — CRC-32 by slicing eight bytes at a time (8 KiB of tables in crc32_table.h): the
 * decoded-clip cache checks every sample it reads, and a byte-at-a-time CRC was its bottleneck. */
#include "common/crc32.h"
#include "common/crc32_table.h"

uint32_t crc32_update(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    crc = ~crc;
    /* Bytes are assembled one by one, so any alignment and either byte order works; compilers
     * turn the four loads into one on little-endian machines. */
    for (; len >= 8; len -= 8, p += 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                             (uint32_t)p[3] << 24);
        crc = crc32_table[7][lo & 0xff] ^ crc32_table[6][(lo >> 8) & 0xff] ^
              crc32_table[5][(lo >> 16) & 0xff] ^ crc32_table[4][lo >> 24] ^
              crc32_table[3][p[4]] ^ crc32_table[2][p[5]] ^ crc32_table[1][p[6]] ^
              crc32_table[0][p[7]];
    }
    for (; len > 0; len--, p++)
        crc = (crc >> 8) ^ crc32_table[0][(crc ^ *p) & 0xff];
    return ~crc;
}
