//! The Kubernetes IO shell against a mock API server (`tower_test::mock::pair` behind
//! `kube::Client::new`, docs/architecture.md "Testing"): watchers → store, status patches, conflicts,
//! leader gating. A missing request shows up as a timeout, an extra one as an unexpected request.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use config_pusher::source::kube as kube_source;
use config_pusher::source::watcher::Debounce;
use config_pusher::source::Snapshot;
use config_pusher::status::kube::{self as status_kube, StatusPublisher, WriteOutcome, Writer};
use config_pusher::status::lease::{self, Elector, LeaseConfig};
use config_pusher::store::ObjectKey;
use config_pusher::translate::status::{
    Condition, ConditionType, Meta, ParentRef, Reason, RouteParentStatus, RouteStatus, Status,
    StatusDoc,
};
use config_pusher::translate::Output;
use http::{Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::timeout;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;
type Send = tower_test::mock::SendResponse<Response<Body>>;

const US: &str = "gammaroute.dev/config-pusher";

fn mock() -> (kube::Client, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(svc, "default"), handle)
}

fn respond(send: Send, code: StatusCode, body: &Value) {
    send.send_response(
        Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

fn ndjson(send: Send, events: &[Value]) {
    let mut bytes = Vec::new();
    for e in events {
        bytes.extend(serde_json::to_vec(e).unwrap());
        bytes.push(b'\n');
    }
    send.send_response(Response::builder().body(Body::from(bytes)).unwrap());
}

fn kube_status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "reason": reason, "code": code, "message": format!("mock: {reason}")})
}

async fn body_json(req: Request<Body>) -> Value {
    let bytes = req.into_body().collect_bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Watchers → store

fn route(name: &str, gateway: &str, created: &str) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
           "metadata": {"name": name, "namespace": "shop", "resourceVersion": "1", "generation": 1,
                        "creationTimestamp": created},
           "spec": {"parentRefs": [{"name": gateway}],
                    "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]},
           "status": {"parents": []}})
}

fn list(kind: &str, api_version: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": api_version, "kind": format!("{kind}List"),
           "metadata": {"resourceVersion": "10"}, "items": items})
}

/// The list/watch paths every kind is read from (`Api::all`).
const PATHS: [&str; 8] = [
    "/apis/gateway.networking.k8s.io/v1/gatewayclasses",
    "/apis/gateway.networking.k8s.io/v1/gateways",
    "/apis/gateway.networking.k8s.io/v1/httproutes",
    "/apis/gateway.networking.k8s.io/v1beta1/referencegrants",
    "/api/v1/services",
    "/apis/discovery.k8s.io/v1/endpointslices",
    "/api/v1/namespaces",
    "/api/v1/secrets",
];

/// What the mock API server answers for one path: LIST responses in order (the last one repeats),
/// then the first WATCH gets `watch_events`, later watches are held open (a quiet watch).
struct Script {
    lists: VecDeque<(StatusCode, Value)>,
    watch_events: Option<Vec<Value>>,
}

/// Serves `scripts` until the test ends; records every request as `(METHOD, path, watch?)`.
fn apiserver(
    mut handle: Handle,
    mut scripts: BTreeMap<&'static str, Script>,
) -> Arc<Mutex<Vec<(String, String, bool)>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some((req, send)) = handle.next_request().await {
            let path = req.uri().path().to_string();
            let watch = req.uri().query().unwrap_or_default().contains("watch=true");
            seen.lock()
                .unwrap()
                .push((req.method().to_string(), path.clone(), watch));
            let Some(script) = scripts.get_mut(path.as_str()) else {
                respond(send, StatusCode::NOT_FOUND, &kube_status(404, "NotFound"));
                continue;
            };
            if watch {
                match script.watch_events.take() {
                    Some(events) if !events.is_empty() => ndjson(send, &events),
                    _ => held.push(send),
                }
            } else {
                let (code, body) = if script.lists.len() > 1 {
                    script.lists.pop_front().unwrap()
                } else {
                    script.lists.front().cloned().unwrap()
                };
                respond(send, code, &body);
            }
        }
    });
    log
}

fn empty_scripts() -> BTreeMap<&'static str, Script> {
    let kinds = [
        ("GatewayClass", "gateway.networking.k8s.io/v1"),
        ("Gateway", "gateway.networking.k8s.io/v1"),
        ("HTTPRoute", "gateway.networking.k8s.io/v1"),
        ("ReferenceGrant", "gateway.networking.k8s.io/v1beta1"),
        ("Service", "v1"),
        ("EndpointSlice", "discovery.k8s.io/v1"),
        ("Namespace", "v1"),
        ("Secret", "v1"),
    ];
    PATHS
        .iter()
        .zip(kinds)
        .map(|(path, (kind, av))| {
            (
                *path,
                Script {
                    lists: VecDeque::from([(StatusCode::OK, list(kind, av, vec![]))]),
                    watch_events: None,
                },
            )
        })
        .collect()
}

