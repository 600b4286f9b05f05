//! DynamoDB single-table store.
//!
//! # Key layout
//!
//! Every item lives under its tenant's partition, so a request can only ever reach the
//! data of the tenant its verified claims name:
//!
//! | `pk`              | `sk`                        | item                                          |
//! |-------------------|-----------------------------|-----------------------------------------------|
//! | `TENANT#<tenant>` | `RELANCE#<id>`              | a relance (configuration)                     |
//! | `TENANT#<tenant>` | `RELANCE_NAME#<lowercase>`  | guard that keeps relance names unique         |
//! | `TENANT#<tenant>` | `RESPONSE#<id>`             | a pre-saved response, with `ref_count`: how many relances use it |
//! | `TENANT#<tenant>` | `SETTINGS`                  | the sending window (absent: defaults)         |
//! | `TENANT#<tenant>` | `THREAD#<thread_id>`        | the thread relance: snapshot, counters, schedule, history, claim |
//! | `TENANT#<tenant>` | `THREAD_END#<thread_id>#<cycle>` | a replaced cycle whose end is still to be announced (deleted once it is) |
//! | `TENANT#<tenant>` | `SENT_EVENT#<thread_id>#<cycle>#<step>` | a `relance.sent` event the topic refused, kept until a later run publishes it |
//!
//! # Due index (sparse GSI)
//!
//! `due-index` has partition key `due_shard` (`DUE#<n>`, n = a stable hash of tenant and
//! thread modulo `DUE_SHARDS`, so that no index partition is hot) and sort key
//! `next_relance_date` (UTC `YYYY-MM-DDTHH:MM:SSZ`, fixed width, so text order is time
//! order). Both attributes exist only while the scheduler has something to do for the
//! thread (a step to send, or the end of its cycle to announce); once the end event is
//! published they are removed and the item leaves the index. End notices of replaced
//! cycles and kept sent events are in the index for as long as they exist. The index projects only `state`, `cycle` and `step`: claims and
//! history never rewrite it. The scheduler queries each shard for
//! `next_relance_date <= now`; it never scans the table.
//!
//! Every state change is one conditional write (relance `version`, thread relance `cycle`
//! and `state`, scheduler `claim_token`); configuration changes that touch several items
//! (name guard, response reference counts) are one transaction.

mod catalog;
mod threads;

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use aws_sdk_dynamodb::types::AttributeValue;
pub use catalog::Page;
pub use threads::{Claim, CommitOutcome, DueItem, DueKind};

use crate::config::StoreConfig;
use crate::domain::FieldError;

pub type Item = HashMap<String, AttributeValue>;

pub const DUE_INDEX: &str = "due-index";
/// Attributes the due index projects besides the keys.
pub const DUE_INDEX_PROJECTION: [&str; 3] = ["state", "cycle", "step"];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// The request conflicts with stored data (stale version, taken name, response in use).
    #[error("{0}")]
    Conflict(FieldError),
    /// The request names stored data that does not exist or does not fit.
    #[error("{0}")]
    Invalid(FieldError),
    /// DynamoDB asked us to slow down; the client may retry.
    #[error("the table is throttling requests")]
    Busy,
    #[error("DynamoDB error: {0}")]
    Dynamo(String),
    #[error("stored item does not decode: {0}")]
    Corrupt(String),
}

impl StoreError {
    fn from_sdk<E: ProvideErrorMetadata + std::fmt::Debug>(
        err: aws_sdk_dynamodb::error::SdkError<E>,
    ) -> Self {
        match err.code() {
            Some(
                "ThrottlingException"
                | "ProvisionedThroughputExceededException"
                | "RequestLimitExceeded",
            ) => StoreError::Busy,
            Some(code) => {
                StoreError::Dynamo(format!("{code}: {}", err.message().unwrap_or_default()))
            }
            None => StoreError::Dynamo(format!("{err:?}")),
        }
    }
}

/// True when an SDK error is a failed condition of a single-item write.
fn is_condition_failed<E: ProvideErrorMetadata>(
    err: &aws_sdk_dynamodb::error::SdkError<E>,
) -> bool {
    err.code() == Some("ConditionalCheckFailedException")
}

/// The outcome of a conditional single-item write: whether its condition held.
fn applied<T, E: ProvideErrorMetadata + std::fmt::Debug>(
    result: Result<T, aws_sdk_dynamodb::error::SdkError<E>>,
) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(err) if is_condition_failed(&err) => Ok(false),
        Err(err) => Err(StoreError::from_sdk(err)),
    }
}

