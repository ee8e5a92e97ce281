//! The proxy parameters of a GatewayClass: `spec.parametersRef` to a ConfigMap of ours
//! (Gateway API `GatewayClassSpec.parametersRef`, GEP-1762 "in-cluster Gateway deployments").
//! Parsed once into [`ProxyParams`]; a malformed value is an error naming the ConfigMap and key,
//! never a silent default.
//!
//! ```yaml
//! data:
//!   replicas: "2"                 # Deployment replicas (default 1)
//!   serviceType: LoadBalancer     # LoadBalancer (default), ClusterIP or NodePort
//!   serviceAnnotations: |         # YAML map, onto the Service (cloud load balancer options)
//!     service.beta.kubernetes.io/aws-load-balancer-type: nlb
//!   resources: |                  # core/v1 ResourceRequirements of the Envoy container
//!     requests: {cpu: 100m, memory: 64Mi}
//! ```

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// How the proxies of a GatewayClass run.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyParams {
    pub replicas: i32,
    pub service_type: ServiceType,
    pub service_annotations: BTreeMap<String, String>,
    pub resources: ResourceRequirements,
}

/// `Service.spec.type` of a provisioned Service (`ExternalName` makes no sense for a proxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceType {
    LoadBalancer,
    ClusterIp,
    NodePort,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::LoadBalancer => "LoadBalancer",
            ServiceType::ClusterIp => "ClusterIP",
            ServiceType::NodePort => "NodePort",
        }
    }
}

impl Default for ProxyParams {
    /// One replica behind a LoadBalancer, with requests like config-pusher's own.
    fn default() -> Self {
        ProxyParams {
            replicas: 1,
            service_type: ServiceType::LoadBalancer,
            service_annotations: BTreeMap::new(),
            resources: ResourceRequirements {
                requests: Some(BTreeMap::from([
                    ("cpu".to_string(), Quantity("100m".into())),
                    ("memory".to_string(), Quantity("64Mi".into())),
                ])),
                limits: Some(BTreeMap::from([(
                    "memory".to_string(),
                    Quantity("512Mi".into()),
                )])),
                ..ResourceRequirements::default()
            },
        }
    }
}

/// Why a GatewayClass's parameters cannot be used; names the object and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error(
        "GatewayClass {class}: spec.parametersRef must name a ConfigMap (group \"\", kind \
         ConfigMap) with a namespace, not {group}/{kind}"
    )]
    UnsupportedRef {
        class: String,
        group: String,
        kind: String,
    },
    #[error("GatewayClass {class}: spec.parametersRef: ConfigMap {namespace}/{name} not found")]
    NotFound {
        class: String,
        namespace: String,
        name: String,
    },
    #[error("ConfigMap {configmap}: data.{key}: {message}")]
    Value {
        configmap: String,
        key: &'static str,
        message: String,
    },
    #[error(
        "ConfigMap {configmap}: data.{key}: unknown key (replicas, serviceType, \
         serviceAnnotations, resources)"
    )]
    UnknownKey { configmap: String, key: String },
}

/// Where a GatewayClass's parameters are, once `spec.parametersRef` is checked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ParamsRef {
    pub namespace: String,
    pub name: String,
}

/// The ConfigMap `parametersRef` names, or why it cannot name one of ours.
pub fn params_ref(
    class: &str,
    r: &gateway_api::experimental::gatewayclasses::GatewayClassParametersRef,
) -> Result<ParamsRef, ParamsError> {
    match (&*r.group, &*r.kind, &r.namespace) {
        ("" | "core", "ConfigMap", Some(ns)) => Ok(ParamsRef {
            namespace: ns.clone(),
            name: r.name.clone(),
        }),
        _ => Err(ParamsError::UnsupportedRef {
            class: class.to_string(),
            group: r.group.clone(),
            kind: r.kind.clone(),
        }),
    }
}