async fn next_snapshot(rx: &mut watch::Receiver<Arc<Snapshot>>) -> Arc<Snapshot> {
    timeout(Duration::from_secs(10), rx.changed())
        .await
        .expect("a snapshot within 10 s")
        .expect("source alive");
    rx.borrow_and_update().clone()
}

fn fast() -> Debounce {
    Debounce::new(Duration::from_millis(50), Duration::from_secs(1))
}

#[tokio::test]
async fn initial_list_and_watch_events_reach_the_store_and_bad_objects_are_skipped() {
    let (client, handle) = mock();
    let mut scripts = empty_scripts();
    let mut broken = route("broken", "gw", "2026-01-01T00:00:03Z");
    broken["spec"]["rules"] = json!("not-a-list");
    let routes = scripts
        .get_mut("/apis/gateway.networking.k8s.io/v1/httproutes")
        .unwrap();
    routes.lists = VecDeque::from([(
        StatusCode::OK,
        list(
            "HTTPRoute",
            "gateway.networking.k8s.io/v1",
            vec![
                route("a", "gw", "2026-01-01T00:00:01Z"),
                broken,
                route("gone", "gw", "2026-01-01T00:00:02Z"),
            ],
        ),
    )]);
    routes.watch_events = Some(vec![
        json!({"type": "ADDED", "object": route("b", "gw", "2026-01-01T00:00:04Z")}),
        json!({"type": "DELETED", "object": route("gone", "gw", "2026-01-01T00:00:02Z")}),
    ]);
    scripts.get_mut("/api/v1/services").unwrap().lists = VecDeque::from([(
        StatusCode::OK,
        list(
            "Service",
            "v1",
            vec![json!({"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "3"},
                        "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}})],
        ),
    )]);
    // A TLS Secret: only tls.crt / tls.key are kept, and the key never shows in Debug output.
    scripts.get_mut("/api/v1/secrets").unwrap().lists = VecDeque::from([(
        StatusCode::OK,
        list(
            "Secret",
            "v1",
            vec![
                json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                        "metadata": {"name": "cert", "namespace": "shop", "resourceVersion": "4"},
                        // "chain" and "hidden-key", base64.
                        "data": {"tls.crt": "Y2hhaW4=", "tls.key": "aGlkZGVuLWtleQ=="}}),
            ],
        ),
    )]);
    let log = apiserver(handle, scripts);

    let (tx, mut rx) = watch::channel(Snapshot::pending());
    let source = tokio::spawn(kube_source::run(client, tx, fast()));

    // Debouncing may fold the list and the watch events into one snapshot or publish them apart;
    // wait for the final state.
    let want: BTreeSet<ObjectKey> =
        [ObjectKey::new("shop", "a"), ObjectKey::new("shop", "b")].into();
    let mut snapshot = next_snapshot(&mut rx).await;
    while snapshot
        .store
        .http_routes
        .keys()
        .cloned()
        .collect::<BTreeSet<_>>()
        != want
    {
        snapshot = next_snapshot(&mut rx).await;
    }
    assert!(snapshot
        .store
        .services
        .contains_key(&ObjectKey::new("shop", "web")));
    let secret = &snapshot.store.secrets[&ObjectKey::new("shop", "cert")].object;
    assert_eq!(secret.certificate.as_deref(), Some(&b"chain"[..]));
    assert_eq!(secret.private_key.as_ref().unwrap().expose(), b"hidden-key");
    assert!(!format!("{:?}", snapshot.store).contains("hidden-key"));
    let problems: Vec<String> = snapshot.problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("HTTPRoute shop/broken: field `spec.rules`"),
        "{problems:?}"
    );
    // Every kind was listed from its own URL (ReferenceGrant at v1beta1) and then watched.
    let log = log.lock().unwrap().clone();
    for path in PATHS {
        assert!(
            log.iter().any(|(m, p, w)| m == "GET" && p == path && !w),
            "LIST {path}: {log:?}"
        );
        assert!(
            log.iter().any(|(m, p, w)| m == "GET" && p == path && *w),
            "WATCH {path}: {log:?}"
        );
    }
    source.abort();
}

