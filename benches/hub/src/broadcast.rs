//! tokio-tungstenite with a `tokio::sync::broadcast` channel for the room, as its
//! users write a chat room: each connection task `select!`s between its socket and
//! its broadcast receiver, and writes each message with `ws.send(msg).await` (one
//! write, one system call, per message). A text message from a connection goes to
//! the channel tagged with the sender's id; receivers skip their own. A lagged
//! receiver counts the messages it lost and goes on (the count is printed on
//! stderr). Current-thread runtime (one thread).
//!
//! With `batched` (the `tokio_broadcast_batched` binary), a connection writes
//! what is ready together: it `feed`s the message received and every one
//! `try_recv` has ready, then `flush`es once.
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio_tungstenite::tungstenite::Message;

/// Messages lost by lagged receivers, over all connections.
pub static LAGGED: AtomicU64 = AtomicU64::new(0);

/// The room's channel capacity (messages).
const CAPACITY: usize = 1024;

pub async fn serve(bind: String, batched: bool) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let (tx, _) = broadcast::channel::<(u64, Message)>(CAPACITY);
    tokio::spawn(async {
        let mut reported = 0;
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let lagged = LAGGED.load(Ordering::Relaxed);
            if lagged != reported {
                eprintln!("lagged receivers lost {lagged} messages so far");
                reported = lagged;
            }
        }
    });
    let mut next_id = 0u64;
    loop {
        let (s, _) = listener.accept().await?;
        s.set_nodelay(true)?;
        let (tx, id) = (tx.clone(), next_id);
        next_id += 1;
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                return;
            };
            let mut rx = tx.subscribe();
            loop {
                tokio::select! {
                    msg = ws.next() => match msg {
                        Some(Ok(msg)) if msg.is_text() => {
                            let _ = tx.send((id, msg));
                        }
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                        Some(Ok(_)) => {} // Pings are answered by tungstenite
                    },
                    got = rx.recv() => match got {
                        Ok((from, msg)) => {
                            if batched {
                                if from != id && ws.feed(msg).await.is_err() {
                                    break;
                                }
                                loop {
                                    match rx.try_recv() {
                                        Ok((from, msg)) => {
                                            if from != id && ws.feed(msg).await.is_err() {
                                                return;
                                            }
                                        }
                                        Err(TryRecvError::Lagged(n)) => {
                                            LAGGED.fetch_add(n, Ordering::Relaxed);
                                        }
                                        Err(_) => break,
                                    }
                                }
                                if ws.flush().await.is_err() {
                                    break;
                                }
                            } else if from != id && ws.send(msg).await.is_err() {
                                break;
                            }
                        }
                        Err(RecvError::Lagged(n)) => {
                            LAGGED.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(RecvError::Closed) => break,
                    },
                }
            }
        });
    }
}
