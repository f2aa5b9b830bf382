//! The pages, one template each (under `templates/`, compiled in), and how their values read.

use askama::Template;
use axum::response::Html;

/// Renders a page; a template that fails to render (a bug) is a bare error page.
pub fn render(page: &impl Template) -> Html<String> {
    Html(page.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "a page failed to render");
        "<!doctype html><title>Error</title><p>Something went wrong on our side.</p>".into()
    }))
}

/// One input's problem, shown next to it.
#[derive(Debug, Clone, Default)]
pub struct FieldErrors(pub Vec<(String, String)>);

impl FieldErrors {
    pub fn of(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, detail)| detail.as_str())
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub title: &'static str,
    pub message: String,
    pub code: Option<&'static str>,
    pub advice: &'static str,
}

#[derive(Template)]
#[template(path = "signin.html")]
pub struct SignInPage {
    pub csrf: String,
    pub return_to: String,
    pub username: String,
    pub error: Option<String>,
    pub notice: Option<&'static str>,
    /// The application the person is signing in to, when there is one.
    pub client_name: Option<String>,
}

#[derive(Template)]
#[template(path = "signup.html")]
pub struct SignUpPage {
    pub csrf: String,
    pub return_to: String,
    pub username: String,
    pub email: String,
    pub errors: FieldErrors,
}

/// One scope as the consent page words it.
pub struct ScopeLine {
    pub name: String,
    pub words: String,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage {
    pub csrf: String,
    pub client_name: String,
    pub username: String,
    pub scopes: Vec<ScopeLine>,
    /// The authorization request, carried as hidden fields.
    pub params: Vec<(&'static str, String)>,
}

pub struct BrowserLine {
    pub id: String,
    pub device: String,
    pub ip: String,
    pub signed_in: String,
    pub last_seen: String,
    pub current: bool,
}

pub struct SessionLine {
    pub id: String,
    pub app: String,
    pub device: String,
    pub ip: String,
    pub started: String,
    pub last_used: String,
}

pub struct ConsentLine {
    pub client_id: String,
    pub app: String,
    /// What the person allowed, in words.
    pub scopes: Vec<String>,
    pub granted: String,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    pub csrf: String,
    pub username: String,
    pub email: String,
    pub roles: String,
    pub member_since: String,
    pub notice: Option<&'static str>,
    pub errors: FieldErrors,
    pub browsers: Vec<BrowserLine>,
    pub sessions: Vec<SessionLine>,
    pub consents: Vec<ConsentLine>,
}

#[derive(Template)]
#[template(path = "logout.html")]
pub struct LogoutPage {
    pub csrf: String,
    pub client_name: Option<String>,
    pub params: Vec<(&'static str, String)>,
}

#[derive(Template)]
#[template(path = "signed_out.html")]
pub struct SignedOutPage {}

/// What a scope lets an application do, in words a person can judge.
pub fn scope_words(scope: &str) -> String {
    match scope {
        "openid" => "Know who you are: your account's identifier".into(),
        "profile" => "See your username".into(),
        "email" => "See your email address".into(),
        "rates:read" => "Read crypto rates".into(),
        "fx:read" => "Read currency exchange rates".into(),
        "fx:write" => "Change currency exchange rates".into(),
        "orders" => "Place orders and see your orders".into(),
        "posts" => "Write posts and vote in your name".into(),
        "admin" => "Administer Gatehouse: every application, account and key".into(),
        other => format!("Use the \u{201c}{other}\u{201d} permission"),
    }
}

/// A Unix time as people read it (UTC).
pub fn when(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// The browser and system a user agent names, roughly; enough to tell one's devices apart.
pub fn device(user_agent: Option<&str>) -> String {
    let Some(ua) = user_agent.filter(|ua| !ua.is_empty()) else {
        return "Unknown device".into();
    };
    let browser = [
        ("Edg/", "Edge"),
        ("Firefox/", "Firefox"),
        ("HeadlessChrome/", "Headless Chrome"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .iter()
    .find(|(mark, _)| ua.contains(mark))
    .map(|(_, name)| *name);
    let system = [
        ("Android", "Android"),
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(mark, _)| ua.contains(mark))
    .map(|(_, name)| *name);
    match (browser, system) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (Some(b), None) => b.to_owned(),
        (None, Some(s)) => s.to_owned(),
        (None, None) => ua.chars().take(40).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_times_read_well() {
        assert_eq!(
            device(Some(
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/156.0 Safari/537.36"
            )),
            "Chrome on Linux"
        );
        assert_eq!(device(None), "Unknown device");
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(scope_words("x:y"), "Use the \u{201c}x:y\u{201d} permission");
    }

    #[test]
    fn pages_escape_what_they_show() {
        let html = ErrorPage {
            title: "t",
            message: "<script>alert(1)</script>".into(),
            code: None,
            advice: "",
        }
        .render()
        .unwrap();
        assert!(!html.contains("<script>"));
        assert!(html.contains("&#60;script&#62;"), "{html}");
    }
}
