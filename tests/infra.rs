//! The deployed shape cannot drift from the code: routes, OpenAPI paths, the template's
//! API events, the table's keys and due index.

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml::Value;

fn load(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn code_routes() -> BTreeSet<(String, String)> {
    relance_api::routes()
        .into_iter()
        .map(|(path, method)| (path.to_owned(), method.to_string()))
        .collect()
}

/// `!Ref X` and friends come out of YAML as tagged values; this reads through them.
fn untag(value: &Value) -> &Value {
    match value {
        Value::Tagged(tagged) => &tagged.value,
        other => other,
    }
}

#[test]
fn openapi_documents_exactly_the_routes_the_router_serves() {
    let doc = load("infra/openapi.yaml");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().expect("paths") {
        for (method, _) in item.as_mapping().expect("path item") {
            let method = method.as_str().unwrap();
            if method != "parameters" {
                documented.insert((path.as_str().unwrap().to_owned(), method.to_uppercase()));
            }
        }
    }
    assert_eq!(documented, code_routes());
}

#[test]
fn the_template_routes_exactly_the_documented_api() {
    let template = load("infra/template.yaml");
    let events = template["Resources"]["ApiFunction"]["Properties"]["Events"]
        .as_mapping()
        .expect("API events");
    let routed: BTreeSet<(String, String)> = events
        .values()
        .filter(|event| event["Type"] == "HttpApi")
        .map(|event| {
            let props = &event["Properties"];
            (
                props["Path"].as_str().unwrap().to_owned(),
                props["Method"].as_str().unwrap().to_uppercase(),
            )
        })
        .collect();
    assert_eq!(routed, code_routes());
}

#[test]
fn the_template_table_matches_the_code() {
    let template = load("infra/template.yaml");
    let table = &template["Resources"]["Table"]["Properties"];
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .build(),
    );
    let code = relance_shared::store::table_definition(&client, "any");

    let keys = |schema: &Value| -> Vec<(String, String)> {
        schema
            .as_sequence()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["AttributeName"].as_str().unwrap().to_owned(),
                    k["KeyType"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let code_keys =
        |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Vec<(String, String)> {
            schema
                .iter()
                .map(|k| {
                    (
                        k.attribute_name().to_owned(),
                        k.key_type().as_str().to_owned(),
                    )
                })
                .collect()
        };
    assert_eq!(
        keys(&table["KeySchema"]),
        code_keys(code.get_key_schema().as_deref().unwrap())
    );

    let attributes: BTreeSet<(String, String)> = table["AttributeDefinitions"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["AttributeName"].as_str().unwrap().to_owned(),
                a["AttributeType"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let code_attributes: BTreeSet<(String, String)> = code
        .get_attribute_definitions()
        .as_deref()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a.attribute_name().to_owned(),
                a.attribute_type().as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(attributes, code_attributes);
    assert_eq!(untag(&table["BillingMode"]), "PAY_PER_REQUEST");

    let indexes = table["GlobalSecondaryIndexes"].as_sequence().unwrap();
    let code_indexes = code.get_global_secondary_indexes().as_deref().unwrap();
    assert_eq!(indexes.len(), code_indexes.len());
    for (deployed, coded) in indexes.iter().zip(code_indexes) {
        assert_eq!(deployed["IndexName"].as_str().unwrap(), coded.index_name());
        assert_eq!(keys(&deployed["KeySchema"]), code_keys(coded.key_schema()));
        let projection = coded.projection().unwrap();
        assert_eq!(
            deployed["Projection"]["ProjectionType"].as_str().unwrap(),
            projection.projection_type().unwrap().as_str()
        );
        let deployed_attrs: Vec<&str> = deployed["Projection"]["NonKeyAttributes"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(deployed_attrs, projection.non_key_attributes());
    }
    assert_eq!(
        code_indexes[0].index_name(),
        relance_shared::store::DUE_INDEX
    );

    // The scheduler may query exactly that index.
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml"),
    )
    .unwrap();
    assert!(text.contains(&format!(
        "${{Table.Arn}}/index/{}",
        relance_shared::store::DUE_INDEX
    )));
}

#[test]
fn nothing_deployed_turns_on_dev_auth() {
    let infra = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra");
    let mut checked = 0;
    for entry in std::fs::read_dir(&infra).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                !text.contains("RELANCE_DEV_AUTH"),
                "{} mentions RELANCE_DEV_AUTH",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "infra/ should hold the template and the OpenAPI document"
    );
}

#[test]
fn the_deployed_scheduler_reads_the_connector_token_from_ssm_only() {
    let template = load("infra/template.yaml");
    let scheduler = &template["Resources"]["SchedulerFunction"]["Properties"];
    let variables = scheduler["Environment"]["Variables"].as_mapping().unwrap();
    assert!(
        !variables.contains_key("MARKETPLACE_API_TOKEN"),
        "the token's value would sit in the function's configuration"
    );
    assert_eq!(
        untag(&variables["MARKETPLACE_API_TOKEN_PARAMETER"]),
        "MarketplaceApiTokenParameter"
    );
    assert!(
        template["Parameters"]
            .as_mapping()
            .unwrap()
            .keys()
            .all(|name| !name.as_str().unwrap().ends_with("Token")),
        "no template parameter carries the token itself"
    );
    // The role may read that one parameter, nothing broader.
    let reads: Vec<&Value> = scheduler["Policies"][0]["Statement"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|statement| {
            statement["Action"]
                .as_str()
                .is_some_and(|a| a.starts_with("ssm:"))
        })
        .collect();
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0]["Action"], "ssm:GetParameter");
    assert!(
        untag(&reads[0]["Resource"])
            .as_str()
            .unwrap()
            .ends_with(":parameter${MarketplaceApiTokenParameter}")
    );
}

#[test]
fn the_alarms_watch_metrics_the_scheduler_emits() {
    let template = load("infra/template.yaml");
    // JSON is YAML: the line reads as the template does.
    let line: Value = serde_yaml::from_str(
        &relance_scheduler::RunSummary::default().metrics_line("any", chrono::Utc::now()),
    )
    .unwrap();
    let directive = &line["_aws"]["CloudWatchMetrics"][0];
    let emitted: BTreeSet<&str> = directive["Metrics"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap())
        .collect();

    let mut watched = Vec::new();
    for (name, resource) in template["Resources"].as_mapping().unwrap() {
        let properties = &resource["Properties"];
        if properties["Namespace"].as_str() != Some(relance_scheduler::METRICS_NAMESPACE) {
            continue;
        }
        let metric = properties["MetricName"].as_str().unwrap();
        assert!(
            emitted.contains(metric),
            "{name:?} watches {metric}, never emitted"
        );
        assert_eq!(
            properties["Dimensions"][0]["Name"], directive["Dimensions"][0][0],
            "{name:?} must select the scheduler's own figures"
        );
        assert_eq!(
            untag(&properties["Dimensions"][0]["Value"]),
            "SchedulerFunction"
        );
        watched.push(metric);
    }
    watched.sort_unstable();
    assert_eq!(watched, ["Failed", "SentEventsLost", "Unknown"]);
}

/// Does a concrete path match a route template such as `/relances/{id}`?
fn matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| t.starts_with('{') || t == p)
}

#[test]
fn every_route_has_a_sample_api_gateway_event() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/api");
    let mut covered = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        // Each sample is a valid API Gateway v2 request with verified claims.
        let request = lambda_http::request::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let event: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(
            event["requestContext"]["authorizer"]["jwt"]["claims"]["custom:tenant_id"].is_string()
        );
        let route = code_routes()
            .into_iter()
            .find(|(template, method)| {
                matches(template, request.uri().path()) && *method == request.method().as_str()
            })
            .unwrap_or_else(|| panic!("{} matches no route", path.display()));
        covered.insert(route);
    }
    assert_eq!(covered, code_routes(), "one sample per route");
}
