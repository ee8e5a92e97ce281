//! The objects that run one Gateway's proxies — a Deployment of Envoy, a Service, a
//! ServiceAccount and the ConfigMap with the bootstrap — as pure data (GEP-1762 "in-cluster
//! Gateway deployments"). Each is in the Gateway's namespace, owned by it
//! (`metadata.ownerReferences`, so deleting the Gateway garbage-collects them) and labelled
//! `gateway.networking.k8s.io/gateway-name` (GEP-1762) plus [`MANAGED_BY`], which is how the
//! reconciler finds what it made. `spec.infrastructure.labels` / `.annotations` (GEP-1867) go on
//! every object and the pod template.
//!
//! Each object carries [`DESIRED_HASH`], the SHA-256 of its own desired form: the reconciler
//! writes only objects whose live hash differs. The pod template carries [`BOOTSTRAP_HASH`], so
//! the Deployment rolls exactly when the bootstrap changes (a config-pusher upgrade that renders
//! the same bootstrap restarts nothing).

use std::collections::BTreeMap;

use gateway_api::experimental::gateways::Gateway;
use serde_json::{json, Value};

use super::bootstrap::{READY_PORT, WASM_DIR};
use super::module::ModuleSource;
use super::params::ProxyParams;

/// GEP-1762: every object made for a Gateway carries its name under this label.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";
/// `app.kubernetes.io/managed-by` value on everything the reconciler owns.
pub const MANAGED_BY: &str = "gammaroute-config-pusher";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// SHA-256 of the object's desired form (without this annotation).
pub const DESIRED_HASH: &str = "gammaroute.dev/desired-hash";
/// SHA-256 of the bootstrap, on the pod template.
pub const BOOTSTRAP_HASH: &str = "gammaroute.dev/bootstrap-hash";
/// The ConfigMap key holding the bootstrap.
pub const BOOTSTRAP_KEY: &str = "bootstrap.yaml";

/// The kinds the reconciler manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ManagedKind {
    ServiceAccount,
    ConfigMap,
    Service,
    Deployment,
}

impl ManagedKind {
    /// In the order they are applied (the Deployment last: what it mounts exists first).
    pub const ALL: [ManagedKind; 4] = [
        ManagedKind::ServiceAccount,
        ManagedKind::ConfigMap,
        ManagedKind::Service,
        ManagedKind::Deployment,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ManagedKind::ServiceAccount => "ServiceAccount",
            ManagedKind::ConfigMap => "ConfigMap",
            ManagedKind::Service => "Service",
            ManagedKind::Deployment => "Deployment",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            ManagedKind::Deployment => "apps/v1",
            _ => "v1",
        }
    }
}

/// One object to have in the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Managed {
    pub kind: ManagedKind,
    pub namespace: String,
    pub name: String,
    /// The whole object (apiVersion, kind, metadata, spec/data), [`DESIRED_HASH`] included.
    pub body: Value,
}

impl Managed {
    /// The [`DESIRED_HASH`] it carries.
    pub fn hash(&self) -> Option<&str> {
        self.body["metadata"]["annotations"][DESIRED_HASH].as_str()
    }
}

/// How provisioned proxies run, whatever the GatewayClass (`serve` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionOptions {
    /// The Envoy image (≥ 1.40, V8).
    pub envoy_image: String,
    /// Where the filter module comes from ([`ModuleSource`]).
    pub module: ModuleSource,
}

/// Why a Gateway's objects cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    #[error("Gateway {0}: metadata.uid missing (not read from the API server?)")]
    NoUid(String),
    #[error("Gateway {gateway}: {kind} does not fit its Kubernetes type: {source}")]
    Shape {
        gateway: String,
        kind: &'static str,
        #[source]
        source: ShapeError,
    },
}

/// The name of every object of a Gateway: `<gateway>-gammaroute`, shortened with a hash when
/// that would not be a DNS label (Service names: RFC 1035, 63 characters).
pub fn object_name(gateway: &str) -> String {
    let full = format!("{gateway}-gammaroute");
    if full.len() <= 63 {
        return full;
    }
    let hash = sha256_hex(gateway.as_bytes());
    let head: String = gateway.chars().take(63 - 11 - 9).collect();
    format!(
        "{}-{}-gammaroute",
        head.trim_end_matches(['-', '.']),
        &hash[..8]
    )
}

