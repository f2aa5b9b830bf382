//! The API docs pages a server with OpenAPI documents serves: one Swagger UI listing any number
//! of documents in its selector, and a ReDoc page per document. Everything comes from the
//! server's own origin: Swagger UI from `utoipa-swagger-ui`'s vendored copy, ReDoc from the
//! bundle vendored under `assets/vendor/redoc`. Each document is named by a path on the same
//! origin, so the pages' fetches never cross origins (behind the gateway, the gateway is that
//! origin).
//!
//! The pages get a policy of their own, [`DOCS_CSP`]: Swagger UI and ReDoc set inline styles and
//! ReDoc runs its search in a `blob:` worker. Scripts still come only from this origin.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

/// Where the docs live on every server that has them.
pub const DOCS_PATH: &str = "/docs";

/// The version of the vendored ReDoc bundle.
pub const REDOC_VERSION: &str = "2.5.4";

const REDOC_JS: &str = include_str!("../assets/vendor/redoc/redoc.standalone.js");

/// The docs pages' policy: as strict as the other pages for scripts (this origin only, nothing
/// inline), looser only where the two viewers need it: inline styles, `data:` images and fonts,
/// and ReDoc's `blob:` worker.
pub const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     worker-src 'self' blob:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// One OpenAPI document a docs page lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiDocument {
    name: String,
    path: String,
}

/// Why a document cannot be listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocsError {
    #[error("a docs name is 1 to 40 lowercase letters, digits or '-', not {0:?}")]
    BadName(String),
    #[error("a document's address is a path on the same origin (/…, no query), not {0:?}")]
    BadPath(String),
}

