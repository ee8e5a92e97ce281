//! Provisioning against a mock API server (`tower_test::mock::pair` behind `kube::Client::new`,
//! as `tests/kube.rs`): the exact objects created, updated and deleted over a Gateway's
//! lifecycle, their owner references and labels, the GatewayClass parameters applied, the
//! status addresses and `Programmed`, and no write when nothing changed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use config_pusher::provision::bootstrap::ControlPlane;
use config_pusher::provision::objects::{BOOTSTRAP_HASH, BOOTSTRAP_KEY, DESIRED_HASH};
use config_pusher::provision::plan::Action;
use config_pusher::provision::status::{self as infra_status, Infra};
use config_pusher::provision::{ProvisionOptions, Provisioner};
use config_pusher::render::envoy::Pusher;
use config_pusher::source::files;
use config_pusher::store::ObjectKey;
use config_pusher::translate::status::{ConditionType, Reason, Status};
use config_pusher::translate::{self, Output, Settings};
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{json, Value};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const US: &str = "gammaroute.dev/config-pusher";
const UID: &str = "6f1c0a52-0000-4000-8000-000000000001";

/// The mock cluster: objects by path (`/api/v1/namespaces/shop/services/gw-gammaroute`), and
/// every request that is not a read, as `METHOD path?query`.
#[derive(Default)]
struct Cluster {
    objects: BTreeMap<String, Value>,
    writes: Vec<String>,
    /// LISTs answer 500 (an API server in trouble).
    fail_lists: bool,
}

fn respond(send: tower_test::mock::SendResponse<Response<Body>>, code: StatusCode, body: &Value) {
    send.send_response(
        Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "reason": "NotFound", "code": 404, "message": "mock: not found"})
}

/// Serves LIST (with the label selector checked), GET, server-side apply PATCH (the body
/// becomes the object, keeping a status the test set) and DELETE.
fn apiserver(mut handle: Handle, cluster: Arc<Mutex<Cluster>>) {
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let path = req.uri().path().to_string();
            let query = req.uri().query().unwrap_or_default().to_string();
            let method = req.method().clone();
            let body = req.into_body().collect_bytes().await.unwrap();
            let mut c = cluster.lock().unwrap();
            if method != Method::GET {
                c.writes.push(format!("{method} {path}?{query}"));
            }
            let list_of = |plural: &str| -> Option<(&str, &str)> {
                [
                    ("/apis/apps/v1/deployments", "deployments"),
                    ("/api/v1/services", "services"),
                    ("/api/v1/serviceaccounts", "serviceaccounts"),
                    ("/api/v1/configmaps", "configmaps"),
                    ("/api/v1/pods", "pods"),
                ]
                .into_iter()
                .find(|(p, _)| *p == plural)
            };
            match method {
                Method::GET if list_of(&path).is_some() && c.fail_lists => {
                    respond(
                        send,
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &json!({"kind": "Status",
                        "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 500,
                        "reason": "InternalError", "message": "mock: etcd unavailable"}),
                    );
                }
                Method::GET if list_of(&path).is_some() => {
                    assert!(
                        query.contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dgammaroute-config-pusher"),
                        "{path}?{query}"
                    );
                    let plural = list_of(&path).unwrap().1;
                    let items: Vec<Value> = c
                        .objects
                        .iter()
                        .filter(|(p, _)| p.contains(&format!("/{plural}/")))
                        .filter(|(_, o)| {
                            o["metadata"]["labels"]["app.kubernetes.io/managed-by"]
                                == "gammaroute-config-pusher"
                        })
                        .map(|(_, o)| o.clone())
                        .collect();
                    respond(
                        send,
                        StatusCode::OK,
                        &json!({"kind": "List", "apiVersion": "v1",
                        "metadata": {"resourceVersion": "1"}, "items": items}),
                    );
                }
                Method::GET => match c.objects.get(&path) {
                    Some(o) => respond(send, StatusCode::OK, &o.clone()),
                    None => respond(send, StatusCode::NOT_FOUND, &not_found()),
                },
                Method::PATCH => {
                    let mut o: Value = serde_json::from_slice(&body).unwrap();
                    if let Some(old) = c.objects.get(&path) {
                        if let Some(s) = old.get("status") {
                            o["status"] = s.clone();
                        }
                    }
                    c.objects.insert(path, o.clone());
                    respond(send, StatusCode::OK, &o);
                }
                Method::DELETE => match c.objects.remove(&path) {
                    Some(_) => respond(
                        send,
                        StatusCode::OK,
                        &json!({"kind": "Status",
                        "apiVersion": "v1", "metadata": {}, "status": "Success"}),
                    ),
                    None => respond(send, StatusCode::NOT_FOUND, &not_found()),
                },
                _ => respond(send, StatusCode::METHOD_NOT_ALLOWED, &not_found()),
            }
        }
    });
}

