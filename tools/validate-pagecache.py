#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Records a real workload's page-cache behaviour as a daxpolicy trace.

Runs a read workload against real files inside a memory cgroup (v1 or v2) that
limits the page cache, and measures what the kernel's page cache did for every
read: the bytes it had to fetch from the device for that read (the change of
read_bytes in /proc/self/io around the call, readahead included). A file's
hit ratio is 1 - fetched / read. Writes a trace (docs/trace-format.md) with,
per interval and file, the bytes read, the calls, the distinct bytes covered
and the measured hit ratio, for
`daxpolicyctl simulate --hits` to compare with the page-cache model
(docs/simulate.md). Needs root (cgroup) and task I/O accounting.

  tools/validate-pagecache.py --dir /var/tmp/daxval --workload zipf --out zipf.trace
"""
import argparse
import bisect
import os
import random
import sys

PAGE = 4096


def cgroup_enter(name, limit):
    """Moves this process into a fresh memory cgroup limited to `limit` bytes.

    Returns (the cgroup, the cgroup it came from) for cgroup_leave."""
    v2 = "/sys/fs/cgroup/cgroup.controllers"
    if os.path.exists(v2):
        path = f"/sys/fs/cgroup/{name}"
        os.makedirs(path, exist_ok=True)
        with open(f"{path}/memory.max", "w") as f:
            f.write(str(limit))
        with open("/proc/self/cgroup") as f:
            # "0::/user.slice/..." on a v2-only system.
            home = "/sys/fs/cgroup" + next(l for l in f.read().splitlines()
                                           if l.startswith("0::"))[3:].rstrip("/")
    else:
        path = f"/sys/fs/cgroup/memory/{name}"
        os.makedirs(path, exist_ok=True)
        with open(f"{path}/memory.limit_in_bytes", "w") as f:
            f.write(str(limit))
        home = "/sys/fs/cgroup/memory"
    with open(f"{path}/cgroup.procs", "w") as f:
        f.write(str(os.getpid()))
    return path, home


def cgroup_leave(path, home):
    """Moves this process back and removes the cgroup cgroup_enter made."""
    with open(f"{home}/cgroup.procs", "w") as f:
        f.write(str(os.getpid()))
    os.rmdir(path)


def escape(path):
    """A path as trace lines write it (policy/trace.cpp EscapeTracePath)."""
    out = []
    for c in os.fsencode(path):
        out.append(f"%{c:02X}" if c <= 0x20 or c >= 0x7F or c in b"%=" else chr(c))
    return "".join(out)


def make_files(directory, files):
    block = os.urandom(1 << 20)
    for path, size in files:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not (os.path.exists(path) and os.path.getsize(path) == size):
            with open(path, "wb") as f:
                for _ in range(size >> 20):
                    f.write(block)
                f.flush()
                os.fsync(f.fileno())
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # start cold
        os.close(fd)


class Recorder:
    def __init__(self, files):
        self.files = files
        self.fds = {p: os.open(p, os.O_RDONLY) for p, _ in files}
        self.io = open("/proc/self/io", "rb", buffering=0)
        self.buf = bytearray(1 << 20)
        self.last_fetched = self.fetched()
        self.reset()

    def reset(self):
        self.read = {p: 0 for p, _ in self.files}
        self.fetch = {p: 0 for p, _ in self.files}
        self.calls = {p: 0 for p, _ in self.files}
        self.pages = {p: set() for p, _ in self.files}

    def pread(self, path, offset, length):
        fd = self.fds[path]
        view = memoryview(self.buf)[:length]
        os.preadv(fd, [view], offset)
        # Nothing else reads between two calls: the reading after the last
        # call is the one before this one.
        now = self.fetched()
        fetched = now - self.last_fetched
        self.last_fetched = now
        self.read[path] += length
        self.fetch[path] += fetched
        self.calls[path] += 1
        for p in range(offset // PAGE, (offset + length - 1) // PAGE + 1):
            self.pages[path].add(p)

    def fetched(self):
        self.io.seek(0)
        for line in self.io.read().split(b"\n"):
            if line.startswith(b"read_bytes:"):
                return int(line.split()[1])
        raise RuntimeError("no read_bytes in /proc/self/io (task I/O accounting is off)")

    def interval(self, t_ns):
        out = [f"t {t_ns}"]
        sizes = dict(self.files)
        for path, _ in self.files:
            r = self.read[path]
            if r == 0:
                continue
            distinct = min(len(self.pages[path]) * PAGE, sizes[path])
            out.append(f"f {escape(path)} size={sizes[path]} mode=page-cache read={r} "
                       f"calls={self.calls[path]} write=0 distinct={distinct} "
                       f"hit={max(0.0, 1 - self.fetch[path] / r):.6f} resident=-")
        self.reset()
        return "\n".join(out) + "\n"


def zipf_cdf(n, s):
    weights = [1.0 / (i + 1) ** s for i in range(n)]
    total = sum(weights)
    acc, cdf = 0.0, []
    for w in weights:
        acc += w / total
        cdf.append(acc)
    return cdf


def sample(cdf, rnd):
    return min(bisect.bisect_left(cdf, rnd.random()), len(cdf) - 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True, help="directory on a real (non-tmpfs) filesystem")
    ap.add_argument("--workload", choices=["zipf", "stream", "moving"], required=True)
    ap.add_argument("--intervals", type=int, default=30)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    mib = 1 << 20
    d = os.path.abspath(a.dir)
    if a.workload == "zipf":
        # 16 tables of 64 MiB, 4 KiB reads Zipf(0.9) over tables and pages, 384 MiB of cache.
        files = [(f"{d}/kv/table-{i:02}.sst", 64 * mib) for i in range(16)]
        limit = 384 * mib
    elif a.workload == "stream":
        # A 128 MiB file re-read at random next to two 512 MiB logs read once, 256 MiB of cache.
        files = [(f"{d}/db/hot.dat", 128 * mib)] + [(f"{d}/logs/{i}.log", 512 * mib) for i in range(2)]
        limit = 256 * mib
    else:
        # 8 files of 64 MiB, 2 read at random at a time, the next 2 every 10 intervals; 192 MiB.
        files = [(f"{d}/moving/part-{i}.dat", 64 * mib) for i in range(8)]
        limit = 192 * mib
    make_files(d, files)
    cgroup, home = cgroup_enter(f"daxpolicy-validate-{os.getpid()}", limit)
    try:
        run(a, rnd, d, files, limit)
    finally:
        cgroup_leave(cgroup, home)


def run(a, rnd, d, files, limit):
    mib = 1 << 20
    # The cgroup's limit covers this process's own memory too.
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    rec = Recorder(files)
    out = [f"daxpolicy-trace 1", "interval_ns 1000000000", f"page_size {PAGE}",
           f"dram_budget {limit - rss}", f"mount {escape(d)}", ""]
    table_cdf = zipf_cdf(16, 0.9)
    page_cdf = zipf_cdf(64 * mib // PAGE, 0.9)
    perm = [rnd.randrange(1 << 30) for _ in range(16)]
    stream_pos = [0, 0]
    for i in range(a.intervals):
        if a.workload == "zipf":
            for _ in range(20000):
                t = sample(table_cdf, rnd)
                p = (sample(page_cdf, rnd) * 2654435761 + perm[t]) % (64 * mib // PAGE)
                rec.pread(files[t][0], p * PAGE, PAGE)
        elif a.workload == "stream":
            for _ in range(8000):
                rec.pread(files[0][0], rnd.randrange(128 * mib // PAGE) * PAGE, PAGE)
            for s in range(2):
                for _ in range(128):  # 16 MiB per interval per log, 128 KiB calls
                    if stream_pos[s] < 512 * mib:
                        rec.pread(files[1 + s][0], stream_pos[s], 128 * 1024)
                        stream_pos[s] += 128 * 1024
        else:
            first = (i // 10) * 2
            for _ in range(10000):
                f = files[(first + rnd.randrange(2)) % 8][0]
                rec.pread(f, rnd.randrange(64 * mib // PAGE) * PAGE, PAGE)
        out.append(rec.interval((i + 1) * 1_000_000_000))
    with open(a.out, "w") as f:
        f.write("\n".join(out))
    print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
