//! `Programmed` as `serve` reports it: a Gateway (and each of its listeners) is programmed once a
//! proxy of its role runs the table being served — not merely once config-pusher translated it.
//! Pure: the caller supplies the served versions and what the connected proxies report
//! (`x-gammaroute-applied`, [`super::proxies`]).
//!
//! Gateway API `GatewayConditionType Programmed` / `ListenerConditionProgrammed`: "True when the
//! Gateway (listener) has been configured in the data plane"; while it is not yet, `status:
//! False` with reason `Pending` (`GatewayReasonPending`, `ListenerReasonPending`). Translation
//! (and so offline `render`/`check`) can only say the configuration is valid: a Programmed that
//! translation already set to False (`Invalid`) stays as it is.

use std::collections::BTreeMap;

use crate::translate::status::{Condition, ConditionType, Reason, Status, StatusDoc};

/// Role → the applied version each connected proxy of that role reports (`None`: no table yet).
pub type Fleet = BTreeMap<String, Vec<Option<String>>>;

/// Whether a Gateway's role runs the served table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// At least one connected proxy of the role has applied the served version.
    Applied,
    /// Not (yet): what is missing, for the condition's message.
    Pending(String),
}

/// The role whose table a Gateway's proxies fetch.
pub fn gateway_role(namespace: &str, name: &str) -> String {
    format!("gateway/{namespace}/{name}")
}

/// A verdict for every Gateway in `statuses`, from the versions served per role and the fleet.
pub fn verdicts(
    statuses: &[StatusDoc],
    served: &BTreeMap<String, String>,
    fleet: &Fleet,
) -> BTreeMap<String, Verdict> {
    statuses
        .iter()
        .filter(|d| matches!(d.status, Status::Gateway(_)))
        .map(|d| {
            let role = gateway_role(
                d.metadata.namespace.as_deref().unwrap_or("default"),
                &d.metadata.name,
            );
            let verdict = verdict(&role, served.get(&role).map(String::as_str), fleet);
            (role, verdict)
        })
        .collect()
}

fn verdict(role: &str, served: Option<&str>, fleet: &Fleet) -> Verdict {
    let Some(version) = served else {
        return Verdict::Pending(format!(
            "config-pusher serves no table for role {role} (see the problems in /v1/status)"
        ));
    };
    let applied = fleet.get(role).map(Vec::as_slice).unwrap_or_default();
    if applied.iter().any(|a| a.as_deref() == Some(version)) {
        return Verdict::Applied;
    }
    let short = short(version);
    if applied.is_empty() {
        return Verdict::Pending(format!(
            "no proxy of role {role} has fetched its table in the last 60 s; waiting for one to \
             apply version {short}"
        ));
    }
    let none = applied.iter().filter(|a| a.is_none()).count();
    Verdict::Pending(format!(
        "waiting for a proxy of role {role} to apply version {short}: of {} connected, {} run an \
         older version and {none} no table yet",
        applied.len(),
        applied.len() - none,
    ))
}

fn short(version: &str) -> &str {
    version.get(..12).unwrap_or(version)
}

