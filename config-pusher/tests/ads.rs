//! The ADS server (`serve --xds-listen`, `src/xds/server.rs`) over real gRPC, with a client
//! playing Envoy: nothing is answered before the first translation, a NACK keeps the last good
//! version (and is counted) while the refused version is never resent, the next version is
//! pushed, and a token that does not grant the node's role closes the stream.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use config_pusher::auth::{Access, Secret};
use config_pusher::xds::server::{self, Ads, Gate};
use config_pusher::xds::{protocol, Snapshot};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc;
use prost::{Message, Name};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

const ROLE: &str = "gateway/demo/web";

#[derive(Debug, Default)]
struct TestGate {
    secret: Option<Secret>,
    nacks: AtomicU64,
}

impl Gate for TestGate {
    fn access(&self, authorization: Option<&[u8]>) -> Option<Access> {
        let secret = self.secret.as_ref()?;
        let token = authorization.and_then(|a| a.strip_prefix(b"Bearer "));
        Some(token.map_or(Access::Denied, |t| secret.access(t)))
    }
    fn streams(&self, _: i64) {}
    fn response(&self) {}
    fn nack(&self) {
        self.nacks.fetch_add(1, Ordering::Relaxed);
    }
}

fn snapshot(clusters: &[(&str, u32)]) -> Arc<Snapshot> {
    let mut by_name = BTreeMap::new();
    for (name, timeout) in clusters {
        let c = Cluster {
            name: name.to_string(),
            per_connection_buffer_limit_bytes: Some(
                envoy_types::pb::google::protobuf::UInt32Value { value: *timeout },
            ),
            ..Cluster::default()
        };
        by_name.insert(name.to_string(), c.encode_to_vec());
    }
    let resources = protocol::Resources::from([(Cluster::type_url(), by_name)]);
    Arc::new(Snapshot {
        ready: true,
        roles: BTreeMap::from([(ROLE.to_string(), Arc::new(resources))]),
    })
}

async fn start(gate: Arc<TestGate>) -> (SocketAddr, watch::Sender<Arc<Snapshot>>) {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    let ads = Ads::new(rx, gate);
    tokio::spawn(server::run(addr, ads, std::future::pending()));
    (addr, tx)
}

/// Opens a stream as `role` with `token`; returns the request sender and the responses.
async fn connect(
    addr: SocketAddr,
    token: Option<&str>,
) -> Result<(mpsc::Sender<DiscoveryRequest>, Streaming<DiscoveryResponse>), tonic::Status> {
    let mut client = loop {
        match AggregatedDiscoveryServiceClient::connect(format!("http://{addr}")).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let (tx, rx) = mpsc::channel(8);
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    if let Some(t) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    // The first message goes before the call returns (tonic waits for response headers).
    tx.send(cds(Some(ROLE), "", "", None)).await.unwrap();
    let responses = client
        .stream_aggregated_resources(request)
        .await?
        .into_inner();
    Ok((tx, responses))
}

fn cds(role: Option<&str>, version: &str, nonce: &str, error: Option<&str>) -> DiscoveryRequest {
    DiscoveryRequest {
        node: role.map(|r| Node {
            id: "test".into(),
            cluster: r.into(),
            ..Node::default()
        }),
        type_url: Cluster::type_url(),
        version_info: version.into(),
        response_nonce: nonce.into(),
        error_detail: error.map(|m| rpc::Status {
            code: 3,
            message: m.into(),
            details: vec![],
        }),
        ..DiscoveryRequest::default()
    }
}

async fn next(responses: &mut Streaming<DiscoveryResponse>) -> Option<DiscoveryResponse> {
    match tokio::time::timeout(Duration::from_millis(300), responses.message()).await {
        Ok(r) => r.unwrap(),
        Err(_) => None,
    }
}

#[tokio::test]
async fn nack_keeps_the_last_good_version_and_the_next_one_is_pushed() {
    let gate = Arc::new(TestGate::default());
    let (addr, snapshots) = start(gate.clone()).await;
    let (tx, mut rx) = connect(addr, None).await.unwrap();
    assert!(
        next(&mut rx).await.is_none(),
        "nothing before the first translation"
    );

    snapshots.send_replace(snapshot(&[("demo/a:80", 1)]));
    let good = next(&mut rx).await.expect("the first version");
    assert_eq!(good.type_url, Cluster::type_url());
    assert_eq!(good.resources.len(), 1);
    tx.send(cds(None, &good.version_info, &good.nonce, None))
        .await
        .unwrap();

    snapshots.send_replace(snapshot(&[("demo/a:80", 2)]));
    let bad = next(&mut rx).await.expect("the second version");
    assert_ne!(bad.version_info, good.version_info);
    assert_ne!(bad.nonce, good.nonce);
    tx.send(cds(
        None,
        &good.version_info,
        &bad.nonce,
        Some("invalid cluster"),
    ))
    .await
    .unwrap();
    // The same content again (a translation that changed nothing here): not resent.
    snapshots.send_replace(snapshot(&[("demo/a:80", 2)]));
    assert!(
        next(&mut rx).await.is_none(),
        "a refused version is not offered again"
    );
    assert_eq!(gate.nacks.load(Ordering::Relaxed), 1);

    snapshots.send_replace(snapshot(&[("demo/a:80", 3), ("demo/b:80", 3)]));
    let fixed = next(&mut rx).await.expect("the next version");
    assert_eq!(fixed.resources.len(), 2);
    assert_ne!(fixed.version_info, bad.version_info);
}

#[tokio::test]
async fn tokens_are_checked_per_role() {
    let secret = Secret::new(b"s3cret").unwrap();
    let gate = Arc::new(TestGate {
        secret: Some(secret.clone()),
        ..TestGate::default()
    });
    let (addr, snapshots) = start(gate).await;
    snapshots.send_replace(snapshot(&[("demo/a:80", 1)]));

    let Err(denied) = connect(addr, None).await else {
        panic!("no token: refused");
    };
    assert_eq!(denied.code(), tonic::Code::Unauthenticated);

    let other = secret.role_token("mesh/demo");
    let (_tx, mut rx) = connect(addr, Some(&other)).await.unwrap();
    let status = rx.message().await.expect_err("another role's token");
    assert_eq!(status.code(), tonic::Code::PermissionDenied);

    let own = secret.role_token(ROLE);
    let (_tx, mut rx) = connect(addr, Some(&own)).await.unwrap();
    assert!(next(&mut rx).await.is_some(), "the role's own token");
}
