//! fastwebsockets: hyper 1 upgrade, FragmentCollector, echo every data frame.
use fastwebsockets::{upgrade, FragmentCollector, OpCode, WebSocketError};
use http_body_util::Empty;
use hyper::{
    body::{Bytes, Incoming},
    server::conn::http1,
    service::service_fn,
    Request, Response,
};

async fn serve(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(fut.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

async fn upgrade_route(
    mut req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut req)?;
    tokio::task::spawn_local(async move {
        let _ = serve(fut).await;
    });
    Ok(response)
}

fn main() -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let listener = tokio::net::TcpListener::bind(wsd_peers::bind_arg()).await?;
        loop {
            let (s, _) = listener.accept().await?;
            s.set_nodelay(true)?;
            tokio::task::spawn_local(async move {
                let io = hyper_util::rt::TokioIo::new(s);
                let _ = http1::Builder::new()
                    .serve_connection(io, service_fn(upgrade_route))
                    .with_upgrades()
                    .await;
            });
        }
    })
}
