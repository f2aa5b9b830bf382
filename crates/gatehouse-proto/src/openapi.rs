//! What every OpenAPI document of Gatehouse declares the same way.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// The `bearer` security scheme (a JWT access token, RFC 6750) operations name.
pub struct BearerSecurity;

impl utoipa::Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
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
