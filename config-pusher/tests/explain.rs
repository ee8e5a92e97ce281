//! `explain` on the golden scenarios: golden text for a few requests (`tests/explain/*.txt`,
//! `GAMMAROUTE_BLESS=1` regenerates them), and for every request of every scenario's
//! `requests.yaml`, explain — reached through `--parent` as a user would — selects what the
//! compiled `Router` selects for that request, and both routers agree.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use config_pusher::explain::{self, HttpRequest, ParentSpec};
use config_pusher::source::files;
use config_pusher::store::Store;
use config_pusher::translate::{self, Output, Settings};
use gammaroute_filter::router::{Destination, Router};

fn golden(scenario: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(scenario)
}

fn load(dir: &Path) -> (Store, Output) {
    let (store, _) = files::load(&dir.join("input"));
    let out = translate::translate(&store, &Settings::default());
    (store, out)
}

/// The text `config-pusher explain` prints.
fn run(
    scenario: &str,
    parent: &str,
    client: Option<&str>,
    request: &str,
    headers: &[&str],
) -> String {
    let (store, out) = load(&golden(scenario));
    let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let req = HttpRequest::parse(request, &headers).unwrap();
    let parent: ParentSpec = parent.parse().unwrap();
    let target = explain::target(&store, &out, &parent, client, &req).unwrap();
    let e = explain::explain(&out.tables[&target.role], &req.request(target.destination)).unwrap();
    assert!(e.agree, "{}", e.text);
    e.text
}

/// (golden file name, scenario, --parent, --client-namespace, request, -H headers).
type Case<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    &'a str,
    &'a [&'a str],
);

