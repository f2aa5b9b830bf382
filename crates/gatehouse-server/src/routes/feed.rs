use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream, StreamExt};
use gatehouse_core::OAuthError;
use gatehouse_core::service::{ClientAuth, FeedEvent, PresentedAuth};

use crate::AppState;
use crate::error::OAuthReply;
use crate::extract::basic_credentials;

/// How often a feed looks for new changes; with the gateway's own handling this keeps a
/// revocation's way to every gateway well under a second.
const POLL: Duration = Duration::from_millis(200);
/// Readers treat a feed silent for longer than their staleness budget (default 30 s) as lost.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// The revocation feed for gateways: server-sent events, each with the change log's sequence
/// number as its `id`, resumable with `Last-Event-ID`. Without one, it starts with every change
/// that can still matter (those of the last access-token lifetime); a `caught_up` event follows
/// the backlog. A comment every 5 s keeps the connection visibly alive. Needs a confidential client
/// with the `revocations:read` scope, authenticated with HTTP Basic.
#[utoipa::path(get, path = "/oauth2/revocations", tag = "oauth2",
    params(("Last-Event-ID" = Option<i64>, Header, description = "resume after this event")),
    responses(
        (status = 200, content_type = "text/event-stream",
         description = "events token_revoked {jti, until}, subject_cutoff {subject, not_before}, keys_changed {kid}, caught_up"),
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
    let cursor = state
        .service
        .open_revocation_feed(&auth, last_event_id)
        .await?;
    let service = state.service.clone();
    let stopped = state.stopped();
    let updates = stream::unfold(
        (service, cursor, true, false),
        |(service, mut cursor, first, announced)| async move {
            if !first {
                tokio::time::sleep(POLL).await;
            }
            let events: Vec<Result<Event, Infallible>> = match cursor
                .next(service.store().as_ref())
                .await
            {
                Ok(changes) => changes
                    .iter()
                    .filter_map(|change| {
                        let event = FeedEvent::of(change)?;
                        Event::default()
                            .id(change.seq.to_string())
                            .event(event.name())
                            .json_data(&event)
                            .ok()
                    })
                    .map(Ok)
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "the revocation feed could not read the change log");
                    Vec::new()
                }
            };
            // Once the backlog is out, say so: readers trust their view only from then on.
            let mut events = events;
            let announce = !announced && cursor.caught_up();
            if announce {
                events.push(Ok(Event::default()
                    .event("caught_up")
                    .data(r#"{"type":"caught_up"}"#)));
            }
            Some((
                stream::iter(events),
                (service, cursor, false, announced || announce),
            ))
        },
    )
    .flatten();
    // A first comment tells the reader it is subscribed before any change arrives.
    let hello = stream::once(async { Ok(Event::default().comment("subscribed")) });
    // Ends when the server shuts down: readers reconnect (to another node) with Last-Event-ID.
    let events = hello.chain(updates).take_until(stopped);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}
