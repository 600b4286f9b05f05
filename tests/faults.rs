//! Faults, overlapping runs and interrupted runs: no customer gets a step twice, no thread
//! relance is lost, and each ends in the state SPEC promises.

mod harness;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, SubsecRound, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use harness::{
    Stack, always_open, attach_sms, moto_data, new_phone, relance_body, seed_due,
    sms_per_seeded_thread, sms_to, time, with,
};
use relance_scheduler::{RunConfig, Senders};
use relance_shared::outbound::{SendError, SmsSender};
use relance_tests::marketplace_stub::Behaviour;
use relance_tests::proxy::CountingProxy;
use serde_json::json;
use tokio::sync::Notify;

/// Fails the next sends with scripted errors, then hands over to the real sender.
struct ScriptedSms {
    real: Arc<dyn SmsSender>,
    script: Mutex<VecDeque<SendError>>,
}

impl SmsSender for ScriptedSms {
    fn send_sms<'a>(
        &'a self,
        phone: &'a str,
        text: &'a str,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        let scripted = self.script.lock().unwrap().pop_front();
        match scripted {
            Some(err) => async move { Err(err) }.boxed(),
            None => self.real.send_sms(phone, text),
        }
    }
}

/// Sends for real, then never returns: the process dies between send and commit.
struct DiesAfterSend {
    real: Arc<dyn SmsSender>,
    sent: Arc<Notify>,
}

impl SmsSender for DiesAfterSend {
    fn send_sms<'a>(
        &'a self,
        phone: &'a str,
        text: &'a str,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        async move {
            self.real.send_sms(phone, text).await?;
            self.sent.notify_one();
            futures::future::pending().await
        }
        .boxed()
    }
}

/// Publishes for real, then never returns: the process dies between an event and the
/// commit of its step.
struct DiesAfterPublish {
    real: Arc<dyn relance_shared::outbound::EventPublisher>,
    published: Arc<Notify>,
}

impl relance_shared::outbound::EventPublisher for DiesAfterPublish {
    fn publish<'a>(
        &'a self,
        event: &'a relance_shared::domain::event::DomainEvent,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        async move {
            self.real.publish(event).await?;
            self.published.notify_one();
            futures::future::pending().await
        }
        .boxed()
    }
}

async fn open_sms_relance(stack: &Stack, tenant: &str) -> String {
    let api = stack.api(tenant);
    api.put("/settings", always_open()).await;
    let reminder = api.response("Rappel", "Bonjour {{customer_name}}").await;
    api.relance(relance_body("Relance", &reminder)).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Attaches `relance` to `thread_id` by SMS to a phone no other test uses; returns the
/// phone (E.164) and when the first reminder is due.
async fn attach_new_phone(
    stack: &Stack,
    relance: &str,
    thread_id: &str,
) -> (String, DateTime<Utc>) {
    let (typed, phone) = new_phone();
    let attached = stack
        .api("acme")
        .put(
            &format!("/threads/{thread_id}/relance"),
            attach_sms(relance, &typed, json!({"customer_name": "Léa"})),
        )
        .await;
    (phone, time(&attached.body["next_relance_date"]))
}

async fn attach_channel(stack: &Stack) -> DateTime<Utc> {
    let api = stack.api("acme");
    api.put("/settings", always_open()).await;
    let reminder = api.response("Rappel", "Any news?").await;
    let relance = api
        .relance(with(
            relance_body("Relance Amazon", &reminder),
            json!({"send_type": "channel", "allowed_channels": ["amazon"]}),
        ))
        .await;
    let attached = api
        .put(
            "/threads/th-1/relance",
            json!({"relance_id": relance["id"], "ticket_id": "T-1", "ticket_status": "attente_client",
                   "channel": "amazon", "recipient": {"conversation_id": "c-1"}}),
        )
        .await;
    time(&attached.body["next_relance_date"])
}

async fn view(stack: &Stack) -> serde_json::Value {
    stack.api("acme").get("/threads/th-1/relance").await.body
}

#[tokio::test]
async fn a_marketplace_refusal_fails_the_relance_at_once() {
    let stack = Stack::new().await;
    let due = attach_channel(&stack).await;
    stack.stub.set_behaviour(Behaviour {
        status: Some(400),
        ..Behaviour::default()
    });

    let run = stack.tick(due).await;
    assert_eq!((run.sent, run.failed, run.retried), (0, 1, 0), "{run:?}");
    let view = view(&stack).await;
    assert_eq!(view["state"], "failed");
    assert!(
        view["state_reason"].as_str().unwrap().contains("400"),
        "{view}"
    );
    assert_eq!(view["history"][0]["outcome"], "failed");
    let events = stack.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "relance.failed");
    assert!(events[0]["reason"].as_str().unwrap().contains("400"));

    // Failed for good: later runs never try again.
    stack.stub.set_behaviour(Behaviour::default());
    assert_eq!(stack.tick(due + Duration::days(10)).await.due, 0);
    assert_eq!(stack.stub.received().len(), 1);
}

