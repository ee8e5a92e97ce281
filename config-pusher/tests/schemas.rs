//! Everything we ship passes the real schemas (issue 17 item 8): every Gateway API object in
//! `config-pusher/deploy/` and `examples/` is validated against the vendored upstream CRDs'
//! `openAPIV3Schema` (`tests/crds/`, see its README) as the API server validates it before
//! storing: types, unknown fields, `required`, `enum`, string lengths and `pattern`s, item
//! counts and number bounds; so is every Istio `WasmPlugin` and `EnvoyFilter` that
//! `render --istio` writes, against Istio's CRDs. Schema defaults are applied first, and then
//! every CEL rule (`x-kubernetes-validations`) is evaluated with the `cel` crate, plus the few
//! Kubernetes library functions it lacks ([`cel_context`]); transition rules (`oldSelf`) do not
//! apply to a create and are skipped. Not checked: `metadata` (the API server's own checks) and
//! CEL cost limits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The vendored CRD folders (`tests/crds/README.md`).
const CRD_DIRS: [&str; 2] = ["gateway-api-v1.6.1-experimental", "istio-1.31-dev"];

/// `openAPIV3Schema` of every served version, by `(kind, apiVersion)`.
fn schemas() -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    let files = CRD_DIRS.iter().flat_map(|d| {
        std::fs::read_dir(root().join("tests/crds").join(d))
            .expect("vendored CRDs")
            .map(|e| e.unwrap().path())
    });
    for path in files {
        let crd: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let group = crd["spec"]["group"].as_str().unwrap();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap();
        for v in crd["spec"]["versions"].as_array().unwrap() {
            let version = format!("{group}/{}", v["name"].as_str().unwrap());
            out.insert(
                (kind.to_string(), version),
                v["schema"]["openAPIV3Schema"].clone(),
            );
        }
    }
    assert!(out.len() >= 6, "{:?}", out.keys());
    out
}

/// Every YAML document of the files under `dir`.
fn documents(dir: &Path) -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, doc) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
            let value: Value = serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{} document {i}: {e}", file.display()));
            if !value.is_null() {
                out.push((format!("{} document {i}", file.display()), value));
            }
        }
    }
    out
}

/// The violations of `value` against `schema`, as the API server finds them on create: defaults
/// applied first, then the structural checks and the CEL rules.
fn validate(schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let mut value = value.clone();
    with_defaults(schema, &mut value);
    structural(schema, &value, at, errors);
}

/// Fills absent properties that have a `default` (structural defaulting, which runs before
/// validation: CEL rules see defaulted objects).
fn with_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(fields) => {
            if let Some(properties) = schema["properties"].as_object() {
                for (name, s) in properties {
                    if !fields.contains_key(name) && !s["default"].is_null() {
                        fields.insert(name.clone(), s["default"].clone());
                    }
                }
                for (name, v) in fields.iter_mut() {
                    if let Some(s) = properties.get(name) {
                        with_defaults(s, v);
                    }
                }
            } else if schema["additionalProperties"].is_object() {
                for v in fields.values_mut() {
                    with_defaults(&schema["additionalProperties"], v);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                with_defaults(&schema["items"], item);
            }
        }
        _ => {}
    }
}

/// The Kubernetes CEL library functions the vendored rules use that the `cel` crate lacks:
/// `split` (strings extension), `isURL`, `url` and `getScheme` (URL library). A URL here is
/// `scheme://rest` (RFC 3986 scheme) — what the one rule using them (WasmPlugin `url`) asks.
fn cel_context<'a>() -> cel::Context<'a> {
    use cel::extractors::This;
    use std::sync::Arc;
    fn scheme(s: &str) -> Option<&str> {
        let (scheme, rest) = s.split_once("://")?;
        let mut chars = scheme.chars();
        let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
            && !rest.is_empty()
            && !s.chars().any(char::is_whitespace);
        ok.then_some(scheme)
    }
    fn split(This(this): This<Arc<String>>, sep: Arc<String>) -> Arc<Vec<cel::Value>> {
        Arc::new(
            this.split(sep.as_str())
                .map(|p| cel::Value::String(Arc::new(p.to_string())))
                .collect(),
        )
    }
    fn is_url(s: Arc<String>) -> bool {
        scheme(&s).is_some()
    }
    fn url(s: Arc<String>) -> Arc<String> {
        s
    }
    fn get_scheme(This(this): This<Arc<String>>) -> Arc<String> {
        Arc::new(scheme(&this).unwrap_or_default().to_string())
    }
    let mut ctx = cel::Context::default();
    ctx.add_function("split", split);
    ctx.add_function("isURL", is_url);
    ctx.add_function("url", url);
    ctx.add_function("getScheme", get_scheme);
    ctx
}

