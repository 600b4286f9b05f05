//! `relance-api`: the HTTP Lambda. An axum `Router` that `lambda_http` runs behind API
//! Gateway; handlers parse, call the domain and the store, and map the result.

pub mod auth;
pub mod error;
pub mod extract;
mod handlers;

use std::sync::Arc;

use axum::Router;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};
use chrono::{DateTime, SubsecRound, Utc};
use relance_shared::config::{ConfigError, StoreConfig, flag, parsed};
use relance_shared::store::Store;

use crate::error::ApiError;

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub store: StoreConfig,
    /// The JWT claim that names the tenant.
    pub tenant_claim: String,
    /// Local runs only: take the tenant from `X-Tenant-Id` when a request has no claims.
    pub dev_auth: bool,
}

impl ApiConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            store: StoreConfig::from_env()?,
            tenant_claim: parsed("TENANT_CLAIM", "custom:tenant_id".to_owned())?,
            dev_auth: flag("RELANCE_DEV_AUTH"),
        })
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<ApiConfig>,
}

impl AppState {
    pub fn new(store: Store, config: ApiConfig) -> Self {
        Self {
            store,
            config: Arc::new(config),
        }
    }
}

/// Times are kept to the second: that is what the schedule and the index store.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

/// Every route the API serves: one table that builds the router and that the OpenAPI
/// document is checked against.
fn route_table() -> Vec<(&'static str, Method, MethodRouter<AppState>)> {
    use handlers::{relances, responses, settings, threads};
    vec![
        (
            "/relances",
            Method::GET,
            on(MethodFilter::GET, relances::list),
        ),
        (
            "/relances",
            Method::POST,
            on(MethodFilter::POST, relances::create),
        ),
        (
            "/relances/{id}",
            Method::GET,
            on(MethodFilter::GET, relances::get),
        ),
        (
            "/relances/{id}",
            Method::PUT,
            on(MethodFilter::PUT, relances::replace),
        ),
        (
            "/relances/{id}",
            Method::DELETE,
            on(MethodFilter::DELETE, relances::delete),
        ),
        (
            "/responses",
            Method::GET,
            on(MethodFilter::GET, responses::list),
        ),
        (
            "/responses",
            Method::POST,
            on(MethodFilter::POST, responses::create),
        ),
        (
            "/responses/{id}",
            Method::GET,
            on(MethodFilter::GET, responses::get),
        ),
        (
            "/responses/{id}",
            Method::PUT,
            on(MethodFilter::PUT, responses::replace),
        ),
        (
            "/responses/{id}",
            Method::DELETE,
            on(MethodFilter::DELETE, responses::delete),
        ),
        (
            "/settings",
            Method::GET,
            on(MethodFilter::GET, settings::get),
        ),
        (
            "/settings",
            Method::PUT,
            on(MethodFilter::PUT, settings::replace),
        ),
        (
            "/threads/{thread_id}/relance",
            Method::PUT,
            on(MethodFilter::PUT, threads::attach),
        ),
        (
            "/threads/{thread_id}/relance",
            Method::GET,
            on(MethodFilter::GET, threads::get),
        ),
        (
            "/threads/{thread_id}/relance",
            Method::DELETE,
            on(MethodFilter::DELETE, threads::cancel),
        ),
        (
            "/threads/{thread_id}/ticket-status",
            Method::PUT,
            on(MethodFilter::PUT, threads::ticket_status),
        ),
    ]
}

/// `(path, method)` of every route, for the OpenAPI check.
pub fn routes() -> Vec<(&'static str, Method)> {
    route_table()
        .into_iter()
        .map(|(path, method, _)| (path, method))
        .collect()
}

pub fn app(state: AppState) -> Router {
    route_table()
        .into_iter()
        .fold(Router::new(), |router, (path, _, handler)| {
            router.route(path, handler)
        })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .fallback(|| async { ApiError::NoRoute })
        .with_state(state)
}
