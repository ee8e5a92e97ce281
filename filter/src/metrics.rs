//! The filter's metric names, and the Envoy `stats_config.stats_tags` that turn them into
//! labelled Prometheus series.
//!
//! Labels travel inside the stat name in Istio's `<label>=.=<value>;.;` form, the convention of
//! Istio's own wasm stats: Istio's `extraStatTags` (ProxyConfig) generates exactly the regex of
//! [`Label::regex`], so in Istio listing the label names is enough, and config-pusher's rendered
//! bootstraps carry the same regexes ([`stats_tags_yaml`]). Envoy removes each regex's first
//! capture group from the name and takes the second as the label value, so
//! `wasmcustom.gammaroute.route_namespace=.=demo;.;route=.=canary;.;rule=.=0;.;backend=.=demo/v2:80;.;requests_total`
//! is `gammaroute_requests_total{route_namespace="demo",route="canary",rule="0",backend="demo/v2:80"}`
//! on `/stats/prometheus` (the `wasmcustom.` namespace is dropped there). Without the tags
//! Prometheus sees one long sanitised name per series instead, which is why every bootstrap
//! carries them.

/// A label carried in a stat name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// `metadata.namespace` of the HTTPRoute.
    RouteNamespace,
    /// `metadata.name` of the HTTPRoute.
    Route,
    /// The rule's position in `spec.rules`.
    Rule,
    /// The Envoy cluster the request went to (as the table names it after `clusterNaming`).
    Backend,
    /// Why the filter answered locally (`LocalReason`).
    Reason,
    /// What a table fetch from config-pusher came to ([`FetchResult`]).
    Result,
}

impl Label {
    pub const ALL: [Label; 6] = [
        Label::RouteNamespace,
        Label::Route,
        Label::Rule,
        Label::Backend,
        Label::Reason,
        Label::Result,
    ];

    /// The Prometheus label name (and Envoy `tag_name`).
    pub fn name(self) -> &'static str {
        match self {
            Label::RouteNamespace => "route_namespace",
            Label::Route => "route",
            Label::Rule => "rule",
            Label::Backend => "backend",
            Label::Reason => "reason",
            Label::Result => "result",
        }
    }

    /// `stats_tags[].regex` for this label, the one Istio's `extraStatTags` generates.
    pub fn regex(self) -> String {
        format!(r"({}=\.=(.*?);\.;)", self.name())
    }
}

/// What a table fetch came to: the `result` label of `gammaroute_table_fetches_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchResult {
    /// A new table, applied.
    Ok,
    /// `304`: the table in force is current.
    NotModified,
    /// config-pusher unreachable or answering an error.
    Failed,
    /// An answer dropped because another worker took over fetching meanwhile.
    Superseded,
    /// A table of a lower generation than the one in force (a lagging config-pusher replica),
    /// not applied.
    Older,
}

impl FetchResult {
    pub fn as_str(self) -> &'static str {
        match self {
            FetchResult::Ok => "ok",
            FetchResult::NotModified => "not_modified",
            FetchResult::Failed => "failed",
            FetchResult::Superseded => "superseded",
            FetchResult::Older => "older",
        }
    }
}

/// Plugin configurations refused.
pub const CONFIG_REJECTED: &str = "gammaroute.config_rejected_total";
/// Fetched tables refused (the table in force stays).
pub const TABLE_REJECTED: &str = "gammaroute.table_rejected_total";
/// Requests with more firing mirrors than `mirrorSlots`.
pub const MIRROR_DROPPED: &str = "gammaroute.mirror_dropped_total";
/// Mesh sidecars: requests passed to the Service they were sent to because no table was in force.
pub const NO_TABLE_PASSTHROUGH: &str = "gammaroute.no_table_passthrough_total";
/// Requests where a regex match was not tried: the value is over the input bound.
pub const REGEX_INPUT_TOO_LONG: &str = "gammaroute.regex_input_too_long_total";
/// Gauge: the table in force, the first 12 hex digits of its version as a number.
pub const TABLE_VERSION: &str = "gammaroute.table_version";
/// Gauge: Unix time at which this proxy applied the table in force (its age is
/// `time() - gammaroute_table_applied_timestamp_seconds`).
pub const TABLE_APPLIED: &str = "gammaroute.table_applied_timestamp_seconds";
/// Gauge: Unix time config-pusher last confirmed the table in force (a new table or a `304`);
/// with a `source` it stops advancing while config-pusher is unreachable.
pub const TABLE_CONFIRMED: &str = "gammaroute.table_confirmed_timestamp_seconds";

