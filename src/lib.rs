//! `cafe`: the campus cafe event pipeline on Apache Kafka, the first application
//! of the [`cafe_kafka`] client. Here live what is the cafe's own: the command
//! line (`cli`), the cafe event and its generator (`event`), its Schema Registry
//! codec (`event_codec`), and the exit codes with the advice a user gets
//! (`error`). Everything that speaks Kafka is in `cafe_kafka`.

pub mod cli;
pub mod error;
pub mod event;
pub mod event_codec;