#[tokio::test]
async fn missing_crd_is_reported_and_retried() {
    let (client, handle) = mock();
    let mut scripts = empty_scripts();
    let grants = scripts
        .get_mut("/apis/gateway.networking.k8s.io/v1beta1/referencegrants")
        .unwrap();
    grants.lists = VecDeque::from([
        (StatusCode::NOT_FOUND, kube_status(404, "NotFound")),
        (
            StatusCode::OK,
            list(
                "ReferenceGrant",
                "gateway.networking.k8s.io/v1beta1",
                vec![
                    json!({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
                    "metadata": {"name": "g", "namespace": "backend", "resourceVersion": "4"},
                    "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "shop"}],
                             "to": [{"group": "", "kind": "Service"}]}}),
                ],
            ),
        ),
    ]);
    let log = apiserver(handle, scripts);
    let (tx, mut rx) = watch::channel(Snapshot::pending());
    let source = tokio::spawn(kube_source::run(client, tx, fast()));

    // First: everything else loads; the failing kind is a problem, not a crash.
    let first = next_snapshot(&mut rx).await;
    let problems: Vec<String> = first.problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("watch ReferenceGrant:"),
        "{problems:?}"
    );
    assert!(problems[0].contains("CRD installed"), "{problems:?}");
    assert!(first.store.reference_grants.is_empty());

    // Then the backoff retry lists it (the CRD was installed meanwhile).
    let second = next_snapshot(&mut rx).await;
    assert!(second.problems.is_empty(), "{:?}", second.problems);
    assert!(second
        .store
        .reference_grants
        .contains_key(&ObjectKey::new("backend", "g")));
    let lists = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, p, w)| p.ends_with("/referencegrants") && !w)
        .count();
    assert_eq!(lists, 2);
    source.abort();
}

// ---------------------------------------------------------------------------------------------
// serve --kube: never publish from a partial view, fail visibly

/// A free port on 127.0.0.1 (bound and released: `serve::run` does not report its address).
fn free_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn serve_config(listen: std::net::SocketAddr) -> config_pusher::serve::Config {
    config_pusher::serve::Config::local(listen)
}

/// One `GET` (`Connection: close`): status and body; `None` while nothing listens.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(req.as_bytes()).ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).ok()?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text.split(' ').nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
        Some((status, body))
    })
    .await
    .ok()?
}