/// The CEL rules (`x-kubernetes-validations`) of `schema` on `value`, `self` bound to it.
/// Transition rules (`oldSelf`) do not apply on create and are skipped; a rule that does not
/// evaluate to `true` — `false`, or an evaluation error — is a violation, as on the API server.
fn cel_rules(schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    for rule in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(source) = rule["rule"].as_str() else {
            continue;
        };
        if source.contains("oldSelf") {
            continue;
        }
        let program = cel::Program::compile(source)
            .unwrap_or_else(|e| panic!("{at}: CEL rule {source:?} does not parse: {e}"));
        let mut ctx = cel_context();
        let this = cel::to_value(value).unwrap_or_else(|e| panic!("{at}: {e}"));
        ctx.add_variable_from_value("self", this);
        let message = rule["message"].as_str().unwrap_or(source);
        match program.execute(&ctx) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(other) => errors.push(format!("{at}: {message} (CEL {source:?} gave {other:?})")),
            Err(e) => errors.push(format!("{at}: CEL {source:?} failed: {e}")),
        }
    }
}

/// The structural violations of `value` at `at` against `schema`, then its CEL rules.
fn structural(schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let mut fail = |m: String| errors.push(format!("{at}: {m}"));
    if value.is_null() && schema["nullable"] == true {
        return;
    }
    let ty = schema["type"].as_str();
    let ok = match (ty, value) {
        (None, _) => true,
        (Some("object"), Value::Object(_)) | (Some("array"), Value::Array(_)) => true,
        (Some("string"), Value::String(_)) | (Some("boolean"), Value::Bool(_)) => true,
        (Some("integer"), Value::Number(n)) => n.is_i64() || n.is_u64(),
        (Some("number"), Value::Number(_)) => true,
        _ => false,
    };
    if !ok {
        return fail(format!("expected {}, found {value}", ty.unwrap_or("?")));
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            fail(format!("{value} is not one of {allowed:?}"));
        }
    }
    match value {
        Value::String(s) => {
            let n = s.chars().count() as u64;
            if let Some(max) = schema["maxLength"].as_u64() {
                if n > max {
                    fail(format!("{n} characters, at most {max} allowed: {s:?}"));
                }
            }
            if let Some(min) = schema["minLength"].as_u64() {
                if n < min {
                    fail(format!("{n} characters, at least {min} required"));
                }
            }
            if let Some(p) = schema["pattern"].as_str() {
                let re = regex::Regex::new(p)
                    .unwrap_or_else(|e| panic!("pattern {p:?} does not compile: {e}"));
                if !re.is_match(s) {
                    fail(format!("{s:?} does not match {p:?}"));
                }
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if schema["minimum"].as_f64().is_some_and(|m| x < m) {
                fail(format!("{x} is below {}", schema["minimum"]));
            }
            if schema["maximum"].as_f64().is_some_and(|m| x > m) {
                fail(format!("{x} is above {}", schema["maximum"]));
            }
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if schema["maxItems"].as_u64().is_some_and(|m| n > m) {
                fail(format!("{n} items, at most {} allowed", schema["maxItems"]));
            }
            if schema["minItems"].as_u64().is_some_and(|m| n < m) {
                fail(format!(
                    "{n} items, at least {} required",
                    schema["minItems"]
                ));
            }
            for (i, item) in items.iter().enumerate() {
                structural(&schema["items"], item, &format!("{at}[{i}]"), errors);
            }
        }
        Value::Object(fields) => {
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap_or_default();
                if !fields.contains_key(name) {
                    fail(format!("required field {name} is missing"));
                }
            }
            let properties = schema["properties"].as_object();
            for (name, v) in fields {
                let path = format!("{at}.{name}");
                match properties.and_then(|p| p.get(name)) {
                    // apiVersion, kind and metadata are the API server's own (a CRD may not
                    // even list them, Istio's do not).
                    _ if at.is_empty()
                        && ["apiVersion", "kind", "metadata"].contains(&name.as_str()) => {}
                    Some(s) => structural(s, v, &path, errors),
                    None if schema["additionalProperties"].is_object() => {
                        structural(&schema["additionalProperties"], v, &path, errors)
                    }
                    None if properties.is_none()
                        || schema["x-kubernetes-preserve-unknown-fields"] == true => {}
                    None => errors.push(format!("{path}: unknown field")),
                }
            }
        }
        _ => {}
    }
    cel_rules(schema, value, at, errors);
}

