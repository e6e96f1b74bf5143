//! Heap held per idle connection on the standalone path (`Server::listen`), counted
//! by a global allocator: the number the benchmark's RSS figure rests on, checked
//! exactly rather than timed. Clients are plain blocking sockets, which allocate
//! nothing while they hold a connection open.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    io::{Read, Write},
    net::TcpStream,
    sync::atomic::{AtomicIsize, AtomicUsize, Ordering},
    time::Duration,
};

use actix::prelude::*;
use websocket_driver as ws;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

/// Live allocations by size (in 8-byte steps up to 4 KiB; the last counts the
/// larger ones): what a connection's heap is made of.
const SIZES: usize = 513;
static BY_SIZE: [AtomicIsize; SIZES] = [const { AtomicIsize::new(0) }; SIZES];

fn size_class(size: usize) -> usize {
    size.div_ceil(8).min(SIZES - 1)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        BY_SIZE[size_class(layout.size())].fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        BY_SIZE[size_class(layout.size())].fetch_sub(1, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        BY_SIZE[size_class(layout.size())].fetch_sub(1, Ordering::Relaxed);
        BY_SIZE[size_class(new_size)].fetch_add(1, Ordering::Relaxed);
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
/// Messages the `Idle` actors received, in all.
static MESSAGES: AtomicUsize = AtomicUsize::new(0);

impl Handler<ws::Message> for Idle {
    type Result = ();
    fn handle(&mut self, _: ws::Message, _: &mut Context<Self>) {
        MESSAGES.fetch_add(1, Ordering::SeqCst);
    }
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

/// The heap counter is process-wide: one measurement at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Live heap per connection for `n` connections opened with `server`, after
/// `activity` ran on each of them, their actors received `messages` messages in
/// all, and `settle` passed.
fn heap_per_connection(
    server: ws::Server,
    n: usize,
    activity: impl Fn(&mut TcpStream),
    messages: usize,
    settle: Duration,
) -> isize {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    let server_thread = std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let server = server.listen_on(listener, 1, |_| Ok(Idle)).unwrap();
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
    let sizes_before = by_size();
    let mut held: Vec<TcpStream> = (0..n).map(|_| open(addr)).collect();
    wait_open(50 + n);
    let received = MESSAGES.load(Ordering::SeqCst);
    for socket in &mut held {
        activity(socket);
    }
    for _ in 0..500 {
        if MESSAGES.load(Ordering::SeqCst) - received >= messages {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(MESSAGES.load(Ordering::SeqCst) - received, messages);
    std::thread::sleep(settle);
    let after = LIVE.load(Ordering::SeqCst);
    let sizes_after = by_size();
    drop(held);
    drop(warm);
    wait_open(0);
    actix_rt::System::new().block_on(handle.stop(true));
    server_thread.join().unwrap();
    let per_connection = (after - before) / n as isize;
    // The allocations held per connection, by size (rounded up to 8 bytes; those
    // seen on fewer than half the connections are left out: shares of tables).
    let held: Vec<String> = (1..SIZES)
        .filter_map(|class| {
            let count = sizes_after[class] - sizes_before[class];
            let per = count as f64 / n as f64;
            (per >= 0.5).then(|| format!("{} B x {per:.2}", class * 8))
        })
        .collect();
    eprintln!(
        "{per_connection} bytes per connection; allocations per connection by size: {}",
        held.join(", ")
    );
    per_connection
}

fn by_size() -> Vec<isize> {
    BY_SIZE.iter().map(|c| c.load(Ordering::SeqCst)).collect()
}

#[test]
fn idle_standalone_connection_holds_at_most_1800_bytes_of_heap() {
    let per_connection = heap_per_connection(
        ws::Server::new(),
        500,
        |_| {},
        0,
        Duration::from_millis(100),
    );
    eprintln!("heap per idle connection: {per_connection} bytes");
    assert!(
        per_connection <= 1800,
        "{per_connection} bytes of heap per idle connection"
    );
}

/// A masked 20-byte binary frame, as a client sends it.
fn send_one_message(socket: &mut TcpStream) {
    let mut frame = vec![0x82, 0x80 | 20, 1, 2, 3, 4];
    frame.extend((0..20u8).map(|i| i ^ [1, 2, 3, 4][usize::from(i) % 4]));
    socket.write_all(&frame).unwrap();
}

#[test]
fn connection_that_carried_a_message_holds_no_more_heap_than_an_unused_one() {
    let server = || ws::Server::new().ping_interval(None);
    let unused = heap_per_connection(server(), 200, |_| {}, 0, Duration::from_millis(100));
    let used = heap_per_connection(
        server(),
        200,
        send_one_message,
        200,
        Duration::from_millis(100),
    );
    eprintln!("heap per connection: {unused} bytes unused, {used} bytes after a message");
    // Its read buffer went back to the thread once the message was read: no
    // keep-alive ping needed, and nothing else stays behind from the message.
    assert!(used <= 1800, "{used} bytes after a message");
    assert!(
        used <= unused + 64,
        "{used} bytes after a message against {unused} unused: the read buffer stayed"
    );
}
