//! Invariants of the stored data, checked over a whole table after fuzzing or load:
//! every relance has its name guard and existing responses, every response counts the
//! relances that use it, every thread relance is in the due index exactly when the
//! scheduler has something to do for it, and so is every end notice of a replaced cycle.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

type Item = HashMap<String, AttributeValue>;

fn s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

async fn scan(client: &Client, table: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        items.extend(out.items.unwrap_or_default());
        match out.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return Ok(items),
        }
    }
}

/// Returns every broken invariant (empty when the table is consistent) and the number of
/// items checked.
pub async fn check(client: &Client, table: &str) -> Result<(Vec<String>, usize), String> {
    let items = scan(client, table).await?;
    let mut problems = Vec::new();
    let mut relances: HashMap<(String, String), &Item> = HashMap::new();
    let mut guards: HashMap<(String, String), String> = HashMap::new();
    let mut responses: HashMap<(String, String), i64> = HashMap::new();
    let mut references: HashMap<(String, String), i64> = HashMap::new();
    for item in &items {
        let (Some(pk), Some(sk)) = (s(item, "pk"), s(item, "sk")) else {
            problems.push("an item without keys".to_owned());
            continue;
        };
        if !pk.starts_with("TENANT#") {
            problems.push(format!("item outside a tenant partition: {pk}"));
        }
        let tenant = pk.to_owned();
        if let Some(id) = sk.strip_prefix("RELANCE#") {
            relances.insert((tenant.clone(), id.to_owned()), item);
            for field in ["default_response_id", "end_response_id"] {
                if let Some(response) = s(item, field) {
                    *references
                        .entry((tenant.clone(), response.to_owned()))
                        .or_default() += 1;
                }
            }
        } else if let Some(name) = sk.strip_prefix("RELANCE_NAME#") {
            guards.insert(
                (tenant, name.to_owned()),
                s(item, "relance_id").unwrap_or_default().to_owned(),
            );
        } else if let Some(id) = sk.strip_prefix("RESPONSE#") {
            let count = item
                .get("ref_count")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            responses.insert((tenant, id.to_owned()), count);
        } else if sk.starts_with("THREAD_END#") {
            // A replaced cycle's end notice exists only until its event is published.
            let indexed = item.contains_key("due_shard") && item.contains_key("next_relance_date");
            let notify = item.get("notify_pending").and_then(|v| v.as_bool().ok()) == Some(&true);
            if !(indexed && notify) {
                problems.push(format!("{pk} {sk}: an end notice outside the due index"));
            }
        } else if sk.starts_with("SENT_EVENT#") {
            // A refused relance.sent exists only until a run publishes it.
            let indexed = item.contains_key("due_shard") && item.contains_key("next_relance_date");
            if !indexed || s(item, "event").is_none() {
                problems.push(format!("{pk} {sk}: a kept event outside the due index"));
            }
        } else if sk.starts_with("THREAD#") {
            let state = s(item, "state").unwrap_or_default();
            let indexed = item.contains_key("due_shard") && item.contains_key("next_relance_date");
            let notify = item
                .get("notify_pending")
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false);
            let should_be_indexed = state == "active" || notify;
            if indexed != should_be_indexed {
                problems.push(format!(
                    "{pk} {sk}: state {state}, notify {notify}, in the due index: {indexed}"
                ));
            }
        }
    }
    let mut seen_guards = HashSet::new();
    for ((tenant, id), relance) in &relances {
        let name = s(relance, "name").unwrap_or_default().trim().to_lowercase();
        match guards.get(&(tenant.clone(), name.clone())) {
            Some(owner) if owner == id => {
                seen_guards.insert((tenant.clone(), name));
            }
            other => problems.push(format!("{tenant} relance {id}: name guard {other:?}")),
        }
        for field in ["default_response_id", "end_response_id"] {
            if let Some(response) = s(relance, field)
                && !responses.contains_key(&(tenant.clone(), response.to_owned()))
            {
                problems.push(format!(
                    "{tenant} relance {id}: {field} {response} does not exist"
                ));
            }
        }
    }
    for key in guards.keys() {
        if !seen_guards.contains(key) {
            problems.push(format!(
                "{} name guard {} without its relance",
                key.0, key.1
            ));
        }
    }
    for (key, count) in &responses {
        let used = references.get(key).copied().unwrap_or(0);
        if *count != used {
            problems.push(format!(
                "{} response {}: ref_count {count}, used {used} times",
                key.0, key.1
            ));
        }
    }
    Ok((problems, items.len()))
}