#[tokio::test]
async fn serve_publishes_nothing_until_every_kind_has_listed() {
    let (client, handle) = mock();
    let mut scripts = empty_scripts();
    // The first Services list fails with a 500 (transient); the watcher retries after ~0.8 s.
    scripts.get_mut("/api/v1/services").unwrap().lists = VecDeque::from([
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            kube_status(500, "InternalError"),
        ),
        (
            StatusCode::OK,
            list(
                "Service",
                "v1",
                vec![json!({"apiVersion": "v1", "kind": "Service",
                            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "3"},
                            "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}})],
            ),
        ),
    ]);
    scripts
        .get_mut("/apis/gateway.networking.k8s.io/v1/httproutes")
        .unwrap()
        .lists = VecDeque::from([(
        StatusCode::OK,
        list(
            "HTTPRoute",
            "gateway.networking.k8s.io/v1",
            vec![
                json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                        "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "2", "generation": 1},
                        "spec": {"parentRefs": [{"kind": "Service", "group": "", "name": "web"}],
                                 "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}}),
            ],
        ),
    )]);
    // A CRD that is not installed is a definitive answer: it counts as listed and empty.
    scripts.remove("/apis/gateway.networking.k8s.io/v1beta1/referencegrants");
    let log = apiserver(handle, scripts);
    let options = config_pusher::kubernetes::RunOptions {
        controller_name: US.into(),
        lease: None,
        resync: Duration::from_secs(60),
        debounce: fast(),
        provision: None,
    };
    let running = config_pusher::kubernetes::start(client, options);
    let addr = free_addr();
    let served = tokio::spawn(config_pusher::serve::run(
        serve_config(addr),
        running.snapshots,
        running.statuses,
    ));

    // While Services are unknown: not ready, no table, no status written.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let lists = |log: &[(String, String, bool)]| {
        log.iter()
            .filter(|(m, p, w)| m == "GET" && p == "/api/v1/services" && !w)
            .count()
    };
    assert_eq!(lists(&log.lock().unwrap()), 1, "still backing off");
    assert_eq!(http_get(addr, "/readyz").await.map(|r| r.0), Some(503));
    assert_eq!(
        http_get(addr, "/v1/tables/mesh/shop").await.map(|r| r.0),
        Some(503)
    );

    // Then: ready, and the first table ever served routes to the Service.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while http_get(addr, "/readyz").await.map(|r| r.0) != Some(200) {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (code, body) = http_get(addr, "/v1/tables/mesh/shop").await.unwrap();
    assert_eq!(code, 200, "{body}");
    let table = gammaroute_filter::table::decode_json(body.as_bytes()).unwrap();
    assert_eq!(table.routes.len(), 1, "{body}");
    assert!(!body.contains("\"unavailable\""), "{body}");
    let (_, status) = http_get(addr, "/v1/status?format=json").await.unwrap();
    assert!(status.contains("CRD installed"), "{status}");
    assert!(!status.contains("BackendNotFound"), "{status}");
    // No status was written before the Services were listed.
    let log = log.lock().unwrap().clone();
    let second_list = log
        .iter()
        .enumerate()
        .filter(|(_, (m, p, w))| m == "GET" && p == "/api/v1/services" && !w)
        .nth(1)
        .map(|(i, _)| i)
        .expect("a second Services list");
    assert!(
        log[..second_list]
            .iter()
            .all(|(m, p, _)| m == "GET" && !p.ends_with("/status")),
        "{log:?}"
    );
    served.abort();
}

#[tokio::test]
async fn serve_exits_with_an_error_when_translation_stops() {
    let (tx, rx) = watch::channel(Snapshot::new(
        Default::default(),
        vec![],
        std::time::Instant::now(),
    ));
    let addr = free_addr();
    let served = tokio::spawn(config_pusher::serve::run(
        serve_config(addr),
        rx,
        config_pusher::serve::NoStatus,
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while http_get(addr, "/readyz").await.map(|r| r.0) != Some(200) {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The source (and with it the translation loop) ends.
    drop(tx);
    let result = timeout(Duration::from_secs(5), served)
        .await
        .expect("serve returns instead of serving stale tables")
        .unwrap();
    let e = result.expect_err("an error: the exit code is not 0");
    assert!(
        matches!(
            e,
            config_pusher::serve::ServeError::Stopped(config_pusher::serve::Stopped::SourceEnded)
        ),
        "{e}"
    );
    assert_eq!(http_get(addr, "/readyz").await, None, "no longer answering");
}

// ---------------------------------------------------------------------------------------------
// Status writer

const ROUTE_PATH: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/web";

fn our_doc(generation: i64) -> StatusDoc {
    StatusDoc {
        api_version: "gateway.networking.k8s.io/v1",
        kind: "HTTPRoute",
        metadata: Meta {
            namespace: Some("shop".into()),
            name: "web".into(),
        },
        status: Status::HttpRoute(RouteStatus {
            parents: vec![RouteParentStatus {
                parent_ref: ParentRef {
                    group: "gateway.networking.k8s.io".into(),
                    kind: "Gateway".into(),
                    namespace: None,
                    name: "gw".into(),
                    section_name: None,
                    port: None,
                },
                controller_name: US.into(),
                conditions: vec![Condition::new(
                    ConditionType::Accepted,
                    true,
                    Reason::Accepted,
                    "accepted",
                    Some(generation),
                )],
            }],
        }),
    }
}

fn istio_entry(name: &str) -> Value {
    json!({"parentRef": {"group": "", "kind": "Service", "name": name},
           "controllerName": "istio.io/gateway-controller",
           "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                           "lastTransitionTime": "2025-01-01T00:00:00Z"}]})
}

fn live_route(rv: &str, generation: i64, parents: Vec<Value>) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
           "metadata": {"name": "web", "namespace": "shop", "resourceVersion": rv, "generation": generation},
           "spec": {"parentRefs": [{"name": "gw"}]},
           "status": {"parents": parents}})
}

/// Nothing arrives within `ms` (a dropped client counts as nothing).
async fn assert_no_request(handle: &mut Handle, ms: u64, why: &str) {
    if let Ok(Some((req, _))) = timeout(Duration::from_millis(ms), handle.next_request()).await {
        panic!("{why}: unexpected {} {}", req.method(), req.uri());
    }
}

async fn expect(handle: &mut Handle, method: &str, path: &str) -> (Request<Body>, Send) {
    let (req, send) = timeout(Duration::from_secs(5), handle.next_request())
        .await
        .unwrap_or_else(|_| panic!("no {method} {path}"))
        .expect("client alive");
    assert_eq!((req.method().as_str(), req.uri().path()), (method, path));
    (req, send)
}

/// A status write of `our_doc(1)` under way, its first read answered with the live route
/// (resourceVersion 5) carrying another controller's `entry`.
async fn write_started(
    entry: Value,
) -> (
    Handle,
    tokio::task::JoinHandle<Result<WriteOutcome, status_kube::WriteError>>,
) {
    let (client, mut handle) = mock();
    let writer = Writer::new(client, US);
    let write =
        tokio::spawn(async move { writer.write(&our_doc(1), "2026-01-01T00:00:00Z").await });
    let (_, send) = expect(&mut handle, "GET", ROUTE_PATH).await;
    respond(send, StatusCode::OK, &live_route("5", 1, vec![entry]));
    (handle, write)
}

#[tokio::test]
async fn status_patch_goes_to_the_status_url_and_keeps_other_controllers() {
    let (mut handle, write) = write_started(istio_entry("web")).await;
    let (req, send) = expect(&mut handle, "PATCH", &format!("{ROUTE_PATH}/status")).await;
    assert_eq!(
        req.headers()["content-type"],
        "application/merge-patch+json"
    );
    let body = body_json(req).await;
    assert_eq!(body["metadata"]["resourceVersion"], "5");
    let parents = body["status"]["parents"].as_array().unwrap();
    assert_eq!(parents.len(), 2);
    assert_eq!(
        parents[0],
        istio_entry("web"),
        "other controller's entry intact"
    );
    assert_eq!(parents[1]["controllerName"], US);
    assert_eq!(parents[1]["parentRef"]["name"], "gw");
    assert_eq!(parents[1]["conditions"][0]["observedGeneration"], 1);
    assert_eq!(
        parents[1]["conditions"][0]["lastTransitionTime"],
        "2026-01-01T00:00:00Z"
    );
    respond(send, StatusCode::OK, &live_route("6", 1, parents.clone()));
    assert_eq!(write.await.unwrap().unwrap(), WriteOutcome::Patched);
}

#[tokio::test]
async fn conflict_is_retried_with_a_fresh_read() {
    let (mut handle, write) = write_started(istio_entry("a")).await;
    let (req, send) = expect(&mut handle, "PATCH", &format!("{ROUTE_PATH}/status")).await;
    assert_eq!(body_json(req).await["metadata"]["resourceVersion"], "5");
    respond(send, StatusCode::CONFLICT, &kube_status(409, "Conflict"));
    // Meanwhile another controller added its entry.
    let (_, send) = expect(&mut handle, "GET", ROUTE_PATH).await;
    respond(
        send,
        StatusCode::OK,
        &live_route("7", 1, vec![istio_entry("a"), istio_entry("b")]),
    );
    let (req, send) = expect(&mut handle, "PATCH", &format!("{ROUTE_PATH}/status")).await;
    let body = body_json(req).await;
    assert_eq!(body["metadata"]["resourceVersion"], "7");
    let parents = body["status"]["parents"].as_array().unwrap();
    assert_eq!(parents[..2], [istio_entry("a"), istio_entry("b")]);
    assert_eq!(parents.len(), 3);
    respond(send, StatusCode::OK, &live_route("8", 1, parents.clone()));
    assert_eq!(write.await.unwrap().unwrap(), WriteOutcome::Patched);
}

#[tokio::test]
async fn no_patch_when_only_the_time_differs_and_stale_generations_are_skipped() {
    let (client, mut handle) = mock();
    let writer = Writer::new(client, US);
    // What an earlier write left: ours with an older lastTransitionTime.
    let written = config_pusher::status::desired(
        &json!({"parents": [istio_entry("web")]}),
        &our_doc(1),
        US,
        "2025-06-01T00:00:00Z",
    )
    .unwrap();
    let w = writer.clone();
    let write = tokio::spawn(async move { w.write(&our_doc(1), "2026-01-01T00:00:00Z").await });
    let (_, send) = expect(&mut handle, "GET", ROUTE_PATH).await;
    respond(
        send,
        StatusCode::OK,
        &live_route("5", 1, written["parents"].as_array().unwrap().clone()),
    );
    assert_eq!(write.await.unwrap().unwrap(), WriteOutcome::Unchanged);

    // The route changed (generation 2) after this translation: skip, a newer one is coming.
    let write =
        tokio::spawn(async move { writer.write(&our_doc(1), "2026-01-01T00:00:00Z").await });
    let (_, send) = expect(&mut handle, "GET", ROUTE_PATH).await;
    respond(send, StatusCode::OK, &live_route("9", 2, vec![]));
    assert_eq!(write.await.unwrap().unwrap(), WriteOutcome::Stale);

    // Neither sent a PATCH.
    assert_no_request(&mut handle, 200, "no further request").await;
}

/// The status writer on the mock API server, leading or not, with a full reconcile far away.
fn start_writer(
    leader: bool,
) -> (
    StatusPublisher,
    watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
    Handle,
) {
    let (client, handle) = mock();
    let (publisher, outputs) = StatusPublisher::new();
    let (leader_tx, leader_rx) = watch::channel(leader);
    let runner = tokio::spawn(status_kube::run(
        Writer::new(client, US),
        outputs,
        leader_rx,
        Duration::from_secs(3600),
    ));
    (publisher, leader_tx, runner, handle)
}

/// A translation that produced only `docs`.
fn statuses(docs: Vec<StatusDoc>) -> Output {
    Output {
        statuses: docs,
        ..Output::default()
    }
}

#[tokio::test]
async fn only_the_lease_holder_writes_status() {
    let (publisher, leader_tx, runner, mut handle) = start_writer(false);
    publisher.publish(&statuses(vec![our_doc(1)]), Default::default());
    assert_no_request(
        &mut handle,
        300,
        "a replica without the lease must not touch status",
    )
    .await;

    leader_tx.send(true).unwrap();
    let (_, send) = expect(&mut handle, "GET", ROUTE_PATH).await;
    respond(send, StatusCode::OK, &live_route("5", 1, vec![]));
    let (_, send) = expect(&mut handle, "PATCH", &format!("{ROUTE_PATH}/status")).await;
    respond(send, StatusCode::OK, &live_route("6", 1, vec![]));

    // Losing the lease stops writing, even for a new translation.
    leader_tx.send(false).unwrap();
    tokio::task::yield_now().await;
    publisher.publish(&statuses(vec![our_doc(2)]), Default::default());
    assert_no_request(&mut handle, 300, "no writes after losing the lease").await;
    runner.abort();
}

#[tokio::test]
async fn writing_stops_the_moment_the_lease_is_lost() {
    let (publisher, leader_tx, runner, mut handle) = start_writer(true);
    let mut second = our_doc(1);
    second.metadata.name = "web2".into();
    publisher.publish(&statuses(vec![our_doc(1), second]), Default::default());
    let (_, send) = expect(&mut handle, "GET", ROUTE_PATH).await;
    respond(send, StatusCode::OK, &live_route("5", 1, vec![]));
    let (_, send) = expect(&mut handle, "PATCH", &format!("{ROUTE_PATH}/status")).await;
    // The Lease is lost while the first object's patch is in flight.
    leader_tx.send(false).unwrap();
    tokio::task::yield_now().await;
    respond(send, StatusCode::OK, &live_route("6", 1, vec![]));
    assert_no_request(&mut handle, 300, "nothing after losing the lease").await;
    runner.abort();
}

#[tokio::test]
async fn statuses_are_written_from_the_watch_cache_without_a_get() {
    let (publisher, _leader, runner, mut handle) = start_writer(true);
    let key = (
        config_pusher::store::Kind::HttpRoute,
        ObjectKey::new("shop", "web"),
    );
    let watched = |rv: &str, status: Value| {
        Arc::new(config_pusher::source::LiveObjects::from([(
            key.clone(),
            config_pusher::source::Live {
                resource_version: Some(rv.into()),
                generation: Some(1),
                status,
            },
        )]))
    };
    let output = statuses(vec![our_doc(1)]);
    publisher.publish(
        &output,
        watched("5", json!({"parents": [istio_entry("web")]})),
    );
    // Straight to the PATCH, with the watch's resourceVersion, keeping the other entry.
    let (req, send) = expect(&mut handle, "PATCH", &format!("{ROUTE_PATH}/status")).await;
    let body = body_json(req).await;
    assert_eq!(body["metadata"]["resourceVersion"], "5");
    let written = body["status"].clone();
    assert_eq!(written["parents"][0], istio_entry("web"));
    respond(send, StatusCode::OK, &live_route("6", 1, vec![]));
    // The watch delivers what we wrote; the next translation finds nothing to do: no request.
    publisher.publish(&output, watched("6", written));
    assert_no_request(&mut handle, 300, "nothing to write, nothing to read").await;
    runner.abort();
}

// ---------------------------------------------------------------------------------------------
// Lease

const LEASE_PATH: &str =
    "/apis/coordination.k8s.io/v1/namespaces/gammaroute-system/leases/config-pusher-status";

fn lease(holder: &str, renewed: &str, rv: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": "config-pusher-status", "namespace": "gammaroute-system", "resourceVersion": rv},
           "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                    "renewTime": renewed, "leaseTransitions": 3}})
}

/// One election round of `elector` on `api`, in a task (the mock answers meanwhile).
fn round(
    mut elector: Elector,
    api: &kube::Api<k8s_openapi::api::coordination::v1::Lease>,
) -> tokio::task::JoinHandle<(Elector, Result<bool, kube::Error>)> {
    let api = api.clone();
    tokio::spawn(async move {
        let r = elector.round(&api, std::time::Instant::now()).await;
        (elector, r)
    })
}

#[tokio::test]
async fn lease_is_created_renewed_respected_and_raced() {
    let (client, mut handle) = mock();
    let api: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(client, "gammaroute-system");
    let mut cfg = LeaseConfig::new("gammaroute-system", "pod-a");
    cfg.duration = Duration::from_millis(600);
    let elector = Elector::new(cfg);

    // No lease: created with us as holder.
    let t = round(elector, &api);
    let (_, send) = expect(&mut handle, "GET", LEASE_PATH).await;
    respond(send, StatusCode::NOT_FOUND, &kube_status(404, "NotFound"));
    let (req, send) = expect(
        &mut handle,
        "POST",
        "/apis/coordination.k8s.io/v1/namespaces/gammaroute-system/leases",
    )
    .await;
    let body = body_json(req).await;
    assert_eq!(body["spec"]["holderIdentity"], "pod-a");
    respond(send, StatusCode::CREATED, &body);
    let (elector, held) = t.await.unwrap();
    assert!(held.unwrap());
    assert!(elector.held(std::time::Instant::now()));

    // pod-b holds it now, with a renewTime from years ago (its clock is off): that says nothing
    // about expiry. Not ours, nothing written, and we stop counting as the holder.
    let skewed = lease("pod-b", "2000-01-01T00:00:00.000000Z", "4");
    let t = round(elector, &api);
    let (_, send) = expect(&mut handle, "GET", LEASE_PATH).await;
    respond(send, StatusCode::OK, &skewed);
    let (elector, held) = t.await.unwrap();
    assert!(!held.unwrap());
    assert!(!elector.held(std::time::Instant::now()));
    // Seen unchanged for less than leaseDurationSeconds of our time (the mock's 15 s): wait.
    let t = round(elector, &api);
    let (_, send) = expect(&mut handle, "GET", LEASE_PATH).await;
    respond(send, StatusCode::OK, &skewed);
    let (elector, held) = t.await.unwrap();
    assert!(!held.unwrap());
    assert_no_request(&mut handle, 100, "no write while pod-b's claim runs").await;

    // A Lease whose holder stopped renewing for a full duration of our time: taken over with a
    // replace carrying the resourceVersion read; a racing winner makes it a 409: "not ours".
    let mut short = lease("pod-b", "2100-01-01T00:00:00.000000Z", "5");
    short["spec"]["leaseDurationSeconds"] = json!(1);
    let t = round(elector, &api);
    let (_, send) = expect(&mut handle, "GET", LEASE_PATH).await;
    respond(send, StatusCode::OK, &short);
    let (elector, held) = t.await.unwrap();
    assert!(
        !held.unwrap(),
        "first seen: wait, even with a renewTime in the future"
    );
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let t = round(elector, &api);
    let (_, send) = expect(&mut handle, "GET", LEASE_PATH).await;
    respond(send, StatusCode::OK, &short);
    let (req, send) = expect(&mut handle, "PUT", LEASE_PATH).await;
    let body = body_json(req).await;
    assert_eq!(body["metadata"]["resourceVersion"], "5");
    assert_eq!(body["spec"]["holderIdentity"], "pod-a");
    assert_eq!(body["spec"]["leaseTransitions"], 4);
    respond(send, StatusCode::CONFLICT, &kube_status(409, "Conflict"));
    let (_, held) = t.await.unwrap();
    assert!(!held.unwrap());
    assert_no_request(&mut handle, 100, "no further request").await;
}

#[tokio::test]
async fn an_unanswered_renewal_ends_holding_on_time() {
    let (client, mut handle) = mock();
    let api: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(client, "gammaroute-system");
    let mut cfg = LeaseConfig::new("gammaroute-system", "pod-a");
    cfg.duration = Duration::from_millis(600); // holding lasts 400 ms after a renewal starts
    cfg.retry = Duration::from_millis(100);
    let (held_tx, mut held) = watch::channel(false);
    let election = tokio::spawn(lease::run(api, cfg, held_tx));
    let started = std::time::Instant::now();
    let (_, send) = expect(&mut handle, "GET", LEASE_PATH).await;
    respond(send, StatusCode::NOT_FOUND, &kube_status(404, "NotFound"));
    let (req, send) = expect(
        &mut handle,
        "POST",
        "/apis/coordination.k8s.io/v1/namespaces/gammaroute-system/leases",
    )
    .await;
    let body = body_json(req).await;
    respond(send, StatusCode::CREATED, &body);
    timeout(Duration::from_secs(2), held.wait_for(|h| *h))
        .await
        .expect("held")
        .unwrap();
    // The renewal's read gets no answer (the API server is unreachable).
    let (_unanswered, _send) = expect(&mut handle, "GET", LEASE_PATH).await;
    timeout(Duration::from_secs(2), held.wait_for(|h| !*h))
        .await
        .expect("holding must end while the renewal hangs")
        .unwrap();
    let lost = started.elapsed();
    assert!(lost < Duration::from_millis(550), "held for {lost:?}");
    election.abort();
}

/// Against a real cluster (kind or k3d) with the Gateway API CRDs and config-pusher's manifests:
///
/// ```sh
/// kind create cluster --name gammaroute
/// kubectl apply -f /path/to/gateway-api/crds/experimental      # or the v1.5+ release bundle
/// kubectl apply -k config-pusher/deploy
/// cargo test -p config-pusher --test kube -- --ignored
/// ```
///
/// Applies a Gateway (class `gammaroute`) and an HTTPRoute in a temporary namespace, runs the
/// source + translate + writer in-process with the current KUBECONFIG, and waits for the route's
/// `status.parents` to carry our `Accepted=True`.
#[tokio::test]
#[ignore = "needs a Kubernetes cluster (kind/k3d) with the Gateway API CRDs; see the doc comment"]
async fn real_cluster_route_status() {
    use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
    let client = kube::Client::try_default()
        .await
        .expect("KUBECONFIG or in-cluster config");
    let ns = format!("gammaroute-e2e-{}", std::process::id());
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .unwrap();
    let gw_ar = kube_source::api_resource(config_pusher::store::Kind::Gateway);
    let route_ar = kube_source::api_resource(config_pusher::store::Kind::HttpRoute);
    let gateways: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &gw_ar);
    let routes: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &route_ar);
    gateways
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "metadata": {"name": "gw"},
                "spec": {"gatewayClassName": "gammaroute",
                         "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    routes
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": {"name": "web"},
                "spec": {"parentRefs": [{"name": "gw"}], "rules": [{}]}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();

    let (tx, mut rx) = watch::channel(Snapshot::pending());
    let source = tokio::spawn(kube_source::run(
        client.clone(),
        tx,
        kube_source::default_debounce(),
    ));
    let writer = Writer::new(client.clone(), US);
    let (_leader, leading) = watch::channel(true);
    let mut accepted = false;
    for _ in 0..30 {
        let snapshot = next_snapshot(&mut rx).await;
        let output = config_pusher::translate::translate(&snapshot.store, &Default::default());
        writer
            .write_all(
                &output,
                &snapshot.live,
                &mut BTreeSet::new(),
                &status_kube::now(),
                &leading,
            )
            .await;
        let live = routes.get("web").await.unwrap();
        accepted = live.data["status"]["parents"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| {
                p["controllerName"] == US
                    && p["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == "Accepted" && c["status"] == "True")
            });
        if accepted {
            break;
        }
    }
    source.abort();
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        accepted,
        "HTTPRoute {ns}/web never got Accepted=True from {US}"
    );
}

// ---------------------------------------------------------------------------------------------
// check --kube / explain --kube: the same watchers, read once

#[tokio::test]
async fn read_once_gives_check_and_explain_what_serve_sees() {
    let (client, handle) = mock();
    let mut scripts = empty_scripts();
    let object = |kind: &str, name: &str, spec: Value| {
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": kind,
               "metadata": {"name": name, "namespace": "shop", "resourceVersion": "1"},
               "spec": spec})
    };
    let mut broken = route("broken", "gw", "2026-01-01T00:00:03Z");
    broken["spec"]["rules"] = json!("not-a-list");
    let lists: [(&str, &str, Vec<Value>); 4] = [
        (
            "/apis/gateway.networking.k8s.io/v1/gatewayclasses",
            "GatewayClass",
            vec![
                json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                        "metadata": {"name": "gammaroute", "resourceVersion": "1"},
                        "spec": {"controllerName": US}}),
            ],
        ),
        (
            "/apis/gateway.networking.k8s.io/v1/gateways",
            "Gateway",
            vec![object(
                "Gateway",
                "gw",
                json!({"gatewayClassName": "gammaroute",
                       "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}),
            )],
        ),
        (
            "/apis/gateway.networking.k8s.io/v1/httproutes",
            "HTTPRoute",
            vec![route("a", "gw", "2026-01-01T00:00:01Z"), broken],
        ),
        (
            "/api/v1/services",
            "Service",
            vec![json!({"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "3"},
                        "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}})],
        ),
    ];
    for (path, kind, items) in lists {
        let api_version = if kind == "Service" {
            "v1"
        } else {
            "gateway.networking.k8s.io/v1"
        };
        scripts.get_mut(path).unwrap().lists =
            VecDeque::from([(StatusCode::OK, list(kind, api_version, items))]);
    }
    apiserver(handle, scripts);

    let snapshot = config_pusher::kubernetes::read_once(client, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(snapshot.complete);
    let output = config_pusher::translate::translate(
        &snapshot.store,
        &config_pusher::translate::Settings::default(),
    );
    let load = config_pusher::source::files::LoadReport::of_snapshot(&snapshot);
    // check: the route is accepted, the undecodable one is a load problem.
    let report = config_pusher::check::Report::new(&snapshot.store, &load, &output);
    let text = report.to_text();
    assert!(text.contains("shop/a"), "{text}");
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].contains("HTTPRoute shop/broken"),
        "{text}"
    );
    // explain: the same table serve would publish routes the request to shop/web.
    let table = &output.tables["gateway/shop/gw"];
    let req = config_pusher::explain::HttpRequest::parse("GET http://any.example/", &[]).unwrap();
    let e = config_pusher::explain::explain(
        table,
        &req.request(gammaroute_filter::router::Destination {
            ip: std::net::IpAddr::from([127, 0, 0, 1]),
            port: 80,
        }),
    )
    .unwrap();
    assert_eq!(
        e.report.winner.as_ref().map(|w| w.route.as_str()),
        Some("shop/a")
    );
}

#[tokio::test]
async fn read_once_fails_clearly_when_a_kind_never_lists() {
    let (client, handle) = mock();
    let mut scripts = empty_scripts();
    scripts.get_mut("/api/v1/services").unwrap().lists = VecDeque::from([(
        StatusCode::INTERNAL_SERVER_ERROR,
        kube_status(500, "InternalError"),
    )]);
    apiserver(handle, scripts);
    let e = config_pusher::kubernetes::read_once(client, Duration::from_millis(1500))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("the cluster was not read completely within 1.5s"),
        "{e}"
    );
}