#[tokio::test]
async fn a_token_rotated_in_ssm_is_used_without_a_redeploy() {
    let stack = Stack::new().await;
    let due = attach_channel(&stack).await;
    let aws = &stack.world.aws;
    let parameter = format!("/relances-test/{}/token", uuid::Uuid::new_v4());
    let store = |value: &'static str| relance_tests::stack::put_secret(aws, &parameter, value);
    store(harness::MARKETPLACE_TOKEN).await.unwrap();
    // The scheduler as deployed: the token read from SSM at init (SSM reached through a
    // counting proxy).
    let ssm = CountingProxy::new(&relance_tests::stack::test_endpoint());
    let ssm_aws = relance_tests::stack::sdk_config(&ssm.spawn().await.unwrap()).await;
    let config = relance_shared::outbound::MarketplaceConfig {
        token_parameter: Some(relance_shared::config::SecretParameter::new(
            &ssm_aws,
            "MARKETPLACE_API_TOKEN",
            parameter.clone(),
        )),
        ..stack.marketplace_config()
    };
    let marketplace = relance_shared::outbound::HttpMarketplace::new(&config).unwrap();
    let scheduler = stack.scheduler_with(
        Senders {
            marketplace: Arc::new(marketplace),
            ..stack.senders()
        },
        RunConfig::default(),
    );

    // The operator rotates the token: the connector takes only the new one, SSM holds it.
    stack.stub.set_token("rotated-token");
    store("rotated-token").await.unwrap();
    let run = scheduler.run(due, None).await.unwrap();
    assert_eq!((run.sent, run.failed, run.retried), (1, 0, 0), "{run:?}");
    let received = stack.stub.received();
    let statuses: Vec<u16> = received.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 202]);
    assert_eq!(received[0].idempotency_key, received[1].idempotency_key);
    assert_eq!(view(&stack).await["messages_sent"], 1);
    assert_eq!(ssm.get("SSM.GetParameter").requests, 1);

    // A token the connector refuses and SSM does not replace is a refusal: failed at once,
    // for a second thread too, without asking SSM again.
    let api = stack.api("acme");
    let relance_id = view(&stack).await["relance_id"].clone();
    api.put(
        "/threads/th-2/relance",
        json!({"relance_id": relance_id, "ticket_id": "T-2", "ticket_status": "attente_client",
               "channel": "amazon", "recipient": {"conversation_id": "c-2"}}),
    )
    .await;
    stack.stub.set_token("yet-another-token");
    let next = time(&view(&stack).await["next_relance_date"]);
    let run = scheduler.run(next, None).await.unwrap();
    assert_eq!((run.sent, run.failed), (0, 2), "{run:?}");
    assert_eq!(ssm.get("SSM.GetParameter").requests, 2);
    for thread in ["th-1", "th-2"] {
        let view = api.get(&format!("/threads/{thread}/relance")).await.body;
        assert_eq!(view["state"], "failed");
        assert!(
            view["state_reason"].as_str().unwrap().contains("401"),
            "{view}"
        );
    }
}

#[tokio::test]
async fn transient_marketplace_errors_are_retried_later_with_the_same_key() {
    for status in [429u16, 500, 503, 408] {
        let stack = Stack::new().await;
        let due = attach_channel(&stack).await;
        stack.stub.set_behaviour(Behaviour {
            status: Some(status),
            times: Some(1),
            ..Behaviour::default()
        });

        let run = stack.tick(due).await;
        assert_eq!(
            (run.sent, run.retried, run.failed),
            (0, 1, 0),
            "{status}: {run:?}"
        );
        let after = view(&stack).await;
        assert_eq!(after["state"], "active");
        assert_eq!(after["history"][0]["outcome"], "retry");
        let retry_at = time(&after["next_relance_date"]);
        assert_eq!(
            retry_at,
            due + Duration::minutes(5),
            "first retry five minutes later"
        );

        assert_eq!(stack.tick(retry_at - Duration::seconds(1)).await.due, 0);
        let run = stack.tick(retry_at).await;
        assert_eq!(run.sent, 1, "{status}: {run:?}");
        let received = stack.stub.received();
        assert_eq!(
            received.iter().map(|m| m.status).collect::<Vec<_>>(),
            [status, 202]
        );
        assert_eq!(
            received[0].idempotency_key, received[1].idempotency_key,
            "a retry is the same message to the connector"
        );
        assert_eq!(view(&stack).await["messages_sent"], 1);
    }
}

