#!/usr/bin/env python3
"""Propagation time: an HTTPRoute file is saved → config-pusher translates and publishes →
the fetching Envoy VM has the new table → every Envoy worker routes by it.

Real processes on loopback, release builds: `config-pusher serve` watching a folder (JSON
logs), two echo backends, and two Envoys (`--concurrency 4` each) started from the same
`config-pusher render --pusher` output: one as rendered (push wake-ups between VMs, the
default), one with `"pushUpdates": false` (the tick-based baseline, `tickMs` 250 ms). Both
follow the same saves, so the baseline is measured in the same run under the same load.

Each sample rewrites one file, changing the backend of 1 route or of 1,000 routes, and reads
the timestamps of every step from the logs:

  save        the file is renamed into place (this script's clock)
  translated  config-pusher's translation of the new snapshot finished (its `translation
              done` line: the step started `ms` before it, translation took `translate_ms`)
  published   the new version is served and long-polls are answered (`published_ms`)
  fetched     the first VM of the Envoy logs `table ... version <new> loaded`
  swapped     the last of the Envoy's 4 worker threads logged it (Envoy's `%t`: the main
              thread, whose VMs serve no requests, is the process id and not counted)

and prints p50/p99/max per step, push beside tick. A probe request then checks that traffic
did move. Run with `make bench-propagation` (builds what it needs). Standard library only;
reuses the demo's process helpers (demo/run.py).
"""

import argparse
import datetime
import json
import os
import re
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "demo"))
import run as demo  # noqa: E402

ROLE = "gateway/bench/web"
WORKERS = 4
# Envoy log lines: local time with milliseconds, the thread id, the message.
ENVOY_LOG_FORMAT = "[%Y-%m-%d %T.%e][%t][%l] %v"
LOADED = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\]\[(\d+)\]\[\w+\].*"
                    r"gammaroute: table " + re.escape(ROLE) + r" version (\w+) loaded")


def gateway_yaml():
    out = """apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: gammaroute}
spec: {controllerName: gammaroute.dev/config-pusher}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: bench}
spec:
  gatewayClassName: gammaroute
  listeners: [{name: http, protocol: HTTP, port: 8080}]
"""
    for s in ("v1", "v2"):
        out += f"""---
apiVersion: v1
kind: Service
metadata: {{name: {s}, namespace: bench}}
spec: {{ports: [{{port: 8080, name: http}}]}}
"""
    return out


def routes_yaml(n, backend, first=0):
    docs = []
    for i in range(first, first + n):
        docs.append(f"""apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r{i}, namespace: bench}}
spec:
  parentRefs: [{{name: web}}]
  hostnames: [r{i}.example]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /}}}}]
    backendRefs: [{{name: {backend}, port: 8080}}]
""")
    return "---\n".join(docs)


