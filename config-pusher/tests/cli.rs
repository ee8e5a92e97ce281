//! `config-pusher render`, `check` and `explain` end to end on golden scenarios, through the real
//! binary: files written, exit codes, output formats.

use std::process::Command;

#[test]
fn render_writes_tables_and_status() {
    let from = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/gamma/input");
    let out = std::env::temp_dir().join(format!("config-pusher-render-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(env!("CARGO_BIN_EXE_config-pusher"))
        .args(["render", "--from", from, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for role in ["mesh/bookinfo", "mesh/frontend", "mesh/batch"] {
        let json = std::fs::read(out.join(format!("tables/{role}.json"))).unwrap();
        let t = gammaroute_filter::table::decode_json(&json).unwrap();
        assert_eq!(t.role, role);
    }
    let status = std::fs::read_to_string(out.join("status.yaml")).unwrap();
    assert!(status.contains("kind: HTTPRoute"));
    // Bootstraps for the routed mesh namespaces, listed in index.json with their addresses.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    let files = index["files"].as_array().unwrap();
    let boot = files
        .iter()
        .find(|f| f["path"] == "envoy/mesh/frontend.yaml")
        .unwrap();
    assert_eq!(boot["kind"], "bootstrap");
    assert!(boot["listen"]
        .as_array()
        .unwrap()
        .contains(&"10.96.1.10:9080".into()));
    for f in files {
        assert!(out.join(f["path"].as_str().unwrap()).is_file(), "{f}");
    }
    std::fs::remove_dir_all(&out).unwrap();

    let missing = Command::new(env!("CARGO_BIN_EXE_config-pusher"))
        .args(["render", "--from", "/nonexistent/dir", "--out", "/tmp/x"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/dir does not exist"));
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_config-pusher"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn check_exit_codes_and_formats() {
    let ok = cli(&["check", "--from", "tests/golden/header-routing/input"]);
    let text = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{text}");
    assert!(text.contains("HTTPROUTE") && text.contains("OK: everything is accepted"));

    let bad = cli(&["check", "--from", "tests/golden/allowed-routes/input"]);
    let text = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{text}");
    assert!(text.contains("False (NotAllowedByListeners)"), "{text}");
    assert!(
        text.contains("load error: zz-broken.yaml document 0"),
        "{text}"
    );

    let json = cli(&[
        "check",
        "--from",
        "tests/golden/allowed-routes/input",
        "-o",
        "json",
    ]);
    assert_eq!(json.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["loadErrors"][1]["file"], "zz-broken.yaml");
    assert!(report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["kind"] == "HTTPRoute"));

    let yaml = cli(&[
        "check",
        "--from",
        "tests/golden/header-routing/input",
        "-o",
        "yaml",
    ]);
    assert_eq!(yaml.status.code(), Some(0));
    let report: serde_yaml_ng::Value = serde_yaml_ng::from_slice(&yaml.stdout).unwrap();
    assert_eq!(report["ok"], serde_yaml_ng::Value::Bool(true));
}

#[test]
fn explain_through_the_binary() {
    let run = cli(&[
        "explain",
        "--from",
        "tests/golden/header-routing/input",
        "--parent",
        "gateway/infra/gw",
        "-H",
        "x-canary: true",
        "GET http://any.host/api/items",
    ]);
    let text = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(0), "{text}");
    assert!(
        text.contains("compiled Router and reference router agree"),
        "{text}"
    );
    assert!(text.contains("api/api-v2:8080"), "{text}");

    let bad = cli(&[
        "explain",
        "--from",
        "tests/golden/header-routing/input",
        "--parent",
        "gateway/infra/nope",
        "http://h/",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no Gateway infra/nope"));
}

/// `examples/` is what README.md shows: everything accepted but the deliberately broken route
/// and, until its Secret exists, the HTTPS listener; so `check` exits 1 and names their problems.
#[test]
fn check_on_the_examples_shows_only_the_broken_route_and_the_missing_certificate() {
    let run = cli(&["check", "--from", "../examples/"]);
    let text = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{text}");
    let problems = problems(&text);
    assert_eq!(problems.len(), 4, "{text}");
    assert_eq!(
        problems
            .iter()
            .filter(|l| l.contains("HTTPRoute demo/broken"))
            .count(),
        2,
        "{text}"
    );
    assert!(
        text.contains("BackendNotFound: backendRef demo/web-v3: Service not found"),
        "{text}"
    );
    assert!(text.contains("Dropped Rule(s) [1]"), "{text}");
    assert!(
        text.contains("listener https: ResolvedRefs=False InvalidCertificateRef: tls.certificateRefs[0]: Secret demo/demo-tls not found"),
        "{text}"
    );
    assert!(
        text.contains("listener https: Programmed=False Invalid"),
        "{text}"
    );
}

/// The Secret `demo/tls-secret.sh` writes (what `make demo` and the compose demo generate at
/// start-up) resolves the examples' HTTPS listener: only the broken route is left.
#[test]
fn the_generated_demo_secret_resolves_the_https_listener() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir().join(format!("config-pusher-demo-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("examples")).unwrap();
    for entry in std::fs::read_dir(root.join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(&path, dir.join("examples").join(path.file_name().unwrap())).unwrap();
        }
    }
    let made = std::process::Command::new("sh")
        .arg(root.join("demo/tls-secret.sh"))
        .arg(dir.join("tls"))
        .output()
        .expect("sh");
    assert!(
        made.status.success(),
        "demo/tls-secret.sh (needs the openssl CLI): {}",
        String::from_utf8_lossy(&made.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("tls/secret.yaml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the Secret holds the private key");
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("tls"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers.len(), 2, "no key file left behind: {leftovers:?}");

    let run = cli(&["check", "--from", dir.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&run.stdout);
    let problems = problems(&text);
    assert_eq!(problems.len(), 2, "{text}");
    assert!(
        problems.iter().all(|l| l.contains("HTTPRoute demo/broken")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("demo/gateway   https") && l.ends_with("True")),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The problem lines of `check`'s text output.
fn problems(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.trim_start().starts_with("HTTPRoute ") || l.contains("Gateway "))
        .filter(|l| l.contains("=False") || l.contains("=True"))
        .collect()
}

#[test]
fn check_reports_an_object_defined_in_two_files() {
    let dir = std::env::temp_dir().join(format!("config-pusher-dup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("b")).unwrap();
    let svc = |port: u16| {
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: s, namespace: n}}\nspec: {{ports: [{{port: {port}}}]}}\n")
    };
    std::fs::write(dir.join("a.yaml"), svc(80)).unwrap();
    std::fs::write(dir.join("b/again.yaml"), svc(81)).unwrap();
    let from = dir.to_str().unwrap();
    let run = cli(&["check", "--from", from]);
    let out = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{out}");
    assert!(
        out.contains(
            "b/again.yaml document 0: Service n/s is also defined in a.yaml document 0, which wins"
        ),
        "{out}"
    );
    let json = cli(&["check", "--from", from, "-o", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["loadErrors"][0]["file"], "b/again.yaml");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn render_never_writes_outside_out_whatever_the_names() {
    let base = std::env::temp_dir().join(format!("config-pusher-escape-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (from, out) = (base.join("in"), base.join("out"));
    std::fs::create_dir_all(&from).unwrap();
    std::fs::write(
        from.join("bad.yaml"),
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ../../../x, namespace: app}
spec: {parentRefs: [{kind: Service, group: "", name: s}]}
---
apiVersion: v1
kind: Service
metadata: {name: s, namespace: /tmp}
spec: {clusterIP: 10.96.0.9, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: s, namespace: app}
spec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: app}
spec:
  parentRefs: [{kind: Service, group: "", name: s}]
  rules: [{backendRefs: [{name: s, namespace: ../../../escaped, port: 80}]}]
"#,
    )
    .unwrap();
    let run = cli(&[
        "render",
        "--from",
        from.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            r#"bad.yaml document 0: HTTPRoute "../../../x": field `metadata.name`: invalid value"#
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            r#"bad.yaml document 1: Service "s": field `metadata.namespace`: invalid value "/tmp""#
        ),
        "{stderr}"
    );
    // Only `out` was written to, and no role was made of the invalid namespace.
    let entries: Vec<_> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    for f in index["files"].as_array().unwrap() {
        let path = f["path"].as_str().unwrap();
        assert!(!path.contains(".."), "{path}");
    }
    std::fs::remove_dir_all(&base).unwrap();
}

/// `cli` with `stdin` on standard input.
fn cli_stdin(args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_config-pusher"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// The examples as one YAML stream, as `kubectl get -o yaml` or `cat` would pipe them.
fn examples_stream() -> Vec<u8> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        out.extend(b"\n---\n");
        out.extend(std::fs::read(f).unwrap());
    }
    out
}

#[test]
fn from_stdin_is_read_like_a_folder() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let folder = cli(&["check", "--from", dir.to_str().unwrap(), "-o", "json"]);
    let piped = cli_stdin(&["check", "--from", "-", "-o", "json"], &examples_stream());
    assert_eq!(piped.status.code(), folder.status.code());
    let statuses = |o: &std::process::Output| {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (v["objects"].clone(), v["problems"].clone())
    };
    assert_eq!(statuses(&piped), statuses(&folder));

    let out = std::env::temp_dir().join(format!("gammaroute-cli-stdin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let r = cli_stdin(
        &["render", "--from", "-", "--out", out.to_str().unwrap()],
        &examples_stream(),
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(out.join("tables/gateway/demo/gateway.json").exists());
    let e = cli_stdin(
        &[
            "explain",
            "--from",
            "-",
            "--parent",
            "gateway/demo/gateway",
            "GET http://shop.example/",
        ],
        &examples_stream(),
    );
    assert_eq!(
        e.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&e.stderr)
    );
    assert!(String::from_utf8_lossy(&e.stdout).contains("demo/shop"));
    // A broken stream is a load error named after <stdin>, not a crash.
    let bad = cli_stdin(&["check", "--from", "-"], b"kind: [unclosed");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("<stdin>"));
}

#[test]
fn completion_scripts_and_exit_codes_in_help() {
    for shell in ["bash", "zsh", "fish"] {
        let o = cli(&["completion", shell]);
        assert!(o.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&o.stdout);
        assert!(
            script.contains("config-pusher") && script.contains("explain"),
            "{shell}: {script}"
        );
    }
    let help = String::from_utf8_lossy(&cli(&["--help"]).stdout).into_owned();
    assert!(help.contains("Exit codes: 0"), "{help}");
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    use std::io::{BufRead, Write};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_config-pusher"))
        .args([
            "--log-format",
            "json",
            "serve",
            "--from",
            "-",
            "--listen",
            "127.0.0.1:0",
        ])
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&examples_stream())
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let v: serde_json::Value =
        serde_json::from_str(&first).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert_eq!(v["level"], "INFO", "{first}");
    assert!(
        v["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("serving on http://127.0.0.1:")),
        "{first}"
    );
}

#[test]
fn render_refuses_a_wasm_url_or_sha256_that_istio_cannot_use() {
    let out = std::env::temp_dir().join(format!("gammaroute-cli-wasm-{}", std::process::id()));
    let out = out.display().to_string();
    let from = "tests/golden/header-routing/input";
    let base = ["render", "--from", from, "--out", &out, "--istio"];
    for (flag, value, says) in [
        ("--wasm-sha256", "ABC", "64 lower-case hex digits"),
        ("--wasm-sha256", &"A".repeat(64), "64 lower-case hex digits"),
        (
            "--wasm-url",
            "ghcr.io/x/y:1",
            "oci://, https://, http:// or file://",
        ),
    ] {
        let mut args = base.to_vec();
        args.extend([flag, value]);
        let r = cli(&args);
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag) && stderr.contains(says), "{stderr}");
    }
    let mut args = base.to_vec();
    let sha = "0123456789abcdef".repeat(4);
    args.extend([
        "--wasm-sha256",
        &sha,
        "--wasm-url",
        "https://example.com/g.wasm",
    ]);
    let r = cli(&args);
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn explain_json_has_the_decision_the_winner_and_every_failed_candidate() {
    let explain = |args: &[&str]| -> serde_json::Value {
        let mut all = vec![
            "explain",
            "--from",
            "../examples",
            "--parent",
            "gateway/demo/gateway",
            "-o",
            "json",
        ];
        all.extend_from_slice(args);
        let out = cli(&all);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let v = explain(&["-H", "x-beta: true", "GET http://api.example/items"]);
    assert_eq!(v["request"], "GET http://api.example/items");
    assert_eq!(
        v["headers"],
        serde_json::json!([{"name": "x-beta", "value": "true"}])
    );
    assert_eq!(v["enginesAgree"], true);
    assert_eq!(v["winner"]["route"], "demo/api");
    assert_eq!(v["winner"]["ruleName"], "beta-header");
    assert_eq!(
        v["decision"],
        serde_json::json!({"kind": "forward", "backends": [
            {"backend": "demo/api-beta:80", "weight": 1, "share": "100%"}]})
    );
    let failed = v["failed"].as_array().unwrap();
    let condition = |entry: &str| {
        failed
            .iter()
            .find(|f| f["entry"].as_str().unwrap().starts_with(entry))
            .map(|f| f["condition"].as_str().unwrap().to_string())
    };
    assert_eq!(
        condition("demo/api rule 1 \"beta-query\"").as_deref(),
        Some("query beta: absent")
    );
    assert_eq!(
        condition("demo/shop").as_deref(),
        Some("host: \"api.example\" does not match")
    );
    assert!(failed.iter().all(|f| f["higherPrecedence"].is_boolean()));
    assert_eq!(
        v["alsoMatched"][0]["entry"],
        "demo/api rule 3 \"default\" match 0"
    );

    // The canary's weights, and a local answer with its reason.
    let v = explain(&["GET http://shop.example/"]);
    let shares: Vec<&str> = v["decision"]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["share"].as_str().unwrap())
        .collect();
    assert_eq!(shares, ["90%", "10%"]);
    let v = explain(&["GET http://nowhere.example/"]);
    assert_eq!(
        (
            v["decision"]["kind"].clone(),
            v["decision"]["status"].clone(),
            v["decision"]["reason"].clone()
        ),
        ("local".into(), 404.into(), "no_route".into())
    );
    assert_eq!(v["winner"], serde_json::Value::Null);
}

#[test]
fn kube_and_from_are_one_or_the_other() {
    for args in [
        &["check"][..],
        &["check", "--kube", "--from", "../examples"],
        &["explain", "--parent", "gateway/a/b", "http://x/"],
    ] {
        let out = cli(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--from"), "{err}");
    }
}

#[test]
fn serve_refuses_a_proxy_module_url_envoy_cannot_download() {
    let sha = "0123456789abcdef".repeat(4);
    for (args, says) in [
        (
            vec![
                "--proxy-wasm-url",
                "oci://ghcr.io/x/y:1",
                "--proxy-wasm-sha256",
                &sha,
            ],
            "must start with http:// or https://",
        ),
        (
            vec!["--proxy-wasm-url", "https://example.com/m.wasm"],
            "--proxy-wasm-sha256",
        ),
        (
            vec![
                "--proxy-wasm-url",
                "https://example.com/m.wasm",
                "--proxy-wasm-sha256",
                "ABC",
            ],
            "64 lower-case hex digits",
        ),
    ] {
        let mut all = vec!["serve", "--kube"];
        all.extend(args.iter().copied());
        // Refused before any cluster is contacted.
        let r = cli(&all);
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
