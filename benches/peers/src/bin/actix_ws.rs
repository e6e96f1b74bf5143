//! actix-ws: handle(), aggregate_continuations, echo in a spawned task, one worker.
use actix_web::{rt, web, App, HttpRequest, HttpResponse, HttpServer};
use actix_ws::AggregatedMessage;
use futures_util::StreamExt;

async fn route(req: HttpRequest, body: web::Payload) -> Result<HttpResponse, actix_web::Error> {
    let (response, mut session, stream) = actix_ws::handle(&req, body)?;
    let mut stream = stream
        .max_frame_size(1 << 20)
        .aggregate_continuations()
        .max_continuation_size(1 << 20);
    rt::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            let sent = match msg {
                AggregatedMessage::Text(t) => session.text(t).await,
                AggregatedMessage::Binary(b) => session.binary(b).await,
                AggregatedMessage::Ping(p) => session.pong(&p).await,
                AggregatedMessage::Close(r) => {
                    let _ = session.close(r).await;
                    return;
                }
                AggregatedMessage::Pong(_) => Ok(()),
            };
            if sent.is_err() {
                return;
            }
        }
    });
    Ok(response)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    HttpServer::new(|| App::new().default_service(web::get().to(route)))
        .on_connect(|conn, _| {
            if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                let _ = tcp.set_nodelay(true);
            }
        })
        .workers(1)
        .bind(wsd_peers::bind_arg())?
        .run()
        .await
}
