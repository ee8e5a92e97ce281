#!/usr/bin/env python3
"""Cold start: how long Envoy takes from exec to ready, with gammaroute and with native routing.

    make bench-ready                       # 10 single-host routes, 12 rounds
    .venv/bin/python bench/ready.py --sizes 10,1000 --rounds 8

Per round, in rotating order, it starts each configuration's Envoy (`--concurrency 2`, pinned
to core 0, the bootstraps of `make bench-e2e`) and records (a) exec → admin `/ready` answers 200
and (b) exec → the first request answered right by the router (a route set's requests, sent
until one comes back as expected), then stops it. Configurations:

  native             Envoy Gateway's translation of the routes, no wasm
  gammaroute         config-pusher's bootstrap with the table inline, `make wasm`'s module
  gammaroute-unopt   the same bootstrap with the module as cargo built it, before wasm-opt
                     (target/wasm32-wasip1/release/deps/gammaroute_filter.wasm)

and prints the medians with ranges, gammaroute − native per round (median, range), and each
module's size. Needs `make wasm` first (the Makefile target builds everything).
"""

import argparse
import http.client
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import e2e  # noqa: E402
import routes  # noqa: E402

ROOT = e2e.ROOT
CONCURRENCY = 2


def first_routed(port, rs, deadline):
    """Seconds until one of the route set's forwarded requests is answered by its backend."""
    req = next(r for r in rs.requests if r.expect)
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.putrequest(req.method, req.path, skip_host=True, skip_accept_encoding=True)
            for k, v in e2e.request_headers(0, req):
                conn.putheader(k, v)
            conn.endheaders()
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status == 200 and resp.getheader("x-served-by") in req.expect:
                return time.monotonic()
        except OSError:
            pass
        time.sleep(0.002)
    raise e2e.BenchError(f"no routed answer on port {port}")


def start_timed(name, bootstrap, port, rs, work):
    t0 = time.monotonic()
    envoy = e2e.Envoy(name, bootstrap, work, e2e.ENVOY_CORE, concurrency=CONCURRENCY)
    ready = time.monotonic()
    routed = first_routed(port, rs, ready + 30)
    envoy.stop()
    return ready - t0, routed - t0


def median_range(xs):
    return f"{statistics.median(xs):.3f} ({min(xs):.3f}–{max(xs):.3f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10")
    ap.add_argument("--shape", default="single-host", choices=routes.SHAPES)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--out", default=str(ROOT / "target" / "bench-ready"))
    args = ap.parse_args()
    wasm = ROOT / "target/wasm32-wasip1/release/gammaroute_filter.wasm"
    unopt = ROOT / "target/wasm32-wasip1/release/deps/gammaroute_filter.wasm"
    cp = ROOT / "target/release/config-pusher"
    for p in (wasm, cp):
        if not p.exists():
            raise e2e.BenchError(f"{p} missing: run `make bench-ready`")
    modules = {"gammaroute": wasm}
    if unopt.exists() and unopt.stat().st_size != wasm.stat().st_size:
        modules["gammaroute-unopt"] = unopt
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    tools = {"config-pusher": cp, "gammaroute": wasm}
    backend_ports = dict(zip(routes.BACKENDS, e2e.free_ports(len(routes.BACKENDS))))
    backend = e2e.Envoy("backend", e2e.backend_bootstrap(backend_ports), work, e2e.LOAD_CORE)
    print(f"machine: {os.cpu_count()} cores; Envoy --concurrency {CONCURRENCY} on core "
          f"{e2e.ENVOY_CORE}; {args.rounds} rounds; modules: "
          + ", ".join(f"{k} {p.stat().st_size:,} bytes" for k, p in modules.items()))
    print()
    print("| routes | config | exec → /ready s | exec → first routed request s |")
    print("|---:|---|---:|---:|")
    diffs = []
    try:
        for n in (int(s) for s in args.sizes.split(",")):
            rs = routes.generate(args.shape, n)
            ports = dict(zip(["native", *modules], e2e.free_ports(1 + len(modules))))
            boots = {"native": e2e.native_bootstrap(rs, ports["native"], backend_ports)}
            for name, path in modules.items():
                boot = e2e.render_gammaroute(rs, work / f"{n}-{name}", tools, ports[name],
                                             backend_ports)[0]
                boots[name] = e2e.with_wasm(boot, path)
            names = list(boots)
            times = {c: ([], []) for c in names}
            for r in range(args.rounds):
                order = names[r % len(names):] + names[:r % len(names)]
                for c in order:
                    ready, routed = start_timed(c, boots[c], ports[c], rs, work / f"{n}-run")
                    times[c][0].append(ready)
                    times[c][1].append(routed)
            for c in names:
                print(f"| {n} | {c} | {median_range(times[c][0])} | {median_range(times[c][1])} |")
            for c in modules:
                d_ready = [a - b for a, b in zip(times[c][0], times["native"][0])]
                d_routed = [a - b for a, b in zip(times[c][1], times["native"][1])]
                diffs.append((n, c, d_ready, d_routed))
    finally:
        backend.stop()
    print()
    print("| routes | config | − native: /ready s | − native: first routed s |")
    print("|---:|---|---:|---:|")
    for n, c, d_ready, d_routed in diffs:
        print(f"| {n} | {c} | {median_range(d_ready)} | {median_range(d_routed)} |")


if __name__ == "__main__":
    try:
        main()
    except e2e.BenchError as err:
        print(f"bench-ready: FAILED: {err}", file=sys.stderr)
        sys.exit(1)
