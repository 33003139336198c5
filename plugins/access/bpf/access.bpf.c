// SPDX-License-Identifier: Apache-2.0
/* Per-file read, miss and write counters for daxpolicyd (see access_source.h).
 *
 * Every event is first filtered by device: files on filesystems outside the
 * daemon's scopes cost a scan of a short inline array (scope_devs) and nothing
 * else. Counts go to the counting map `active` points at; user space swaps it
 * for the other one each interval (the swap waits for running programs) and
 * then drains the old one, so no count is lost or counted twice. Inserts that
 * find the map full are counted in `overflow` and the counts are dropped.
 *
 * In front of the counting maps, each CPU keeps the counts of the file it
 * counted last (`cache`, one slot per counting map): events of one file in a
 * row, a loop reading a file, add there without a hash lookup or an atomic
 * operation; another file's event first moves the slot's counts into the
 * counting map. Only programs that run with preemption off use the slots, so
 * no two of them touch one slot at once: tracepoint programs, except on
 * PREEMPT_RT kernels (use_slots is cleared there before load, in case their
 * tracepoints become preemptible); fentry/fexit programs, which may be
 * preempted, count in the map directly. `gen` says which slot (and which map)
 * is current; user space flips it with the swap and drains the old slot of
 * every CPU with the old map. */
// The kernel types come before libbpf's headers, which use them.
// clang-format off
#include "access_types.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
// clang-format on

#include "../access_abi.h"

char LICENSE[] SEC("license") = "GPL";

#define PAGE_SHIFT 12
#define PAGE_SIZE (1ull << PAGE_SHIFT)
#define VM_FAULT_ERROR 0x73u /* OOM | SIGBUS | SIGSEGV | HWPOISON | HWPOISON_LARGE */
#define VM_FAULT_FALLBACK 0x800u
#define PMD_PAGES 512ull

__u64 overflow = 0; /* inserts dropped because a counting map was full */
__u32 gen = 0;      /* the current slot of `cache`: 0 with counts_a, 1 with counts_b */
const volatile __u32 use_slots = 1; /* cleared by user space on PREEMPT_RT kernels */

/* The watched devices, written by user space: a short array compared inline,
 * which is cheaper than a map lookup on every read of every file. */
struct access_scope_dev scope_devs[ACCESS_MAX_DEVS] = {};

struct counting_map {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, 65536); /* set from the options before load */
  __type(key, struct access_key);
  __type(value, struct access_counts);
};
struct counting_map counts_a SEC(".maps");
struct counting_map counts_b SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
  __uint(max_entries, 1);
  __type(key, __u32);
  __array(values, struct counting_map);
} active SEC(".maps") = {
    .values = {&counts_a},
};

/* What the current task last did on a watched file: pages added to the page
 * cache during a write are not misses, and the ranges mm_filemap_get_pages
 * reports for one read overlap (count their union). */
enum { TASK_READ = 1, TASK_WRITE = 2 };
struct task_state {
  __u32 dev;
  __u32 op;
  __u64 ino;
  __u64 index;      /* get_pages: first page of the last range */
  __u64 last_index; /* get_pages: last page of the last range */
};
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 8192);
  __type(key, __u64);
  __type(value, struct task_state);
} tasks SEC(".maps");

static __always_inline __u32 watched(__u32 dev) {
#pragma unroll
  for (int i = 0; i < ACCESS_MAX_DEVS; i++) {
    __u32 d = *(volatile __u32*)&scope_devs[i].dev;
    if (d == 0) return 0;
    if (d == dev) return *(volatile __u32*)&scope_devs[i].flags;
  }
  return 0;
}

static __always_inline struct access_counts* counts_of(__u32 dev, __u64 ino) {
  __u32 zero = 0;
  void* map = bpf_map_lookup_elem(&active, &zero);
  if (!map) return 0;
  struct access_key key = {.dev = dev, .pad = 0, .ino = ino};
  struct access_counts* c = bpf_map_lookup_elem(map, &key);
  if (c) return c;
  struct access_counts fresh = {};
  long err = bpf_map_update_elem(map, &key, &fresh, BPF_NOEXIST);
  if (err && err != -17 /* EEXIST: another CPU inserted it */) {
    __sync_fetch_and_add(&overflow, 1);
    return 0;
  }
  return bpf_map_lookup_elem(map, &key);
}

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 2);
  __type(key, __u32);
  __type(value, struct access_cache_slot);
} cache SEC(".maps");

