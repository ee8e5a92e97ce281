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
