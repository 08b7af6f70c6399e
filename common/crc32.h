/* crc32.h — CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), as in zlib and PNG,
 * used for the per-section checksums of model files and per-sample ones of cache entries. */
#ifndef ACTIOND_COMMON_CRC32_H
#define ACTIOND_COMMON_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC: start with crc32_update(0, ...), feed pieces in order. */
uint32_t crc32_update(uint32_t crc, const void *buf, size_t len);

#endif
