// SPDX-License-Identifier: Apache-2.0
#include "plugins/access/access_tracer.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>

#include "access.skel.h"

namespace daxpolicy::access {

namespace {

// Where each program attaches: a tracepoint "category/name" (as a raw tracepoint,
// found in BTF) or a kernel function (fentry/fexit, found in BTF).
// Programs on the per-read tracepoints are BTF-typed (tp_btf): their tracepoint
// must also be in the BTF of the kernel or of its module.
struct ProgramInfo {
  const char* name;
  const char* tracepoint;  // nullptr for fentry/fexit
  const char* function;    // nullptr for tracepoints
};
constexpr ProgramInfo kPrograms[] = {
    {"fentry_filemap_read", nullptr, "filemap_read"},
    {"fexit_filemap_read", nullptr, "filemap_read"},
    {"fexit_dax_iomap_rw", nullptr, "dax_iomap_rw"},
    {"tp_xfs_buffered_read", "xfs/xfs_file_buffered_read", nullptr},
    {"tp_xfs_dax_read", "xfs/xfs_file_dax_read", nullptr},
    {"tp_get_pages", "filemap/mm_filemap_get_pages", nullptr},
    {"tp_add_to_page_cache", "filemap/mm_filemap_add_to_page_cache", nullptr},
    {"tp_filemap_fault", "filemap/mm_filemap_fault", nullptr},
    {"tp_filemap_map_pages", "filemap/mm_filemap_map_pages", nullptr},
    {"tp_dax_pte_fault_done", "fs_dax/dax_pte_fault_done", nullptr},
    {"tp_dax_pmd_fault_done", "fs_dax/dax_pmd_fault_done", nullptr},
    {"tp_xfs_buffered_write", "xfs/xfs_file_buffered_write", nullptr},
    {"tp_xfs_dax_write", "xfs/xfs_file_dax_write", nullptr},
    {"tp_ext4_da_write_begin", "ext4/ext4_da_write_begin", nullptr},
    {"tp_ext4_write_begin", "ext4/ext4_write_begin", nullptr},
};

const ProgramInfo* InfoOf(const std::string& name) {
  for (const ProgramInfo& p : kPrograms) {
    if (name == p.name) return &p;
  }
  return nullptr;
}

// The programs whose failure to attach leaves no read counting at all.
bool IsReadProgram(const std::string& name) {
  return name == "fexit_filemap_read" || name == "tp_xfs_buffered_read" || name == "tp_get_pages";
}

constexpr const char* kOtherFsUnseen =
    "reads on filesystems other than xfs are not seen (needs fexit on filemap_read or "
    "filemap:mm_filemap_get_pages, Linux 6.12+)";

std::string Errno(int err) { return std::strerror(err < 0 ? -err : err); }

// The hint that goes with EPERM from bpf().
std::string PermissionHint(int err) {
  if (err != -EPERM && err != EPERM && err != -EACCES && err != EACCES) return "";
  return " (needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN, and a system-call filter "
         "that allows bpf)";
}

// What a plan counts, from its programs, and the limits that follow: the one
// place that says which program counts what.
void SetCounts(Plan* plan) {
  auto has = [&](const char* program) {
    return std::find(plan->programs.begin(), plan->programs.end(), program) != plan->programs.end();
  };
  plan->reads_other = has("fexit_filemap_read") || has("tp_get_pages");
  plan->reads_xfs = plan->reads_other || has("tp_xfs_buffered_read");
  plan->dax_reads = has("fexit_dax_iomap_rw") || has("tp_xfs_dax_read");
  plan->misses = has("tp_add_to_page_cache");
  plan->faults = has("tp_filemap_fault");
  plan->limits.clear();
  if (!plan->misses) plan->limits.emplace_back(kMissesUnseen);
  if (!plan->reads_other) plan->limits.emplace_back(kOtherFsUnseen);
  if (!plan->dax_reads) {
    plan->limits.emplace_back(
        plan->strategy == Strategy::kFentry
            ? "read calls on DAX files are not seen (no dax_iomap_rw in BTF)"
            : "read calls on DAX files are not seen (no xfs:xfs_file_dax_read)");
  } else if (plan->strategy == Strategy::kTracepoint) {
    plan->limits.emplace_back(
        "read calls on DAX files on ext4 are not seen (ext4 has no DAX read tracepoint)");
  }
  if (!plan->faults) {
    plan->limits.emplace_back(
        "page-cache faults are not seen (no filemap:mm_filemap_fault, Linux 6.x before 6.12)");
  }
}

}  // namespace

std::string_view StrategyName(Strategy s) {
  switch (s) {
    case Strategy::kFentry:
      return "fentry";
    case Strategy::kTracepoint:
      return "tracepoint";
    case Strategy::kNone:
      break;
  }
  return "none";
}

uint32_t KernelDev(dev_t dev) {
  return static_cast<uint32_t>((major(dev) << 20) | (minor(dev) & 0xfffff));
}

KernelOffer ProbeKernel() {
  KernelOffer offer;
  struct utsname uts {};
  char realtime = '0';
  if (FILE* f = std::fopen("/sys/kernel/realtime", "re")) {
    if (std::fread(&realtime, 1, 1, f) != 1) realtime = '0';
    std::fclose(f);
  }
  offer.preempt_rt =
      realtime == '1' || (uname(&uts) == 0 && std::strstr(uts.version, "PREEMPT_RT") != nullptr);
  offer.btf = ::access("/sys/kernel/btf/vmlinux", R_OK) == 0;
  struct btf* vmlinux = offer.btf ? btf__load_vmlinux_btf() : nullptr;
  if (vmlinux != nullptr && libbpf_get_error(vmlinux) != 0) vmlinux = nullptr;
  // Every tracepoint of a kernel built with BTF has its prototype there, the
  // typedef btf_trace_NAME, in vmlinux or, for a module's tracepoint, in
  // /sys/kernel/btf/MODULE (the category: xfs). Both kinds of program attach
  // by name with bpf(2), so tracefs, which a machine may not mount, is not used.
  std::map<std::string, struct btf*> modules;
  auto in_btf = [&](std::string_view tracepoint) {
    if (vmlinux == nullptr) return false;
    const size_t slash = tracepoint.find('/');
    const std::string type = "btf_trace_" + std::string(tracepoint.substr(slash + 1));
    if (btf__find_by_name_kind(vmlinux, type.c_str(), BTF_KIND_TYPEDEF) > 0) return true;
    const std::string module(tracepoint.substr(0, slash));
    auto it = modules.find(module);
    if (it == modules.end()) {
      struct btf* b = nullptr;
      if (::access(("/sys/kernel/btf/" + module).c_str(), R_OK) == 0) {
        b = btf__load_module_btf(module.c_str(), vmlinux);
        if (libbpf_get_error(b) != 0) b = nullptr;
      }
      it = modules.emplace(module, b).first;
    }
    return it->second != nullptr &&
           btf__find_by_name_kind(it->second, type.c_str(), BTF_KIND_TYPEDEF) > 0;
  };
  for (const ProgramInfo& p : kPrograms) {
    if (p.tracepoint != nullptr && in_btf(p.tracepoint)) {
      offer.tracepoints.insert(p.tracepoint);
    }
    if (p.function != nullptr && vmlinux != nullptr &&
        btf__find_by_name_kind(vmlinux, p.function, BTF_KIND_FUNC) > 0) {
      offer.functions.insert(p.function);
    }
  }
  for (auto& [name, b] : modules) btf__free(b);
  btf__free(vmlinux);
  return offer;
}

std::string CoverageOf(const Plan& plan, bool xfs) {
  if (plan.strategy == Strategy::kNone) return "access tracing is unavailable: " + plan.unavailable;
  if (xfs ? plan.reads_xfs : plan.reads_other) return "";
  return std::string("access tracing: ") + kOtherFsUnseen;
}

Plan ChoosePlan(const KernelOffer& offer) {
  Plan plan;
  plan.slots = !offer.preempt_rt;
  auto tp = [&](const char* name) { return offer.tracepoints.count(name) > 0; };
  auto fn = [&](const char* name) { return offer.functions.count(name) > 0; };
  if (!offer.btf) {
    plan.unavailable =
        "the kernel has no BTF (/sys/kernel/btf/vmlinux; CONFIG_DEBUG_INFO_BTF), which the "
        "access program needs";
    return plan;
  }
  auto add = [&](const char* program) { plan.programs.emplace_back(program); };
  const bool xfs_read_events = tp("xfs/xfs_file_buffered_read");
  if (offer.tracing_programs && fn("filemap_read")) {
    plan.strategy = Strategy::kFentry;
    add("fentry_filemap_read");
    add("fexit_filemap_read");
    if (fn("dax_iomap_rw")) {
      add("fexit_dax_iomap_rw");
    } else if (tp("xfs/xfs_file_dax_write")) {
      add("tp_xfs_dax_write");
    }
  } else if (xfs_read_events || tp("filemap/mm_filemap_get_pages")) {
    plan.strategy = Strategy::kTracepoint;
    if (xfs_read_events) {
      add("tp_xfs_buffered_read");
      if (tp("xfs/xfs_file_dax_read")) add("tp_xfs_dax_read");
    }
    if (tp("filemap/mm_filemap_get_pages")) add("tp_get_pages");
    if (tp("xfs/xfs_file_dax_write")) add("tp_xfs_dax_write");
  } else {
    plan.unavailable =
        "no attach point for reads: fentry/fexit on filemap_read is not available" +
        std::string(offer.tracing_programs ? " (no such function in BTF)" : "") +
        ", and neither xfs:xfs_file_buffered_read nor filemap:mm_filemap_get_pages exists "
        "(no btf_trace_ type for either in the kernel's or the xfs module's BTF)";
    return plan;
  }
  for (const char* t :
       {"filemap/mm_filemap_add_to_page_cache", "filemap/mm_filemap_fault",
        "filemap/mm_filemap_map_pages", "fs_dax/dax_pte_fault_done", "fs_dax/dax_pmd_fault_done",
        "xfs/xfs_file_buffered_write", "ext4/ext4_da_write_begin", "ext4/ext4_write_begin"}) {
    if (!tp(t)) continue;
    for (const ProgramInfo& p : kPrograms) {
      if (p.tracepoint != nullptr && std::string_view(p.tracepoint) == t) add(p.name);
    }
  }
  SetCounts(&plan);
  return plan;
}

Plan NarrowToAttached(Plan plan, const std::function<bool(const std::string&)>& attached) {
  if (plan.strategy == Strategy::kNone) return plan;
  std::erase_if(plan.programs, [&](const std::string& p) { return !attached(p); });
  SetCounts(&plan);
  return plan;
}

struct AccessTracer::Impl {
  access_bpf* skel = nullptr;
  std::map<std::string, bpf_program*> programs;  // the loaded ones that attached once
  std::map<std::string, bpf_link*> links;        // the attached ones
  bool xfs_read_events = false;
  bool active_is_a = true;
  uint64_t last_overflow = 0;
  ~Impl() {
    for (auto& [name, l] : links) bpf_link__destroy(l);
    access_bpf__destroy(skel);
  }
};

AccessTracer::AccessTracer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AccessTracer::~AccessTracer() = default;

std::unique_ptr<AccessTracer> AccessTracer::Start(const Plan& plan, const Options& options,
                                                  std::string* error) {
  if (plan.strategy == Strategy::kNone) {
    *error = plan.unavailable;
    return nullptr;
  }
  // Errors come back with errno and are reported by the caller; libbpf's own
  // messages (e.g. of a fentry load tried before the fallback) would only be noise.
  libbpf_set_print(nullptr);
  auto impl = std::make_unique<Impl>();
  impl->skel = access_bpf__open();
  if (impl->skel == nullptr) {
    *error = "cannot open the access BPF object: " + Errno(errno);
    return nullptr;
  }
  bpf_object* obj = impl->skel->obj;
  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, obj) {
    const std::string name = bpf_program__name(prog);
    const bool wanted =
        std::find(plan.programs.begin(), plan.programs.end(), name) != plan.programs.end();
    bpf_program__set_autoload(prog, wanted);
  }
  impl->skel->rodata->use_slots = plan.slots ? 1 : 0;
  const uint32_t entries = std::max<uint32_t>(options.max_files, 16);
  if (bpf_map__set_max_entries(impl->skel->maps.counts_a, entries) != 0 ||
      bpf_map__set_max_entries(impl->skel->maps.counts_b, entries) != 0) {
    *error = "cannot size the counting maps";
    return nullptr;
  }
  if (int err = access_bpf__load(impl->skel); err != 0) {
    *error = "cannot load the access BPF program (" + std::string(StrategyName(plan.strategy)) +
             "): " + Errno(err) + PermissionHint(err);
    return nullptr;
  }
  std::vector<std::string> failures;
  bool reads = false;
  bpf_object__for_each_program(prog, obj) {
    const std::string name = bpf_program__name(prog);
    if (!bpf_program__autoload(prog)) continue;
    bpf_link* link = nullptr;
    if (options.refuse_attach.count(name) > 0) {
      errno = EPERM;
    } else {
      link = bpf_program__attach(prog);
    }
    const ProgramInfo* info = InfoOf(name);
    const std::string where = info == nullptr               ? name
                              : info->tracepoint != nullptr ? info->tracepoint
                                                            : info->function;
    if (link == nullptr) {
      const int err = errno;
      failures.push_back("cannot attach to " + where + ": " + Errno(err) + PermissionHint(err));
      continue;
    }
    impl->links[name] = link;
    impl->programs[name] = prog;
    if (IsReadProgram(name)) reads = true;
    if (name == "tp_xfs_buffered_read") impl->xfs_read_events = true;
  }
  if (!reads) {
    *error = failures.empty() ? "no read program attached" : failures.front();
    return nullptr;
  }
  auto tracer = std::unique_ptr<AccessTracer>(new AccessTracer(std::move(impl)));
  tracer->attach_failures_ = std::move(failures);
  return tracer;
}

