//! The manifests in `config-pusher/deploy/` and the Istio manifests `render --istio` writes are
//! accepted by `kubectl apply --dry-run=client`, and say what the README promises (least
//! privilege, probes, non-root).
//!
//! **Offline dry-run.** `kubectl apply --dry-run=client` still needs an API server: discovery maps
//! each `kind` to its resource, and it GETs each object to decide between create and patch. No
//! kube-apiserver runs on the build machines, so [`FakeApiServer`] answers exactly those calls on
//! 127.0.0.1 (discovery for the kinds we ship, 404 for every object). Schema validation needs the
//! server's OpenAPI documents, which we do not have offline: hence `--validate=false`, with the
//! typed checks below in its place (k8s-openapi / gateway-api types, field by field).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
use serde_json::{json, Value};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// A resource as discovery lists it: `(plural, kind, namespaced)`.
type Resource = (&'static str, &'static str, bool);

/// `(group/version, resources)` served by the fake API server.
fn discovery() -> Vec<(&'static str, Vec<Resource>)> {
    vec![
        (
            "v1",
            vec![
                ("namespaces", "Namespace", false),
                ("configmaps", "ConfigMap", true),
                ("serviceaccounts", "ServiceAccount", true),
                ("services", "Service", true),
            ],
        ),
        ("apps/v1", vec![("deployments", "Deployment", true)]),
        (
            "networking.k8s.io/v1",
            vec![("networkpolicies", "NetworkPolicy", true)],
        ),
        (
            "rbac.authorization.k8s.io/v1",
            vec![
                ("clusterroles", "ClusterRole", false),
                ("clusterrolebindings", "ClusterRoleBinding", false),
                ("roles", "Role", true),
                ("rolebindings", "RoleBinding", true),
            ],
        ),
        (
            "gateway.networking.k8s.io/v1",
            vec![
                ("gatewayclasses", "GatewayClass", false),
                ("gateways", "Gateway", true),
                ("httproutes", "HTTPRoute", true),
            ],
        ),
        (
            "extensions.istio.io/v1alpha1",
            vec![("wasmplugins", "WasmPlugin", true)],
        ),
        (
            "networking.istio.io/v1alpha3",
            vec![("envoyfilters", "EnvoyFilter", true)],
        ),
    ]
}

