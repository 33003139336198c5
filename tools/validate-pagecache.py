#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Measures a real workload's page-cache behaviour as a daxpolicy trace.

Runs a read workload against real files inside a memory cgroup (v1 or v2)
that limits the page cache, and writes a trace (docs/trace-format.md) for
`daxpolicyctl simulate --hits` to compare with the page-cache model
(docs/simulate.md). Needs root (cgroup, loop device, BPF).

With --daemon BINDIR (the documented way), the hit ratios come from the
daemon itself: the files live on a loop-mounted xfs (direct I/O to its image,
so the image's own pages do not share the cgroup's cache) under the scope of
a daxpolicyd started on a private session bus, which records the trace with
its access tracer (eBPF) through `daxpolicyctl record start|stop`. The daemon
does not count read calls or the bytes the reads covered, so this tool fills
in `calls` and `distinct` of each recorded interval from its own log of reads.
Without --daemon, files are made under --dir and the hit ratio of each
interval is measured by the workload itself: 1 - fetched / read, the fetched
bytes being the change of read_bytes in /proc/self/io around each read
(readahead included). Both ways print each file's /proc/self/io hit ratio
over the whole run as a cross-check.

  tools/validate-pagecache.py --daemon build/bin --dir /var/tmp/daxval --workload zipf --out zipf.trace
