use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream, StreamExt};
use gatehouse_core::OAuthError;
use gatehouse_core::service::{ClientAuth, FeedItem, PresentedAuth};
use gatehouse_proto::FeedEvent;

use crate::AppState;
use crate::error::OAuthReply;
use crate::extract::basic_credentials;

/// Readers treat a feed silent for longer than their staleness budget (default 30 s) as lost.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// The revocation feed for gateways: server-sent events, resumable with `Last-Event-ID`. Without
/// one, it starts with every change that can still matter (those of the last access-token
/// lifetime); a `caught_up` event follows that backlog. New revocations are sent as they happen,
/// during the backlog too (those carry no `id`, since resuming from them would skip the rest of
/// the backlog). A comment every 5 s keeps the connection visibly alive. Needs a confidential client
/// with the `revocations:read` scope, authenticated with HTTP Basic.
#[utoipa::path(get, path = "/oauth2/revocations", tag = "oauth2",
    params(("Last-Event-ID" = Option<i64>, Header, description = "resume after this event")),
    responses(
        (status = 200, content_type = "text/event-stream",
         description = "events token_revoked {jti, until}, subject_cutoff {subject, not_before}, keys_changed {kid}, caught_up"),
        (status = 400, description = "Last-Event-ID is not an event id"),
        (status = 401, description = "Client authentication failed"),
        (status = 403, description = "The client may not read the feed"),
    ),
    security(("client_basic" = [])))]
pub async fn revocations(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, OAuthReply> {
    let (client_id, secret) = basic_credentials(&headers)?
        .ok_or_else(|| OAuthError::invalid_client("client authentication is required"))?;
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .ok_or_else(|| OAuthError::invalid_request("Last-Event-ID must be an event id"))?,
        ),
    };
    let auth = ClientAuth {
        client_id,
        secret: Some(secret),
        method: PresentedAuth::Basic,
    };
    let subscription = state
        .service
        .open_revocation_feed(&auth, last_event_id)
        .await?;
    let stopped = state.stopped();
    let updates = stream::unfold(subscription, |mut subscription| async move {
        let items = match subscription.next().await? {
            Ok(items) => items,
            Err(e) => {
                // The subscriber sees the connection end and resumes, on this node or another.
                tracing::warn!(error = %e, "the revocation feed could not read the change log");
                return None;
            }
        };
        let events: Vec<Result<Event, Infallible>> =
            items.iter().filter_map(sse_event).map(Ok).collect();
        Some((stream::iter(events), subscription))
    })
    .flatten();
    // A first comment tells the reader it is subscribed before any change arrives.
    let hello = stream::once(async { Ok(Event::default().comment("subscribed")) });
    // Ends when the server shuts down: readers reconnect (to another node) with Last-Event-ID.
    let events = hello.chain(updates).take_until(stopped);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// One feed item as a server-sent event; an `id` is set only where resuming from it is safe.
fn sse_event(item: &FeedItem) -> Option<Event> {
    match item {
        FeedItem::Event { resume_from, event } => {
            let sse = Event::default().event(event.name()).json_data(event).ok()?;
            Some(match resume_from {
                Some(id) => sse.id(id.to_string()),
                None => sse,
            })
        }
        FeedItem::CaughtUp { resume_from } => {
            let caught_up = FeedEvent::CaughtUp;
            let sse = Event::default()
                .event(caught_up.name())
                .json_data(&caught_up)
                .ok()?;
            Some(sse.id(resume_from.to_string()))
        }
    }
}
