#!/usr/bin/env python3
"""What each crate costs in a .wasm: code bytes per crate, from a build that kept its `name`
section (`CARGO_PROFILE_RELEASE_STRIP=false`), plus the data and other sections.

    python3 tools/wasm_sizes.py path/to/module.wasm [--top 20]

A stand-in for `twiggy top`/`twiggy garbage` that needs only Python: function bodies are
attributed to the crate their (legacy- or v0-mangled) symbol names first; generic code
instantiated in our crate but defined elsewhere counts under the defining crate's path, as
rustc names it. Standard library only.
"""

import argparse
import collections
import re
import sys


def leb(data, i):
    result = shift = 0
    while True:
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return result, i


def sections(data):
    if data[:4] != b"\0asm":
        sys.exit("not a wasm module")
    i = 8
    while i < len(data):
        sid = data[i]
        size, j = leb(data, i + 1)
        yield sid, data[j:j + size], j - i + size
        i = j + size


def function_names(payload):
    name_len, i = leb(payload, 0)
    i += name_len  # the custom section's own name, "name"
    names = {}
    while i < len(payload):
        kind = payload[i]
        size, j = leb(payload, i + 1)
        if kind == 1:
            count, k = leb(payload, j)
            for _ in range(count):
                idx, k = leb(payload, k)
                n, k = leb(payload, k)
                names[idx] = payload[k:k + n].decode("utf-8", "replace")
                k += n
        i = j + size
    return names


LEGACY = re.compile(r"_ZN(\d+)")


def crate(symbol):
    """The first path segment of a mangled Rust symbol (`_ZN4core3fmt...` → core)."""
    m = LEGACY.match(symbol)
    if m:
        n = int(m.group(1))
        seg = symbol[m.end():m.end() + n]
        if seg.startswith("_$LT$"):  # <T as Trait>::f: the type's crate (`..` is `::`)
            inner = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\.\.", seg)
            if inner:
                return inner.group(1)
        return seg
    if symbol.startswith("_R"):
        m = re.search(r"C(?:s[0-9A-Za-z]*_)?(\d+)([A-Za-z_][A-Za-z0-9_]*)", symbol)
        if m:
            return m.group(2)[:int(m.group(1))]
    if symbol.startswith(("proxy_", "_initialize", "__")):
        return "(exports/runtime)"
    return "(other: " + symbol.split("::")[0][:30] + ")"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wasm")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    data = open(args.wasm, "rb").read()
    imported_funcs = 0
    bodies = []
    names = {}
    totals = collections.Counter()
    for sid, payload, size in sections(data):
        label = {1: "type", 2: "import", 3: "function", 5: "memory", 6: "global", 7: "export",
                 10: "code", 11: "data", 12: "datacount"}.get(sid, f"section {sid}")
        if sid == 0:
            n, k = leb(payload, 0)
            label = "custom " + payload[k:k + n].decode()
            if payload[k:k + n] == b"name":
                names = function_names(payload)
        totals[label] += size
        if sid == 2:
            count, i = leb(payload, 0)
            for _ in range(count):
                for _ in range(2):
                    n, i = leb(payload, i)
                    i += n
                kind = payload[i]
                i += 1
                if kind == 0:
                    _, i = leb(payload, i)
                    imported_funcs += 1
                elif kind == 1:
                    i += 1
                    flags, i = leb(payload, i)
                    _, i = leb(payload, i)
                    if flags & 1:
                        _, i = leb(payload, i)
                elif kind == 2:
                    flags, i = leb(payload, i)
                    _, i = leb(payload, i)
                    if flags & 1:
                        _, i = leb(payload, i)
                else:
                    i += 2
        if sid == 10:
            count, i = leb(payload, 0)
            for f in range(count):
                n, j = leb(payload, i)
                bodies.append((imported_funcs + f, j - i + n))
                i = j + n
    size = len(data)
    print(f"{args.wasm}: {size:,} bytes")
    for label, n in totals.most_common():
        print(f"  {label:<22} {n:>9,}  {100 * n / size:5.1f}%")
    if not names:
        print("no name section: build with CARGO_PROFILE_RELEASE_STRIP=false for the per-crate view")
        return
    by_crate = collections.Counter()
    functions = []
    for idx, n in bodies:
        sym = names.get(idx, f"func[{idx}]")
        by_crate[crate(sym)] += n
        functions.append((n, sym))
    code = sum(n for _, n in bodies)
    print(f"\ncode by crate ({code:,} bytes of function bodies):")
    for c, n in by_crate.most_common(args.top):
        print(f"  {c:<28} {n:>9,}  {100 * n / code:5.1f}%")
    print(f"\nlargest functions:")
    for n, sym in sorted(functions, reverse=True)[:args.top]:
        print(f"  {n:>8,}  {sym[:110]}")


if __name__ == "__main__":
    main()
