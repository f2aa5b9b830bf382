//! What can be checked of `packaging/` without containers or systemd: every command line the
//! Containerfile, compose.yaml and gatehouse.service give the binary is accepted by its real
//! argument parser; every `GATEHOUSE_*` variable they set is one the code reads (nested settings
//! load); and the compose gateway's route file is valid, with each upstream a service of the
//! compose file listening on that port.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A JSON array of strings written as a YAML flow sequence or an exec-form instruction.
fn array_after(line: &str, marker: &str) -> Option<Vec<String>> {
    let (_, rest) = line.split_once(marker)?;
    let start = rest.find('[')?;
    let end = rest.rfind(']')?;
    Some(serde_json::from_str(&rest[start..=end]).unwrap_or_else(|e| panic!("{line}: {e}")))
}

/// The arguments after `gatehouse` of every command line in the packaging files.
fn invocations() -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    let strip = |mut args: Vec<String>| {
        if args.first().is_some_and(|a| a == "CMD") {
            args.remove(0);
        }
        match args.first().map(String::as_str) {
            Some("gatehouse") => Some(args[1..].to_vec()),
            _ => None,
        }
    };
    for line in read("packaging/compose.yaml").lines() {
        let line = line.trim();
        if line.starts_with("command:") {
            found.push((
                "compose command".into(),
                array_after(line, "command:").unwrap(),
            ));
        } else if line.starts_with("test:")
            && let Some(args) = strip(array_after(line, "test:").unwrap())
        {
            found.push(("compose healthcheck".into(), args));
        }
    }
    for line in read("packaging/Containerfile").lines() {
        let line = line.trim();
        if let Some(args) = line
            .strip_prefix("CMD ")
            .and_then(|_| array_after(line, "CMD"))
        {
            let args = strip(args.clone()).unwrap_or(args);
            found.push(("Containerfile CMD".into(), args));
        }
    }
    for line in read("packaging/gatehouse.service").lines() {
        if let Some(command) = line.strip_prefix("ExecStart=") {
            let words: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
            assert!(words[0].ends_with("/gatehouse"), "{line}");
            found.push(("unit ExecStart".into(), words[1..].to_vec()));
        }
    }
    found
}

#[test]
fn every_command_line_in_the_packaging_is_accepted_by_the_binary() {
    let found = invocations();
    let subcommands: BTreeSet<&str> = found
        .iter()
        .filter_map(|(_, args)| args.first().map(String::as_str))
        .collect();
    // The files do use each of these; a parser that lost one must fail here.
    for expected in ["serve", "auth", "gateway", "app", "healthcheck"] {
        assert!(subcommands.contains(expected), "{subcommands:?}");
    }
    for (origin, args) in &found {
        // `--help` comes last, so every flag and value before it is parsed and checked first.
        let output = common::gatehouse(&[], &[])
            .args(args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{origin}: gatehouse {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// `NAME=value` pairs of every `GATEHOUSE_*` variable the packaging sets or documents.
fn variables() -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let files = [
        "packaging/Containerfile",
        "packaging/compose.yaml",
        "packaging/gatehouse.service",
        "packaging/.env.example",
    ];
    for file in files {
        for line in read(file).lines() {
            let line = line.trim().trim_start_matches("Environment=");
            let Some(start) = line.find("GATEHOUSE_") else {
                continue;
            };
            let rest = &line[start..];
            let end = rest
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..end];
            let value = rest[end..]
                .trim_start_matches([':', '=', ' '])
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_end_matches('\\')
                .to_owned();
            found.entry(name.to_owned()).or_insert(value);
        }
    }
    found
}

/// Every Rust source file of the workspace's crates, concatenated.
fn sources() -> String {
    fn walk(dir: &Path, text: &mut String) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, text);
            } else if path.extension().is_some_and(|e| e == "rs") {
                text.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut text = String::new();
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        let src = entry.unwrap().path().join("src");
        if src.is_dir() {
            walk(&src, &mut text);
        }
    }
    text
}

