//! Relances, responses and settings: the configuration that admins edit.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{
    Item, Store, StoreError, Transaction, built, decode_cursor, encode_cursor, from_item, n, s,
    tenant_pk, to_item,
};
use crate::domain::FieldError;
use crate::domain::relance::{Relance, RelanceFields, name_key};
use crate::domain::response::{Response, ResponseFields};
use crate::domain::settings::{SendingWindow, SettingsInput};

const RELANCE: &str = "RELANCE#";
const RELANCE_NAME: &str = "RELANCE_NAME#";
const RESPONSE: &str = "RESPONSE#";
const SETTINGS: &str = "SETTINGS";

/// One page of a list.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// What a transaction item is there for, to explain which condition failed.
enum Guard {
    Record,
    Name,
    Response(&'static str),
    Other,
}

fn name_taken() -> StoreError {
    StoreError::Conflict(FieldError::new(
        "name",
        "name_taken",
        "another relance of this account already has this name",
    ))
}

fn unknown_response(field: &'static str) -> StoreError {
    StoreError::Invalid(FieldError::new(
        field,
        "unknown_response",
        format!("{field} does not name a response of this account"),
    ))
}

fn version_conflict() -> StoreError {
    StoreError::Conflict(FieldError::new(
        "version",
        "version_conflict",
        "the record changed since it was read; read it again and reapply the change",
    ))
}

impl Store {
    fn put_op(
        &self,
        item: Item,
        condition: &str,
        values: Vec<(&str, super::AttributeValue)>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition);
        for (k, v) in values {
            put = put.expression_attribute_values(k, v);
        }
        Ok(TransactWriteItem::builder()
            .put(built(put.build())?)
            .build())
    }

    fn name_guard(&self, tenant: &str, name: &str, relance_id: &str) -> Item {
        let mut item = self.key(
            &tenant_pk(tenant),
            &format!("{RELANCE_NAME}{}", name_key(name)),
        );
        item.insert("relance_id".into(), s(relance_id));
        item
    }

