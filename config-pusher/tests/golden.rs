//! Golden files: each folder under `tests/golden/` has `input/` (Kubernetes YAML, as
//! `kubectl apply -f` takes it), and the expected output in `expected/`: one table JSON per role
//! (`tables/<role>.json`), `status.yaml`, and `load.txt` (load errors, skipped documents and
//! translate notes). `GAMMAROUTE_BLESS=1 cargo test -p config-pusher --test golden` rewrites
//! `expected/`; review the diff before committing it.
//!
//! Each scenario's `requests.yaml` lists requests and what the compiled filter router must do with
//! them, so the tables are checked for behaviour, not only for bytes.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use config_pusher::source::files;
use config_pusher::translate::{self, status, Settings};
use gammaroute_filter::router::{Destination, HeaderOp, Outcome, Request, Router};
use gammaroute_filter::table;

fn scenarios() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("input").is_dir())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 7,
        "golden scenarios missing under {}",
        root.display()
    );
    dirs
}

fn bless() -> bool {
    std::env::var_os("GAMMAROUTE_BLESS").is_some_and(|v| v != "0")
}

/// Everything a scenario produces, as files relative to `expected/`.
fn render(dir: &Path) -> (BTreeMap<String, String>, translate::Output) {
    let (store, report) = files::load(&dir.join("input"));
    let out = translate::translate(&store, &Settings::default());
    let mut files = BTreeMap::new();
    for (role, t) in &out.tables {
        files.insert(format!("tables/{role}.json"), table::encode_json(t));
    }
    files.insert("status.yaml".into(), status::to_yaml(&out.statuses));
    let mut load = String::new();
    for e in &report.errors {
        load.push_str(&format!("error: {e}\n"));
    }
    for s in &report.skipped {
        load.push_str(&format!("skipped: {s}\n"));
    }
    for n in &out.notes {
        load.push_str(&format!("note: {n}\n"));
    }
    for e in &out.errors {
        load.push_str(&format!("table error: {e}\n"));
    }
    files.insert("load.txt".into(), load);
    (files, out)
}

fn list(dir: &Path, base: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).into_iter().flatten() {
        let p = e.unwrap().path();
        if p.is_dir() {
            list(&p, base, out);
        } else {
            out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
        }
    }
}

