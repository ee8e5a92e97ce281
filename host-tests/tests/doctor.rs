//! `make doctor` (tools/doctor.py): it finds Envoy where every other tool does (`ENVOY_BIN`,
//! else `.venv/bin/envoy`), reports its version, and says what to do — exit 1 — when Envoy
//! does not run.

use std::process::Command;

use gammaroute_host_tests::workspace_root;

/// Runs the doctor with `ENVOY_BIN` set to `envoy` (or unset); its exit code and output.
fn doctor(envoy: Option<&str>) -> (i32, String) {
    let mut cmd = Command::new("python3");
    cmd.arg(workspace_root().join("tools/doctor.py"));
    match envoy {
        Some(bin) => cmd.env("ENVOY_BIN", bin),
        None => cmd.env_remove("ENVOY_BIN"),
    };
    let out = cmd.output().expect("python3 runs tools/doctor.py");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), text)
}

fn envoy_line(text: &str) -> &str {
    text.lines()
        .find(|l| l.split_whitespace().nth(1) == Some("envoy"))
        .unwrap_or_else(|| panic!("no envoy line in:\n{text}"))
}

#[test]
fn doctor_reports_the_envoy_every_tool_uses() {
    // The same binary the end-to-end tests run (ENVOY_BIN from the Makefile, or the venv's).
    let (_, text) = doctor(std::env::var("ENVOY_BIN").ok().as_deref());
    let line = envoy_line(&text);
    assert!(
        line.starts_with("ok") && line.contains("1.40."),
        "doctor does not find Envoy 1.40 (make setup installs it):\n{text}"
    );
}

#[test]
fn doctor_says_what_to_do_when_envoy_does_not_run() {
    let (code, text) = doctor(Some("/nonexistent/envoy"));
    let line = envoy_line(&text);
    assert!(line.starts_with("FIX"), "{text}");
    assert!(line.contains("make setup"), "{text}");
    assert_eq!(code, 1, "a FIX line must fail the doctor:\n{text}");
}
