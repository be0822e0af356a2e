//! `make bench`: the full benchmark plan on release builds (see `refresh_tests::bench`).
//! `cargo bench -p refresh-tests --bench bench -- [handlers|orchestration|packages]` runs one part.

use refresh_tests::bench::{self, Part, Plan};

#[tokio::main]
async fn main() {
    let parts: Vec<Part> = match std::env::args().skip(1).find(|a| !a.starts_with('-')) {
        Some(name) => match Part::named(&name) {
            Some(part) => vec![part],
            None => {
                eprintln!("no benchmark part {name:?}: handlers, orchestration or packages");
                std::process::exit(2);
            }
        },
        None => Part::ALL.to_vec(),
    };
    let unlike = bench::run(&Plan::full(), &parts).await;
    if !unlike.is_empty() {
        eprintln!("the baseline does not make the same calls as the Rust handlers: {}", unlike.join("; "));
        std::process::exit(1);
    }
}
