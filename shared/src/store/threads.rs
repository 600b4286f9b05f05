//! Thread relances: attach, stop and cancel from the API; query, claim and commit from
//! the scheduler.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{Put, ReturnValue, TransactWriteItem};
use chrono::{DateTime, Utc};

use super::{
    AttributeValue, DUE_INDEX, Item, Store, StoreError, Transaction, applied, built, from_item,
    index_time, is_condition_failed, n, s, tenant_pk, to_item,
};
use crate::domain::FieldError;
use crate::domain::event::DomainEvent;
use crate::domain::thread::{State, ThreadRelance};

const THREAD: &str = "THREAD#";
/// The end notice of a cycle that a new attachment replaced before its end was announced:
/// `THREAD_END#<thread_id>#<cycle>`.
const THREAD_END: &str = "THREAD_END#";
/// A `relance.sent` event that the events topic refused, kept until a later run publishes
/// it: `SENT_EVENT#<thread_id>#<cycle>#<step>`.
const SENT_EVENT: &str = "SENT_EVENT#";

/// What a due entry asks of the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueKind {
    /// The thread relance itself: a step to send, or the end of its cycle to announce.
    Thread,
    /// The end notice of a cycle that a new attachment replaced.
    EndNotice,
    /// A kept `relance.sent` event to publish.
    SentEvent,
}

/// A thread relance the due index says needs the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueItem {
    pub tenant: String,
    pub thread_id: String,
    pub state: State,
    pub cycle: u32,
    pub step: u32,
    pub kind: DueKind,
}

/// A claimed thread relance, read consistently by the claim itself.
#[derive(Debug, Clone)]
pub struct Claim {
    pub thread: ThreadRelance,
    /// An earlier run claimed this same step and never committed: it may have sent.
    pub expired_claim: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    Committed,
    /// A stop or cancel landed during the send: only the send was recorded.
    EndedMeanwhile,
    /// The claim is gone (the thread got a new relance): nothing was recorded.
    ClaimLost,
}

