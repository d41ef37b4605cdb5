//! `plinth`'s subcommands, one module each: its arguments and its `run`.

pub mod cache;
pub mod call;
pub mod db;
pub mod demo;
pub mod new;
pub mod outbox;
pub mod plugin;
pub mod send_mail;
pub mod serve;
pub mod wit;