    /// `ref_count += delta` on a response that must exist.
    fn ref_op(
        &self,
        tenant: &str,
        response_id: &str,
        delta: i64,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(
                self.key(&tenant_pk(tenant), &format!("{RESPONSE}{response_id}")),
            ))
            .update_expression("ADD ref_count :d")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":d", n(delta));
        Ok(TransactWriteItem::builder()
            .update(built(update.build())?)
            .build())
    }

    /// Writes `ops` all or none; a failed condition becomes the error its guard explains.
    async fn transact_guarded(
        &self,
        ops: Vec<(Guard, TransactWriteItem)>,
    ) -> Result<(), StoreError> {
        let (guards, items): (Vec<Guard>, Vec<TransactWriteItem>) = ops.into_iter().unzip();
        let Transaction::Cancelled(failed) = self.transact(items).await? else {
            return Ok(());
        };
        Err(match failed.and_then(|i| guards.get(i)) {
            Some(Guard::Record) => version_conflict(),
            Some(Guard::Name) => name_taken(),
            Some(Guard::Response(field)) => unknown_response(field),
            Some(Guard::Other) | None => StoreError::Conflict(FieldError::new(
                "",
                "conflict",
                "a concurrent change got there first; try again",
            )),
        })
    }

    /// The record `prefix` + `id` of `tenant`, read consistently.
    async fn get_record<T: DeserializeOwned>(
        &self,
        tenant: &str,
        prefix: &str,
        id: &str,
    ) -> Result<T, StoreError> {
        let item = self
            .get(tenant_pk(tenant), format!("{prefix}{id}"))
            .await?
            .ok_or(StoreError::NotFound)?;
        from_item(item)
    }

    /// A page of the items under `prefix`, in key order, optionally filtered.
    async fn list<T: for<'de> Deserialize<'de>>(
        &self,
        tenant: &str,
        prefix: &str,
        filter: Option<(&str, Vec<(&str, super::AttributeValue)>)>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<T>, StoreError> {
        let mut start = cursor.map(|c| decode_cursor(c, prefix)).transpose()?;
        let mut items: Vec<(String, T)> = Vec::with_capacity(limit);
        let mut more = false;
        'pages: loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(tenant_pk(tenant)))
                .expression_attribute_values(":prefix", s(prefix))
                // One more than asked tells whether another page exists.
                .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX));
            if let Some((expression, values)) = &filter {
                query = query.filter_expression(*expression);
                for (k, v) in values {
                    query = query.expression_attribute_values(*k, v.clone());
                }
            }
            if let Some(sk) = &start {
                query = query.set_exclusive_start_key(Some(self.key(&tenant_pk(tenant), sk)));
            }
            let out = query.send().await.map_err(StoreError::from_sdk)?;
            for mut item in out.items.unwrap_or_default() {
                if items.len() == limit {
                    more = true;
                    break 'pages;
                }
                let sk = match item.remove("sk") {
                    Some(super::AttributeValue::S(sk)) => sk,
                    _ => return Err(StoreError::Corrupt("item without sort key".into())),
                };
                items.push((sk, from_item(item)?));
            }
            match out.last_evaluated_key.and_then(|mut k| k.remove("sk")) {
                Some(super::AttributeValue::S(sk)) => start = Some(sk),
                _ => break,
            }
        }
        let next_cursor = if more {
            items.last().map(|(sk, _)| encode_cursor(sk))
        } else {
            None
        };
        Ok(Page {
            items: items.into_iter().map(|(_, item)| item).collect(),
            next_cursor,
        })
    }

    // ----- relances -----

    pub async fn list_relances(
        &self,
        tenant: &str,
        channel: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Relance>, StoreError> {
        let filter = channel.map(|c| {
            (
                "contains(allowed_channels, :channel)",
                vec![(":channel", s(c))],
            )
        });
        self.list(tenant, RELANCE, filter, limit, cursor).await
    }

    pub async fn get_relance(&self, tenant: &str, id: &str) -> Result<Relance, StoreError> {
        self.get_record(tenant, RELANCE, id).await
    }

    fn reference_ops(
        &self,
        tenant: &str,
        deltas: BTreeMap<&str, (i64, &'static str)>,
    ) -> Result<Vec<(Guard, TransactWriteItem)>, StoreError> {
        deltas
            .into_iter()
            .filter(|(_, (delta, _))| *delta != 0)
            .map(|(id, (delta, field))| {
                Ok((Guard::Response(field), self.ref_op(tenant, id, delta)?))
            })
            .collect()
    }

    pub async fn create_relance(
        &self,
        tenant: &str,
        fields: RelanceFields,
        now: DateTime<Utc>,
    ) -> Result<Relance, StoreError> {
        let relance = fields.into_relance(uuid::Uuid::now_v7().to_string(), now, now, 1);
        let mut deltas = BTreeMap::new();
        add_refs(&mut deltas, &relance, 1);
        let mut ops = vec![
            (
                Guard::Record,
                self.put_op(
                    to_item(
                        &relance,
                        tenant_pk(tenant),
                        format!("{RELANCE}{}", relance.id),
                    )?,
                    "attribute_not_exists(pk)",
                    vec![],
                )?,
            ),
            (
                Guard::Name,
                self.put_op(
                    self.name_guard(tenant, &relance.name, &relance.id),
                    "attribute_not_exists(pk)",
                    vec![],
                )?,
            ),
        ];
        ops.extend(self.reference_ops(tenant, deltas)?);
        self.transact_guarded(ops).await?;
        Ok(relance)
    }

    pub async fn replace_relance(
        &self,
        tenant: &str,
        id: &str,
        fields: RelanceFields,
        expected_version: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<Relance, StoreError> {
        let current = self.get_relance(tenant, id).await?;
        if expected_version.is_some_and(|v| v != current.version) {
            return Err(version_conflict());
        }
        let relance = fields.into_relance(
            current.id.clone(),
            current.created_at,
            now,
            current.version + 1,
        );
        let mut deltas = BTreeMap::new();
        add_refs(&mut deltas, &current, -1);
        add_refs(&mut deltas, &relance, 1);
        let mut ops = vec![(
            Guard::Record,
            self.put_op(
                to_item(&relance, tenant_pk(tenant), format!("{RELANCE}{id}"))?,
                "version = :v",
                vec![(":v", n(current.version))],
            )?,
        )];
        if name_key(&current.name) != name_key(&relance.name) {
            ops.push((
                Guard::Other,
                self.delete_op(
                    tenant_pk(tenant),
                    format!("{RELANCE_NAME}{}", name_key(&current.name)),
                )?,
            ));
            ops.push((
                Guard::Name,
                self.put_op(
                    self.name_guard(tenant, &relance.name, id),
                    "attribute_not_exists(pk)",
                    vec![],
                )?,
            ));
        }
        ops.extend(self.reference_ops(tenant, deltas)?);
        self.transact_guarded(ops).await?;
        Ok(relance)
    }

    fn delete_op(&self, pk: String, sk: String) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(self.key(&pk, &sk)));
        Ok(TransactWriteItem::builder()
            .delete(built(delete.build())?)
            .build())
    }

    pub async fn delete_relance(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        let current = self.get_relance(tenant, id).await?;
        let mut deltas = BTreeMap::new();
        add_refs(&mut deltas, &current, -1);
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(
                self.key(&tenant_pk(tenant), &format!("{RELANCE}{id}")),
            ))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", n(current.version));
        let mut ops = vec![
            (
                Guard::Record,
                TransactWriteItem::builder()
                    .delete(built(delete.build())?)
                    .build(),
            ),
            (
                Guard::Other,
                self.delete_op(
                    tenant_pk(tenant),
                    format!("{RELANCE_NAME}{}", name_key(&current.name)),
                )?,
            ),
        ];
        ops.extend(self.reference_ops(tenant, deltas)?);
        self.transact_guarded(ops).await
    }

    // ----- responses -----

    pub async fn list_responses(
        &self,
        tenant: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Response>, StoreError> {
        self.list(tenant, RESPONSE, None, limit, cursor).await
    }

    pub async fn get_response(&self, tenant: &str, id: &str) -> Result<Response, StoreError> {
        self.get_record(tenant, RESPONSE, id).await
    }

    pub async fn create_response(
        &self,
        tenant: &str,
        fields: ResponseFields,
        now: DateTime<Utc>,
    ) -> Result<Response, StoreError> {
        let response = fields.into_response(uuid::Uuid::now_v7().to_string(), now, now, 1);
        let mut item = to_item(
            &response,
            tenant_pk(tenant),
            format!("{RESPONSE}{}", response.id),
        )?;
        item.insert("ref_count".into(), n(0));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(response)
    }

    /// Replaces title and body; `ref_count` is left to the relances that use it.
    pub async fn replace_response(
        &self,
        tenant: &str,
        id: &str,
        fields: ResponseFields,
        expected_version: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<Response, StoreError> {
        let current = self.get_response(tenant, id).await?;
        if expected_version.is_some_and(|v| v != current.version) {
            return Err(version_conflict());
        }
        let response =
            fields.into_response(current.id, current.created_at, now, current.version + 1);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(
                self.key(&tenant_pk(tenant), &format!("{RESPONSE}{id}")),
            ))
            .update_expression(
                "SET title = :t, body = :b, placeholders = :p, updated_at = :u, version = :nv",
            )
            .condition_expression("version = :v")
            .expression_attribute_values(":t", s(&response.title))
            .expression_attribute_values(":b", s(&response.body))
            .expression_attribute_values(
                ":p",
                serde_dynamo::to_attribute_value(&response.placeholders)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            )
            .expression_attribute_values(
                ":u",
                s(response
                    .updated_at
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            )
            .expression_attribute_values(":nv", n(response.version))
            .expression_attribute_values(":v", n(current.version))
            .send()
            .await;
        match result {
            Ok(_) => Ok(response),
            Err(err) if super::is_condition_failed(&err) => Err(version_conflict()),
            Err(err) => Err(StoreError::from_sdk(err)),
        }
    }

    /// Deletes a response that no relance uses; otherwise a conflict naming the relances.
    pub async fn delete_response(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(
                self.key(&tenant_pk(tenant), &format!("{RESPONSE}{id}")),
            ))
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(ref_count) OR ref_count = :zero)",
            )
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if super::is_condition_failed(&err) => {
                self.get_response(tenant, id).await?;
                let users = self.relances_using(tenant, id).await?;
                Err(StoreError::Conflict(FieldError::new(
                    "",
                    "response_in_use",
                    format!(
                        "this response is used by relances: {}; change them first",
                        users.join(", ")
                    ),
                )))
            }
            Err(err) => Err(StoreError::from_sdk(err)),
        }
    }

    async fn relances_using(
        &self,
        tenant: &str,
        response_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut names = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .list::<Relance>(
                    tenant,
                    RELANCE,
                    Some((
                        "default_response_id = :r OR end_response_id = :r",
                        vec![(":r", s(response_id))],
                    )),
                    100,
                    cursor.as_deref(),
                )
                .await?;
            names.extend(page.items.into_iter().map(|r| format!("\"{}\"", r.name)));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(names),
            }
        }
    }

    // ----- settings -----

    /// The tenant's sending window; the defaults until an admin saves one.
    pub async fn get_settings(&self, tenant: &str) -> Result<SendingWindow, StoreError> {
        match self.get(tenant_pk(tenant), SETTINGS.into()).await? {
            None => Ok(SendingWindow::default()),
            Some(item) => from_item::<SettingsInput>(strip_keys(item))?
                .validate()
                .map_err(|e| StoreError::Corrupt(e.to_string())),
        }
    }

    pub async fn put_settings(
        &self,
        tenant: &str,
        window: &SendingWindow,
    ) -> Result<(), StoreError> {
        let item = to_item(
            &SettingsInput::from(window),
            tenant_pk(tenant),
            SETTINGS.into(),
        )?;
        self.put(item).await
    }
}

fn strip_keys(mut item: Item) -> Item {
    item.remove("pk");
    item.remove("sk");
    item
}

/// Adds `sign` for each response a relance uses, remembering which field names it.
fn add_refs<'a>(
    deltas: &mut BTreeMap<&'a str, (i64, &'static str)>,
    relance: &'a Relance,
    sign: i64,
) {
    deltas
        .entry(&relance.default_response_id)
        .or_insert((0, "default_response_id"))
        .0 += sign;
    if let Some(end) = relance.end_response_id.as_deref() {
        deltas.entry(end).or_insert((0, "end_response_id")).0 += sign;
    }
}
