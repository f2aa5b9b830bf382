//! What every request passes before its route, in one layer: each `from_fn` layer boxes a
//! clone of the rest of the stack for every request, so the three concerns share one.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use gatehouse_proto::web::{ErrorForm, describe_bare_error};

use crate::limits::{RateLimits, per_ip_refusal};

/// The per-IP limits; a body for framework errors (a method the route does not take, a body
/// over the limit, a timeout): the OAuth endpoints' error form under `/oauth2/`, a problem
/// everywhere else; the request's metrics.
pub(crate) async fn edges(
    State(limits): State<Arc<RateLimits>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let started = Instant::now();
    let form = match request.uri().path().starts_with("/oauth2/") {
        true => ErrorForm::OAuth,
        false => ErrorForm::Problem,
    };
    let response = match per_ip_refusal(&limits, &request) {
        Some(refused) => refused,
        None => next.run(request).await,
    };
    let response = describe_bare_error(response, form).await;
    crate::metrics::record(route.as_ref(), &method, response.status(), started);
    response
}
