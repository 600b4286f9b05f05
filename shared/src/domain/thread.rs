//! The thread relance: a relance attached to one thread, with its snapshot, counters and
//! schedule, and the state machine that the API and the scheduler drive.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::event::{DomainEvent, EventDetail};
use super::recipient::{Recipient, RecipientInput};
use super::relance::{Relance, SendType};
use super::response::Response;
use super::schedule::{due_date, retry_delay};
use super::settings::SendingWindow;
use super::template::{self, is_placeholder_key};
use super::{FieldError, WAITING_STATUS, char_len, external_id, is_channel_code};

pub const SMS_MAX: usize = 1_600;
pub const CHANNEL_MESSAGE_MAX: usize = 10_000;
pub const CONTEXT_MAX_ENTRIES: usize = 50;
pub const CONTEXT_VALUE_MAX: usize = 1_000;
/// History entries kept per thread relance (a full cycle of 50 reminders, its end and
/// some retries fit).
pub const HISTORY_MAX: usize = 80;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Active,
    Completed,
    Stopped,
    Cancelled,
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Completed => "completed",
            State::Stopped => "stopped",
            State::Cancelled => "cancelled",
            State::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Reminder,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Sent,
    Failed,
    Unknown,
    Retry,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub step: u32,
    pub kind: StepKind,
    pub at: DateTime<Utc>,
    pub outcome: Outcome,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadRelance {
    pub tenant_id: String,
    pub thread_id: String,
    pub ticket_id: String,
    pub relance_id: String,
    pub relance_name: String,
    pub channel: String,
    pub send_type: SendType,
    pub recipient: Recipient,
    pub frequency_days: u32,
    pub max_sends: u32,
    pub final_status: String,
    /// The default response rendered at attach time (snapshot).
    pub reminder_text: String,
    /// The end-of-cycle response rendered at attach time, if the relance has one.
    pub end_text: Option<String>,
    /// Increments each time a relance is (re)attached to the thread.
    pub cycle: u32,
    pub attached_at: DateTime<Utc>,
    pub state: State,
    pub state_reason: Option<String>,
    /// The next step to perform: reminders are 1..=max_sends, `max_sends + 1` is the end.
    pub step: u32,
    pub messages_sent: u32,
    /// Transient failures of the current step so far.
    pub attempts: u32,
    /// When the scheduler next has something to do for this thread (a step, or the
    /// announcement of the cycle's end); `None` when nothing.
    pub next_relance_date: Option<DateTime<Utc>>,
    pub last_sent_at: Option<DateTime<Utc>>,
    /// The cycle ended and its end event (`relance.completed`, `relance.failed` or
    /// `relance.stopped`) may not have been published yet: the item stays in the due
    /// index until it has, so that the helpdesk backend always learns of the end.
    #[serde(default)]
    pub notify_pending: bool,
    pub history: Vec<HistoryEntry>,
    pub updated_at: DateTime<Utc>,
}

/// The attach request (`PUT /threads/{thread_id}/relance`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachInput {
    pub relance_id: String,
    pub ticket_id: String,
    pub ticket_status: String,
    pub channel: String,
    pub recipient: RecipientInput,
    #[serde(default)]
    pub context: HashMap<String, String>,
}

/// What an attach does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attach {
    /// The same relance is already active on the thread: nothing changes.
    Unchanged,
    /// A new cycle starts (first attach, or replacing another relance or a finished one).
    Started(Box<ThreadRelance>),
}

/// The result of sending one step, as the scheduler saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    Sent,
    /// The customer may or may not have it (a run stopped between send and commit, or the
    /// provider's answer was lost): never sent again. The text says why.
    Unknown(String),
    /// The step has no message (end of cycle without an end response).
    NothingToSend,
    Transient(String),
    Permanent(String),
}

/// The step the scheduler performs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub number: u32,
    pub kind: StepKind,
}

