//! `cafe`: the campus cafe event pipeline on Apache Kafka, in pure Rust.
//!
//! Layers, each knowing only the ones below it (see `docs/DESIGN.md`):
//! `event`, `partitioner`, `backoff` (pure) -> `wire` (one broker connection) ->
//! `cluster` (metadata, leaders) / `group` (consumer-group protocol) ->
//! `producer`, `consumer`, `admin` -> `cli` (argument parsing and printing).

pub mod admin;
pub mod backoff;
pub mod cli;
pub mod cluster;
pub mod compression;
pub mod consumer;
pub mod error;
pub mod event;
pub mod fetch;
pub mod group;
pub mod partitioner;
pub mod producer;
pub mod registry;
pub mod types;
pub mod wire;
