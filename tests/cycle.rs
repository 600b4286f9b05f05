//! Attaching relances to threads and running whole cycles: the real router, the real
//! scheduler, SNS SMS in moto and marketplace messages to the stub.

mod harness;

use chrono::Duration;
use harness::{Stack, always_open, attach_sms, new_phone, relance_body, sms_to, time, with};
use http::StatusCode;
use serde_json::{Value, json};

/// Responses and an SMS relance: 3 reminders every 2 days, then a closing message.
async fn sms_relance(api: &harness::Api) -> String {
    let reminder = api
        .response(
            "Rappel",
            "Bonjour {{customer_name}}, nous attendons votre retour sur {{order_id}}.",
        )
        .await;
    let closing = api
        .response(
            "Clôture",
            "Sans nouvelles, nous clôturons la demande {{order_id}}.",
        )
        .await;
    let relance = api
        .relance(with(
            relance_body("Relance SMS", &reminder),
            json!({"end_response_id": closing, "max_sends": 3, "allowed_channels": ["sms", "amazon"], "final_status": "resolu"}),
        ))
        .await;
    relance["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_sms_cycle_runs_from_attach_to_final_status() {
    let stack = Stack::new().await;
    let api = stack.api("acme");
    let relance = sms_relance(&api).await;
    let (typed, phone) = new_phone();
    let context = json!({"customer_name": "Léa", "order_id": "A-42"});

    let attached = api
        .put(
            "/threads/th-1/relance",
            attach_sms(&relance, &typed, context),
        )
        .await;
    assert_eq!(attached.status, StatusCode::CREATED, "{}", attached.body);
    assert_eq!(attached.body["recipient"]["phone"], phone.as_str());
    assert_eq!(attached.body["state"], "active");
    assert_eq!(attached.body["messages_sent"], 0);
    let attached_at = time(&attached.body["attached_at"]);

    let reminder = "Bonjour Léa, nous attendons votre retour sur A-42.";
    let mut sent_at = Vec::new();
    for step in 1..=3u64 {
        let view = api.get("/threads/th-1/relance").await.body;
        let due = time(&view["next_relance_date"]);
        // Each reminder is at least two days after the previous one, inside the default window.
        let previous = sent_at.last().copied().unwrap_or(attached_at);
        assert!(
            due >= previous + Duration::days(2) - Duration::hours(1),
            "step {step} due {due}, previous {previous}"
        );

        // A minute early, nothing goes out.
        let early = stack.tick(due - Duration::minutes(1)).await;
        assert_eq!(early.due, 0);
        assert_eq!(sms_to(&phone).await.len() as u64, step - 1);

        let run = stack.tick(due).await;
        assert_eq!((run.due, run.sent), (1, 1), "step {step}: {run:?}");
        assert_eq!(
            sms_to(&phone).await.last().map(String::as_str),
            Some(reminder)
        );
        let view = api.get("/threads/th-1/relance").await.body;
        assert_eq!(view["messages_sent"], step);
        sent_at.push(due);
    }

    // The end of the cycle: the closing message, the final status, and the events.
    let view = api.get("/threads/th-1/relance").await.body;
    let end = time(&view["next_relance_date"]);
    let run = stack.tick(end).await;
    assert_eq!((run.sent, run.completed), (1, 1), "{run:?}");
    let texts = sms_to(&phone).await;
    assert_eq!(
        texts,
        [
            reminder,
            reminder,
            reminder,
            "Sans nouvelles, nous clôturons la demande A-42."
        ]
    );

    let view = api.get("/threads/th-1/relance").await.body;
    assert_eq!(view["state"], "completed");
    assert_eq!(view["final_status"], "resolu");
    assert_eq!(view["next_relance_date"], Value::Null);
    assert_eq!(view["messages_sent"], 4);
    let kinds: Vec<(u64, &str, &str)> = view["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["step"].as_u64().unwrap(),
                h["kind"].as_str().unwrap(),
                h["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (1, "reminder", "sent"),
            (2, "reminder", "sent"),
            (3, "reminder", "sent"),
            (4, "end", "sent")
        ]
    );

    let events = stack.events().await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "relance.sent",
            "relance.sent",
            "relance.sent",
            "relance.sent",
            "relance.completed"
        ]
    );
    let completed = events.last().unwrap();
    assert_eq!(completed["final_status"], "resolu");
    assert_eq!(completed["ticket_id"], "T-1");
    assert_eq!(completed["thread_id"], "th-1");
    assert_eq!(completed["tenant_id"], "acme");

    // Nothing more is ever due for this thread.
    assert_eq!(stack.tick(end + Duration::days(30)).await.due, 0);
    assert_eq!(sms_to(&phone).await.len(), 4);
}