static __always_inline void add_counts(struct access_counts* to, const struct access_counts* c) {
  if (c->read_bytes) __sync_fetch_and_add(&to->read_bytes, c->read_bytes);
  if (c->pc_pages) __sync_fetch_and_add(&to->pc_pages, c->pc_pages);
  if (c->miss_pages) __sync_fetch_and_add(&to->miss_pages, c->miss_pages);
  if (c->write_bytes) __sync_fetch_and_add(&to->write_bytes, c->write_bytes);
}

/* The counts of (dev, ino) in this CPU's current slot, for plain additions.
 * Only for programs that run with preemption off. */
static __always_inline struct access_counts* slot_counts(__u32 dev, __u64 ino) {
  __u32 g = *(volatile __u32*)&gen & 1;
  struct access_cache_slot* s = bpf_map_lookup_elem(&cache, &g);
  if (!s) return 0;
  if (s->dev == dev && s->ino == ino) return &s->counts;
  if (s->dev != 0) {
    struct access_counts* c = counts_of(s->dev, s->ino);
    if (c) add_counts(c, &s->counts);
  }
  s->dev = dev;
  s->ino = ino;
  s->counts.read_bytes = 0;
  s->counts.pc_pages = 0;
  s->counts.miss_pages = 0;
  s->counts.write_bytes = 0;
  return &s->counts;
}

static __always_inline __u64 pages_spanned(__u64 pos, __u64 bytes) {
  if (bytes == 0) return 0;
  return ((pos + bytes - 1) >> PAGE_SHIFT) - (pos >> PAGE_SHIFT) + 1;
}

/* How many entries of `tasks` say TASK_WRITE (more after the LRU evicted one:
 * then reads just keep looking). While it is 0, a read has no state to change
 * back and skips the lookup: read-only workloads never touch `tasks`. */
__s64 writing = 0;

static __always_inline void set_task(__u32 dev, __u64 ino, __u32 op) {
  if (op == TASK_READ && *(volatile __s64*)&writing <= 0) return;
  __u64 id = bpf_get_current_pid_tgid();
  struct task_state* t = bpf_map_lookup_elem(&tasks, &id);
  if (op == TASK_READ) {
    /* Only a task that wrote needs its state changed back. */
    if (t && t->op == TASK_WRITE) {
      t->op = TASK_READ;
      __sync_fetch_and_add(&writing, -1);
    }
    return;
  }
  if (t) {
    t->dev = dev;
    t->ino = ino;
    if (t->op != TASK_WRITE) __sync_fetch_and_add(&writing, 1);
    t->op = op;
    return;
  }
  struct task_state fresh = {.dev = dev, .op = op, .ino = ino};
  if (bpf_map_update_elem(&tasks, &id, &fresh, BPF_ANY) == 0) __sync_fetch_and_add(&writing, 1);
}

/* Adds to the counts of (dev, ino). `preemptible`: called from fentry/fexit,
 * which count in the map with atomic additions, as every program does when
 * the slots are off; tracepoints count in their CPU's slot. Additions of a
 * constant 0 vanish once inlined. */
static __always_inline void count(__u32 dev, __u64 ino, __u64 read_bytes, __u64 pc_pages,
                                  __u64 miss_pages, __u64 write_bytes, int preemptible) {
  if (preemptible || !use_slots) {
    struct access_counts* c = counts_of(dev, ino);
    if (!c) return;
    struct access_counts add = {read_bytes, pc_pages, miss_pages, write_bytes};
    add_counts(c, &add);
    return;
  }
  struct access_counts* c = slot_counts(dev, ino);
  if (!c) return;
  c->read_bytes += read_bytes;
  c->pc_pages += pc_pages;
  c->miss_pages += miss_pages;
  c->write_bytes += write_bytes;
}

static __always_inline void count_read(__u32 dev, __u64 ino, __u64 pos, __u64 bytes, int dax,
                                       int preemptible) {
  if (bytes == 0) return;
  count(dev, ino, bytes, dax ? 0 : pages_spanned(pos, bytes), 0, 0, preemptible);
}

static __always_inline void count_write(__u32 dev, __u64 ino, __u64 bytes, int preemptible) {
  if (bytes == 0) return;
  count(dev, ino, 0, 0, 0, bytes, preemptible);
}

/* ---- fentry strategy: exact bytes from the generic read paths, any filesystem ---- */