def write_atomically(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def percentile(values, p):
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


class LogTail:
    """New lines of a growing log file."""

    def __init__(self, path):
        self.path, self.offset, self.partial = path, 0, ""

    def lines(self):
        try:
            with open(self.path, "r", errors="replace") as f:
                f.seek(self.offset)
                text = f.read()
                self.offset = f.tell()
        except FileNotFoundError:
            return []
        text = self.partial + text
        lines = text.split("\n")
        self.partial = lines.pop()
        return lines


def pusher_events(tail):
    """(translated, published, version) of each `translation done` that changed the role,
    from config-pusher's JSON log lines (`table published` names the version)."""
    out, version = [], None
    for line in tail.lines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        fields = doc.get("fields", {})
        message = fields.get("message")
        if message == "table published" and fields.get("role") == ROLE:
            version = fields.get("version")
        elif message == "translation done" and version:
            done = datetime.datetime.fromisoformat(doc["timestamp"].replace("Z", "+00:00"))
            done = done.timestamp()
            start = done - fields["ms"] / 1000
            out.append((start + fields["translate_ms"] / 1000,
                        start + fields["published_ms"] / 1000, version))
            version = None
    return out


def envoy_loads(tail, pid):
    """(time, worker tid, version) of every table load a worker VM logged."""
    out = []
    for line in tail.lines():
        m = LOADED.match(line)
        if not m or int(m.group(2)) == pid:
            continue
        t = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        out.append((t, int(m.group(2)), m.group(3)))
    return out


def start_envoy(name, bootstrap, logs):
    admin_file = os.path.join(logs, name + ".admin")
    argv = [demo.envoy_bin(), "-c", bootstrap, "--use-dynamic-base-id", "--concurrency", str(WORKERS),
            "--service-node", name, "--admin-address-path", admin_file, "-l", "warning",
            "--component-log-level", "wasm:info", "--log-format", ENVOY_LOG_FORMAT]
    proc = demo.start(name, argv, logs)

    def ready():
        if not os.path.exists(admin_file):
            return False
        host, port = open(admin_file).read().strip().rsplit(":", 1)
        return demo.get((host, int(port)), "admin", "/ready").status == 200

    demo.wait_until(f"Envoy {name}", ready, proc=proc, log=os.path.join(logs, name + ".log"))
    return proc


def measure(n, samples, logs, work, release):
    folder = os.path.join(work, f"routes-{n}")
    os.makedirs(folder)
    write_atomically(os.path.join(folder, "00-gateway.yaml"), gateway_yaml())
    routes = os.path.join(folder, "10-routes.yaml")
    write_atomically(routes, routes_yaml(n, "v1"))

    backends = {}
    for s in ("v1", "v2"):
        addr = ("127.0.0.1", demo.free_port())
        proc = demo.start(f"echo-{n}-{s}", [demo.ECHO, "--listen", f"{addr[0]}:{addr[1]}",
                                             "--namespace", "bench", "--service", s], logs)
        demo.wait_until(f"echo {s}", lambda a=addr: demo.socket.create_connection(a, 1).close() or True,
                        proc=proc)
        backends[f"bench/{s}:8080"] = addr
    flags = []
    for cluster, addr in backends.items():
        flags += ["--backend", f"{cluster}={addr[0]}:{addr[1]}"]
    pusher = ("127.0.0.1", demo.free_port())
    xds = os.path.join(work, f"xds-{n}")
    serve = demo.start(f"config-pusher-{n}", [demo.PUSHER, "--log-format", "json", "serve", "--from", folder,
                                              "--listen", f"{pusher[0]}:{pusher[1]}", "--xds-dir", xds, *flags],
                       logs)
    demo.wait_until("config-pusher", lambda: demo.get(pusher, "cp", "/readyz").status == 200,
                    proc=serve)
    out = os.path.join(work, f"rendered-{n}")
    envoys = {}
    for mode in ("push", "tick"):
        port = demo.free_port()
        r = demo.subprocess.run([demo.PUSHER, "render", "--from", folder, "--out", f"{out}-{mode}",
                                 "--wasm", demo.WASM, "--listen", f"127.0.0.1:{port}", "--pusher",
                                 f"{pusher[0]}:{pusher[1]}", "--xds-dir", xds, *flags],
                                capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"render failed: {r.stderr}")
        path = os.path.join(f"{out}-{mode}", "envoy/gateway/bench/web.yaml")
        if mode == "tick":
            # The plugin configuration is a JSON string inside YAML: patch its escaped form.
            text = open(path).read()
            anchor = '\\"cluster\\":\\"gammaroute-config-pusher\\"'
            if anchor not in text:
                sys.exit(f"no source in {path}")
            open(path, "w").write(text.replace(anchor, anchor + ',\\"pushUpdates\\":false'))
        name = f"envoy-{n}-{mode}"
        proc = start_envoy(name, path, logs)
        envoys[mode] = (proc, ("127.0.0.1", port), LogTail(os.path.join(logs, name + ".log")))
    cp_log = LogTail(os.path.join(logs, f"config-pusher-{n}.log"))
    probe = f"r{n - 1}.example"
    # Every worker of both Envoys has the first table.
    for mode, (proc, gw, _) in envoys.items():
        demo.wait_until(f"{mode} Envoy routes", lambda gw=gw: demo.get(gw, probe).backend() == "v1",
                        proc=proc)
    time.sleep(1.0)
    for _, _, tail in envoys.values():
        tail.lines()
    cp_log.lines()

    steps = {mode: {"translated": [], "published": [], "fetched": [], "swapped": []}
             for mode in envoys}
    current = "v1"
    for _ in range(samples):
        target = "v2" if current == "v1" else "v1"
        t0 = time.time()
        write_atomically(routes, routes_yaml(n, target))
        version, translated, published = None, None, None
        loads = {mode: {} for mode in envoys}  # tid → first load time of `version`
        pending = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if version is None:
                for tr, pub, v in pusher_events(cp_log):
                    version, translated, published = v, tr, pub
            for mode, (proc, _, tail) in envoys.items():
                pending.extend((mode, *load) for load in envoy_loads(tail, proc.pid))
            if version is not None:
                for mode, t, tid, v in pending:
                    if v == version:
                        loads[mode].setdefault(tid, t)
                if all(len(seen) >= WORKERS for seen in loads.values()):
                    break
            time.sleep(0.005)
        else:
            sys.exit(f"N={n}: not every worker loaded version {version} within 30 s: "
                     f"{ {m: len(s) for m, s in loads.items()} }; logs in {logs}")
        for mode in envoys:
            times = sorted(loads[mode].values())
            steps[mode]["translated"].append((translated - t0) * 1000)
            steps[mode]["published"].append((published - t0) * 1000)
            steps[mode]["fetched"].append((times[0] - t0) * 1000)
            steps[mode]["swapped"].append((times[WORKERS - 1] - t0) * 1000)
        for mode, (_, gw, _) in envoys.items():
            got = demo.get(gw, probe).backend()
            if got != target:
                sys.exit(f"N={n} {mode}: every worker logged the new table but {probe} went to {got}")
        current = target
        time.sleep(0.3)
    for proc, _, _ in envoys.values():
        demo.stop(proc)
    demo.stop(serve)
    return steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--sizes", default="1,1000")
    parser.add_argument("--debug", action="store_true",
                        help="use the debug builds of config-pusher and the echo backend")
    args = parser.parse_args()
    if not args.debug:
        demo.PUSHER = os.path.join(demo.ROOT, "target/release/config-pusher")
        demo.ECHO = os.path.join(demo.ROOT, "target/release/gammaroute-echo")
    demo.atexit.register(demo.cleanup)
    work = tempfile.mkdtemp(prefix="gammaroute-propagation-")
    logs = os.path.join(work, "logs")
    os.makedirs(logs)
    build = "debug" if args.debug else "release"
    print(f"machine: {os.cpu_count()} cores; {build} config-pusher; Envoy --concurrency {WORKERS}; "
          f"{args.samples} samples per size; gammaroute.wasm {os.path.getsize(demo.WASM):,} bytes; "
          f"logs in {logs}")
    print("ms after the save, p50 / p99 / max; push = wake-ups between VMs, tick = pushUpdates: false")
    print(f"{'routes changed':>14} {'step':>11} {'push p50':>9} {'p99':>6} {'max':>6} "
          f"{'tick p50':>9} {'p99':>6} {'max':>6} {'tick/push p99':>14}")
    for n in (int(s) for s in args.sizes.split(",")):
        steps = measure(n, args.samples, logs, work, not args.debug)
        for step in ("translated", "published", "fetched", "swapped"):
            row = []
            for mode in ("push", "tick"):
                v = steps[mode][step]
                row += [statistics.median(v), percentile(v, 99), max(v)]
            ratio = row[4] / row[1] if row[1] > 0 else float("nan")
            print(f"{n:>14} {step:>11} {row[0]:>9.0f} {row[1]:>6.0f} {row[2]:>6.0f} "
                  f"{row[3]:>9.0f} {row[4]:>6.0f} {row[5]:>6.0f} {ratio:>13.2f}×")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
