#!/usr/bin/env python3
"""End-to-end benchmark: gammaroute in Envoy vs Envoy's own routing vs the wasm floor.

    make bench-e2e                 # full: N = 10, 100, 1,000, 10,000 x two shapes (~15 min)
    .venv/bin/python bench/e2e.py --quick   # smoke: N = 10 and 1,000, single-host, short slices (< 2 min)
    .venv/bin/python bench/e2e.py --check   # no load: configs validate, every request answered right

Per route set (bench/routes.py) it runs four Envoys side by side, each `--concurrency 1` and
pinned to core 0:
  gammaroute     config-pusher's rendered bootstrap: one catch-all route, the gammaroute filter
  native         Envoy Gateway's translation: a virtual host per hostname, routes by precedence
  floor-noop     native + a no-op wasm filter (bench/floor)
  floor-headers  native + a wasm filter that reads all request headers once and sets one
A backend Envoy (one listener per backend Service, answering with its own name) and wrk run on
core 1. Load comes in short slices alternating between the configurations (A B C D, D C B A, ...)
so drift on the machine hits all alike; every answer is checked (status and backend) by wrk's
Lua script, and a wrong answer fails the run. Rounds during which other processes used core 0
are dropped (see --max-foreign). Results: a Markdown report on stdout and in --out.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import routes  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")
CONFIGS = ("gammaroute", "native", "floor-noop", "floor-headers")
# With --baseline-wasm: gammaroute's bootstrap loading another build of the filter (before/after).
BEFORE = "gammaroute-before"
ENVOY_CORE, LOAD_CORE = "0", "1"


class BenchError(Exception):
    pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise BenchError(f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    return p.stdout


def free_ports(n):
    """n distinct free loopback ports (all held open while choosing, so none repeats)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port():
    return free_ports(1)[0]


# ---------------------------------------------------------------- build the pieces

def envoy_bin():
    sys.path.insert(0, str(ROOT / "demo"))
    import run as demo  # the one place the Python tools find Envoy

    return demo.envoy_bin()


def build(args):
    """The release .wasm, config-pusher and the two floor modules."""
    target = ROOT / "target"
    if not args.no_build:
        log("building gammaroute.wasm, config-pusher, floor modules ...")
        # `make wasm`: the module as shipped (wasm-opt'd), not cargo's own output.
        run(["make", "--no-print-directory", "wasm"], cwd=ROOT)
        if not args.config_pusher:
            run(["cargo", "build", "--release", "-p", "config-pusher"], cwd=ROOT)
    floor_dir = ROOT / "bench" / "floor"
    floor_target = target / "bench-floor"
    out = {}
    for name, features in (("floor-noop", []), ("floor-headers", ["--features", "read-headers"])):
        dest = floor_target / f"{name}.wasm"
        if not args.no_build or not dest.exists():
            run(["cargo", "build", "--release", "--target", "wasm32-wasip1", "--target-dir",
                 str(floor_target), *features], cwd=floor_dir)
            shutil.copy(floor_target / "wasm32-wasip1/release/gammaroute_bench_floor.wasm", dest)
        out[name] = dest
    out["gammaroute"] = (Path(args.wasm).resolve() if args.wasm
                         else target / "wasm32-wasip1/release/gammaroute_filter.wasm")
    out["config-pusher"] = (Path(args.config_pusher).resolve() if args.config_pusher
                            else target / "release/config-pusher")
    for k, p in out.items():
        if not p.exists():
            raise BenchError(f"{k}: {p} missing (run without --no-build)")
    return out


# ---------------------------------------------------------------- Envoy configurations

def local_reply_echo():
    """Every local reply (404s from either router) echoes x-bench-id, so wrk can check it."""
    return {"mappers": [{
        "filter": {"status_code_filter": {"comparison": {
            "op": "GE", "value": {"default_value": 0, "runtime_key": "bench.local_reply"}}}},
        "headers_to_add": [{"header": {"key": "x-bench-id", "value": "%REQ(x-bench-id)%"},
                            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]}]}


def hcm_of(bootstrap):
    return bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]


def wasm_filter(name, path):
    return {"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {"name": name, "root_id": name, "failure_policy": "FAIL_RELOAD",
                   "vm_config": {"vm_id": name, "runtime": "envoy.wasm.runtime.v8",
                                 "code": {"local": {"filename": str(path)}}}}}}


def clusters(backend_ports):
    return [{"name": routes.cluster_name(svc), "type": "STATIC", "connect_timeout": "1s",
             "load_assignment": {"cluster_name": routes.cluster_name(svc), "endpoints": [
                 {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                     "address": "127.0.0.1", "port_value": port}}}}]}]}}
            for svc, port in backend_ports.items()]


