#!/usr/bin/env python3
"""Propagation time: an HTTPRoute file changes → config-pusher publishes → every Envoy worker
routes by the new table. Real processes on loopback: `config-pusher serve` watching a folder,
echo backends, and Envoy (2 workers) started from `config-pusher render --pusher` output.

For 1 route and for 1,000 routes changed in one file save, it repeats the change and prints
p50/p99/max of (a) save → new version served by config-pusher and (b) save → traffic moved
(a probe route answered by the new backend on 4 consecutive new connections, so that both
workers have swapped). Run with `make bench-propagation` (after `make demo-build`).

Standard library only; reuses the demo's process helpers (demo/run.py).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "demo"))
import run as demo  # noqa: E402


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


def routes_yaml(n, backend):
    docs = []
    for i in range(n):
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


def version(pusher, role):
    a = demo.get(pusher, "cp", f"/v1/tables/{role}")
    return a.json().get("version") if a.status == 200 else None


def percentile(values, p):
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


def measure(n, samples, logs, work):
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
    serve = demo.start(f"config-pusher-{n}", [demo.PUSHER, "serve", "--from", folder, "--listen",
                                              f"{pusher[0]}:{pusher[1]}", "--xds-dir", xds, *flags],
                       logs)
    demo.wait_until("config-pusher", lambda: demo.get(pusher, "cp", "/readyz").status == 200,
                    proc=serve)
    out = os.path.join(work, f"rendered-{n}")
    port = demo.free_port()
    r = demo.subprocess.run([demo.PUSHER, "render", "--from", folder, "--out", out, "--wasm", demo.WASM,
                             "--listen", f"127.0.0.1:{port}", "--pusher", f"{pusher[0]}:{pusher[1]}",
                             "--xds-dir", xds, *flags], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"render failed: {r.stderr}")
    envoy = demo.start_envoy(f"envoy-{n}", os.path.join(out, "envoy/gateway/bench/web.yaml"), logs,
                             concurrency=2)
    gw = ("127.0.0.1", port)
    probe = f"r{n - 1}.example"
    role = "gateway/bench/web"

    published, moved = [], []
    current = "v1"
    for _ in range(samples):
        target = "v2" if current == "v1" else "v1"
        before = version(pusher, role)
        t0 = time.monotonic()
        write_atomically(routes, routes_yaml(n, target))
        t_pub = None
        streak = 0
        deadline = t0 + 30
        while time.monotonic() < deadline:
            if t_pub is None and version(pusher, role) != before:
                t_pub = time.monotonic()
            if demo.get(gw, probe).backend() == target:
                streak += 1
                if streak >= 4:
                    break
            else:
                streak = 0
        else:
            sys.exit(f"N={n}: traffic did not move to {target} within 30 s")
        t_moved = time.monotonic()
        published.append(((t_pub or t_moved) - t0) * 1000)
        moved.append((t_moved - t0) * 1000)
        current = target
        time.sleep(0.3)
    for p in (envoy, serve):
        demo.stop(p)
    return published, moved


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--sizes", default="1,1000")
    args = parser.parse_args()
    demo.atexit.register(demo.cleanup)
    work = tempfile.mkdtemp(prefix="gammaroute-propagation-")
    logs = os.path.join(work, "logs")
    os.makedirs(logs)
    print(f"machine: {os.cpu_count()} cores; logs in {logs}")
    print(f"{'routes changed':>15} {'':>22} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for n in (int(s) for s in args.sizes.split(",")):
        published, moved = measure(n, args.samples, logs, work)
        for what, values in (("save → published", published), ("save → traffic moved", moved)):
            print(f"{n:>15} {what:>22} {statistics.median(values):>8.0f} "
                  f"{percentile(values, 99):>8.0f} {max(values):>8.0f}")


if __name__ == "__main__":
    main()
