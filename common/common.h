/* common.h — the public door of common/: errors, logging, arenas, CRC32, clocks.
 * common/ depends on nothing but libc. */
#ifndef ACTIOND_COMMON_COMMON_H
#define ACTIOND_COMMON_COMMON_H

#include "common/arena.h"
#include "common/clock.h"
#include "common/crc32.h"
#include "common/err.h"
#include "common/log.h"

#endif
