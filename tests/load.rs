//! Four scheduler invocations at once on 5,000 due thread relances (half SMS, half
//! marketplace): every customer receives each step exactly once and every thread advances.

mod harness;

use std::collections::HashMap;

use chrono::{Duration, SubsecRound, Utc};
use harness::{Stack, always_open, moto_data, relance_body, seed_due, sms_per_seeded_thread, with};
use relance_shared::domain::thread::State;
use serde_json::json;

const THREADS: usize = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_overlapping_runs_on_5000_due_threads_send_each_step_once() {
    let stack = Stack::new().await;
    let api = stack.api("acme");
    api.put("/settings", always_open()).await;
    let reminder = api.response("Rappel", "Bonjour {{customer_name}}").await;
    let sms = api.relance(relance_body("SMS", &reminder)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let channel = api
        .relance(with(
            relance_body("Marketplace", &reminder),
            json!({"send_type": "channel", "allowed_channels": ["amazon"]}),
        ))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let due = (Utc::now() + Duration::days(3)).trunc_subsecs(0);
    let by_sms = seed_due(&stack, "acme", &sms, THREADS / 2, due).await;
    let by_channel = seed_due(&stack, "acme", &channel, THREADS / 2, due).await;

    let runs = futures::future::join_all((0..4).map(|_| stack.tick(due))).await;
    let sent: u64 = runs.iter().map(|r| r.sent).sum();
    assert_eq!(sent, THREADS as u64, "{runs:?}");
    assert!(
        runs.iter()
            .all(|r| r.failed == 0 && r.unknown == 0 && r.left_for_next_run == 0),
        "{runs:?}"
    );

    // Each customer got reminder 1 exactly once, by SMS...
    for (thread, received) in sms_per_seeded_thread(&moto_data().await, &by_sms) {
        assert_eq!(received, 1, "SMS to thread {thread}");
    }
    // ...or on the marketplace, once per thread and idempotency key.
    let mut per_thread: HashMap<String, usize> = HashMap::new();
    let mut keys = std::collections::HashSet::new();
    for message in stack.stub.received() {
        *per_thread
            .entry(message.body["thread_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
        assert!(
            keys.insert(message.idempotency_key.clone().unwrap()),
            "a repeated idempotency key"
        );
    }
    for (thread, _) in &by_channel {
        assert_eq!(
            per_thread.get(thread),
            Some(&1),
            "marketplace message for thread {thread}"
        );
    }

    // All 5,000 advanced to reminder 2, due two days later.
    for (thread, _) in by_sms.iter().chain(&by_channel).step_by(97) {
        let stored = stack
            .world
            .store
            .get_thread("acme", thread)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (stored.state, stored.step, stored.messages_sent),
            (State::Active, 2, 1),
            "thread {thread}"
        );
        assert_eq!(stored.next_relance_date, Some(due + Duration::days(2)));
    }
    assert_eq!(
        stack.tick(due + Duration::hours(1)).await.due,
        0,
        "nothing is left due"
    );
    let (problems, _) = relance_tests::consistency::check(&stack.world.dynamo, &stack.world.table)
        .await
        .unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}