fn answer(path: &str) -> (u16, Value) {
    let groups = discovery();
    let resource_list = |gv: &str, resources: &[(&str, &str, bool)]| {
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
               "resources": resources.iter().map(|(plural, kind, namespaced)| json!({
                   "name": plural, "singularName": "", "namespaced": namespaced, "kind": kind,
                   "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})).collect::<Vec<_>>()})
    };
    match path {
        "/api" => (
            200,
            json!({"kind": "APIVersions", "versions": ["v1"],
                   "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        ),
        "/apis" => (
            200,
            json!({"kind": "APIGroupList", "apiVersion": "v1",
                   "groups": groups.iter().filter(|(gv, _)| gv.contains('/')).map(|(gv, _)| {
                       let (g, v) = gv.split_once('/').unwrap_or_default();
                       json!({"name": g, "versions": [{"groupVersion": gv, "version": v}],
                              "preferredVersion": {"groupVersion": gv, "version": v}})
                   }).collect::<Vec<_>>()}),
        ),
        _ => {
            let gv = path
                .strip_prefix("/api/")
                .or_else(|| path.strip_prefix("/apis/"))
                .unwrap_or_default();
            match groups.iter().find(|(g, _)| *g == gv) {
                Some((gv, resources)) => (200, resource_list(gv, resources)),
                None => (
                    404,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                           "reason": "NotFound", "code": 404, "message": format!("{path} not found")}),
                ),
            }
        }
    }
}

/// Answers discovery and 404s on 127.0.0.1 (see the module docs); one request per connection.
struct FakeApiServer {
    addr: SocketAddr,
}

impl FakeApiServer {
    fn start() -> FakeApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let target = request_line.split(' ').nth(1).unwrap_or("/");
                let path = target.split('?').next().unwrap_or("/");
                let (code, body) = answer(path);
                let body = body.to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        FakeApiServer { addr }
    }

    /// `kubectl apply --dry-run=client --validate=false` with `args` against this server.
    fn apply(&self, args: &[&str]) -> (bool, String) {
        let cache = tempdir();
        let out = Command::new("kubectl")
            .args([
                "apply",
                "--dry-run=client",
                "--validate=false",
                "--server",
                &format!("http://{}", self.addr),
                "--cache-dir",
            ])
            .arg(&cache)
            .args(args)
            .env("KUBECONFIG", "/dev/null")
            .output()
            .expect("kubectl is needed for this test (apt-get install kubectl)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_dir_all(&cache);
        (out.status.success(), text)
    }
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "gammaroute-deploy-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every document of the kustomization, as `kubectl kustomize` builds it (offline).
fn kustomized() -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(deploy_dir())
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml_ng::Deserializer::from_slice(&out.stdout)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} missing from deploy/"))
}

#[test]
fn deploy_manifests_pass_kubectl_dry_run() {
    let server = FakeApiServer::start();
    let dir = deploy_dir();
    let (ok, text) = server.apply(&["-k", dir.to_str().unwrap()]);
    assert!(ok, "kubectl apply -k deploy/:\n{text}");
    for expected in [
        "namespace/gammaroute-system created (dry run)",
        "serviceaccount/config-pusher created (dry run)",
        "clusterrole.rbac.authorization.k8s.io/gammaroute-config-pusher created (dry run)",
        "clusterrolebinding.rbac.authorization.k8s.io/gammaroute-config-pusher created (dry run)",
        "role.rbac.authorization.k8s.io/config-pusher-leader-election created (dry run)",
        "rolebinding.rbac.authorization.k8s.io/config-pusher-leader-election created (dry run)",
        "service/config-pusher created (dry run)",
        "deployment.apps/config-pusher created (dry run)",
        "networkpolicy.networking.k8s.io/config-pusher created (dry run)",
        "configmap/gammaroute-proxy created (dry run)",
        "gatewayclass.gateway.networking.k8s.io/gammaroute created (dry run)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // `-f` on the folder works too (the kustomization file itself is not a manifest kubectl
    // applies, so apply the listed files).
    let files: Vec<String> = [
        "namespace",
        "serviceaccount",
        "rbac",
        "service",
        "deployment",
        "networkpolicy",
        "proxy-params",
        "gatewayclass",
    ]
    .iter()
    .map(|f| dir.join(format!("{f}.yaml")).display().to_string())
    .collect();
    let mut args = vec![];
    for f in &files {
        args.extend(["-f", f.as_str()]);
    }
    let (ok, text) = server.apply(&args);
    assert!(ok, "kubectl apply -f:\n{text}");
}

#[test]
fn deploy_manifests_are_least_privilege_and_locked_down() {
    let docs = kustomized();
    assert_eq!(
        docs.len(),
        11,
        "every file of deploy/ is in kustomization.yaml"
    );

    // Typed: every field has the type Kubernetes expects.
    let deployment: Deployment =
        serde_json::from_value(find(&docs, "Deployment", "config-pusher").clone()).unwrap();
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("config-pusher"));
    assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
    let c = &pod.containers[0];
    let sc = c.security_context.clone().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.capabilities.unwrap().drop, Some(vec!["ALL".to_string()]));
    let probe_path = |p: Option<k8s_openapi::api::core::v1::Probe>| {
        p.and_then(|p| p.http_get).and_then(|h| h.path).unwrap()
    };
    assert_eq!(probe_path(c.liveness_probe.clone()), "/healthz");
    assert_eq!(probe_path(c.readiness_probe.clone()), "/readyz");
    assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 18000);
    assert_eq!(c.ports.as_ref().unwrap()[1].container_port, 18001);
    assert!(c.resources.as_ref().unwrap().requests.is_some());
    // The container's command line is one config-pusher accepts: serve --kube on port 18000.
    use clap::Parser;
    let args = c.args.clone().unwrap();
    let cli = config_pusher::cli::Cli::try_parse_from(
        std::iter::once("config-pusher".to_string()).chain(args.iter().cloned()),
    )
    .unwrap_or_else(|e| panic!("deployment args {args:?}: {e}"));
    let token_file = match cli.command {
        config_pusher::cli::Command::Serve {
            input,
            listen,
            token_file,
            insecure_no_auth,
            xds_listen,
            ..
        } => {
            assert!(input.kube, "{args:?}");
            assert_eq!(listen.port(), 18000);
            // ADS for the provisioned gateway proxies, closed by the same token.
            let xds = xds_listen.expect("--xds-listen");
            assert_eq!(xds.port(), 18001);
            config_pusher::serve::check_exposure(xds, token_file.is_some(), false)
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
            // Reachable by every pod: closed by a token, never --insecure-no-auth.
            assert!(!insecure_no_auth, "{args:?}");
            config_pusher::serve::check_exposure(listen, token_file.is_some(), false)
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
            token_file.expect("--token-file")
        }
        other => panic!("deployment runs {other:?}, not serve"),
    };
    // The token file is the key `secret` of the Secret config-pusher-secret, mounted read-only.
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| token_file.starts_with(&m.mount_path))
        .unwrap_or_else(|| panic!("{} is in no volume mount", token_file.display()));
    assert_eq!(mount.read_only, Some(true));
    assert_eq!(
        token_file.strip_prefix(&mount.mount_path).unwrap(),
        Path::new("secret")
    );
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .expect("the mounted volume");
    let secret = volume.secret.as_ref().expect("a Secret volume");
    assert_eq!(secret.secret_name.as_deref(), Some("config-pusher-secret"));
    assert_ne!(secret.optional, Some(true), "no secret, no start");

    // Only labelled client namespaces reach the pods, and only on the API port.
    let policy: NetworkPolicy =
        serde_json::from_value(find(&docs, "NetworkPolicy", "config-pusher").clone()).unwrap();
    assert_eq!(
        policy.metadata.namespace.as_deref(),
        Some("gammaroute-system")
    );
    let spec = policy.spec.unwrap();
    assert_eq!(
        spec.pod_selector.unwrap().match_labels.unwrap()["app.kubernetes.io/name"],
        "config-pusher"
    );
    assert_eq!(spec.policy_types.unwrap(), ["Ingress"]);
    let ingress = spec.ingress.unwrap();
    assert_eq!(ingress.len(), 1);
    let from = ingress[0].from.clone().unwrap();
    assert_eq!(from.len(), 2);
    assert!(from[0].ip_block.is_none() && from[0].pod_selector.is_none());
    // Provisioned proxies, in whatever namespace their Gateway is: by the label only
    // config-pusher's objects carry (they still need their role's token).
    assert_eq!(
        from[1].pod_selector.clone().unwrap().match_labels.unwrap()["app.kubernetes.io/managed-by"],
        config_pusher::provision::objects::MANAGED_BY
    );
    assert!(from[1].ip_block.is_none());
    assert_eq!(
        from[0]
            .namespace_selector
            .clone()
            .unwrap()
            .match_labels
            .unwrap()["gammaroute.dev/config-pusher-client"],
        "true"
    );
    let ports = ingress[0].ports.clone().unwrap();
    let open: Vec<_> = ports.iter().map(|p| p.port.clone()).collect();
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int;
    assert_eq!(
        open,
        [Some(Int(18000)), Some(Int(18001))],
        "the API and ADS"
    );
    let env: Vec<&str> = c.env.iter().flatten().map(|e| e.name.as_str()).collect();
    assert!(
        env.contains(&"POD_NAME") && env.contains(&"POD_NAMESPACE"),
        "lease identity"
    );

    // Cluster-wide: read the watched kinds, write status subresources and the four kinds
    // provisioned for each Gateway (never `update`/`watch` on those: server-side apply, lists).
    let role: ClusterRole =
        serde_json::from_value(find(&docs, "ClusterRole", "gammaroute-config-pusher").clone())
            .unwrap();
    let mut readable = Vec::new();
    let mut provisioned = Vec::new();
    for rule in role.rules.unwrap() {
        let write = rule
            .verbs
            .iter()
            .any(|v| !matches!(v.as_str(), "get" | "list" | "watch"));
        for r in rule.resources.unwrap() {
            if !write {
                readable.push(r);
            } else if r.ends_with("/status") {
                assert!(rule.verbs.iter().all(|v| v == "patch" || v == "update"));
            } else if r == "gateways/finalizers" {
                assert_eq!(rule.verbs, ["update"]);
            } else {
                assert_eq!(
                    rule.verbs,
                    ["get", "list", "create", "patch", "delete"],
                    "write access to {r}"
                );
                provisioned.push(r);
            }
        }
    }
    provisioned.sort();
    assert_eq!(
        provisioned,
        ["configmaps", "deployments", "serviceaccounts", "services"]
    );
    // The class's parameters are the shipped ConfigMap, and it parses.
    let params: k8s_openapi::api::core::v1::ConfigMap =
        serde_json::from_value(find(&docs, "ConfigMap", "gammaroute-proxy").clone()).unwrap();
    let parsed = config_pusher::provision::params::parse(&params).unwrap();
    assert_eq!(parsed.replicas, 2);
    assert_eq!(
        find(&docs, "GatewayClass", "gammaroute")["spec"]["parametersRef"],
        json!({"group": "", "kind": "ConfigMap", "name": "gammaroute-proxy",
               "namespace": "gammaroute-system"})
    );
    readable.sort();
    assert_eq!(
        readable,
        [
            "endpointslices",
            "gatewayclasses",
            "gateways",
            "httproutes",
            "namespaces",
            "pods",
            "referencegrants",
            "secrets",
            "services"
        ]
    );
    // Leases only in its own namespace, only its own Lease beyond create.
    let lease: Role =
        serde_json::from_value(find(&docs, "Role", "config-pusher-leader-election").clone())
            .unwrap();
    assert_eq!(
        lease.metadata.namespace.as_deref(),
        Some("gammaroute-system")
    );
    for rule in lease.rules.unwrap() {
        assert_eq!(rule.resources.unwrap(), ["leases"]);
        if rule.verbs != ["create"] {
            assert_eq!(rule.resource_names.unwrap(), ["config-pusher-status"]);
        }
    }

    // The GatewayClass names our controller (translate's default).
    let class: gateway_api::gatewayclasses::GatewayClass =
        serde_json::from_value(find(&docs, "GatewayClass", "gammaroute").clone()).unwrap();
    assert_eq!(
        class.spec.controller_name,
        config_pusher::translate::DEFAULT_CONTROLLER_NAME
    );
    assert_eq!(
        find(&docs, "Service", "config-pusher")["spec"]["ports"][0]["port"],
        18000
    );
    let xds = &find(&docs, "Service", "config-pusher")["spec"]["ports"][1];
    assert_eq!(xds["port"], 18001);
    assert_eq!(xds["targetPort"], "grpc-xds");
    assert_eq!(
        xds["appProtocol"], "kubernetes.io/h2c",
        "gRPC: HTTP/2 prior knowledge"
    );
}

