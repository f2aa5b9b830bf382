mod admin;
mod discovery;
mod feed;
mod lifecycle;
mod ops;
mod registration;
mod token;
mod userinfo;
mod users;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::openapi::ApiDoc;

pub fn api(state: AppState) -> OpenApiRouter<AppState> {
    let mut api = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(admin::router(state))
        .routes(routes!(discovery::authorization_server_metadata))
        .routes(routes!(discovery::openid_configuration))
        .routes(routes!(discovery::jwks))
        .routes(routes!(token::token))
        .routes(routes!(userinfo::userinfo, userinfo::userinfo_post))
        .routes(routes!(lifecycle::revoke))
        .routes(routes!(lifecycle::introspect))
        .routes(routes!(feed::revocations))
        .routes(routes!(registration::register))
        .routes(routes!(
            registration::read,
            registration::update,
            registration::delete
        ))
        .routes(routes!(users::sign_up))
        .routes(routes!(users::me))
        .routes(routes!(users::change_password))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics));
    // The paths exist only now, so what every operation of a kind answers is added now.
    crate::openapi::complete(api.get_openapi_mut());
    api
}