impl AttachInput {
    /// Checks the request against the relance and its responses and, unless the same
    /// relance is already active, builds the new thread relance (snapshot and schedule).
    #[allow(clippy::too_many_arguments)]
    pub fn attach(
        self,
        tenant_id: &str,
        thread_id: &str,
        relance: &Relance,
        default_response: &Response,
        end_response: Option<&Response>,
        window: &SendingWindow,
        existing: Option<&ThreadRelance>,
        now: DateTime<Utc>,
    ) -> Result<Attach, FieldError> {
        let ticket_id = external_id("ticket_id", &self.ticket_id)?;
        if self.ticket_status != WAITING_STATUS {
            return Err(FieldError::new(
                "ticket_status",
                "not_waiting",
                "the ticket must be in status attente_client to attach a relance",
            ));
        }
        if !is_channel_code(&self.channel) {
            return Err(FieldError::new(
                "channel",
                "invalid_channel",
                "channel codes are 1 to 32 of a-z, 0-9, _ and -",
            ));
        }
        if !relance.allows_channel(&self.channel) {
            return Err(FieldError::new(
                "channel",
                "channel_not_allowed",
                format!(
                    "relance \"{}\" is not offered on channel {}",
                    relance.name, self.channel
                ),
            ));
        }
        let recipient = self.recipient.validate(relance.send_type)?;
        check_context(&self.context)?;
        if let Some(current) = existing
            && current.state == State::Active
            && current.relance_id == relance.id
        {
            return Ok(Attach::Unchanged);
        }
        let limit = match relance.send_type {
            SendType::Sms => SMS_MAX,
            SendType::Channel => CHANNEL_MESSAGE_MAX,
        };
        let reminder_text = render(default_response, &self.context, limit)?;
        let end_text = end_response
            .map(|r| render(r, &self.context, limit))
            .transpose()?;
        let next = due_date(window, now, relance.frequency_days, 1, None);
        Ok(Attach::Started(Box::new(ThreadRelance {
            tenant_id: tenant_id.to_owned(),
            thread_id: thread_id.to_owned(),
            ticket_id,
            relance_id: relance.id.clone(),
            relance_name: relance.name.clone(),
            channel: self.channel,
            send_type: relance.send_type,
            recipient,
            frequency_days: relance.frequency_days,
            max_sends: relance.max_sends,
            final_status: relance.final_status.clone(),
            reminder_text,
            end_text,
            cycle: existing.map_or(1, |e| e.cycle + 1),
            attached_at: now,
            state: State::Active,
            state_reason: None,
            step: 1,
            messages_sent: 0,
            attempts: 0,
            next_relance_date: Some(next),
            last_sent_at: None,
            notify_pending: false,
            history: Vec::new(),
            updated_at: now,
        })))
    }
}

fn check_context(context: &HashMap<String, String>) -> Result<(), FieldError> {
    if context.len() > CONTEXT_MAX_ENTRIES {
        return Err(FieldError::new(
            "context",
            "too_long",
            format!("context holds at most {CONTEXT_MAX_ENTRIES} values"),
        ));
    }
    for (key, value) in context {
        if !is_placeholder_key(key) {
            return Err(FieldError::new(
                format!("context.{}", key.chars().take(40).collect::<String>()),
                "invalid_key",
                "context keys are placeholder names: 1 to 32 of a-z and _",
            ));
        }
        if char_len(value) > CONTEXT_VALUE_MAX {
            return Err(FieldError::new(
                format!("context.{key}"),
                "too_long",
                format!("context values are at most {CONTEXT_VALUE_MAX} characters"),
            ));
        }
    }
    Ok(())
}

fn render(
    response: &Response,
    context: &HashMap<String, String>,
    limit: usize,
) -> Result<String, FieldError> {
    let text = template::render(&response.body, context).map_err(|missing| {
        let first = missing.first().cloned().unwrap_or_default();
        FieldError::new(
            format!("context.{first}"),
            "missing_placeholder",
            format!(
                "response \"{}\" needs a value for: {}",
                response.title,
                missing.join(", ")
            ),
        )
    })?;
    if char_len(&text) > limit {
        return Err(FieldError::new(
            "context",
            "message_too_long",
            format!(
                "response \"{}\" renders to {} characters; at most {limit} can be sent",
                response.title,
                char_len(&text)
            ),
        ));
    }
    Ok(text)
}

impl ThreadRelance {
    fn kind_of(&self, step: u32) -> StepKind {
        if step <= self.max_sends {
            StepKind::Reminder
        } else {
            StepKind::End
        }
    }