"""
import argparse
import bisect
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from array import array

PAGE = 4096
MIB = 1 << 20


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
    """Reads for the workload, counting per file and logging every call."""

    def __init__(self, files, calls, per_interval):
        self.files = files
        self.per_interval = per_interval  # count pages for interval(); else only log
        self.index = {p: i for i, (p, _) in enumerate(files)}
        self.fds = {p: os.open(p, os.O_RDONLY) for p, _ in files}
        self.io = open("/proc/self/io", "rb", buffering=0)
        self.buf = bytearray(1 << 20)
        # Every call: its monotonic time and (file << 40 | first page << 8 | pages - 1),
        # allocated before the cgroup's budget is measured.
        self.log_t = array("q", bytes(8 * calls))
        self.log_c = array("q", bytes(8 * calls))
        self.logged = 0
        self.total_read = [0] * len(files)
        self.total_fetch = [0] * len(files)
        self.last_fetched = self.fetched()
        self.reset()

    def close(self):
        for fd in self.fds.values():
            os.close(fd)
        self.fds = {}

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
        i = self.index[path]
        self.total_read[i] += length
        self.total_fetch[i] += fetched
        first, last = offset // PAGE, (offset + length - 1) // PAGE
        if self.per_interval:
            self.pages[path].update(range(first, last + 1))
        if self.logged < len(self.log_t):
            self.log_t[self.logged] = time.monotonic_ns()
            self.log_c[self.logged] = (i << 40) | (first << 8) | (last - first)
            self.logged += 1

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

    def shape(self, start_ns, end_ns):
        """Calls and distinct bytes per file of the calls logged in (start_ns, end_ns]."""
        lo = bisect.bisect_right(self.log_t, start_ns, 0, self.logged)
        hi = bisect.bisect_right(self.log_t, end_ns, 0, self.logged)
        calls, pages = {}, {}
        for k in range(lo, hi):
            c = self.log_c[k]
            i, first, n = c >> 40, (c >> 8) & ((1 << 32) - 1), (c & 0xFF) + 1
            calls[i] = calls.get(i, 0) + 1
            pages.setdefault(i, set()).update(range(first, first + n))
        return {i: (calls[i], len(pages[i]) * PAGE) for i in calls}


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


WORKLOADS = {
    # 16 tables of 64 MiB, 4 KiB reads Zipf(0.9) over tables and pages, 384 MiB of cache.
    "zipf": (lambda d: [(f"{d}/kv/table-{i:02}.sst", 64 * MIB) for i in range(16)], 384 * MIB, 20000),
    # A 128 MiB file re-read at random next to two 512 MiB logs read once, 256 MiB of cache.
    "stream": (lambda d: [(f"{d}/db/hot.dat", 128 * MIB)] +
               [(f"{d}/logs/{i}.log", 512 * MIB) for i in range(2)], 256 * MIB, 8000 + 256),
    # 8 files of 64 MiB, 2 read at random at a time, the next 2 every 10 intervals; 192 MiB.
    "moving": (lambda d: [(f"{d}/moving/part-{i}.dat", 64 * MIB) for i in range(8)], 192 * MIB,
               10000),
}


class Workload:
    def __init__(self, name, files, seed):
        self.name, self.files = name, files
        self.rnd = random.Random(seed)
        self.table_cdf = zipf_cdf(16, 0.9)
        self.page_cdf = zipf_cdf(64 * MIB // PAGE, 0.9)
        self.perm = [self.rnd.randrange(1 << 30) for _ in range(16)]
        self.stream_pos = [0, 0]

    def step(self, i, rec):
        """The reads of interval i."""
        rnd, files = self.rnd, self.files
        if self.name == "zipf":
            for _ in range(20000):
                t = sample(self.table_cdf, rnd)
                p = (sample(self.page_cdf, rnd) * 2654435761 + self.perm[t]) % (64 * MIB // PAGE)
                rec.pread(files[t][0], p * PAGE, PAGE)
        elif self.name == "stream":
            for _ in range(8000):
                rec.pread(files[0][0], rnd.randrange(128 * MIB // PAGE) * PAGE, PAGE)
            for s in range(2):
                for _ in range(128):  # 16 MiB per interval per log, 128 KiB calls
                    if self.stream_pos[s] < 512 * MIB:
                        rec.pread(files[1 + s][0], self.stream_pos[s], 128 * 1024)
                        self.stream_pos[s] += 128 * 1024
        else:
            first = (i // 10) * 2
            for _ in range(10000):
                f = files[(first + rnd.randrange(2)) % 8][0]
                rec.pread(f, rnd.randrange(64 * MIB // PAGE) * PAGE, PAGE)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, **kw)


class LoopXfs:
    """A loop-mounted xfs in `directory`, its image read with direct I/O."""

    def __init__(self, directory, size):
        self.image = os.path.join(directory, "xfs.img")
        self.mnt = os.path.join(directory, "mnt")
        os.makedirs(self.mnt, exist_ok=True)
        if os.path.ismount(self.mnt):
            raise RuntimeError(f"{self.mnt} is mounted already (a run before this one left it)")
        with open(self.image, "wb") as f:
            f.truncate(size)
        run(["mkfs.xfs", "-q", "-f", self.image])
        self.dev = run(["losetup", "--find", "--show", "--direct-io=on", self.image]).stdout.strip()
        run(["mount", self.dev, self.mnt])

    def close(self):
        # The daemon's last file descriptors may take a moment to go.
        for _ in range(20):
            if subprocess.run(["umount", self.mnt], check=False).returncode == 0:
                break
            time.sleep(0.5)
        subprocess.run(["losetup", "-d", self.dev], check=False)
        if os.path.exists(self.image):
            os.unlink(self.image)


class Daemon:
    """daxpolicyd on a private session bus, recording a trace of `scope`."""

    def __init__(self, bindir, scope, work, interval):
        self.bindir, self.work = os.path.abspath(bindir), work
        self.bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1",
                                     f"--address=unix:dir={work}"], stdout=subprocess.PIPE,
                                    text=True)
        self.env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=self.bus.stdout.readline().strip())
        policy = os.path.join(work, "policy.yaml")
        with open(policy, "w") as f:
            f.write(f"apiVersion: daxpolicy/v1\ndaemon: {{ interval: {interval}s }}\n"
                    f"scopes: [{scope}]\n")
        self.log = open(os.path.join(work, "daxpolicyd.log"), "w")
        self.daemon = subprocess.Popen(
            [f"{self.bindir}/daxpolicyd", "--session", "--config", policy, "--state-dir",
             os.path.join(work, "state"), "--metrics-listen", "off"],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while self.ctl("status", check=False).returncode != 0:
            if time.monotonic() > deadline or self.daemon.poll() is not None:
                raise RuntimeError(f"daxpolicyd did not start (log: {self.log.name})")
            time.sleep(0.2)

    def ctl(self, *args, check=True):
        return subprocess.run([f"{self.bindir}/daxpolicyctl", "--session", *args], env=self.env,
                              check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)

    def close(self):
        for p in (self.daemon, self.bus):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def intervals_in(path):
    try:
        with open(path) as f:
            return sum(1 for line in f if line.startswith("t "))
    except FileNotFoundError:
        return 0


def wait_for_interval(path, seen):
    """Waits until the trace at `path` has more than `seen` intervals; returns how many."""
    deadline = time.monotonic() + 120
    while True:
        n = intervals_in(path)
        if n > seen:
            return n
        if time.monotonic() > deadline:
            raise RuntimeError(f"the daemon wrote no interval to {path} for 120 s")
        time.sleep(0.02)


def complete(recorded, rec, budget):
    """The daemon's trace with calls and distinct filled in from the log, and the budget."""
    ours = {escape(p): i for i, (p, _) in enumerate(rec.files)}
    out, prev_t, shape, header = [], 0, {}, True
    for line in recorded.splitlines():
        fields = line.split(" ")
        if header and fields[0] == "t":
            out.append(f"dram_budget {budget}")
            header = False
        if fields[0] == "t":
            t = int(fields[1])
            shape = rec.shape(prev_t, t)
            prev_t = t
        elif fields[0] == "f" and fields[1] in ours and ours[fields[1]] in shape:
            calls, distinct = shape[ours[fields[1]]]
            line = line.replace(" calls=- ", f" calls={calls} ").replace(
                " distinct=- ", f" distinct={distinct} ")
        out.append(line)
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True, help="directory on a real (non-tmpfs) filesystem")
    ap.add_argument("--workload", choices=sorted(WORKLOADS), required=True)
    ap.add_argument("--intervals", type=int, default=30)
    ap.add_argument("--interval", type=int, default=10,
                    help="the daemon's interval in seconds (--daemon); one workload step each")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--daemon", metavar="BINDIR",
                    help="record with daxpolicyd and daxpolicyctl from BINDIR (access tracer)")
    a = ap.parse_args()
    make, limit, per_step = WORKLOADS[a.workload]
    d = os.path.abspath(a.dir)
    os.makedirs(d, exist_ok=True)
    fs = daemon = work = rec = None
    try:
        if a.daemon:
            size = sum(s for _, s in make("")) + 256 * MIB
            fs = LoopXfs(d, size)
            d = fs.mnt
        files = make(d)
        make_files(d, files)
        # With --daemon, nothing grows in the cgroup but the cache: the log
        # is allocated here, the pages covered are counted after the run.
        rec = Recorder(files, per_step * a.intervals, per_interval=not a.daemon)
        if a.daemon:
            work = tempfile.mkdtemp(prefix="daxval-")
            daemon = Daemon(a.daemon, d, work, a.interval)
            raw = os.path.join(work, "recorded.trace")
            daemon.ctl("record", "start", "--output", raw)
        cgroup, home = cgroup_enter(f"daxpolicy-validate-{os.getpid()}", limit)
        try:
            # The cgroup's limit covers this process's own memory too.
            with open("/proc/self/statm") as f:
                budget = limit - int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            w = Workload(a.workload, files, a.seed)
            if a.daemon:
                seen = wait_for_interval(raw, 0)
                for i in range(a.intervals):
                    w.step(i, rec)
                    seen = wait_for_interval(raw, seen)
                wait_for_interval(raw, seen)
            else:
                out = ["daxpolicy-trace 1", "interval_ns 1000000000", f"page_size {PAGE}",
                       f"dram_budget {budget}", f"mount {escape(d)}", ""]
                for i in range(a.intervals):
                    w.step(i, rec)
                    out.append(rec.interval((i + 1) * 1_000_000_000))
        finally:
            cgroup_leave(cgroup, home)
        if a.daemon:
            daemon.ctl("record", "stop")
            with open(raw) as f:
                text = complete(f.read(), rec, budget)
        else:
            text = "\n".join(out)
        with open(a.out, "w") as f:
            f.write(text)
        print(f"wrote {a.out}", file=sys.stderr)
        print("cross-check, /proc/self/io over the run: FILE READ HIT", file=sys.stderr)
        for (path, _), r, fetched in zip(files, rec.total_read, rec.total_fetch):
            if r:
                print(f"  {path} {r} {max(0.0, 1 - fetched / r):.3f}", file=sys.stderr)
    finally:
        if rec:
            rec.close()
        if daemon:
            daemon.close()
        if work:
            shutil.rmtree(work, ignore_errors=True)
        if fs:
            fs.close()


if __name__ == "__main__":
    main()
