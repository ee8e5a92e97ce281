//! `config-pusher render` end to end on a golden scenario, through the real binary.

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
    std::fs::remove_dir_all(&out).unwrap();

    let missing = Command::new(env!("CARGO_BIN_EXE_config-pusher"))
        .args(["render", "--from", "/nonexistent/dir", "--out", "/tmp/x"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/dir does not exist"));
}