#[test]
fn every_variable_in_the_packaging_is_one_the_code_reads() {
    let found = variables();
    assert!(found.contains_key("GATEHOUSE_KEK"), "{found:?}");
    let code = sources();
    let mut nested = Vec::new();
    for (name, value) in &found {
        if name.contains("__") {
            nested.push((name.clone(), value.clone()));
            continue;
        }
        let read_directly = code.contains(&format!("\"{name}\""));
        let read_as_file = name
            .strip_suffix("_FILE")
            .is_some_and(|base| code.contains(&format!("secret_from_env(\"{base}\")")));
        assert!(
            read_directly || read_as_file,
            "{name} is set by the packaging but read nowhere in crates/*/src"
        );
    }
    // Nested settings must be settings: the configuration loads with them (unknown keys fail).
    assert!(!nested.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<(&str, &str)> = nested
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let output = common::gatehouse(
        &["doctor", "--data-dir", dir.path().to_str().unwrap()],
        &env,
    )
    .output()
    .unwrap();
    let report = String::from_utf8(output.stdout).unwrap();
    assert!(
        report.starts_with("ok    configuration:"),
        "{nested:?}\n{report}"
    );
}

/// Each compose service's `--listen`/`--auth-listen` port, by its name and network aliases.
fn compose_services() -> BTreeMap<String, u16> {
    let mut names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut ports: BTreeMap<String, u16> = BTreeMap::new();
    let mut service = String::new();
    for line in read("packaging/compose.yaml").lines() {
        if let Some(name) = line
            .strip_prefix("  ")
            .and_then(|l| l.strip_suffix(':'))
            .filter(|l| !l.starts_with(' '))
        {
            service = name.to_owned();
            names
                .entry(service.clone())
                .or_default()
                .push(service.clone());
        }
        let trimmed = line.trim();
        if let Some(list) = trimmed.strip_prefix("aliases:") {
            let aliases = list.trim().trim_matches(['[', ']']).split(',');
            names
                .entry(service.clone())
                .or_default()
                .extend(aliases.map(|a| a.trim().to_owned()));
        }
        if trimmed.starts_with("command:") {
            let args = array_after(trimmed, "command:").unwrap();
            if let Some(w) = args
                .windows(2)
                .find(|w| w[0] == "--listen" || w[0] == "--auth-listen")
            {
                let port = w[1].rsplit_once(':').unwrap().1.parse().unwrap();
                ports.insert(service.clone(), port);
            }
        }
    }
    let mut by_name = BTreeMap::new();
    for (service, port) in ports {
        for name in &names[&service] {
            by_name.insert(name.clone(), port);
        }
    }
    by_name
}

#[test]
fn the_compose_gateway_routes_are_valid_and_reach_the_compose_services() {
    let file = root().join("packaging/compose-gateway.toml");
    let dir = tempfile::tempdir().unwrap();
    let output = common::gatehouse(
        &[
            "doctor",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--issuer",
            "http://auth:8080",
            "--gateway-config",
            file.to_str().unwrap(),
        ],
        &[],
    )
    .output()
    .unwrap();
    let report = String::from_utf8(output.stdout).unwrap();
    let routes = report
        .lines()
        .find(|l| l.contains("gateway routes:"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(!routes.starts_with("FAIL"), "{report}");
    assert!(routes.contains("routes valid"), "{report}");

    let services = compose_services();
    for name in ["auth", "rates", "fx", "messages", "orders", "posts"] {
        assert!(services.contains_key(name), "{services:?}");
    }
    let text = std::fs::read_to_string(&file).unwrap();
    let mut upstreams = 0;
    for line in text.lines().filter(|l| l.starts_with("upstream")) {
        let address = line
            .split('"')
            .nth(1)
            .unwrap()
            .trim_start_matches("http://");
        let (host, port) = address.split_once(':').unwrap();
        assert_eq!(
            services.get(host),
            Some(&port.parse().unwrap()),
            "{line}: no compose service {host} listening on {port}"
        );
        upstreams += 1;
    }
    assert!(upstreams >= 5);
    // The gateway container is started with this file.
    assert!(
        read("packaging/compose.yaml")
            .contains("compose-gateway.toml:/etc/gatehouse/compose-gateway.toml")
    );
}