std::unique_ptr<AccessTracer> AccessTracer::StartBest(KernelOffer offer, const Options& options,
                                                      Plan* plan) {
  *plan = ChoosePlan(offer);
  std::string error;
  std::unique_ptr<AccessTracer> tracer = Start(*plan, options, &error);
  if (tracer == nullptr && plan->strategy == Strategy::kFentry) {
    const std::string fentry_error = error;
    offer.tracing_programs = false;
    *plan = ChoosePlan(offer);
    tracer = Start(*plan, options, &error);
    if (tracer == nullptr) error = fentry_error + "; " + error;
  }
  if (tracer == nullptr) {
    plan->strategy = Strategy::kNone;
    plan->unavailable = error;
    return nullptr;
  }
  *plan = NarrowToAttached(std::move(*plan),
                           [&](const std::string& name) { return tracer->Attached(name); });
  return tracer;
}

bool AccessTracer::Attached(const std::string& name) const {
  return impl_->programs.count(name) > 0;
}

bool AccessTracer::AttachedNow(const std::string& name) const {
  return impl_->links.count(name) > 0;
}

int AccessTracer::EnableRunTimeStats() { return bpf_enable_stats(BPF_STATS_RUN_TIME); }

bool AccessTracer::RunTime(uint64_t* ns, uint64_t* runs) const {
  *ns = 0;
  *runs = 0;
  for (const auto& [name, prog] : impl_->programs) {
    bpf_prog_info info{};
    uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) != 0) return false;
    *ns += info.run_time_ns;
    *runs += info.run_cnt;
  }
  return true;
}