/* The arguments of fentry/fexit and tp_btf programs are typed by the kernel's
 * BTF: they are read with plain loads (the verifier guards them), several
 * times cheaper than the bpf_probe_read_kernel() calls a raw tracepoint's
 * untyped arguments need. A read of an unrelated file costs the four loads to
 * its device and the scan of scope_devs. */
static __always_inline int inode_of_btf(struct kiocb* iocb, __u32* dev, __u64* ino, __u64* size) {
  struct inode* inode = iocb->ki_filp->f_inode;
  if (!inode) return 0;
  *dev = inode->i_sb->s_dev;
  if (!(watched(*dev) & ACCESS_DEV_WATCHED)) return 0;
  *ino = inode->i_ino;
  if (size) *size = inode->i_size;
  return 1;
}

static __always_inline int inode_of(struct kiocb* iocb, __u32* dev, __u64* ino, __u64* size) {
  struct inode* inode = BPF_CORE_READ(iocb, ki_filp, f_inode);
  if (!inode) return 0;
  *dev = BPF_CORE_READ(inode, i_sb, s_dev);
  if (!(watched(*dev) & ACCESS_DEV_WATCHED)) return 0;
  *ino = BPF_CORE_READ(inode, i_ino);
  if (size) *size = BPF_CORE_READ(inode, i_size);
  return 1;
}

SEC("fentry/filemap_read")
int BPF_PROG(fentry_filemap_read, struct kiocb* iocb) {
  __u32 dev;
  __u64 ino;
  if (inode_of_btf(iocb, &dev, &ino, 0)) set_task(dev, ino, TASK_READ);
  return 0;
}

SEC("fexit/filemap_read")
int BPF_PROG(fexit_filemap_read, struct kiocb* iocb, struct iov_iter* iter, ssize_t already_read,
             ssize_t ret) {
  __u32 dev;
  __u64 ino;
  if (ret <= already_read || !inode_of_btf(iocb, &dev, &ino, 0)) return 0;
  __u64 bytes = (__u64)(ret - already_read);
  __u64 end = (__u64)iocb->ki_pos; /* advanced past what was read */
  count_read(dev, ino, end - bytes, bytes, 0, 1);
  return 0;
}

SEC("fexit/dax_iomap_rw")
int BPF_PROG(fexit_dax_iomap_rw, struct kiocb* iocb, struct iov_iter* iter, void* ops,
             ssize_t ret) {
  __u32 dev;
  __u64 ino;
  if (ret <= 0 || !inode_of_btf(iocb, &dev, &ino, 0)) return 0;
  if (iter->data_source)
    count_write(dev, ino, (__u64)ret, 1);
  else
    count_read(dev, ino, 0, (__u64)ret, 1, 1);
  return 0;
}

/* ---- tracepoint strategy: xfs read tracepoints; mm_filemap_get_pages elsewhere ---- */

static __always_inline __u64 clamp_to_size(__s64 size, __s64 offset, __u64 count) {
  if (offset >= size) return 0;
  __u64 left = (__u64)(size - offset);
  return count < left ? count : left;
}

/* The per-read events are BTF-typed raw tracepoints (tp_btf; the plan uses
 * them only where the tracepoint is in the kernel's or its module's BTF): no
 * trace record is built and the arguments are read with plain loads. */
SEC("tp_btf/xfs_file_buffered_read")
int BPF_PROG(tp_xfs_buffered_read, struct kiocb* iocb, struct iov_iter* iter) {
  __u32 dev;
  __u64 ino, size;
  if (!inode_of_btf(iocb, &dev, &ino, &size)) return 0;
  __s64 pos = iocb->ki_pos;
  set_task(dev, ino, TASK_READ);
  count_read(dev, ino, (__u64)pos, clamp_to_size((__s64)size, pos, iter->count), 0, 0);
  return 0;
}

SEC("tp_btf/xfs_file_dax_read")
int BPF_PROG(tp_xfs_dax_read, struct kiocb* iocb, struct iov_iter* iter) {
  __u32 dev;
  __u64 ino, size;
  if (!inode_of_btf(iocb, &dev, &ino, &size)) return 0;
  __s64 pos = iocb->ki_pos;
  count_read(dev, ino, (__u64)pos, clamp_to_size((__s64)size, pos, iter->count), 1, 0);
  return 0;
}

/* One read calls filemap_get_pages once per batch of folios, each time with
 * the range from the current position to the end of the read: the first
 * range covers the later ones. A range is a continuation of the task's
 * previous one when it is on the same file, ends on the same page and starts
 * further on; only a new read is counted. */
