//! Fetching route tables from config-pusher (docs/architecture.md "Distribution"): the pure part.
//!
//! Envoy runs one VM per worker thread plus two on the main thread (docs/envoy.md "VMs"),
//! all sharing one process-wide key/value store ("shared data", with compare-and-swap). Per role:
//!
//! - **One fetcher.** On every tick each VM tries to take or renew the fetcher [`Lease`] in shared
//!   data with CAS; the holder long-polls `GET /v1/tables/{role}` with `If-None-Match`. A VM that
//!   dies (a trap, `FAIL_RELOAD`) stops renewing, so another takes over once the lease expires.
//! - **Publish once, compile everywhere.** The fetcher checks and compiles a new table, then
//!   writes it (protobuf) and its version under [`Keys`]. Every VM compares the small version key
//!   when woken through its shared queue ([`super::wakeup`]), else on its tick, and re-reads
//!   the table only when it changed. Requests in flight keep the router they started with.
//! - **Last good stays.** A table that fails to decode, validate or compile is rejected whole
//!   (xDS NACK semantics, docs/architecture.md "Distribution"): nothing is published, the rejection is
//!   reported to config-pusher on the next fetch (`x-gammaroute-rejected`), and its version is
//!   sent as `If-None-Match` so the same bad table is not fetched again and again.
//! - **config-pusher down** → the last good table keeps serving; fetches retry with capped
//!   exponential back-off and jitter. The cap is low (3 s ± 20%) so that a proxy resyncs within
//!   5 s of config-pusher answering again, however long the outage lasted; the jitter spreads
//!   the retries of proxies that lost it together.
//! - **Never back.** config-pusher sends each table's generation (`x-gammaroute-generation`,
//!   derived from its inputs, so replicas agree); a table of a lower generation than the one in
//!   force (a lagging replica behind the same Service) is not applied, and the request says the
//!   generation in force so that such a replica holds the long-poll instead of answering.
//!
//! This module decides; `updates` performs the host calls (it is compiled for `wasm32` only).

use super::config::SourceConfig;

/// Shared-data keys of one role. Keys are per role so that several plugins (listeners) in one
/// process fetch independently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    pub lease: String,
    pub version: String,
    pub table: String,
    /// The generation of the table under `table` (written before it).
    pub generation: String,
    /// The table being decoded and compiled ([`Attempt`]): set before, cleared after.
    pub attempt: String,
    /// The VMs to wake when a table is published ([`super::wakeup::Listeners`]).
    pub listeners: String,
}

impl Keys {
    pub fn new(role: &str) -> Keys {
        Keys {
            lease: format!("gammaroute/{role}/lease"),
            version: format!("gammaroute/{role}/version"),
            table: format!("gammaroute/{role}/table"),
            generation: format!("gammaroute/{role}/generation"),
            attempt: format!("gammaroute/{role}/attempt"),
            listeners: format!("gammaroute/{role}/listeners"),
        }
    }
}

/// The shared-data key of the counter that hands out VM numbers.
pub const VM_SEQUENCE_KEY: &str = "gammaroute/vm-sequence";

/// The fetcher lease: who fetches, until when (host clock, milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub holder: u64,
    pub expires_ms: u64,
}

impl Lease {
    /// Shared-data encoding: `"<holder> <expires_ms>"`.
    pub fn encode(&self) -> String {
        format!("{} {}", self.holder, self.expires_ms)
    }

    /// `None` for anything else (an empty value, a value from another version of the filter):
    /// such a lease is treated as free.
    pub fn parse(bytes: &[u8]) -> Option<Lease> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (holder, expires) = text.split_once(' ')?;
        Some(Lease {
            holder: holder.parse().ok()?,
            expires_ms: expires.parse().ok()?,
        })
    }
}

/// The lease a VM writes on a tick (with CAS against what it read): renew its own, take a free
/// or expired one; `None` while another VM holds a live lease.
pub fn lease_step(current: Option<&Lease>, me: u64, now_ms: u64, tick_ms: u32) -> Option<Lease> {
    match current {
        Some(lease) if lease.holder != me && lease.expires_ms > now_ms => None,
        _ => Some(Lease {
            holder: me,
            expires_ms: now_ms.saturating_add(lease_duration_ms(tick_ms)),
        }),
    }
}

