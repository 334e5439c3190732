//! The classic consumer-group protocol: a sans-IO member state machine (`state`),
//! pure assignors (`assign`), ConsumerProtocol bytes (`consumer_protocol`) and the
//! async driver that does the I/O (`driver`).

pub mod assign;
pub mod consumer_protocol;
pub mod driver;
pub mod recovery;
pub mod state;
