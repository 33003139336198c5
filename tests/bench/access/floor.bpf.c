// SPDX-License-Identifier: Apache-2.0
/* Empty programs on the attach points the access program uses for each read,
 * with the same names: what attaching anything at all there costs a read
 * (the tracepoint's or trampoline's dispatch), the floor under the access
 * program's own overhead. bench_access loads those of the plan in use. */
// clang-format off
#include "access_types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
// clang-format on

char LICENSE[] SEC("license") = "GPL";

SEC("fentry/filemap_read")
int BPF_PROG(fentry_filemap_read) { return 0; }

SEC("fexit/filemap_read")
int BPF_PROG(fexit_filemap_read) { return 0; }

SEC("tp_btf/xfs_file_buffered_read")
int BPF_PROG(tp_xfs_buffered_read) { return 0; }

SEC("tp_btf/mm_filemap_get_pages")
int BPF_PROG(tp_get_pages) { return 0; }
