//! The OpenAPI document's frame; paths and schemas come from the handlers' annotations.

use gatehouse_proto::openapi::{BearerSecurity, CommonResponses, ErrorBody};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gatehouse",
        description = "OAuth 2 authorization server: tokens for machines and people, client \
                       registration, accounts.",
    ),
    tags(
        (name = "oauth2", description = "OAuth 2 endpoints (RFC 6749, 7591, 7592, 7517, 8414)"),
        (name = "users", description = "People's accounts"),
        (name = "admin", description = "Administration: needs the admin role (RFC 9457 errors)"),
        (name = "operations", description = "Health and metrics"),
    ),
    modifiers(&BearerSecurity, &ClientBasicSecurity)
)]
pub struct ApiDoc;

/// HTTP Basic client authentication (RFC 6749 §2.3.1), for the OAuth endpoints.
struct ClientBasicSecurity;

impl utoipa::Modify for ClientBasicSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "client_basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

/// Completes the document once every route's operation is in it.
pub fn complete(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::Modify;
    SERVER_RESPONSES.modify(openapi);
}

/// What the server's extractors and guards answer for any operation of a kind.
const SERVER_RESPONSES: CommonResponses = CommonResponses {
    error_body,
    json_body: CommonResponses::JSON_BODY,
    oauth_body: &[
        (
            400,
            "invalid_request: the body is not of the declared type, repeats a parameter, \
               or is malformed",
        ),
        (413, "The body is larger than the limit"),
    ],
    bearer: &[CommonResponses::UNAUTHORIZED],
    scoped: &[],
    path_params: &[],
    every: &[],
};

/// The OAuth endpoints answer in RFC 6749's error form; userinfo (RFC 6750) and everything
/// else with problems.
fn error_body(path: &str) -> ErrorBody {
    if path.starts_with("/oauth2/") && path != "/oauth2/userinfo" {
        ErrorBody::OAuth
    } else {
        ErrorBody::Problem
    }
}