bool AccessTracer::SetDevices(const std::vector<Device>& devices, std::string* error) {
  if (devices.size() > ACCESS_MAX_DEVS) {
    *error = "access tracing watches at most " + std::to_string(ACCESS_MAX_DEVS) +
             " filesystems; the scopes span " + std::to_string(devices.size());
    return false;
  }
  // The array the programs compare inline. Entries are written before the
  // terminating zero moves, so a reader sees the old or the new list, give or
  // take the entry being written (an event or two at the switch).
  auto* slots = impl_->skel->bss->scope_devs;
  bool has_xfs = false;
  bool has_other = false;
  size_t n = 0;
  for (const Device& d : devices) {
    uint32_t flags = ACCESS_DEV_WATCHED;
    if (d.xfs && impl_->xfs_read_events) flags |= ACCESS_DEV_XFS;
    (d.xfs ? has_xfs : has_other) = true;
    __atomic_store_n(&slots[n].flags, flags, __ATOMIC_RELEASE);
    __atomic_store_n(&slots[n].dev, KernelDev(d.dev), __ATOMIC_RELEASE);
    ++n;
  }
  for (size_t i = n; i < ACCESS_MAX_DEVS; ++i)
    __atomic_store_n(&slots[i].dev, 0u, __ATOMIC_RELEASE);

  // Programs that can only fire for filesystems not under scope are detached:
  // unrelated I/O then does not run them at all.
  for (auto& [name, prog] : impl_->programs) {
    bool needed = n > 0;
    if (name.rfind("tp_xfs_", 0) == 0) needed = has_xfs;
    if (name.rfind("tp_ext4_", 0) == 0) needed = has_other;
    if (name == "tp_get_pages") needed = has_other || (has_xfs && !impl_->xfs_read_events);
    auto it = impl_->links.find(name);
    if (needed && it == impl_->links.end()) {
      bpf_link* link = bpf_program__attach(prog);
      if (link == nullptr) {
        *error = "cannot attach the access program " + name + ": " + Errno(errno);
        return false;
      }
      impl_->links[name] = link;
    } else if (!needed && it != impl_->links.end()) {
      bpf_link__destroy(it->second);
      impl_->links.erase(it);
    }
  }
  return true;
}