/// FNV-1a: a hash that stays the same across builds and platforms, unlike std's.
fn stable_hash(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

fn attr_str(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

fn attr_u32(item: &Item, name: &str) -> Option<u32> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

impl Store {
    pub fn due_shard(&self, tenant: &str, thread_id: &str) -> String {
        format!(
            "DUE#{}",
            stable_hash(&[tenant, thread_id]) % u64::from(self.due_shards)
        )
    }

    fn thread_key(&self, tenant: &str, thread_id: &str) -> Item {
        self.key(&tenant_pk(tenant), &format!("{THREAD}{thread_id}"))
    }

    /// The full item of a thread relance; in the due index while a date is set.
    pub fn thread_item(&self, thread: &ThreadRelance) -> Result<Item, StoreError> {
        let mut item = to_item(
            thread,
            tenant_pk(&thread.tenant_id),
            format!("{THREAD}{}", thread.thread_id),
        )?;
        if let Some(date) = thread.next_relance_date {
            item.insert("next_relance_date".into(), s(index_time(date)));
            item.insert(
                "due_shard".into(),
                s(self.due_shard(&thread.tenant_id, &thread.thread_id)),
            );
        }
        Ok(item)
    }

    pub async fn get_thread(
        &self,
        tenant: &str,
        thread_id: &str,
    ) -> Result<Option<ThreadRelance>, StoreError> {
        let item = self
            .get(tenant_pk(tenant), format!("{THREAD}{thread_id}"))
            .await?;
        item.map(from_item).transpose()
    }

    fn end_notice_key(&self, tenant: &str, thread_id: &str, cycle: u32) -> Item {
        self.key(&tenant_pk(tenant), &end_notice_sk(thread_id, cycle))
    }

    /// Stores a new cycle. `replaces` is the cycle read before; a concurrent attach that
    /// changed it makes this a conflict. `ended` is the replaced cycle when its end is
    /// still to be announced: it is kept, in the same transaction, as an end notice in the
    /// due index.
    pub async fn put_thread(
        &self,
        thread: &ThreadRelance,
        replaces: Option<u32>,
        ended: Option<&ThreadRelance>,
    ) -> Result<(), StoreError> {
        let item = self.thread_item(thread)?;
        // Unless the thread is new, the cycle read before must still be there.
        let (condition, names, values) = match replaces {
            None => ("attribute_not_exists(pk)", None, None),
            Some(cycle) => (
                "#cycle = :cycle",
                Some(HashMap::from([("#cycle".to_owned(), "cycle".to_owned())])),
                Some(HashMap::from([(":cycle".to_owned(), n(cycle))])),
            ),
        };
        let Some(ended) = ended else {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(condition)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .send()
                .await;
            return if applied(result)? {
                Ok(())
            } else {
                Err(thread_changed())
            };
        };
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values);
        let mut notice = self.thread_item(ended)?;
        notice.extend(self.end_notice_key(&ended.tenant_id, &ended.thread_id, ended.cycle));
        let notice = Put::builder()
            .table_name(&self.table)
            .set_item(Some(notice))
            .condition_expression("attribute_not_exists(pk)");
        let items = [put, notice]
            .into_iter()
            .map(|put| built(put.build()).map(|put| TransactWriteItem::builder().put(put).build()))
            .collect::<Result<Vec<_>, _>>()?;
        match self.transact(items).await? {
            Transaction::Applied => Ok(()),
            Transaction::Cancelled(_) => Err(thread_changed()),
        }
    }

    /// The thread relance a due entry names: the live item, or a replaced cycle's end
    /// notice. A kept event names none.
    pub async fn get_due(&self, due: &DueItem) -> Result<Option<ThreadRelance>, StoreError> {
        let sk = match due.kind {
            DueKind::Thread => return self.get_thread(&due.tenant, &due.thread_id).await,
            DueKind::EndNotice => end_notice_sk(&due.thread_id, due.cycle),
            DueKind::SentEvent => return Ok(None),
        };
        let item = self.get(tenant_pk(&due.tenant), sk).await?;
        item.map(from_item).transpose()
    }

    /// Keeps a `relance.sent` event the topic refused, due at `at` so that the next run
    /// publishes it. `state` is the thread relance's after the step.
    pub async fn keep_sent_event(
        &self,
        event: &DomainEvent,
        step: u32,
        state: State,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let sk = sent_event_sk(&event.thread_id, event.cycle, step);
        let mut item = self.key(&tenant_pk(&event.tenant_id), &sk);
        let json = serde_json::to_string(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        item.extend([
            ("event".to_owned(), s(json)),
            ("state".to_owned(), s(state.as_str())),
            ("cycle".to_owned(), n(event.cycle)),
            ("step".to_owned(), n(step)),
            ("next_relance_date".to_owned(), s(index_time(at))),
            (
                "due_shard".to_owned(),
                s(self.due_shard(&event.tenant_id, &event.thread_id)),
            ),
        ]);
        self.put(item).await
    }

    /// The kept event a due entry names; none once published.
    pub async fn get_sent_event(&self, due: &DueItem) -> Result<Option<DomainEvent>, StoreError> {
        let sk = sent_event_sk(&due.thread_id, due.cycle, due.step);
        let Some(item) = self.get(tenant_pk(&due.tenant), sk).await? else {
            return Ok(None);
        };
        let json = attr_str(&item, "event").unwrap_or_default();
        serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// After a kept event went out.
    pub async fn delete_sent_event(&self, due: &DueItem) -> Result<(), StoreError> {
        let sk = sent_event_sk(&due.thread_id, due.cycle, due.step);
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.key(&tenant_pk(&due.tenant), &sk)))
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(())
    }

    /// Writes an early end (`stopped` or `cancelled`) of `cycle`, leaving the item in the
    /// due index so that the scheduler announces it. False when the cycle was no longer
    /// active.
    pub async fn end_thread_early(&self, thread: &ThreadRelance) -> Result<bool, StoreError> {
        let at = thread.next_relance_date.unwrap_or(thread.updated_at);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.thread_key(&thread.tenant_id, &thread.thread_id)))
            .update_expression(
                "SET #state = :state, state_reason = :reason, notify_pending = :true, \
                 next_relance_date = :at, due_shard = :shard, updated_at = :updated",
            )
            .condition_expression("#state = :active AND #cycle = :cycle")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#cycle", "cycle")
            .expression_attribute_values(":state", s(thread.state.as_str()))
            .expression_attribute_values(
                ":reason",
                s(thread.state_reason.clone().unwrap_or_default()),
            )
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":at", s(index_time(at)))
            .expression_attribute_values(
                ":shard",
                s(self.due_shard(&thread.tenant_id, &thread.thread_id)),
            )
            .expression_attribute_values(
                ":updated",
                s(thread
                    .updated_at
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            )
            .expression_attribute_values(":active", s(State::Active.as_str()))
            .expression_attribute_values(":cycle", n(thread.cycle))
            .send()
            .await;
        applied(result)
    }

    /// Every entry of one shard of the due index that is due at `now`, page by page.
    pub async fn query_due(
        &self,
        shard: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<DueItem>, StoreError> {
        let mut due = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(DUE_INDEX)
                .key_condition_expression("due_shard = :shard AND next_relance_date <= :now")
                .expression_attribute_values(":shard", s(format!("DUE#{shard}")))
                .expression_attribute_values(":now", s(index_time(now)))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(StoreError::from_sdk)?;
            for item in out.items.unwrap_or_default() {
                let parsed = (|| {
                    let tenant = attr_str(&item, "pk")?.strip_prefix("TENANT#")?.to_owned();
                    let sk = attr_str(&item, "sk")?;
                    let (thread_id, kind) = if let Some(thread_id) = sk.strip_prefix(THREAD) {
                        (thread_id.to_owned(), DueKind::Thread)
                    } else if let Some(notice) = sk.strip_prefix(THREAD_END) {
                        (notice.rsplit_once('#')?.0.to_owned(), DueKind::EndNotice)
                    } else {
                        // `<thread_id>#<cycle>#<step>`
                        let event = sk.strip_prefix(SENT_EVENT)?;
                        let thread_id = event.rsplitn(3, '#').nth(2)?;
                        (thread_id.to_owned(), DueKind::SentEvent)
                    };
                    let state = serde_json::from_value(serde_json::Value::String(attr_str(
                        &item, "state",
                    )?))
                    .ok()?;
                    Some(DueItem {
                        tenant,
                        thread_id,
                        state,
                        cycle: attr_u32(&item, "cycle")?,
                        step: attr_u32(&item, "step")?,
                        kind,
                    })
                })();
                match parsed {
                    Some(entry) => due.push(entry),
                    None => tracing::error!(
                        shard,
                        "due index entry without the expected attributes; skipped"
                    ),
                }
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(due),
            }
        }
    }

    /// An update of the step a due entry names, conditional on it still being active at
    /// that step and cycle, due at `now`, and not claimed by a live run. Claims expire on
    /// the later of `now` and the wall clock: a replayed run's `now` may lie in the past.
    fn update_still_due(&self, due: &DueItem, now: DateTime<Utc>) -> UpdateItemFluentBuilder {
        let lease_now = now.max(Utc::now());
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.thread_key(&due.tenant, &due.thread_id)))
            .condition_expression(
                "#state = :active AND #cycle = :cycle AND #step = :step AND next_relance_date <= :now \
                 AND (attribute_not_exists(claim_token) OR claim_until < :lease_now)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#cycle", "cycle")
            .expression_attribute_names("#step", "step")
            .expression_attribute_values(":active", s(State::Active.as_str()))
            .expression_attribute_values(":cycle", n(due.cycle))
            .expression_attribute_values(":step", n(due.step))
            .expression_attribute_values(":now", s(index_time(now)))
            .expression_attribute_values(":lease_now", s(index_time(lease_now)))
    }

    /// Claims the step a due entry names for `lease`. `None`: another run has it or it
    /// moved on.
    pub async fn claim(
        &self,
        due: &DueItem,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        token: &str,
    ) -> Result<Option<Claim>, StoreError> {
        let until = now.max(Utc::now()) + lease;
        let result = self
            .update_still_due(due, now)
            .update_expression("SET claim_token = :token, claim_until = :until, claim_step = :step")
            .expression_attribute_values(":token", s(token))
            .expression_attribute_values(":until", s(index_time(until)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let old = out.attributes.unwrap_or_default();
                let expired_claim = attr_str(&old, "claim_token").is_some()
                    && attr_u32(&old, "claim_step") == Some(due.step);
                Ok(Some(Claim {
                    thread: from_item(old)?,
                    expired_claim,
                }))
            }
            Err(err) if is_condition_failed(&err) => Ok(None),
            Err(err) => Err(StoreError::from_sdk(err)),
        }
    }

    /// Moves a due step that falls outside its tenant's sending window to the window's
    /// next opening, unless a live run has claimed it. False when it had moved on.
    pub async fn postpone(
        &self,
        due: &DueItem,
        now: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self
            .update_still_due(due, now)
            .update_expression("SET next_relance_date = :to")
            .expression_attribute_values(":to", s(index_time(to)))
            .send()
            .await;
        applied(result)
    }

    /// Writes the outcome of a claimed step and releases the claim. If a stop or cancel
    /// landed meanwhile, records only the send (`after_end`), never reviving the cycle.
    pub async fn commit(
        &self,
        thread: &ThreadRelance,
        after_end: &ThreadRelance,
        token: &str,
    ) -> Result<CommitOutcome, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.thread_item(thread)?))
            .condition_expression("claim_token = :token AND #state = :active")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":token", s(token))
            .expression_attribute_values(":active", s(State::Active.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => return Ok(CommitOutcome::Committed),
            Err(err) if is_condition_failed(&err) => {}
            Err(err) => return Err(StoreError::from_sdk(err)),
        }
        let history = serde_dynamo::to_attribute_value(&after_end.history)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.thread_key(&thread.tenant_id, &thread.thread_id)))
            .update_expression(
                "SET messages_sent = :sent, history = :history, last_sent_at = :last \
                 REMOVE claim_token, claim_until, claim_step",
            )
            .condition_expression("claim_token = :token")
            .expression_attribute_values(":sent", n(after_end.messages_sent))
            .expression_attribute_values(":history", history)
            .expression_attribute_values(":token", s(token));
        update = update.expression_attribute_values(
            ":last",
            after_end
                .last_sent_at
                .map_or(AttributeValue::Null(true), |t| {
                    s(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
                }),
        );
        match update.send().await {
            Ok(_) => Ok(CommitOutcome::EndedMeanwhile),
            Err(err) if is_condition_failed(&err) => Ok(CommitOutcome::ClaimLost),
            Err(err) => Err(StoreError::from_sdk(err)),
        }
    }

    /// After the end event of `thread` went out: the live item leaves the due index, a
    /// replaced cycle's end notice is deleted. False when something else changed it first.
    pub async fn clear_notice(
        &self,
        due: &DueItem,
        thread: &ThreadRelance,
    ) -> Result<bool, StoreError> {
        if due.kind == DueKind::EndNotice {
            let result = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(self.end_notice_key(
                    &thread.tenant_id,
                    &thread.thread_id,
                    thread.cycle,
                )))
                .condition_expression("attribute_exists(pk)")
                .send()
                .await;
            return applied(result);
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.thread_key(&thread.tenant_id, &thread.thread_id)))
            .update_expression("SET notify_pending = :false REMOVE due_shard, next_relance_date")
            .condition_expression("#state = :state AND #cycle = :cycle AND notify_pending = :true")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#cycle", "cycle")
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":state", s(thread.state.as_str()))
            .expression_attribute_values(":cycle", n(thread.cycle))
            .send()
            .await;
        applied(result)
    }
}

fn end_notice_sk(thread_id: &str, cycle: u32) -> String {
    format!("{THREAD_END}{thread_id}#{cycle}")
}

fn sent_event_sk(thread_id: &str, cycle: u32, step: u32) -> String {
    format!("{SENT_EVENT}{thread_id}#{cycle}#{step}")
}

fn thread_changed() -> StoreError {
    StoreError::Conflict(FieldError::new(
        "",
        "conflict",
        "the thread's relance changed at the same time; read it again",
    ))
}

#[cfg(test)]
mod tests {
    use super::stable_hash;

    #[test]
    fn shard_hash_is_stable_and_separates_parts() {
        // Fixed value: changing the hash would move every due item to another shard.
        assert_eq!(stable_hash(&["acme", "t-1"]), 0xdd45_18c1_415a_95db);
        assert_eq!(stable_hash(&[]), 0xcbf2_9ce4_8422_2325);
        assert_ne!(stable_hash(&["ab", "c"]), stable_hash(&["a", "bc"]));
    }
}