SEC("tp_btf/mm_filemap_get_pages")
int BPF_PROG(tp_get_pages, struct address_space* mapping, pgoff_t index, pgoff_t last) {
  struct inode* inode = mapping->host;
  if (!inode) return 0;
  __u32 dev = inode->i_sb->s_dev;
  __u32 flags = watched(dev);
  if (!(flags & ACCESS_DEV_WATCHED) || (flags & ACCESS_DEV_XFS)) return 0;
  __u64 ino = inode->i_ino;
  if (last < index) return 0;
  __u64 id = bpf_get_current_pid_tgid();
  struct task_state* t = bpf_map_lookup_elem(&tasks, &id);
  if (t && t->dev == dev && t->ino == ino && t->last_index == last && index > t->index &&
      t->op == TASK_READ) {
    t->index = index;
    return 0;
  }
  struct task_state now = {
      .dev = dev, .op = TASK_READ, .ino = ino, .index = index, .last_index = last};
  if (t) {
    if (t->op == TASK_WRITE) __sync_fetch_and_add(&writing, -1);
    *t = now;
  } else {
    bpf_map_update_elem(&tasks, &id, &now, BPF_ANY);
  }
  __u64 pages = last - index + 1;
  count(dev, ino, pages * PAGE_SIZE, pages, 0, 0, 0);
  return 0;
}

/* ---- both strategies ---- */

/* Everything below attaches as raw tracepoints too: by bpf() alone, with the
 * tracepoint's arguments read here the way the kernel fills its trace record,
 * so no perf event (perf_event_open) is needed and no record is built. */

static __always_inline __u32 dev_of_mapping(struct address_space* mapping, __u64* ino) {
  /* As the filemap tracepoints do: the superblock's device, else i_rdev. */
  struct inode* host = BPF_CORE_READ(mapping, host);
  if (!host) return 0;
  struct super_block* sb = BPF_CORE_READ(host, i_sb);
  __u32 dev = sb ? BPF_CORE_READ(sb, s_dev) : BPF_CORE_READ(host, i_rdev);
  if (!(watched(dev) & ACCESS_DEV_WATCHED)) return 0;
  *ino = BPF_CORE_READ(host, i_ino);
  return dev;
}

/* folio_order(): 0 unless the folio is large (PG_head set in its first word). */
static __always_inline __u64 folio_pages(struct folio* folio) {
  unsigned long flags = 0;
  if (bpf_core_field_exists(((struct folio___memdesc_flags*)0)->flags.f))
    flags = BPF_CORE_READ((struct folio___memdesc_flags*)folio, flags.f);
  else
    flags = BPF_CORE_READ((struct folio___word_flags*)folio, flags);
  if (!(flags & (1ul << (bpf_core_enum_value(enum pageflags, PG_head) & 63)))) return 1;
  __u32 order;
  if (bpf_core_field_exists(folio->_folio_order))
    order = BPF_CORE_READ(folio, _folio_order);
  else
    order = BPF_CORE_READ(folio, _flags_1) & 0xff;
  return 1ull << (order & 31);
}

/* A page (or large folio) entered the page cache. Outside a write by the same
 * task on the same file it was needed by a read, a fault or readahead: a miss.
 * Readahead pages count when they are added, which is when the read path
 * decided it needs them, so a stream shows misses, not false hits. The
 * argument is a struct folio on Linux 5.16+ and a struct page before (then
 * one page: the kernel had no large page-cache folios). */
SEC("raw_tp/mm_filemap_add_to_page_cache")
int BPF_PROG(tp_add_to_page_cache, void* folio_or_page) {
  struct address_space* mapping;
  const int is_folio = bpf_core_type_exists(struct folio);
  if (is_folio)
    mapping = BPF_CORE_READ((struct folio*)folio_or_page, mapping);
  else
    mapping = BPF_CORE_READ((struct page*)folio_or_page, mapping);
  if (!mapping) return 0;
  __u64 ino;
  __u32 dev = dev_of_mapping(mapping, &ino);
  if (!dev) return 0;
  __u64 id = bpf_get_current_pid_tgid();
  struct task_state* t = bpf_map_lookup_elem(&tasks, &id);
  if (t && t->op == TASK_WRITE && t->dev == dev && t->ino == ino) return 0;
  __u64 pages = is_folio ? folio_pages((struct folio*)folio_or_page) : 1;
  count(dev, ino, 0, 0, pages, 0, 0);
  return 0;
}