/// API groups of the vendored CRDs: a document of one of them must have a schema.
const GROUPS: [&str; 3] = [
    "gateway.networking.k8s.io/",
    "extensions.istio.io/",
    "networking.istio.io/",
];

/// The violations of every document under `dir` of a vendored CRD's group; how many were
/// checked.
fn check(dir: &Path) -> (usize, Vec<String>) {
    let schemas = schemas();
    let mut errors = Vec::new();
    let mut checked = 0;
    for (origin, doc) in documents(dir) {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let version = doc["apiVersion"].as_str().unwrap_or_default().to_string();
        if !GROUPS.iter().any(|g| version.starts_with(g)) {
            continue;
        }
        let schema = schemas
            .get(&(kind.clone(), version.clone()))
            .unwrap_or_else(|| panic!("{origin}: {kind} {version} is not served by the CRDs"));
        let mut found = Vec::new();
        // The status is a subresource: an apply does not carry it.
        let mut doc = doc;
        if let Some(m) = doc.as_object_mut() {
            m.remove("status");
        }
        validate(schema, &doc, "", &mut found);
        errors.extend(found.into_iter().map(|e| format!("{origin} ({kind}): {e}")));
        checked += 1;
    }
    (checked, errors)
}

#[test]
fn shipped_manifests_pass_the_gateway_api_schemas() {
    let (checked, errors) = check(&root().join("deploy"));
    assert!(checked >= 1, "no Gateway API object in deploy/");
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn examples_pass_the_gateway_api_schemas() {
    let examples = root().join("../examples");
    let (checked, errors) = check(&examples);
    assert!(
        checked >= 8,
        "only {checked} Gateway API objects in examples/"
    );
    // 90-broken.yaml is broken on purpose (its header says so), to show the statuses of a rule
    // config-pusher cannot route; an API server refuses that rule's header name, which is
    // what makes it an example for the folder source only.
    let expected = "90-broken.yaml document 0 (HTTPRoute): .spec.rules[1].matches[0].headers[0].name: \"bad header\" does not match";
    let unexpected: Vec<&String> = errors.iter().filter(|e| !e.contains(expected)).collect();
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    assert_eq!(
        errors.len(),
        1,
        "the broken example is still broken: {errors:?}"
    );
}

#[test]
fn the_validator_sees_what_the_api_server_refuses() {
    let schemas = schemas();
    let class = &schemas[&(
        "GatewayClass".to_string(),
        "gateway.networking.k8s.io/v1".to_string(),
    )];
    let doc = |spec: Value| {
        serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "x"},
            "spec": spec,
        })
    };
    let errors = |spec| {
        let mut e = Vec::new();
        validate(class, &doc(spec), "", &mut e);
        e
    };
    assert_eq!(
        errors(serde_json::json!({"controllerName": "a.dev/b"})),
        Vec::<String>::new()
    );
    // The 71-character description deploy/gatewayclass.yaml once had.
    let long = "Envoy with the gammaroute proxy-wasm filter; routes from config-pusher.";
    let e = errors(serde_json::json!({"controllerName": "a.dev/b", "description": long}));
    assert!(e.iter().any(|m| m.contains("at most 64")), "{e:?}");
    let e = errors(serde_json::json!({"controllerName": "no-slash", "bogus": 1}));
    assert!(e.iter().any(|m| m.contains("does not match")), "{e:?}");
    assert!(
        e.iter().any(|m| m.contains(".spec.bogus: unknown field")),
        "{e:?}"
    );
    let e = errors(serde_json::json!({}));
    assert!(
        e.iter().any(|m| m.contains("controllerName is missing")),
        "{e:?}"
    );
}

/// `render --istio` on `from` with `extra` flags, into a fresh folder; the `istio/` folder.
fn render_istio(from: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let out =
        std::env::temp_dir().join(format!("gammaroute-schemas-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_config-pusher"))
        .args(["render", "--istio", "--from"])
        .arg(from)
        .arg("--out")
        .arg(&out)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "render --istio: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    out.join("istio")
}

#[test]
fn rendered_istio_manifests_pass_the_istio_schemas() {
    let secret =
        std::env::temp_dir().join(format!("gammaroute-schemas-{}-secret", std::process::id()));
    std::fs::write(&secret, "s3cret-s3cret-s3cret-s3cret-s3cret\n").unwrap();
    let sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let cases: [(&str, Vec<&str>); 3] = [
        ("default", vec![]),
        (
            "pinned",
            vec![
                "--wasm-sha256",
                sha,
                "--config-pusher-secret-file",
                secret.to_str().unwrap(),
            ],
        ),
        ("inline", vec!["--istio-inline"]),
    ];
    for (name, extra) in cases {
        let istio = render_istio(&root().join("tests/golden/gamma/input"), name, &extra);
        let (checked, errors) = check(&istio);
        // A WasmPlugin and an EnvoyFilter per mesh namespace (and a DestinationRule with TLS).
        let per_namespace = if name == "tls" { 3 } else { 2 };
        assert!(
            checked >= per_namespace && checked % per_namespace == 0,
            "{name}: {checked} objects checked"
        );
        assert!(errors.is_empty(), "{name}: {}", errors.join("\n"));
        let _ = std::fs::remove_dir_all(istio.parent().unwrap());
    }
    let _ = std::fs::remove_file(&secret);
}

