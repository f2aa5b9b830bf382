//! `examples/tour.sh`, run as written against a real `gatehouse serve`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

#[test]
fn the_tour_works_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = common::start(
        &["serve", "--data-dir", data.to_str().unwrap()],
        &[
            ("GATEHOUSE_ADMIN_USERNAME", "admin"),
            ("GATEHOUSE_ADMIN_PASSWORD", "tour-admin-password"),
        ],
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/tour.sh");
    let output = std::process::Command::new("bash")
        .arg(script)
        .env("AUTH", &server.base)
        .env("GATEWAY", server.gateway.as_deref().unwrap())
        .env("ADMIN_PASSWORD", "tour-admin-password")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for expected in [
        "Welcome, Admin! You have full access.",
        "Welcome, Authenticated user! Limited access.",
        "\"converted_amount\":\"85.87\"",
        "The tour is complete.",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in\n{stdout}"
        );
    }
}
