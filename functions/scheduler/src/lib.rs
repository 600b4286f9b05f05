//! `relance-scheduler`: one run finds the thread relances due at `now` through the due
//! index and performs each one's next step: claim, send, commit, publish.
//!
//! A customer never receives the same step twice: a step is sent only under a claim (a
//! conditional write that one run wins), and committed under that claim. A run that died
//! between send and commit leaves an expired claim; the next run records the step as
//! `unknown` and moves on without sending.
//!
//! The end of a cycle is announced at least once: an ended thread stays due until its end
//! event is published, so a later run publishes what a failed or dead run could not.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use relance_shared::config::{ConfigError, SdkConfig, StoreConfig, parsed, required};
use relance_shared::domain::event::DomainEvent;
use relance_shared::domain::recipient::Recipient;
use relance_shared::domain::settings::SendingWindow;
use relance_shared::domain::thread::{SendResult, State, Step, ThreadRelance};
use relance_shared::outbound::{
    EventPublisher, MarketplaceConfig, MarketplaceMessage, MarketplaceSender, SendError, SmsSender,
};
use relance_shared::store::{CommitOutcome, DueItem, DueKind, Store, StoreError};
use serde::Serialize;
use tokio::sync::{Mutex, OnceCell};

/// Thread relances a run processes at once unless configured otherwise.
pub const DEFAULT_CONCURRENCY: usize = 16;

#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Thread relances processed at once.
    pub concurrency: usize,
    /// Transient failures of one step before it is given up as `failed`.
    pub max_attempts: u32,
    /// How long a claim protects a step; longer than the function's timeout, so that a
    /// live run's claim never expires.
    pub claim_lease: Duration,
    /// A run stops taking new items when less than this remains before its deadline.
    pub time_margin: Duration,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_CONCURRENCY,
            max_attempts: 5,
            claim_lease: Duration::from_secs(900),
            time_margin: Duration::from_secs(20),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub store: StoreConfig,
    pub run: RunConfig,
    pub events_topic_arn: String,
    pub sms_per_second: u32,
    pub marketplace: MarketplaceConfig,
}

impl SchedulerConfig {
    pub async fn from_env(aws: &SdkConfig) -> Result<Self, ConfigError> {
        let defaults = RunConfig::default();
        let run = RunConfig {
            concurrency: parsed("SCHEDULER_CONCURRENCY", defaults.concurrency)?.max(1),
            max_attempts: parsed("SEND_MAX_ATTEMPTS", defaults.max_attempts)?.max(1),
            claim_lease: Duration::from_secs(parsed(
                "CLAIM_LEASE_SECONDS",
                defaults.claim_lease.as_secs(),
            )?),
            time_margin: Duration::from_secs(parsed(
                "RUN_TIME_MARGIN_SECONDS",
                defaults.time_margin.as_secs(),
            )?),
        };
        Ok(Self {
            store: StoreConfig::from_env()?,
            run,
            events_topic_arn: required("EVENTS_TOPIC_ARN")?,
            sms_per_second: parsed("SMS_PER_SECOND", 20u32)?,
            marketplace: MarketplaceConfig::from_env(aws).await?,
        })
    }
}

/// The senders a run uses.
#[derive(Clone)]
pub struct Senders {
    pub sms: Arc<dyn SmsSender>,
    pub marketplace: Arc<dyn MarketplaceSender>,
    pub events: Arc<dyn EventPublisher>,
}

