//! Fills the `{{SLOT}}` templates of `envoy-configs/`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Replaces every `{{NAME}}` in `template` with its value; an unfilled slot is an error.
pub fn fill(template: &str, values: &BTreeMap<&str, String>) -> Result<String, String> {
    let mut out = template.to_string();
    for (name, value) in values {
        out = out.replace(&format!("{{{{{name}}}}}"), value);
    }
    match out.find("{{") {
        Some(at) => Err(format!(
            "template slot left unfilled: {}",
            out[at..].lines().next().unwrap_or_default()
        )),
        None => Ok(out),
    }
}

/// STATIC clusters, one per (name, endpoints), in the YAML list form the templates expect.
pub fn static_clusters(clusters: &[(&str, Vec<SocketAddr>)]) -> String {
    let mut out = String::new();
    for (name, endpoints) in clusters {
        let eps: Vec<String> = endpoints
            .iter()
            .map(|a| {
                format!(
                    "{{endpoint: {{address: {{socket_address: {{address: \"{}\", port_value: {}}}}}}}}}",
                    a.ip(),
                    a.port()
                )
            })
            .collect();
        out.push_str(&format!(
            "  - name: \"{name}\"\n    type: STATIC\n    connect_timeout: 1s\n    load_assignment:\n      cluster_name: \"{name}\"\n      endpoints: [{{lb_endpoints: [{}]}}]\n",
            eps.join(", ")
        ));
    }
    out
}

/// A JSON document as a YAML scalar (JSON strings are valid YAML double-quoted scalars).
pub fn yaml_string(json: &str) -> String {
    serde_json::Value::String(json.to_string()).to_string()
}