#[test]
fn istio_manifests_pass_kubectl_dry_run() {
    let out = tempdir().join("render");
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/gamma/input");
    let status = Command::new(env!("CARGO_BIN_EXE_config-pusher"))
        .args(["render", "--istio", "--from"])
        .arg(&golden)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let istio = out.join("istio");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&istio)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let server = FakeApiServer::start();
    let (ok, text) = server.apply(&["-f", istio.to_str().unwrap()]);
    assert!(ok, "kubectl apply -f istio/:\n{text}");
    for kind in [
        "wasmplugin.extensions.istio.io/gammaroute created (dry run)",
        "envoyfilter.networking.istio.io/gammaroute created (dry run)",
    ] {
        assert_eq!(text.matches(kind).count(), files.len(), "{kind}: {text}");
    }
    let _ = std::fs::remove_dir_all(out.parent().unwrap());
}

fn render_istio(extra: &[&str]) -> Vec<(String, Vec<Value>)> {
    let out = tempdir().join(format!("render-{}", extra.len()));
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/gamma/input");
    let status = Command::new(env!("CARGO_BIN_EXE_config-pusher"))
        .args(["render", "--istio", "--from"])
        .arg(&golden)
        .arg("--out")
        .arg(&out)
        .args(extra)
        .status()
        .unwrap();
    assert!(status.success());
    let mut files: Vec<PathBuf> = std::fs::read_dir(out.join("istio"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let docs = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let docs = serde_yaml_ng::Deserializer::from_str(&text)
                .map(|d| serde::Deserialize::deserialize(d).unwrap())
                .collect();
            (f.file_stem().unwrap().to_str().unwrap().to_string(), docs)
        })
        .collect();
    let _ = std::fs::remove_dir_all(&out);
    docs
}