/// Whether `me` holds a live lease: re-checked after a fetched table is decoded and compiled
/// (which can take longer than the lease), so a fetcher whose lease passed to another VM never
/// publishes over what that VM fetched since.
pub fn holds(current: Option<&Lease>, me: u64, now_ms: u64) -> bool {
    current.is_some_and(|lease| lease.holder == me && lease.expires_ms > now_ms)
}

/// A fetched table being decoded and compiled, recorded in shared data (`Keys::attempt`) for
/// that time. Decoding and compiling run to completion within one host callback, so a record
/// another VM finds when it is about to fetch was left by a VM that trapped on that table
/// (Envoy then replaces the VM): the table is treated as rejected rather than fetched again
/// to trap the next VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The response's `ETag` (empty when it had none).
    pub version: String,
}

impl Attempt {
    /// Shared-data encoding: `"attempt <version>"`; the empty value means none.
    pub fn encode(&self) -> String {
        format!("attempt {}", self.version)
    }

    /// `None` for an empty (cleared) or unrecognised value.
    pub fn parse(bytes: &[u8]) -> Option<Attempt> {
        let text = std::str::from_utf8(bytes).ok()?;
        Some(Attempt {
            version: text.strip_prefix("attempt ")?.to_string(),
        })
    }
}

/// Several ticks, so a busy worker that ticks late does not lose the lease, and at most a couple
/// of seconds of no fetcher after a VM dies.
pub fn lease_duration_ms(tick_ms: u32) -> u64 {
    (u64::from(tick_ms) * 8).max(2_000)
}

/// A fetch response, as the host delivered it.
#[derive(Debug, Clone, Copy)]
pub struct CallResponse<'a> {
    /// `:status`; `None` when the call failed without a response (reset, no headers).
    pub status: Option<u16>,
    pub content_type: Option<&'a str>,
    /// The `ETag`, unquoted.
    pub etag: Option<&'a str>,
    /// The body size the host announced (the body is read only when it is acceptable).
    pub body_size: usize,
    /// `x-gammaroute-generation`: `None` from a config-pusher that does not send it.
    pub generation: Option<u64>,
}

impl<'a> CallResponse<'a> {
    /// Reads a fetch answer from the response headers the host gave (names compared ASCII
    /// case-insensitively; an unparsable `:status` counts as none).
    pub fn from_headers(headers: &'a [(String, String)], body_size: usize) -> CallResponse<'a> {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        CallResponse {
            status: header(":status").and_then(|s| s.parse().ok()),
            content_type: header("content-type"),
            etag: header("etag").map(unquote_etag),
            body_size,
            generation: header(GENERATION_HEADER).and_then(|g| g.trim().parse().ok()),
        }
    }
}

/// Whether a VM should read and compile the table another VM published: a version is there, it is
/// not the one in force, and it is not one this VM already refused (refused once is enough until
/// it changes).
pub fn should_sync(published: &str, in_force: &str, refused: &str) -> bool {
    !published.is_empty() && published != in_force && published != refused
}

/// The version to report a refused fetched table under: the table's own, else the response's
/// `ETag` (a table that did not parse far enough to say its version).
pub fn refused_version(table_version: String, etag: Option<&str>) -> String {
    if table_version.is_empty() {
        etag.unwrap_or_default().to_string()
    } else {
        table_version
    }
}

/// The table generation header, on requests (the one in force) and responses (the one sent).
pub const GENERATION_HEADER: &str = "x-gammaroute-generation";

/// What to do with a fetch response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Nothing new (304).
    NotModified,
    /// A table of a lower generation than the one in force (a replica that lags): not applied.
    Older { generation: u64 },
    /// A table to decode (protobuf or JSON), validate and compile.
    Table { proto: bool },
    /// A table refused before decoding (too large); report it as rejected.
    Refused { version: String, message: String },
    /// config-pusher unreachable or answering an error: back off and retry.
    Failed(String),
}

/// Back-off after failed fetches: 500 ms doubling to 3 s. One fetch every ~3 s per proxy is
/// cheap for config-pusher, and the cap bounds the resync after an outage: ≤ 3.6 s (+ a tick).
const BACKOFF_BASE_MS: u64 = 500;
const BACKOFF_MAX_MS: u64 = 3_000;
/// A long-poll answered 304 faster than this means the server does not hold requests: fall back
/// to the polling interval rather than spinning.
const LONG_POLL_MIN_MS: u64 = 1_000;
/// Longest rejection message reported in a header.
const REPORT_MAX: usize = 512;