#[tokio::test]
async fn a_marketplace_cycle_posts_each_message_once_with_its_key() {
    let stack = Stack::new().await;
    let api = stack.api("acme");
    api.put("/settings", always_open()).await;
    let reminder = api
        .response("Rappel", "Hello {{customer_name}}, any news?")
        .await;
    let relance = api
        .relance(with(
            relance_body("Relance Amazon", &reminder),
            json!({"send_type": "channel", "max_sends": 2, "frequency_days": 3, "allowed_channels": ["amazon"], "final_status": "clos"}),
        ))
        .await;
    let attach = json!({
        "relance_id": relance["id"], "ticket_id": "T-9", "ticket_status": "attente_client", "channel": "amazon",
        "recipient": {"conversation_id": "amz-conv-1"}, "context": {"customer_name": "Sam"}
    });
    let attached = api.put("/threads/th-amz/relance", attach).await;
    assert_eq!(attached.status, StatusCode::CREATED, "{}", attached.body);
    let attached_at = time(&attached.body["attached_at"]);
    assert_eq!(
        time(&attached.body["next_relance_date"]),
        attached_at + Duration::days(3)
    );

    for _ in 0..3 {
        let view = api.get("/threads/th-amz/relance").await.body;
        stack.tick(time(&view["next_relance_date"])).await;
    }
    let view = api.get("/threads/th-amz/relance").await.body;
    assert_eq!(view["state"], "completed");
    assert_eq!(
        view["messages_sent"], 2,
        "two reminders; no end response configured"
    );

    let received = stack.stub.received();
    assert_eq!(received.len(), 2);
    for message in &received {
        assert_eq!(message.status, 202, "the stub accepted the bearer token");
        assert_eq!(
            message.body,
            json!({"tenant_id": "acme", "channel": "amazon", "conversation_id": "amz-conv-1", "thread_id": "th-amz",
                   "ticket_id": "T-9", "body": "Hello Sam, any news?"})
        );
    }
    let keys: std::collections::HashSet<_> = received
        .iter()
        .map(|m| m.idempotency_key.clone().unwrap())
        .collect();
    assert_eq!(keys.len(), 2, "each step has its own idempotency key");
    assert_eq!(
        stack.event_types().await,
        ["relance.sent", "relance.sent", "relance.completed"]
    );
}