impl ApiDocument {
    /// `name` shows in the selector and in the ReDoc page's address (`/docs/redoc/NAME`);
    /// `path` is where the document is, on the same origin as the docs.
    pub fn new(name: &str, path: &str) -> Result<Self, DocsError> {
        let name_ok = (1..=40).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err(DocsError::BadName(name.to_owned()));
        }
        let path_ok = path.starts_with('/')
            && !path.starts_with("//")
            && path.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~')
            });
        if !path_ok {
            return Err(DocsError::BadPath(path.to_owned()));
        }
        Ok(Self {
            name: name.to_owned(),
            path: path.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Where this document's ReDoc page is.
    pub fn redoc_path(&self) -> String {
        format!("{DOCS_PATH}/redoc/{}", self.name)
    }
}

struct Docs {
    title: String,
    documents: Vec<ApiDocument>,
}

/// `GET /docs` (Swagger UI with every document in its selector, the first one shown first; a
/// document can be picked by address with `?urls.primaryName=NAME`) and `GET /docs/redoc/NAME`.
/// `title` names the server on the pages. Its responses carry their own security headers.
pub fn router<S>(title: &str, documents: Vec<ApiDocument>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let docs = Arc::new(Docs {
        title: title.to_owned(),
        documents,
    });
    Router::new()
        .route(DOCS_PATH, get(|| async { Redirect::to("/docs/") }))
        .route("/docs/", get(swagger_page))
        .route("/docs/index.html", get(swagger_page))
        .route("/docs/swagger-initializer.js", get(swagger_initializer))
        .route("/docs/docs.css", get(docs_css))
        .route("/docs/redoc.standalone.js", get(redoc_js))
        .route("/docs/redoc/{name}", get(redoc_page))
        .route("/docs/{*file}", get(swagger_file))
        .layer(axum::middleware::from_fn(docs_headers))
        .with_state(docs)
}

/// The headers of every docs response: the docs policy, no framing, no sniffing, no referrer;
/// pages are never cached, the viewers' files for an hour.
async fn docs_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(DOCS_CSP));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The bar over both viewers: the server's name, the Swagger UI page and a ReDoc link per
/// document. `current` is the ReDoc page shown, if any.
fn bar(docs: &Docs, current: Option<&str>) -> String {
    let swagger = match current {
        None => r#"<a href="/docs/" aria-current="page">Swagger UI</a>"#.to_owned(),
        Some(_) => r#"<a href="/docs/">Swagger UI</a>"#.to_owned(),
    };
    let redoc: String = docs
        .documents
        .iter()
        .map(|d| {
            let here = if current == Some(d.name()) {
                r#" aria-current="page""#
            } else {
                ""
            };
            format!(
                r#"<a href="{}"{here}>{}</a>"#,
                escape(&d.redoc_path()),
                escape(d.name())
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        r#"<header class="docs-bar"><strong>{} API docs</strong><nav aria-label="API docs">{swagger} <span>ReDoc:</span> {redoc}</nav></header>"#,
        escape(&docs.title)
    )
}

fn page(docs: &Docs, title: &str, current: Option<&str>, head: &str, body: &str) -> Response {
    Html(format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{} — {} API docs</title>
{head}
<link rel="stylesheet" href="/docs/docs.css">
</head>
<body>
{}
{body}
</body>
</html>
"#,
        escape(title),
        escape(&docs.title),
        bar(docs, current),
    ))
    .into_response()
}

async fn swagger_page(State(docs): State<Arc<Docs>>) -> Response {
    page(
        &docs,
        "Swagger UI",
        None,
        r#"<link rel="stylesheet" href="/docs/swagger-ui.css">"#,
        r#"<main id="swagger-ui"></main>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/swagger-ui-standalone-preset.js"></script>
<script src="/docs/swagger-initializer.js"></script>"#,
    )
}

async fn redoc_page(State(docs): State<Arc<Docs>>, Path(name): Path<String>) -> Response {
    let Some(document) = docs.documents.iter().find(|d| d.name == name) else {
        return not_found();
    };
    page(
        &docs,
        &format!("{} (ReDoc)", document.name),
        Some(document.name()),
        "",
        &format!(
            r#"<main><redoc spec-url="{}"></redoc></main>
<script src="/docs/redoc.standalone.js"></script>"#,
            escape(document.path())
        ),
    )
}

fn not_found() -> Response {
    gatehouse_proto::web::problem(StatusCode::NOT_FOUND, "there is no such docs page")
}

/// Swagger UI's start-up script with the documents in it, made per request (it is small).
async fn swagger_initializer(State(docs): State<Arc<Docs>>) -> Response {
    let urls = docs
        .documents
        .iter()
        .map(|d| utoipa_swagger_ui::Url::new(d.name(), d.path()));
    let config = utoipa_swagger_ui::Config::new(urls)
        .validator_url("none")
        .try_it_out_enabled(false);
    swagger_dist("swagger-initializer.js", config)
}

async fn swagger_file(Path(file): Path<String>) -> Response {
    swagger_dist(&file, utoipa_swagger_ui::Config::new(Vec::<&str>::new()))
}

fn swagger_dist(file: &str, config: utoipa_swagger_ui::Config<'_>) -> Response {
    match utoipa_swagger_ui::serve(file, Arc::new(config)) {
        Ok(Some(found)) => {
            let mut response = (
                [
                    (CONTENT_TYPE, found.content_type),
                    (CACHE_CONTROL, "public, max-age=3600".to_owned()),
                ],
                found.bytes.into_owned(),
            )
                .into_response();
            if found.gzpipped {
                response.headers_mut().insert(
                    axum::http::header::CONTENT_ENCODING,
                    HeaderValue::from_static("gzip"),
                );
            }
            if file == "swagger-initializer.js" {
                response
                    .headers_mut()
                    .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
            response
        }
        Ok(None) => not_found(),
        Err(e) => {
            tracing::error!(error = %e, file, "cannot serve a Swagger UI file");
            gatehouse_proto::web::problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the docs page could not be made",
            )
        }
    }
}

async fn redoc_js() -> Response {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        REDOC_JS,
    )
        .into_response()
}

async fn docs_css() -> Response {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        DOCS_CSS,
    )
        .into_response()
}

/// The bar over the viewers, in the shared look's colours; the viewers style the rest.
const DOCS_CSS: &str = r#"
body { margin: 0; }
.docs-bar {
  display: flex; flex-wrap: wrap; align-items: center; gap: 0.5rem 1.25rem;
  padding: 0.75rem 1rem; background: #1f2933; color: #f5f7fa;
  font: 16px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
.docs-bar nav { display: flex; flex-wrap: wrap; align-items: center; gap: 0.25rem 0.75rem; }
.docs-bar a { color: #9fd3ff; padding: 0.35rem 0.1rem; min-height: 44px; display: inline-flex; align-items: center; }
.docs-bar a[aria-current="page"] { color: #ffffff; font-weight: 600; text-decoration: underline; }
.docs-bar a:focus-visible { outline: 3px solid #ffd166; outline-offset: 2px; }
.docs-bar span { color: #cbd2d9; }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths_are_checked() {
        assert!(ApiDocument::new("rates", "/api/rates/openapi.json").is_ok());
        assert!(ApiDocument::new("Rates", "/x").is_err());
        assert!(ApiDocument::new("", "/x").is_err());
        assert!(ApiDocument::new("a b", "/x").is_err());
        assert!(ApiDocument::new("a", "//evil.example/x").is_err());
        assert!(ApiDocument::new("a", "https://evil.example/x").is_err());
        assert!(ApiDocument::new("a", "/x\"><script>").is_err());
        assert!(ApiDocument::new("a", "/x?y").is_err());
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
