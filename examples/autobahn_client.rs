//! The client the Autobahn|Testsuite's `fuzzingserver` tests: `ws::Client` with
//! permessage-deflate on (the browsers' offer), echoing every message of every case.
//!
//! ```sh
//! wstest -m fuzzingserver -s config/autobahn/fuzzingserver.json &   # ws://127.0.0.1:19002
//! cargo run --release --example autobahn_client -- ws://127.0.0.1:19002 [AGENT]
//! ```
//!
//! It asks the suite for the number of cases (`/getCaseCount`), runs each case in
//! turn (`/runCase?case=N&agent=AGENT`: a connection that echoes what it receives,
//! until the server closes it), then has the reports written
//! (`/updateReports?agent=AGENT`). `scripts/autobahn.sh` runs it and reads the
//! reports.

use std::process::ExitCode;

use tokio::sync::oneshot;
use websocket_driver as ws;

/// One case's connection: echoes every message (text stays text); tells `main`
/// when the connection is over, with the first message when `main` wants it.
struct Echo {
    echo: bool,
    first: Option<String>,
    done: Option<oneshot::Sender<Option<String>>>,
}

impl ws::Endpoint for Echo {
    fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message, _: &mut ws::EndpointContext<Self>) {
        if self.echo {
            // Refused only while closing or past the send buffer: the case says.
            conn.send(msg);
        } else if let ws::Message::Text(text) = msg {
            self.first.get_or_insert_with(|| text.to_string());
        }
    }

    fn on_close(&mut self, _: &ws::Conn, _: ws::Close, _: &mut ws::EndpointContext<Self>) {
        if let Some(done) = self.done.take() {
            let _ = done.send(self.first.take());
        }
    }
}

/// Open `url`, echo (or not) until the connection ends; returns the first text
/// message received when not echoing.
async fn run(client: &ws::Client, echo: bool) -> Result<Option<String>, ws::ClientError> {
    let (tx, rx) = oneshot::channel();
    client
        .connect(ws::endpoint(Echo {
            echo,
            first: None,
            done: Some(tx),
        }))
        .await?;
    // A dropped sender (the actor stopped without a Close) ends the wait too.
    Ok(rx.await.ok().flatten())
}

fn client(base: &str, path: &str) -> Result<ws::Client, String> {
    let url = format!("{}{}", base.trim_end_matches('/'), path);
    ws::Client::new(&url)
        .map(|c| c.deflate(ws::DeflateSettings::on()))
        .map_err(|e| format!("{url}: {e}"))
}

async fn main_inner() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let base = args.next().unwrap_or_else(|| "ws://127.0.0.1:19002".into());
    let agent = args.next().unwrap_or_else(|| "websocket-driver".into());
    let count = run(&client(&base, "/getCaseCount")?, false)
        .await
        .map_err(|e| format!("getCaseCount: {e}"))?
        .ok_or("getCaseCount: no count received")?;
    let count: u32 = count
        .trim()
        .parse()
        .map_err(|_| format!("getCaseCount: not a number: {count:?}"))?;
    eprintln!("{count} cases");
    for case in 1..=count {
        let path = format!("/runCase?case={case}&agent={agent}");
        // A case the client fails (a refused handshake, a dropped connection) is
        // the suite's to judge: go on with the next.
        if let Err(e) = run(&client(&base, &path)?, true).await {
            eprintln!("case {case}: {e}");
        }
    }
    run(
        &client(&base, &format!("/updateReports?agent={agent}"))?,
        false,
    )
    .await
    .map_err(|e| format!("updateReports: {e}"))?;
    Ok(())
}

#[actix_rt::main]
async fn main() -> ExitCode {
    match main_inner().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("autobahn_client: {e}");
            ExitCode::FAILURE
        }
    }
}