#[tokio::test]
async fn refused_attachments_store_nothing_and_name_the_reason() {
    let stack = Stack::new().await;
    let api = stack.api("acme");
    let relance = sms_relance(&api).await;
    let context = json!({"customer_name": "Léa", "order_id": "A-42"});
    let good = attach_sms(&relance, "06 12 34 56 78", context.clone());

    // Each case: the good request with one change, the field named, the reason.
    let case = |patch: Value, field, code| (with(good.clone(), patch), field, code);
    let cases: Vec<(Value, &str, &str)> = vec![
        case(
            json!({"ticket_status": "ouvert"}),
            "ticket_status",
            "not_waiting",
        ),
        case(json!({"channel": "fnac"}), "channel", "channel_not_allowed"),
        case(json!({"channel": "FNAC!"}), "channel", "invalid_channel"),
        case(
            json!({"recipient": {"phone": "01 23 45 67 89"}}),
            "recipient.phone",
            "invalid_phone",
        ),
        case(
            json!({"recipient": {"phone": "12"}}),
            "recipient.phone",
            "invalid_phone",
        ),
        case(
            json!({"recipient": {"conversation_id": "c-1"}}),
            "recipient",
            "recipient_mismatch",
        ),
        case(
            json!({"recipient": {"fax": "1"}}),
            "recipient.fax",
            "unknown_field",
        ),
        case(
            json!({"context": {"customer_name": "Léa"}}),
            "context.order_id",
            "missing_placeholder",
        ),
        case(
            json!({"context": {"customer_name": "x".repeat(1_000), "order_id": "y".repeat(700)}}),
            "context",
            "message_too_long",
        ),
        case(
            json!({"context": {"order_id": 42, "customer_name": "x"}}),
            "context.order_id",
            "invalid_type",
        ),
        case(
            json!({"relance_id": "0191d3a0-0000-7000-8000-00000000000f"}),
            "relance_id",
            "unknown_relance",
        ),
        case(
            json!({"relance_id": "nope"}),
            "relance_id",
            "unknown_relance",
        ),
        case(json!({"ticket_id": ""}), "ticket_id", "invalid_id"),
    ];
    for (body, field, code) in cases {
        let reply = api.put("/threads/th-1/relance", body).await;
        reply.assert_rejects(422, field);
        assert_eq!(reply.error_code(), code, "{}", reply.body);
    }
    let bad_thread = api.put("/threads/th%201/relance", good.clone()).await;
    bad_thread.assert_rejects(422, "thread_id");
    assert_eq!(
        api.get("/threads/th-1/relance").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        stack
            .tick(chrono::Utc::now() + Duration::days(400))
            .await
            .due,
        0,
        "nothing was scheduled"
    );
}

#[tokio::test]
async fn attaching_the_same_relance_changes_nothing_and_another_restarts_the_cycle() {
    let stack = Stack::new().await;
    let api = stack.api("acme");
    api.put("/settings", always_open()).await;
    let relance = sms_relance(&api).await;
    let (typed, phone) = new_phone();
    let context = json!({"customer_name": "Léa", "order_id": "A-42"});
    let first = api
        .put(
            "/threads/th-1/relance",
            attach_sms(&relance, &typed, context.clone()),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    stack.tick(time(&first.body["next_relance_date"])).await;
    assert_eq!(sms_to(&phone).await.len(), 1);

    let again = api
        .put(
            "/threads/th-1/relance",
            attach_sms(&relance, &typed, context.clone()),
        )
        .await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "the same relance again is a no-op"
    );
    assert_eq!(again.body["messages_sent"], 1);
    assert_eq!(again.body["attached_at"], first.body["attached_at"]);

    let other_response = api
        .response("Autre", "Autre rappel {{customer_name}}")
        .await;
    let other = api
        .relance(with(
            relance_body("Autre relance", &other_response),
            json!({"frequency_days": 5}),
        ))
        .await;
    let replaced = api
        .put(
            "/threads/th-1/relance",
            attach_sms(other["id"].as_str().unwrap(), &typed, context),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::CREATED);
    assert_eq!(replaced.body["relance_name"], "Autre relance");
    assert_eq!(replaced.body["messages_sent"], 0);
    assert_eq!(replaced.body["history"], json!([]));
    let due = time(&replaced.body["next_relance_date"]);
    assert_eq!(due, time(&replaced.body["attached_at"]) + Duration::days(5));
    // The old cycle's next step never goes out.
    assert_eq!(stack.tick(due - Duration::minutes(1)).await.sent, 0);
    assert_eq!(stack.tick(due).await.sent, 1);
    assert_eq!(
        sms_to(&phone).await,
        [
            "Bonjour Léa, nous attendons votre retour sur A-42.",
            "Autre rappel Léa"
        ]
    );
}