#[tokio::test]
async fn a_connector_too_slow_for_the_timeout_is_retried_safely() {
    let stack = Stack::new().await;
    let due = attach_channel(&stack).await;
    stack.stub.set_behaviour(Behaviour {
        status: None,
        delay_ms: 3_000,
        times: None,
    });

    let run = stack.tick(due).await;
    assert_eq!(run.retried, 1, "{run:?}");
    assert!(
        view(&stack).await["history"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("timed out")
    );
    stack.stub.set_behaviour(Behaviour::default());
    stack.tick(due + Duration::minutes(5)).await;
    let received = stack.stub.received();
    assert_eq!(
        received.len(),
        2,
        "the slow request arrived, then the retry"
    );
    assert_eq!(
        received[0].idempotency_key, received[1].idempotency_key,
        "so the connector can drop the repeat"
    );
    assert_eq!(view(&stack).await["messages_sent"], 1);
}

#[tokio::test]
async fn retries_stop_after_the_configured_attempts() {
    let stack = Stack::new().await;
    let mut at = attach_channel(&stack).await;
    stack.stub.set_behaviour(Behaviour {
        status: Some(503),
        ..Behaviour::default()
    });
    let config = RunConfig {
        max_attempts: 3,
        ..RunConfig::default()
    };
    for attempt in 1..=3 {
        let run = stack
            .scheduler_with(stack.senders(), config.clone())
            .run(at, None)
            .await
            .unwrap();
        let view = view(&stack).await;
        if attempt < 3 {
            assert_eq!(run.retried, 1);
            at = time(&view["next_relance_date"]);
        } else {
            assert_eq!(run.failed, 1, "{run:?}");
            assert_eq!(view["state"], "failed");
            assert!(
                view["state_reason"]
                    .as_str()
                    .unwrap()
                    .starts_with("gave up after 3 attempts"),
                "{view}"
            );
        }
    }
    assert_eq!(stack.stub.received().len(), 3);
    assert_eq!(stack.event_types().await, ["relance.failed"]);
}

#[tokio::test]
async fn sns_throttling_is_retried_and_a_refused_number_fails() {
    let stack = Stack::new().await;
    let api = stack.api("acme");
    let relance = open_sms_relance(&stack, "acme").await;
    let (phone, due1) = attach_new_phone(&stack, &relance, "th-1").await;
    let (phone2, due2) = attach_new_phone(&stack, &relance, "th-2").await;
    // The two attachments may fall in different seconds: run when both are due.
    let due = due1.max(due2);

    let senders = |script: Vec<SendError>| Senders {
        sms: Arc::new(ScriptedSms {
            real: stack.senders().sms,
            script: Mutex::new(script.into()),
        }),
        ..stack.senders()
    };
    // One run, two threads, both SMS throttled.
    let throttled = SendError::Transient("SMS refused by SNS (Throttling): Rate exceeded".into());
    let run = stack
        .scheduler_with(
            senders(vec![throttled.clone(), throttled]),
            RunConfig::default(),
        )
        .run(due, None)
        .await
        .unwrap();
    assert_eq!(run.retried, 2, "{run:?}");
    assert!(sms_to(&phone).await.is_empty());

    // On the retry, SNS refuses one number for good and sends the other.
    let invalid =
        SendError::Permanent("SMS refused by SNS (InvalidParameter): Invalid phone number".into());
    let concurrency_one = RunConfig {
        concurrency: 1,
        ..RunConfig::default()
    };
    let run = stack
        .scheduler_with(senders(vec![invalid]), concurrency_one)
        .run(due + Duration::minutes(5), None)
        .await
        .unwrap();
    assert_eq!((run.sent, run.failed), (1, 1), "{run:?}");
    let delivered = sms_to(&phone).await.len() + sms_to(&phone2).await.len();
    assert_eq!(delivered, 1);
    let states: Vec<String> = futures::future::join_all(["th-1", "th-2"].map(|t| {
        let api = api.clone();
        async move {
            api.get(&format!("/threads/{t}/relance")).await.body["state"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    }))
    .await;
    assert!(
        states.contains(&"failed".to_owned()) && states.contains(&"active".to_owned()),
        "{states:?}"
    );
    let types = stack.event_types().await;
    assert_eq!(types.iter().filter(|t| *t == "relance.failed").count(), 1);
    assert_eq!(types.iter().filter(|t| *t == "relance.sent").count(), 1);
}

#[tokio::test]
async fn two_overlapping_runs_send_each_step_exactly_once() {
    let stack = Stack::new().await;
    let relance = open_sms_relance(&stack, "acme").await;
    let due = (Utc::now() + Duration::days(3)).trunc_subsecs(0);
    let threads = seed_due(&stack, "acme", &relance, 500, due).await;

    let (first, second) = tokio::join!(stack.tick(due), stack.tick(due));
    assert_eq!(
        first.due + second.due,
        1_000,
        "both runs saw every due thread"
    );
    assert_eq!(first.sent + second.sent, 500, "{first:?} {second:?}");
    assert_eq!(
        first.skipped + second.skipped,
        500,
        "each thread was skipped by the run that lost its claim"
    );

    for (thread, received) in sms_per_seeded_thread(&moto_data().await, &threads) {
        assert_eq!(received, 1, "thread {thread} got {received} SMS");
    }
    // Every thread advanced to its second reminder.
    let again = stack.tick(due + Duration::minutes(5)).await;
    assert_eq!(again.due, 0, "{again:?}");
    let later = stack.tick(due + Duration::days(2)).await;
    assert_eq!(later.sent, 500);
}

#[tokio::test]
async fn a_run_killed_between_send_and_commit_never_sends_that_step_again() {
    let stack = Stack::new().await;
    let api = stack.api("acme");
    let relance = open_sms_relance(&stack, "acme").await;
    let (phone, due) = attach_new_phone(&stack, &relance, "th-1").await;

    let sent = Arc::new(Notify::new());
    let dying = stack.scheduler_with(
        Senders {
            sms: Arc::new(DiesAfterSend {
                real: stack.senders().sms,
                sent: sent.clone(),
            }),
            ..stack.senders()
        },
        RunConfig::default(),
    );
    let run = tokio::spawn(async move { dying.run(due, None).await });
    sent.notified().await;
    run.abort();
    assert_eq!(sms_to(&phone).await.len(), 1, "the customer got reminder 1");

    // While the dead run's claim could still be live, nobody touches the step.
    let meanwhile = stack.tick(due + Duration::minutes(1)).await;
    assert_eq!(
        (meanwhile.sent, meanwhile.unknown, meanwhile.skipped),
        (0, 0, 1),
        "{meanwhile:?}"
    );

    // Once the claim expired, the step is recorded as unknown and not sent again.
    let after = stack.tick(due + Duration::hours(1)).await;
    assert_eq!((after.sent, after.unknown), (0, 1), "{after:?}");
    assert_eq!(sms_to(&phone).await.len(), 1);
    let view = api.get("/threads/th-1/relance").await.body;
    assert_eq!(view["history"][0]["outcome"], "unknown");
    assert_eq!(view["history"][0]["step"], 1);
    assert_eq!(view["state"], "active");

    // The cycle goes on with reminder 2.
    let next = time(&view["next_relance_date"]);
    assert!(
        next >= due + Duration::hours(1) + Duration::days(2),
        "not bunched after the unknown step"
    );
    assert_eq!(stack.tick(next).await.sent, 1);
    assert_eq!(sms_to(&phone).await.len(), 2);
}

/// A scheduler whose DynamoDB and SNS clients go through a proxy that counts requests
/// and the items returned.
/// The stack's table and SNS, reached through a counting proxy.
async fn proxied_clients(
    stack: &Stack,
) -> (
    CountingProxy,
    relance_shared::store::Store,
    aws_sdk_sns::Client,
) {
    let proxy = CountingProxy::new(&relance_tests::stack::test_endpoint());
    let url = proxy.spawn().await.unwrap();
    let aws = relance_tests::stack::sdk_config(&url).await;
    let store = relance_shared::store::Store::new(
        aws_sdk_dynamodb::Client::new(&aws),
        &relance_shared::config::StoreConfig {
            table_name: stack.world.table.clone(),
            due_shards: 4,
        },
    );
    (proxy, store, aws_sdk_sns::Client::new(&aws))
}

async fn proxied_scheduler(stack: &Stack) -> (CountingProxy, relance_scheduler::Scheduler) {
    let (proxy, store, sns) = proxied_clients(stack).await;
    let senders = Senders {
        sms: Arc::new(relance_shared::outbound::SnsSms::new(sns.clone(), 0)),
        events: Arc::new(relance_shared::outbound::SnsEvents::new(
            sns,
            stack.topic.clone(),
        )),
        ..stack.senders()
    };
    let scheduler = relance_scheduler::Scheduler::new(store, senders, RunConfig::default());
    (proxy, scheduler)
}

#[tokio::test]
async fn the_scheduler_calls_only_what_its_deployed_role_allows() {
    let stack = Stack::new().await;
    let api = stack.api("acme");
    let relance = open_sms_relance(&stack, "acme").await;
    let response =
        api.get(&format!("/relances/{relance}")).await.body["default_response_id"].clone();
    let other = api
        .relance(relance_body("Autre", response.as_str().unwrap()))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Every path of a run: a reminder, a stop to announce, a replaced cycle's end notice.
    let (_, due) = attach_new_phone(&stack, &relance, "th-1").await;
    attach_new_phone(&stack, &relance, "th-2").await;
    api.put(
        "/threads/th-2/ticket-status",
        json!({"ticket_status": "ferme"}),
    )
    .await;
    attach_new_phone(&stack, &relance, "th-3").await;
    attach_new_phone(&stack, &other, "th-3").await;

    let (proxy, scheduler) = proxied_scheduler(&stack).await;
    let run = scheduler
        .run(due + Duration::minutes(1), None)
        .await
        .unwrap();
    assert_eq!((run.sent, run.stopped), (2, 2), "{run:?}");

    harness::assert_role_allows("SchedulerFunction", &proxy);
    let counts = proxy.counts();
    for op in ["DynamoDB.Query", "DynamoDB.DeleteItem", "SNS.Publish"] {
        assert!(
            counts.contains_key(op),
            "the run exercised {op}: {counts:?}"
        );
    }
}

#[tokio::test]
async fn sms_are_published_as_transactional() {
    let stack = Stack::new().await;
    let relance = open_sms_relance(&stack, "acme").await;
    let (phone, due) = attach_new_phone(&stack, &relance, "th-1").await;
    let (proxy, scheduler) = proxied_scheduler(&stack).await;
    assert_eq!(scheduler.run(due, None).await.unwrap().sent, 1);

    let sms: Vec<_> = proxy
        .sns_publishes()
        .into_iter()
        .filter(|publish| publish.get("PhoneNumber") == Some(&phone))
        .collect();
    assert_eq!(sms.len(), 1, "{:?}", proxy.sns_publishes());
    // Transactional SMS are delivered ahead of promotional ones and reach numbers that
    // refuse marketing messages (moto keeps no attributes, so the request is read).
    let attribute = |name: &str| {
        let entry = sms[0]
            .iter()
            .find(|(key, value)| key.ends_with(".Name") && value.as_str() == name)
            .map(|(key, _)| key.trim_end_matches(".Name").to_owned())?;
        sms[0].get(&format!("{entry}.Value.StringValue")).cloned()
    };
    assert_eq!(
        attribute("AWS.SNS.SMS.SMSType").as_deref(),
        Some("Transactional")
    );
}

#[tokio::test]
async fn a_run_reads_only_about_as_many_items_as_are_due() {
    let stack = Stack::new().await;
    let relance = open_sms_relance(&stack, "acme").await;
    let due = (Utc::now() + Duration::days(3)).trunc_subsecs(0);
    seed_due(&stack, "acme", &relance, 1_000, due + Duration::days(30)).await;
    seed_due(&stack, "acme", &relance, 10, due).await;

    let (proxy, scheduler) = proxied_scheduler(&stack).await;
    let run = scheduler.run(due, None).await.unwrap();
    assert_eq!((run.due, run.sent), (10, 10));

    let counts = proxy.counts();
    let query = proxy.get("DynamoDB.Query");
    let get = proxy.get("DynamoDB.GetItem");
    assert_eq!(
        proxy.get("DynamoDB.Scan").requests,
        0,
        "never a scan: {counts:?}"
    );
    assert_eq!(query.requests, 4, "one query per shard: {counts:?}");
    assert_eq!(
        query.items, 10,
        "the index returned only the due items: {counts:?}"
    );
    assert_eq!(
        get.items, 1,
        "one settings read for the one tenant: {counts:?}"
    );
    assert!(query.items + get.items <= 11, "{counts:?}");
    assert_eq!(
        proxy.get("DynamoDB.UpdateItem").requests,
        10,
        "one claim per step: {counts:?}"
    );
    assert_eq!(
        proxy.get("DynamoDB.PutItem").requests,
        10,
        "one commit per step: {counts:?}"
    );
}

#[tokio::test]
async fn a_run_short_of_time_leaves_the_rest_for_the_next_run() {
    let stack = Stack::new().await;
    let relance = open_sms_relance(&stack, "acme").await;
    let due = (Utc::now() + Duration::days(3)).trunc_subsecs(0);
    let threads = seed_due(&stack, "acme", &relance, 20, due).await;

    let config = RunConfig {
        time_margin: StdDuration::from_secs(20),
        concurrency: 2,
        ..RunConfig::default()
    };
    let scheduler = stack.scheduler_with(stack.senders(), config);
    // Less time left than the margin: the run takes nothing new and says so.
    let short = scheduler
        .run(due, Some(Instant::now() + StdDuration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(
        (short.due, short.sent, short.left_for_next_run),
        (20, 0, 20),
        "{short:?}"
    );
    let next = scheduler
        .run(due + Duration::minutes(5), None)
        .await
        .unwrap();
    assert_eq!((next.due, next.sent), (20, 20), "{next:?}");
    let sms = sms_per_seeded_thread(&moto_data().await, &threads);
    assert!(sms.values().all(|&received| received == 1), "{sms:?}");
}

#[tokio::test]
async fn a_step_due_outside_the_window_waits_for_the_next_opening() {
    let stack = Stack::new().await;
    let api = stack.api("acme");
    let relance = open_sms_relance(&stack, "acme").await;
    let (phone, due) = attach_new_phone(&stack, &relance, "th-1").await;
    // The admin narrows the window after the attachment: 10:00–11:00 UTC, every day.
    api.put(
        "/settings",
        with(
            always_open(),
            json!({"window_start": "10:00", "window_end": "11:00"}),
        ),
    )
    .await;

    // 00:30 the day after the step fell due: later than the step whatever the time of
    // day the test runs, and outside the window.
    let night = (due.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 30, 0)
        .unwrap()
        .and_utc();
    let run = stack.tick(night).await;
    assert_eq!((run.sent, run.postponed), (0, 1), "{run:?}");
    let opening = time(&api.get("/threads/th-1/relance").await.body["next_relance_date"]);
    assert_eq!(
        opening,
        night.date_naive().and_hms_opt(10, 0, 0).unwrap().and_utc()
    );
    assert!(sms_to(&phone).await.is_empty());
    assert_eq!(stack.tick(opening).await.sent, 1);
}

/// Fails the next publishes, then hands over to the real topic.
struct FlakyEvents {
    real: Arc<dyn relance_shared::outbound::EventPublisher>,
    failures: Mutex<u32>,
}

impl relance_shared::outbound::EventPublisher for FlakyEvents {
    fn publish<'a>(
        &'a self,
        event: &'a relance_shared::domain::event::DomainEvent,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        let mut failures = self.failures.lock().unwrap();
        if *failures > 0 {
            *failures -= 1;
            return async {
                Err(SendError::Transient(
                    "event not published (InternalError)".into(),
                ))
            }
            .boxed();
        }
        self.real.publish(event)
    }
}

#[tokio::test]
async fn a_stop_announcement_that_fails_to_publish_is_retried_until_it_goes_out() {
    let stack = Stack::new().await;
    let api = stack.api("acme");
    let relance = open_sms_relance(&stack, "acme").await;
    let (phone, _) = attach_new_phone(&stack, &relance, "th-1").await;
    api.put(
        "/threads/th-1/ticket-status",
        json!({"ticket_status": "resolu"}),
    )
    .await;

    let flaky = Senders {
        events: Arc::new(FlakyEvents {
            real: stack.senders().events,
            failures: Mutex::new(1),
        }),
        ..stack.senders()
    };
    let scheduler = stack.scheduler_with(flaky, RunConfig::default());
    let now = Utc::now() + Duration::minutes(1);
    let first = scheduler.run(now, None).await.unwrap();
    assert_eq!(
        (first.stopped, first.events_failed, first.left_for_next_run),
        (0, 1, 1),
        "{first:?}"
    );
    assert!(stack.events().await.is_empty());
    let second = scheduler
        .run(now + Duration::minutes(5), None)
        .await
        .unwrap();
    assert_eq!(second.stopped, 1, "{second:?}");
    assert_eq!(stack.event_types().await, ["relance.stopped"]);
    assert_eq!(
        scheduler
            .run(now + Duration::minutes(10), None)
            .await
            .unwrap()
            .due,
        0
    );
    assert!(sms_to(&phone).await.is_empty());
}

#[tokio::test]
async fn events_the_topic_refuses_are_published_by_the_next_run() {
    let stack = Stack::new().await;
    let api = stack.api("acme");
    api.put("/settings", always_open()).await;
    let reminder = api.response("Rappel", "Bonjour {{customer_name}}").await;
    let end = api.response("Fin", "Nous clôturons votre demande.").await;
    let relance = api
        .relance(with(
            relance_body("Relance", &reminder),
            json!({"max_sends": 1, "end_response_id": end, "final_status": "ferme"}),
        ))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (phone, reminder_due) = attach_new_phone(&stack, &relance, "th-1").await;
    assert_eq!(stack.tick(reminder_due).await.sent, 1);

    // The end message goes out, but neither of its events does.
    let flaky = Senders {
        events: Arc::new(FlakyEvents {
            real: stack.senders().events,
            failures: Mutex::new(2),
        }),
        ..stack.senders()
    };
    let scheduler = stack.scheduler_with(flaky, RunConfig::default());
    let end_due = reminder_due + Duration::days(2);
    let run = scheduler.run(end_due, None).await.unwrap();
    assert_eq!(
        (
            run.sent,
            run.completed,
            run.events_failed,
            run.sent_events_lost
        ),
        (1, 1, 2, 0),
        "{run:?}"
    );
    assert_eq!(view(&stack).await["state"], "completed");
    assert_eq!(stack.event_types().await, ["relance.sent"]);

    // The next run publishes both, dated when they happened, exactly once.
    let next = scheduler
        .run(end_due + Duration::minutes(5), None)
        .await
        .unwrap();
    assert_eq!(
        (next.late_sent_events, next.late_end_events, next.sent),
        (1, 1, 0),
        "{next:?}"
    );
    let events = stack.events().await;
    assert_eq!(events.len(), 3, "{events:?}");
    let of_type = |kind: &str| {
        events
            .iter()
            .filter(|e| e["type"] == kind)
            .cloned()
            .collect::<Vec<_>>()
    };
    let completed = &of_type("relance.completed")[0];
    assert_eq!(completed["final_status"], "ferme");
    assert_eq!(time(&completed["occurred_at"]), end_due);
    let sent = of_type("relance.sent");
    assert_eq!(
        sent.iter()
            .map(|e| (e["step"].clone(), e["kind"].clone()))
            .collect::<Vec<_>>(),
        [(json!(1), json!("reminder")), (json!(2), json!("end"))]
    );
    assert_eq!(time(&sent[1]["occurred_at"]), end_due);
    assert_eq!(
        scheduler
            .run(end_due + Duration::minutes(10), None)
            .await
            .unwrap()
            .due,
        0
    );
    assert_eq!(stack.event_types().await.len(), 3);
    assert_eq!(
        sms_to(&phone).await.len(),
        2,
        "the reminder and the end message"
    );
}

#[tokio::test]
async fn a_sent_event_neither_the_topic_nor_the_table_takes_is_counted_lost() {
    let stack = Stack::new().await;
    let relance = open_sms_relance(&stack, "acme").await;
    let (phone, due) = attach_new_phone(&stack, &relance, "th-1").await;
    let (proxy, store, _) = proxied_clients(&stack).await;
    let flaky = Senders {
        events: Arc::new(FlakyEvents {
            real: stack.senders().events,
            failures: Mutex::new(1),
        }),
        ..stack.senders()
    };
    let scheduler = relance_scheduler::Scheduler::new(store, flaky, RunConfig::default());
    proxy.refuse_requests_containing("SENT_EVENT#");

    let run = scheduler.run(due, None).await.unwrap();
    // The SMS went out and its step is recorded; only the event is lost, and counted.
    assert_eq!(
        (run.sent, run.events_failed, run.sent_events_lost),
        (1, 1, 1),
        "{run:?}"
    );
    assert_eq!(sms_to(&phone).await.len(), 1);
    assert_eq!(view(&stack).await["messages_sent"], 1);
    assert!(stack.event_types().await.is_empty());
    let next = scheduler
        .run(due + Duration::minutes(5), None)
        .await
        .unwrap();
    assert_eq!((next.due, next.late_sent_events), (0, 0), "{next:?}");
}

#[tokio::test]
async fn a_run_killed_before_its_commit_has_already_announced_the_send() {
    let stack = Stack::new().await;
    let relance = open_sms_relance(&stack, "acme").await;
    let (phone, due) = attach_new_phone(&stack, &relance, "th-1").await;
    let published = Arc::new(Notify::new());
    let dying = stack.scheduler_with(
        Senders {
            events: Arc::new(DiesAfterPublish {
                real: stack.senders().events,
                published: published.clone(),
            }),
            ..stack.senders()
        },
        RunConfig::default(),
    );
    let run = tokio::spawn(async move { dying.run(due, None).await });
    published.notified().await;
    run.abort();

    // The backend heard of the SMS the customer got, though the step was never committed:
    // once the claim expires it is recorded as unknown, and neither resent nor announced twice.
    let after = stack.tick(due + Duration::hours(1)).await;
    assert_eq!((after.sent, after.unknown), (0, 1), "{after:?}");
    assert_eq!(sms_to(&phone).await.len(), 1);
    let events = stack.events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (&events[0]["type"], &events[0]["step"]),
        (&json!("relance.sent"), &json!(1))
    );
    assert_eq!(view(&stack).await["history"][0]["outcome"], "unknown");
}

/// Hands every request to moto and relays the answers, except for `Publish`: once moto
/// has the SMS, it hangs up without answering, so the sender never learns it went out.
/// Returns the URL to point an SNS client at.
async fn answer_losing_proxy() -> String {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let upstream = relance_tests::stack::test_endpoint();
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            let (client, upstream) = (client.clone(), upstream.clone());
            tokio::spawn(async move {
                while let Some((head, body)) = read_request(&mut socket).await {
                    let publish = String::from_utf8_lossy(&body).contains("Action=Publish&");
                    let mut forward = client.post(&upstream).body(body);
                    for line in head.lines().skip(1) {
                        if let Some((name, value)) = line.split_once(':')
                            && !["host", "content-length"].contains(&name.to_lowercase().as_str())
                        {
                            forward = forward.header(name, value.trim());
                        }
                    }
                    let answer = forward.send().await.unwrap();
                    if publish {
                        assert!(answer.status().is_success(), "moto took the SMS");
                        let _ = socket.shutdown().await;
                        return;
                    }
                    let status = answer.status().as_u16();
                    let bytes = answer.bytes().await.unwrap();
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: text/xml\r\ncontent-length: {}\r\n\r\n",
                        bytes.len()
                    );
                    if socket.write_all(head.as_bytes()).await.is_err()
                        || socket.write_all(&bytes).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// One HTTP/1.1 request (its head, and its body by `Content-Length`); `None` once the
/// client hangs up.
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut request = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head_len, body_len) = loop {
        let read = socket.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
        request.extend_from_slice(&chunk[..read]);
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&request[..end]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            break (end + 4, length);
        }
    };
    while request.len() < head_len + body_len {
        let read = socket.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
        request.extend_from_slice(&chunk[..read]);
    }
    let head = String::from_utf8_lossy(&request[..head_len]).into_owned();
    Some((head, request[head_len..head_len + body_len].to_vec()))
}

/// The real SMS sender, talking to SNS at `url`.
async fn sms_through(url: &str) -> Arc<dyn SmsSender> {
    let aws = relance_tests::stack::sdk_config(url).await;
    let client = aws_sdk_sns::Client::new(&aws);
    Arc::new(relance_shared::outbound::SnsSms::new(client, 0))
}

#[tokio::test]
async fn an_sms_whose_answer_is_lost_is_recorded_unknown_and_never_sent_again() {
    let stack = Stack::new().await;
    let relance = open_sms_relance(&stack, "acme").await;
    let (phone, due) = attach_new_phone(&stack, &relance, "th-1").await;

    let lossy = Senders {
        sms: sms_through(&answer_losing_proxy().await).await,
        ..stack.senders()
    };
    let run = stack
        .scheduler_with(lossy, RunConfig::default())
        .run(due, None)
        .await
        .unwrap();
    assert_eq!((run.sent, run.unknown, run.retried), (0, 1, 0), "{run:?}");
    assert_eq!(sms_to(&phone).await.len(), 1, "SNS did send it");

    let view = view(&stack).await;
    assert_eq!(view["history"][0]["outcome"], "unknown", "{view}");
    assert!(
        view["history"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("no answer from SNS"),
        "{view}"
    );
    assert_eq!(view["messages_sent"], 0);
    assert_eq!(time(&view["next_relance_date"]), due + Duration::days(2));
    // Later runs with a working SNS do not send that reminder again.
    assert_eq!(stack.tick(due + Duration::hours(1)).await.due, 0);
    assert_eq!(sms_to(&phone).await.len(), 1);
}

#[tokio::test]
async fn an_sms_to_an_unreachable_sns_is_retried_by_a_later_run() {
    let stack = Stack::new().await;
    let relance = open_sms_relance(&stack, "acme").await;
    let (phone, due) = attach_new_phone(&stack, &relance, "th-1").await;

    // A port nobody listens on: the connection is refused before anything is sent.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = Senders {
        sms: sms_through(&url).await,
        ..stack.senders()
    };
    let run = stack
        .scheduler_with(unreachable, RunConfig::default())
        .run(due, None)
        .await
        .unwrap();
    assert_eq!((run.sent, run.unknown, run.retried), (0, 0, 1), "{run:?}");
    assert_eq!(view(&stack).await["history"][0]["outcome"], "retry");

    let retry = stack.tick(due + Duration::minutes(5)).await;
    assert_eq!(retry.sent, 1, "{retry:?}");
    assert_eq!(sms_to(&phone).await.len(), 1);
}

#[tokio::test]
async fn a_customer_who_opted_out_fails_the_relance_without_an_sms() {
    let stack = Stack::new().await;
    let api = stack.api("acme");
    let relance = open_sms_relance(&stack, "acme").await;
    let (typed, phone) = harness::opted_out_phone();
    let attached = api
        .put(
            "/threads/th-1/relance",
            attach_sms(&relance, &typed, json!({"customer_name": "Léa"})),
        )
        .await;

    let run = stack.tick(time(&attached.body["next_relance_date"])).await;
    assert_eq!((run.sent, run.failed, run.retried), (0, 1, 0), "{run:?}");
    assert!(sms_to(&phone).await.is_empty(), "nothing published");
    let view = view(&stack).await;
    assert_eq!(
        (
            &view["state"],
            &view["state_reason"],
            &view["messages_sent"]
        ),
        (
            &json!("failed"),
            &json!("the customer opted out of SMS from this sender"),
            &json!(0)
        )
    );
    assert_eq!(stack.event_types().await, ["relance.failed"]);
}