/// Turns each `Programmed: True` of a Gateway with a [`Verdict::Pending`] (and of its
/// listeners) into `False`/`Pending` with the verdict's message.
pub fn apply(statuses: &mut [StatusDoc], verdicts: &BTreeMap<String, Verdict>) {
    for doc in statuses {
        let role = gateway_role(
            doc.metadata.namespace.as_deref().unwrap_or("default"),
            &doc.metadata.name,
        );
        let (Status::Gateway(gw), Some(Verdict::Pending(message))) =
            (&mut doc.status, verdicts.get(&role))
        else {
            continue;
        };
        let listeners = gw.listeners.iter_mut().map(|l| &mut l.conditions);
        for conditions in std::iter::once(&mut gw.conditions).chain(listeners) {
            for c in conditions.iter_mut() {
                if c.type_ == ConditionType::Programmed && c.status {
                    *c = Condition::new(
                        ConditionType::Programmed,
                        false,
                        Reason::Pending,
                        message.clone(),
                        c.observed_generation,
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::status::{GatewayStatus, ListenerStatus, Meta};

    fn gateway(name: &str, programmed: bool) -> StatusDoc {
        let c = |ok| {
            Condition::new(
                ConditionType::Programmed,
                ok,
                if ok {
                    Reason::Programmed
                } else {
                    Reason::Invalid
                },
                "from translation",
                Some(3),
            )
        };
        StatusDoc {
            api_version: "gateway.networking.k8s.io/v1",
            kind: "Gateway",
            metadata: Meta {
                namespace: Some("infra".into()),
                name: name.into(),
            },
            status: Status::Gateway(GatewayStatus {
                addresses: vec![],
                conditions: vec![c(programmed)],
                listeners: vec![ListenerStatus {
                    name: "http".into(),
                    supported_kinds: vec![],
                    attached_routes: 1,
                    conditions: vec![c(programmed)],
                }],
            }),
        }
    }

    fn programmed(doc: &StatusDoc) -> Vec<(bool, Reason, String)> {
        let Status::Gateway(gw) = &doc.status else {
            panic!()
        };
        std::iter::once(&gw.conditions)
            .chain(gw.listeners.iter().map(|l| &l.conditions))
            .flatten()
            .filter(|c| c.type_ == ConditionType::Programmed)
            .map(|c| (c.status, c.reason, c.message.clone()))
            .collect()
    }

    const V1: &str = "aaaaaaaaaaaa1111";
    const V2: &str = "bbbbbbbbbbbb2222";

    fn served() -> BTreeMap<String, String> {
        BTreeMap::from([("gateway/infra/edge".to_string(), V2.to_string())])
    }

    #[test]
    fn programmed_once_a_proxy_of_the_role_runs_the_served_version() {
        let docs = vec![gateway("edge", true)];
        let fleet = Fleet::from([(
            "gateway/infra/edge".to_string(),
            vec![Some(V1.to_string()), Some(V2.to_string())],
        )]);
        let v = verdicts(&docs, &served(), &fleet);
        assert_eq!(v["gateway/infra/edge"], Verdict::Applied);
        let mut shown = docs.clone();
        apply(&mut shown, &v);
        assert_eq!(shown, docs, "an applied table leaves translation's status");
    }

    #[test]
    fn pending_says_what_is_missing_on_the_gateway_and_its_listeners() {
        let docs = vec![gateway("edge", true)];
        let cases = [
            (Fleet::new(), "no proxy of role gateway/infra/edge has fetched its table in the last 60 s; waiting for one to apply version bbbbbbbbbbbb"),
            (
                Fleet::from([(
                    "gateway/infra/edge".to_string(),
                    vec![Some(V1.to_string()), None],
                )]),
                "waiting for a proxy of role gateway/infra/edge to apply version bbbbbbbbbbbb: of 2 connected, 1 run an older version and 1 no table yet",
            ),
        ];
        for (fleet, message) in cases {
            let mut shown = docs.clone();
            apply(&mut shown, &verdicts(&docs, &served(), &fleet));
            let pending = (false, Reason::Pending, message.to_string());
            assert_eq!(programmed(&shown[0]), vec![pending.clone(), pending]);
        }
        // Another role's proxies do not count.
        let other = Fleet::from([("gateway/infra/other".to_string(), vec![Some(V2.into())])]);
        assert!(matches!(
            verdicts(&docs, &served(), &other)["gateway/infra/edge"],
            Verdict::Pending(_)
        ));
        // No table served for the role.
        let v = verdicts(&docs, &BTreeMap::new(), &Fleet::new());
        assert!(
            matches!(&v["gateway/infra/edge"], Verdict::Pending(m) if m.contains("serves no table"))
        );
    }

    #[test]
    fn an_invalid_gateway_stays_invalid() {
        let docs = vec![gateway("edge", false)];
        let mut shown = docs.clone();
        apply(&mut shown, &verdicts(&docs, &served(), &Fleet::new()));
        assert_eq!(shown, docs);
    }
}