static __always_inline void count_fault(__u32 dev, __u64 ino, __u64 pages, int dax) {
  count(dev, ino, pages * PAGE_SIZE, dax ? 0 : pages, 0, 0, 0);
}

SEC("raw_tp/mm_filemap_fault")
int BPF_PROG(tp_filemap_fault, struct address_space* mapping, pgoff_t index) {
  __u64 ino;
  __u32 dev = dev_of_mapping(mapping, &ino);
  if (!dev) return 0;
  set_task(dev, ino, TASK_READ);
  count_fault(dev, ino, 1, 0);
  return 0;
}

SEC("raw_tp/mm_filemap_map_pages")
int BPF_PROG(tp_filemap_map_pages, struct address_space* mapping, pgoff_t index, pgoff_t last) {
  __u64 ino;
  __u32 dev = dev_of_mapping(mapping, &ino);
  if (!dev || last < index) return 0;
  count_fault(dev, ino, last - index + 1, 0);
  return 0;
}

static __always_inline void dax_fault(struct inode* inode, struct vm_fault* vmf, int result,
                                      __u64 pages) {
  __u32 dev = BPF_CORE_READ(inode, i_sb, s_dev);
  if (!(watched(dev) & ACCESS_DEV_WATCHED)) return;
  if ((__u32)result & (VM_FAULT_ERROR | VM_FAULT_FALLBACK)) return;
  __u64 ino = BPF_CORE_READ(inode, i_ino);
  if (BPF_CORE_READ(vmf, flags) & FAULT_FLAG_WRITE)
    count_write(dev, ino, pages * PAGE_SIZE, 0);
  else
    count_fault(dev, ino, pages, 1);
}

SEC("raw_tp/dax_pte_fault_done")
int BPF_PROG(tp_dax_pte_fault_done, struct inode* inode, struct vm_fault* vmf, int result) {
  dax_fault(inode, vmf, result, 1);
  return 0;
}

SEC("raw_tp/dax_pmd_fault_done")
int BPF_PROG(tp_dax_pmd_fault_done, struct inode* inode, struct vm_fault* vmf,
             unsigned long max_pgoff, int result) {
  dax_fault(inode, vmf, result, PMD_PAGES);
  return 0;
}

/* Writes: xfs tells every buffered and DAX write at its start; ext4 tells each
 * page-cache chunk a write copies (its DAX writes are seen by fexit on
 * dax_iomap_rw in the fentry strategy). The task is marked as writing so the
 * pages the write adds are not misses. */
SEC("raw_tp/xfs_file_buffered_write")
int BPF_PROG(tp_xfs_buffered_write, struct kiocb* iocb, struct iov_iter* iter) {
  __u32 dev;
  __u64 ino;
  if (!inode_of(iocb, &dev, &ino, 0)) return 0;
  set_task(dev, ino, TASK_WRITE);
  count_write(dev, ino, BPF_CORE_READ(iter, count), 0);
  return 0;
}

SEC("raw_tp/xfs_file_dax_write")
int BPF_PROG(tp_xfs_dax_write, struct kiocb* iocb, struct iov_iter* iter) {
  __u32 dev;
  __u64 ino;
  if (!inode_of(iocb, &dev, &ino, 0)) return 0;
  count_write(dev, ino, BPF_CORE_READ(iter, count), 0);
  return 0;
}

/* (inode, pos, len) on every kernel since 4.x; before 5.19 a fourth argument
 * (flags) followed, which is not read. */
static __always_inline void ext4_write(struct inode* inode, unsigned int len) {
  __u32 dev = BPF_CORE_READ(inode, i_sb, s_dev);
  if (!(watched(dev) & ACCESS_DEV_WATCHED)) return;
  __u64 ino = BPF_CORE_READ(inode, i_ino);
  set_task(dev, ino, TASK_WRITE);
  count_write(dev, ino, len, 0);
}

SEC("raw_tp/ext4_da_write_begin")
int BPF_PROG(tp_ext4_da_write_begin, struct inode* inode, loff_t pos, unsigned int len) {
  ext4_write(inode, len);
  return 0;
}

SEC("raw_tp/ext4_write_begin")
int BPF_PROG(tp_ext4_write_begin, struct inode* inode, loff_t pos, unsigned int len) {
  ext4_write(inode, len);
  return 0;
}
