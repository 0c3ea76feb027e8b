#!/usr/bin/env python3
"""Watch mode at scale, on one local Garage: change-to-upload latency
(p50, p99) for changes made one at a time and for a burst of 10,000 new
files in one second, the watcher's peak memory, and a tree of 100,000
directories (time to watch it all, memory, latency deep inside it).

    benches/compare/watch.py [--dirs 100000] [--burst 10000] [--out DIR]

Latency is from the moment a file is closed to the moment ferry reports
it uploaded (its --json event, read as it is printed): the debounce
window is part of it by design, so each case runs with the default
(1 s) and with 100 ms. Requests are Garage's own counters. No peer has a
watch mode, so there is nothing to compare against; the numbers are
ferry's own, for the record and for later changes.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import BUCKET, REPO, Garage, diff_counts, log, resolve  # noqa: E402


def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def vm_hwm_mib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def settle(pid, timeout=300):
    """Waits until the process is idle (its first full pass is over):
    changes made during a pass wait for it, which is not the latency of
    a change."""
    from run import proc_cpu_seconds
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c0 = proc_cpu_seconds(pid)
        time.sleep(0.5)
        if proc_cpu_seconds(pid) - c0 < 0.02:
            return
    log("watcher still busy; measuring anyway")


def inotify_watches(pid):
    n = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fdinfo"):
            try:
                n += sum(1 for l in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines()
                         if l.startswith("inotify wd:"))
            except OSError:
                pass
    except OSError:
        pass
    return n


class Watcher:
    """`ferry watch` of one job, its --json events timed as they arrive."""

    def __init__(self, ferry, work, garage, name, src, debounce):
        self.arrived = {}
        cfg = work / f"{name}.toml"
        cfg.write_text(f'[jobs.{name}]\nsource = "{src}"\ndestination = "s3://{BUCKET}/{name}/"\n'
                       f'debounce = "{debounce}"\n')
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FERRY_"))}
        g = garage.env
        env.update(AWS_ACCESS_KEY_ID=g["FERRY_TEST_ACCESS_KEY_ID"],
                   AWS_SECRET_ACCESS_KEY=g["FERRY_TEST_SECRET_ACCESS_KEY"],
                   AWS_REGION=g["FERRY_TEST_REGION"], AWS_ENDPOINT_URL=garage.endpoint,
                   XDG_CACHE_HOME=str(work / "cache"), XDG_CONFIG_HOME=str(work / "config"))
        self.log = open(work / f"{name}.log", "w")
        self.proc = subprocess.Popen([ferry, "--config", str(cfg), "watch", name, "--json"], env=env,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            now = time.monotonic()
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if "transferred" in json.dumps(ev).lower() and ev.get("key"):
                self.arrived.setdefault(ev["key"], now)

    def wait_for(self, keys, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(k in self.arrived for k in keys):
                return True
            time.sleep(0.01)
        return False

    def stop(self):
        hwm = vm_hwm_mib(self.proc.pid)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        return hwm


def write(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(seed.to_bytes(8, "little") * 128)
    return time.monotonic()


def latencies(written, arrived):
    return [arrived[k] - t for k, t in written.items() if k in arrived]


def summary(lat, written):
    return {"files": len(written), "arrived": len(lat),
            "p50_s": round(pct(lat, 50), 3) if lat else None,
            "p99_s": round(pct(lat, 99), 3) if lat else None,
            "max_s": round(max(lat), 3) if lat else None,
            "mean_s": round(statistics.mean(lat), 3) if lat else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dirs", type=int, default=100_000)
    ap.add_argument("--burst", type=int, default=10_000)
    ap.add_argument("--singles", type=int, default=100)
    ap.add_argument("--work-dir", default=str(REPO / "target" / "bench-watch"))
    ap.add_argument("--out", help="JSON results file (default: in the work dir)")
    args = ap.parse_args()
    ferry = resolve("ferry", "FERRY_BIN")
    work = Path(args.work_dir).resolve()
    if work.exists():
        subprocess.run(["rm", "-rf", str(work)])
    work.mkdir(parents=True)
    garage = Garage(work / "garage").start()
    results = {"ferry": subprocess.run([ferry, "--version"], capture_output=True, text=True).stdout.strip(),
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cases": []}
    try:
        for debounce in ("1s", "100ms"):
            tag = debounce.replace("ms", "m")
            # One change at a time, 20 per second.
            src = work / f"singles-{tag}"
            src.mkdir()
            w = Watcher(ferry, work, garage, f"singles{tag}", src, debounce)
            time.sleep(1)
            settle(w.proc.pid)
            written = {}
            for i in range(args.singles):
                key = f"d{i % 10}/f{i:05}"
                written[key] = write(src / key, i)
                time.sleep(0.05)
            w.wait_for(list(written), 120)
            hwm = w.stop()
            results["cases"].append(dict(summary(latencies(written, w.arrived), written),
                                         case="one at a time, 20/s", debounce=debounce, peak_rss_mib=hwm))
            log(f"singles {debounce}: {results['cases'][-1]}")

            # A burst: as many new files as fast as they can be written.
            src = work / f"burst-{tag}"
            src.mkdir()
            w = Watcher(ferry, work, garage, f"burst{tag}", src, debounce)
            time.sleep(1)
            settle(w.proc.pid)
            c0 = garage.request_counts()
            written = {}
            t0 = time.monotonic()
            for i in range(args.burst):
                key = f"b{i % 100:02}/f{i:06}"
                written[key] = write(src / key, i)
            wrote_s = time.monotonic() - t0
            ok = w.wait_for(list(written), 600)
            done_s = max(w.arrived.values()) - t0 if w.arrived else None
            time.sleep(1)
            reqs = diff_counts(c0, garage.request_counts())
            hwm = w.stop()
            results["cases"].append(dict(summary(latencies(written, w.arrived), written),
                                         case=f"burst of {args.burst}", debounce=debounce,
                                         written_in_s=round(wrote_s, 2),
                                         all_uploaded_after_s=round(done_s, 2) if done_s else None,
                                         complete=ok, requests=reqs, peak_rss_mib=hwm))
            log(f"burst {debounce}: {results['cases'][-1]}")

        # A tree of many directories: the time to watch it all, memory,
        # and changes deep inside it.
        src = work / "dirs"
        t0 = time.monotonic()
        for i in range(args.dirs):
            (src / f"a{i // 1000:03}" / f"b{i % 1000:03}").mkdir(parents=True, exist_ok=True)
        log(f"made {args.dirs} directories in {time.monotonic() - t0:.1f} s")
        t0 = time.monotonic()
        w = Watcher(ferry, work, garage, "dirs", src, "100ms")
        target = args.dirs + args.dirs // 1000 + 1
        while inotify_watches(w.proc.pid) < target and time.monotonic() - t0 < 600:
            time.sleep(0.1)
        watched_s = time.monotonic() - t0
        watches = inotify_watches(w.proc.pid)
        settle(w.proc.pid)
        first_pass_s = time.monotonic() - t0
        written = {}
        for i in range(args.singles):
            d = (i * 7919) % args.dirs
            key = f"a{d // 1000:03}/b{d % 1000:03}/f{i:05}"
            written[key] = write(src / key, i)
            time.sleep(0.05)
        w.wait_for(list(written), 120)
        hwm = w.stop()
        results["cases"].append(dict(summary(latencies(written, w.arrived), written),
                                     case=f"{args.dirs} directories", debounce="100ms",
                                     watches=watches, all_watched_after_s=round(watched_s, 2),
                                     first_pass_done_after_s=round(first_pass_s, 2),
                                     peak_rss_mib=hwm))
        log(f"dirs: {results['cases'][-1]}")
    finally:
        garage.stop()
        out = Path(args.out) if args.out else work / "watch.json"
        out.write_text(json.dumps(results, indent=1) + "\n")
        log(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
