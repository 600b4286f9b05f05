//! `relance-scheduler` Lambda entry point. EventBridge invokes it on a schedule; the
//! event's `time` is the run's "now", so replaying an event at a chosen time catches up
//! after an outage.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, SubsecRound, Utc};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use relance_scheduler::{RunSummary, Scheduler, SchedulerConfig, Senders};
use relance_shared::outbound::{HttpMarketplace, SnsEvents, SnsSms};
use relance_shared::store::Store;
use serde::Deserialize;

/// The part of an EventBridge scheduled event the run needs.
#[derive(Deserialize)]
struct ScheduledEvent {
    time: DateTime<Utc>,
}

/// The invocation's deadline as an `Instant`. Local emulators may report a timeout
/// instead of an epoch time; a deadline more than a day in the past means "none given".
fn deadline(context: &lambda_runtime::Context) -> Option<Instant> {
    let deadline = context.deadline();
    let now = SystemTime::now();
    match deadline.duration_since(now) {
        Ok(remaining) => Some(Instant::now() + remaining),
        Err(late) if late.duration() < Duration::from_secs(86_400) => Some(Instant::now()),
        Err(_) => None,
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let aws = relance_shared::config::aws().await;
    let config = SchedulerConfig::from_env(&aws).await?;
    let store = Store::from_sdk_config(&aws, &config.store);
    let sns = aws_sdk_sns::Client::new(&aws);
    let marketplace = HttpMarketplace::new(&config.marketplace)?;
    // Open every connection during init, not in the first run.
    store.warm_up().await?;
    sns.get_topic_attributes()
        .topic_arn(&config.events_topic_arn)
        .send()
        .await?;
    marketplace.warm_up().await;
    let senders = Senders {
        sms: Arc::new(SnsSms::new(sns.clone(), config.sms_per_second)),
        marketplace: Arc::new(marketplace),
        events: Arc::new(SnsEvents::new(sns, config.events_topic_arn.clone())),
    };
    let scheduler = Scheduler::new(store, senders, config.run);
    let scheduler = &scheduler;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ScheduledEvent>| async move {
            let now = event.payload.time.trunc_subsecs(0);
            let summary: RunSummary = scheduler.run(now, deadline(&event.context)).await?;
            tracing::info!(now = %now, ?summary, "run finished");
            // Stamped with the wall clock: a replayed event may be older than CloudWatch accepts.
            let function = &event.context.env_config.function_name;
            println!("{}", summary.metrics_line(function, Utc::now()));
            Ok::<_, Error>(summary)
        },
    ))
    .await
}
