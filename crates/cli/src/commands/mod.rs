//! One file per command (or family of commands).

pub mod cleanup;
pub mod history;
pub mod import;
pub mod run;
pub mod schedule;
pub mod status;
pub mod target;
pub mod validate;
