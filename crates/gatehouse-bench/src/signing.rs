//! `revocation-bench sign`: what one access token's signature costs on this machine, by
//! algorithm, with the server's own signing code and claims shaped like a `client_credentials`
//! token's. It is the part of a token's CPU that no HTTP path can avoid: the floor under the
//! token endpoint's CPU per token in BENCHMARKS.md.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use gatehouse_token::{AccessClaims, Audience, SigningAlgorithm, SigningKey};

#[derive(Args, Clone)]
pub struct SignArgs {
    /// How long each algorithm signs, in seconds.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
}

pub async fn sign(args: SignArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.seconds > 0, "--seconds must be at least 1");
    let window = Duration::from_secs(args.seconds);
    let mut results = Vec::new();
    for algorithm in SigningAlgorithm::ALL {
        let key = SigningKey::generate_for(algorithm)
            .with_context(|| format!("cannot make a {algorithm} key"))?;
        let mut claims = AccessClaims {
            iss: "http://127.0.0.1:8080".into(),
            sub: "c_4f1d2a9b8e7c6d5f4a3b2c1d0e9f8a7b".into(),
            aud: Audience::One("gatehouse".into()),
            exp: 1_800_000_900,
            iat: 1_800_000_000,
            jti: String::new(),
            client_id: "c_4f1d2a9b8e7c6d5f4a3b2c1d0e9f8a7b".into(),
            scope: "rates:read".into(),
            roles: None,
            sid: None,
        };
        // One thread, one key: the process's CPU over the window is the signatures'.
        let cpu_before = crate::load::cpu_seconds(std::process::id())?;
        let started = Instant::now();
        let mut signed = 0u64;
        while started.elapsed() < window {
            claims.jti = format!("t_{signed:032x}");
            std::hint::black_box(key.sign(&claims).context("signing failed")?);
            signed += 1;
        }
        let cpu = crate::load::cpu_seconds(std::process::id())? - cpu_before;
        let micros = cpu * 1e6 / signed as f64;
        println!("{algorithm}: {signed} tokens signed, {micros:.1} µs CPU per token");
        results.push(serde_json::json!({
            "algorithm": algorithm.as_str(),
            "signed": signed,
            "cpu_us_per_token": micros,
        }));
    }
    println!("{}", serde_json::json!({ "sign": results }));
    Ok(())
}
