// SPDX-License-Identifier: Apache-2.0
/* The few kernel types access.bpf.c reads, declared for CO-RE.
 *
 * Instead of a vmlinux.h dumped from the build machine's kernel, only the
 * fields the program reads are declared here with preserve_access_index:
 * libbpf relocates every access against the running kernel's BTF at load
 * time, so the object built once works on every kernel that has these
 * fields, and building needs no BTF. A field a kernel lacks is tested with
 * bpf_core_field_exists(); a load on a kernel missing a non-optional field
 * fails and the source reports it as degraded. */
#pragma once

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
typedef __u32 dev_t;
typedef long long loff_t;
typedef unsigned long size_t;
typedef long ssize_t;
typedef unsigned long pgoff_t;
typedef unsigned long long u64;

enum bpf_map_type {
  BPF_MAP_TYPE_HASH = 1,
  BPF_MAP_TYPE_ARRAY = 2,
  BPF_MAP_TYPE_PERCPU_ARRAY = 6,
  BPF_MAP_TYPE_LRU_HASH = 9,
  BPF_MAP_TYPE_ARRAY_OF_MAPS = 12,
};
enum {
  BPF_ANY = 0,
  BPF_NOEXIST = 1,
};
enum {
  BPF_F_NO_PREALLOC = 1,
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct super_block {
  dev_t s_dev;
};
struct inode {
  unsigned long i_ino;
  dev_t i_rdev;
  loff_t i_size;
  struct super_block* i_sb;
};
struct file {
  struct inode* f_inode;
};
struct address_space {
  struct inode* host;
};
struct kiocb {
  struct file* ki_filp;
  loff_t ki_pos;
};
struct iov_iter {
  bool data_source; /* true: the iterator is the source of a write */
  size_t count;     /* bytes left (inside an anonymous union on newer kernels) */
};

/* The fault flags of a vm_fault: an enum in the kernel, so declared as one
 * (CO-RE matches an enum field only with an enum). */
enum fault_flag {
  FAULT_FLAG_WRITE = 1,
};
struct vm_fault {
  enum fault_flag flags;
};

/* The page-cache tracepoint passes a struct folio (Linux 5.16+) or, before, a
 * struct page; both start with the flags word and have the mapping at the
 * same offset. A large folio's order is in its own byte up to Linux 6.5
 * (_folio_order) and in the low byte of _flags_1 since. Its first word is an
 * unsigned long up to 6.17 and a memdesc_flags_t since 6.18: two flavours,
 * one of which matches the running kernel. */
struct page {
  struct address_space* mapping;
};
struct folio {
  struct address_space* mapping;
  unsigned long _flags_1;
  unsigned char _folio_order;
};
struct folio___word_flags {
  unsigned long flags;
};
typedef struct {
  unsigned long f;
} memdesc_flags_t;
struct folio___memdesc_flags {
  memdesc_flags_t flags;
};
enum pageflags {
  PG_head = 16, /* relocated: 16 on 6.1, 6 on 6.18 */
};

#pragma clang attribute pop
