//! Scale of `translate`: 10,000 HTTPRoutes across 1,000 Services (issue #5: "well under a
//! second"). The objects are generated as the YAML a user would apply and loaded once; what is
//! timed is `translate(&store)`, the pure function every change re-runs.
//!
//! `cargo bench -p config-pusher --bench translate`
//!
//! Shape: 50 namespaces × 20 Services (each with a ClusterIP and one port); one Gateway listener
//! admitting all namespaces. 80% of the routes attach to the Gateway (200 distinct hostnames, a
//! 90/10 canary across two Services, a header-matched rule with a filter, timeouts and retry);
//! 20% are GAMMA routes (producer routes on a Service of their namespace, and consumer routes
//! on a Service of the next namespace). Before timing, the output is checked: one Gateway table,
//! 51 mesh tables (the 50 namespaces and the Gateway's `infra`), and every route Accepted with resolved refs.
//!
//! `TRANSLATE_BENCH_SCALE=1` (no criterion) times the issue-21 scale cases against that 10,000-route
//! case in the same run: 100,000 HTTPRoutes on one Gateway and one hostname, and 10,000 Services
//! in 10 namespaces with a producer route each (every namespace's mesh table holds all 10,000);
//! it prints the translate time, the ratio to the 10,000-route case and the tables' bytes.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

use config_pusher::source::files::{load_str, LoadReport};
use config_pusher::store::Store;
use config_pusher::translate::status::status_text;
use config_pusher::translate::{translate, Settings};
use criterion::Criterion;

/// The allocator of the config-pusher binary (`src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NAMESPACES: usize = 50;
const SERVICES_PER_NAMESPACE: usize = 20;
const ROUTES: usize = 10_000;