#[test]
fn golden_outputs() {
    let mut failures = Vec::new();
    for dir in scenarios() {
        let (files, _) = render(&dir);
        let expected = dir.join("expected");
        if bless() {
            let _ = std::fs::remove_dir_all(&expected);
            for (name, content) in &files {
                let p = expected.join(name);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, content).unwrap();
            }
            continue;
        }
        let mut present = Vec::new();
        list(&expected, &expected, &mut present);
        for name in present {
            if !files.contains_key(&name) {
                failures.push(format!(
                    "{}: expected/{name} is no longer produced",
                    dir.display()
                ));
            }
        }
        for (name, content) in &files {
            let want = std::fs::read_to_string(expected.join(name)).unwrap_or_default();
            if &want != content {
                failures.push(format!(
                    "{}: expected/{name} differs (GAMMAROUTE_BLESS=1 to regenerate)\n--- got ---\n{content}",
                    dir.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every status reason the translator can emit is shown by some scenario's `status.yaml`, and
/// every HTTPRoute filter type of Gateway API v1.5 is used by some scenario's input.
#[test]
fn golden_files_cover_every_reason_and_filter() {
    let mut statuses = String::new();
    let mut inputs = String::new();
    for dir in scenarios() {
        statuses.push_str(&std::fs::read_to_string(dir.join("expected/status.yaml")).unwrap());
        let mut names = Vec::new();
        let input = dir.join("input");
        list(&input, &input, &mut names);
        for n in names {
            inputs.push_str(&std::fs::read_to_string(input.join(n)).unwrap());
        }
    }
    let missing: Vec<status::Reason> = status::Reason::PROBLEMS
        .iter()
        .copied()
        .filter(|r| !statuses.contains(&format!("reason: {r}\n")))
        .collect();
    assert!(missing.is_empty(), "no golden status shows {missing:?}");
    let filters = [
        "RequestHeaderModifier",
        "ResponseHeaderModifier",
        "RequestMirror",
        "RequestRedirect",
        "URLRewrite",
        "CORS",
        "ExtensionRef",
        "ExternalAuth",
    ];
    let missing: Vec<&str> = filters
        .into_iter()
        .filter(|f| !inputs.contains(&format!("type: {f}\n")))
        .collect();
    assert!(
        missing.is_empty(),
        "no golden input uses the filters {missing:?}"
    );
}

#[test]
fn translate_is_deterministic() {
    for dir in scenarios() {
        assert_eq!(render(&dir).0, render(&dir).0, "{}", dir.display());
    }
}

#[test]
fn every_table_is_accepted_by_the_filter() {
    for dir in scenarios() {
        let (files, out) = render(&dir);
        assert!(out.errors.is_empty(), "{}: {:?}", dir.display(), out.errors);
        for (role, t) in &out.tables {
            let again = table::accept(t.clone()).unwrap_or_else(|e| panic!("{role}: {e}"));
            assert_eq!(&again, t);
            // And through the JSON the filter reads.
            let json = &files[&format!("tables/{role}.json")];
            assert_eq!(&table::decode_json(json.as_bytes()).unwrap(), t, "{role}");
            Router::compile(t.clone()).unwrap();
        }
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    role: String,
    #[serde(default)]
    ip: Option<IpAddr>,
    port: u16,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    scheme: Option<String>,
    url: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    draw: u64,
    // Expectations.
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    passthrough: bool,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    authority: Option<String>,
    #[serde(default)]
    request_header: Option<(String, String)>,
}

#[test]
fn routers_route_golden_requests() {
    let mut checked = 0;
    for dir in scenarios() {
        let (_, out) = render(&dir);
        let text = std::fs::read_to_string(dir.join("requests.yaml")).unwrap();
        let cases: Vec<Case> = serde_yaml_ng::from_str(&text).unwrap();
        assert!(!cases.is_empty());
        for c in cases {
            let at = format!("{}: {} {}", dir.display(), c.role, c.url);
            let t = out
                .tables
                .get(&c.role)
                .unwrap_or_else(|| panic!("{at}: no table"));
            let router = Router::compile(t.clone()).unwrap();
            let rest = c.url.split_once("://").map_or(c.url.as_str(), |(_, r)| r);
            let (authority, path) = rest
                .find('/')
                .map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
            let scheme = c
                .scheme
                .clone()
                .unwrap_or_else(|| c.url.split("://").next().unwrap().to_string());
            let req = Request {
                method: c.method.as_deref().unwrap_or("GET"),
                scheme: &scheme,
                authority,
                path,
                headers: &c.headers,
                destination: Destination {
                    ip: c.ip.unwrap_or(IpAddr::from([127, 0, 0, 1])),
                    port: c.port,
                },
                server_name: "",
            };
            let d = router.decide(&req, c.draw);
            match (&d.outcome, &c) {
                (
                    Outcome::Passthrough,
                    Case {
                        passthrough: true, ..
                    },
                ) => {}
                (
                    Outcome::Forward(f),
                    Case {
                        cluster: Some(want),
                        ..
                    },
                ) => {
                    assert_eq!(f.cluster, want, "{at}: {d:?}");
                    if let Some(p) = &c.path {
                        assert_eq!(f.path.as_deref(), Some(p.as_str()), "{at}");
                    }
                    if let Some(a) = &c.authority {
                        assert_eq!(f.authority.as_deref(), Some(a.as_str()), "{at}");
                    }
                    if let Some((n, v)) = &c.request_header {
                        assert!(
                            f.request_headers.iter().any(
                                |op| matches!(op, HeaderOp::Set(hn, hv) if hn.eq_ignore_ascii_case(n) && hv == v)
                            ),
                            "{at}: {:?}",
                            f.request_headers
                        );
                    }
                }
                (
                    Outcome::Respond(r),
                    Case {
                        status: Some(s), ..
                    },
                ) => {
                    assert_eq!(r.status, *s, "{at}: {d:?}");
                    if let Some(l) = &c.location {
                        let got = r
                            .headers
                            .iter()
                            .find(|(n, _)| n.eq_ignore_ascii_case("location"));
                        assert_eq!(got.map(|(_, v)| v.as_ref()), Some(l.as_str()), "{at}");
                    }
                }
                _ => panic!("{at}: unexpected decision {d:?}"),
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} requests checked");
}

/// The two encodings are one schema (`filter/proto/table.proto`): the JSON form of every golden
/// table and its protobuf form decode to the same schema value and the same checked table, and
/// each re-encodes to the bytes it came from. (The `version` inside each golden table is a hash of
/// the protobuf encoding, so `golden_outputs` already pins the wire bytes.)
#[test]
fn json_and_protobuf_forms_of_every_golden_table_decode_to_the_same_value() {
    use prost::Message as _;
    let mut checked = 0;
    for dir in scenarios() {
        let tables = dir.join("expected/tables");
        let mut names = Vec::new();
        list(&tables, &tables, &mut names);
        for name in names.iter().filter(|n| n.ends_with(".json")) {
            let json = std::fs::read_to_string(tables.join(name)).unwrap();
            let from_json = table::decode_json(json.as_bytes())
                .unwrap_or_else(|e| panic!("{}/{name}: {e}", dir.display()));
            let proto = table::encode_proto(&from_json);
            let from_proto = table::decode_proto(&proto).unwrap();
            assert_eq!(from_proto, from_json, "{}/{name}", dir.display());
            let json_msg: table::wire::RouteTable = serde_json::from_str(&json).unwrap();
            let proto_msg = table::wire::RouteTable::decode(proto.as_slice()).unwrap();
            assert_eq!(proto_msg, json_msg, "{}/{name}", dir.display());
            assert_eq!(
                table::encode_json(&from_proto),
                json,
                "{}/{name}",
                dir.display()
            );
            assert_eq!(proto_msg.encode_to_vec(), proto, "{}/{name}", dir.display());
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} golden tables found");
}