#[test]
fn istio_wasm_plugin_polls_config_pusher_and_routes_by_header() {
    let rendered = render_istio(&[]);
    let namespaces: Vec<&str> = rendered.iter().map(|(ns, _)| ns.as_str()).collect();
    assert_eq!(
        namespaces,
        ["batch", "bookinfo", "frontend"],
        "one per mesh table"
    );
    for (ns, docs) in &rendered {
        let plugin = &docs[0];
        assert_eq!(plugin["kind"], "WasmPlugin");
        assert_eq!(plugin["metadata"]["namespace"], ns.as_str());
        let spec = &plugin["spec"];
        assert_eq!(spec["match"], json!([{"mode": "CLIENT"}]));
        // A module istio-agent cannot fetch, or that crashes, leaves the namespace's requests to
        // istiod's routing (anything else: a deny-all filter for a failed fetch).
        assert_eq!(spec["failStrategy"], "FAIL_OPEN");
        for doc in docs {
            assert_eq!(
                doc["metadata"]["annotations"]["gammaroute.dev/min-istio-version"],
                "1.28"
            );
        }
        assert_eq!(spec["phase"], "UNSPECIFIED_PHASE");
        assert!(spec["url"].as_str().unwrap().starts_with("oci://"));
        let config = &spec["pluginConfig"];
        assert_eq!(
            config["clusterNaming"],
            json!({"istio": {"domain": "cluster.local"}})
        );
        assert_eq!(
            config["source"],
            json!({"cluster": "outbound|18000||config-pusher.gammaroute-system.svc.cluster.local",
                   "authority": "config-pusher.gammaroute-system.svc.cluster.local:18000",
                   "role": format!("mesh/{ns}"), "longPollSeconds": 30})
        );
        let filter = &docs[1];
        assert_eq!(filter["kind"], "EnvoyFilter");
        let patches = filter["spec"]["configPatches"].as_array().unwrap();
        assert_eq!(patches[0]["patch"]["operation"], "INSERT_FIRST");
        // Every x-envoy-* and x-gamma-* header the application sends is stripped.
        assert_eq!(
            patches[0]["patch"]["value"]["typed_config"]["mutations"]["request_mutations"],
            json!([
                {"remove_on_match": {"key_matcher": {"prefix": "x-envoy-", "ignore_case": true}}},
                {"remove_on_match": {"key_matcher": {"prefix": "x-gamma-", "ignore_case": true}}},
            ])
        );
        // The outbound HCM normalises as the bootstraps do.
        assert_eq!(patches[1]["applyTo"], "NETWORK_FILTER");
        assert_eq!(patches[1]["patch"]["operation"], "MERGE");
        let hcm = &patches[1]["patch"]["value"]["typed_config"];
        assert_eq!(
            hcm["path_with_escaped_slashes_action"],
            "UNESCAPE_AND_REDIRECT"
        );
        assert_eq!(
            hcm["common_http_protocol_options"]["headers_with_underscores_action"],
            "REJECT_REQUEST"
        );
        // The strip filter is native, not part of the module: a failed module cannot let a
        // client steer.
        assert_eq!(patches[0]["applyTo"], "HTTP_FILTER");
        let route = &patches[2]["patch"]["value"];
        assert_eq!(patches[2]["patch"]["operation"], "INSERT_FIRST");
        assert_eq!(route["route"]["cluster_header"], "x-gamma-cluster");
        assert_eq!(route["route"]["timeout"], "0s");
        // Only requests the filter routed: everything else (no table, unrouted Services and
        // ports, a failed module) keeps istiod's routes, its own GAMMA included.
        assert_eq!(
            route["match"]["headers"],
            json!([{"name": "x-gamma-cluster", "present_match": true}])
        );
    }
}