/// A label value (63 characters at most) for the Gateway's name.
pub fn label_value(gateway: &str) -> String {
    if gateway.len() <= 63 {
        return gateway.to_string();
    }
    let head: String = gateway.chars().take(54).collect();
    format!(
        "{}-{}",
        head.trim_end_matches(['-', '.']),
        &sha256_hex(gateway.as_bytes())[..8]
    )
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Ports the Service exposes: every HTTP and HTTPS listener port, once.
fn listener_ports(gateway: &Gateway) -> Vec<i32> {
    let mut ports: Vec<i32> = gateway
        .spec
        .listeners
        .iter()
        .filter(|l| matches!(l.protocol.as_str(), "HTTP" | "HTTPS"))
        .map(|l| l.port)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// The four objects of `gateway` (see the module docs), in [`ManagedKind::ALL`] order.
pub fn desired(
    gateway: &Gateway,
    params: &ProxyParams,
    options: &ProvisionOptions,
    bootstrap: &str,
) -> Result<Vec<Managed>, ObjectsError> {
    let namespace = gateway.metadata.namespace.clone().unwrap_or_default();
    let gw_name = gateway.metadata.name.clone().unwrap_or_default();
    let id = format!("{namespace}/{gw_name}");
    let uid = gateway
        .metadata
        .uid
        .clone()
        .ok_or_else(|| ObjectsError::NoUid(id.clone()))?;
    let name = object_name(&gw_name);
    let infra = gateway.spec.infrastructure.as_ref();
    // GEP-1867: the Gateway's own labels first, ours win (the selector must stay ours).
    let mut labels: BTreeMap<String, String> =
        infra.and_then(|i| i.labels.clone()).unwrap_or_default();
    let selector = BTreeMap::from([
        (GATEWAY_NAME_LABEL.to_string(), label_value(&gw_name)),
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
    ]);
    labels.extend(selector.clone());
    let annotations: BTreeMap<String, String> = infra
        .and_then(|i| i.annotations.clone())
        .unwrap_or_default();
    let owner = json!([{
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "name": gw_name,
        "uid": uid,
        "controller": true,
        "blockOwnerDeletion": true,
    }]);
    let meta = |extra: &BTreeMap<String, String>| {
        let mut a = annotations.clone();
        a.extend(extra.clone());
        json!({"name": name, "namespace": namespace, "labels": labels,
               "annotations": a, "ownerReferences": owner})
    };
    let ports = listener_ports(gateway);
    let mut pod_annotations = annotations.clone();
    pod_annotations.insert(BOOTSTRAP_HASH.into(), sha256_hex(bootstrap.as_bytes()));
    let objects = [
        (
            ManagedKind::ServiceAccount,
            json!({"metadata": meta(&BTreeMap::new()), "automountServiceAccountToken": false}),
        ),
        (
            ManagedKind::ConfigMap,
            json!({"metadata": meta(&BTreeMap::new()), "data": {BOOTSTRAP_KEY: bootstrap}}),
        ),
        (
            ManagedKind::Service,
            json!({"metadata": meta(&params.service_annotations), "spec": {
                "type": params.service_type.as_str(),
                "selector": selector,
                "ports": ports.iter().map(|p| json!({
                    "name": format!("port-{p}"), "port": p, "targetPort": p,
                    "protocol": "TCP"})).collect::<Vec<_>>(),
            }}),
        ),
        (
            ManagedKind::Deployment,
            json!({"metadata": meta(&BTreeMap::new()), "spec": {
                "replicas": params.replicas,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": labels, "annotations": pod_annotations},
                    "spec": pod_spec(&name, &ports, params, options),
                },
            }}),
        ),
    ];
    objects
        .into_iter()
        .map(|(kind, mut body)| {
            body["apiVersion"] = kind.api_version().into();
            body["kind"] = kind.as_str().into();
            check_shape(kind, &body).map_err(|source| ObjectsError::Shape {
                gateway: id.clone(),
                kind: kind.as_str(),
                source,
            })?;
            let hash = sha256_hex(body.to_string().as_bytes());
            body["metadata"]["annotations"][DESIRED_HASH] = hash.into();
            Ok(Managed {
                kind,
                namespace: namespace.clone(),
                name: name.clone(),
                body,
            })
        })
        .collect()
}

/// The proxy pod, locked down like config-pusher's own (non-root, read-only root filesystem,
/// no capabilities, no API token). Ports under 1024 are bound through the namespaced sysctl
/// `net.ipv4.ip_unprivileged_port_start` (a "safe" sysctl, allowed by default) instead of
/// `NET_BIND_SERVICE`.
fn pod_spec(name: &str, ports: &[i32], params: &ProxyParams, options: &ProvisionOptions) -> Value {
    let low = ports.iter().copied().min().unwrap_or(1024).clamp(0, 1024);
    let mut security = json!({
        "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    });
    if low < 1024 {
        security["sysctls"] =
            json!([{"name": "net.ipv4.ip_unprivileged_port_start", "value": low.to_string()}]);
    }
    let mut container_ports: Vec<Value> = ports
        .iter()
        .map(|p| json!({"name": format!("port-{p}"), "containerPort": p, "protocol": "TCP"}))
        .collect();
    container_ports.push(json!({"name": "ready", "containerPort": READY_PORT, "protocol": "TCP"}));
    let mut mounts = vec![
        json!({"name": "bootstrap", "mountPath": "/etc/envoy", "readOnly": true}),
        json!({"name": "tmp", "mountPath": "/tmp"}),
    ];
    let mut volumes = vec![
        json!({"name": "bootstrap", "configMap": {"name": name}}),
        json!({"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}),
    ];
    if let ModuleSource::Image(image) = &options.module {
        mounts.push(json!({"name": "wasm", "mountPath": WASM_DIR, "readOnly": true}));
        volumes.push(
            json!({"name": "wasm", "image": {"reference": image, "pullPolicy": "IfNotPresent"}}),
        );
    }
    json!({
        "serviceAccountName": name,
        "automountServiceAccountToken": false,
        "securityContext": security,
        // Envoy drains for up to --drain-time-s after SIGTERM.
        "terminationGracePeriodSeconds": 30,
        "containers": [{
            "name": "envoy",
            "image": options.envoy_image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["envoy"],
            "args": ["-c", "/etc/envoy/bootstrap.yaml", "--disable-hot-restart",
                     "--drain-time-s", "15", "--log-level", "info"],
            "ports": container_ports,
            "readinessProbe": {"httpGet": {"path": "/ready", "port": "ready"},
                               "periodSeconds": 5},
            "resources": params.resources,
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": mounts,
        }],
        "volumes": volumes,
    })
}

/// Every field of `body` is one its Kubernetes type knows (a typo would be dropped silently by
/// the API server): the typed round trip must give it back unchanged.
fn check_shape(kind: ManagedKind, body: &Value) -> Result<(), ShapeError> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
    fn round<T: serde::de::DeserializeOwned + serde::Serialize>(
        v: &Value,
    ) -> Result<Value, serde_json::Error> {
        let typed: T = serde_json::from_value(v.clone())?;
        serde_json::to_value(typed)
    }
    let back = match kind {
        ManagedKind::ServiceAccount => round::<ServiceAccount>(body)?,
        ManagedKind::ConfigMap => round::<ConfigMap>(body)?,
        ManagedKind::Service => round::<Service>(body)?,
        ManagedKind::Deployment => round::<Deployment>(body)?,
    };
    if &back == body {
        Ok(())
    } else {
        Err(ShapeError::Lost(diff(body, &back)))
    }
}

/// How a built object does not fit its Kubernetes type.
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    #[error(transparent)]
    Decode(#[from] serde_json::Error),
    /// Fields the typed round trip dropped (shown as paths).
    #[error("fields lost in the round trip: {0}")]
    Lost(String),
}

fn diff(a: &Value, b: &Value) -> String {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => x
            .iter()
            .filter(|(k, v)| y.get(*k) != Some(v))
            .map(|(k, v)| format!("{k}: {}", diff(v, y.get(k).unwrap_or(&Value::Null))))
            .collect::<Vec<_>>()
            .join(", "),
        _ => format!("{a} ≠ {b}"),
    }
}
