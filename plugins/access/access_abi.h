// SPDX-License-Identifier: Apache-2.0
/* The records the access BPF program and daxpolicyd share (C, for both sides). */
#pragma once

#ifdef __BPF__
typedef __u32 access_u32;
typedef __u64 access_u64;
#else
#include <stdint.h>
typedef uint32_t access_u32;
typedef uint64_t access_u64;
#endif

/* Devices are the kernel's s_dev: (major << 20) | minor. */
struct access_key {
  access_u32 dev;
  access_u32 pad; /* always 0 */
  access_u64 ino;
};

/* Counts of one file since the last swap of the counting maps. */
struct access_counts {
  access_u64 read_bytes;  /* bytes returned by reads (both modes), plus faulted pages */
  access_u64 pc_pages;    /* page-cache pages read or faulted (page-cache mode) */
  access_u64 miss_pages;  /* pages added to the page cache outside a write */
  access_u64 write_bytes; /* bytes written (both modes, where seen) */
};

/* One CPU's counts of the file it counted last (map `cache`, one slot per
 * counting map), not yet added to the counting map. */
struct access_cache_slot {
  access_u32 dev; /* 0: empty */
  access_u32 pad;
  access_u64 ino;
  struct access_counts counts;
};

/* Devices watched at once (scope_devs); more are refused by SetDevices. */
#define ACCESS_MAX_DEVS 16

/* One watched device (kernel s_dev) and its flags below. */
struct access_scope_dev {
  access_u32 dev; /* 0 ends the list */
  access_u32 flags;
};

/* scope_devs flags. */
enum {
  ACCESS_DEV_WATCHED = 1u << 0,
  ACCESS_DEV_XFS = 1u << 1, /* xfs read tracepoints cover this device (tracepoint strategy) */
};

/* The strategy, fixed in .rodata before load. */
enum {
  ACCESS_STRATEGY_FENTRY = 1,     /* fexit on filemap_read and dax_iomap_rw */
  ACCESS_STRATEGY_TRACEPOINT = 2, /* xfs read tracepoints, mm_filemap_get_pages elsewhere */
};