fn inputs(controller: &str, backends: &[&str], path: &str) -> String {
    let mut rules = String::new();
    for b in backends {
        rules.push_str(&format!(
            "  - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]\n    backendRefs: [{{name: {b}, port: 80}}]\n"
        ));
    }
    let services: String = ["web", "api"]
        .iter()
        .map(|s| format!("---\napiVersion: v1\nkind: Service\nmetadata: {{name: {s}, namespace: shop}}\nspec: {{clusterIP: 10.0.0.{}, ports: [{{port: 80}}]}}\n", s.len()))
        .collect();
    format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: gammaroute}}
spec:
  controllerName: {controller}
  parametersRef: {{group: "", kind: ConfigMap, name: proxy, namespace: gammaroute-system}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: shop, uid: {UID}}}
spec:
  gatewayClassName: gammaroute
  infrastructure:
    labels: {{team: shop}}
    annotations: {{example.com/owner: shop-team}}
  listeners:
  - {{name: http, protocol: HTTP, port: 80}}
  - {{name: alt, protocol: HTTP, port: 8080}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: shop}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
{rules}{services}"#
    )
}

fn translated(yaml: &str) -> (config_pusher::store::Store, Output) {
    let (store, report) = files::load_text("test.yaml", yaml);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let output = translate::translate(
        &store,
        &Settings {
            controller_name: US.into(),
        },
    );
    (store, output)
}

fn params(replicas: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "proxy", "namespace": "gammaroute-system"},
           "data": {"replicas": replicas, "serviceType": "LoadBalancer",
                    "serviceAnnotations": "lb.example.com/internal: \"true\"\n",
                    "resources": "requests: {cpu: 200m, memory: 100Mi}\n"}})
}

const CM_PATH: &str = "/api/v1/namespaces/gammaroute-system/configmaps/proxy";
const SA: &str = "/api/v1/namespaces/shop/serviceaccounts/gw-gammaroute";
const CM: &str = "/api/v1/namespaces/shop/configmaps/gw-gammaroute";
const SVC: &str = "/api/v1/namespaces/shop/services/gw-gammaroute";
const DEPLOY: &str = "/apis/apps/v1/namespaces/shop/deployments/gw-gammaroute";
/// Server-side apply, forced, as config-pusher's field manager (kube-rs' query).
const APPLY: &str = "?&force=true&fieldManager=gammaroute-config-pusher";

fn setup() -> (Provisioner, Arc<Mutex<Cluster>>) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(svc, "default");
    let cluster = Arc::new(Mutex::new(Cluster::default()));
    cluster
        .lock()
        .unwrap()
        .objects
        .insert(CM_PATH.into(), params("2"));
    apiserver(handle, cluster.clone());
    let provisioner = Provisioner::new(
        client,
        US,
        ProvisionOptions {
            envoy_image: "envoyproxy/envoy:test".into(),
            module: config_pusher::provision::ModuleSource::Image(
                "ghcr.io/gammaroute/gammaroute-wasm:test".into(),
            ),
        },
        ControlPlane {
            pusher: Pusher::parse("config-pusher.gammaroute-system.svc:18000").unwrap(),
            ads: None,
        },
        config_pusher::auth::Secret::new(b"s3cret"),
        "cluster.local",
    );
    (provisioner, cluster)
}

fn writes(cluster: &Mutex<Cluster>) -> Vec<String> {
    std::mem::take(&mut cluster.lock().unwrap().writes)
}

fn object(cluster: &Mutex<Cluster>, path: &str) -> Value {
    cluster.lock().unwrap().objects[path].clone()
}