#[test]
fn istio_inline_plugin_config_is_accepted_by_the_filter() {
    use gammaroute_filter::host::config::PluginConfig;
    for (ns, docs) in render_istio(&["--istio-inline"]) {
        let config = serde_json::to_vec(&docs[0]["spec"]["pluginConfig"]).unwrap();
        let parsed = PluginConfig::parse(&config).unwrap_or_else(|e| panic!("{ns}: {e}"));
        let table = parsed.table.clone().expect("an inline table");
        // What the filter does on load: version check, Istio cluster names, validation.
        let router = parsed
            .compile(table)
            .unwrap_or_else(|e| panic!("{ns}: {e}"));
        assert_eq!(router.table().role, format!("mesh/{ns}"));
        for rule in router.table().routes.iter().flat_map(|r| &r.rules) {
            for b in &rule.backends {
                if let gammaroute_filter::table::BackendTarget::Cluster(c) = &b.target {
                    assert!(
                        c.starts_with("outbound|") && c.ends_with(".svc.cluster.local"),
                        "{c}"
                    );
                }
            }
        }
    }
}

#[test]
fn istio_source_plugin_config_is_accepted_by_the_filter() {
    use gammaroute_filter::host::config::PluginConfig;
    for (ns, docs) in render_istio(&[]) {
        let config = serde_json::to_vec(&docs[0]["spec"]["pluginConfig"]).unwrap();
        let parsed = PluginConfig::parse(&config).unwrap_or_else(|e| panic!("{ns}: {e}"));
        let source = parsed
            .source
            .as_ref()
            .expect("the WasmPlugin fetches its table");
        assert_eq!(source.role, format!("mesh/{ns}"));
        assert_eq!(
            source.cluster,
            "outbound|18000||config-pusher.gammaroute-system.svc.cluster.local"
        );
        assert_eq!(parsed.role(), format!("mesh/{ns}"));
    }
}

