//! `cafe topic create|recreate|describe`.

use clap::{Args, Subcommand};

use super::Common;
use crate::error::Error;
use cafe_kafka::admin::Admin;
use cafe_kafka::cluster::TopicInfo;

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic and wait until every partition has a leader.
    Create(TopicSpec),
    /// Delete the topic if it exists, wait until it is gone, create it again.
    Recreate(TopicSpec),
    /// Delete a topic and wait until it is gone.
    Delete { name: String },
    /// Show partitions and leaders.
    Describe { name: String },
}

#[derive(Debug, Args)]
pub struct TopicSpec {
    pub name: String,
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: i32,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i16).range(1..))]
    pub replication_factor: i16,
}

pub async fn run(common: &Common, cmd: TopicCommand) -> Result<(), Error> {
    let cluster = common.cluster().await?;
    let admin = Admin::new(cluster, common.request_timeout());
    match cmd {
        TopicCommand::Create(s) => print(&admin.create(&s.name, s.partitions, s.replication_factor).await?, "created"),
        TopicCommand::Recreate(s) => {
            print(&admin.recreate(&s.name, s.partitions, s.replication_factor).await?, "recreated")
        }
        TopicCommand::Delete { name } => {
            admin.delete(&name).await?;
            println!("deleted topic {name}");
        }
        TopicCommand::Describe { name } => print(&admin.describe(&name).await?, "topic"),
    }
    Ok(())
}

fn print(t: &TopicInfo, what: &str) {
    println!("{what} {} with {} partitions", t.name, t.partitions.len());
    for p in &t.partitions {
        println!("  partition {} leader {} epoch {}", p.id, p.leader, p.leader_epoch);
    }
}