    /// The step due next, while the cycle runs.
    pub fn current_step(&self) -> Option<Step> {
        (self.state == State::Active).then(|| Step {
            number: self.step,
            kind: self.kind_of(self.step),
        })
    }

    /// The key the marketplace connector deduplicates on: the same for every attempt at
    /// one step of one cycle, different for anything else.
    pub fn idempotency_key(&self, step: Step) -> String {
        const NAMESPACE: uuid::Uuid =
            uuid::Uuid::from_u128(0x5f0c_3c1e_7d2a_4b8e_9a61_2f4d_8c3b_1e07);
        let name = format!(
            "{}\n{}\n{}\n{}\n{}",
            self.tenant_id,
            self.thread_id,
            self.cycle,
            self.attached_at.timestamp(),
            step.number
        );
        uuid::Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
    }

    /// The message of a step, `None` for an end of cycle without an end response.
    pub fn message(&self, step: Step) -> Option<&str> {
        match step.kind {
            StepKind::Reminder => Some(&self.reminder_text),
            StepKind::End => self.end_text.as_deref(),
        }
    }

    fn event(&self, now: DateTime<Utc>, detail: EventDetail) -> DomainEvent {
        DomainEvent {
            tenant_id: self.tenant_id.clone(),
            ticket_id: self.ticket_id.clone(),
            thread_id: self.thread_id.clone(),
            relance_id: self.relance_id.clone(),
            cycle: self.cycle,
            occurred_at: now,
            detail,
        }
    }

    fn push_history(
        &mut self,
        step: Step,
        at: DateTime<Utc>,
        outcome: Outcome,
        detail: Option<String>,
    ) {
        self.history.push(HistoryEntry {
            step: step.number,
            kind: step.kind,
            at,
            outcome,
            detail,
        });
        if self.history.len() > HISTORY_MAX {
            let excess = self.history.len() - HISTORY_MAX;
            self.history.drain(..excess);
        }
    }

    /// Applies the result of the current step and returns the events to publish.
    pub fn record(
        &mut self,
        result: SendResult,
        now: DateTime<Utc>,
        window: &SendingWindow,
        max_attempts: u32,
    ) -> Vec<DomainEvent> {
        let Some(step) = self.current_step() else {
            return Vec::new();
        };
        self.updated_at = now;
        let mut events = Vec::new();
        match result {
            SendResult::Sent => {
                self.messages_sent += 1;
                self.last_sent_at = Some(now);
                self.push_history(step, now, Outcome::Sent, None);
                events.push(self.event(
                    now,
                    EventDetail::Sent {
                        step: step.number,
                        kind: step.kind,
                        send_type: self.send_type,
                        messages_sent: self.messages_sent,
                    },
                ));
                events.extend(self.advance(step, now, window));
            }
            SendResult::Unknown(detail) => {
                // Counted as possibly sent for spacing, never resent.
                self.last_sent_at = Some(now);
                self.push_history(step, now, Outcome::Unknown, Some(detail));
                events.extend(self.advance(step, now, window));
            }
            SendResult::NothingToSend => events.extend(self.advance(step, now, window)),
            SendResult::Transient(reason) => {
                self.attempts += 1;
                if self.attempts >= max_attempts {
                    let reason = format!("gave up after {} attempts: {reason}", self.attempts);
                    events.push(self.fail(step, now, reason));
                } else {
                    self.push_history(step, now, Outcome::Retry, Some(reason));
                    self.next_relance_date =
                        Some(window.next_opening(now + retry_delay(self.attempts)));
                }
            }
            SendResult::Permanent(reason) => events.push(self.fail(step, now, reason)),
        }
        events
    }

    fn advance(
        &mut self,
        step: Step,
        now: DateTime<Utc>,
        window: &SendingWindow,
    ) -> Option<DomainEvent> {
        self.attempts = 0;
        match step.kind {
            StepKind::Reminder => {
                self.step += 1;
                self.next_relance_date = Some(due_date(
                    window,
                    self.attached_at,
                    self.frequency_days,
                    self.step,
                    self.last_sent_at,
                ));
                None
            }
            StepKind::End => {
                self.state = State::Completed;
                self.state_reason = Some(format!(
                    "cycle completed; ticket set to {}",
                    self.final_status
                ));
                self.end_pending(now);
                self.end_event()
            }
        }
    }