#[tokio::test]
async fn a_thread_relance_is_a_snapshot() {
    let stack = Stack::new().await;
    let api = stack.api("acme");
    api.put("/settings", always_open()).await;
    let reminder = api
        .response("Rappel", "Version 1 pour {{customer_name}}")
        .await;
    let relance = api.relance(relance_body("Relance", &reminder)).await;
    let id = relance["id"].as_str().unwrap();
    let (typed, phone) = new_phone();
    let attached = api
        .put(
            "/threads/th-1/relance",
            attach_sms(id, &typed, json!({"customer_name": "Léa"})),
        )
        .await;

    // Later edits of the response and the relance apply to later attachments only.
    api.put(
        &format!("/responses/{reminder}"),
        json!({"title": "Rappel", "body": "Version 2 {{customer_name}}"}),
    )
    .await;
    api.put(
        &format!("/relances/{id}"),
        with(
            relance_body("Relance", &reminder),
            json!({"frequency_days": 30}),
        ),
    )
    .await;
    assert_eq!(
        api.delete(&format!("/relances/{id}")).await.status,
        StatusCode::NO_CONTENT
    );

    let view = api.get("/threads/th-1/relance").await.body;
    assert_eq!(view["frequency_days"], 2);
    stack.tick(time(&attached.body["next_relance_date"])).await;
    assert_eq!(sms_to(&phone).await, ["Version 1 pour Léa"]);
}

