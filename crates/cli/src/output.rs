//! What every command prints with: colour or not, JSON for scripts, times to the minute.

use std::io::IsTerminal;

use clap::ValueEnum;
use serde_json::{Value, json};
use time::OffsetDateTime;

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Colour {
    Auto,
    Always,
    Never,
}

/// Whether to colour: on a terminal without `NO_COLOR`, unless told.
pub(crate) fn colour(choice: Colour) -> bool {
    match choice {
        Colour::Always => true,
        Colour::Never => false,
        Colour::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

pub(crate) fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// A time as the tables show it (UTC, to the minute), `-` for none.
pub(crate) fn stamp(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]")).ok())
        .unwrap_or_else(|| "-".into())
}

/// A time as the JSON output gives it (RFC 3339), `null` for none.
pub(crate) fn rfc(t: Option<OffsetDateTime>) -> Value {
    t.map_or(Value::Null, |t| json!(refresh_core::clock::rfc3339(t)))
}