/// A request the SDK could not build (a missing required field): a bug, not client input.
fn built<T, E: std::fmt::Display>(result: Result<T, E>) -> Result<T, StoreError> {
    result.map_err(|e| StoreError::Dynamo(e.to_string()))
}

/// How a transaction ended when it did not fail outright.
enum Transaction {
    Applied,
    /// Cancelled; the position of the first item whose condition failed, if one did.
    Cancelled(Option<usize>),
}

#[derive(Clone)]
pub struct Store {
    client: Client,
    table: String,
    due_shards: u32,
}

impl Store {
    fn key(&self, pk: &str, sk: &str) -> Item {
        Item::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
    }

    /// The item `pk`/`sk`, read consistently.
    async fn get(&self, pk: String, sk: String) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.key(&pk, &sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(out.item)
    }

    /// An unconditional write of a whole item.
    async fn put(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(())
    }

    /// Writes `items` all or none.
    async fn transact(
        &self,
        items: Vec<aws_sdk_dynamodb::types::TransactWriteItem>,
    ) -> Result<Transaction, StoreError> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let Err(err) = result else {
            return Ok(Transaction::Applied);
        };
        match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                Ok(Transaction::Cancelled(
                    cancelled
                        .cancellation_reasons()
                        .iter()
                        .position(|r| r.code() == Some("ConditionalCheckFailed")),
                ))
            }
            _ => Err(StoreError::from_sdk(err)),
        }
    }

    pub fn new(client: Client, config: &StoreConfig) -> Self {
        Self {
            client,
            table: config.table_name.clone(),
            due_shards: config.due_shards,
        }
    }

    pub fn from_sdk_config(aws: &aws_config::SdkConfig, config: &StoreConfig) -> Self {
        Self::new(Client::new(aws), config)
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    pub fn due_shards(&self) -> u32 {
        self.due_shards
    }

    /// One cheap call that opens the connection during init, so the first request does
    /// not pay the TLS handshake. A missing table is reported here, at start.
    pub async fn warm_up(&self) -> Result<(), StoreError> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map(|_| ())
            .map_err(StoreError::from_sdk)
    }
}

pub(crate) fn tenant_pk(tenant: &str) -> String {
    format!("TENANT#{tenant}")
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The GSI sort key form of an instant: fixed-width UTC to the second.
pub(crate) fn index_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Serialises a record and adds its keys. Nulls are left out: a key attribute of the due
/// index must be absent, not null, for the item to leave the index.
fn to_item<T: Serialize>(value: &T, pk: String, sk: String) -> Result<Item, StoreError> {
    let mut item: Item =
        serde_dynamo::to_item(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    item.retain(|_, v| !matches!(v, AttributeValue::Null(_)));
    item.insert("pk".into(), s(pk));
    item.insert("sk".into(), s(sk));
    Ok(item)
}

fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn encode_cursor(sk: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sk)
}

/// Decodes a list cursor; it must point inside the list it came from.
fn decode_cursor(cursor: &str, prefix: &str) -> Result<String, StoreError> {
    let invalid = || {
        StoreError::Invalid(FieldError::new(
            "cursor",
            "invalid_cursor",
            "cursor is not one this list returned",
        ))
    };
    if cursor.len() > 512 {
        return Err(invalid());
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| invalid())?;
    let sk = String::from_utf8(bytes).map_err(|_| invalid())?;
    if sk.starts_with(prefix) {
        Ok(sk)
    } else {
        Err(invalid())
    }
}

/// The table's key schema and due index, as `infra/template.yaml` deploys them. Local
/// set-up and tests create the table from this; a test keeps the template in step.
pub fn table_definition(
    client: &Client,
    name: &str,
) -> aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("name and type are set")
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("name and type are set")
    };
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .attribute_definitions(attr("due_shard"))
        .attribute_definitions(attr("next_relance_date"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(DUE_INDEX)
                .key_schema(key("due_shard", KeyType::Hash))
                .key_schema(key("next_relance_date", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::Include)
                        .set_non_key_attributes(Some(
                            DUE_INDEX_PROJECTION.iter().map(|a| a.to_string()).collect(),
                        ))
                        .build(),
                )
                .build()
                .expect("index name, keys and projection are set"),
        )
}