/// Parses a parameters ConfigMap (see the module docs); keys left out keep their defaults.
pub fn parse(cm: &ConfigMap) -> Result<ProxyParams, ParamsError> {
    let configmap = format!(
        "{}/{}",
        cm.metadata.namespace.as_deref().unwrap_or_default(),
        cm.metadata.name.as_deref().unwrap_or_default()
    );
    let err = |key: &'static str, message: String| ParamsError::Value {
        configmap: configmap.clone(),
        key,
        message,
    };
    let mut params = ProxyParams::default();
    for (key, value) in cm.data.iter().flatten() {
        match key.as_str() {
            "replicas" => {
                params.replicas = value
                    .trim()
                    .parse::<i32>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| {
                        err("replicas", format!("{value:?} is not a whole number ≥ 0"))
                    })?;
            }
            "serviceType" => {
                params.service_type = match value.trim() {
                    "LoadBalancer" => ServiceType::LoadBalancer,
                    "ClusterIP" => ServiceType::ClusterIp,
                    "NodePort" => ServiceType::NodePort,
                    other => {
                        return Err(err(
                            "serviceType",
                            format!("{other:?}: expected LoadBalancer, ClusterIP or NodePort"),
                        ))
                    }
                };
            }
            "serviceAnnotations" => {
                params.service_annotations = serde_yaml_ng::from_str(value)
                    .map_err(|e| err("serviceAnnotations", format!("not a map of strings: {e}")))?;
            }
            "resources" => {
                params.resources = serde_yaml_ng::from_str(value)
                    .map_err(|e| err("resources", format!("not a ResourceRequirements: {e}")))?;
            }
            other => {
                return Err(ParamsError::UnknownKey {
                    configmap: configmap.clone(),
                    key: other.to_string(),
                })
            }
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn cm(data: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                namespace: Some("gammaroute-system".into()),
                name: Some("proxy".into()),
                ..ObjectMeta::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..ConfigMap::default()
        }
    }

    #[test]
    fn every_key_parses() {
        let p = parse(&cm(&[
            ("replicas", "3"),
            ("serviceType", "ClusterIP"),
            ("serviceAnnotations", "a.example/x: \"1\"\n"),
            ("resources", "requests: {cpu: 250m}\n"),
        ]))
        .unwrap();
        assert_eq!(p.replicas, 3);
        assert_eq!(p.service_type, ServiceType::ClusterIp);
        assert_eq!(p.service_annotations["a.example/x"], "1");
        assert_eq!(
            p.resources.requests.unwrap()["cpu"],
            Quantity("250m".into())
        );
        assert_eq!(parse(&cm(&[])).unwrap(), ProxyParams::default());
    }

    #[test]
    fn bad_values_name_the_configmap_and_key() {
        let e = parse(&cm(&[("replicas", "two")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ConfigMap gammaroute-system/proxy: data.replicas: \"two\" is not a whole number ≥ 0"
        );
        let e = parse(&cm(&[("serviceType", "ExternalName")])).unwrap_err();
        assert!(e.to_string().contains("data.serviceType"), "{e}");
        let e = parse(&cm(&[("resources", "requests: 5")])).unwrap_err();
        assert!(e.to_string().contains("data.resources"), "{e}");
        let e = parse(&cm(&[("replica", "1")])).unwrap_err();
        assert!(matches!(e, ParamsError::UnknownKey { .. }), "{e}");
    }

    #[test]
    fn only_a_namespaced_configmap_is_a_parameters_ref() {
        use gateway_api::experimental::gatewayclasses::GatewayClassParametersRef as R;
        let r = |group: &str, kind: &str, ns: Option<&str>| R {
            group: group.into(),
            kind: kind.into(),
            name: "p".into(),
            namespace: ns.map(Into::into),
        };
        assert_eq!(
            params_ref("c", &r("", "ConfigMap", Some("ns"))).unwrap(),
            ParamsRef {
                namespace: "ns".into(),
                name: "p".into()
            }
        );
        assert!(params_ref("c", &r("", "ConfigMap", None)).is_err());
        assert!(params_ref("c", &r("example.com", "Params", Some("ns"))).is_err());
    }
}
