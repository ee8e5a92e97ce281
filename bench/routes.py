"""Route sets for the end-to-end benchmark, and their native Envoy translation.

Pure: a seeded generator builds a model of N HTTPRoute rules (two shapes) and the requests that
exercise it, each with its expected answer; `gateway_yaml` writes the model as Gateway API objects
(what config-pusher renders into gammaroute's table), `native_route_config` translates it the way
Envoy Gateway does (the baseline). BENCHMARKS.md describes the shapes.
"""

import json
import random
from dataclasses import dataclass, field

NAMESPACE = "bench"
GATEWAY = "gw"
# Backend Services; each is one listener of the backend Envoy, answering with its own name.
BACKENDS = [f"svc-{i}" for i in range(8)]
BACKEND_PORT = 80
# Sent with every request, like a browser or an API client would: the filter reads them all.
ORDINARY_HEADERS = [
    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) bench/1.0"),
    ("accept", "text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8"),
    ("accept-language", "en-US,en;q=0.5"),
    ("accept-encoding", "gzip, deflate, br"),
    ("cookie", "session=6b1f0e2c9d; theme=dark"),
    ("x-request-id", "0f8fad5b-d9cb-469f-a165-70867728950e"),
    ("cache-control", "no-cache"),
    ("referer", "https://www.example.com/start"),
]
SHAPES = ("single-host", "many-hosts")


def cluster_name(svc):
    """gammaroute's standalone cluster naming (`<ns>/<service>:<port>`), used by both configs."""
    return f"{NAMESPACE}/{svc}:{BACKEND_PORT}"


@dataclass
class Match:
    kind: str  # Exact | PathPrefix | RegularExpression
    path: str
    headers: list = field(default_factory=list)  # [(name, exact value)]


@dataclass
class Rule:
    route: int  # index of its HTTPRoute
    index: int  # position in the HTTPRoute's rules
    match: Match
    backends: list  # [(service, weight)]
    # A request this rule must serve (method, path, extra headers); None for none.
    sample: tuple = None


@dataclass
class Route:
    name: str
    hostnames: list
    rules: list = field(default_factory=list)


@dataclass
class Request:
    host: str
    path: str
    headers: list  # [(name, value)], besides Host and the ordinary ones
    expect: list  # backend services that may answer; [] = 404
    klass: str  # early | middle | late | miss
    method: str = "GET"


@dataclass
class RouteSet:
    shape: str
    n: int
    routes: list
    requests: list

    def rules(self):
        return [r for route in self.routes for r in route.rules]

    def regexes(self):
        return sum(1 for r in self.rules() if r.match.kind == "RegularExpression")


def _backends(rng):
    roll = rng.random()
    picks = rng.sample(BACKENDS, 3)
    if roll < 0.6:
        return [(picks[0], 1)]
    if roll < 0.85:
        return [(picks[0], 90), (picks[1], 10)]
    return [(picks[0], 50), (picks[1], 30), (picks[2], 20)]