def native_bootstrap(rs, port, backend_ports, wasm=None):
    """Native routing, the same listener settings as gammaroute's bootstrap; `wasm` = (name,
    path) adds a floor filter before the router."""
    filters = [wasm_filter(*wasm)] if wasm else []
    filters.append({"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager"
                 ".v3.HttpConnectionManager",
        "stat_prefix": "native", "use_remote_address": True, "normalize_path": True,
        "merge_slashes": True, "strip_trailing_host_dot": True,
        "route_config": routes.native_route_config(rs), "http_filters": filters,
        "local_reply_config": local_reply_echo()}
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{"name": "native", "address": {"socket_address": {
                "address": "127.0.0.1", "port_value": port}}, "filter_chains": [{"filters": [
                    {"name": "envoy.filters.network.http_connection_manager",
                     "typed_config": hcm}]}]}],
            "clusters": clusters(backend_ports)}}


def backend_bootstrap(backend_ports):
    """One listener per backend Service: 200 with x-served-by: <service>, x-bench-id echoed."""
    listeners = []
    for svc, port in backend_ports.items():
        route = {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {
            "inline_string": f"{svc}\n"}}}
        hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network"
                        ".http_connection_manager.v3.HttpConnectionManager",
               "stat_prefix": svc, "route_config": {"virtual_hosts": [{
                   "name": svc, "domains": ["*"], "routes": [route],
                   "response_headers_to_add": [
                       {"header": {"key": "x-served-by", "value": svc}},
                       {"header": {"key": "x-bench-id", "value": "%REQ(x-bench-id)%"}}]}]},
               "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                   "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
        listeners.append({"name": svc, "address": {"socket_address": {
            "address": "127.0.0.1", "port_value": port}}, "filter_chains": [{"filters": [
                {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}]})
    return {"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
            "static_resources": {"listeners": listeners}}


# --backoff-routes-variant: distinct HTTPRoute retry.backoff values (GEP-1731) on an extra route
# no bench request matches. `render` gives each its own Envoy route ahead of the catch-all
# (`x-gamma-backoff-ms`), so every bench request fails these header matches first.
BACKOFFS_MS = (25, 50, 100, 200, 250, 500, 1000, 2000)


def backoff_route_yaml():
    """One HTTPRoute with one rule per back-off of BACKOFFS_MS, on a hostname nobody asks for."""
    rules = [{"matches": [{"path": {"type": "PathPrefix", "value": f"/backoff-{ms}"}}],
              "retry": {"attempts": 2, "backoff": f"{ms}ms"},
              "backendRefs": [{"name": routes.BACKENDS[0], "port": routes.BACKEND_PORT}]}
             for ms in BACKOFFS_MS]
    return "---\n" + json.dumps({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "backoff-routes", "namespace": routes.NAMESPACE},
        "spec": {"parentRefs": [{"name": routes.GATEWAY}],
                 "hostnames": ["backoff.bench.invalid"], "rules": rules}}) + "\n"


def envoy_routes(bootstrap):
    """The Envoy routes of gammaroute's bootstrap (the catch-all, plus one per back-off)."""
    return [r for vh in hcm_of(bootstrap)["route_config"]["virtual_hosts"] for r in vh["routes"]]


def render_gammaroute(rs, work, tools, port, backend_ports, backoffs=False):
    """Gateway API YAML → `config-pusher check` + `render` → gammaroute's bootstrap, plus the
    local-reply echo; returns (bootstrap, table JSON path). `backoffs`: with
    `backoff_route_yaml()` too."""
    src = work / "gateway-api"
    src.mkdir(parents=True, exist_ok=True)
    (src / "routes.yaml").write_text(routes.gateway_yaml(rs)
                                     + (backoff_route_yaml() if backoffs else ""))
    cp = str(tools["config-pusher"])
    t0 = time.monotonic()
    report = json.loads(_check(cp, src))
    out = work / "rendered"
    cmd = [cp, "render", "--from", str(src), "--out", str(out), "--wasm", str(tools["gammaroute"]),
           "--listen", f"127.0.0.1:{port}", "--admin", "127.0.0.1:0"]
    for svc, bport in backend_ports.items():
        cmd += ["--backend", f"{routes.cluster_name(svc)}=127.0.0.1:{bport}"]
    run(cmd)
    render_s = time.monotonic() - t0
    role = f"gateway/{routes.NAMESPACE}/{routes.GATEWAY}"
    bootstrap = yaml.safe_load((out / "envoy" / f"{role}.yaml").read_text())
    hcm_of(bootstrap)["local_reply_config"] = local_reply_echo()
    return bootstrap, out / "tables" / f"{role}.json", render_s, report


def _check(cp, src):
    """`config-pusher check`: every object must be accepted with its references resolved."""
    p = subprocess.run([cp, "check", "--from", str(src), "-o", "json"], capture_output=True,
                       text=True)
    if p.returncode != 0:
        raise BenchError(f"config-pusher check refused the generated routes:\n{p.stdout[:3000]}"
                         f"{p.stderr[:2000]}")
    return p.stdout


# ---------------------------------------------------------------- processes

class Envoy:
    def __init__(self, name, bootstrap, work, core, concurrency=1):
        self.name = name
        self.dir = work / name
        self.dir.mkdir(parents=True, exist_ok=True)
        cfg = self.dir / "envoy.json"
        cfg.write_text(json.dumps(bootstrap))
        admin_file = self.dir / "admin-address"
        admin_file.unlink(missing_ok=True)
        self.log = open(self.dir / "envoy.log", "w")
        self.proc = subprocess.Popen(
            ["taskset", "-c", core, envoy_bin(), "-c", str(cfg), "--use-dynamic-base-id",
             "--concurrency", str(concurrency), "-l", "warning", "--admin-address-path",
             str(admin_file)], stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"{name}: Envoy exited at start-up:\n{self.log_tail()}")
            if admin_file.exists() and admin_file.read_text().strip():
                self.admin = admin_file.read_text().strip()
                try:
                    with urllib.request.urlopen(f"http://{self.admin}/ready", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise BenchError(f"{name}: Envoy not ready after 120 s:\n{self.log_tail()}")
            time.sleep(0.05)
        self.pid = self.proc.pid  # taskset execs Envoy: same pid

    def log_tail(self):
        return (self.dir / "envoy.log").read_text()[-3000:]

    def cpu_ticks(self):
        return proc_cpu_ticks(self.pid)

    def rss_kib(self):
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def proc_cpu_ticks(pid):
    """utime + stime of a process, in clock ticks (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def cpu_busy_ticks():
    """{cpu name: busy ticks} from /proc/stat (everything but idle and iowait)."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu"):
            name, *vals = line.split()
            vals = [int(v) for v in vals[:8]]
            out[name] = sum(vals) - vals[3] - vals[4]
    return out


# ---------------------------------------------------------------- requests and load

def request_headers(i, req):
    # "Host" capitalised: wrk adds its own Host header unless this exact key is set.
    return [("Host", req.host), ("x-bench-id", str(i)), *routes.ORDINARY_HEADERS, *req.headers]


def check_once(envoy_port, rs, name):
    """Sends every request once over one connection; raises on a wrong answer."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", envoy_port, timeout=10)
    for i, req in enumerate(rs.requests):
        conn.putrequest(req.method, req.path, skip_host=True, skip_accept_encoding=True)
        for k, v in request_headers(i, req):
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        resp.read()
        verdict = judge(req, resp.status, resp.getheader("x-served-by"),
                        resp.getheader("x-bench-id"), i)
        if verdict:
            raise BenchError(f"{name}: {rs.shape}/{rs.n} request {i} {req.method} "
                             f"http://{req.host}{req.path} {req.headers}: {verdict}")
    conn.close()


def judge(req, status, served_by, echoed, i):
    if echoed != str(i):
        return f"x-bench-id {echoed!r}, expected {i}"
    if not req.expect:
        return None if status == 404 else f"status {status} from {served_by}, expected 404"
    if status != 200:
        return f"status {status}, expected 200 from {req.expect}"
    if served_by not in req.expect:
        return f"served by {served_by}, expected one of {req.expect}"
    return None


WRK_LUA = r"""
-- Generated by bench/e2e.py: cycles through the requests; checks every answer.
local reqs = %(requests)s
local formatted = {}
local next_i = 0
bad, checked, first_bad = 0, 0, ""
function init(args)
  for i, r in ipairs(reqs) do formatted[i] = wrk.format(r.m, r.p, r.h) end
end
function request()
  next_i = next_i %% #formatted + 1
  return formatted[next_i]
end
function response(status, headers, body)
  checked = checked + 1
  local id = tonumber(headers["x-bench-id"])
  local r = id and reqs[id + 1]
  local why = nil
  if not r then why = "no x-bench-id (status " .. status .. ")"
  elseif r.s ~= status then why = "request " .. id .. ": status " .. status .. ", expected " .. r.s
  elseif r.s == 200 and not r.e[headers["x-served-by"] or ""] then
    why = "request " .. id .. ": served by " .. tostring(headers["x-served-by"])
  end
  if why then
    bad = bad + 1
    if first_bad == "" then first_bad = why end
  end
end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  local b, c, f = 0, 0, ""
  for _, t in ipairs(threads) do
    b = b + t:get("bad"); c = c + t:get("checked")
    if f == "" then f = t:get("first_bad") end
  end
  io.write(string.format(
    'WRK-JSON {"requests": %%d, "duration_us": %%d, "errors": %%d, "bad": %%d, "checked": %%d, '
    .. '"p50_us": %%d, "p99_us": %%d, "first_bad": "%%s"}\n',
    summary.requests, summary.duration,
    -- errors.status counts 4xx/5xx answers: the checks above judge statuses.
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    b, c, latency:percentile(50), latency:percentile(99), f))
end
"""


def lua_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wrk_script(rs, path):
    items = []
    for i, req in enumerate(rs.requests):
        hdrs = ", ".join(f"[{lua_str(k)}] = {lua_str(v)}" for k, v in request_headers(i, req))
        expect = ", ".join(f"[{lua_str(s)}] = true" for s in req.expect)
        items.append(f'{{m = {lua_str(req.method)}, p = {lua_str(req.path)}, h = {{{hdrs}}}, '
                     f'e = {{{expect}}}, s = {200 if req.expect else 404}}}')
    path.write_text(WRK_LUA % {"requests": "{\n  " + ",\n  ".join(items) + "\n}"})


def slice_load(port, script, seconds, connections, envoy, backend):
    """One load slice through one Envoy: wrk on the load core; CPU accounting around it."""
    busy0, e0, b0 = cpu_busy_ticks(), envoy.cpu_ticks(), backend.cpu_ticks()
    t0 = time.monotonic()
    p = subprocess.run(["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}",
                        f"-d{seconds}s", "--latency", "-s", str(script), f"http://127.0.0.1:{port}/"],
                       capture_output=True, text=True)
    wall = time.monotonic() - t0
    busy1, e1, b1 = cpu_busy_ticks(), envoy.cpu_ticks(), backend.cpu_ticks()
    line = next((x for x in p.stdout.splitlines() if x.startswith("WRK-JSON ")), None)
    if p.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    w = json.loads(line[len("WRK-JSON "):])
    if w["bad"] or w["errors"]:
        raise BenchError(f"{envoy.name}: {w['bad']} wrong answers, {w['errors']} errors "
                         f"out of {w['requests']} (first: {w['first_bad']})")
    envoy_s = (e1 - e0) / TICK
    core0 = (busy1[f"cpu{ENVOY_CORE}"] - busy0[f"cpu{ENVOY_CORE}"]) / TICK
    core1 = (busy1[f"cpu{LOAD_CORE}"] - busy0[f"cpu{LOAD_CORE}"]) / TICK
    n = max(w["requests"], 1)
    return {
        "rps": w["requests"] / (w["duration_us"] / 1e6),
        "p50_us": w["p50_us"], "p99_us": w["p99_us"],
        "cpu_us": envoy_s * 1e6 / n,
        "requests": w["requests"],
        # Core 0 time not spent by this Envoy: other processes (and kernel work for them).
        "foreign": max(0.0, core0 - envoy_s) / wall,
        "load_core_busy": core1 / wall,
        "backend_cpu_us": (b1 - b0) / TICK * 1e6 / n,
    }


# ---------------------------------------------------------------- one route set

def median_range(xs):
    return statistics.median(xs), min(xs), max(xs)


def with_wasm(bootstrap, path):
    """`bootstrap` (gammaroute's) loading the filter from `path` instead."""
    out = json.loads(json.dumps(bootstrap))
    for f in hcm_of(out)["http_filters"]:
        if f["name"] == "envoy.filters.http.wasm":
            f["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = str(path)
    return out


def without_strip(bootstrap):
    """`bootstrap` (gammaroute's) without the header_mutation filter in front of the filter."""
    out = json.loads(json.dumps(bootstrap))
    hcm = hcm_of(out)
    hcm["http_filters"] = [f for f in hcm["http_filters"]
                           if f["name"] != "envoy.filters.http.header_mutation"]
    return out


def without_mirror(bootstrap):
    """`bootstrap` (gammaroute's) with a bare catch-all route: no mirror policies, no removal."""
    out = json.loads(json.dumps(bootstrap))
    for vh in hcm_of(out)["route_config"]["virtual_hosts"]:
        for r in vh["routes"]:
            r.pop("request_headers_to_remove", None)
            r.get("route", {}).pop("request_mirror_policies", None)
    return out


def without_rule_stats(bootstrap):
    """`bootstrap` (gammaroute's) with `ruleStats: false` in the plugin configuration."""
    out = json.loads(json.dumps(bootstrap))
    for f in hcm_of(out)["http_filters"]:
        if f["name"] == "envoy.filters.http.wasm":
            conf = f["typed_config"]["config"]["configuration"]
            plugin = json.loads(conf["value"])
            plugin["ruleStats"] = False
            conf["value"] = json.dumps(plugin)
    return out


# gammaroute with one feature taken away, run side by side to measure what that feature costs:
# config name → (command-line flag, bootstrap transform, what the report calls the cost).
VARIANTS = {
    "gammaroute-no-strip": ("--no-strip-variant", without_strip,
                            "the native header_mutation filter in front of gammaroute"),
    "gammaroute-no-mirror": ("--no-mirror-variant", without_mirror,
                             "the mirror policies on gammaroute's catch-all route when no "
                             "mirror fires"),
    "gammaroute-no-rule-stats": ("--no-rule-stats-variant", without_rule_stats,
                                 "the per-rule request counter (`ruleStats`)"),
}
# gammaroute with something added, rendered by config-pusher: config name → (flag, what).
# Reported as variant − gammaroute.
ADDED = {
    "gammaroute-backoff-routes": ("--backoff-routes-variant",
                                  f"{len(BACKOFFS_MS)} distinct retry back-offs (GEP-1731): their "
                                  "Envoy routes ahead of the catch-all, taken by no bench request"),
}


def variant_enabled(args, name):
    flag = (VARIANTS.get(name) or ADDED[name])[0]
    return getattr(args, flag.lstrip("-").replace("-", "_"))


def bench_set(rs, tools, args, backend, backend_ports, work):
    work.mkdir(parents=True, exist_ok=True)
    configs = (CONFIGS + ((BEFORE,) if args.baseline_wasm else ())
               + tuple(v for v in (*VARIANTS, *ADDED) if variant_enabled(args, v)))
    ports = dict(zip(configs, free_ports(len(configs))))
    gamma_boot, table_json, render_s, _ = render_gammaroute(rs, work, tools, ports["gammaroute"],
                                                           backend_ports)
    boots = {
        "gammaroute": gamma_boot,
        "native": native_bootstrap(rs, ports["native"], backend_ports),
        "floor-noop": native_bootstrap(rs, ports["floor-noop"], backend_ports,
                                       ("floor", tools["floor-noop"])),
        "floor-headers": native_bootstrap(rs, ports["floor-headers"], backend_ports,
                                          ("floor", tools["floor-headers"])),
    }
    if args.baseline_wasm:
        boots[BEFORE] = with_wasm(render_gammaroute(rs, work / "before", tools, ports[BEFORE],
                                                     backend_ports)[0],
                                  Path(args.baseline_wasm).resolve())
    for v in VARIANTS:
        if variant_enabled(args, v):
            transform = VARIANTS[v][1]
            boots[v] = transform(render_gammaroute(rs, work / v, tools, ports[v],
                                                   backend_ports)[0])
    for v in ADDED:
        if variant_enabled(args, v):
            boots[v] = render_gammaroute(rs, work / v, tools, ports[v], backend_ports,
                                         backoffs=True)[0]
    envoys = {}
    result = {"shape": rs.shape, "n": rs.n, "rules": len(rs.rules()), "regexes": rs.regexes(),
              "hostnames": len(routes.virtual_hosts(rs)), "render_s": render_s,
              "table_json_bytes": table_json.stat().st_size}
    try:
        for c in configs:
            t0 = time.monotonic()
            envoys[c] = Envoy(c, boots[c], work, ENVOY_CORE)
            result.setdefault("startup_s", {})[c] = time.monotonic() - t0
            check_once(ports[c], rs, c)
        log(f"  {rs.shape}/{rs.n}: {len(configs)} Envoys up, every request answered right by each")
        if args.check:
            return result
        script = work / "requests.lua"
        wrk_script(rs, script)
        for c in configs:  # warm-up
            slice_load(ports[c], script, 1, args.connections, envoys[c], backend)
        rounds = []
        for r in range(args.rounds):
            order = configs if r % 2 == 0 else tuple(reversed(configs))
            rounds.append({c: slice_load(ports[c], script, args.slice, args.connections,
                                         envoys[c], backend) for c in order})
            worst = max(s["foreign"] for s in rounds[-1].values())
            log(f"  round {r + 1}/{args.rounds}: " + "  ".join(
                f"{c} {rounds[-1][c]['cpu_us']:.0f}µs" for c in configs)
                + f"  (foreign load on core {ENVOY_CORE}: {worst:.0%})")
        result["rss_kib"] = {c: envoys[c].rss_kib() for c in configs}
    finally:
        for e in envoys.values():
            e.stop()
    result["rounds"] = rounds
    kept = [x for x in rounds if max(s["foreign"] for s in x.values()) <= args.max_foreign]
    result["disturbed"] = len(kept) < 2
    if len(kept) < 2:
        # Too few quiet rounds: keep the least disturbed half, and say so.
        kept = sorted(rounds, key=lambda x: max(s["foreign"] for s in x.values()))
        kept = kept[:max(2, len(rounds) // 2)]
    result["kept"] = len(kept)
    summary = {}
    for c in configs:
        summary[c] = {k: median_range([x[c][k] for x in kept])
                      for k in ("rps", "p50_us", "p99_us", "cpu_us", "load_core_busy")}
    # Per-round differences, then their median: drift cancels within a round.
    diffs = {
        "rps_ratio": [x["gammaroute"]["rps"] / x["native"]["rps"] for x in kept],
        "cpu_ratio": [x["gammaroute"]["cpu_us"] / x["native"]["cpu_us"] for x in kept],
        "minus_noop_us": [x["gammaroute"]["cpu_us"] - x["floor-noop"]["cpu_us"] for x in kept],
        "minus_headers_us": [x["gammaroute"]["cpu_us"] - x["floor-headers"]["cpu_us"]
                             for x in kept],
        "noop_minus_native_us": [x["floor-noop"]["cpu_us"] - x["native"]["cpu_us"] for x in kept],
        "headers_minus_native_us": [x["floor-headers"]["cpu_us"] - x["native"]["cpu_us"]
                                    for x in kept],
    }
    if args.baseline_wasm:
        diffs["minus_before_us"] = [x["gammaroute"]["cpu_us"] - x[BEFORE]["cpu_us"] for x in kept]
        diffs["before_minus_headers_us"] = [x[BEFORE]["cpu_us"] - x["floor-headers"]["cpu_us"]
                                            for x in kept]
    for v in VARIANTS:
        if variant_enabled(args, v):
            diffs[f"minus_{v}_us"] = [x["gammaroute"]["cpu_us"] - x[v]["cpu_us"] for x in kept]
    for v in ADDED:
        if variant_enabled(args, v):
            diffs[f"{v}_minus_us"] = [x[v]["cpu_us"] - x["gammaroute"]["cpu_us"] for x in kept]
            diffs[f"{v}_cpu_ratio"] = [x[v]["cpu_us"] / x["gammaroute"]["cpu_us"] for x in kept]
            result.setdefault("envoy_routes", {})[v] = len(envoy_routes(boots[v]))
            result["envoy_routes"]["gammaroute"] = len(envoy_routes(boots["gammaroute"]))
    result["summary"] = summary
    result["diffs"] = {k: median_range(v) for k, v in diffs.items()}
    result["foreign_max"] = max(s["foreign"] for x in rounds for s in x.values())
    return result


def worker_memory(rs, tools, backend_ports, work):
    """RSS added by a second worker (concurrency 2 vs 1), gammaroute and native, idle after
    one request each: what each extra worker costs (its wasm VM and compiled table)."""
    out = {}
    for c in ("gammaroute", "native"):
        rss = {}
        for conc in (1, 2):
            port = free_port()
            if c == "gammaroute":
                boot = render_gammaroute(rs, work / f"mem-{conc}", tools, port, backend_ports)[0]
            else:
                boot = native_bootstrap(rs, port, backend_ports)
            e = Envoy(f"mem-{c}-{conc}", boot, work, ENVOY_CORE, concurrency=conc)
            try:
                check_once(port, rs, e.name)
                rss[conc] = e.rss_kib()
            finally:
                e.stop()
        out[c] = {"conc1_kib": rss[1], "conc2_kib": rss[2], "per_worker_kib": rss[2] - rss[1]}
    return out


# ---------------------------------------------------------------- report

def fmt(mr, digits=0, unit=""):
    m, lo, hi = mr
    return f"{m:,.{digits}f}{unit} ({lo:,.{digits}f}–{hi:,.{digits}f})"


def report(results, meta):
    lines = [f"# bench-e2e {meta['date']}", "",
             f"Machine: {meta['nproc']} cores, {meta['cpu']}; Envoy {meta['envoy']}; "
             f"gammaroute.wasm {meta['wasm_bytes']:,} bytes; floor modules "
             f"{meta['floor_bytes']['floor-noop']:,} / {meta['floor_bytes']['floor-headers']:,} "
             f"bytes. Slices of {meta['slice']} s, {meta['rounds']} rounds, wrk -t1 "
             f"-c{meta['connections']}, {meta['requests_per_set']} requests per set cycled.", ""]
    lines += ["Envoy CPU per request (µs, median of kept rounds, range) and throughput:", "",
              "| shape | N | config | req/s | p50 µs | p99 µs | Envoy CPU µs/req | RSS MiB |",
              "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in results:
        if "summary" not in r:
            continue
        for c in r["summary"]:
            s = r["summary"][c]
            lines.append(f"| {r['shape']} | {r['n']:,} | {c} | {fmt(s['rps'])} | "
                         f"{s['p50_us'][0]:,.0f} | {s['p99_us'][0]:,.0f} | {fmt(s['cpu_us'], 1)} | "
                         f"{r['rss_kib'][c] / 1024:.1f} |")
    lines += ["", "gammaroute against the baseline and the floor (per-round differences, median "
              "and range):", "",
              "| shape | N | regexes | gammaroute/native req/s | gammaroute/native CPU | "
              "gammaroute − floor-headers µs | gammaroute − floor-noop µs | floor-noop − native µs "
              "| floor-headers − native µs | rounds kept | foreign load max |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if "diffs" not in r:
            continue
        d = r["diffs"]
        flag = " (disturbed)" if r["disturbed"] else ""
        lines.append(f"| {r['shape']} | {r['n']:,} | {r['regexes']} | {fmt(d['rps_ratio'], 2, '×')} | "
                     f"{fmt(d['cpu_ratio'], 2, '×')} | {fmt(d['minus_headers_us'], 1)} | "
                     f"{fmt(d['minus_noop_us'], 1)} | {fmt(d['noop_minus_native_us'], 1)} | "
                     f"{fmt(d['headers_minus_native_us'], 1)} | {r['kept']}/{len(r['rounds'])}{flag} | "
                     f"{r['foreign_max']:.0%} |")
    before = [r for r in results if "minus_before_us" in r.get("diffs", {})]
    if before:
        lines += ["", "This build against --baseline-wasm (`gammaroute-before`), same run, Envoy CPU "
                  "µs per request:", "",
                  "| shape | N | gammaroute − before | before − floor-headers | "
                  "gammaroute − floor-headers |", "|---|---:|---:|---:|---:|"]
        for r in before:
            d = r["diffs"]
            lines.append(f"| {r['shape']} | {r['n']:,} | {fmt(d['minus_before_us'], 1)} | "
                         f"{fmt(d['before_minus_headers_us'], 1)} | "
                         f"{fmt(d['minus_headers_us'], 1)} |")
    for v, (_, _, what) in VARIANTS.items():
        key = f"minus_{v}_us"
        with_v = [r for r in results if key in r.get("diffs", {})]
        if with_v:
            lines += ["", f"Cost of {what} (gammaroute − {v}, Envoy CPU µs per request):", "",
                      "| shape | N | µs |", "|---|---:|---:|"]
            lines += [f"| {r['shape']} | {r['n']:,} | {fmt(r['diffs'][key], 1)} |"
                      for r in with_v]
    for v, (_, what) in ADDED.items():
        with_v = [r for r in results if f"{v}_minus_us" in r.get("diffs", {})]
        if with_v:
            lines += ["", f"Cost of {what} ({v} − gammaroute, same run, Envoy CPU per request):",
                      "", "| shape | N | Envoy routes (gammaroute → variant) | µs | ratio |",
                      "|---|---:|---|---:|---:|"]
            lines += [f"| {r['shape']} | {r['n']:,} | {r['envoy_routes']['gammaroute']} → "
                      f"{r['envoy_routes'][v]} | {fmt(r['diffs'][f'{v}_minus_us'], 1)} | "
                      f"{fmt(r['diffs'][f'{v}_cpu_ratio'], 3, '×')} |" for r in with_v]
    mem = [r for r in results if "worker_memory" in r]
    if mem:
        lines += ["", "Memory per extra Envoy worker (RSS at --concurrency 2 minus 1, idle):", "",
                  "| shape | N | table JSON KiB | gammaroute KiB/worker | native KiB/worker | "
                  "gammaroute − native KiB |", "|---|---:|---:|---:|---:|---:|"]
        for r in mem:
            m = r["worker_memory"]
            lines.append(f"| {r['shape']} | {r['n']:,} | {r['table_json_bytes'] / 1024:,.0f} | "
                         f"{m['gammaroute']['per_worker_kib']:,} | {m['native']['per_worker_kib']:,} | "
                         f"{m['gammaroute']['per_worker_kib'] - m['native']['per_worker_kib']:,} |")
    lines += ["", "Start-up (Envoy ready, s; gammaroute decodes and compiles the table in each of "
              "its 3 VMs) and render time:", "",
              "| shape | N | render s | " + " | ".join(CONFIGS) + " |",
              "|---|---:|---:|" + "---:|" * len(CONFIGS)]
    for r in results:
        lines.append(f"| {r['shape']} | {r['n']:,} | {r['render_s']:.2f} | " + " | ".join(
            f"{r['startup_s'][c]:.2f}" for c in CONFIGS) + " |")
    busy = [r["summary"][c]["load_core_busy"][2] for r in results if "summary" in r
            for c in r["summary"]]
    if busy:
        lines += ["", f"Core {LOAD_CORE} (wrk, the backend and whatever else ran there) busy at "
                  f"most {max(busy):.0%} of the core during a kept slice; at ~100% the load side, "
                  "not Envoy, limits req/s and latency."]
    return "\n".join(lines) + "\n"


def machine(tools):
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               "?")
    version = run([envoy_bin(), "--version"]).strip().splitlines()[-1]
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "nproc": os.cpu_count(),
            "cpu": cpu, "envoy": version.split("version:")[-1].strip(),
            "wasm_bytes": tools["gammaroute"].stat().st_size,
            "floor_bytes": {k: tools[k].stat().st_size for k in ("floor-noop", "floor-headers")}}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="N = 10 and 1,000, single-host, 1 s slices, 3 rounds (smoke test)")
    ap.add_argument("--check", action="store_true",
                    help="no load: each config starts and answers every request right")
    ap.add_argument("--sizes", default="10,100,1000,10000")
    ap.add_argument("--shapes", default=",".join(routes.SHAPES))
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--slice", type=int, default=2, help="seconds of load per slice")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--max-foreign", type=float, default=0.10,
                    help="drop rounds where other processes used more than this share of core 0")
    ap.add_argument("--memory", action="store_true", default=None,
                    help="measure RSS per extra worker (default: on unless --quick/--check)")
    ap.add_argument("--out", default=str(ROOT / "target" / "bench-e2e"))
    ap.add_argument("--no-build", action="store_true", help="use the artifacts already built")
    ap.add_argument("--config-pusher", help="this config-pusher binary instead of the release build")
    ap.add_argument("--baseline-wasm", help="also run gammaroute with this .wasm, side by side "
                    "(config `gammaroute-before`), to measure a change in the same run")
    for v, (flag, _, what) in VARIANTS.items():
        ap.add_argument(flag, action="store_true",
                        help=f"also run gammaroute without {what} (config `{v}`)")
    for v, (flag, what) in ADDED.items():
        ap.add_argument(flag, action="store_true",
                        help=f"also run gammaroute with {what} (config `{v}`)")
    ap.add_argument("--wasm", help="this gammaroute .wasm instead of the release build "
                    "(before/after comparisons)")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.shapes, args.slice, args.rounds = "10,1000", "single-host", 1, 4
    if args.memory is None:
        args.memory = not (args.quick or args.check)
    for tool in ("wrk", "taskset"):
        if not shutil.which(tool):
            raise BenchError(f"{tool} not found (apt-get install wrk util-linux)")
    if os.cpu_count() < 2:
        raise BenchError("needs 2 cores: Envoy on one, load generator and backend on the other")
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    tools = build(args)
    meta = machine(tools)
    meta.update(slice=args.slice, rounds=args.rounds, connections=args.connections,
                requests_per_set=64)
    backend_ports = dict(zip(routes.BACKENDS, free_ports(len(routes.BACKENDS))))
    backend = Envoy("backend", backend_bootstrap(backend_ports), out, LOAD_CORE)
    results = []
    try:
        for shape in args.shapes.split(","):
            for n in (int(x) for x in args.sizes.split(",")):
                rs = routes.generate(shape, n)
                log(f"{shape}/{n}: {len(rs.rules())} rules, {rs.regexes()} regexes, "
                    f"{len(routes.virtual_hosts(rs))} hostnames")
                r = bench_set(rs, tools, args, backend, backend_ports, out / f"{shape}-{n}")
                if args.memory:
                    r["worker_memory"] = worker_memory(rs, tools, backend_ports,
                                                       out / f"{shape}-{n}")
                results.append(r)
    finally:
        backend.stop()
    (out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    text = report(results, meta)
    (out / "report.md").write_text(text)
    print(text)


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        log(f"bench-e2e: FAILED: {e}")
        sys.exit(1)
