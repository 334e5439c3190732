//! The library's examples (client/examples/) run against the real broker: a
//! newcomer's first program must work as printed. `cargo test` builds examples
//! only as test harnesses, so `make test` (scripts/test.sh) runs
//! `cargo build --examples` first; run that before `cargo test --test examples`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{
    assert_success, bootstrap, cafe_bin, create_topic, delete_topic, run_with_deadline, stdout, unique_topic,
};

fn example(name: &str) -> Command {
    // target/<profile>/cafe -> target/<profile>/examples/<name>
    let path: PathBuf = cafe_bin().parent().expect("target dir").join("examples").join(name);
    assert!(path.exists(), "{} is not built; run `cargo build --examples` first (make test does)", path.display());
    let mut cmd = Command::new(path);
    cmd.env("KAFKA_BOOTSTRAP", bootstrap());
    cmd
}

#[test]
fn produce_then_consume_examples_round_trip_ten_records() {
    let topic = unique_topic("examples");
    let group = unique_topic("examples-group");
    create_topic(&topic, 3);

    let mut produce = example("produce");
    produce.arg(&topic);
    let out = run_with_deadline(produce, b"", common::CAFE_TIMEOUT);
    assert_success(&out, "examples/produce");
    let printed = stdout(&out);
    assert_eq!(printed.lines().filter(|l| l.starts_with("record ")).count(), 10, "{printed}");
    assert!(printed.contains("10 delivered, 0 failed"), "{printed}");

    let mut consume = example("consume");
    consume.args([&topic, &group]);
    let out = run_with_deadline(consume, b"", common::CAFE_TIMEOUT);
    assert_success(&out, "examples/consume");
    let printed = stdout(&out);
    let offsets: std::collections::BTreeSet<&str> =
        printed.lines().filter(|l| l.contains("order")).filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(offsets.len(), 10, "every record once:\n{printed}");
    assert!(printed.trim_end().ends_with("10 records"), "{printed}");

    // The example committed on close: the same group reads nothing again.
    let mut again = example("consume");
    again.args([&topic, &group]);
    let out = run_with_deadline(again, b"", common::CAFE_TIMEOUT);
    assert_success(&out, "examples/consume, second run");
    assert!(stdout(&out).trim_end().ends_with("0 records"), "{}", stdout(&out));
    delete_topic(&topic);
}
