//! The reference: a fan-out server with as little work as the protocol allows, to
//! check that the load generator keeps up. A text frame from one connection is
//! framed once and its bytes appended to every other connection's output buffer;
//! each connection's writer task writes whatever has accumulated in one write
//! (coalescing). No WebSocket library, no validation beyond the frame header.
//! Single-threaded (tokio current-thread runtime).
//!
//! `--fault drop|dup|reorder` breaks delivery on purpose, to check that the load
//! generator notices: the 50th text message is not sent to one connection, sent
//! to it twice, or sent to it after the 51st.
use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
    io,
    rc::Rc,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{tcp::OwnedWriteHalf, TcpStream},
    sync::Notify,
    task::LocalSet,
};

struct Conn {
    out: RefCell<Vec<u8>>,
    wake: Notify,
    closed: Cell<bool>,
}

type Room = Rc<RefCell<HashMap<u64, Rc<Conn>>>>;

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    Drop,
    Dup,
    Reorder,
}

/// Text messages fanned out so far, and the frame held back by `--fault reorder`.
struct Faults {
    fault: Fault,
    published: Cell<u64>,
    held: RefCell<Option<Vec<u8>>>,
}

fn main() -> io::Result<()> {
    let mut bind = "127.0.0.1:9001".to_string();
    let mut fault = Fault::None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next().as_deref()) {
            ("--bind", Some(v)) => bind = v.to_string(),
            ("--fault", Some("drop")) => fault = Fault::Drop,
            ("--fault", Some("dup")) => fault = Fault::Dup,
            ("--fault", Some("reorder")) => fault = Fault::Reorder,
            _ => {
                eprintln!("usage: raw_fanout [--bind ADDR] [--fault drop|dup|reorder]");
                std::process::exit(2);
            }
        }
    }
    let faults = Rc::new(Faults {
        fault,
        published: Cell::new(0),
        held: RefCell::new(None),
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    LocalSet::new().block_on(&rt, async move {
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let room: Room = Rc::default();
        let mut next_id = 0u64;
        loop {
            let (s, _) = listener.accept().await?;
            s.set_nodelay(true)?;
            let (id, room, faults) = (next_id, room.clone(), faults.clone());
            next_id += 1;
            tokio::task::spawn_local(async move {
                let _ = connection(s, id, room.clone(), faults).await;
                if let Some(c) = room.borrow_mut().remove(&id) {
                    c.closed.set(true);
                    c.wake.notify_one();
                }
            });
        }
    })
}

async fn writer(mut w: OwnedWriteHalf, conn: Rc<Conn>) {
    let mut spare = Vec::new();
    while !conn.closed.get() {
        conn.wake.notified().await;
        std::mem::swap(&mut spare, &mut *conn.out.borrow_mut());
        if !spare.is_empty() && w.write_all(&spare).await.is_err() {
            return;
        }
        spare.clear();
    }
}

async fn connection(mut s: TcpStream, id: u64, room: Room, faults: Rc<Faults>) -> io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 8 * 1024];
    let end = loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 || buf.len() > 16384 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let key = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        wsd_hub_bench::accept_key(&key)
    );
    s.write_all(resp.as_bytes()).await?;
    buf.drain(..end);
    let (mut r, w) = s.into_split();
    let conn = Rc::new(Conn {
        out: RefCell::new(Vec::new()),
        wake: Notify::new(),
        closed: Cell::new(false),
    });
    room.borrow_mut().insert(id, conn.clone());
    tokio::task::spawn_local(writer(w, conn.clone()));
    let mut frame = Vec::new();
    loop {
        // Every complete (masked, unfragmented) client frame at the front of `buf`.
        let mut at = 0;
        loop {
            let b = &buf[at..];
            if b.len() < 6 {
                break;
            }
            let (len, head) = match b[1] & 0x7f {
                126 if b.len() >= 8 => (u16::from_be_bytes([b[2], b[3]]) as usize, 8),
                127 if b.len() >= 14 => (
                    u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                    14,
                ),
                126 | 127 => break,
                n => (n as usize, 6),
            };
            if b[1] & 0x80 == 0 || len > 1 << 20 {
                return Ok(()); // unmasked or huge: not a client of this protocol
            }
            if b.len() < head + len {
                break;
            }
            let key = [b[head - 4], b[head - 3], b[head - 2], b[head - 1]];
            let opcode = b[0] & 0x0f;
            frame.clear();
            frame.push(0x80 | opcode);
            if len < 126 {
                frame.push(len as u8);
            } else if len <= 0xffff {
                frame.push(126);
                frame.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                frame.push(127);
                frame.extend_from_slice(&(len as u64).to_be_bytes());
            }
            frame.extend(
                b[head..head + len]
                    .iter()
                    .enumerate()
                    .map(|(i, x)| x ^ key[i & 3]),
            );
            match opcode {
                1 | 2 => {
                    let nth = faults.published.get() + 1;
                    faults.published.set(nth);
                    // The connection a fault hits: the lowest id but the sender's.
                    let victim = match faults.fault {
                        Fault::None => None,
                        _ => room.borrow().keys().filter(|&&k| k != id).min().copied(),
                    };
                    for (&other, c) in room.borrow().iter() {
                        if other == id {
                            continue;
                        }
                        let mut out = c.out.borrow_mut();
                        if Some(other) == victim && nth == 50 {
                            match faults.fault {
                                Fault::Drop => continue,
                                Fault::Dup => out.extend_from_slice(&frame),
                                Fault::Reorder => {
                                    *faults.held.borrow_mut() = Some(frame.clone());
                                    continue;
                                }
                                Fault::None => {}
                            }
                        }
                        out.extend_from_slice(&frame);
                        if nth == 51 && Some(other) == victim {
                            if let Some(held) = faults.held.take() {
                                out.extend_from_slice(&held);
                            }
                        }
                        drop(out);
                        c.wake.notify_one();
                    }
                }
                9 => {
                    frame[0] = 0x8a;
                    conn.out.borrow_mut().extend_from_slice(&frame);
                    conn.wake.notify_one();
                }
                8 => return Ok(()),
                _ => {}
            }
            at += head + len;
        }
        buf.drain(..at);
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
