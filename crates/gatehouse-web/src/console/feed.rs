//! The revocation feed as gateways see it: the latest entries (without script), and a live view
//! the console's script follows as server-sent events, authorised by the admin's browser session.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use gatehouse_core::service::FeedItem;
use gatehouse_proto::FeedEvent;

use super::{Admin, Chrome, ConsoleError};
use crate::WebState;
use crate::pages::{render, when};

/// Entries the page lists.
const RECENT: u32 = 50;

/// A console stream ends after this long and the browser reconnects (`retry`): an open tab
/// never holds a server's graceful shutdown for longer.
const STREAM_LIFETIME: Duration = Duration::from_secs(60);

const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub struct FeedRow {
    pub at: String,
    pub name: &'static str,
    pub what: String,
}

/// An event in words: what it names, and until when it matters.
fn describe(event: &FeedEvent) -> String {
    match event {
        FeedEvent::TokenRevoked { jti, until } => {
            format!("token {jti} (it would have expired {})", when(*until))
        }
        FeedEvent::SubjectCutoff {
            subject,
            not_before,
        } => format!(
            "every token of {subject} issued before {}",
            when(*not_before)
        ),
        FeedEvent::SessionRevoked { sid, until } => {
            format!(
                "sign-in session {sid} (its tokens expire by {})",
                when(*until)
            )
        }
        FeedEvent::KeysChanged { kid } => format!("signing keys changed (key {kid})"),
        FeedEvent::CaughtUp | FeedEvent::Unknown => String::new(),
    }
}

#[derive(Template)]
#[template(path = "console_feed.html")]
pub struct FeedPage {
    pub chrome: Chrome,
    pub rows: Vec<FeedRow>,
}

pub async fn page(State(state): State<WebState>, admin: Admin) -> Result<Response, ConsoleError> {
    let recent = state.service.recent_feed_events(RECENT).await?;
    let rows = recent
        .iter()
        .rev()
        .map(|(at, event)| FeedRow {
            at: when(*at),
            name: event.name(),
            what: describe(event),
        })
        .collect();
    Ok(render(&FeedPage {
        chrome: admin.chrome(&state, "feed"),
        rows,
    })
    .into_response())
}

/// `event: feed`, data `{"name", "what", "at"}`: what the page's script adds to the list. Each
/// carries where a reconnecting page resumes (`id`), when that is known; the end of a replay
/// carries only that.
fn sse_event(item: &FeedItem, now: i64) -> Option<Event> {
    let (event, resume_from) = match item {
        FeedItem::Event { event, resume_from } => (event, *resume_from),
        FeedItem::CaughtUp { resume_from } => {
            return Some(
                Event::default()
                    .id(resume_from.to_string())
                    .comment("caught up"),
            );
        }
    };
    let data = serde_json::json!({
        "name": event.name(),
        "what": describe(event),
        "at": when(now),
    });
    let sent = Event::default().event("feed").data(data.to_string());
    Some(match resume_from {
        Some(seq) => sent.id(seq.to_string()),
        None => sent,
    })
}

pub async fn events(
    State(state): State<WebState>,
    _admin: Admin,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // EventSource sends it when it reconnects (each stream ends after a minute); anything else
    // there is ignored and the page follows from now.
    let resume_after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let subscription = state.service.watch_revocation_feed(resume_after);
    let service = state.service.clone();
    let updates = stream::unfold(subscription, move |mut subscription| {
        let service = service.clone();
        async move {
            let items = match subscription.next().await? {
                Ok(items) => items,
                Err(e) => {
                    tracing::warn!(error = %e, "the console's feed could not read the change log");
                    return None;
                }
            };
            let now = service.now();
            let events: Vec<Result<Event, Infallible>> = items
                .iter()
                .filter_map(|item| sse_event(item, now))
                .map(Ok)
                .collect();
            Some((stream::iter(events), subscription))
        }
    })
    .flatten();
    let hello = stream::once(async {
        Ok(Event::default()
            .event("ready")
            .retry(Duration::from_secs(1))
            .data("subscribed"))
    });
    let events = hello
        .chain(updates)
        .take_until(tokio::time::sleep(STREAM_LIFETIME));
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}