def _kinds(rng, n):
    """Match kinds for n rules: ~1% regexes (at least one), ~40% exact, the rest prefixes."""
    regex_at = set(rng.sample(range(n), max(1, n // 100)))
    out = []
    for i in range(n):
        if i in regex_at:
            out.append("RegularExpression")
        else:
            out.append("Exact" if rng.random() < 0.4 else "PathPrefix")
    return out


def _paths(kind, base, rng):
    """(match path, a request path it serves) for a rule under the unique directory `base`."""
    if kind == "Exact":
        return f"{base}/items", f"{base}/items"
    if kind == "RegularExpression":
        return f"{base}/[0-9]+/detail", f"{base}/{rng.randrange(1, 10**6)}/detail"
    query = "?page=2&sort=asc" if rng.random() < 0.3 else ""
    return base, f"{base}/{rng.choice(['list', 'x', 'item-7', 'a/b'])}{query}"


def _add_rules(rng, route, bases, kinds, rules_left):
    """Appends rules over the unique directories `bases` to `route`; returns how many."""
    added = 0
    for base, kind in zip(bases, kinds):
        if added >= rules_left:
            break
        path, sample = _paths(kind, base, rng)
        header = None
        if kind != "RegularExpression" and rng.random() < 0.25:
            header = ("x-tenant", f"t{rng.randrange(50)}")
        headers = [header] if header else []
        rule = Rule(0, len(route.rules),
                    Match(kind, path, headers), _backends(rng), ("GET", sample, headers))
        route.rules.append(rule)
        added += 1
        # Half of the header-matched rules get a sibling on the same path without the header:
        # requests with the header must take the header rule (more header matches first).
        if header and rng.random() < 0.5 and added < rules_left:
            route.rules.append(Rule(0, len(route.rules), Match(kind, path, []), _backends(rng),
                                    ("GET", sample, [])))
            added += 1
    return added


def generate(shape, n, seed=9):
    """The route set of `shape` with `n` rules and its 64 requests (16 per class)."""
    rng = random.Random(f"{shape}/{n}/{seed}")
    routes = []
    if shape == "single-host":
        # API-gateway paths under one hostname, 10 rules per HTTPRoute.
        kinds = _kinds(rng, n)
        made, k = 0, 0
        while made < n:
            route = Route(f"api-{len(routes)}", ["api.example.com"])
            bases = [f"/api/v{1 + (k + j) % 3}/r{k + j}" for j in range(10)]
            made += _add_rules(rng, route, bases, kinds[made:made + 10], min(10, n - made))
            k += 10
            routes.append(route)
    elif shape == "many-hosts":
        # ~n/10 hostnames, one HTTPRoute each; one in ten a wildcard (its own zone, so wildcard
        # and exact hostnames never overlap); 30% of the hosts end in a `PathPrefix /` catch-all.
        kinds = _kinds(rng, n)
        made = 0
        while made < n:
            j = len(routes)
            wildcard = j % 10 == 3
            host = f"*.w{j}.example.com" if wildcard else f"h{j}.example.com"
            route = Route(f"host-{j}", [host])
            want = min(10, n - made)
            catch_all = rng.random() < 0.3 and want >= 2
            bases = [f"/{rng.choice(['shop', 'app', 'v1', 'static'])}/p{j}-{i}" for i in range(10)]
            made += _add_rules(rng, route, bases, kinds[made:made + want - catch_all],
                               want - catch_all)
            if catch_all:
                route.rules.append(Rule(0, len(route.rules), Match("PathPrefix", "/"),
                                        _backends(rng), ("GET", f"/zz-{j}/anything", [])))
                made += 1
            routes.append(route)
    else:
        raise ValueError(f"unknown shape {shape}")
    for i, route in enumerate(routes):
        for rule in route.rules:
            rule.route = i
    rs = RouteSet(shape, n, routes, [])
    rs.requests = _requests(rs, rng)
    return rs


def precedence_key(rule):
    """Envoy Gateway's route order within a virtual host, which is Gateway API precedence:
    Exact, then RegularExpression, then PathPrefix; longer paths first; more header matches
    first; then HTTPRoute order (here: creation order) and rule order."""
    m = rule.match
    kind = {"Exact": 0, "RegularExpression": 1, "PathPrefix": 2}[m.kind]
    return (kind, -len(m.path), -len(m.headers), rule.route, rule.index)


def virtual_hosts(rs):
    """{hostname: [rules in precedence order]}."""
    hosts = {}
    for route in rs.routes:
        for h in route.hostnames:
            hosts.setdefault(h, []).extend(route.rules)
    return {h: sorted(rules, key=precedence_key) for h, rules in hosts.items()}


def _request_host(hostname, rng):
    return hostname.replace("*", f"x{rng.randrange(1000)}", 1)


def _requests(rs, rng):
    vhosts = virtual_hosts(rs)
    names = sorted(vhosts)
    out = []
    classes = {"early": (0.0, 0.05), "middle": (0.45, 0.55), "late": (0.95, 1.0)}
    for klass, (lo, hi) in classes.items():
        for _ in range(16):
            host = rng.choice(names)
            ordered = vhosts[host]
            a = min(int(lo * len(ordered)), len(ordered) - 1)
            b = max(a + 1, int(hi * len(ordered)))
            rule = ordered[rng.randrange(a, b)]
            _method, path, headers = rule.sample
            out.append(Request(_request_host(host, rng), path, list(headers),
                               [svc for svc, _ in rule.backends], klass))
    with_catch_all = {h for h, rules in vhosts.items() if any(r.match.path == "/" for r in rules)}
    without = [h for h in names if h not in with_catch_all]
    for i in range(16):
        if i % 2 == 0 or not without:
            out.append(Request(f"unknown-{i}.example.org", "/api/v1/r1/items", [], [], "miss"))
        else:
            host = rng.choice(without)
            out.append(Request(_request_host(host, rng), f"/nothing-{i}/here", [], [], "miss"))
    return out


def gateway_yaml(rs):
    """The route set as Gateway API objects (one multi-document YAML string)."""
    docs = [
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
         "metadata": {"name": "gammaroute"},
         "spec": {"controllerName": "gammaroute.dev/config-pusher"}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
         "metadata": {"name": GATEWAY, "namespace": NAMESPACE},
         "spec": {"gatewayClassName": "gammaroute",
                  "listeners": [{"name": "http", "port": 80, "protocol": "HTTP",
                                 "allowedRoutes": {"namespaces": {"from": "Same"}}}]}},
    ]
    for i, svc in enumerate(BACKENDS):
        docs.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": svc, "namespace": NAMESPACE},
                     "spec": {"clusterIP": f"10.96.7.{i + 10}",
                              "ports": [{"name": "http", "port": BACKEND_PORT}]}})
    for route in rs.routes:
        rules = []
        for rule in route.rules:
            m = {"path": {"type": rule.match.kind, "value": rule.match.path}}
            if rule.match.headers:
                m["headers"] = [{"name": k, "value": v} for k, v in rule.match.headers]
            rules.append({"matches": [m], "backendRefs": [
                {"name": svc, "port": BACKEND_PORT, "weight": w} for svc, w in rule.backends]})
        docs.append({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                     "metadata": {"name": route.name, "namespace": NAMESPACE},
                     "spec": {"parentRefs": [{"name": GATEWAY}], "hostnames": route.hostnames,
                              "rules": rules}})
    # JSON is YAML: fast to write, exact to read back.
    return "\n---\n".join(json.dumps(d) for d in docs) + "\n"


