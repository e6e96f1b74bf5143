//! Heap held per idle connection on the standalone path (`Server::listen`), counted
//! by a global allocator: the number the benchmark's RSS figure rests on, checked
//! exactly rather than timed. Clients are plain blocking sockets, which allocate
//! nothing while they hold a connection open.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    io::{Read, Write},
    net::TcpStream,
    sync::atomic::{AtomicIsize, Ordering},
    time::Duration,
};

use actix::prelude::*;
use websocket_driver as ws;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// An actor that does nothing: what is counted is the connection's own cost.
#[derive(Default)]
struct Idle;

impl Actor for Idle {
    type Context = Context<Self>;
}
impl Handler<ws::Open> for Idle {
    type Result = ();
    fn handle(&mut self, _: ws::Open, _: &mut Context<Self>) {}
}
impl Handler<ws::Message> for Idle {
    type Result = ();
    fn handle(&mut self, _: ws::Message, _: &mut Context<Self>) {}
}
impl Handler<ws::Error> for Idle {
    type Result = ();
    fn handle(&mut self, _: ws::Error, _: &mut Context<Self>) {}
}
impl Handler<ws::Close> for Idle {
    type Result = ();
    fn handle(&mut self, _: ws::Close, _: &mut Context<Self>) {}
}

/// Open a WebSocket connection by hand and read the 101 answer.
fn open(addr: std::net::SocketAddr) -> TcpStream {
    let mut socket = TcpStream::connect(addr).unwrap();
    socket
        .write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
    let mut head = [0u8; 12];
    socket.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    socket
}

/// Wait until the server's open-connection count reaches `n`.
fn wait_open(n: usize) {
    for _ in 0..500 {
        if ws::open_connections() == n {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{} open connections, expected {n}", ws::open_connections());
}

#[test]
fn idle_standalone_connection_holds_at_most_4_kib_of_heap() {
    const N: usize = 500;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    let server_thread = std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let server = ws::Server::new()
                .listen_on(listener, 1, Idle::default)
                .unwrap();
            handle_tx.send(server.handle()).unwrap();
            server.await.unwrap();
        })
    });
    let handle = handle_rx.recv().unwrap();
    // Warm up: the first connections grow the runtime's tables once.
    let warm: Vec<TcpStream> = (0..50).map(|_| open(addr)).collect();
    wait_open(50);
    std::thread::sleep(Duration::from_millis(100));
    let before = LIVE.load(Ordering::SeqCst);
    let held: Vec<TcpStream> = (0..N).map(|_| open(addr)).collect();
    wait_open(50 + N);
    std::thread::sleep(Duration::from_millis(100));
    let after = LIVE.load(Ordering::SeqCst);
    let per_connection = (after - before) / N as isize;
    eprintln!("heap per idle connection: {per_connection} bytes");
    assert!(
        per_connection <= 4096,
        "{per_connection} bytes of heap per idle connection"
    );
    drop(held);
    drop(warm);
    wait_open(0);
    actix_rt::System::new().block_on(handle.stop(true));
    server_thread.join().unwrap();
}