#[tokio::test]
async fn a_gateways_lifecycle_creates_updates_and_deletes_exactly_its_objects() {
    let (provisioner, cluster) = setup();
    let gw = ObjectKey::new("shop", "gw");

    // 1. A new Gateway: the four objects, in dependency order, by server-side apply.
    let (store, output) = translated(&inputs(US, &["web"], "/"));
    let round = provisioner.reconcile(&store, &output.tables).await;
    assert!(round.errors.is_empty(), "{:?}", round.errors);
    assert_eq!(
        writes(&cluster),
        [SA, CM, SVC, DEPLOY].map(|p| format!("PATCH {p}{APPLY}"))
    );
    for path in [SA, CM, SVC, DEPLOY] {
        let o = object(&cluster, path);
        let meta = &o["metadata"];
        assert_eq!(
            meta["ownerReferences"],
            json!([{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "name": "gw",
                    "uid": UID, "controller": true, "blockOwnerDeletion": true}]),
            "{path}"
        );
        assert_eq!(
            meta["labels"]["gateway.networking.k8s.io/gateway-name"],
            "gw"
        );
        assert_eq!(meta["labels"]["team"], "shop", "spec.infrastructure.labels");
        assert_eq!(meta["annotations"]["example.com/owner"], "shop-team");
        assert!(meta["annotations"][DESIRED_HASH].is_string(), "{path}");
    }
    let svc = object(&cluster, SVC);
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert_eq!(
        svc["metadata"]["annotations"]["lb.example.com/internal"],
        "true"
    );
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "port-80", "port": 80, "targetPort": 80, "protocol": "TCP"},
               {"name": "port-8080", "port": 8080, "targetPort": 8080, "protocol": "TCP"}])
    );
    let deploy = object(&cluster, DEPLOY);
    assert_eq!(deploy["spec"]["replicas"], 2, "parameters: replicas");
    let pod = &deploy["spec"]["template"]["spec"];
    let envoy = &pod["containers"][0];
    assert_eq!(envoy["image"], "envoyproxy/envoy:test");
    assert_eq!(envoy["resources"]["requests"]["cpu"], "200m");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["sysctls"][0],
        json!({"name": "net.ipv4.ip_unprivileged_port_start", "value": "80"})
    );
    assert_eq!(envoy["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        envoy["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
    assert_eq!(envoy["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(
        pod["volumes"][2]["image"]["reference"],
        "ghcr.io/gammaroute/gammaroute-wasm:test"
    );
    let bootstrap = object(&cluster, CM)["data"][BOOTSTRAP_KEY]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        bootstrap.contains("config-pusher.gammaroute-system.svc"),
        "pusher"
    );
    let token = config_pusher::auth::Secret::new(b"s3cret")
        .unwrap()
        .role_token("gateway/shop/gw");
    assert!(bootstrap.contains(&token), "the role's own token");
    assert!(!bootstrap.contains("s3cret"), "never the secret itself");
    assert!(
        bootstrap.contains("web.shop.svc.cluster.local"),
        "Service DNS cluster"
    );
    assert!(!bootstrap.contains("\\\"routes\\\""), "no inline table");
    // Nothing runs yet: Programmed waits, no address.
    assert!(
        matches!(&round.infra[&gw], Infra::Provisioned { addresses, unavailable: Some(why) }
            if addresses.is_empty() && why == "proxy Deployment created, waiting for it"),
        "{:?}",
        round.infra[&gw]
    );

    // 1b. A proxy pod crash-loops: the Deployment is unavailable and the status says why.
    {
        let mut c = cluster.lock().unwrap();
        c.objects.get_mut(DEPLOY).unwrap()["status"] = json!({"conditions": [
            {"type": "Available", "status": "False", "message": "Deployment does not have minimum availability."}]});
        c.objects.insert(
            "/api/v1/namespaces/shop/pods/gw-gammaroute-7d9f-x".into(),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "gw-gammaroute-7d9f-x", "namespace": "shop",
                                "labels": {"gateway.networking.k8s.io/gateway-name": "gw",
                                           "app.kubernetes.io/managed-by": "gammaroute-config-pusher"}},
                   "spec": {"containers": [{"name": "envoy"}]},
                   "status": {"containerStatuses": [{"name": "envoy", "ready": false,
                       "restartCount": 3, "image": "envoyproxy/envoy:test", "imageID": "",
                       "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}}}]}}),
        );
    }
    let round = provisioner.reconcile(&store, &output.tables).await;
    assert_eq!(writes(&cluster), Vec::<String>::new());
    match &round.infra[&gw] {
        Infra::Provisioned {
            unavailable: Some(why),
            ..
        } => assert!(
            why.contains("minimum availability")
                && why.contains("pod gw-gammaroute-7d9f-x: envoy: CrashLoopBackOff (back-off 40s)"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    cluster
        .lock()
        .unwrap()
        .objects
        .remove("/api/v1/namespaces/shop/pods/gw-gammaroute-7d9f-x");

    // 2. The same inputs again: not a single write. The load balancer got an address and the
    // Deployment became available meanwhile: the status says so.
    {
        let mut c = cluster.lock().unwrap();
        c.objects.get_mut(SVC).unwrap()["status"] =
            json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}});
        c.objects.get_mut(DEPLOY).unwrap()["status"] = json!({"availableReplicas": 2, "conditions": [{"type": "Available", "status": "True"}]});
    }
    let round = provisioner.reconcile(&store, &output.tables).await;
    assert_eq!(
        writes(&cluster),
        Vec::<String>::new(),
        "{:?}",
        round.actions
    );
    let mut statuses = output.statuses.clone();
    infra_status::apply(&mut statuses, &round.infra);
    let gw_status = statuses
        .iter()
        .find_map(|d| match &d.status {
            Status::Gateway(g) if d.metadata.name == "gw" => Some(g.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(gw_status.addresses.len(), 1);
    assert_eq!(gw_status.addresses[0].value, "203.0.113.10");
    let programmed = gw_status
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::Programmed)
        .unwrap();
    assert!(programmed.status, "{programmed:?}");

    // 3. A route edit (same backends): a new table, the same bootstrap — no write, no restart.
    let (store, output) = translated(&inputs(US, &["web"], "/shop"));
    provisioner.reconcile(&store, &output.tables).await;
    assert_eq!(writes(&cluster), Vec::<String>::new());

    // 4. A new backend Service: the bootstrap changes, so the ConfigMap and the Deployment (its
    // pod template's bootstrap hash: the proxies roll), nothing else.
    let hash_before = object(&cluster, DEPLOY)["spec"]["template"]["metadata"]["annotations"]
        [BOOTSTRAP_HASH]
        .clone();
    let (store, output) = translated(&inputs(US, &["web", "api"], "/"));
    provisioner.reconcile(&store, &output.tables).await;
    assert_eq!(
        writes(&cluster),
        [CM, DEPLOY].map(|p| format!("PATCH {p}{APPLY}"))
    );
    assert_ne!(
        object(&cluster, DEPLOY)["spec"]["template"]["metadata"]["annotations"][BOOTSTRAP_HASH],
        hash_before
    );

    // 5. Bad parameters: nothing is written or deleted, the Gateway says why.
    cluster
        .lock()
        .unwrap()
        .objects
        .insert(CM_PATH.into(), params("many"));
    let round = provisioner.reconcile(&store, &output.tables).await;
    assert_eq!(writes(&cluster), Vec::<String>::new());
    match &round.infra[&gw] {
        Infra::Invalid(why) => assert!(
            why.to_string()
                .contains("ConfigMap gammaroute-system/proxy: data.replicas"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    let mut statuses = output.statuses.clone();
    infra_status::apply(&mut statuses, &round.infra);
    assert!(statuses.iter().any(|d| matches!(&d.status, Status::Gateway(g)
        if g.conditions.iter().any(|c| c.type_ == ConditionType::Programmed && !c.status && c.reason == Reason::Invalid))));

    // 6. The GatewayClass leaves our controllerName: every object is deleted.
    cluster
        .lock()
        .unwrap()
        .objects
        .insert(CM_PATH.into(), params("2"));
    let (store, output) = translated(&inputs("example.com/other", &["web"], "/"));
    let round = provisioner.reconcile(&store, &output.tables).await;
    assert!(round.actions.iter().all(|a| matches!(a, Action::Delete(_))));
    let mut deleted = writes(&cluster);
    deleted.sort();
    let mut expected: Vec<String> = [SA, CM, SVC, DEPLOY]
        .map(|p| format!("DELETE {p}?"))
        .to_vec();
    expected.sort();
    assert_eq!(deleted, expected);
    assert!(round.infra.is_empty());
}

#[tokio::test]
async fn a_deleted_gateway_loses_its_objects_and_nothing_more_is_written() {
    let (provisioner, cluster) = setup();
    let (store, output) = translated(&inputs(US, &["web"], "/"));
    provisioner.reconcile(&store, &output.tables).await;
    assert_eq!(writes(&cluster).len(), 4);
    // The Gateway is deleted (the API server's garbage collector would follow the owner
    // references; config-pusher does not wait for it). The parameters ConfigMap is not ours.
    let mut store = store;
    store.gateways.clear();
    let round = provisioner.reconcile(&store, &output.tables).await;
    assert_eq!(round.actions.len(), 4);
    assert_eq!(
        writes(&cluster)
            .iter()
            .filter(|w| w.starts_with("DELETE "))
            .count(),
        4
    );
    // Deleting again finds nothing: no writes.
    provisioner.reconcile(&store, &output.tables).await;
    assert_eq!(writes(&cluster), Vec::<String>::new());
}

/// The next translation handed to the status writer.
async fn next(
    outputs: &mut tokio::sync::watch::Receiver<Option<config_pusher::status::kube::Translated>>,
) -> config_pusher::status::kube::Translated {
    tokio::time::timeout(std::time::Duration::from_secs(10), outputs.changed())
        .await
        .expect("statuses within 10 s")
        .unwrap();
    outputs.borrow_and_update().clone().unwrap()
}

/// The Gateway statuses in a translation handed to the status writer.
fn gateway_status(t: &config_pusher::status::kube::Translated) -> (bool, String, Vec<String>) {
    t.output
        .statuses
        .iter()
        .find_map(|d| match &d.status {
            Status::Gateway(g) if d.metadata.name == "gw" => {
                let p = g
                    .conditions
                    .iter()
                    .find(|c| c.type_ == ConditionType::Programmed)
                    .unwrap();
                Some((
                    p.status,
                    p.reason.as_str().to_string(),
                    g.addresses.iter().map(|a| a.value.clone()).collect(),
                ))
            }
            _ => None,
        })
        .unwrap()
}

#[tokio::test]
async fn serve_hands_the_writer_statuses_with_the_proxies_state_and_only_the_leader_writes() {
    use config_pusher::provision::{self, ProvisionSink};
    use config_pusher::serve::StatusSink;
    use config_pusher::source::Snapshot;
    use config_pusher::status::kube::StatusPublisher;
    use std::time::Instant;

    let (provisioner, cluster) = setup();
    let (mut sink, translations) = ProvisionSink::new();
    let (publisher, mut outputs) = StatusPublisher::new();
    let (leader_tx, leader) = tokio::sync::watch::channel(false);
    tokio::spawn(provision::run(provisioner, translations, leader, publisher));
    let (store, output) = translated(&inputs(US, &["web"], "/"));
    // Not the Lease holder: statuses go on (the writer will not write them), nothing is created.
    sink.publish(
        &Snapshot::new(store.clone(), vec![], Instant::now()),
        &output,
    );
    let t = next(&mut outputs).await;
    assert_eq!(gateway_status(&t).1, "Pending");
    assert_eq!(writes(&cluster), Vec::<String>::new());

    // The Lease holder provisions; not programmed while nothing runs.
    leader_tx.send_replace(true);
    let t = next(&mut outputs).await;
    assert_eq!(writes(&cluster).len(), 4);
    let (programmed, reason, addresses) = gateway_status(&t);
    assert!(
        !programmed && addresses.is_empty(),
        "{reason} {addresses:?}"
    );

    // Available, with an address: the next translation's statuses say so.
    {
        let mut c = cluster.lock().unwrap();
        c.objects.get_mut(SVC).unwrap()["status"] =
            json!({"loadBalancer": {"ingress": [{"hostname": "gw.lb.example"}]}});
        c.objects.get_mut(DEPLOY).unwrap()["status"] =
            json!({"conditions": [{"type": "Available", "status": "True"}]});
    }
    sink.publish(
        &Snapshot::new(store.clone(), vec![], Instant::now()),
        &output,
    );
    let t = next(&mut outputs).await;
    let ready = (
        true,
        "Programmed".to_string(),
        vec!["gw.lb.example".to_string()],
    );
    assert_eq!(gateway_status(&t), ready);
    assert_eq!(writes(&cluster), Vec::<String>::new(), "nothing changed");

    // The API server fails the lists: nothing is written or deleted, and the statuses keep what
    // was last known instead of forgetting the proxies.
    cluster.lock().unwrap().fail_lists = true;
    sink.publish(&Snapshot::new(store, vec![], Instant::now()), &output);
    let t = next(&mut outputs).await;
    assert_eq!(gateway_status(&t), ready);
    assert_eq!(writes(&cluster), Vec::<String>::new());
}

/// Against a real cluster (kind or k3d) running config-pusher (README "Run on Kubernetes" steps
/// 1–2: the Gateway API CRDs, both images built and loaded — `kind load docker-image …` — and
/// `kubectl apply -k config-pusher/deploy`), with `kubectl` on the PATH:
///
/// ```sh
/// cargo test -p config-pusher --test provision -- --ignored
/// ```
///
/// In a temporary namespace: a backend (agnhost netexec), a Gateway of class `gammaroute` and an
/// HTTPRoute; waits for the provisioned objects (owned by the Gateway), `Programmed=True` with an
/// address, then sends a request through the proxies' Service (`kubectl port-forward`) and
/// expects the backend's answer. Deleting the namespace cleans up.
#[tokio::test]
#[ignore = "needs a Kubernetes cluster running config-pusher; see the doc comment"]
async fn real_cluster_provisioned_gateway_routes() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Namespace, Service};
    use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    let client = kube::Client::try_default()
        .await
        .expect("KUBECONFIG or in-cluster config");
    let ns = format!("gammaroute-provision-{}", std::process::id());
    fn create<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap()
    }
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &create(json!({"metadata": {"name": ns}})),
        )
        .await
        .unwrap();
    let labels = json!({"app": "web"});
    Api::<Deployment>::namespaced(client.clone(), &ns)
        .create(
            &PostParams::default(),
            &create(json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web",
                    "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
                    "args": ["netexec", "--http-port=8080"]}]}}}})),
        )
        .await
        .unwrap();
    Api::<Service>::namespaced(client.clone(), &ns)
        .create(
            &PostParams::default(),
            &create(json!({
            "metadata": {"name": "web"},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}})),
        )
        .await
        .unwrap();
    let gw_ar = config_pusher::source::kube::api_resource(config_pusher::store::Kind::Gateway);
    let route_ar = config_pusher::source::kube::api_resource(config_pusher::store::Kind::HttpRoute);
    let gateways: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &gw_ar);
    gateways
        .create(
            &PostParams::default(),
            &create(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "gw"},
            "spec": {"gatewayClassName": "gammaroute",
                     "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}})),
        )
        .await
        .unwrap();
    Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &route_ar)
        .create(
            &PostParams::default(),
            &create(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web"},
            "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["shop.example"],
                     "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}})),
        )
        .await
        .unwrap();

    // Programmed, with an address.
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        let gw = gateways.get("gw").await.unwrap();
        let status = gw.data["status"].clone();
        let programmed = status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Programmed" && c["status"] == "True");
        if programmed && status["addresses"][0]["value"].is_string() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "Gateway {ns}/gw never programmed: {status}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let deployment = Api::<Deployment>::namespaced(client.clone(), &ns)
        .get("gw-gammaroute")
        .await
        .unwrap();
    let owner = &deployment.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Gateway", "gw")
    );

    // A request through the provisioned Service.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut forward = std::process::Command::new("kubectl")
        .args([
            "-n",
            &ns,
            "port-forward",
            "svc/gw-gammaroute",
            &format!("{port}:80"),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("kubectl");
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        let mut response = String::new();
        let sent = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
            s.write_all(
                b"GET /hostname HTTP/1.1\r\nhost: shop.example\r\nconnection: close\r\n\r\n",
            )?;
            s.read_to_string(&mut response)
        });
        if sent.is_ok() && response.starts_with("HTTP/1.1 200") {
            break response;
        }
        assert!(
            Instant::now() < deadline,
            "no 200 through the Gateway (status {status}): {response}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let _ = forward.kill();
    let _ = forward.wait();
    assert!(
        answer.contains("web-"),
        "the backend pod's hostname: {answer}"
    );
    Api::<Namespace>::all(client)
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
}