/// What a run did, returned as the invocation's result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RunSummary {
    /// Index entries due at the run's time.
    pub due: u64,
    /// Messages that went out.
    pub sent: u64,
    /// Cycles that ended with their final status.
    pub completed: u64,
    pub failed: u64,
    /// Steps that failed transiently and will be retried.
    pub retried: u64,
    /// Steps recorded as `unknown` after a run died between send and commit.
    pub unknown: u64,
    /// Due entries this run had no time for; the next run takes them.
    pub left_for_next_run: u64,
    /// Stops and cancellations announced with `relance.stopped`.
    pub stopped: u64,
    /// Completions and failures announced by a later run than the one that ended them
    /// (that run could not publish the end event, or died before it).
    pub late_end_events: u64,
    /// Due entries outside their tenant's sending window, moved to its next opening.
    pub postponed: u64,
    /// Due entries another run had claimed or that had moved on.
    pub skipped: u64,
    /// Events the topic refused (logged); each stays due, so a later run publishes it.
    pub events_failed: u64,
    /// `relance.sent` events published by a later run than the one that sent the message.
    pub late_sent_events: u64,
    /// `relance.sent` events the topic refused and the table could not keep either:
    /// logged whole, so that an operator can republish them.
    pub sent_events_lost: u64,
}

/// CloudWatch namespace of the run metrics; the template's alarms watch it.
pub const METRICS_NAMESPACE: &str = "Relances";

impl RunSummary {
    /// The run's counts as one line of CloudWatch's embedded metric format: printed to
    /// stdout, Lambda's log pipeline turns it into metrics (`left_for_next_run` becomes
    /// `LeftForNextRun`) with no API call and no extra permission. The function's name is
    /// the one dimension, so two stacks in one account keep their figures apart.
    pub fn metrics_line(&self, function_name: &str, at: DateTime<Utc>) -> String {
        let counts = serde_json::to_value(self).expect("a summary serializes");
        let mut line = serde_json::Map::new();
        line.insert("FunctionName".into(), function_name.into());
        let mut metrics = Vec::new();
        for (field, count) in counts.as_object().into_iter().flatten() {
            let name: String = field
                .split('_')
                .flat_map(|word| {
                    let mut chars = word.chars();
                    chars
                        .next()
                        .map(|first| first.to_ascii_uppercase())
                        .into_iter()
                        .chain(chars)
                })
                .collect();
            metrics.push(serde_json::json!({"Name": name, "Unit": "Count"}));
            line.insert(name, count.clone());
        }
        line.insert(
            "_aws".into(),
            serde_json::json!({
                "Timestamp": at.timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": METRICS_NAMESPACE,
                    "Dimensions": [["FunctionName"]],
                    "Metrics": metrics
                }]
            }),
        );
        serde_json::Value::Object(line).to_string()
    }
}

/// What happened to one due entry.
#[derive(Debug, Default)]
struct ItemReport {
    sent: bool,
    completed: bool,
    failed: bool,
    retried: bool,
    unknown: bool,
    stopped: bool,
    late_end_event: bool,
    late_sent_event: bool,
    postponed: bool,
    skipped: bool,
    left: bool,
    events_failed: u64,
    sent_events_lost: u64,
}

impl RunSummary {
    fn add(&mut self, r: &ItemReport) {
        self.sent += u64::from(r.sent);
        self.completed += u64::from(r.completed);
        self.failed += u64::from(r.failed);
        self.retried += u64::from(r.retried);
        self.unknown += u64::from(r.unknown);
        self.stopped += u64::from(r.stopped);
        self.late_end_events += u64::from(r.late_end_event);
        self.late_sent_events += u64::from(r.late_sent_event);
        self.postponed += u64::from(r.postponed);
        self.skipped += u64::from(r.skipped);
        self.left_for_next_run += u64::from(r.left);
        self.events_failed += r.events_failed;
        self.sent_events_lost += r.sent_events_lost;
    }
}

enum Announced {
    Published,
    NotPublished,
    /// Another run announced it, or the thread got a new relance.
    ChangedMeanwhile,
}

pub struct Scheduler {
    store: Store,
    senders: Senders,
    config: RunConfig,
}

/// Sending windows read once per tenant per run.
#[derive(Default)]
struct Windows(Mutex<HashMap<String, Arc<OnceCell<SendingWindow>>>>);

impl Windows {
    async fn get(&self, store: &Store, tenant: &str) -> Result<SendingWindow, StoreError> {
        let cell = self
            .0
            .lock()
            .await
            .entry(tenant.to_owned())
            .or_default()
            .clone();
        cell.get_or_try_init(|| store.get_settings(tenant))
            .await
            .cloned()
    }
}

