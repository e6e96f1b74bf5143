//! A command-line client: sends each line of stdin as a text message and prints
//! what comes back. At the end of stdin it pings the server (the Pong comes after
//! the replies to every line sent before it, from a server that answers in order),
//! then closes the connection (1000) and exits once the server answered.
//!
//! ```sh
//! cargo run --release --example echo &                 # a server on ws://127.0.0.1:9001
//! cargo run --release --example client                 # ws://127.0.0.1:9001/
//! cargo run --release --example client -- wss://example.com/ws --protocol chat
//! cargo run --release --example client -- --reconnect  # come back when the server does
//! cargo run --release --example client -- --deflate    # offer permessage-deflate
//! ```

use std::{cell::RefCell, process::ExitCode, rc::Rc};

use tokio::io::{AsyncBufReadExt, BufReader};
use websocket_driver as ws;

/// The connection lines go to: the latest one (a reconnect replaces it).
type Current = Rc<RefCell<Option<ws::Conn>>>;

/// Prints every message; starts reading stdin on the first connection.
struct Printer {
    current: Current,
    reading: bool,
}

impl ws::AsyncEndpoint for Printer {
    async fn on_open(&mut self, conn: &ws::Conn) {
        match conn.protocol() {
            Some(protocol) => eprintln!("connected (subprotocol {protocol})"),
            None => eprintln!("connected"),
        }
        *self.current.borrow_mut() = Some(conn.clone());
        if !std::mem::replace(&mut self.reading, true) {
            actix_rt::spawn(send_lines(self.current.clone()));
        }
    }

    async fn on_message(&mut self, _: &ws::Conn, msg: ws::Message) {
        match msg.as_text() {
            Some(text) => println!("{text}"),
            None => println!("<{} bytes of binary>", msg.len()),
        }
    }

    async fn on_error(&mut self, _: &ws::Conn, err: ws::Error) {
        eprintln!("connection failed: {err}");
    }

    async fn on_close(&mut self, _: &ws::Conn, close: ws::Close) {
        eprintln!("closed: {} {}", close.code.0, close.reason);
    }
}

/// Send each line of stdin; at its end, wait for the replies, then close.
async fn send_lines(current: Current) {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let conn = current.borrow().clone();
        match conn.map(|conn| conn.send_text(line)) {
            Some(sent) => {
                if let Some(err) = sent.error() {
                    eprintln!("not sent: {err}");
                }
            }
            None => eprintln!("not sent: not connected"),
        }
    }
    let conn = current.borrow().clone();
    if let Some(conn) = conn {
        // After our Close the server's data frames are no longer read (RFC 6455
        // §7.1.1): let the replies come in first.
        let _ = conn.send_ping("").await;
        conn.close(ws::CloseCode::NORMAL, "");
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
    let printer = Printer {
        current: Current::default(),
        reading: false,
    };
    let run = async {
        let mut client = ws::Client::new(&args.url)?.protocols(args.protocols);
        if args.reconnect {
            client = client.reconnect(ws::ReconnectPolicy::default());
        }
        if args.deflate {
            client = client.deflate(ws::DeflateSettings::on());
        }
        client.run(ws::async_endpoint(printer)).await
    };
    match run.await {
        Ok(close) if close.was_clean => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("{}: {err}", args.url);
            ExitCode::FAILURE
        }
    }
}
