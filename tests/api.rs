//! The configuration API end to end: the real router, the real AWS SDK calls, moto.

mod harness;

use harness::{Api, World, relance_body, with};
use http::StatusCode;
use serde_json::{Value, json};

/// Everything a tenant has, to prove that a refused request changed nothing.
async fn snapshot(api: &Api) -> Value {
    json!({
        "relances": api.get("/relances?limit=100").await.body,
        "responses": api.get("/responses?limit=100").await.body,
        "settings": api.get("/settings").await.body,
    })
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn relance_lifecycle_create_list_edit_delete() {
    let world = World::new().await;
    let api = world.api("acme");
    let reminder = api
        .response(
            "Rappel",
            "Bonjour {{customer_name}}, nous attendons votre réponse.",
        )
        .await;
    let closing = api
        .response(
            "Clôture",
            "Sans nouvelles, nous clôturons le dossier {{order_id}}.",
        )
        .await;

    let body = json!({
        "name": "  Relance colis ",
        "frequency_days": 2,
        "max_sends": 3,
        "allowed_channels": ["amazon", "cdiscount"],
        "default_response_id": reminder,
        "end_response_id": closing,
        "final_status": "resolu",
        "send_type": "channel"
    });
    let created = api.relance(body.clone()).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["name"], "Relance colis");
    assert_eq!(created["version"], 1);
    let sms = api
        .relance(with(
            body.clone(),
            json!({"name": "Relance SMS", "allowed_channels": ["sms"], "send_type": "sms"}),
        ))
        .await;

    let read = api.get(&format!("/relances/{id}")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body, created);

    // The thread panel's dropdown: only relances allowed on the thread's channel.
    assert_eq!(
        ids(&api.get("/relances?channel=amazon").await.body),
        std::slice::from_ref(&id)
    );
    assert_eq!(
        ids(&api.get("/relances?channel=sms").await.body),
        [sms["id"].as_str().unwrap()]
    );
    assert!(ids(&api.get("/relances?channel=fnac").await.body).is_empty());
    assert_eq!(ids(&api.get("/relances").await.body).len(), 2);

    let edited = api
        .put(
            &format!("/relances/{id}"),
            with(body.clone(), json!({"frequency_days": 5, "version": 1})),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    assert_eq!(edited.body["frequency_days"], 5);
    assert_eq!(edited.body["version"], 2);
    assert_eq!(edited.body["created_at"], created["created_at"]);

    // A client that edits what it read before someone else's change is told so.
    let stale = api
        .put(
            &format!("/relances/{id}"),
            with(body.clone(), json!({"max_sends": 9, "version": 1})),
        )
        .await;
    stale.assert_rejects(409, "version");
    assert_eq!(
        api.get(&format!("/relances/{id}")).await.body["max_sends"],
        3
    );

    let bad = api
        .put(
            &format!("/relances/{id}"),
            with(body.clone(), json!({"frequency_days": 0})),
        )
        .await;
    bad.assert_rejects(422, "frequency_days");

    assert_eq!(
        api.delete(&format!("/relances/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.get(&format!("/relances/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.delete(&format!("/relances/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        ids(&api.get("/relances").await.body),
        [sms["id"].as_str().unwrap()]
    );
}

#[tokio::test]
async fn names_are_unique_per_tenant_whatever_the_case() {
    let world = World::new().await;
    let api = world.api("acme");
    let response = api.response("Rappel", "Bonjour").await;
    let first = api.relance(relance_body("Relance colis", &response)).await;
    let second = api.relance(relance_body("Autre", &response)).await;

    api.post("/relances", relance_body("RELANCE Colis", &response))
        .await
        .assert_rejects(409, "name");
    let second_id = second["id"].as_str().unwrap();
    api.put(
        &format!("/relances/{second_id}"),
        relance_body("relance colis", &response),
    )
    .await
    .assert_rejects(409, "name");

    // Renaming a relance to its own name in another case is fine, and frees nothing.
    let first_id = first["id"].as_str().unwrap();
    let renamed = api
        .put(
            &format!("/relances/{first_id}"),
            relance_body("Relance Colis", &response),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);

    // Another tenant may use the same name; a deleted relance's name is free again.
    world
        .api("other")
        .relance(relance_body(
            "Relance colis",
            &world.api("other").response("R", "x").await,
        ))
        .await;
    assert_eq!(
        api.delete(&format!("/relances/{first_id}")).await.status,
        StatusCode::NO_CONTENT
    );
    api.relance(relance_body("relance colis", &response)).await;
}

#[tokio::test]
async fn relances_only_use_responses_of_their_own_tenant() {
    let world = World::new().await;
    let api = world.api("acme");
    let foreign = world.api("other").response("Rappel", "Bonjour").await;
    let own = api.response("Rappel", "Bonjour").await;
    let before = snapshot(&api).await;

    api.post("/relances", relance_body("R", &foreign))
        .await
        .assert_rejects(422, "default_response_id");
    api.post(
        "/relances",
        relance_body("R", "0191d3a0-0000-7000-8000-000000000001"),
    )
    .await
    .assert_rejects(422, "default_response_id");
    api.post(
        "/relances",
        with(relance_body("R", &own), json!({"end_response_id": foreign})),
    )
    .await
    .assert_rejects(422, "end_response_id");
    assert_eq!(
        snapshot(&api).await,
        before,
        "a refused relance must not be stored"
    );
}

#[tokio::test]
async fn a_response_in_use_cannot_be_deleted() {
    let world = World::new().await;
    let api = world.api("acme");
    let used = api.response("Rappel", "Bonjour {{customer_name}}").await;
    let spare = api.response("Autre", "Bonjour").await;
    let relance = api.relance(relance_body("Relance colis", &used)).await;
    let id = relance["id"].as_str().unwrap();

    let refused = api.delete(&format!("/responses/{used}")).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.error_code(), "response_in_use");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Relance colis"),
        "{}",
        refused.body
    );
    assert_eq!(
        api.get(&format!("/responses/{used}")).await.status,
        StatusCode::OK
    );

    // Pointing the relance at another response releases the first one.
    let moved = api
        .put(
            &format!("/relances/{id}"),
            relance_body("Relance colis", &spare),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    assert_eq!(
        api.delete(&format!("/responses/{used}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.delete(&format!("/responses/{spare}"))
            .await
            .error_code(),
        "response_in_use"
    );
    assert_eq!(
        api.delete(&format!("/relances/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.delete(&format!("/responses/{spare}")).await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn responses_crud_and_placeholders() {
    let world = World::new().await;
    let api = world.api("acme");
    let created = api
        .post(
            "/responses",
            json!({"title": "Rappel", "body": "Bonjour {{customer_name}}, commande {{order_id}}"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(
        created.body["placeholders"],
        json!(["customer_name", "order_id"])
    );
    let id = created.body["id"].as_str().unwrap();

    let replaced = api
        .put(
            &format!("/responses/{id}"),
            json!({"title": "Rappel 2", "body": "Merci", "version": 1}),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    assert_eq!(replaced.body["version"], 2);
    assert_eq!(replaced.body["placeholders"], json!([]));
    assert_eq!(
        api.get(&format!("/responses/{id}")).await.body,
        replaced.body
    );
    api.put(
        &format!("/responses/{id}"),
        json!({"title": "x", "body": "y", "version": 1}),
    )
    .await
    .assert_rejects(409, "version");

    api.post("/responses", json!({"title": "t", "body": "Bonjour {{nom"}))
        .await
        .assert_rejects(422, "body");
    api.post(
        "/responses",
        json!({"title": "t", "body": "Bonjour {{Nom}}"}),
    )
    .await
    .assert_rejects(422, "body");
    api.post("/responses", json!({"title": "", "body": "x"}))
        .await
        .assert_rejects(422, "title");
    api.post(
        "/responses",
        json!({"title": "t", "body": "x".repeat(5_001)}),
    )
    .await
    .assert_rejects(422, "body");
}

#[tokio::test]
async fn lists_page_through_everything_once() {
    let world = World::new().await;
    let api = world.api("acme");
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(api.response(&format!("R{i}"), "x").await);
    }
    let mut seen = Vec::new();
    let mut path = "/responses?limit=2".to_owned();
    loop {
        let page = api.get(&path).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body["items"].as_array().unwrap().len() <= 2);
        seen.extend(ids(&page.body));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/responses?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, created, "every response once, in creation order");

    api.get("/responses?limit=0")
        .await
        .assert_rejects(422, "limit");
    api.get("/responses?limit=101")
        .await
        .assert_rejects(422, "limit");
    api.get("/responses?limit=abc")
        .await
        .assert_rejects(422, "limit");
    api.get("/responses?cursor=not-a-cursor!")
        .await
        .assert_rejects(422, "cursor");
    // A cursor of another list cannot be replayed here.
    let relance_cursor = "UkVMQU5DRSN4"; // base64url("RELANCE#x")
    api.get(&format!("/responses?cursor={relance_cursor}"))
        .await
        .assert_rejects(422, "cursor");
    api.get("/relances?channel=Amazon")
        .await
        .assert_rejects(422, "channel");
}

#[tokio::test]
async fn settings_default_then_replace() {
    let world = World::new().await;
    let api = world.api("acme");
    let defaults = api.get("/settings").await;
    assert_eq!(
        defaults.body,
        json!({"timezone": "Europe/Paris", "window_start": "09:00", "window_end": "19:00",
               "days": ["mon", "tue", "wed", "thu", "fri", "sat"], "holidays": []})
    );
    let wanted = json!({"timezone": "America/Montreal", "window_start": "08:30", "window_end": "17:00",
                        "days": ["fri", "mon"], "holidays": ["2026-12-25", "2026-12-24"]});
    let saved = api.put("/settings", wanted).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    assert_eq!(saved.body["days"], json!(["mon", "fri"]));
    assert_eq!(saved.body["holidays"], json!(["2026-12-24", "2026-12-25"]));
    assert_eq!(api.get("/settings").await.body, saved.body);

    let before = snapshot(&api).await;
    for (patch, field) in [
        (json!({"timezone": "Europe/Lutece"}), "timezone"),
        (json!({"window_start": "25:00"}), "window_start"),
        (json!({"window_end": "08:00"}), "window_end"),
        (json!({"window_end": "24:30"}), "window_end"),
        (json!({"days": []}), "days"),
        (json!({"days": ["mon", "someday"]}), "days[1]"),
        (json!({"holidays": ["25/12/2026"]}), "holidays[0]"),
    ] {
        api.put("/settings", with(saved.body.clone(), patch))
            .await
            .assert_rejects(422, field);
    }
    assert_eq!(snapshot(&api).await, before);
}

#[tokio::test]
async fn every_bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let world = World::new().await;
    let api = world.api("acme");
    let response = api.response("Rappel", "Bonjour {{customer_name}}").await;
    let relance = api.relance(relance_body("Relance colis", &response)).await;
    let id = relance["id"].as_str().unwrap().to_owned();
    let good = relance_body("Nouvelle", &response);
    let before = snapshot(&api).await;

    let field_cases: Vec<(Value, &str)> = vec![
        (
            with(good.clone(), json!({"frequency_days": "2"})),
            "frequency_days",
        ),
        (
            with(good.clone(), json!({"frequency_days": 1.5})),
            "frequency_days",
        ),
        (
            with(good.clone(), json!({"frequency_days": -1})),
            "frequency_days",
        ),
        (
            with(good.clone(), json!({"frequency_days": 366})),
            "frequency_days",
        ),
        (
            with(good.clone(), json!({"frequency_days": 0})),
            "frequency_days",
        ),
        (with(good.clone(), json!({"max_sends": 51})), "max_sends"),
        (with(good.clone(), json!({"max_sends": 1e12})), "max_sends"),
        (with(good.clone(), json!({"name": ""})), "name"),
        (with(good.clone(), json!({"name": "   "})), "name"),
        (with(good.clone(), json!({"name": "n".repeat(101)})), "name"),
        (with(good.clone(), json!({"name": null})), "name"),
        (
            with(good.clone(), json!({"allowed_channels": []})),
            "allowed_channels",
        ),
        (
            with(
                good.clone(),
                json!({"allowed_channels": ["amazon", "Ama zon"]}),
            ),
            "allowed_channels[1]",
        ),
        (
            with(good.clone(), json!({"allowed_channels": "amazon"})),
            "allowed_channels",
        ),
        (
            with(good.clone(), json!({"send_type": "pigeon"})),
            "send_type",
        ),
        (
            with(good.clone(), json!({"final_status": "attente_client"})),
            "final_status",
        ),
        (
            with(good.clone(), json!({"final_status": "s".repeat(65)})),
            "final_status",
        ),
        (
            with(good.clone(), json!({"default_response_id": "nope"})),
            "default_response_id",
        ),
        (
            with(good.clone(), json!({"default_response_id": 42})),
            "default_response_id",
        ),
        (with(good.clone(), json!({"colour": "red"})), "colour"),
        (json!({"name": "x"}), "frequency_days"),
    ];
    for (body, field) in field_cases {
        api.post("/relances", body.clone())
            .await
            .assert_rejects(422, field);
        api.put(&format!("/relances/{id}"), body)
            .await
            .assert_rejects(422, field);
    }

    // Not JSON, or not an object of the right shape.
    for raw in ["{", "{\"name\": }", "[1, 2", "{} {}", "nul"] {
        let reply = api
            .raw(
                "POST",
                "/relances",
                Some(raw.to_owned()),
                Some("application/json"),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{raw}: {}",
            reply.body
        );
        assert_eq!(reply.error_code(), "malformed_json");
    }
    let empty = api
        .raw("POST", "/relances", None, Some("application/json"))
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    let array = api
        .raw(
            "POST",
            "/relances",
            Some("[]".into()),
            Some("application/json"),
        )
        .await;
    assert_eq!(array.status, StatusCode::UNPROCESSABLE_ENTITY);
    let form = api
        .raw(
            "POST",
            "/relances",
            Some("name=x".into()),
            Some("application/x-www-form-urlencoded"),
        )
        .await;
    assert_eq!(form.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(form.error_code(), "unsupported_media_type");

    // Bodies over 64 KiB.
    let huge = with(good.clone(), json!({"name": "x".repeat(70 * 1024)}));
    let too_large = api.post("/relances", huge).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_large.error_code(), "payload_too_large");

    // Unknown ids, routes and methods.
    for path in [
        "/relances/0191d3a0-0000-7000-8000-000000000009",
        "/relances/not-an-id",
        "/responses/%FF",
    ] {
        let reply = api.get(path).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.error_code(), "not_found");
    }
    let missing = api
        .put(
            "/relances/0191d3a0-0000-7000-8000-000000000009",
            good.clone(),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let no_route = api.get("/relance").await;
    assert_eq!(
        (no_route.status, no_route.error_code()),
        (StatusCode::NOT_FOUND, "no_route")
    );
    let wrong_method = api.send("PATCH", "/relances", Some(good.clone())).await;
    assert_eq!(
        (wrong_method.status, wrong_method.error_code()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    let post_on_item = api.post(&format!("/relances/{id}"), good.clone()).await;
    assert_eq!(post_on_item.status, StatusCode::METHOD_NOT_ALLOWED);

    assert_eq!(
        snapshot(&api).await,
        before,
        "refused requests must change nothing"
    );
}

#[tokio::test]
async fn the_tenant_comes_only_from_verified_claims() {
    let world = World::new().await;
    world.api("acme").response("Rappel", "Bonjour").await;

    let anonymous = world.api_with(None, false);
    let reply = anonymous.get("/responses").await;
    assert_eq!(
        (reply.status, reply.error_code()),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );

    // Without dev auth the header is ignored.
    let spoof = world.api_with(None, false).header("X-Tenant-Id", "acme");
    assert_eq!(
        spoof.get("/responses").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        spoof
            .post("/responses", json!({"title": "t", "body": "b"}))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    // With dev auth a request without claims names its tenant...
    let dev = world.api_with(None, true).header("X-Tenant-Id", "acme");
    assert_eq!(
        dev.get("/responses").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // ...but verified claims always win over the header.
    let other = world
        .api_with(Some("other"), true)
        .header("X-Tenant-Id", "acme");
    assert!(
        other.get("/responses").await.body["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn one_tenant_never_sees_or_changes_another_tenants_data() {
    let world = World::new().await;
    let a = world.api("tenant-a");
    let b = world.api("tenant-b");
    let response = a.response("Rappel", "Bonjour {{customer_name}}").await;
    let relance = a.relance(relance_body("Relance colis", &response)).await;
    let relance_id = relance["id"].as_str().unwrap();
    a.put("/settings", json!({"timezone": "Europe/Brussels", "window_start": "10:00", "window_end": "12:00", "days": ["mon"]}))
        .await;
    let before = snapshot(&a).await;

    assert!(ids(&b.get("/relances").await.body).is_empty());
    assert!(ids(&b.get("/relances?channel=amazon").await.body).is_empty());
    assert!(ids(&b.get("/responses").await.body).is_empty());
    assert_eq!(b.get("/settings").await.body["timezone"], "Europe/Paris");
    for path in [
        format!("/relances/{relance_id}"),
        format!("/responses/{response}"),
    ] {
        assert_eq!(
            b.get(&path).await.status,
            StatusCode::NOT_FOUND,
            "read {path}"
        );
        assert_eq!(
            b.delete(&path).await.status,
            StatusCode::NOT_FOUND,
            "delete {path}"
        );
    }
    assert_eq!(
        b.put(
            &format!("/relances/{relance_id}"),
            relance_body("Volée", &response)
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.put(
            &format!("/responses/{response}"),
            json!({"title": "x", "body": "y"})
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    // Copying a cursor from tenant A's list shows B nothing of A's.
    for _ in 0..2 {
        a.response("Encore", "x").await;
    }
    let cursor = a.get("/responses?limit=1").await.body["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(ids(&b.get(&format!("/responses?cursor={cursor}")).await.body).is_empty());
    b.put(
        "/settings",
        json!({"timezone": "UTC", "window_start": "00:00", "window_end": "23:59", "days": ["sun"]}),
    )
    .await;

    let after = snapshot(&a).await;
    assert_eq!(after["relances"], before["relances"]);
    assert_eq!(after["settings"], before["settings"]);
}

#[tokio::test]
async fn a_server_error_shows_no_internals() {
    let world = World::new().await;
    // A table that is not there: DynamoDB answers ResourceNotFoundException.
    let store = relance_shared::store::Store::new(
        world.dynamo.clone(),
        &relance_shared::config::StoreConfig {
            table_name: "missing-table-x9".into(),
            due_shards: 4,
        },
    );
    let config = relance_api::ApiConfig {
        store: relance_shared::config::StoreConfig {
            table_name: "missing-table-x9".into(),
            due_shards: 4,
        },
        tenant_claim: harness::CLAIM.into(),
        dev_auth: false,
    };
    let broken = harness::Api::new(
        relance_api::app(relance_api::AppState::new(store, config)),
        Some("acme"),
    );
    let reply = broken.get("/relances").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        reply.body,
        json!({"error": {"code": "internal", "message": "internal error"}})
    );
}

#[tokio::test]
async fn the_api_calls_only_what_its_deployed_role_allows() {
    let world = World::new().await;
    let proxy = relance_tests::proxy::CountingProxy::new(&relance_tests::stack::test_endpoint());
    let api = world
        .api_through("acme", &proxy.spawn().await.unwrap())
        .await;

    // Every endpoint, and each kind of write: the catalog's guarded transactions, an
    // attachment, one that replaces a running cycle (with its end notice), stops, deletes.
    let reminder = api.response("Rappel", "Bonjour {{customer_name}}").await;
    let spare = api.response("Autre", "Bonjour").await;
    let replaced = api
        .put(
            &format!("/responses/{spare}"),
            json!({"title": "Autre", "body": "Bonsoir", "version": 1}),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    api.get("/responses").await;
    api.get(&format!("/responses/{spare}")).await;
    let first = api.relance(relance_body("Relance SMS", &reminder)).await;
    let second = api.relance(relance_body("Autre relance", &reminder)).await;
    let renamed = api
        .put(
            &format!("/relances/{}", second["id"].as_str().unwrap()),
            with(
                relance_body("Relance bis", &reminder),
                json!({"version": 1}),
            ),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    api.get("/relances?channel=sms").await;
    api.get(&format!("/relances/{}", first["id"].as_str().unwrap()))
        .await;
    api.put("/settings", harness::always_open()).await;
    api.get("/settings").await;
    for (thread, relance) in [("th-1", &first), ("th-1", &second), ("th-2", &first)] {
        let attached = api
            .put(
                &format!("/threads/{thread}/relance"),
                harness::attach_sms(
                    relance["id"].as_str().unwrap(),
                    &harness::new_phone().0,
                    json!({"customer_name": "Léa"}),
                ),
            )
            .await;
        assert!(attached.status.is_success(), "{}", attached.body);
    }
    api.get("/threads/th-1/relance").await;
    api.put(
        "/threads/th-1/ticket-status",
        json!({"ticket_status": "ferme"}),
    )
    .await;
    assert_eq!(
        api.delete("/threads/th-2/relance").await.status,
        StatusCode::OK
    );
    assert_eq!(
        api.delete(&format!("/relances/{}", first["id"].as_str().unwrap()))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.delete(&format!("/responses/{spare}")).await.status,
        StatusCode::NO_CONTENT
    );

    let needed = harness::assert_role_allows("ApiFunction", &proxy);
    assert!(
        proxy.get("DynamoDB.TransactWriteItems").requests > 0,
        "the guarded writes were exercised: {:?}",
        proxy.counts()
    );
    for action in [
        "dynamodb:Query",
        "dynamodb:DeleteItem",
        "dynamodb:UpdateItem",
    ] {
        assert!(
            needed.contains(action),
            "{action} was exercised: {needed:?}"
        );
    }
}