impl Scheduler {
    pub fn new(store: Store, senders: Senders, config: RunConfig) -> Self {
        Self {
            store,
            senders,
            config,
        }
    }

    /// One run at `now`: every due entry of every shard, with bounded concurrency, until
    /// `deadline` (less the margin) comes near.
    pub async fn run(
        &self,
        now: DateTime<Utc>,
        deadline: Option<Instant>,
    ) -> Result<RunSummary, StoreError> {
        let shards = futures::stream::iter(0..self.store.due_shards())
            .map(|shard| self.store.query_due(shard, now))
            .buffer_unordered(self.config.concurrency.min(16))
            .collect::<Vec<_>>()
            .await;
        let mut due = Vec::new();
        for shard in shards {
            due.extend(shard?);
        }
        let mut summary = RunSummary {
            due: due.len() as u64,
            ..RunSummary::default()
        };
        let windows = Windows::default();
        let windows = &windows;
        let mut reports = futures::stream::iter(due)
            .map(|item| async move {
                let out_of_time = deadline
                    .is_some_and(|d| d.saturating_duration_since(Instant::now()) < self.config.time_margin);
                if out_of_time {
                    return ItemReport { left: true, ..ItemReport::default() };
                }
                match self.process(&item, now, windows).await {
                    Ok(report) => report,
                    Err(err) => {
                        // The entry stays due; the next run tries again.
                        tracing::error!(tenant = %item.tenant, thread = %item.thread_id, error = %err, "due entry not processed");
                        ItemReport { left: true, ..ItemReport::default() }
                    }
                }
            })
            .buffer_unordered(self.config.concurrency);
        while let Some(report) = reports.next().await {
            summary.add(&report);
        }
        Ok(summary)
    }

    async fn process(
        &self,
        item: &DueItem,
        now: DateTime<Utc>,
        windows: &Windows,
    ) -> Result<ItemReport, StoreError> {
        if item.kind == DueKind::SentEvent {
            return self.publish_kept(item).await;
        }
        match item.state {
            State::Active => self.step(item, now, windows).await,
            // An ended cycle is due while its end is still to be announced.
            State::Stopped | State::Cancelled | State::Completed | State::Failed => {
                self.announce(item).await
            }
        }
    }

