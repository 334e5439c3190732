//! The classic consumer-group protocol: a sans-IO member state machine (`state`),
//! pure assignors (`assign`), ConsumerProtocol bytes (`consumer_protocol`) and the
//! async driver that does the I/O (`driver`).

pub mod assign;
// The member, its wire formats and its recovery table are public only for the
// fuzz targets (feature `fuzzing`); users see the config and errors below.
#[cfg(feature = "fuzzing")]
pub mod consumer_protocol;
#[cfg(not(feature = "fuzzing"))]
pub(crate) mod consumer_protocol;
pub(crate) mod driver;
pub(crate) mod recovery;
#[cfg(feature = "fuzzing")]
pub mod state;
#[cfg(not(feature = "fuzzing"))]
pub(crate) mod state;

pub use recovery::explain;
pub use state::{GroupConfig, GroupError};
