//! What to write (pure): the desired objects against the live ones the reconciler listed.
//! An object is applied when its live [`DESIRED_HASH`](super::objects::DESIRED_HASH) differs
//! (missing, changed parameters, a new bootstrap) — so an unchanged Gateway costs no write — and
//! a live object of ours that no Gateway wants any more is deleted (the Gateway is gone, or its
//! GatewayClass no longer names our `controllerName`), unless its Gateway is in `keep` (its
//! desired objects could not be computed this round: leave what runs alone).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::objects::{Managed, ManagedKind, DESIRED_HASH, GATEWAY_NAME_LABEL};
use crate::store::ObjectKey;

/// Identity of a managed object.
pub type Id = (ManagedKind, String, String);

/// One write.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Apply(Managed),
    Delete(Id),
}

/// Actions in order: applies in [`ManagedKind::ALL`] order, then deletes.
pub fn plan(
    desired: &[Managed],
    live: &BTreeMap<Id, Value>,
    keep: &BTreeSet<ObjectKey>,
) -> Vec<Action> {
    let mut actions: Vec<Action> = desired
        .iter()
        .filter(|d| {
            let id = (d.kind, d.namespace.clone(), d.name.clone());
            live.get(&id)
                .and_then(|l| l["metadata"]["annotations"][DESIRED_HASH].as_str())
                != d.hash()
        })
        .cloned()
        .map(Action::Apply)
        .collect();
    let wanted: BTreeSet<Id> = desired
        .iter()
        .map(|d| (d.kind, d.namespace.clone(), d.name.clone()))
        .collect();
    for (id, object) in live {
        let gateway = object["metadata"]["labels"][GATEWAY_NAME_LABEL]
            .as_str()
            .map(|g| ObjectKey::new(id.1.clone(), g));
        if !wanted.contains(id) && !gateway.is_some_and(|g| keep.contains(&g)) {
            actions.push(Action::Delete(id.clone()));
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn managed(name: &str, hash: &str) -> Managed {
        Managed {
            kind: ManagedKind::ConfigMap,
            namespace: "ns".into(),
            name: name.into(),
            body: json!({"metadata": {"name": name, "annotations": {DESIRED_HASH: hash},
                                      "labels": {GATEWAY_NAME_LABEL: name}}}),
        }
    }

    fn live(objects: &[Managed]) -> BTreeMap<Id, Value> {
        objects
            .iter()
            .map(|m| {
                (
                    (m.kind, m.namespace.clone(), m.name.clone()),
                    m.body.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn only_changes_are_written() {
        let a = managed("a", "1");
        let none = BTreeSet::new();
        assert_eq!(
            plan(
                std::slice::from_ref(&a),
                &live(std::slice::from_ref(&a)),
                &none
            ),
            vec![]
        );
        let a2 = managed("a", "2");
        assert_eq!(
            plan(
                std::slice::from_ref(&a2),
                &live(std::slice::from_ref(&a)),
                &none
            ),
            vec![Action::Apply(a2)]
        );
        assert_eq!(
            plan(std::slice::from_ref(&a), &BTreeMap::new(), &none),
            vec![Action::Apply(a.clone())]
        );
    }

    #[test]
    fn unwanted_objects_go_unless_kept() {
        let b = managed("b", "1");
        let id = (ManagedKind::ConfigMap, "ns".to_string(), "b".to_string());
        assert_eq!(
            plan(&[], &live(std::slice::from_ref(&b)), &BTreeSet::new()),
            vec![Action::Delete(id)]
        );
        let keep = BTreeSet::from([ObjectKey::new("ns", "b")]);
        assert_eq!(plan(&[], &live(&[b]), &keep), vec![]);
    }
}
