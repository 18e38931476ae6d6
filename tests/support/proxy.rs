//! A loopback TCP proxy a test can stall: it forwards bytes between a
//! client and `upstream` (on 127.0.0.1) until armed with a marker; the
//! chunk from the client holding the marker (a statement, a command) is
//! forwarded, then nothing more in either direction — on any connection —
//! until [`Proxy::resume`]. The reply to that statement is held: what a
//! network that stalls right after a request looks like.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

#[derive(Default)]
struct State {
    /// The marker that stalls the proxy once a client sends it.
    armed: Option<Vec<u8>>,
    stalled: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    closing: AtomicBool,
}

impl Shared {
    /// Blocks while the proxy is stalled (and not closing).
    fn wait_while_stalled(&self) {
        let mut state = self.state.lock().unwrap();
        while state.stalled && !self.closing.load(Ordering::SeqCst) {
            state = self.changed.wait(state).unwrap();
        }
    }
}

/// The proxy: listening on a free port of 127.0.0.1 until dropped.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Starts forwarding connections on a free local port to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        assert!(upstream.ip().is_loopback(), "only traffic to 127.0.0.1");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared::default());
        let accept = Arc::clone(&shared);
        thread::spawn(move || {
            for client in listener.incoming() {
                if accept.closing.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                pump(&accept, &client, &server, true);
                pump(&accept, &server, &client, false);
            }
        });
        Proxy { port, shared }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stalls everything once a client sends `marker` (that chunk still
    /// goes through).
    pub fn stall_after(&self, marker: &[u8]) {
        self.shared.state.lock().unwrap().armed = Some(marker.to_vec());
    }

    /// Whether it is stalled now.
    pub fn is_stalled(&self) -> bool {
        self.shared.state.lock().unwrap().stalled
    }

    /// Forwards again, the held bytes first.
    pub fn resume(&self) {
        let mut state = self.shared.state.lock().unwrap();
        state.stalled = false;
        state.armed = None;
        self.shared.changed.notify_all();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        // Wake the accepting thread.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies `from` → `to` on a thread of its own, waiting while stalled.
fn pump(shared: &Arc<Shared>, from: &TcpStream, to: &TcpStream, from_client: bool) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    let shared = Arc::clone(shared);
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            shared.wait_while_stalled();
            if from_client {
                // Stalled before the chunk goes out, so that its reply is
                // held whatever the timing.
                let mut state = shared.state.lock().unwrap();
                let hit = state
                    .armed
                    .as_ref()
                    .is_some_and(|m| buf[..n].windows(m.len()).any(|w| w == m.as_slice()));
                if hit {
                    state.armed = None;
                    state.stalled = true;
                }
            }
            if shared.closing.load(Ordering::SeqCst) || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