    async fn step(
        &self,
        item: &DueItem,
        now: DateTime<Utc>,
        windows: &Windows,
    ) -> Result<ItemReport, StoreError> {
        let window = windows.get(&self.store, &item.tenant).await?;
        if !window.contains(now) {
            let moved = self
                .store
                .postpone(item, now, window.next_opening(now))
                .await?;
            return Ok(ItemReport {
                postponed: moved,
                skipped: !moved,
                ..ItemReport::default()
            });
        }
        let token = uuid::Uuid::new_v4().to_string();
        let Some(claim) = self
            .store
            .claim(item, now, self.config.claim_lease, &token)
            .await?
        else {
            return Ok(ItemReport {
                skipped: true,
                ..ItemReport::default()
            });
        };
        let mut thread = claim.thread;
        let Some(step) = thread.current_step() else {
            return Ok(ItemReport {
                skipped: true,
                ..ItemReport::default()
            });
        };
        let result = if claim.expired_claim {
            tracing::warn!(tenant = %item.tenant, thread = %item.thread_id, step = step.number, "claim expired without commit: recording the step as unknown");
            SendResult::Unknown(
                "a run stopped between send and confirmation; not sent again".into(),
            )
        } else {
            match thread.message(step) {
                None => SendResult::NothingToSend,
                Some(text) => match self.send(&thread, step, text).await {
                    Ok(()) => SendResult::Sent,
                    Err(SendError::Transient(reason)) => SendResult::Transient(reason),
                    Err(SendError::Permanent(reason)) => SendResult::Permanent(reason),
                    Err(SendError::Unknown(reason)) => {
                        tracing::warn!(tenant = %item.tenant, thread = %item.thread_id, step = step.number, %reason, "send outcome unknown: recording it, not sending again");
                        SendResult::Unknown(format!("{reason}; not sent again"))
                    }
                },
            }
        };
        let mut after_end = thread.clone();
        after_end.record_after_end(&result, step, now);
        let events = thread.record(result.clone(), now, &window, self.config.max_attempts);
        let mut report = ItemReport {
            sent: result == SendResult::Sent,
            unknown: matches!(result, SendResult::Unknown(_)),
            ..ItemReport::default()
        };
        // The send's event goes out (or is kept) before the commit, so that no step is
        // recorded as sent without it, even if this run dies right after. The end event
        // goes out through the notice, which the commit writes and which outlives a failure.
        let sent: Vec<_> = events.into_iter().filter(|e| !e.ends_cycle()).collect();
        self.publish_sent(&sent, step.number, thread.state, now, &mut report)
            .await;
        match self.store.commit(&thread, &after_end, &token).await? {
            CommitOutcome::Committed => {
                report.completed = thread.state == State::Completed;
                report.failed = thread.state == State::Failed;
                report.retried =
                    matches!(result, SendResult::Transient(_)) && thread.state == State::Active;
                if thread.notify_pending {
                    match self.announce_end(item, &thread).await {
                        Ok(Announced::Published) | Ok(Announced::ChangedMeanwhile) => {}
                        Ok(Announced::NotPublished) => report.events_failed += 1,
                        Err(err) => {
                            tracing::warn!(tenant = %item.tenant, thread = %item.thread_id, error = %err, "end event published but the thread stays due; the next run may announce it again");
                        }
                    }
                }
            }
            CommitOutcome::EndedMeanwhile => {
                tracing::info!(tenant = %item.tenant, thread = %item.thread_id, "stopped during the send; the send is recorded, the cycle stays ended");
            }
            CommitOutcome::ClaimLost => {
                tracing::warn!(tenant = %item.tenant, thread = %item.thread_id, "the thread got a new relance during the send; this send is not in its history, only in its event");
            }
        }
        Ok(report)
    }

    async fn send(&self, thread: &ThreadRelance, step: Step, text: &str) -> Result<(), SendError> {
        match &thread.recipient {
            Recipient::Phone(phone) => self.senders.sms.send_sms(phone, text).await,
            Recipient::ConversationId(conversation_id) => {
                let message = MarketplaceMessage {
                    tenant_id: &thread.tenant_id,
                    channel: &thread.channel,
                    conversation_id,
                    thread_id: &thread.thread_id,
                    ticket_id: &thread.ticket_id,
                    body: text,
                };
                self.senders
                    .marketplace
                    .send_message(&message, &thread.idempotency_key(step))
                    .await
            }
        }
    }

    /// Publishes the `relance.sent` event of `step`; one the topic refuses is kept in the
    /// table, due at once, for the next run. Only if that fails too is it lost, and then
    /// logged whole (it holds no customer data) so that it can be republished by hand.
    async fn publish_sent(
        &self,
        events: &[DomainEvent],
        step: u32,
        state: State,
        now: DateTime<Utc>,
        report: &mut ItemReport,
    ) {
        for event in events {
            let Err(err) = self.senders.events.publish(event).await else {
                continue;
            };
            report.events_failed += 1;
            match self.store.keep_sent_event(event, step, state, now).await {
                Ok(()) => {
                    tracing::warn!(tenant = %event.tenant_id, thread = %event.thread_id, step, error = %err, "relance.sent not published; the next run publishes it");
                }
                Err(kept) => {
                    report.sent_events_lost += 1;
                    let event_json = serde_json::to_string(event).unwrap_or_default();
                    tracing::error!(event = %event_json, error = %err, keep_error = %kept, "relance.sent not published and not kept: lost");
                }
            }
        }
    }

