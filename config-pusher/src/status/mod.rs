//! Status write-back: merging the statuses [`crate::translate::translate`] computed into the live
//! objects' `status`, the rules of Gateway API `shared_types.go` (docs/architecture.md "Status"):
//!
//! - HTTPRoute `status.parents` is an atomic list shared by every controller: entries whose
//!   `controllerName` is ours are replaced by ours, everyone else's are kept as they are and where
//!   they are; ours follow them.
//! - A condition keeps its `lastTransitionTime` while its `status` stays the same, and gets `now`
//!   when it changes (`metav1.Condition` contract). Gateway and GatewayClass conditions of types we
//!   do not compute are kept.
//! - Nothing is written when the result equals the live status: only a change other than a
//!   timestamp causes a patch.
//!
//! Pure functions over `serde_json::Value` (so unknown fields of other controllers survive);
//! [`kube`] does the IO and [`lease`] decides who may.

use serde_json::{Map, Value};

use crate::translate::status::{Status, StatusDoc};

pub mod kube;
pub mod lease;

/// `status` to write as a merge patch (its top-level keys replace the live ones), or `None` when
/// the live status already says the same. `live` is the object's current `status` (`Null` when it
/// has none); `now` is an RFC 3339 timestamp for conditions whose status changed.
pub fn desired(live: &Value, doc: &StatusDoc, controller: &str, now: &str) -> Option<Value> {
    let computed = serde_json::to_value(&doc.status).ok()?;
    let patch = match &doc.status {
        Status::HttpRoute(_) => route_parents(live, &computed, controller, now),
        Status::Gateway(_) | Status::GatewayClass(_) => owned(live, computed, now),
    };
    let changed = patch
        .as_object()
        .is_some_and(|m| m.iter().any(|(k, v)| live.get(k) != Some(v)));
    changed.then_some(patch)
}

/// HTTPRoute: `{parents: others' entries (unchanged, in place) + ours}`.
fn route_parents(live: &Value, computed: &Value, controller: &str, now: &str) -> Value {
    let old: &[Value] = live
        .get("parents")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let is_ours = |e: &Value| e.get("controllerName").and_then(Value::as_str) == Some(controller);
    let mut parents: Vec<Value> = old.iter().filter(|e| !is_ours(e)).cloned().collect();
    for entry in computed
        .get("parents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut entry = entry.clone();
        let previous = old
            .iter()
            .filter(|e| is_ours(e))
            .find(|e| same_parent_ref(e.get("parentRef"), entry.get("parentRef")));
        stamp(&mut entry, previous, now, false);
        parents.push(entry);
    }
    let mut m = Map::new();
    m.insert("parents".into(), Value::Array(parents));
    Value::Object(m)
}

/// Gateway, GatewayClass: the whole status is ours; listener conditions are matched by name.
fn owned(live: &Value, mut computed: Value, now: &str) -> Value {
    stamp(&mut computed, Some(live), now, true);
    if let Some(listeners) = computed.get_mut("listeners").and_then(Value::as_array_mut) {
        let old: &[Value] = live
            .get("listeners")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice);
        for l in listeners {
            let previous = old.iter().find(|o| o.get("name") == l.get("name"));
            stamp(l, previous, now, true);
        }
    }
    computed
}

/// Sets `lastTransitionTime` on `holder.conditions` from `previous.conditions` (same type, same
/// status) or `now`. With `keep_foreign`, previous conditions of other types are appended.
fn stamp(holder: &mut Value, previous: Option<&Value>, now: &str, keep_foreign: bool) {
    let old: &[Value] = previous
        .and_then(|p| p.get("conditions"))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let Some(conditions) = holder.get_mut("conditions").and_then(Value::as_array_mut) else {
        return;
    };
    for c in conditions.iter_mut() {
        let before = old.iter().find(|o| o.get("type") == c.get("type"));
        let time = match before {
            Some(b) if b.get("status") == c.get("status") => b
                .get("lastTransitionTime")
                .cloned()
                .unwrap_or_else(|| now.into()),
            _ => now.into(),
        };
        if let Some(m) = c.as_object_mut() {
            m.insert("lastTransitionTime".into(), time);
        }
    }
    if keep_foreign {
        let foreign: Vec<Value> = old
            .iter()
            .filter(|o| !conditions.iter().any(|c| c.get("type") == o.get("type")))
            .cloned()
            .collect();
        conditions.extend(foreign);
    }
}

/// Two `parentRef`s name the same parent, with the API defaults (`group:
/// gateway.networking.k8s.io`, `kind: Gateway`) filled in.
fn same_parent_ref(a: Option<&Value>, b: Option<&Value>) -> bool {
    fn normal(v: Option<&Value>) -> Vec<(String, Value)> {
        let mut out: Vec<(String, Value)> = v
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        for (k, default) in [
            ("group", crate::source::GATEWAY_API_GROUP),
            ("kind", "Gateway"),
        ] {
            if !out.iter().any(|(key, _)| key == k) {
                out.push((k.into(), default.into()));
            }
        }
        out.sort_by(|x, y| x.0.cmp(&y.0));
        out
    }
    normal(a) == normal(b)
}