fn yaml() -> String {
    let mut y = String::from(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: c}\n\
         spec: {controllerName: gammaroute.dev/config-pusher}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: infra}\n\
         spec: {gatewayClassName: c, listeners: [{name: http, port: 80, protocol: HTTP, \
         allowedRoutes: {namespaces: {from: All}}}]}\n",
    );
    for n in 0..NAMESPACES {
        for s in 0..SERVICES_PER_NAMESPACE {
            let _ = write!(
                y,
                "---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc-{s}, namespace: ns-{n}}}\n\
                 spec: {{clusterIP: 10.1.{n}.{s}, ports: [{{name: http, port: 8080}}]}}\n"
            );
        }
    }
    for r in 0..ROUTES {
        let n = r % NAMESPACES;
        let s = (r / NAMESPACES) % SERVICES_PER_NAMESPACE;
        let t = (s + 1) % SERVICES_PER_NAMESPACE;
        let backends = format!(
            "[{{name: svc-{s}, port: 8080, weight: 90}}, {{name: svc-{t}, port: 8080, weight: 10}}]"
        );
        let (parent, hostnames) = match r % 10 {
            // GAMMA producer route: a Service of its own namespace.
            8 => (
                format!("{{group: \"\", kind: Service, name: svc-{s}, port: 8080}}"),
                String::new(),
            ),
            // GAMMA consumer route: a Service of the next namespace.
            9 => (
                format!(
                    "{{group: \"\", kind: Service, name: svc-{s}, namespace: ns-{}}}",
                    (n + 1) % NAMESPACES
                ),
                String::new(),
            ),
            _ => (
                "{name: gw, namespace: infra}".to_string(),
                format!("  hostnames: [h{}.example.com]\n", r % 200),
            ),
        };
        let _ = write!(
            y,
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
             metadata: {{name: r-{r}, namespace: ns-{n}}}\nspec:\n  parentRefs: [{parent}]\n{hostnames}\
             \x20 rules:\n\
             \x20 - matches: [{{path: {{type: PathPrefix, value: /r{r}/beta}}, headers: [{{name: x-beta, value: \"1\"}}]}}]\n\
             \x20   filters: [{{type: RequestHeaderModifier, requestHeaderModifier: {{set: [{{name: x-r, value: \"{r}\"}}]}}}}]\n\
             \x20   backendRefs: [{{name: svc-{t}, port: 8080}}]\n\
             \x20 - matches: [{{path: {{type: PathPrefix, value: /r{r}}}}}]\n\
             \x20   timeouts: {{request: 5s, backendRequest: 1s}}\n\
             \x20   retry: {{attempts: 2, codes: [503]}}\n\
             \x20   backendRefs: {backends}\n"
        );
    }
    y
}

fn store() -> Store {
    load(&yaml())
}

fn check(store: &Store) {
    let out = translate(store, &Settings::default());
    assert!(out.errors.is_empty(), "{:?}", out.errors.first());
    // The Gateway's table, and a mesh table per namespace (the 50 and the Gateway's `infra`).
    assert_eq!(out.tables.len(), 1 + NAMESPACES + 1);
    let routes = out.statuses.iter().filter(|d| d.kind == "HTTPRoute");
    let mut n = 0;
    for d in routes {
        for p in d.route_parents() {
            let types: Vec<(&str, &str)> = p
                .conditions
                .iter()
                .map(|c| (c.type_.as_str(), status_text(c.status)))
                .collect();
            assert_eq!(
                types,
                [("Accepted", "True"), ("ResolvedRefs", "True")],
                "{}",
                d.metadata.name
            );
        }
        n += 1;
    }
    assert_eq!(n, ROUTES);
}

/// 100,000 single-rule HTTPRoutes on one Gateway listener, all on `api.example.com` (API-gateway
/// paths), backends from a pool of 8 Services.
fn gateway_scale_yaml(routes: usize) -> String {
    let mut y = String::from(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: c}\n\
         spec: {controllerName: gammaroute.dev/config-pusher}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: api}\n\
         spec: {gatewayClassName: c, listeners: [{name: http, port: 80, protocol: HTTP}]}\n",
    );
    for s in 0..8 {
        let _ = write!(
            y,
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc-{s}, namespace: api}}\n\
             spec: {{clusterIP: 10.2.0.{s}, ports: [{{name: http, port: 8080}}]}}\n"
        );
    }
    for r in 0..routes {
        let kind = if r % 5 < 2 { "Exact" } else { "PathPrefix" };
        let _ = write!(
            y,
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
             metadata: {{name: r-{r}, namespace: api}}\nspec:\n  parentRefs: [{{name: gw}}]\n\
             \x20 hostnames: [api.example.com]\n\
             \x20 rules:\n\
             \x20 - matches: [{{path: {{type: {kind}, value: /api/v{}/r{r}}}}}]\n\
             \x20   backendRefs: [{{name: svc-{}, port: 8080}}]\n",
            1 + r % 3,
            r % 8
        );
    }
    y
}

/// 10,000 Services in 10 namespaces, each with one producer route (GAMMA) splitting 90/10.
fn mesh_scale_yaml(namespaces: usize, per_namespace: usize) -> String {
    let mut y = String::new();
    for n in 0..namespaces {
        for s in 0..per_namespace {
            let t = (s + 1) % per_namespace;
            let _ = write!(
                y,
                "---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc-{s}, namespace: ns-{n}}}\n\
                 spec: {{clusterIP: 10.{}.{}.{}, ports: [{{name: http, port: 8080}}]}}\n\
                 ---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
                 metadata: {{name: r-{s}, namespace: ns-{n}}}\nspec:\n\
                 \x20 parentRefs: [{{group: \"\", kind: Service, name: svc-{s}, port: 8080}}]\n\
                 \x20 rules:\n\
                 \x20 - backendRefs: [{{name: svc-{s}, port: 8080, weight: 90}}, {{name: svc-{t}, port: 8080, weight: 10}}]\n",
                3 + n,
                s / 250,
                s % 250
            );
        }
    }
    y
}

fn load(yaml: &str) -> Store {
    let mut store = Store::new();
    let mut report = LoadReport::default();
    load_str(&mut store, &mut report, "generated.yaml", yaml);
    assert!(report.errors.is_empty(), "{:?}", report.errors.first());
    store
}

/// Median wall time of `rounds` translations, and the last output.
fn timed_translate(store: &Store, rounds: usize) -> (f64, config_pusher::translate::Output) {
    let mut times = Vec::new();
    let mut out = None;
    for _ in 0..rounds {
        let started = Instant::now();
        out = Some(translate(store, &Settings::default()));
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], out.expect("rounds > 0"))
}

/// The scale cases against the 10,000-route case, each translated 3 times (median).
fn scale(base: &Store) {
    let (base_ms, _) = timed_translate(base, 3);
    println!(
        "| case | objects loaded in s | tables | route entries | translate ms (median of 3) | vs 10,000 routes / 1,000 Services | protobuf KiB | JSON KiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {ROUTES} routes, {} Services (baseline) | | | | {base_ms:.0} | 1.00× | | |",
        NAMESPACES * SERVICES_PER_NAMESPACE
    );
    let cases = [
        (
            "100,000 routes, one Gateway, one hostname",
            gateway_scale_yaml(100_000),
        ),
        (
            "10,000 Services (10 namespaces), a producer route each",
            mesh_scale_yaml(10, 1_000),
        ),
    ];
    for (name, yaml) in cases {
        let started = Instant::now();
        let store = load(&yaml);
        let loaded = started.elapsed().as_secs_f64();
        let (ms, out) = timed_translate(&store, 3);
        assert!(out.errors.is_empty(), "{name}: {:?}", out.errors.first());
        let entries: usize = out
            .tables
            .values()
            .map(|t| {
                let services: usize = t
                    .services
                    .iter()
                    .flat_map(|s| &s.ports)
                    .map(|p| p.attachments.len())
                    .sum();
                let listeners: usize = t.listeners.iter().map(|l| l.attachments.len()).sum();
                services + listeners
            })
            .sum();
        let proto: usize = out
            .tables
            .values()
            .map(|t| gammaroute_filter::table::encode_proto(t).len())
            .sum();
        let json: usize = out
            .tables
            .values()
            .map(|t| gammaroute_filter::table::encode_json(t).len())
            .sum();
        println!(
            "| {name} | {loaded:.1} | {} | {entries} | {ms:.0} | {:.2}× | {:.0} | {:.0} |",
            out.tables.len(),
            ms / base_ms,
            proto as f64 / 1024.0,
            json as f64 / 1024.0
        );
    }
}

fn main() {
    if std::env::var_os("TRANSLATE_BENCH_SCALE").is_some() {
        let base = store();
        check(&base);
        scale(&base);
        return;
    }
    let started = Instant::now();
    let store = store();
    let loaded = started.elapsed();
    check(&store);

    let mut c = Criterion::default().sample_size(10).configure_from_args();
    c.bench_function("translate/10000-routes-1000-services", |b| {
        b.iter(|| translate(black_box(&store), &Settings::default()))
    });
    c.final_summary();

    // A plain wall-clock figure too, for BENCHMARKS.md and for `cargo test --benches`.
    let started = Instant::now();
    let out = translate(&store, &Settings::default());
    let took = started.elapsed();
    println!(
        "translate: {ROUTES} HTTPRoutes across {} Services -> {} tables in {:.1} ms (loading the YAML: {:.1} ms)",
        NAMESPACES * SERVICES_PER_NAMESPACE,
        out.tables.len(),
        took.as_secs_f64() * 1e3,
        loaded.as_secs_f64() * 1e3
    );
}
