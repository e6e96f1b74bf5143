//! Authenticating each connection asynchronously on the standalone server: the
//! bearer token (the `Authorization: Bearer` header, or the `access_token` query
//! parameter a browser can send) is checked with a token service (here an actor
//! holding a table; a database or an HTTP call in a real program) before the
//! connection opens. Without a token: `401` with `WWW-Authenticate`; with an
//! unknown one: `401` and a JSON body; the service down: `503`; no answer within
//! the handshake timeout: `503 admission timed out`.
//!
//! ```sh
//! cargo run --example auth                          # ws://127.0.0.1:9002
//! websocat -H 'Authorization: Bearer alice-token' ws://127.0.0.1:9002/
//! websocat 'ws://127.0.0.1:9002/?access_token=bob-token'
//! ```

use std::collections::HashMap;

use actix::prelude::*;
use websocket_driver as ws;

/// The token service: who each token belongs to.
pub struct Tokens {
    users: HashMap<String, String>,
}

/// The tokens are secrets: not shown.
impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("known", &self.users.len())
            .finish()
    }
}

impl Tokens {
    /// A service that knows `pairs` of (token, user).
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Tokens {
            users: pairs
                .into_iter()
                .map(|(token, user)| (token.to_owned(), user.to_owned()))
                .collect(),
        }
    }
}

impl Actor for Tokens {
    type Context = Context<Self>;
}

/// Whose token is it?
pub struct Lookup(pub String);

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lookup(***)")
    }
}

impl Message for Lookup {
    type Result = Option<String>;
}

impl Handler<Lookup> for Tokens {
    type Result = Option<String>;

    fn handle(&mut self, lookup: Lookup, _: &mut Context<Self>) -> Option<String> {
        self.users.get(&lookup.0).cloned()
    }
}

/// One per authenticated connection: greets its user, then echoes.
#[derive(Debug)]
pub struct Greeter {
    user: String,
}

impl Greeter {
    /// The connection of `user`.
    pub fn for_user(user: &str) -> Self {
        Greeter {
            user: user.to_owned(),
        }
    }
}

impl ws::Endpoint for Greeter {
    fn on_open(&mut self, conn: &ws::Conn, _: &mut ws::EndpointContext<Self>) {
        conn.send_text(format!("hello {}", self.user));
    }

    fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message, _: &mut ws::EndpointContext<Self>) {
        conn.send(msg);
    }
}

/// Admit `req` when its bearer token is one the service knows. Runs on the
/// connection's worker thread, within the handshake timeout.
pub async fn admit(
    tokens: Addr<Tokens>,
    req: ws::Request,
) -> Result<ws::WithControl<ws::EndpointActor<Greeter>>, ws::Refuse> {
    let Some(token) = req.bearer_token() else {
        // RFC 6750 §3: a request without credentials gets the challenge, no error.
        return Err(ws::Refuse::new(401, "missing bearer token")
            .header("WWW-Authenticate", "Bearer realm=\"chat\""));
    };
    match tokens.send(Lookup(token.into_owned())).await {
        Ok(Some(user)) => Ok(ws::endpoint(Greeter { user })),
        Ok(None) => Err(ws::Refuse::new(401, "invalid token")
            .header(
                "WWW-Authenticate",
                "Bearer realm=\"chat\", error=\"invalid_token\"",
            )
            .body("application/json", r#"{"error":"invalid_token"}"#)),
        Err(_) => Err(ws::Refuse::new(503, "token service unavailable").header("Retry-After", "1")),
    }
}

#[actix_rt::main]
async fn main() -> std::io::Result<()> {
    let bind = std::env::args()
        .skip_while(|a| a != "--bind")
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".into());
    let tokens = Tokens::new([("alice-token", "alice"), ("bob-token", "bob")]).start();
    let server = ws::Server::new()
        .listen_async(&bind, 1, move |req: ws::Request| admit(tokens.clone(), req))?;
    eprintln!("auth example on ws://{bind}/ (tokens: alice-token, bob-token)");
    server.await
}