/// The object's generation this status was computed from is older than the live one: the
/// translation is stale and a newer one is on its way (shared_types.go: never overwrite a
/// condition with a greater `observedGeneration`).
pub fn stale(doc: &StatusDoc, live_generation: Option<i64>) -> bool {
    let ours = match &doc.status {
        Status::HttpRoute(r) => r
            .parents
            .iter()
            .flat_map(|p| &p.conditions)
            .find_map(|c| c.observed_generation),
        Status::Gateway(g) => g.conditions.iter().find_map(|c| c.observed_generation),
        Status::GatewayClass(g) => g.conditions.iter().find_map(|c| c.observed_generation),
    };
    matches!((ours, live_generation), (Some(o), Some(l)) if l > o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::status::{
        Condition, ConditionType, GatewayClassStatus, Meta, ParentRef, Reason, RouteParentStatus,
        RouteStatus,
    };
    use serde_json::json;

    const US: &str = "gammaroute.dev/config-pusher";
    const T0: &str = "2026-01-01T00:00:00Z";
    const T1: &str = "2026-01-02T00:00:00Z";

    fn route_doc(accepted: bool, generation: i64) -> StatusDoc {
        StatusDoc {
            api_version: "gateway.networking.k8s.io/v1",
            kind: "HTTPRoute",
            metadata: Meta {
                namespace: Some("shop".into()),
                name: "web".into(),
            },
            status: Status::HttpRoute(RouteStatus {
                parents: vec![RouteParentStatus {
                    parent_ref: ParentRef {
                        group: "gateway.networking.k8s.io".into(),
                        kind: "Gateway".into(),
                        namespace: None,
                        name: "gw".into(),
                        section_name: None,
                        port: None,
                    },
                    controller_name: US.into(),
                    conditions: vec![Condition::new(
                        ConditionType::Accepted,
                        accepted,
                        if accepted {
                            Reason::Accepted
                        } else {
                            Reason::NotAllowedByListeners
                        },
                        "m",
                        Some(generation),
                    )],
                }],
            }),
        }
    }

    fn other_entry() -> Value {
        json!({"parentRef": {"name": "mesh"}, "controllerName": "istio.io/gateway-controller",
               "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
                               "message": "", "lastTransitionTime": T0}], "x-extra": 1})
    }

    #[test]
    fn route_keeps_other_controllers_and_is_stable() {
        let live = json!({"parents": [other_entry()]});
        let patch = desired(&live, &route_doc(true, 1), US, T1).expect("first write");
        let parents = patch["parents"].as_array().unwrap();
        assert_eq!(parents.len(), 2);
        assert_eq!(
            parents[0],
            other_entry(),
            "other controller's entry untouched"
        );
        assert_eq!(parents[1]["controllerName"], US);
        assert_eq!(parents[1]["conditions"][0]["lastTransitionTime"], T1);
        assert_eq!(parents[1]["conditions"][0]["observedGeneration"], 1);

        // Written: the same computation later changes nothing.
        assert_eq!(
            desired(&patch, &route_doc(true, 1), US, "2027-01-01T00:00:00Z"),
            None
        );

        // New generation, same condition status: patched, lastTransitionTime kept.
        let again = desired(&patch, &route_doc(true, 2), US, "2027-01-01T00:00:00Z").unwrap();
        assert_eq!(
            again["parents"][1]["conditions"][0]["lastTransitionTime"],
            T1
        );
        assert_eq!(
            again["parents"][1]["conditions"][0]["observedGeneration"],
            2
        );

        // Status flips: new lastTransitionTime.
        let flip = desired(&again, &route_doc(false, 2), US, "2027-02-01T00:00:00Z").unwrap();
        assert_eq!(
            flip["parents"][1]["conditions"][0]["lastTransitionTime"],
            "2027-02-01T00:00:00Z"
        );
        assert_eq!(flip["parents"][0], other_entry());
    }

    #[test]
    fn route_parent_ref_defaults_match_live_entries() {
        // The API server may echo a parentRef without group/kind: still our entry for `gw`.
        let live = json!({"parents": [{"parentRef": {"name": "gw"}, "controllerName": US,
            "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
                            "message": "m", "observedGeneration": 1, "lastTransitionTime": T0}]}]});
        let patch = desired(&live, &route_doc(true, 1), US, T1).expect("parentRef normalised");
        assert_eq!(
            patch["parents"].as_array().unwrap().len(),
            1,
            "replaced, not added"
        );
        assert_eq!(
            patch["parents"][0]["conditions"][0]["lastTransitionTime"],
            T0
        );
    }

    #[test]
    fn gateway_class_keeps_foreign_conditions_and_times() {
        let doc = StatusDoc {
            api_version: "gateway.networking.k8s.io/v1",
            kind: "GatewayClass",
            metadata: Meta {
                namespace: None,
                name: "gammaroute".into(),
            },
            status: Status::GatewayClass(GatewayClassStatus {
                conditions: vec![Condition::new(
                    ConditionType::Accepted,
                    true,
                    Reason::Accepted,
                    "ok",
                    Some(3),
                )],
            }),
        };
        // The CRD default before any controller wrote: Accepted Unknown.
        let live = json!({"conditions": [
            {"type": "Accepted", "status": "Unknown", "reason": "Pending", "message": "Waiting for controller",
             "lastTransitionTime": "1970-01-01T00:00:00Z"},
            {"type": "SupportedVersion", "status": "True", "reason": "SupportedVersion", "message": "",
             "lastTransitionTime": T0}]});
        let patch = desired(&live, &doc, US, T1).unwrap();
        let c = patch["conditions"].as_array().unwrap();
        assert_eq!(c[0]["status"], "True");
        assert_eq!(c[0]["lastTransitionTime"], T1);
        assert_eq!(c[1]["type"], "SupportedVersion", "foreign condition kept");
        assert_eq!(desired(&patch, &doc, US, "2030-01-01T00:00:00Z"), None);
    }

    #[test]
    fn staleness() {
        assert!(stale(&route_doc(true, 1), Some(2)));
        assert!(!stale(&route_doc(true, 2), Some(2)));
        assert!(!stale(&route_doc(true, 2), None));
    }
}