#[test]
fn the_istio_schemas_refuse_what_istiod_would() {
    let schemas = schemas();
    let plugin = &schemas[&(
        "WasmPlugin".to_string(),
        "extensions.istio.io/v1alpha1".to_string(),
    )];
    let doc = |spec: Value| {
        serde_json::json!({
            "apiVersion": "extensions.istio.io/v1alpha1",
            "kind": "WasmPlugin",
            "metadata": {"name": "x", "namespace": "y"},
            "spec": spec,
        })
    };
    let errors = |spec| {
        let mut e = Vec::new();
        validate(plugin, &doc(spec), "", &mut e);
        e
    };
    assert_eq!(
        errors(serde_json::json!({"url": "oci://x/y:1"})),
        Vec::<String>::new()
    );
    let e = errors(serde_json::json!({"url": "oci://x/y:1", "failStrategy": "FAIL_SOMETIMES"}));
    assert!(e.iter().any(|m| m.contains("is not one of")), "{e:?}");
    let e = errors(serde_json::json!({"url": "oci://x/y:1", "sha256": "ABC"}));
    assert!(e.iter().any(|m| m.contains("does not match")), "{e:?}");
    let e = errors(serde_json::json!({"url": "oci://x/y:1", "bogus": true}));
    assert!(
        e.iter().any(|m| m.contains(".spec.bogus: unknown field")),
        "{e:?}"
    );
}

#[test]
fn cel_rules_are_evaluated_on_defaulted_objects() {
    let schemas = schemas();
    let check = |kind: &str, version: &str, spec: Value| {
        let doc = serde_json::json!({
            "apiVersion": version, "kind": kind,
            "metadata": {"name": "x", "namespace": "y"}, "spec": spec,
        });
        let mut e = Vec::new();
        validate(
            &schemas[&(kind.to_string(), version.to_string())],
            &doc,
            "",
            &mut e,
        );
        e
    };
    let v1 = "gateway.networking.k8s.io/v1";
    let listener =
        |name: &str, port: u16| serde_json::json!({"name": name, "port": port, "protocol": "HTTP"});
    // Gateway: `self.all(l1, self.exists_one(l2, l1.name == l2.name))`.
    let ok = check(
        "Gateway",
        v1,
        serde_json::json!({"gatewayClassName": "c",
        "listeners": [listener("a", 80), listener("b", 81)]}),
    );
    assert_eq!(ok, Vec::<String>::new());
    let e = check(
        "Gateway",
        v1,
        serde_json::json!({"gatewayClassName": "c",
        "listeners": [listener("a", 80), listener("a", 81)]}),
    );
    assert!(
        e.iter().any(|m| m.contains("Listener name must be unique")),
        "{e:?}"
    );
    // HTTPRoute: a PathPrefix value must start with '/'; the match's `type` comes from the
    // schema default (PathPrefix) — the rule sees the defaulted object.
    let route = |path: Value| {
        serde_json::json!({"parentRefs": [{"name": "gw"}],
            "rules": [{"matches": [{"path": path}]}]})
    };
    assert_eq!(
        check("HTTPRoute", v1, route(serde_json::json!({"value": "/a"}))),
        Vec::<String>::new()
    );
    let e = check("HTTPRoute", v1, route(serde_json::json!({"value": "a"})));
    assert!(
        e.iter().any(|m| m.contains("must be an absolute path")),
        "{e:?}"
    );
    // WasmPlugin url: isURL / url().getScheme() (the URL library functions added here).
    let plugin = |url: &str| {
        check(
            "WasmPlugin",
            "extensions.istio.io/v1alpha1",
            serde_json::json!({"url": url}),
        )
    };
    assert_eq!(plugin("oci://ghcr.io/a/b:1"), Vec::<String>::new());
    assert_eq!(plugin("ghcr.io/a/b:1"), Vec::<String>::new());
    let e = plugin("ftp://host/x.wasm");
    assert!(
        e.iter().any(|m| m.contains("url must have schema")),
        "{e:?}"
    );
}