#[test]
fn istio_plugins_carry_their_own_namespace_token() {
    let dir = tempdir();
    std::fs::create_dir_all(&dir).unwrap();
    let secret_file = dir.join("secret");
    std::fs::write(&secret_file, "s3cret-of-the-server\n").unwrap();
    let rendered = render_istio(&["--config-pusher-secret-file", secret_file.to_str().unwrap()]);
    let secret = config_pusher::auth::Secret::new(b"s3cret-of-the-server").unwrap();
    assert_eq!(rendered.len(), 3);
    for (ns, docs) in &rendered {
        let role = format!("mesh/{ns}");
        let token = docs[0]["spec"]["pluginConfig"]["source"]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("{ns}: no token"));
        assert_eq!(token, secret.role_token(&role));
        assert_eq!(
            secret.access(token.as_bytes()),
            config_pusher::auth::Access::Role(role.clone())
        );
        // The filter takes it as its source's token.
        let config = serde_json::to_vec(&docs[0]["spec"]["pluginConfig"]).unwrap();
        let parsed = gammaroute_filter::host::config::PluginConfig::parse(&config).unwrap();
        assert_eq!(parsed.source.unwrap().token.as_deref(), Some(token));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn provisioned_objects_pass_kubectl_dry_run() {
    use config_pusher::provision::objects::{desired, ProvisionOptions};
    use config_pusher::provision::params::ProxyParams;
    let gateway: gateway_api::experimental::gateways::Gateway = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "web", "namespace": "shop", "uid": "0e5b1f9c-1111-4222-8333-444455556666"},
        "spec": {"gatewayClassName": "gammaroute",
                 "infrastructure": {"labels": {"team": "shop"}, "annotations": {"example.com/a": "b"}},
                 "listeners": [{"name": "http", "protocol": "HTTP", "port": 80},
                               {"name": "https", "protocol": "HTTPS", "port": 443}]}}))
    .unwrap();
    let options = ProvisionOptions {
        envoy_image: "docker.io/envoyproxy/envoy:v1.40-latest".into(),
        module: config_pusher::provision::ModuleSource::Image(
            "ghcr.io/gammaroute/gammaroute-wasm:0.1.0".into(),
        ),
    };
    let objects = desired(&gateway, &ProxyParams::default(), &options, "admin: {}\n").unwrap();
    let list = json!({"apiVersion": "v1", "kind": "List",
                      "items": objects.iter().map(|o| o.body.clone()).collect::<Vec<_>>()});
    let dir = tempdir();
    let file = dir.join("provisioned.json");
    std::fs::write(&file, list.to_string()).unwrap();
    let server = FakeApiServer::start();
    let (ok, text) = server.apply(&["-f", file.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "kubectl apply provisioned objects:\n{text}");
    for expected in [
        "serviceaccount/web-gammaroute created (dry run)",
        "configmap/web-gammaroute created (dry run)",
        "service/web-gammaroute created (dry run)",
        "deployment.apps/web-gammaroute created (dry run)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}
