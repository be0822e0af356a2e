//! `dblab-emulator [--port N] [--settings JSON]`: serves the emulated DBLab Engine API on
//! 127.0.0.1 until interrupted. Prints `listening on http://...` once ready.

use std::net::SocketAddr;

use dblab_emulator::{Emulator, Settings};

fn usage() -> ! {
    eprintln!("usage: dblab-emulator [--port N] [--settings JSON]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut port: u16 = 0;
    let mut settings = Settings::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => port = args.next().and_then(|p| p.parse().ok()).unwrap_or_else(|| usage()),
            "--settings" => {
                let text = args.next().unwrap_or_else(|| usage());
                settings = serde_json::from_str(&text).unwrap_or_else(|e| {
                    eprintln!("--settings: {e}");
                    std::process::exit(2)
                });
            }
            _ => usage(),
        }
    }
    let emulator = match Emulator::start(SocketAddr::from(([127, 0, 0, 1], port)), settings).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1)
        }
    };
    println!("listening on {}", emulator.url());
    let _ = tokio::signal::ctrl_c().await;
}
