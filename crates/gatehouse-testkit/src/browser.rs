//! A headless Chromium for page tests, driven over WebDriver: [`Browser::start`] runs a
//! `chromedriver` of its own on a free loopback port and opens a session on a fresh profile;
//! [`Browser::close`] ends the session and the driver, and so does dropping the [`Browser`] (on a
//! failed assertion too), then its profile is removed.
//!
//! Starting one takes a second or two, so a test file starts one browser and runs its steps in it
//! sequentially, in one `#[tokio::test]`. A browser cannot be shared between tests: it belongs to
//! the tokio runtime of the test that started it, and nextest runs each test in a process of its
//! own.
//!
//! Without Chromium and chromedriver the browser tests skip, so a developer without them can still
//! run the suite; `GATEHOUSE_REQUIRE_BROWSER=1` (set by `scripts/test`) makes that a failure.
// Unlike the rest of the crate, this module reports failures as errors: it is shared set-up,
// and an error says which step failed.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fantoccini::cookies::Cookie;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// Chromium's command line. `--no-sandbox` because the tests run as root (in CI and on the
/// project's machines), where Chromium refuses to start with its sandbox; the rest keeps a test
/// run quiet, offline and the same from one machine to the next.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
];

/// How long an element may take to appear before `fill`, `click` and the like give up.
const ELEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long chromedriver may take to answer, and Chromium to start; generous, for busy machines.
const DRIVER_TIMEOUT: Duration = Duration::from_secs(30);
const SESSION_TIMEOUT: Duration = Duration::from_secs(90);

