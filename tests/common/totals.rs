//! What `cafe totals` should have written, and what it did: each customer's
//! (orders, cents) summed from the cafe events of its input, and the last committed
//! total per customer of its output, both read by confluent-kafka.

use std::collections::BTreeMap;

use super::{assert_success, run_peer, stdout};

/// Each customer's (orders, cents) from the cafe events of `topic`, as confluent-kafka reads them.
pub fn expected(bootstrap: &str, topic: &str) -> BTreeMap<String, (u64, i64)> {
    let out = run_peer("read_all.py", &["--bootstrap", bootstrap, "--topic", topic]);
    assert_success(&out, "read_all.py");
    let mut totals = BTreeMap::new();
    for line in stdout(&out).lines() {
        let r: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let ev: serde_json::Value = serde_json::from_str(r["value"].as_str().expect("a value")).expect("an event");
        let t = totals.entry(ev["customer_name"].as_str().expect("a name").to_owned()).or_insert((0, 0));
        t.0 += 1;
        t.1 += (ev["amount"].as_f64().expect("an amount") * 100.0).round() as i64;
    }
    totals
}

/// The last committed total per customer in `topic` (read_committed, by confluent-kafka).
pub fn written(bootstrap: &str, topic: &str) -> BTreeMap<String, (u64, i64)> {
    let out =
        run_peer("read_all.py", &["--bootstrap", bootstrap, "--topic", topic, "-X", "isolation.level=read_committed"]);
    assert_success(&out, "read_all.py");
    let mut totals = BTreeMap::new();
    for line in stdout(&out).lines() {
        let r: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let t: serde_json::Value = serde_json::from_str(r["value"].as_str().expect("a value")).expect("a total");
        let name = t["customer_name"].as_str().expect("a name").to_owned();
        totals.insert(name, (t["orders"].as_u64().expect("orders"), t["total_cents"].as_i64().expect("cents")));
    }
    totals
}