def _native_match(m):
    """Envoy Gateway's translation of one HTTPRouteMatch (internal/xds/translator)."""
    if m.kind == "Exact":
        out = {"path": m.path}
    elif m.kind == "RegularExpression":
        out = {"safe_regex": {"regex": m.path}}
    elif m.path == "/":
        out = {"prefix": "/"}
    else:
        # Gateway API prefixes match whole path elements: /api matches /api and /api/x, not /apix.
        out = {"path_separated_prefix": m.path.rstrip("/")}
    if m.headers:
        out["headers"] = [{"name": k, "string_match": {"exact": v}} for k, v in m.headers]
    return out


def _native_action(backends):
    if len(backends) == 1:
        return {"cluster": cluster_name(backends[0][0])}
    return {"weighted_clusters": {"clusters": [
        {"name": cluster_name(svc), "weight": w} for svc, w in backends]}}


def native_route_config(rs):
    """The RouteConfiguration Envoy Gateway would program for the route set: a virtual host per
    hostname (wildcards as Envoy `*.` suffix domains), its routes in precedence order, weighted
    clusters for splits. Unknown hosts and unmatched paths get Envoy's 404."""
    vhosts = []
    for i, (host, rules) in enumerate(sorted(virtual_hosts(rs).items())):
        routes = [{"name": f"httproute/{NAMESPACE}/{rs.routes[r.route].name}/rule/{r.index}",
                   "match": _native_match(r.match), "route": _native_action(r.backends)}
                  for r in rules]
        vhosts.append({"name": f"vh-{i}", "domains": [host], "routes": routes})
    return {"name": "native", "virtual_hosts": vhosts}
