#!/usr/bin/env python3
"""Seeds the fuzz corpora (fuzz/corpus/<target>/) from the golden files, so every run starts from
real tables, configurations and requests: `make fuzz` runs it. Existing corpus entries are kept
(libFuzzer adds what it finds there)."""

import json
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "config-pusher" / "tests" / "golden"
CORPUS = ROOT / "fuzz" / "corpus"


def pairs(headers):
    """The proxy-wasm header-map encoding (filter/src/host/pairs.rs)."""
    out = struct.pack("<I", len(headers))
    for k, v in headers:
        out += struct.pack("<II", len(k.encode()), len(v.encode()))
    for k, v in headers:
        out += k.encode() + b"\0" + v.encode() + b"\0"
    return out


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data)


def main():
    tables = sorted(GOLDEN.glob("*/expected/tables/**/*.json"))
    for path in tables:
        name = "-".join(path.relative_to(GOLDEN).with_suffix("").parts)
        text = path.read_bytes()
        write("table", name, text)
        table = json.loads(text)
        config = {"table": table}
        if table.get("role", "").startswith("gateway/") and table.get("listeners"):
            config["listenerPort"] = table["listeners"][0]["port"]
        write("plugin_config", name, json.dumps(config).encode())
    # Requests: the tricky inputs of the adversarial set, as Envoy would hand them over.
    base = [(":method", "GET"), (":scheme", "http")]
    requests = {
        "plain": [(":authority", "www.example"), (":path", "/store/cart?x=1")],
        "escaped": [(":authority", "api.example:8080"), (":path", "/a/..%2Fadmin;p=1")],
        "backslash": [(":authority", "SHOP.EXAMPLE."), (":path", "/a\\b/../c")],
        "ipv6": [(":authority", "[::1]:8080"), (":path", "//x//y")],
        "query": [(":authority", "api.example"), (":path", "/items?q=1&q=2&%71=3")],
        "cors": [(":authority", "api.example"), (":path", "/items"),
                 ("origin", "https://a.example:8443"),
                 ("access-control-request-method", "POST")],
        "repeated": [(":authority", "api.example"), (":path", "/items")]
        + [("x-beta", "a" * 600)] * 8,
    }
    for name, headers in requests.items():
        write("request", name, pairs(base + headers))
    # Folders of YAML: each example and each golden case's input, alone and as one stream.
    folders = {"examples": sorted((ROOT / "examples").glob("*.yaml"))}
    for case in sorted(p for p in GOLDEN.iterdir() if (p / "input").is_dir()):
        folders[f"golden-{case.name}"] = sorted((case / "input").rglob("*.yaml"))
    for name, files in folders.items():
        for f in files:
            write("yaml", f"{name}-{f.stem}", f.read_bytes())
        write("yaml", name, b"\n---\n".join(f.read_bytes() for f in files))
    print(f"fuzz seeds: {len(tables)} tables and configurations, {len(requests)} requests, "
          f"{len(folders)} YAML folders")


if __name__ == "__main__":
    main()
