//! A browser as the protocol sees it: an HTTP client that keeps cookies, follows nothing by
//! itself, and fills in the pages' forms (with their anti-forgery token).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_core::{AuthMethod, Client, GrantType};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use super::TestApp;

pub const CALLBACK: &str = "https://rp.example/callback";
pub const AFTER_LOGOUT: &str = "https://rp.example/signed-out";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// The S256 challenge of `verifier`.
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

pub struct Browser<'a> {
    pub app: &'a TestApp,
    pub cookies: BTreeMap<String, String>,
    pub origin: Option<String>,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// The value of the hidden or text input `name` in the page's first form that has it.
    pub fn input(&self, name: &str) -> Option<String> {
        let at = self.body.find(&format!("name=\"{name}\""))?;
        let tag_start = self.body[..at].rfind('<')?;
        let tag = &self.body[tag_start..at + self.body[at..].find('>')?];
        let start = tag.find(" value=\"")? + " value=\"".len();
        let end = tag[start..].find('"')? + start;
        Some(html_unescape(&tag[start..end]))
    }

    /// The query parameter `name` of the redirect's location.
    pub fn location_param(&self, name: &str) -> Option<String> {
        let location = self.location.as_deref()?;
        let url = url::Url::parse(location)
            .or_else(|_| url::Url::parse(&format!("http://local{location}")))
            .ok()?;
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

fn html_unescape(text: &str) -> String {
    text.replace("&#38;", "&")
        .replace("&amp;", "&")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookies: BTreeMap::new(),
            origin: Some(app.base.clone()),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn finish(&mut self, response: reqwest::Response) -> Page {
        for value in response.headers().get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || text.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status: response.status().as_u16(),
            location: response
                .headers()
                .get(LOCATION)
                .map(|v| v.to_str().unwrap().to_owned()),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    /// GET a path (or a full URL) on the server.
    pub async fn get(&mut self, path: &str) -> Page {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            self.app.url(path)
        };
        let response = self
            .app
            .http
            .get(url)
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.finish(response).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let mut request = self
            .app
            .http
            .post(self.app.url(path))
            .header(COOKIE, self.cookie_header())
            .form(form);
        if let Some(origin) = &self.origin {
            request = request.header("origin", origin);
        }
        let response = request.send().await.unwrap();
        self.finish(response).await
    }

    /// Posts the form of `page` (its anti-forgery token included) with `fields`.
    pub async fn submit(&mut self, page: &Page, path: &str, fields: &[(&str, &str)]) -> Page {
        let token = page.input("csrf_token").expect("the page has a form token");
        let mut form: Vec<(&str, &str)> = vec![("csrf_token", token.as_str())];
        form.extend_from_slice(fields);
        self.post(path, &form).await
    }

    /// Signs in on the sign-in page; returns the answer to the form.
    pub async fn sign_in(&mut self, username: &str, password: &str) -> Page {
        let page = self.get("/signin").await;
        assert_eq!(page.status, 200);
        self.submit(
            &page,
            "/signin",
            &[("username", username), ("password", password)],
        )
        .await
    }

    /// Follows an authorization request through sign-in (if asked) and consent (allowing it) to
    /// the redirect back to the client; returns that redirect.
    pub async fn authorize(&mut self, query: &str, password: Option<(&str, &str)>) -> Page {
        let mut page = self.get(&format!("/oauth2/authorize?{query}")).await;
        if let (Some(location), Some((user, pass))) = (page.location.clone(), password)
            && location.starts_with("/signin")
        {
            let form = self.get(&location).await;
            let return_to = form.input("return_to").unwrap();
            let answer = self
                .submit(
                    &form,
                    "/signin",
                    &[
                        ("username", user),
                        ("password", pass),
                        ("return_to", &return_to),
                    ],
                )
                .await;
            assert_eq!(answer.status, 303, "{}", answer.body);
            page = self.get(answer.location.as_deref().unwrap()).await;
        }
        if page.status == 200 && page.body.contains("/oauth2/authorize/decision") {
            page = self.decide(&page, "allow").await;
        }
        page
    }

    /// Answers the consent page.
    pub async fn decide(&mut self, consent: &Page, decision: &str) -> Page {
        let mut fields: Vec<(String, String)> = Vec::new();
        for name in [
            "client_id",
            "redirect_uri",
            "response_type",
            "scope",
            "state",
            "code_challenge",
            "code_challenge_method",
            "nonce",
            "prompt",
            "max_age",
            "login_hint",
        ] {
            if let Some(value) = consent.input(name) {
                fields.push((name.to_owned(), value));
            }
        }
        fields.push(("decision".into(), decision.into()));
        let borrowed: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.submit(consent, "/oauth2/authorize/decision", &borrowed)
            .await
    }
}

/// Stores a client that signs people in with the code flow.
pub async fn code_client(app: &TestApp, id: &str, public: bool) -> Option<String> {
    use gatehouse_core::Store;
    let now = gatehouse_token::now_unix();
    let mut client = Client::new(
        id.into(),
        format!("App {id}"),
        if public {
            AuthMethod::None
        } else {
            AuthMethod::ClientSecretBasic
        },
        vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        now,
    );
    client.redirect_uris = vec![CALLBACK.into(), "http://127.0.0.1/native".into()];
    client.post_logout_redirect_uris = vec![AFTER_LOGOUT.into()];
    let secret = (!public).then(|| format!("{id}-secret-{}", "x".repeat(32)));
    client.secret_hash = secret.as_deref().map(gatehouse_core::secret::hash_secret);
    app.store.insert_client(&client).await.unwrap();
    secret
}

/// An authorization request's query for `client_id` with PKCE, state and nonce.
pub fn request(client_id: &str, scope: &str) -> String {
    let challenge = challenge(VERIFIER);
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", CALLBACK)
        .append_pair("scope", scope)
        .append_pair("state", "st-1")
        .append_pair("nonce", "n-1")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    query.finish()
}