/// `gammaroute_requests_total{route_namespace, route, rule, backend}`: requests forwarded.
pub fn requests(namespace: &str, route: &str, rule: u32, backend: &str) -> String {
    let mut name = String::from("gammaroute.");
    push(&mut name, Label::RouteNamespace, namespace);
    push(&mut name, Label::Route, route);
    push(&mut name, Label::Rule, &rule.to_string());
    push(&mut name, Label::Backend, backend);
    name.push_str("requests_total");
    name
}

/// `gammaroute_local_replies_total{reason}`: answers the filter gave itself.
pub fn local_replies(reason: &str) -> String {
    let mut name = String::from("gammaroute.");
    push(&mut name, Label::Reason, reason);
    name.push_str("local_replies_total");
    name
}

/// `gammaroute_table_fetches_total{result}`.
pub fn table_fetches(result: FetchResult) -> String {
    let mut name = String::from("gammaroute.");
    push(&mut name, Label::Result, result.as_str());
    name.push_str("table_fetches_total");
    name
}

/// Appends `<label>=.=<value>;.;`. A value cannot end its segment early: `;` and `=` (never in
/// a Kubernetes name, but the table is input) become `_`.
fn push(name: &mut String, label: Label, value: &str) {
    name.push_str(label.name());
    name.push_str("=.=");
    name.extend(value.chars().map(|c| match c {
        ';' | '=' => '_',
        c => c,
    }));
    name.push_str(";.;");
}

/// The `stats_tags` list of an Envoy bootstrap's `stats_config`, as a YAML flow sequence.
pub fn stats_tags_yaml() -> String {
    let items: Vec<String> = Label::ALL
        .iter()
        .map(|l| {
            format!(
                "{{tag_name: {}, regex: {}}}",
                l.name(),
                // A JSON string is a valid YAML double-quoted scalar.
                serde_json::Value::String(l.regex())
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Envoy's tag extractor does with a name: for each tag whose regex matches, remove the
    /// first capture group and take the second as the value.
    fn extract(name: &str) -> (String, Vec<(&'static str, String)>) {
        let mut remove = Vec::new();
        let mut tags = Vec::new();
        for label in Label::ALL {
            let re = regex_lite::Regex::new(&label.regex()).unwrap();
            if let Some(c) = re.captures(name) {
                let whole = c.get(1).unwrap();
                remove.push(whole.range());
                tags.push((label.name(), c.get(2).unwrap().as_str().to_string()));
            }
        }
        let kept = name
            .char_indices()
            .filter(|(i, _)| !remove.iter().any(|r| r.contains(i)))
            .map(|(_, c)| c)
            .collect();
        (kept, tags)
    }

    #[test]
    fn request_names_carry_their_four_labels() {
        let (name, tags) = extract(&requests("demo", "shop.v1", 2, "demo/echo-v2:8080"));
        assert_eq!(name, "gammaroute.requests_total");
        assert_eq!(
            tags,
            [
                ("route_namespace", "demo".to_string()),
                ("route", "shop.v1".to_string()),
                ("rule", "2".to_string()),
                ("backend", "demo/echo-v2:8080".to_string()),
            ]
        );
    }

    #[test]
    fn local_reply_and_fetch_names_carry_their_label() {
        assert_eq!(
            extract(&local_replies("no_route")),
            (
                "gammaroute.local_replies_total".to_string(),
                vec![("reason", "no_route".to_string())]
            )
        );
        assert_eq!(
            extract(&table_fetches(FetchResult::NotModified)),
            (
                "gammaroute.table_fetches_total".to_string(),
                vec![("result", "not_modified".to_string())]
            )
        );
    }

    #[test]
    fn a_value_cannot_break_out_of_its_label() {
        let (name, tags) = extract(&requests("a;.;rule=.=9", "r", 0, "b"));
        assert_eq!(name, "gammaroute.requests_total");
        assert_eq!(tags[0], ("route_namespace", "a_._rule_._9".to_string()));
        assert_eq!(tags[2], ("rule", "0".to_string()));
    }

    #[test]
    fn stats_tags_are_yaml_with_one_entry_per_label() {
        let yaml = stats_tags_yaml();
        assert!(yaml.starts_with(
            "[{tag_name: route_namespace, regex: \"(route_namespace=\\\\.=(.*?);\\\\.;)\"}"
        ));
        assert_eq!(yaml.matches("tag_name").count(), Label::ALL.len());
    }
}
