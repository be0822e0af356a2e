//! The DBLab Engines a test process may drive. A stack lists its engines before any run
//! (`DblabEngines`, one environment for every handler), while each test starts its own
//! engine later: so the process names them all first, once. Each slot is a loopback port
//! bound now (its listener is handed to the test's emulator, so no other process can take
//! the port meanwhile) and a token secret created now (the test writes its token into it).
//! The local stack lists every slot; a world's handlers, run in process, list its own.
//!
//! The list is longer than Lambda's 4 KB of environment would hold: cargo-lambda does not
//! enforce that limit, and a deployed stack lists a few engines, not a test process's.

use std::net::TcpListener;
use std::sync::Mutex;

use tokio::sync::OnceCell;

use crate::{aws_config, unique};

/// More worlds than the largest test binary makes (the handler tests, about 120).
const SLOTS: usize = 200;

/// An engine every list names, where nothing listens: port 1 is refused at once, and no
/// test binds it (a port just freed could be taken by another test's engine).
pub const DOWN: &str = "down";

/// One engine's place in the list, for one world.
pub struct Slot {
    /// Its name in the list; `{name}-alias` names the same engine at `localhost`.
    pub name: String,
    pub listener: TcpListener,
    /// Its token secret, in us-east-1 ("unset" until the world writes its token).
    pub token_arn: String,
    /// Its entries, and the unreachable engine's: the list a world's own handlers read.
    pub list: String,
}

pub struct Pool {
    free: Mutex<Vec<Slot>>,
    list: String,
}

impl Pool {
    /// Every engine of the process: what the local stack's `DblabEngines` says.
    pub fn list(&self) -> &str {
        &self.list
    }

    /// A slot no other world of the process has.
    pub fn take(&self) -> Slot {
        let mut free = self.free.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        free.pop().unwrap_or_else(|| panic!("all {SLOTS} engine slots are taken: raise SLOTS in tests/src/engines.rs"))
    }
}

/// A loopback port held for a slot. Never the one the stack's `cargo lambda watch` is to
/// listen on: that port was chosen free and let go (moto needs it before the stack starts),
/// so the system may hand it out again.
fn slot_port() -> (TcpListener, u16) {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("binding a slot's port: {e}"));
        let port = listener.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
        if !crate::lambda_runtime_url().ends_with(&format!(":{port}")) {
            return (listener, port);
        }
    }
}

pub async fn pool() -> &'static Pool {
    static POOL: OnceCell<Pool> = OnceCell::const_new();
    POOL.get_or_init(make).await
}

async fn make() -> Pool {
    let secrets = aws_sdk_secretsmanager::Client::new(&aws_config("us-east-1").await);
    let prefix = unique("slot");
    let mut created = tokio::task::JoinSet::new();
    for i in 0..=SLOTS {
        let (secrets, name) = (secrets.clone(), format!("{prefix}-{i}"));
        created.spawn(async move { (i, crate::create_secret(&secrets, &name, "unset").await) });
    }
    let mut arns = vec![String::new(); SLOTS + 1];
    while let Some(done) = created.join_next().await {
        let (i, arn) = done.unwrap_or_else(|e| panic!("creating an engine slot's secret: {e}"));
        arns[i] = arn;
    }
    let down = format!("{DOWN} http://127.0.0.1:1 {} plaintext", arns[SLOTS]);
    let mut slots = Vec::new();
    let mut every = vec![down.clone()];
    for (i, token_arn) in arns.into_iter().take(SLOTS).enumerate() {
        let (listener, port) = slot_port();
        let name = format!("e{i}");
        let entries = format!(
            "{name} http://127.0.0.1:{port} {token_arn} plaintext, {name}-alias http://localhost:{port} {token_arn} plaintext"
        );
        every.push(entries.clone());
        slots.push(Slot { name, listener, token_arn, list: format!("{entries}, {down}") });
    }
    Pool { free: Mutex::new(slots), list: every.join(", ") }
}