    fn fail(&mut self, step: Step, now: DateTime<Utc>, reason: String) -> DomainEvent {
        self.state = State::Failed;
        self.state_reason = Some(reason.clone());
        self.push_history(step, now, Outcome::Failed, Some(reason));
        self.end_pending(now);
        self.end_event().expect("a failed cycle has an end event")
    }

    /// Keeps the ended cycle due at `now` until its end event is published.
    fn end_pending(&mut self, now: DateTime<Utc>) {
        self.notify_pending = true;
        self.next_relance_date = Some(now);
        self.updated_at = now;
    }

    /// Records a send that a stop or cancel overtook: the customer got it, the cycle
    /// stays ended.
    pub fn record_after_end(&mut self, result: &SendResult, step: Step, now: DateTime<Utc>) {
        if *result == SendResult::Sent {
            self.messages_sent += 1;
            self.last_sent_at = Some(now);
            self.push_history(
                step,
                now,
                Outcome::Sent,
                Some("sent while the relance was being stopped".into()),
            );
        }
    }

    /// Ends an active cycle early (`stopped` or `cancelled`); the scheduler publishes the
    /// `relance.stopped` event on its next run. Returns false when nothing was active.
    pub fn end_early(&mut self, state: State, reason: String, now: DateTime<Utc>) -> bool {
        if self.state != State::Active {
            return false;
        }
        self.state = state;
        self.state_reason = Some(reason);
        self.end_pending(now);
        true
    }

    /// This cycle as a new attachment leaves it, when its end is still to be announced:
    /// a running cycle ends `cancelled` (replaced), an ended one keeps its pending end.
    /// `None` when there is nothing left to announce.
    pub fn superseded(&self, by_relance: &str, now: DateTime<Utc>) -> Option<ThreadRelance> {
        let mut ended = self.clone();
        if ended.end_early(
            State::Cancelled,
            format!("replaced by relance \"{by_relance}\""),
            now,
        ) || self.notify_pending
        {
            Some(ended)
        } else {
            None
        }
    }

    /// The event announcing how the cycle ended, dated when it ended; `None` while it
    /// runs.
    pub fn end_event(&self) -> Option<DomainEvent> {
        let reason = || self.state_reason.clone().unwrap_or_default();
        let detail = match self.state {
            State::Active => return None,
            State::Completed => EventDetail::Completed {
                final_status: self.final_status.clone(),
                messages_sent: self.messages_sent,
            },
            // A cycle fails at the step it could not send; the step does not advance.
            State::Failed => EventDetail::Failed {
                step: self.step,
                reason: reason(),
            },
            State::Stopped | State::Cancelled => EventDetail::Stopped {
                state: self.state,
                reason: reason(),
            },
        };
        Some(self.event(self.updated_at, detail))
    }

