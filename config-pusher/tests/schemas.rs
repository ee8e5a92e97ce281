//! Everything we ship passes the real schemas (issue 17 item 8): every Gateway API object in
//! `config-pusher/deploy/` and `examples/` is validated against the vendored upstream CRDs'
//! `openAPIV3Schema` (`tests/crds/`, see its README) as the API server validates it before
//! storing: types, unknown fields, `required`, `enum`, string lengths and `pattern`s, item
//! counts and number bounds; so is every Istio `WasmPlugin` and `EnvoyFilter` that
//! `render --istio` writes, against Istio's CRDs. (The CRDs' CEL rules,
//! `x-kubernetes-validations`, are not evaluated here.)

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

/// The violations of `value` at `at` against `schema` (a structural schema).
fn validate(schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
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
                validate(&schema["items"], item, &format!("{at}[{i}]"), errors);
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
                    Some(s) => validate(s, v, &path, errors),
                    None if schema["additionalProperties"].is_object() => {
                        validate(&schema["additionalProperties"], v, &path, errors)
                    }
                    None if properties.is_none()
                        || schema["x-kubernetes-preserve-unknown-fields"] == true => {}
                    None => errors.push(format!("{path}: unknown field")),
                }
            }
        }
        _ => {}
    }
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
        // A WasmPlugin and an EnvoyFilter per mesh namespace.
        assert!(
            checked >= 2 && checked % 2 == 0,
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
