//! A command-line client: sends each line of stdin as a text message and prints
//! what comes back. At the end of stdin it waits for the replies to stop coming
//! (half a second without one), closes the connection (1000) and waits for the
//! server's answer.
//!
//! ```sh
//! cargo run --release --example echo &                 # a server on ws://127.0.0.1:9001
//! cargo run --release --example client                 # ws://127.0.0.1:9001/
//! cargo run --release --example client -- wss://example.com/ws --protocol chat
//! cargo run --release --example client -- --reconnect  # come back when the server does
//! cargo run --release --example client -- --deflate    # offer permessage-deflate
//! ```

use std::{process::ExitCode, time::Duration};

use actix::prelude::*;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    sync::watch,
};
use websocket_driver as ws;

/// Prints every message; reports the connection's state, and the count of messages
/// received, to `main`.
struct Printer {
    state: watch::Sender<Option<ws::Conn>>,
    received: watch::Sender<u64>,
}

impl Actor for Printer {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        // No more connections: main ends.
        let _ = self.state.send(None);
    }
}

impl Handler<ws::Open> for Printer {
    type Result = ();
    fn handle(&mut self, open: ws::Open, _: &mut Context<Self>) {
        match open.conn.protocol() {
            Some(protocol) => eprintln!("connected (subprotocol {protocol})"),
            None => eprintln!("connected"),
        }
        let _ = self.state.send(Some(open.conn));
    }
}

impl Handler<ws::Message> for Printer {
    type Result = ();
    fn handle(&mut self, msg: ws::Message, _: &mut Context<Self>) {
        self.received.send_modify(|n| *n += 1);
        match msg {
            ws::Message::Text(text) => println!("{}", &*text),
            ws::Message::Binary(data) => println!("<{} bytes of binary>", data.len()),
        }
    }
}

impl Handler<ws::Error> for Printer {
    type Result = ();
    fn handle(&mut self, err: ws::Error, _: &mut Context<Self>) {
        eprintln!("connection failed: {err}");
    }
}

impl Handler<ws::Close> for Printer {
    type Result = ();
    fn handle(&mut self, close: ws::Close, _: &mut Context<Self>) {
        eprintln!("closed: {} {}", close.code.0, close.reason);
        // Without --reconnect the client stops this actor now; with it, the next
        // connection's Open follows.
    }
}

struct Args {
    url: String,
    protocols: Vec<String>,
    reconnect: bool,
    deflate: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: "ws://127.0.0.1:9001/".into(),
        protocols: Vec::new(),
        reconnect: false,
        deflate: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--protocol" => args
                .protocols
                .push(it.next().ok_or("--protocol needs NAME")?),
            "--reconnect" => args.reconnect = true,
            "--deflate" => args.deflate = true,
            "-h" | "--help" => {
                return Err(
                    "usage: client [URL] [--protocol NAME]... [--reconnect] [--deflate]".into(),
                )
            }
            url if !url.starts_with('-') => args.url = url.to_owned(),
            other => return Err(format!("unknown argument {other:?}; try --help")),
        }
    }
    Ok(args)
}

#[actix_rt::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(usage) => {
            eprintln!("{usage}");
            return ExitCode::FAILURE;
        }
    };
    let mut client = match ws::Client::new(&args.url) {
        Ok(client) => client.protocols(args.protocols),
        Err(err) => {
            eprintln!("{}: {err}", args.url);
            return ExitCode::FAILURE;
        }
    };
    if args.reconnect {
        client = client.reconnect(ws::ReconnectPolicy::default());
    }
    if args.deflate {
        client = client.deflate(ws::DeflateSettings::on());
    }
    let (state, mut watch) = watch::channel(None);
    let (received, mut replies) = watch::channel(0);
    if let Err(err) = client.connect(Printer { state, received }).await {
        eprintln!("cannot connect to {}: {err}", args.url);
        return ExitCode::FAILURE;
    }
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Ok(Some(line)) = line else { break };
                let conn = watch.borrow().clone();
                match conn.map(|conn| conn.send_text(line)) {
                    Some(sent) => if let Some(err) = sent.error() {
                        eprintln!("not sent: {err}");
                    },
                    None => eprintln!("not sent: not connected"),
                }
            }
            changed = watch.changed() => {
                if changed.is_err() {
                    return ExitCode::SUCCESS; // the client stopped: the connection is over
                }
            }
        }
    }
    // End of input: let the replies come in (after our Close, data frames are
    // discarded, RFC 6455 §7.1.1 and §5.5.1), then close and wait for the server's
    // answer (bounded by the close timeout, after which the client closes the
    // connection itself).
    while let Ok(Ok(())) = tokio::time::timeout(Duration::from_millis(500), replies.changed()).await
    {
    }
    let conn = watch.borrow().clone();
    if let Some(conn) = conn {
        conn.close(ws::CloseCode::NORMAL, "");
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while watch.changed().await.is_ok() {}
    })
    .await;
    ExitCode::SUCCESS
}
