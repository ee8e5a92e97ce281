#!/usr/bin/env python3
"""`make doctor`: what this machine has and lacks for `make demo` and `make test`, one line per
check — `ok`, `warn` (works, with a caveat) or `FIX` (what to do). Exits 1 when anything needs a
fix. Standard library only, and it changes nothing.

Envoy is found as everywhere else: `ENVOY_BIN`, else the project's virtualenv `.venv/bin/envoy`.
"""

import os
import re
import shutil
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# config-pusher's `rust-version` (config-pusher/Cargo.toml): the oldest Rust that builds it all.
MIN_RUST = (1, 92)
MIN_NODE = 20
ENVOY_SERIES = (1, 40)
# Fixed addresses of the demo (demo/run.py): the gateway and the GAMMA sidecars' Service address.
DEMO_ADDRESSES = [("127.0.0.1", 8080, "the demo gateway (`make demo ARGS='--port N'` moves it)"),
                  ("127.0.0.1", 8443, "the demo gateway's HTTPS listener (`make demo ARGS='--https-port N'`)"),
                  ("127.0.10.1", 9080, "the demo's mesh sidecars (the reviews Service ClusterIP)")]

FIXES = []


def line(status, what, detail):
    print(f"{status:<5} {what:<22} {detail}", flush=True)
    if status == "FIX":
        FIXES.append(what)


def run(argv):
    """(exit code, stdout + stderr) of a command; (None, why) when it cannot start."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, str(e)
    return p.returncode, p.stdout + p.stderr


def version(text, parts=2):
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(x) for x in m.groups()[:parts]) if m else None


def check_rust():
    code, out = run(["rustc", "--version"])
    found = version(out) if code == 0 else None
    if found is None:
        line("FIX", "rust", "rustc not found: install Rust with rustup (https://rustup.rs)")
    elif found < MIN_RUST:
        line("FIX", "rust", f"{out.strip()} is older than {MIN_RUST[0]}.{MIN_RUST[1]}: rustup update stable")
    else:
        line("ok", "rust", out.strip())
    code, out = run(["rustup", "target", "list", "--installed"])
    if code is None:
        line("FIX", "rustup", "not found: the wasm32-wasip1 target is installed with rustup")
    elif "wasm32-wasip1" in out.split():
        line("ok", "wasm32-wasip1 target", "installed")
    else:
        line("FIX", "wasm32-wasip1 target", "missing: rustup target add wasm32-wasip1 (make setup does)")


def check_python():
    line("ok", "python3", sys.version.split()[0])
    venv = os.path.join(ROOT, ".venv")
    stamp = os.path.join(venv, ".requirements.txt")
    wanted = os.path.join(ROOT, "tools", "requirements.txt")
    if os.path.exists(stamp) and open(stamp).read() == open(wanted).read():
        line("ok", "project venv", f"{venv} (tools/requirements.txt installed)")
        return
    code, _ = run([sys.executable, "-c", "import venv, ensurepip"])
    if code != 0:
        line("FIX", "project venv", "python3 cannot create virtualenvs: apt-get install python3-venv")
    elif os.path.isdir(venv):
        line("FIX", "project venv", f"{venv} is not up to date with tools/requirements.txt: make setup")
    else:
        line("FIX", "project venv", f"{venv} does not exist yet: make setup creates it")


def check_envoy():
    path = os.environ.get("ENVOY_BIN") or os.path.join(ROOT, ".venv", "bin", "envoy")
    source = "ENVOY_BIN" if os.environ.get("ENVOY_BIN") else ".venv"
    code, out = run([path, "--version"])
    if code != 0:
        line("FIX", "envoy", f"{path} ({source}) does not run: make setup installs Envoy into .venv/, "
             "or set ENVOY_BIN to an Envoy >= 1.40 binary")
        return
    m = re.search(r"version: \S+/(\d+\.\d+\.\d+)", out)
    found = version(m.group(1)) if m else None
    if found is None or found < ENVOY_SERIES:
        line("FIX", "envoy", f"{path}: {m.group(1) if m else 'unknown version'}; gammaroute needs "
             f">= {ENVOY_SERIES[0]}.{ENVOY_SERIES[1]} with V8 (make setup installs it into .venv/)")
    else:
        line("ok", "envoy", f"{m.group(1)} ({path}, from {source})")


def check_node():
    code, out = run(["node", "--version"])
    found = version(out, 1) if code == 0 else None
    if found is None:
        line("FIX", "node", f"not found; make test runs the wasm-compiled tests under Node >= {MIN_NODE}: "
             "apt-get install nodejs")
    elif found[0] < MIN_NODE:
        line("FIX", "node", f"{out.strip()} is older than {MIN_NODE}: install a newer nodejs")
    else:
        line("ok", "node", out.strip())


def check_compose():
    if shutil.which("docker-compose"):
        line("ok", "docker-compose", "found (make test validates the compose demo with it)")
    else:
        line("warn", "docker-compose", "missing: make test installs it with apt (apt-get install docker-compose)")


def check_chromium():
    if os.access("/usr/bin/chromium", os.X_OK):
        line("ok", "chromium", "found (make test drives the route map in it)")
    else:
        line("warn", "chromium", "missing: make test installs it with apt (apt-get install chromium)")


def check_openssl():
    if shutil.which("openssl"):
        line("ok", "openssl", "found (the demo makes its HTTPS certificate with it)")
    else:
        line("warn", "openssl", "missing: make demo installs it with apt (apt-get install openssl)")


def check_ports():
    for host, port, what in DEMO_ADDRESSES:
        s = socket.socket()
        try:
            s.bind((host, port))
            line("ok", f"{host}:{port}", f"free: {what}")
        except OSError as e:
            line("warn", f"{host}:{port}", f"cannot bind: {e.strerror} — needed by {what}")
        finally:
            s.close()


def check_disk():
    free = shutil.disk_usage(ROOT).free / 2**30
    if free < 15:
        line("warn", "disk", f"{free:.0f} GiB free; a full build and test run needs ~15 GiB (target/)")
    else:
        line("ok", "disk", f"{free:.0f} GiB free")


def main():
    print(f"gammaroute doctor ({ROOT})")
    check_rust()
    check_python()
    check_envoy()
    check_node()
    check_compose()
    check_chromium()
    check_openssl()
    check_ports()
    check_disk()
    if FIXES:
        print(f"\n{len(FIXES)} to fix: {', '.join(FIXES)}. `make setup` installs the wasm target and "
              "Envoy; `make test` also installs docker-compose.")
        return 1
    print("\nall set: `make demo` runs the demo, `make test` the tests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
