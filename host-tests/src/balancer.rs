//! A loopback HTTP/1.1 load balancer for tests: one address in front of several upstreams
//! (config-pusher replicas behind one Service), choosing the next upstream round-robin for every
//! request, not every connection — so that a client on one kept-alive connection (Envoy's pool)
//! meets every replica in turn, as proxies behind a Kubernetes Service do over time.
//!
//! Only what config-pusher's table API needs: requests without a body, responses with a
//! `content-length` or none (304). An upstream that cannot be reached gets a 503 (Envoy's
//! "no healthy upstream"); one that hangs (SIGSTOP) holds the request until the client gives up.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A running balancer; stops accepting when dropped.
pub struct Balancer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Requests relayed to each upstream (in `upstreams` order).
    pub relayed: Arc<Vec<AtomicUsize>>,
}

impl Balancer {
    /// Listens on `addr` (a port config-pusher's address was rendered with) in front of
    /// `upstreams`.
    pub fn start(addr: SocketAddr, upstreams: Vec<SocketAddr>) -> std::io::Result<Balancer> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let relayed: Arc<Vec<AtomicUsize>> =
            Arc::new(upstreams.iter().map(|_| AtomicUsize::new(0)).collect());
        let next = Arc::new(AtomicUsize::new(0));
        let upstreams = Arc::new(upstreams);
        let (stopping, counts) = (stop.clone(), relayed.clone());
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (upstreams, next, counts) =
                            (upstreams.clone(), next.clone(), counts.clone());
                        std::thread::spawn(move || {
                            let _ = serve(client, &upstreams, &next, &counts);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Balancer {
            addr,
            stop,
            relayed,
        })
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Relays the requests of one client connection until it closes.
fn serve(
    client: TcpStream,
    upstreams: &[SocketAddr],
    next: &AtomicUsize,
    counts: &[AtomicUsize],
) -> std::io::Result<()> {
    client.set_nonblocking(false)?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    loop {
        let Some(request) = read_message(&mut reader)? else {
            return Ok(());
        };
        let i = next.fetch_add(1, Ordering::Relaxed) % upstreams.len().max(1);
        let response = upstreams.get(i).and_then(|upstream| {
            let mut conn = TcpStream::connect_timeout(upstream, Duration::from_secs(1)).ok()?;
            conn.set_read_timeout(Some(Duration::from_secs(120))).ok()?;
            conn.write_all(&request).ok()?;
            read_message(&mut BufReader::new(conn)).ok()?
        });
        match response {
            Some(r) => {
                if let Some(c) = counts.get(i) {
                    c.fetch_add(1, Ordering::Relaxed);
                }
                client.write_all(&r)?;
            }
            None => client
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")?,
        }
    }
}

/// One HTTP/1.1 message (head and `content-length` body), as bytes; `None` at a clean end of
/// the stream.
fn read_message(reader: &mut impl BufRead) -> std::io::Result<Option<Vec<u8>>> {
    let mut message = Vec::new();
    let mut length = 0usize;
    let mut first = true;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return if message.is_empty() {
                Ok(None)
            } else {
                Err(std::io::Error::other("message cut short"))
            };
        }
        message.extend_from_slice(line.as_bytes());
        if first {
            first = false;
            continue;
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    message.extend_from_slice(&body);
    Ok(Some(message))
}