namespace {

// Reads and empties a counting map no program writes to any more, with batch
// lookup-and-delete (hash maps: Linux 5.6+; the daemon needs 5.8).
bool DrainMap(int fd, AccessCounts* out, std::string* error) {
  constexpr uint32_t kChunk = 1024;
  std::vector<access_key> keys(kChunk);
  std::vector<access_counts> values(kChunk);
  uint64_t batch = 0;
  bool first = true;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  for (;;) {
    uint32_t n = kChunk;
    int rc = bpf_map_lookup_and_delete_batch(fd, first ? nullptr : &batch, &batch, keys.data(),
                                             values.data(), &n, &opts);
    const int err = rc != 0 ? errno : 0;
    if (rc != 0 && err != ENOENT) {
      *error = "cannot read the access counters (batch lookup-and-delete): " + Errno(err);
      return false;
    }
    for (uint32_t i = 0; i < n; ++i) {
      access_counts& c = out->files[FileKey{keys[i].dev, keys[i].ino}];
      c.read_bytes += values[i].read_bytes;
      c.pc_pages += values[i].pc_pages;
      c.miss_pages += values[i].miss_pages;
      c.write_bytes += values[i].write_bytes;
    }
    first = false;
    if (rc != 0) return true;  // ENOENT: the map is empty now
  }
}

// Reads slot `g` of the per-CPU cache, which no program writes to any more:
// the counts each CPU held back from the counting map.
bool ReadSlots(int fd, uint32_t g, std::vector<access_cache_slot>* slots, std::string* error) {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) {
    *error =
        "cannot read the access counters: the number of possible CPUs is unknown: " + Errno(cpus);
    return false;
  }
  slots->assign(static_cast<size_t>(cpus), access_cache_slot{});
  if (bpf_map_lookup_elem(fd, &g, slots->data()) != 0) {
    *error = "cannot read the access counters (per-CPU cache): " + Errno(errno);
    return false;
  }
  return true;
}