#[tokio::test]
async fn leaving_attente_client_stops_the_cycle_and_announces_it() {
    let stack = Stack::new().await;
    let api = stack.api("acme");
    api.put("/settings", always_open()).await;
    let relance = sms_relance(&api).await;
    let (typed, phone) = new_phone();
    let attached = api
        .put(
            "/threads/th-1/relance",
            attach_sms(
                &relance,
                &typed,
                json!({"customer_name": "Léa", "order_id": "A"}),
            ),
        )
        .await;
    let first = time(&attached.body["next_relance_date"]);
    stack.tick(first).await;

    let unchanged = api
        .put(
            "/threads/th-1/ticket-status",
            json!({"ticket_status": "attente_client"}),
        )
        .await;
    assert_eq!(unchanged.body["state"], "active");
    let stopped = api
        .put(
            "/threads/th-1/ticket-status",
            json!({"ticket_status": "en_cours"}),
        )
        .await;
    assert_eq!(stopped.status, StatusCode::OK, "{}", stopped.body);
    assert_eq!(stopped.body["state"], "stopped");
    assert_eq!(
        stopped.body["state_reason"],
        "ticket status changed to en_cours"
    );
    assert_eq!(stopped.body["next_relance_date"], Value::Null);

    // The next run announces the stop once; nothing is ever sent again.
    let run = stack.tick(first + Duration::hours(1)).await;
    assert_eq!((run.stopped, run.sent), (1, 0), "{run:?}");
    let later = stack.tick(first + Duration::days(60)).await;
    assert_eq!(later.due, 0, "the stopped thread left the due index");
    assert_eq!(sms_to(&phone).await.len(), 1);
    let events = stack.events().await;
    let stop = events.last().unwrap();
    assert_eq!(stop["type"], "relance.stopped");
    assert_eq!(stop["state"], "stopped");
    assert_eq!(
        events
            .iter()
            .filter(|e| e["type"] == "relance.stopped")
            .count(),
        1
    );

    // A stopped relance stays stopped.
    let again = api
        .put(
            "/threads/th-1/ticket-status",
            json!({"ticket_status": "ferme"}),
        )
        .await;
    assert_eq!(
        again.body["state_reason"],
        "ticket status changed to en_cours"
    );
    api.put("/threads/th-1/ticket-status", json!({"ticket_status": ""}))
        .await
        .assert_rejects(422, "ticket_status");
    assert_eq!(
        api.put(
            "/threads/unknown/ticket-status",
            json!({"ticket_status": "ferme"})
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_agent_cancels_a_relance() {
    let stack = Stack::new().await;
    let api = stack.api("acme");
    api.put("/settings", always_open()).await;
    let relance = sms_relance(&api).await;
    let (typed, phone) = new_phone();
    let attached = api
        .put(
            "/threads/th-1/relance",
            attach_sms(
                &relance,
                &typed,
                json!({"customer_name": "Léa", "order_id": "A"}),
            ),
        )
        .await;
    let cancelled = api.delete("/threads/th-1/relance").await;
    assert_eq!(cancelled.status, StatusCode::OK);
    assert_eq!(cancelled.body["state"], "cancelled");
    assert_eq!(
        api.delete("/threads/th-1/relance").await.body["state"],
        "cancelled",
        "cancelling again changes nothing"
    );

    let run = stack.tick(time(&attached.body["next_relance_date"])).await;
    assert_eq!((run.sent, run.stopped), (0, 1));
    assert!(sms_to(&phone).await.is_empty());
    let events = stack.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0]["type"].as_str(), events[0]["state"].as_str()),
        (Some("relance.stopped"), Some("cancelled"))
    );
    assert_eq!(
        api.delete("/threads/never-attached/relance").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_end_of_a_replaced_cycle_is_announced_too() {
    let stack = Stack::new().await;
    let api = stack.api("acme");
    api.put("/settings", always_open()).await;
    let first = sms_relance(&api).await;
    let reminder = api.response("Autre", "Bonjour {{customer_name}}").await;
    let second = api.relance(relance_body("Relance courte", &reminder)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (typed, phone) = new_phone();
    let context = json!({"customer_name": "Léa", "order_id": "A"});
    let attach = |relance: &str| attach_sms(relance, &typed, context.clone());

    // The customer answers, then the ticket waits again: the agent attaches at once,
    // before any scheduler run announced the stop.
    api.put("/threads/th-1/relance", attach(&first)).await;
    api.put(
        "/threads/th-1/ticket-status",
        json!({"ticket_status": "en_cours"}),
    )
    .await;
    let again = api.put("/threads/th-1/relance", attach(&first)).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    // Then another relance replaces the running one.
    let replaced = api.put("/threads/th-1/relance", attach(&second)).await;
    assert_eq!(replaced.status, StatusCode::CREATED, "{}", replaced.body);

    let run = stack.tick(chrono::Utc::now() + Duration::minutes(1)).await;
    assert_eq!((run.stopped, run.sent), (2, 0), "{run:?}");
    let mut ends: Vec<_> = stack
        .events()
        .await
        .iter()
        .map(|e| {
            (
                e["cycle"].as_u64().unwrap(),
                e["type"].clone(),
                e["state"].clone(),
                e["reason"].clone(),
            )
        })
        .collect();
    ends.sort_by_key(|e| e.0);
    assert_eq!(
        ends,
        [
            (
                1,
                json!("relance.stopped"),
                json!("stopped"),
                json!("ticket status changed to en_cours")
            ),
            (
                2,
                json!("relance.stopped"),
                json!("cancelled"),
                json!("replaced by relance \"Relance courte\"")
            ),
        ]
    );
    let panel = api.get("/threads/th-1/relance").await.body;
    assert_eq!(
        (&panel["relance_name"], &panel["state"]),
        (&json!("Relance courte"), &json!("active"))
    );
    assert!(sms_to(&phone).await.is_empty());
    assert_eq!(
        stack
            .tick(chrono::Utc::now() + Duration::minutes(2))
            .await
            .due,
        0
    );
    let (problems, _) = relance_tests::consistency::check(&stack.world.dynamo, &stack.world.table)
        .await
        .unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

#[tokio::test]
async fn thread_relances_are_invisible_to_other_tenants() {
    let stack = Stack::new().await;
    let a = stack.api("tenant-a");
    let b = stack.api("tenant-b");
    let relance = sms_relance(&a).await;
    let context = json!({"customer_name": "Léa", "order_id": "A"});
    a.put(
        "/threads/th-1/relance",
        attach_sms(&relance, "06 12 34 56 78", context.clone()),
    )
    .await;
    let before = a.get("/threads/th-1/relance").await.body;

    assert_eq!(
        b.get("/threads/th-1/relance").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.delete("/threads/th-1/relance").await.status,
        StatusCode::NOT_FOUND
    );
    let status = b
        .put(
            "/threads/th-1/ticket-status",
            json!({"ticket_status": "ferme"}),
        )
        .await;
    assert_eq!(status.status, StatusCode::NOT_FOUND);
    // B cannot use A's relance, even knowing its id.
    b.put(
        "/threads/th-1/relance",
        attach_sms(&relance, "06 12 34 56 78", context),
    )
    .await
    .assert_rejects(422, "relance_id");
    assert_eq!(a.get("/threads/th-1/relance").await.body, before);
}