/// One root context's fetch state (meaningful while it holds the lease).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetch {
    /// The token of the call in flight.
    pub in_flight: Option<u32>,
    started_ms: u64,
    next_attempt_ms: u64,
    failures: u32,
    /// The newest version config-pusher sent, applied or rejected (`If-None-Match`).
    seen: String,
    /// `<version> <message>` of the last rejected table (`x-gammaroute-rejected`).
    rejected: Option<String>,
    /// The generation of the table in force (0: unknown).
    generation: u64,
}

impl Fetch {
    /// Whether a fetch should start now. A call that outlived its timeout by far is taken as
    /// lost (the host never answered it) and forgotten, so fetching cannot stall for good.
    pub fn due(&mut self, source: &SourceConfig, now_ms: u64) -> bool {
        let deadline = self
            .started_ms
            .saturating_add(u64::from(Fetch::timeout_ms(source)) * 2);
        if self.in_flight.is_some() && now_ms > deadline {
            self.in_flight = None;
        }
        self.in_flight.is_none() && now_ms >= self.next_attempt_ms
    }

    /// Records a dispatched call.
    pub fn started(&mut self, token: u32, now_ms: u64) {
        self.in_flight = Some(token);
        self.started_ms = now_ms;
    }

    /// A dispatch the host refused: retry later like a failed fetch.
    pub fn dispatch_failed(&mut self, now_ms: u64, draw: u64) {
        self.in_flight = None;
        self.fail(now_ms, draw);
    }

    /// The request headers of a fetch. `applied` is the version this VM serves ("" for none).
    pub fn request_headers(
        &self,
        source: &SourceConfig,
        applied: &str,
        proxy_id: &str,
    ) -> Vec<(&'static str, String)> {
        let mut path = format!("/v1/tables/{}", source.role);
        if source.long_poll_seconds > 0 {
            path.push_str(&format!("?wait={}s", source.long_poll_seconds));
        }
        let mut headers = vec![
            (":method", "GET".to_string()),
            (":path", path),
            (":authority", source.authority.clone()),
            (
                "accept",
                "application/x-protobuf, application/json;q=0.5".to_string(),
            ),
            ("x-gammaroute-proxy", proxy_id.to_string()),
            ("x-gammaroute-applied", applied.to_string()),
        ];
        if !self.seen.is_empty() {
            headers.push(("if-none-match", format!("\"{}\"", self.seen)));
        }
        if self.generation > 0 {
            headers.push((GENERATION_HEADER, self.generation.to_string()));
        }
        if let Some(token) = &source.token {
            headers.push(("authorization", format!("Bearer {token}")));
        }
        if let Some(rejected) = &self.rejected {
            headers.push(("x-gammaroute-rejected", rejected.clone()));
        }
        headers
    }

    /// How long the host may keep the call open: the long-poll plus slack.
    pub fn timeout_ms(source: &SourceConfig) -> u32 {
        source
            .long_poll_seconds
            .saturating_mul(1000)
            .saturating_add(5_000)
    }

    /// Classifies a response and schedules the next fetch.
    pub fn on_response(
        &mut self,
        source: &SourceConfig,
        response: CallResponse<'_>,
        now_ms: u64,
        draw: u64,
    ) -> Fetched {
        self.in_flight = None;
        let fetched = match (classify(source, response), response.generation) {
            (Fetched::Table { .. }, Some(generation)) if generation < self.generation => {
                Fetched::Older { generation }
            }
            (fetched, _) => fetched,
        };
        match &fetched {
            Fetched::Failed(_) => self.fail(now_ms, draw),
            // A replica that does not hold the request (an older config-pusher): ask again after
            // the poll interval, not in a loop.
            Fetched::Older { .. } => {
                self.failures = 0;
                self.next_attempt_ms = now_ms.saturating_add(u64::from(source.poll_interval_ms));
            }
            Fetched::NotModified => {
                self.failures = 0;
                let quick = now_ms.saturating_sub(self.started_ms) < LONG_POLL_MIN_MS;
                self.next_attempt_ms = if source.long_poll_seconds > 0 && !quick {
                    now_ms
                } else {
                    now_ms.saturating_add(u64::from(source.poll_interval_ms))
                };
            }
            // Failures are reset only once the table is applied ([`Fetch::applied`]): a table
            // rejected after decoding backs off like a failure ([`Fetch::rejected`]).
            Fetched::Table { .. } => {
                self.next_attempt_ms = if source.long_poll_seconds > 0 {
                    now_ms
                } else {
                    now_ms.saturating_add(u64::from(source.poll_interval_ms))
                };
            }
            Fetched::Refused { version, message } => {
                let (version, message) = (version.clone(), message.clone());
                self.rejected(&version, &message, now_ms, draw);
            }
        }
        fetched
    }