    /// Publishes a `relance.sent` event an earlier run kept, then forgets it. If the run
    /// dies in between, the next one publishes it again (the backend dedupes by step).
    async fn publish_kept(&self, item: &DueItem) -> Result<ItemReport, StoreError> {
        let Some(event) = self.store.get_sent_event(item).await? else {
            return Ok(ItemReport {
                skipped: true,
                ..ItemReport::default()
            });
        };
        if let Err(err) = self.senders.events.publish(&event).await {
            tracing::error!(tenant = %item.tenant, thread = %item.thread_id, step = item.step, error = %err, "kept relance.sent still not published; the next run tries again");
            return Ok(ItemReport {
                left: true,
                events_failed: 1,
                ..ItemReport::default()
            });
        }
        self.store.delete_sent_event(item).await?;
        Ok(ItemReport {
            late_sent_event: true,
            ..ItemReport::default()
        })
    }

    /// Announces the end of a cycle that a due entry names: a stop or cancel written by
    /// the API (also of a cycle that a new attachment replaced), or a completion or
    /// failure whose run could not publish it.
    async fn announce(&self, item: &DueItem) -> Result<ItemReport, StoreError> {
        let skipped = ItemReport {
            skipped: true,
            ..ItemReport::default()
        };
        let Some(thread) = self.store.get_due(item).await? else {
            return Ok(skipped);
        };
        if !thread.notify_pending || thread.state != item.state || thread.cycle != item.cycle {
            return Ok(skipped);
        }
        Ok(match self.announce_end(item, &thread).await? {
            Announced::Published => ItemReport {
                stopped: matches!(thread.state, State::Stopped | State::Cancelled),
                late_end_event: matches!(thread.state, State::Completed | State::Failed),
                ..ItemReport::default()
            },
            Announced::NotPublished => ItemReport {
                left: true,
                events_failed: 1,
                ..ItemReport::default()
            },
            Announced::ChangedMeanwhile => skipped,
        })
    }

    /// Publishes the end event of an ended cycle, then takes the thread out of the due
    /// index. A failed publish leaves it due, so the next run tries again: the helpdesk
    /// backend learns of every end at least once.
    async fn announce_end(
        &self,
        item: &DueItem,
        thread: &ThreadRelance,
    ) -> Result<Announced, StoreError> {
        let Some(event) = thread.end_event() else {
            return Ok(Announced::ChangedMeanwhile);
        };
        if let Err(err) = self.senders.events.publish(&event).await {
            tracing::error!(event = event.type_name(), tenant = %thread.tenant_id, thread = %thread.thread_id, error = %err, "end event not published; the next run tries again");
            return Ok(Announced::NotPublished);
        }
        Ok(if self.store.clear_notice(item, thread).await? {
            Announced::Published
        } else {
            Announced::ChangedMeanwhile
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_summary_becomes_one_embedded_metric_line() {
        let summary = RunSummary {
            sent: 7,
            failed: 2,
            left_for_next_run: 3,
            ..RunSummary::default()
        };
        let at = DateTime::parse_from_rfc3339("2026-12-09T09:00:00Z")
            .unwrap()
            .to_utc();
        let line: serde_json::Value =
            serde_json::from_str(&summary.metrics_line("relances-SchedulerFunction-1", at))
                .unwrap();

        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(line["_aws"]["Timestamp"], 1_796_806_800_000_i64);
        assert_eq!(directive["Namespace"], "Relances");
        assert_eq!(
            directive["Dimensions"],
            serde_json::json!([["FunctionName"]])
        );
        assert_eq!(line["FunctionName"], "relances-SchedulerFunction-1");
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 14, "one metric per count: {names:?}");
        // Every declared metric has its value at the top level, as the format requires.
        for name in &names {
            assert!(line[name].is_u64(), "{name} has no value");
        }
        assert_eq!(
            (
                &line["Sent"],
                &line["Failed"],
                &line["LeftForNextRun"],
                &line["Due"]
            ),
            (
                &serde_json::json!(7),
                &serde_json::json!(2),
                &serde_json::json!(3),
                &serde_json::json!(0)
            )
        );
    }
}
