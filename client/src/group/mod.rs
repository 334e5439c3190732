//! Consumer groups. The classic protocol: a sans-IO member state machine (`state`)
//! with the events it takes and the actions it returns (`io`), its settings
//! (`config`) and errors (`error`), pure assignors (`assign`), ConsumerProtocol
//! bytes (`consumer_protocol`) and the async driver that does the I/O (`driver`).
//! The KIP-848 consumer protocol: its member (`consumer_member`) and driver
//! (`consumer_driver`).

pub mod assign;
pub(crate) mod config;
// The member, its wire formats, its events and actions and its recovery table are
// public only for the fuzz targets (feature `fuzzing`); users see the config and
// errors below.
#[cfg(feature = "fuzzing")]
pub mod consumer_protocol;
#[cfg(not(feature = "fuzzing"))]
pub(crate) mod consumer_protocol;
// The KIP-848 consumer-protocol member (sans IO).
pub(crate) mod consumer_driver;
pub(crate) mod consumer_member;
pub(crate) mod driver;
pub(crate) mod error;
#[cfg(feature = "fuzzing")]
pub mod io;
#[cfg(not(feature = "fuzzing"))]
pub(crate) mod io;
pub(crate) mod recovery;
#[cfg(feature = "fuzzing")]
pub mod state;
#[cfg(not(feature = "fuzzing"))]
pub(crate) mod state;

pub use config::{GroupConfig, GroupProtocol};
pub use error::{CommitError, GroupError};
pub use recovery::explain;
