//! What every OpenAPI document of Gatehouse declares the same way: the bearer scheme, and the
//! answers that the shared extractors, guards and framework give to any operation of a kind (a
//! missing token, a malformed JSON body, a refused path parameter), so each handler's annotation
//! lists only what is its own and the documents still name every status a client can get.

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, Ref, RefOr, Response};
use utoipa::{PartialSchema, ToSchema};

use crate::{ErrorResponse, PROBLEM_CONTENT_TYPE, Problem};

/// The `bearer` security scheme (a JWT access token, RFC 6750) operations name.
pub struct BearerSecurity;

impl utoipa::Modify for BearerSecurity {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The body an operation's errors have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorBody {
    /// `application/problem+json` (RFC 9457).
    Problem,
    /// The OAuth error object (RFC 6749 §5.2) as `application/json`.
    OAuth,
}

/// A status and what it means for the operations it is added to.
pub type Answer = (u16, &'static str);

/// Completes every operation of a document with the answers its kind always has, and gives each
/// Response Object what OpenAPI 3.1 requires (a `description`) and what clients need (the error
/// body's schema, `WWW-Authenticate` on 401, `Retry-After` on 429 and 503). Statuses a handler
/// declares itself keep their own description.
#[derive(Debug, Clone, Copy)]
pub struct CommonResponses {
    /// The error body of the operation at a path.
    pub error_body: fn(&str) -> ErrorBody,
    /// Operations taking a JSON body whose errors are problems (the shared [`crate::web`]
    /// extractor).
    pub json_body: &'static [Answer],
    /// Operations taking a body whose errors are OAuth errors (forms, and registration's JSON).
    pub oauth_body: &'static [Answer],
    /// Operations that need a bearer token.
    pub bearer: &'static [Answer],
    /// Operations whose bearer token must carry named scopes.
    pub scoped: &'static [Answer],
    /// Operations with path parameters.
    pub path_params: &'static [Answer],
    /// Every operation.
    pub every: &'static [Answer],
}

impl CommonResponses {
    /// Answers of [`crate::web::JsonBody`] when it refuses a body.
    pub const JSON_BODY: &'static [Answer] = &[
        (400, "The body is not valid JSON"),
        (413, "The body is larger than the limit"),
        (415, "The body is not application/json"),
        (422, "The JSON has a missing, unknown or invalid field"),
    ];

    /// The answer to a request without a valid bearer token (RFC 6750 §3.1).
    pub const UNAUTHORIZED: Answer = (
        401,
        "No bearer token, or one that is invalid, expired or revoked; see WWW-Authenticate",
    );
}

impl utoipa::Modify for CommonResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut schemas = vec![(Problem::name().into_owned(), Problem::schema())];
        Problem::schemas(&mut schemas);
        schemas.push((ErrorResponse::name().into_owned(), ErrorResponse::schema()));
        ErrorResponse::schemas(&mut schemas);
        for (name, schema) in schemas {
            components.schemas.entry(name).or_insert(schema);
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            let form = (self.error_body)(path);
            let templated = path.contains('{');
            for operation in operations(item) {
                self.complete(operation, form, templated);
            }
        }
    }
}

impl CommonResponses {
    fn complete(&self, operation: &mut Operation, form: ErrorBody, templated: bool) {
        let mut added: Vec<Answer> = self.every.to_vec();
        match body_media(operation) {
            Some(media) if media == "application/json" && form == ErrorBody::Problem => {
                added.extend_from_slice(self.json_body)
            }
            Some(_) => added.extend_from_slice(self.oauth_body),
            None => {}
        }
        if let Some(scoped) = needs_bearer(operation) {
            added.extend_from_slice(self.bearer);
            if scoped {
                added.extend_from_slice(self.scoped);
            }
        }
        let path_params = templated
            || operation
                .parameters
                .iter()
                .flatten()
                .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Path));
        if path_params {
            added.extend_from_slice(self.path_params);
        }
        let responses = &mut operation.responses.responses;
        for (status, description) in added {
            responses
                .entry(status.to_string())
                .or_insert_with(|| RefOr::T(Response::new(description)));
        }
        for (status, response) in responses.iter_mut() {
            if let RefOr::T(response) = response {
                complete_response(status, response, form);
            }
        }
    }
}

/// A description where there is none (OpenAPI 3.1 requires one), the error body's schema, and
/// the headers that go with the status.
fn complete_response(status: &str, response: &mut Response, form: ErrorBody) {
    let code = status.parse::<u16>().ok();
    if response.description.is_empty() {
        response.description = code
            .and_then(|c| http::StatusCode::from_u16(c).ok())
            .and_then(|c| c.canonical_reason())
            .unwrap_or("Response")
            .to_owned();
    }
    let Some(code) = code.filter(|c| *c >= 400) else {
        return;
    };
    let problem = || reference::<Problem>();
    if response.content.is_empty() {
        let (media, schema) = match form {
            ErrorBody::Problem => (PROBLEM_CONTENT_TYPE, problem()),
            ErrorBody::OAuth => ("application/json", reference::<ErrorResponse>()),
        };
        response.content.insert(
            media.to_owned(),
            ContentBuilder::new().schema(Some(schema)).build().into(),
        );
    }
    for (media, content) in response.content.iter_mut() {
        if let RefOr::T(content) = content
            && content.schema.is_none()
            && media == PROBLEM_CONTENT_TYPE
        {
            content.schema = Some(problem());
        }
    }
    let header = |name: &str, description: &str| {
        (
            name.to_owned(),
            RefOr::T(
                HeaderBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .description(Some(description))
                    .build(),
            ),
        )
    };
    let (name, description) = match code {
        401 => (
            "WWW-Authenticate",
            "The challenge (RFC 6750 §3 for bearer tokens, RFC 7617 for client credentials)",
        ),
        403 if form == ErrorBody::Problem => (
            "WWW-Authenticate",
            "insufficient_scope, with the scope needed, when a scope was missing",
        ),
        429 | 503 => ("Retry-After", "Seconds to wait before trying again"),
        _ => return,
    };
    let (name, value) = header(name, description);
    response.headers.entry(name).or_insert(value);
}

fn reference<T: ToSchema>() -> RefOr<utoipa::openapi::schema::Schema> {
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
        &mut item.query,
    ]
    .into_iter()
    .flatten()
}

/// The media type of the operation's request body, if it has one.
fn body_media(operation: &Operation) -> Option<String> {
    match operation.request_body.as_ref()? {
        RefOr::T(body) => body.content.keys().next().cloned(),
        RefOr::Ref(_) => None,
    }
}

/// `Some(scoped)` when every way to call the operation needs the `bearer` scheme; `scoped` tells
/// whether a scope is named. Operations that may be called without it (`security((), ...)`) or
/// with another scheme get nothing.
fn needs_bearer(operation: &Operation) -> Option<bool> {
    let requirements = serde_json::to_value(operation.security.as_ref()?).ok()?;
    let requirements = requirements.as_array()?;
    let mut scoped = false;
    for requirement in requirements {
        let scopes = requirement.as_object()?.get("bearer")?.as_array()?;
        scoped |= !scopes.is_empty();
    }
    (!requirements.is_empty()).then_some(scoped)
}
