//! The tenant of a request: only from the JWT claims that API Gateway's authorizer
//! verified. For local runs only, `RELANCE_DEV_AUTH=1` lets a request without claims name
//! its tenant in `X-Tenant-Id`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use lambda_http::request::RequestContext;
use relance_shared::domain::is_external_id;

use crate::AppState;
use crate::error::ApiError;

pub const DEV_TENANT_HEADER: &str = "x-tenant-id";
pub const TENANT_MAX: usize = 128;

/// The verified tenant of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant(pub String);

fn verified_claim<'a>(parts: &'a Parts, claim: &str) -> Option<&'a str> {
    match parts.extensions.get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(context) => context
            .authorizer
            .as_ref()?
            .jwt
            .as_ref()?
            .claims
            .get(claim)
            .map(String::as_str),
        _ => None,
    }
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(claim) = verified_claim(parts, &state.config.tenant_claim) {
            let claim = claim.trim();
            // Any string is safe as a key; bounded so that keys stay small.
            if claim.is_empty() || claim.len() > TENANT_MAX {
                return Err(ApiError::Unauthenticated);
            }
            return Ok(Tenant(claim.to_owned()));
        }
        if state.config.dev_auth
            && let Some(header) = parts
                .headers
                .get(DEV_TENANT_HEADER)
                .and_then(|v| v.to_str().ok())
            && is_external_id(header)
        {
            return Ok(Tenant(header.to_owned()));
        }
        Err(ApiError::Unauthenticated)
    }
}
