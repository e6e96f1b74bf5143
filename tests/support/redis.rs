//! A `redis-server` of a test's own on a loopback port, killed on drop, for the
//! backplane's tests (`tests/backplane*.rs` and the library's `hub::redis` tests).
//! `scripts/test-all.sh` installs `redis-server` and `redis-cli`.
#![allow(dead_code)]

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether something accepts connections on 127.0.0.1:`port` within 20 s (a hang
/// guard: a started process normally listens within a second, but not always on a
/// machine busy with a CI run).
pub async fn listening(port: u16) -> bool {
    for _ in 0..800 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// A `redis-server` without persistence on 127.0.0.1:`port`.
pub struct Redis {
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl Redis {
    /// One on a free port, listening.
    pub async fn start() -> Redis {
        Redis::start_on(free_port()).await
    }

    /// One on `port` (e.g. again on the port of one that was killed), listening.
    pub async fn start_on(port: u16) -> Redis {
        Redis::start_with(port, &[]).await
    }

    /// One on `port` with `extra` arguments (e.g. cluster mode), listening.
    pub async fn start_with(port: u16, extra: &[String]) -> Redis {
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend_from_slice(extra);
        let mut redis = Redis {
            port,
            args,
            child: None,
        };
        redis.run().await;
        redis
    }

    /// Start it again (after [`stop`](Self::stop)) with the same arguments.
    pub async fn run(&mut self) {
        let child = Command::new("redis-server")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (apt-get install -y redis-server)");
        self.child = Some(child);
        if !listening(self.port).await {
            self.stop();
            panic!("redis-server does not listen on {}", self.port);
        }
    }

    /// Kill it (resumed first if it was stopped with SIGSTOP) and reap it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, libc::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Send `signal` to it (SIGSTOP to pause it, SIGCONT to resume it).
    pub fn signal(&self, signal_number: libc::c_int) {
        if let Some(child) = &self.child {
            signal(child, signal_number);
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `redis-cli ARGS` against this server: its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli (apt-get install -y redis-tools)");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: a plain kill(2) of our own child, which has not been reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
}
