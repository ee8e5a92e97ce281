//! Focused translate tests (ReferenceGrant scope, mesh decisions); the broad coverage is in the
//! golden files.

use config_pusher::source::files::{load_str, LoadReport};
use config_pusher::store::Store;
use config_pusher::translate::{translate, Settings};
use gammaroute_filter::table::BackendTarget;

fn store(yaml: &str) -> Store {
    let mut s = Store::new();
    let mut r = LoadReport::default();
    load_str(&mut s, &mut r, "t.yaml", yaml);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    s
}

const BASE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: c}
spec: {controllerName: gammaroute.dev/config-pusher}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: app}
spec: {gatewayClassName: c, listeners: [{name: http, port: 80, protocol: HTTP}]}
---
apiVersion: v1
kind: Service
metadata: {name: front, namespace: app}
spec: {clusterIP: 10.0.0.1, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: data}
spec: {clusterIP: 10.0.0.2, ports: [{port: 5000}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: app}
spec:
  parentRefs: [{name: gw}, {group: "", kind: Service, name: front}]
  rules: [{backendRefs: [{name: db, namespace: data, port: 5000}]}]
"#;

fn target(out: &config_pusher::translate::Output, role: &str) -> BackendTarget {
    out.tables[role].routes[0].rules[0].backends[0]
        .target
        .clone()
}

#[test]
fn reference_grant_applies_to_gateway_parents_only() {
    let out = translate(&store(BASE), &Settings::default());
    assert!(matches!(
        target(&out, "gateway/app/gw"),
        BackendTarget::Unavailable { status: 500, .. }
    ));
    assert_eq!(
        target(&out, "mesh/app"),
        BackendTarget::Cluster("data/db:5000".into())
    );
    let parents = out
        .statuses
        .iter()
        .find(|d| d.kind == "HTTPRoute")
        .unwrap()
        .route_parents();
    assert_eq!(parents[0].conditions[1].reason.as_str(), "RefNotPermitted");
    assert_eq!(parents[1].conditions[1].reason.as_str(), "ResolvedRefs");
}

#[test]
fn reference_grant_by_name_and_revocation() {
    let grant = |to_name: &str| {
        format!(
            "{BASE}---\napiVersion: gateway.networking.k8s.io/v1\nkind: ReferenceGrant\nmetadata: {{name: g, namespace: data}}\nspec:\n  from: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: app}}]\n  to: [{{group: \"\", kind: Service{to_name}}}]\n"
        )
    };
    let out = translate(&store(&grant("")), &Settings::default());
    assert_eq!(
        target(&out, "gateway/app/gw"),
        BackendTarget::Cluster("data/db:5000".into())
    );
    let out = translate(&store(&grant(", name: db")), &Settings::default());
    assert_eq!(
        target(&out, "gateway/app/gw"),
        BackendTarget::Cluster("data/db:5000".into())
    );
    let out = translate(&store(&grant(", name: other")), &Settings::default());
    assert!(matches!(
        target(&out, "gateway/app/gw"),
        BackendTarget::Unavailable { status: 500, .. }
    ));
}

#[test]
fn every_namespace_gets_a_mesh_table_with_producer_routes() {
    let out = translate(&store(BASE), &Settings::default());
    let roles: Vec<&String> = out.tables.keys().collect();
    assert_eq!(roles, ["gateway/app/gw", "mesh/app", "mesh/data"]);
    assert_eq!(out.tables["mesh/data"].services.len(), 1);
    assert_eq!(out.tables["mesh/data"].services[0].name, "front");
}

#[test]
fn other_controllers_are_ignored() {
    let out = translate(
        &store(BASE),
        &Settings {
            controller_name: "example.com/x".into(),
        },
    );
    assert!(!out.tables.keys().any(|r| r.starts_with("gateway/")));
    assert!(!out
        .statuses
        .iter()
        .any(|d| d.kind == "GatewayClass" || d.kind == "Gateway"));
    // The Service parent is still ours (GAMMA has no class).
    assert_eq!(
        out.statuses
            .iter()
            .find(|d| d.kind == "HTTPRoute")
            .unwrap()
            .route_parents()
            .len(),
        1
    );
}

#[test]
fn durations_follow_gep_2257() {
    use config_pusher::translate::route::duration_ms;
    assert_eq!(duration_ms("t", "0s").unwrap(), 0);
    assert_eq!(duration_ms("t", "1h30m").unwrap(), 5_400_000);
    assert_eq!(duration_ms("t", "1500ms").unwrap(), 1500);
    assert!(duration_ms("t", "0").is_err());
    assert!(duration_ms("t", "1.5s").is_err());
    assert!(duration_ms("t", "-1s").is_err());
}

/// Found by the `yaml` fuzz target: a route hostname the CRD pattern refuses (`;` in a label)
/// used to reach the Gateway's table, which the filter then refused whole — one bad route took
/// every route of the Gateway down. Such an object is refused on load, naming its field, as the
/// API server would refuse it; the Gateway's other routes keep routing. The same for a listener's
/// hostname and name (SectionName), and a Service port's name.
#[test]
fn a_hostname_the_crd_refuses_is_refused_on_load_not_in_the_table() {
    let bad_route = r#"
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad, namespace: app}
spec:
  parentRefs: [{name: gw}]
  hostnames: [ok.example.com, "www.example.;com"]
  rules: [{backendRefs: [{name: front, port: 80}]}]
"#;
    let mut s = Store::new();
    let mut r = LoadReport::default();
    load_str(&mut s, &mut r, "t.yaml", &format!("{BASE}{bad_route}"));
    let [e] = r.errors.as_slice() else {
        panic!("{:?}", r.errors)
    };
    let shown = e.to_string();
    assert!(
        shown.contains(
            "HTTPRoute \"bad\": field `spec.hostnames[1]`: invalid value \"www.example.;com\""
        ),
        "{shown}"
    );
    assert!(s.http_routes.keys().all(|k| k.name != "bad"));
    let out = translate(&s, &Settings::default());
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(
        out.tables["gateway/app/gw"].routes.len(),
        1,
        "route r still routes"
    );

    let bad_listener = BASE.replace(
        "listeners: [{name: http, port: 80, protocol: HTTP}]",
        "listeners: [{name: http, port: 80, protocol: HTTP, hostname: \"a..example\"}]",
    );
    let mut s = Store::new();
    let mut r = LoadReport::default();
    load_str(&mut s, &mut r, "t.yaml", &bad_listener);
    assert!(
        r.errors
            .iter()
            .any(|e| e.to_string().contains("field `spec.listeners[0].hostname`")),
        "{:?}",
        r.errors
    );
    for (from, to, field) in [
        (
            "{name: http, port: 80",
            "{name: \"htt,p\", port: 80",
            "field `spec.listeners[0].name`",
        ),
        (
            "ports: [{port: 80}]",
            "ports: [{port: 80, name: \"We b\"}]",
            "field `spec.ports[0].name`",
        ),
    ] {
        let mut s = Store::new();
        let mut r = LoadReport::default();
        load_str(&mut s, &mut r, "t.yaml", &BASE.replace(from, to));
        assert!(
            r.errors.iter().any(|e| e.to_string().contains(field)),
            "{field}: {:?}",
            r.errors
        );
    }
}