// Adds the slots' counts to *out and empties slot `g` of every CPU.
bool TakeSlots(int fd, uint32_t g, std::vector<access_cache_slot>& slots, AccessCounts* out,
               std::string* error) {
  bool any = false;
  for (const access_cache_slot& s : slots) {
    if (s.dev == 0) continue;
    any = true;
    access_counts& c = out->files[FileKey{s.dev, s.ino}];
    c.read_bytes += s.counts.read_bytes;
    c.pc_pages += s.counts.pc_pages;
    c.miss_pages += s.counts.miss_pages;
    c.write_bytes += s.counts.write_bytes;
  }
  if (!any) return true;
  std::fill(slots.begin(), slots.end(), access_cache_slot{});
  if (bpf_map_update_elem(fd, &g, slots.data(), BPF_ANY) != 0) {
    *error = "cannot empty the access counters (per-CPU cache): " + Errno(errno);
    return false;
  }
  return true;
}

}  // namespace

bool AccessTracer::Drain(AccessCounts* out, std::string* error) {
  out->files.clear();
  out->overflow = 0;
  access_bpf* skel = impl_->skel;
  bpf_map* old_map = impl_->active_is_a ? skel->maps.counts_a : skel->maps.counts_b;
  bpf_map* new_map = impl_->active_is_a ? skel->maps.counts_b : skel->maps.counts_a;
  const uint32_t old_gen = impl_->active_is_a ? 0 : 1;
  const uint32_t zero = 0;
  const int new_fd = bpf_map__fd(new_map);
  // The programs' slot first, then their map. Updating a map-of-maps waits
  // for every running program (synchronize_rcu), so once it returns nothing
  // writes to the old map or the old slots any more. A program that ran
  // across the two stores may have moved counts of the old slot into the new
  // map or the other way round: they are counted in this interval or the
  // next, never lost or twice. (When the swap fails, counts the new slot took
  // meanwhile come an interval or two late.)
  __atomic_store_n(&skel->bss->gen, 1 - old_gen, __ATOMIC_RELEASE);
  if (bpf_map_update_elem(bpf_map__fd(skel->maps.active), &zero, &new_fd, BPF_ANY) != 0) {
    __atomic_store_n(&skel->bss->gen, old_gen, __ATOMIC_RELEASE);
    *error = "cannot swap the access counting maps: " + Errno(errno);
    return false;
  }
  impl_->active_is_a = !impl_->active_is_a;
  // The slots are read before the map is emptied: a failure leaves both to a
  // later interval rather than losing the map's counts.
  std::vector<access_cache_slot> slots;
  const int cache_fd = bpf_map__fd(skel->maps.cache);
  if (!ReadSlots(cache_fd, old_gen, &slots, error)) return false;
  if (!DrainMap(bpf_map__fd(old_map), out, error)) return false;
  if (!TakeSlots(cache_fd, old_gen, slots, out, error)) return false;
  const uint64_t overflow = __atomic_load_n(&skel->bss->overflow, __ATOMIC_RELAXED);
  out->overflow = overflow - impl_->last_overflow;
  impl_->last_overflow = overflow;
  return true;
}

}  // namespace daxpolicy::access