    /// A table was applied: it is now what `If-None-Match` names.
    pub fn applied(&mut self, version: &str) {
        self.seen = version.to_string();
        self.failures = 0;
    }

    /// The generation of the table in force (from the response that brought it, or from shared
    /// data when another VM fetched it). Never goes back.
    pub fn applied_generation(&mut self, generation: u64) {
        self.generation = self.generation.max(generation);
    }

    /// A table was rejected: remember it so that it is reported and not fetched again, and back
    /// off like a failure. Never an immediate re-fetch: a table rejected before it said its
    /// version, answered without an `ETag`, leaves `If-None-Match` unchanged, so config-pusher
    /// would answer the same bad table at once, in a loop.
    pub fn rejected(&mut self, version: &str, message: &str, now_ms: u64, draw: u64) {
        self.fail(now_ms, draw);
        if !version.is_empty() {
            self.seen = version.to_string();
        }
        let mut report = format!("{version} {message}");
        report = report
            .chars()
            .map(|c| {
                if c == ' ' || c.is_ascii_graphic() {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        if report.len() > REPORT_MAX {
            report.truncate(REPORT_MAX);
        }
        self.rejected = Some(report);
    }

    /// A VM trapped on the table in `attempt` (see [`Attempt`]): reject it like a table that
    /// failed to compile — reported, not fetched again while config-pusher offers it, back-off.
    pub fn trapped(&mut self, attempt: &Attempt, now_ms: u64, draw: u64) {
        self.rejected(
            &attempt.version,
            "a worker VM trapped (crashed) while decoding or compiling this table",
            now_ms,
            draw,
        );
    }

    /// Milliseconds until the next attempt (0 = due).
    pub fn wait_ms(&self, now_ms: u64) -> u64 {
        self.next_attempt_ms.saturating_sub(now_ms)
    }

    fn fail(&mut self, now_ms: u64, draw: u64) {
        self.failures = self.failures.saturating_add(1);
        self.next_attempt_ms = now_ms.saturating_add(backoff_ms(self.failures, draw));
    }
}

/// Capped exponential back-off with ±20% jitter (so proxies restarted together do not retry in
/// lockstep).
pub fn backoff_ms(failures: u32, draw: u64) -> u64 {
    let exp = failures.saturating_sub(1).min(16);
    let base = BACKOFF_BASE_MS.saturating_mul(1 << exp).min(BACKOFF_MAX_MS);
    let spread = base / 5;
    let jitter = if spread == 0 {
        0
    } else {
        draw % (2 * spread + 1)
    };
    base - spread + jitter
}

fn classify(source: &SourceConfig, response: CallResponse<'_>) -> Fetched {
    match response.status {
        None => Fetched::Failed("no response (connection failed or reset)".to_string()),
        Some(304) => Fetched::NotModified,
        Some(200) => {
            if response.body_size > source.max_table_bytes as usize {
                return Fetched::Refused {
                    version: response.etag.unwrap_or_default().to_string(),
                    message: format!(
                        "table of {} bytes is over source.maxTableBytes ({})",
                        response.body_size, source.max_table_bytes
                    ),
                };
            }
            let proto = response
                .content_type
                .is_some_and(|t| t.starts_with("application/x-protobuf"));
            Fetched::Table { proto }
        }
        Some(status) => Fetched::Failed(format!("config-pusher answered {status}")),
    }
}

/// `ETag: "v"` or `W/"v"` → `v`.
pub fn unquote_etag(etag: &str) -> &str {
    let etag = etag.trim();
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    etag.strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .unwrap_or(etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_response_from_headers() {
        let headers: Vec<(String, String)> = [
            (":status", "200"),
            ("Content-Type", "application/x-protobuf"),
            ("ETag", "W/\"abc\""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let call = CallResponse::from_headers(&headers, 7);
        assert_eq!(call.status, Some(200));
        assert_eq!(call.content_type, Some("application/x-protobuf"));
        assert_eq!(call.etag, Some("abc"));
        assert_eq!(call.body_size, 7);
        // No headers (a reset), or a status that is not a number: no status.
        assert_eq!(CallResponse::from_headers(&[], 0).status, None);
        let bad = [(":status".to_string(), "2xx".to_string())];
        assert_eq!(CallResponse::from_headers(&bad, 0).status, None);
    }

    #[test]
    fn holds_only_an_own_live_lease() {
        let lease = Lease {
            holder: 7,
            expires_ms: 1_000,
        };
        assert!(holds(Some(&lease), 7, 999));
        assert!(!holds(Some(&lease), 7, 1_000), "expired");
        assert!(!holds(Some(&lease), 8, 999), "another VM's");
        assert!(!holds(None, 7, 0), "no lease");
    }

    #[test]
    fn attempt_round_trips_and_empty_is_none() {
        let a = Attempt {
            version: "v9".into(),
        };
        assert_eq!(Attempt::parse(a.encode().as_bytes()), Some(a));
        let unversioned = Attempt {
            version: String::new(),
        };
        assert_eq!(
            Attempt::parse(unversioned.encode().as_bytes()),
            Some(unversioned)
        );
        assert_eq!(Attempt::parse(b""), None);
        assert_eq!(Attempt::parse(b"v9"), None);
    }

    #[test]
    fn a_trapped_attempt_is_rejected_reported_and_backed_off() {
        let s = source(30);
        let mut f = Fetch::default();
        f.applied("v1");
        f.trapped(
            &Attempt {
                version: "v9".into(),
            },
            1_000,
            0,
        );
        assert!(!f.due(&s, 1_000), "backs off, no immediate re-fetch");
        assert!(f.due(&s, 1_000 + 30_000));
        let headers = f.request_headers(&s, "v1", "p");
        assert!(headers
            .iter()
            .any(|(k, v)| *k == "if-none-match" && v == "\"v9\""));
        assert!(headers.iter().any(|(k, v)| *k == "x-gammaroute-rejected"
            && v.starts_with("v9 ")
            && v.contains("trapped")));
    }

    #[test]
    fn sync_only_a_new_version_not_refused_before() {
        assert!(should_sync("v2", "v1", ""));
        assert!(should_sync("v2", "", "v1"));
        assert!(!should_sync("", "v1", ""));
        assert!(!should_sync("v1", "v1", ""));
        assert!(!should_sync("v2", "v1", "v2"));
    }

    #[test]
    fn refused_version_falls_back_to_the_etag() {
        assert_eq!(refused_version("v1".into(), Some("e")), "v1");
        assert_eq!(refused_version(String::new(), Some("e")), "e");
        assert_eq!(refused_version(String::new(), None), "");
    }

    fn source(long_poll: u32) -> SourceConfig {
        SourceConfig {
            cluster: "config-pusher".into(),
            authority: "cp:18000".into(),
            role: "gateway/demo/web".into(),
            token: Some("s3cret".into()),
            long_poll_seconds: long_poll,
            poll_interval_ms: 1000,
            tick_ms: 250,
            max_table_bytes: 1000,
            proxy_id: None,
            push_updates: true,
        }
    }

    fn ok(body_size: usize) -> CallResponse<'static> {
        CallResponse {
            status: Some(200),
            content_type: Some("application/x-protobuf"),
            etag: Some("v2"),
            body_size,
            generation: None,
        }
    }

    #[test]
    fn lease_is_taken_when_free_or_expired_renewed_by_holder_kept_otherwise() {
        let taken = lease_step(None, 7, 1_000, 250).unwrap();
        assert_eq!(
            taken,
            Lease {
                holder: 7,
                expires_ms: 3_000
            }
        );
        assert_eq!(Lease::parse(taken.encode().as_bytes()), Some(taken));
        // Another VM's live lease: leave it.
        assert_eq!(lease_step(Some(&taken), 8, 2_999, 250), None);
        // Expired: take it.
        assert_eq!(lease_step(Some(&taken), 8, 3_000, 250).unwrap().holder, 8);
        // Mine: renew.
        assert_eq!(
            lease_step(Some(&taken), 7, 2_000, 250).unwrap().expires_ms,
            4_000
        );
        assert_eq!(Lease::parse(b"garbage"), None);
        assert_eq!(Lease::parse(b""), None);
    }

    #[test]
    fn request_carries_role_wait_etag_token_and_reports() {
        let src = source(30);
        let mut fetch = Fetch::default();
        let first = fetch.request_headers(&src, "", "node-1");
        let get =
            |h: &[(&str, String)], k: &str| h.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        assert_eq!(
            get(&first, ":path").as_deref(),
            Some("/v1/tables/gateway/demo/web?wait=30s")
        );
        assert_eq!(get(&first, "if-none-match"), None, "nothing seen yet");
        assert_eq!(
            get(&first, "authorization").as_deref(),
            Some("Bearer s3cret")
        );
        assert_eq!(get(&first, "x-gammaroute-proxy").as_deref(), Some("node-1"));

        fetch.applied("v1");
        fetch.rejected("v2", "routes[0].rules[0]: bad\nregex", 0, 0);
        let next = fetch.request_headers(&src, "v1", "node-1");
        assert_eq!(get(&next, "if-none-match").as_deref(), Some("\"v2\""));
        assert_eq!(get(&next, "x-gammaroute-applied").as_deref(), Some("v1"));
        assert_eq!(
            get(&next, "x-gammaroute-rejected").as_deref(),
            Some("v2 routes[0].rules[0]: bad?regex"),
            "header-safe"
        );
        let plain = Fetch::default().request_headers(&source(0), "", "n");
        assert_eq!(
            get(&plain, ":path").as_deref(),
            Some("/v1/tables/gateway/demo/web")
        );
    }

    #[test]
    fn responses_schedule_the_next_fetch() {
        let src = source(30);
        let mut fetch = Fetch::default();
        assert!(fetch.due(&src, 0));
        fetch.started(1, 0);
        assert!(!fetch.due(&src, 0), "one call at a time");
        assert!(!fetch.due(&src, 60_000), "still within the timeout");

        // A long-poll that waited answers 304: ask again at once.
        let not_modified = CallResponse {
            status: Some(304),
            content_type: None,
            etag: None,
            body_size: 0,
            generation: None,
        };
        assert_eq!(
            fetch.on_response(&src, not_modified, 30_000, 0),
            Fetched::NotModified
        );
        assert!(fetch.due(&src, 30_000));
        // A 304 right away (a server that does not hold requests): wait the poll interval.
        fetch.started(2, 30_000);
        fetch.on_response(&src, not_modified, 30_010, 0);
        assert_eq!(fetch.wait_ms(30_010), 1_000);

        fetch.started(3, 40_000);
        assert_eq!(
            fetch.on_response(&src, ok(10), 40_001, 0),
            Fetched::Table { proto: true }
        );
        assert!(fetch.due(&src, 40_001));

        // A call the host never answers is forgotten after twice its timeout.
        let mut lost = Fetch::default();
        lost.started(9, 0);
        assert!(!lost.due(&src, 70_000));
        assert!(lost.due(&src, 70_001));

        // Over the size limit: refused, reported, not asked for again.
        fetch.started(4, 50_000);
        let refused = fetch.on_response(&src, ok(1001), 50_001, 0);
        assert!(matches!(refused, Fetched::Refused { ref version, .. } if version == "v2"));
        let headers = fetch.request_headers(&src, "v1", "n");
        assert!(headers.contains(&("if-none-match", "\"v2\"".to_string())));
        assert!(headers
            .iter()
            .any(|(k, v)| *k == "x-gammaroute-rejected" && v.contains("maxTableBytes")));
        // ...and not at once: a rejection backs off (500 ms ± 20%).
        assert!(!fetch.due(&src, 50_001));
        assert!(fetch.due(&src, 50_601));
    }

    #[test]
    fn rejected_tables_back_off_growing_until_one_is_applied() {
        let src = source(30);
        let mut fetch = Fetch::default();
        // A table without a version or ETag that does not decode, answered three times.
        let mut waits = Vec::new();
        let mut now = 0;
        for token in 0..3 {
            assert!(fetch.due(&src, now), "due at {now}");
            fetch.started(token, now);
            let answer = CallResponse {
                status: Some(200),
                content_type: Some("application/x-protobuf"),
                etag: None,
                body_size: 10,
                generation: None,
            };
            assert_eq!(
                fetch.on_response(&src, answer, now, 0),
                Fetched::Table { proto: true }
            );
            fetch.rejected("", "invalid protobuf", now, 0);
            let wait = fetch.wait_ms(now);
            waits.push(wait);
            now += wait;
        }
        // 500 ms doubling (the draw 0 takes the low end of the ±20% jitter).
        assert_eq!(waits, [400, 800, 1600]);
        // A good table resets the back-off: the next long-poll starts at once.
        fetch.started(9, now);
        fetch.on_response(&src, ok(10), now, 0);
        fetch.applied("v3");
        assert!(fetch.due(&src, now));
        fetch.started(10, now);
        fetch.on_response(&src, ok(10), now, 0);
        fetch.rejected("v4", "bad", now, 0);
        assert_eq!(fetch.wait_ms(now), 400, "back to the base back-off");
    }

    #[test]
    fn failures_back_off_exponentially_with_jitter_and_recover() {
        let src = source(30);
        let mut fetch = Fetch::default();
        let down = CallResponse {
            status: None,
            content_type: None,
            etag: None,
            body_size: 0,
            generation: None,
        };
        let mut waits = Vec::new();
        for i in 0..10 {
            fetch.started(i, 0);
            assert!(matches!(
                fetch.on_response(&src, down, 0, 0),
                Fetched::Failed(_)
            ));
            waits.push(fetch.wait_ms(0));
        }
        // draw 0 = the low end of the ±20% band.
        assert_eq!(&waits[..4], &[400, 800, 1_600, 2_400]);
        assert_eq!(*waits.last().unwrap(), 2_400, "capped at 3 s - 20%");
        // However long the outage, the next attempt is within 3.6 s (resync within 5 s), and
        // the draws spread proxies over 2.4–3.6 s.
        for failures in [5, 50, u32::MAX] {
            let waits: Vec<u64> = [0, 600, 1_200, u64::MAX]
                .iter()
                .map(|d| backoff_ms(failures, *d))
                .collect();
            assert!(
                waits.iter().all(|w| (2_400..=3_600).contains(w)),
                "{waits:?}"
            );
            assert!(waits.windows(2).any(|w| w[0] != w[1]), "jitter: {waits:?}");
        }
        let unavailable = CallResponse {
            status: Some(503),
            ..down
        };
        assert!(matches!(
            fetch.on_response(&src, unavailable, 0, 0),
            Fetched::Failed(m) if m.contains("503")
        ));
        for draw in [0, 1, 12345, u64::MAX] {
            let b = backoff_ms(1, draw);
            assert!((400..=600).contains(&b), "{b}");
        }
    }

    #[test]
    fn etags_unquote() {
        assert_eq!(unquote_etag("\"abc\""), "abc");
        assert_eq!(unquote_etag("W/\"abc\""), "abc");
        assert_eq!(unquote_etag("abc"), "abc");
    }

    #[test]
    fn a_table_older_than_the_one_in_force_is_not_applied() {
        let src = source(30);
        let mut fetch = Fetch::default();
        let at = |generation| CallResponse {
            generation: Some(generation),
            ..ok(10)
        };
        fetch.started(1, 0);
        assert_eq!(
            fetch.on_response(&src, at(20), 10, 0),
            Fetched::Table { proto: true }
        );
        fetch.applied("v2");
        fetch.applied_generation(20);
        let headers = fetch.request_headers(&src, "v2", "n");
        assert!(headers.contains(&(GENERATION_HEADER, "20".to_string())));
        // A lagging replica answers with an older table: kept out, asked again after the poll
        // interval (not in a loop).
        fetch.started(2, 100);
        assert_eq!(
            fetch.on_response(&src, at(19), 110, 0),
            Fetched::Older { generation: 19 }
        );
        assert_eq!(fetch.wait_ms(110), 1_000);
        // The same generation or a newer one, or a server that does not say: applied.
        for response in [at(20), at(21), ok(10)] {
            fetch.started(3, 200);
            assert_eq!(
                fetch.on_response(&src, response, 210, 0),
                Fetched::Table { proto: true }
            );
        }
        fetch.applied_generation(5);
        let headers = fetch.request_headers(&src, "v2", "n");
        assert!(
            headers.contains(&(GENERATION_HEADER, "20".to_string())),
            "never back"
        );
        let header = [(GENERATION_HEADER.to_string(), " 42 ".to_string())];
        assert_eq!(CallResponse::from_headers(&header, 0).generation, Some(42));
    }
}
