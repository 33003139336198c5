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
typedef __u64 xfs_ino_t;
typedef long long xfs_fsize_t;

enum bpf_map_type {
  BPF_MAP_TYPE_HASH = 1,
  BPF_MAP_TYPE_ARRAY = 2,
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

struct trace_entry {
  unsigned short type;
  unsigned char flags;
  unsigned char preempt_count;
  int pid;
};
struct trace_event_raw_mm_filemap_op_page_cache {
  struct trace_entry ent;
  unsigned long pfn;
  unsigned long i_ino;
  unsigned long index;
  dev_t s_dev;
  unsigned char order; /* 6.x with large folios; absent before */
};
struct trace_event_raw_mm_filemap_op_page_cache_range {
  struct trace_entry ent;
  unsigned long i_ino;
  dev_t s_dev;
  unsigned long index;
  unsigned long last_index;
};
struct trace_event_raw_mm_filemap_fault {
  struct trace_entry ent;
  unsigned long i_ino;
  dev_t s_dev;
  unsigned long index;
};
struct trace_event_raw_xfs_file_class {
  struct trace_entry ent;
  dev_t dev;
  xfs_ino_t ino;
  xfs_fsize_t size;
  loff_t offset;
  size_t count;
};
struct trace_event_raw_ext4__write_begin {
  struct trace_entry ent;
  dev_t dev;
  unsigned long ino;
  loff_t pos;
  unsigned int len;
};
struct trace_event_raw_dax_pte_fault_class {
  struct trace_entry ent;
  unsigned long ino;
  dev_t dev;
  unsigned int flags;
  int result;
};
struct trace_event_raw_dax_pmd_fault_class {
  struct trace_entry ent;
  unsigned long ino;
  dev_t dev;
  unsigned int flags;
  int result;
};

#pragma clang attribute pop
