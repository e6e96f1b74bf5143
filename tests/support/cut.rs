//! A loopback TCP relay that can lose an answer: put between a client and a
//! server (Redis), it passes bytes both ways until told to cut the connection
//! whose request holds a marker, after the server answered it (with an
//! integer: the publish script's offset) and without passing that answer on (as when the server is killed just after it carried a
//! command out: the kernel drops what the client had not read). It can also hold
//! the answers of every other connection until released, to force the order in
//! which a client learns of the two; and hold the requests of the connection
//! whose request holds a marker (not reading them: its receive buffer is small,
//! so the client's writes soon wait), as a server that does not read would.
#![allow(dead_code)]

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, Mutex,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// The relay's switches, shared with its connections.
#[derive(Default)]
struct Switches {
    /// Cut the next connection whose request holds these bytes.
    marker: Mutex<Option<Vec<u8>>>,
    /// Connections cut so far.
    cut: watch::Sender<usize>,
    /// Whether the marked connection may be cut once answered (or waits).
    go: watch::Sender<bool>,
    /// Hold the answers of the connections not cut.
    hold: watch::Sender<bool>,
    /// Hold the requests of the next connection whose request holds these
    /// bytes.
    held_marker: Mutex<Option<Vec<u8>>>,
    /// Whether that connection's requests are held.
    held: watch::Sender<bool>,
}

/// The relay (its listener runs until the test's runtime ends).
pub struct Cut {
    /// Where clients connect.
    pub port: u16,
    switches: Arc<Switches>,
}

impl Cut {
    /// A relay on a free loopback port to 127.0.0.1:`to`.
    pub async fn start(to: u16) -> Cut {
        // A small receive buffer (the kernel's least): what a held
        // connection's client sends waits in its own buffers and queues.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener: TcpListener = socket.listen(64).unwrap();
        let port = listener.local_addr().unwrap().port();
        let switches = Arc::new(Switches::default());
        let s = switches.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", to)).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, s.clone()));
            }
        });
        Cut { port, switches }
    }

    /// Cut the next connection whose request holds `marker` once the server
    /// answered it (the answer is not passed on); with `wait`, only after
    /// [`Cut::go`] too.
    pub fn cut_after(&self, marker: &[u8], wait: bool) {
        self.switches.go.send_replace(!wait);
        *self.switches.marker.lock().unwrap() = Some(marker.to_vec());
    }

    /// The marked connection may be cut.
    pub fn go(&self) {
        self.switches.go.send_replace(true);
    }

    /// Wait (bounded: 10 s) until `n` connections were cut.
    pub async fn cut_count(&self, n: usize) {
        let mut cut = self.switches.cut.subscribe();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            cut.wait_for(|c| *c >= n),
        )
        .await
        .expect("a cut within 10 s")
        .unwrap();
    }

    /// Hold (or, `false`, pass on again) the answers of the connections not cut.
    pub fn hold(&self, hold: bool) {
        self.switches.hold.send_replace(hold);
    }

    /// Hold the requests of the next connection whose request holds `marker`
    /// (that request included), until [`Cut::pass_requests`].
    pub fn hold_requests(&self, marker: &[u8]) {
        self.switches.held.send_replace(true);
        *self.switches.held_marker.lock().unwrap() = Some(marker.to_vec());
    }

    /// Pass on the held connection's requests again.
    pub fn pass_requests(&self) {
        self.switches.held.send_replace(false);
    }
}

/// Whether `chunk` holds `marker`, taking it (once) when it does.
fn take_marker(marker: &Mutex<Option<Vec<u8>>>, chunk: &[u8]) -> bool {
    let mut marker = marker.lock().unwrap();
    let hit = marker
        .as_ref()
        .is_some_and(|m| chunk.windows(m.len()).any(|w| w == &m[..]));
    if hit {
        *marker = None;
    }
    hit
}

async fn relay(client: TcpStream, server: TcpStream, s: Arc<Switches>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let marked = Arc::new(AtomicBool::new(false));
    let up = {
        let (s, marked) = (s.clone(), marked.clone());
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut held = false;
            loop {
                let n = match client_read.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let chunk = &buf[..n];
                let hit = take_marker(&s.marker, chunk);
                held = held || take_marker(&s.held_marker, chunk);
                if held {
                    let _ = s.held.subscribe().wait_for(|held| !*held).await;
                }
                if server_write.write_all(chunk).await.is_err() {
                    return;
                }
                if hit {
                    marked.store(true, Ordering::SeqCst);
                }
            }
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if marked.load(Ordering::SeqCst) && integer_reply(&buf[..n]) {
                // The answer to the marked request (an integer, and whatever
                // came with it) is lost with the connection.
                let _ = s.go.subscribe().wait_for(|go| *go).await;
                s.cut.send_modify(|c| *c += 1);
                return;
            }
            let _ = s.hold.subscribe().wait_for(|hold| !*hold).await;
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Whichever way ends first ends the connection both ways.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// Whether `chunk` holds a RESP integer reply (`:N\r\n` at a reply's start).
fn integer_reply(chunk: &[u8]) -> bool {
    chunk.first() == Some(&b':') || chunk.windows(3).any(|w| w == b"\r\n:")
}