/// A headless Chromium session with the chromedriver that runs it.
pub struct Browser {
    // Fields drop in order (after `Drop::drop`): the driver is killed before its profile
    // directory is removed.
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    port: u16,
    /// The WebDriver session, while it is open.
    session: Option<String>,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium. `Ok(None)` when either is not installed and
    /// `GATEHOUSE_REQUIRE_BROWSER=1` is not set: the caller skips its test.
    ///
    /// chromedriver is `GATEHOUSE_TEST_CHROMEDRIVER`, else `/usr/bin/chromedriver`, else
    /// `chromedriver` on `PATH`; Chromium is `GATEHOUSE_TEST_CHROMIUM`, else `/usr/bin/chromium`,
    /// else `chromium` on `PATH`.
    pub async fn start() -> anyhow::Result<Option<Browser>> {
        // A test that links crates turning on both of rustls's crypto providers leaves the
        // WebDriver client unable to pick one: pick one for the process (a no-op if chosen).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let driver_path = find_program("GATEHOUSE_TEST_CHROMEDRIVER", "chromedriver");
        let chromium_path = find_program("GATEHOUSE_TEST_CHROMIUM", "chromium");
        let (Some(driver_path), Some(chromium_path)) = (driver_path, chromium_path) else {
            let hint = "install Debian's chromium and chromium-driver, or set \
                        GATEHOUSE_TEST_CHROMIUM and GATEHOUSE_TEST_CHROMEDRIVER";
            if std::env::var("GATEHOUSE_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
                bail!(
                    "GATEHOUSE_REQUIRE_BROWSER=1 but Chromium or chromedriver is missing: {hint}"
                );
            }
            eprintln!("Chromium or chromedriver not found: browser test skipped ({hint})");
            return Ok(None);
        };

        let (driver, port) = spawn_driver(&driver_path).await?;
        let profile = tempfile::Builder::new()
            .prefix("gatehouse-chromium-")
            .tempdir()
            .context("creating a Chromium profile directory")?;

        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), "chrome".into());
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": chromium_path, "args": args }),
        );
        let connect = async {
            ClientBuilder::rustls()
                .context("setting up the WebDriver connection")?
                .capabilities(capabilities)
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
                .with_context(|| {
                    format!("starting {} through chromedriver", chromium_path.display())
                })
        };
        let client = tokio::time::timeout(SESSION_TIMEOUT, connect)
            .await
            .context("Chromium did not start in time")??;
        let session = client
            .session_id()
            .await
            .context("reading the WebDriver session id")?;
        let browser = Browser {
            client,
            driver,
            _profile: profile,
            port,
            session,
        };
        // --window-size sizes the window, frame included; pages get 1280x900 of their own.
        browser.set_window_size(1280, 900).await?;
        Ok(Some(browser))
    }

    /// The WebDriver client, for whatever the helpers here do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Ends the WebDriver session (Chromium quits), then stops chromedriver.
    pub async fn close(mut self) -> anyhow::Result<()> {
        let closed = self
            .client
            .clone()
            .close()
            .await
            .context("closing the WebDriver session");
        self.session = None;
        self.driver.kill().await.context("stopping chromedriver")?;
        closed
    }

    /// Loads `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("loading {url}"))
    }

    /// The address of the page shown now (after any redirects).
    pub async fn current_url(&self) -> anyhow::Result<String> {
        let url = self
            .client
            .current_url()
            .await
            .context("reading the current URL")?;
        Ok(url.into())
    }

    /// Resizes the window so that pages get `width`×`height` CSS pixels (what a screenshot
    /// shows), e.g. 390×844 for a phone or 1280×900 for a laptop. WebDriver sizes the whole
    /// window, whose frame takes some of it even headless: the window is grown by the difference.
    pub async fn set_window_size(&self, width: u32, height: u32) -> anyhow::Result<()> {
        let (mut outer_width, mut outer_height) = (width, height);
        let mut inner = (0, 0);
        for _ in 0..6 {
            self.client
                .set_window_size(outer_width, outer_height)
                .await
                .with_context(|| format!("resizing the window to {outer_width}x{outer_height}"))?;
            // A busy machine applies the resize late: measure until two readings agree.
            let mut previous = None;
            for _ in 0..20 {
                let size = self
                    .client
                    .execute("return [window.innerWidth, window.innerHeight];", vec![])
                    .await
                    .context("measuring the page")?;
                let measure = |i: usize| size[i].as_u64().and_then(|v| u32::try_from(v).ok());
                inner = measure(0)
                    .zip(measure(1))
                    .with_context(|| format!("measuring the page gave {size}"))?;
                if inner == (width, height) || previous == Some(inner) {
                    break;
                }
                previous = Some(inner);
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            if inner == (width, height) {
                return Ok(());
            }
            outer_width = (outer_width + width).saturating_sub(inner.0);
            outer_height = (outer_height + height).saturating_sub(inner.1);
        }
        bail!(
            "the page is {}x{} instead of {width}x{height} (does the window go that small?)",
            inner.0,
            inner.1
        )
    }

    /// The first element matching the CSS selector, waiting for it to appear.
    pub async fn find(&self, css: &str) -> anyhow::Result<Element> {
        let found = self
            .client
            .wait()
            .at_most(ELEMENT_TIMEOUT)
            .for_element(Locator::Css(css))
            .await;
        match found {
            Ok(element) => Ok(element),
            Err(error) => {
                let page = match self.client.current_url().await {
                    Ok(url) => url.to_string(),
                    Err(_) => "an unknown page".into(),
                };
                Err(error).with_context(|| format!("no element matches {css:?} on {page}"))
            }
        }
    }

    /// Replaces the value of the field matching `css` with `text`, typed as a user would.
    pub async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let field = self.find(css).await?;
        field
            .clear()
            .await
            .with_context(|| format!("clearing {css:?}"))?;
        field
            .send_keys(text)
            .await
            .with_context(|| format!("typing into {css:?}"))
    }

    /// Clicks the element matching `css`; a click that submits a form waits for the next page.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.find(css)
            .await?
            .click()
            .await
            .with_context(|| format!("clicking {css:?}"))
    }

    /// The visible text of the element matching `css`.
    pub async fn text_of(&self, css: &str) -> anyhow::Result<String> {
        self.find(css)
            .await?
            .text()
            .await
            .with_context(|| format!("reading the text of {css:?}"))
    }

    /// The cookies the browser holds for the current page.
    pub async fn cookies(&self) -> anyhow::Result<Vec<Cookie<'static>>> {
        self.client
            .get_all_cookies()
            .await
            .context("reading the cookies")
    }

    /// Saves what the window shows as `<target dir>/screenshots/<name>.png` and returns the path,
    /// so a page can be looked at after the test (locally, or as a CI artifact).
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let png = self
            .client
            .screenshot()
            .await
            .with_context(|| format!("taking screenshot {name}"))?;
        let path = target_dir()?
            .join("screenshots")
            .join(format!("{name}.png"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, png).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Runs `body` as a function in the page, with `args` as `arguments`, and returns its result.
    pub async fn script(
        &self,
        body: &str,
        args: Vec<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        self.client
            .execute(body, args)
            .await
            .context("running a script in the page")
    }

    /// The visible text of every element matching `css`, as it is now (none: empty).
    pub async fn texts(&self, css: &str) -> anyhow::Result<Vec<String>> {
        let found = self
            .script(
                "return Array.from(document.querySelectorAll(arguments[0]))
                   .map(e => e.innerText.trim());",
                vec![serde_json::Value::from(css)],
            )
            .await?;
        serde_json::from_value(found).context("reading the texts")
    }

    /// Waits until the browser shows a page whose address starts with `prefix`; returns it.
    pub async fn wait_for_url(&self, prefix: &str) -> anyhow::Result<String> {
        let deadline = Instant::now() + ELEMENT_TIMEOUT;
        loop {
            let url = self.current_url().await?;
            if url.starts_with(prefix) {
                return Ok(url);
            }
            if Instant::now() > deadline {
                let body = self.texts("body").await.unwrap_or_default();
                bail!("waited for {prefix} but the browser shows {url}: {body:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the first element matching `css` shows `needle`; returns its text.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> anyhow::Result<String> {
        let deadline = Instant::now() + ELEMENT_TIMEOUT;
        loop {
            if let Some(text) = self.texts(css).await?.into_iter().next()
                && text.contains(needle)
            {
                return Ok(text);
            }
            if Instant::now() > deadline {
                let url = self.current_url().await?;
                let body = self.texts("body").await.unwrap_or_default();
                bail!("waited for {needle:?} in {css} on {url}: {body:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Looks at the page at a laptop's (1280x900) and a phone's (390x844) width: nothing
    /// overflows sideways, every input has a label, every control is at least 24x24 CSS pixels
    /// (WCAG 2.2's minimum target size). With `save_as`, saves a screenshot at each width as
    /// `<save_as>-<width>.png` (and, for a page taller than the window, `-full` of the whole page).
    /// Leaves the window at 1280x900.
    pub async fn check_layout(&self, page: &str, save_as: Option<&str>) -> anyhow::Result<()> {
        for (width, height) in [(1280, 900), (390, 844)] {
            self.set_window_size(width, height).await?;
            let found = self.script(LAYOUT_CHECK, Vec::new()).await?;
            if found["overflow"] != false {
                bail!("{page} at {width}px is wider than the window: {found}");
            }
            if found["unlabelled"] != serde_json::json!([]) {
                bail!("{page} at {width}px has inputs without a label: {found}");
            }
            if found["small"] != serde_json::json!([]) {
                bail!("{page} at {width}px has controls too small to hit: {found}");
            }
            let Some(name) = save_as else { continue };
            self.screenshot(&format!("{name}-{width}")).await?;
            let tall = found["height"].as_u64().unwrap_or(0);
            if tall > u64::from(height) {
                self.set_window_size(width, u32::try_from(tall).unwrap_or(height))
                    .await?;
                self.screenshot(&format!("{name}-{width}-full")).await?;
            }
        }
        self.set_window_size(1280, 900).await
    }
}

/// What [`Browser::check_layout`] measures in the page.
const LAYOUT_CHECK: &str = "
    const root = document.documentElement;
    const visible = e => e.getClientRects().length > 0
        && getComputedStyle(e).visibility !== 'hidden';
    const name = e => e.id || e.name || e.innerText.trim() || e.outerHTML.slice(0, 60);
    const unlabelled = Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))
        .filter(visible)
        .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label'))
        .map(name);
    const small = Array.from(document.querySelectorAll('button, .button, input:not([type=hidden]), select'))
        .filter(visible)
        .filter(e => { const r = e.getBoundingClientRect(); return r.width < 24 || r.height < 24; })
        .map(name);
    return {
        overflow: root.scrollWidth > root.clientWidth, unlabelled, small,
        height: root.scrollHeight,
    };
";

impl Drop for Browser {
    fn drop(&mut self) {
        // Killing chromedriver (kill_on_drop) would leave its Chromium running: end the session
        // first, which makes chromedriver quit Chromium. Blocking, as drop cannot await; it
        // takes a fraction of a second.
        if let Some(session) = self.session.take() {
            delete_session(self.port, &session);
        }
    }
}

/// Ends a WebDriver session with a blocking `DELETE /session/<id>`, best effort.
fn delete_session(port: u16, session: &str) {
    use std::io::{Read, Write};
    let delete = || -> std::io::Result<()> {
        let address = (Ipv4Addr::LOCALHOST, port).into();
        let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(
            format!(
                "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
                 Content-Length: 0\r\n\r\n"
            )
            .as_bytes(),
        )?;
        // Read until the answer's head, which comes once Chromium has quit.
        let mut response = Vec::new();
        let mut chunk = [0; 1024];
        while !response.windows(4).any(|w| w == b"\r\n\r\n") {
            let read = stream.read(&mut chunk)?;
            if read == 0 {
                break;
            }
            response.extend_from_slice(&chunk[..read]);
        }
        Ok(())
    };
    if let Err(error) = delete() {
        eprintln!("could not end the browser session: {error}");
    }
}

/// The program named by the environment variable `var`, else `/usr/bin/<name>`, else `name` on
/// `PATH`; `None` when it is not there.
fn find_program(var: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let usr_bin = Path::new("/usr/bin").join(name);
    if usr_bin.is_file() {
        return Some(usr_bin);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// Runs chromedriver on a free loopback port and waits until it is ready; returns it and the port.
async fn spawn_driver(path: &Path) -> anyhow::Result<(Child, u16)> {
    // The port is free when picked but could be taken before chromedriver binds it: then
    // chromedriver exits at once, and another port is tried.
    for _ in 0..3 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .context("picking a free port")?
            .port();
        let mut driver = Command::new(path)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            // Only its start-up banner goes to stdout; warnings and errors go to stderr.
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("running {}", path.display()))?;
        let deadline = Instant::now() + DRIVER_TIMEOUT;
        loop {
            if let Some(status) = driver.try_wait()? {
                eprintln!("chromedriver on port {port} exited at start ({status}); retrying");
                break;
            }
            if driver_ready(port).await {
                return Ok((driver, port));
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not answer on port {port} within {DRIVER_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    bail!("chromedriver kept exiting at start")
}

/// Whether chromedriver on `port` answers `GET /status` with `"ready": true`.
async fn driver_ready(port: u16) -> bool {
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
        let request = format!("GET /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        // chromedriver keeps the connection open (even when asked to close it): read the head,
        // then as much body as its Content-Length says.
        let mut response = Vec::new();
        let mut chunk = [0; 4096];
        loop {
            let read = stream.read(&mut chunk).await?;
            if read == 0 {
                return Ok(None);
            }
            response.extend_from_slice(&chunk[..read]);
            if let Some(body) = complete_body(&response) {
                return Ok::<_, std::io::Error>(Some(body.to_vec()));
            }
        }
    };
    let Ok(Ok(Some(body))) = tokio::time::timeout(Duration::from_secs(2), ask).await else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&body)
        .is_ok_and(|status| status["value"]["ready"] == serde_json::Value::Bool(true))
}

/// The body of a whole `200` response with a Content-Length; `None` until it has all arrived,
/// and for any other response.
fn complete_body(response: &[u8]) -> Option<&[u8]> {
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&response[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    if lines.next()?.split(' ').nth(1) != Some("200") {
        return None;
    }
    let length: usize = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))?
        .1
        .trim()
        .parse()
        .ok()?;
    response.get(head_end + 4..head_end + 4 + length)
}

/// The workspace's target directory: `CARGO_TARGET_DIR` (relative to the workspace root if
/// relative), else `target/` beside the workspace's `Cargo.lock`.
pub fn target_dir() -> anyhow::Result<PathBuf> {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let root = manifest_dir
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .with_context(|| format!("no Cargo.lock above {}", manifest_dir.display()))?;
    let target = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty());
    Ok(root.join(target.unwrap_or_else(|| "target".into())))
}