    /// The thread panel's view, dates in the tenant's time zone.
    pub fn view(&self, tz: Tz) -> ThreadView {
        let (phone, conversation_id) = match &self.recipient {
            Recipient::Phone(p) => (Some(p.clone()), None),
            Recipient::ConversationId(c) => (None, Some(c.clone())),
        };
        ThreadView {
            thread_id: self.thread_id.clone(),
            ticket_id: self.ticket_id.clone(),
            relance_id: self.relance_id.clone(),
            relance_name: self.relance_name.clone(),
            state: self.state,
            state_reason: self.state_reason.clone(),
            frequency_days: self.frequency_days,
            max_sends: self.max_sends,
            messages_sent: self.messages_sent,
            next_relance_date: (self.state == State::Active)
                .then_some(self.next_relance_date)
                .flatten()
                .map(|d| d.with_timezone(&tz).to_rfc3339()),
            send_type: self.send_type,
            channel: self.channel.clone(),
            final_status: self.final_status.clone(),
            recipient: RecipientView {
                phone,
                conversation_id,
            },
            attached_at: self.attached_at.with_timezone(&tz).to_rfc3339(),
            history: self
                .history
                .iter()
                .map(|h| HistoryView {
                    step: h.step,
                    kind: h.kind,
                    at: h.at.with_timezone(&tz).to_rfc3339(),
                    outcome: h.outcome,
                    detail: h.detail.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryView {
    pub step: u32,
    pub kind: StepKind,
    pub at: String,
    pub outcome: Outcome,
    pub detail: Option<String>,
}

/// `GET /threads/{thread_id}/relance`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadView {
    pub thread_id: String,
    pub ticket_id: String,
    pub relance_id: String,
    pub relance_name: String,
    pub state: State,
    pub state_reason: Option<String>,
    pub frequency_days: u32,
    pub max_sends: u32,
    pub messages_sent: u32,
    pub next_relance_date: Option<String>,
    pub send_type: SendType,
    pub channel: String,
    pub final_status: String,
    pub recipient: RecipientView,
    pub attached_at: String,
    pub history: Vec<HistoryView>,
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::domain::recipient::RecipientInput;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn response(body: &str) -> Response {
        Response {
            id: "r".into(),
            title: "Rappel".into(),
            body: body.into(),
            placeholders: vec![],
            created_at: utc("2026-01-01T00:00:00Z"),
            updated_at: utc("2026-01-01T00:00:00Z"),
            version: 1,
        }
    }

    fn relance(max_sends: u32) -> Relance {
        Relance {
            id: "rel-1".into(),
            name: "Relance".into(),
            frequency_days: 2,
            max_sends,
            allowed_channels: vec!["sms".into()],
            default_response_id: "r".into(),
            end_response_id: None,
            final_status: "resolu".into(),
            send_type: SendType::Sms,
            created_at: utc("2026-01-01T00:00:00Z"),
            updated_at: utc("2026-01-01T00:00:00Z"),
            version: 1,
        }
    }

    fn input() -> AttachInput {
        AttachInput {
            relance_id: "rel-1".into(),
            ticket_id: "T-1".into(),
            ticket_status: WAITING_STATUS.into(),
            channel: "sms".into(),
            recipient: RecipientInput {
                phone: Some("0612345678".into()),
                conversation_id: None,
            },
            context: HashMap::from([("name".to_owned(), "Léa".to_owned())]),
        }
    }

    /// Every day, all day, in UTC: dates follow the frequency exactly.
    fn open() -> SendingWindow {
        SendingWindow {
            timezone: chrono_tz::UTC,
            start: chrono::NaiveTime::from_hms_opt(0, 0, 0).unwrap(),
            end: None,
            days: [true; 7],
            holidays: Default::default(),
        }
    }

    const T0: &str = "2026-12-07T10:00:00Z";

    fn attached(max_sends: u32, end: Option<&Response>) -> ThreadRelance {
        let reminder = response("Bonjour {{name}}");
        match input()
            .attach(
                "acme",
                "th-1",
                &relance(max_sends),
                &reminder,
                end,
                &open(),
                None,
                utc(T0),
            )
            .unwrap()
        {
            Attach::Started(thread) => *thread,
            Attach::Unchanged => panic!("a first attach starts a cycle"),
        }
    }

    #[test]
    fn attach_snapshots_the_rendered_messages_and_schedules_reminder_one() {
        let thread = attached(3, Some(&response("Fin pour {{name}}")));
        assert_eq!(thread.reminder_text, "Bonjour Léa");
        assert_eq!(thread.end_text.as_deref(), Some("Fin pour Léa"));
        assert_eq!(thread.recipient, Recipient::Phone("+33612345678".into()));
        assert_eq!(
            (thread.cycle, thread.step, thread.state),
            (1, 1, State::Active)
        );
        assert_eq!(thread.next_relance_date, Some(utc(T0) + Duration::days(2)));
    }

    #[test]
    fn attach_refusals_name_their_field() {
        let refuse = |change: fn(&mut AttachInput)| {
            let mut request = input();
            change(&mut request);
            request
                .attach(
                    "acme",
                    "th-1",
                    &relance(3),
                    &response("Bonjour {{name}}"),
                    None,
                    &open(),
                    None,
                    utc(T0),
                )
                .unwrap_err()
                .code
        };
        assert_eq!(refuse(|r| r.ticket_status = "ouvert".into()), "not_waiting");
        assert_eq!(
            refuse(|r| r.channel = "amazon".into()),
            "channel_not_allowed"
        );
        assert_eq!(refuse(|r| r.context.clear()), "missing_placeholder");
        assert_eq!(
            refuse(|r| {
                r.context.insert("name".into(), "x".repeat(1_001));
            }),
            "too_long"
        );
        assert_eq!(
            refuse(|r| {
                r.context.insert("Bad Key".into(), "x".into());
            }),
            "invalid_key"
        );
        assert_eq!(refuse(|r| r.ticket_id = "T 1".into()), "invalid_id");
        let long = "x".repeat(SMS_MAX);
        let too_long = input()
            .attach(
                "acme",
                "th-1",
                &relance(3),
                &response(&format!("{long}{{{{name}}}}")),
                None,
                &open(),
                None,
                utc(T0),
            )
            .unwrap_err();
        assert_eq!(too_long.code, "message_too_long");
    }

    #[test]
    fn the_same_relance_again_is_a_no_op_and_another_one_starts_a_new_cycle() {
        let current = attached(3, None);
        let again = input().attach(
            "acme",
            "th-1",
            &relance(3),
            &response("x {{name}}"),
            None,
            &open(),
            Some(&current),
            utc(T0),
        );
        assert_eq!(again.unwrap(), Attach::Unchanged);
        let other = Relance {
            id: "rel-2".into(),
            ..relance(3)
        };
        let replaced = input()
            .attach(
                "acme",
                "th-1",
                &other,
                &response("x"),
                None,
                &open(),
                Some(&current),
                utc(T0) + Duration::hours(1),
            )
            .unwrap();
        let Attach::Started(next) = replaced else {
            panic!("replacing starts a cycle")
        };
        assert_eq!((next.cycle, next.step, next.messages_sent), (2, 1, 0));
    }

    #[test]
    fn a_cycle_sends_each_reminder_then_completes_with_the_final_status() {
        let mut thread = attached(2, Some(&response("Fin")));
        let mut now = thread.next_relance_date.unwrap();
        let mut types = Vec::new();
        for _ in 0..3 {
            let step = thread.current_step().unwrap();
            assert!(thread.message(step).is_some());
            types.extend(
                thread
                    .record(SendResult::Sent, now, &open(), 5)
                    .iter()
                    .map(DomainEvent::type_name),
            );
            if thread.state == State::Active {
                let next = thread.next_relance_date.unwrap();
                assert_eq!(next, now + Duration::days(2));
                now = next;
            }
        }
        assert_eq!(
            types,
            [
                "relance.sent",
                "relance.sent",
                "relance.sent",
                "relance.completed"
            ]
        );
        assert_eq!(
            (thread.state, thread.messages_sent, thread.notify_pending),
            (State::Completed, 3, true),
            "due until the end is announced"
        );
        assert_eq!(thread.view(chrono_tz::UTC).next_relance_date, None);
        assert_eq!(thread.end_event().unwrap().type_name(), "relance.completed");
        assert_eq!(thread.current_step(), None);
        assert_eq!(thread.history.len(), 3);
        assert_eq!(thread.history[2].kind, StepKind::End);
    }

    #[test]
    fn without_an_end_response_the_end_step_sends_nothing_and_completes() {
        let mut thread = attached(1, None);
        let now = thread.next_relance_date.unwrap();
        thread.record(SendResult::Sent, now, &open(), 5);
        let end = thread.current_step().unwrap();
        assert_eq!((end.kind, thread.message(end)), (StepKind::End, None));
        let events = thread.record(
            SendResult::NothingToSend,
            now + Duration::days(2),
            &open(),
            5,
        );
        assert_eq!(
            events
                .iter()
                .map(DomainEvent::type_name)
                .collect::<Vec<_>>(),
            ["relance.completed"]
        );
        assert_eq!((thread.state, thread.messages_sent), (State::Completed, 1));
    }

    #[test]
    fn transient_failures_back_off_then_fail_and_permanent_ones_fail_at_once() {
        let mut thread = attached(3, None);
        let now = thread.next_relance_date.unwrap();
        assert!(
            thread
                .record(SendResult::Transient("503".into()), now, &open(), 3)
                .is_empty()
        );
        assert_eq!(thread.next_relance_date, Some(now + Duration::minutes(5)));
        thread.record(
            SendResult::Transient("503".into()),
            now + Duration::minutes(5),
            &open(),
            3,
        );
        assert_eq!(thread.next_relance_date, Some(now + Duration::minutes(15)));
        let events = thread.record(
            SendResult::Transient("503".into()),
            now + Duration::minutes(15),
            &open(),
            3,
        );
        assert_eq!(events[0].type_name(), "relance.failed");
        assert_eq!(thread.state, State::Failed);
        assert_eq!(
            thread.state_reason.as_deref(),
            Some("gave up after 3 attempts: 503")
        );

        let mut thread = attached(3, None);
        let events = thread.record(SendResult::Permanent("opted out".into()), now, &open(), 3);
        assert_eq!(
            (events.len(), thread.state, thread.notify_pending),
            (1, State::Failed, true)
        );
        assert_eq!(
            thread.end_event().as_ref(),
            events.first(),
            "announced again, unchanged, if the first publish is lost"
        );
    }

    #[test]
    fn an_unknown_outcome_moves_on_without_counting_a_send() {
        let mut thread = attached(3, None);
        let now = thread.next_relance_date.unwrap() + Duration::hours(1);
        assert!(
            thread
                .record(SendResult::Unknown("no answer".into()), now, &open(), 5)
                .is_empty()
        );
        assert_eq!((thread.step, thread.messages_sent), (2, 0));
        assert_eq!(thread.history[0].outcome, Outcome::Unknown);
        assert_eq!(
            thread.next_relance_date,
            Some(now + Duration::days(2)),
            "spaced from the possible send"
        );
    }

    #[test]
    fn a_replaced_cycle_keeps_an_end_to_announce_only_while_one_is_due() {
        let now = utc(T0) + Duration::hours(1);
        let running = attached(3, None);
        let replaced = running.superseded("Autre", now).unwrap();
        assert_eq!(
            (replaced.state, replaced.notify_pending, replaced.cycle),
            (State::Cancelled, true, running.cycle)
        );
        assert_eq!(
            replaced.state_reason.as_deref(),
            Some("replaced by relance \"Autre\"")
        );
        assert_eq!(replaced.superseded("Autre", now), Some(replaced.clone()));
        let announced = ThreadRelance {
            notify_pending: false,
            ..replaced
        };
        assert_eq!(announced.superseded("Autre", now), None);
    }

    #[test]
    fn ending_early_only_applies_to_an_active_cycle() {
        let mut thread = attached(3, None);
        let now = utc(T0) + Duration::hours(1);
        assert!(thread.end_early(State::Stopped, "ticket status changed to ferme".into(), now));
        assert_eq!(
            (
                thread.state,
                thread.notify_pending,
                thread.next_relance_date
            ),
            (State::Stopped, true, Some(now))
        );
        assert_eq!(
            thread.view(chrono_tz::UTC).next_relance_date,
            None,
            "the panel shows no next date"
        );
        assert!(!thread.end_early(State::Cancelled, "again".into(), now));
        assert!(
            thread.record(SendResult::Sent, now, &open(), 5).is_empty(),
            "an ended cycle never advances"
        );
        let event = thread.end_event().unwrap();
        assert_eq!(
            (event.type_name(), event.occurred_at),
            ("relance.stopped", now)
        );
        assert_eq!(
            attached(3, None).end_event(),
            None,
            "a running cycle has no end"
        );
    }

    #[test]
    fn idempotency_keys_differ_per_step_and_cycle_and_repeat_for_retries() {
        let thread = attached(3, None);
        let step = |number| Step {
            number,
            kind: StepKind::Reminder,
        };
        assert_eq!(
            thread.idempotency_key(step(1)),
            thread.idempotency_key(step(1))
        );
        assert_ne!(
            thread.idempotency_key(step(1)),
            thread.idempotency_key(step(2))
        );
        let next_cycle = ThreadRelance {
            cycle: 2,
            ..thread.clone()
        };
        assert_ne!(
            thread.idempotency_key(step(1)),
            next_cycle.idempotency_key(step(1))
        );
    }
}