#[test]
fn golden_explanations() {
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("canary-weighted", "canary", "gateway/shop/web", None, "GET http://shop.example.com/cart", &[]),
        ("canary-404-host", "canary", "gateway/shop/web", None, "GET http://other.example.com/", &[]),
        ("canary-500-zero-weights", "canary", "gateway/shop/web", None, "GET http://shop.example.com/zero", &[]),
        ("header-routing-method", "header-routing", "gateway/infra/gw", None, "DELETE http://any.host/api/items", &["x-canary: true"]),
        ("header-routing-query", "header-routing", "gateway/infra/gw/http", None, "http://any.host/api/items?canary=1", &[]),
        ("header-routing-404", "header-routing", "gateway/infra/gw", None, "GET http://any.host/apis", &["x-canary: false"]),
        ("redirect-https", "redirect-rewrite", "gateway/web/edge", None, "GET http://www.example.com/a?b=c", &[]),
        ("rewrite-filters", "redirect-rewrite", "gateway/web/edge/https", None, "GET https://www.example.com/app/x?q=1", &[]),
        ("cross-namespace-mixed", "cross-namespace", "gateway/app/gw", None, "GET http://h/mixed", &[]),
        ("listener-wildcard", "listener-hostnames", "gateway/site/gw", None, "GET http://shop.example.com/", &[]),
        ("listener-any-hostname", "listener-hostnames", "gateway/site/gw", None, "GET http://other.net/", &[]),
        // A connection made for shop.example.com (the https URL's host: its SNI) carrying a request for another listener's name.
        ("tls-misdirected", "tls-listeners", "gateway/infra/edge/shop", None, "GET https://shop.example.com/", &["host: a.example.net"]),
        ("tls-same-listener", "tls-listeners", "gateway/infra/edge/shop", None, "GET https://shop.example.com/", &[]),
        ("gamma-consumer", "gamma", "service/bookinfo/reviews:9080", Some("frontend"), "GET http://reviews/r", &["x-version: v3"]),
        ("gamma-503", "gamma", "service/bookinfo/reviews:9080", Some("batch"), "GET http://reviews/r", &["x-version: v3"]),
        ("gamma-passthrough", "gamma", "service/bookinfo/reviews:9090", Some("batch"), "GET http://reviews/r", &[]),
        // examples/ (its golden scenario's input is a link to it); README.md shows these.
        ("examples-header", "examples", "gateway/demo/gateway", None, "GET http://api.example/items", &["x-beta: true"]),
        ("examples-rewrite", "examples", "gateway/demo/gateway", None, "GET http://www.example/docs/install", &[]),
        ("examples-consumer", "examples", "service/demo/reviews:9080", Some("frontend"), "GET http://reviews.demo:9080/", &[]),
        ("examples-broken", "examples", "gateway/demo/gateway", None, "GET http://broken.example/", &[]),
        // No port in the URL: the scheme picks the listener (http → 8080, https → 8443).
        ("examples-https", "examples", "gateway/demo/gateway", None, "GET https://secure.example/", &[]),
        ("examples-https-redirect", "examples", "gateway/demo/gateway", None, "GET http://secure.example/cart", &[]),
    ];
    let bless = std::env::var_os("GAMMAROUTE_BLESS").is_some_and(|v| v != "0");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/explain");
    let mut failures = Vec::new();
    for (name, scenario, parent, client, request, headers) in cases {
        let from = if *scenario == "examples" {
            "examples/".to_string()
        } else {
            format!("tests/golden/{scenario}/input")
        };
        let mut cmd = format!("$ config-pusher explain --from {from} --parent {parent}");
        if let Some(c) = client {
            cmd.push_str(&format!(" --client-namespace {c}"));
        }
        for h in *headers {
            cmd.push_str(&format!(" -H '{h}'"));
        }
        cmd.push_str(&format!(" '{request}'\n"));
        let text = cmd + &run(scenario, parent, *client, request, headers);
        let path = dir.join(format!("{name}.txt"));
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want != text {
            failures.push(format!(
                "{} differs (GAMMAROUTE_BLESS=1 to regenerate)\n--- got ---\n{text}",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every request of every scenario's requests.yaml, through `--parent`.
#[test]
fn explain_agrees_with_the_router_on_every_golden_request() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("requests.yaml").is_file())
        .collect();
    dirs.sort();
    let mut checked = 0;
    for dir in dirs {
        let (store, out) = load(&dir);
        let text = std::fs::read_to_string(dir.join("requests.yaml")).unwrap();
        let cases: Vec<serde_yaml_ng::Value> = serde_yaml_ng::from_str(&text).unwrap();
        for c in cases {
            let s = |k: &str| c.get(k).and_then(|v| v.as_str()).map(str::to_string);
            let role = s("role").unwrap();
            let url = s("url").unwrap();
            let port = u16::try_from(c["port"].as_u64().unwrap()).unwrap();
            let ip: IpAddr = s("ip").map_or(IpAddr::from([127, 0, 0, 1]), |i| i.parse().unwrap());
            let headers: Vec<String> = c
                .get("headers")
                .and_then(|h| h.as_sequence())
                .into_iter()
                .flatten()
                .map(|p| format!("{}: {}", p[0].as_str().unwrap(), p[1].as_str().unwrap()))
                .collect();
            let method = s("method").unwrap_or_else(|| "GET".into());
            let at = format!("{}: {role} {method} {url}", dir.display());
            let req = HttpRequest::parse(&format!("{method} {url}"), &headers).unwrap();

            // The parent a user would name.
            let (parent, client) = if let Some(rest) = role.strip_prefix("gateway/") {
                let p: ParentSpec = format!("gateway/{rest}").parse().unwrap();
                (p, None)
            } else {
                let client = role.strip_prefix("mesh/").unwrap().to_string();
                let (key, _) = store
                    .services
                    .iter()
                    .find(|(_, svc)| {
                        config_pusher::translate::mesh::cluster_ips(&svc.object).contains(&ip)
                    })
                    .unwrap_or_else(|| panic!("{at}: no Service with ClusterIP {ip}"));
                let p: ParentSpec = format!("service/{}/{}:{port}", key.namespace, key.name)
                    .parse()
                    .unwrap();
                (p, Some(client))
            };
            let target = explain::target(&store, &out, &parent, client.as_deref(), &req)
                .unwrap_or_else(|e| panic!("{at}: {e}"));
            assert_eq!(target.role, role, "{at}");
            assert_eq!(
                target.destination.port, port,
                "{at}: port inferred from the URL"
            );
            let table = &out.tables[&role];
            let e = explain::explain(table, &req.request(target.destination)).unwrap();
            assert!(e.agree, "{at}:\n{}", e.text);
            assert_eq!(e.router, e.reference, "{at}");

            // The compiled Router on the request exactly as requests.yaml sends it.
            let router = Router::compile(table.clone()).unwrap();
            let direct = router.select(&req.request(Destination { ip, port }));
            assert_eq!(e.router, direct, "{at}:\n{}", e.text);
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} requests checked");
}

#[test]
fn bad_arguments_are_explained() {
    assert!("gateway/ns".parse::<ParentSpec>().is_err());
    assert!("service/ns/name".parse::<ParentSpec>().is_err());
    assert!("service/ns/name:http".parse::<ParentSpec>().is_err());
    assert_eq!(
        "gateway/a/b/l".parse::<ParentSpec>().unwrap(),
        ParentSpec::Gateway {
            namespace: "a".into(),
            name: "b".into(),
            listener: Some("l".into())
        }
    );
    assert!(HttpRequest::parse("GET shop.example.com/", &[]).is_err());
    assert!(HttpRequest::parse("GET ftp://h/", &[]).is_err());
    assert!(HttpRequest::parse("http://h/", &["no-colon".into()]).is_err());
    let r = HttpRequest::parse(
        "post http://h?x=1",
        &["Host: other:8080".into(), "X-A: b".into()],
    )
    .unwrap();
    assert_eq!(
        (r.method.as_str(), r.authority.as_str(), r.path.as_str()),
        ("POST", "other:8080", "/?x=1")
    );
    assert_eq!(r.headers, vec![("x-a".to_string(), "b".to_string())]);

    // A Gateway with ports 80 and 443 needs the port from the scheme, the URL or a listener.
    let (store, out) = load(&golden("redirect-rewrite"));
    let parent: ParentSpec = "gateway/web/edge".parse().unwrap();
    let port = |url: &str| {
        let req = HttpRequest::parse(url, &[]).unwrap();
        explain::target(&store, &out, &parent, None, &req).map(|t| t.destination.port)
    };
    assert_eq!(port("http://www.example.com/"), Ok(80));
    assert_eq!(port("https://www.example.com/"), Ok(443));
    assert_eq!(port("http://www.example.com:443/"), Ok(443));
    let missing: ParentSpec = "gateway/web/nope".parse().unwrap();
    let req = HttpRequest::parse("http://h/", &[]).unwrap();
    assert!(explain::target(&store, &out, &missing, None, &req)
        .unwrap_err()
        .to_string()
        .contains("no Gateway web/nope"));
}

/// Errors are typed (the CLI prints their text): a caller can tell a bad URL from a bad header.
#[test]
fn parse_errors_are_typed() {
    use config_pusher::explain::ExplainError;
    assert_eq!(
        HttpRequest::parse("GET ftp://h/", &[]),
        Err(ExplainError::Scheme("ftp://h/".into()))
    );
    let e = HttpRequest::parse("http://h/", &["no-colon".into()]).unwrap_err();
    assert_eq!(e, ExplainError::HeaderSyntax("no-colon".into()));
    assert_eq!(e.to_string(), "header `no-colon`: expected 'name: value'");
    assert_eq!(
        "gateway/ns".parse::<ParentSpec>(),
        Err(ExplainError::ParentSyntax("gateway/ns".into()))
    );
}
