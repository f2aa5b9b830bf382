//! Password hashing with argon2id (OWASP parameters), off the async threads and bounded.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as PHC_B64;

use crate::StoreError;
use crate::secret::constant_time_eq;

/// OWASP's argon2id recommendation: 19 MiB, 2 passes, 1 lane.
const M_COST_KIB: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
const SALT_LEN: usize = 16;
const OUTPUT_LEN: usize = 32;
/// About a second of waiting work per thread at ~16 ms a hash.
const QUEUE_PER_THREAD: usize = 64;

fn params() -> Result<Params, StoreError> {
    Params::new(M_COST_KIB, T_COST, P_COST, Some(OUTPUT_LEN))
        .map_err(|e| StoreError::Backend(format!("argon2 parameters: {e}")))
}

/// A hashing thread's working memory, allocated once and reused by every hash it computes.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// Hashes and verifies passwords on a few dedicated threads, so a flood of logins queues here
/// instead of starving the async workers that serve every other request.
///
/// Each thread owns one argon2 buffer (19 MiB) for its lifetime. Allocating it per hash, on
/// tokio's blocking pool, fragmented the allocator's arenas and grew the process to over 200 MiB
/// after a few dozen logins; with reused buffers it stays at `limit` × 19 MiB above idle.
#[derive(Clone)]
pub struct PasswordHasher {
    /// Bounded: past `QUEUE_PER_THREAD` waiting jobs a thread, callers are told to come back later
    /// instead of queueing minutes of work behind a flood.
    jobs: mpsc::SyncSender<Job>,
    /// Verified against when a username is unknown, so that answer takes as long as a wrong password.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    /// Starts `limit` hashing threads; they end when the last clone of the hasher is dropped.
    pub fn new(limit: usize) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::sync_channel::<Job>(limit.max(1) * QUEUE_PER_THREAD);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..limit.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("gatehouse-argon2-{i}"))
                .spawn(move || work(&queue))
                .map_err(|e| StoreError::Backend(format!("cannot start a hashing thread: {e}")))?;
        }
        let mut hasher = Self {
            jobs,
            dummy_hash: Arc::from(""),
        };
        let mut memory = Vec::new();
        hasher.dummy_hash = hash_with(&mut memory, "gatehouse-dummy-password-for-timing")?.into();
        Ok(hasher)
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.jobs
            .try_send(Box::new(move |memory: &mut Vec<Block>| {
                // The caller gave up (timeout, hung up): do not spend a hash on it.
                if !done.is_closed() {
                    let _ = done.send(job(memory));
                }
            }))
            .map_err(|e| match e {
                mpsc::TrySendError::Full(_) => {
                    StoreError::Unavailable("too many password checks waiting".into())
                }
                mpsc::TrySendError::Disconnected(_) => {
                    StoreError::Backend("the password hasher has stopped".into())
                }
            })?;
        result
            .await
            .map_err(|_| StoreError::Backend("a password hashing job was lost".into()))
    }

    pub async fn hash(&self, password: &str) -> Result<String, StoreError> {
        let password = password.to_owned();
        self.run(move |memory| hash_with(memory, &password)).await?
    }

    /// Verifies `password` against `stored`, or against a dummy hash when there is no user, so
    /// both cases cost the same.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<bool, StoreError> {
        let password = password.to_owned();
        let known = stored.is_some();
        let hash = stored.map_or_else(|| self.dummy_hash.to_string(), str::to_owned);
        let matched = self
            .run(move |memory| verify_with(memory, &password, &hash))
            .await??;
        Ok(known && matched)
    }
}

/// A hashing thread: runs jobs with its own memory until every sender is gone.
fn work(queue: &Mutex<mpsc::Receiver<Job>>) {
    let mut memory = Vec::new();
    loop {
        let next = match queue.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        match next {
            Ok(job) => job(&mut memory),
            Err(_) => return,
        }
    }
}

fn argon2_into(
    memory: &mut Vec<Block>,
    params: Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), StoreError> {
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::new());
    }
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
        .map_err(|e| StoreError::Backend(format!("argon2 hashing: {e}")))
}

/// A PHC string: `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`.
fn hash_with(memory: &mut Vec<Block>, password: &str) -> Result<String, StoreError> {
    let mut salt = [0u8; SALT_LEN];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| StoreError::Backend("system random source failed".into()))?;
    let mut out = [0u8; OUTPUT_LEN];
    argon2_into(memory, params()?, password.as_bytes(), &salt, &mut out)?;
    Ok(format!(
        "$argon2id$v=19$m={M_COST_KIB},t={T_COST},p={P_COST}${}${}",
        PHC_B64.encode(salt),
        PHC_B64.encode(out)
    ))
}

/// Checks a password against a stored PHC string, with the parameters that string names.
fn verify_with(memory: &mut Vec<Block>, password: &str, stored: &str) -> Result<bool, StoreError> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("password hash: {e}"));
    let parsed = PasswordHash::new(stored).map_err(|e| corrupt(&e))?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(corrupt(&"not an argon2id hash"));
    }
    let params = Params::try_from(&parsed).map_err(|e| corrupt(&e))?;
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Err(corrupt(&"salt or hash missing"));
    };
    let mut out = vec![0u8; expected.len()];
    argon2_into(memory, params, password.as_bytes(), salt.as_ref(), &mut out)?;
    Ok(constant_time_eq(&out, expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_right_password_only_and_never_for_unknown_users() {
        let hasher = PasswordHasher::new(2).unwrap();
        let hash = hasher.hash("correct horse").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(hasher.verify("correct horse", Some(&hash)).await.unwrap());
        assert!(!hasher.verify("wrong horse", Some(&hash)).await.unwrap());
        assert!(
            !hasher
                .verify("gatehouse-dummy-password-for-timing", None)
                .await
                .unwrap()
        );
    }

    #[test]
    fn our_phc_strings_match_the_argon2_crate_and_verify_its_hashes() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let mut memory = Vec::new();
        let ours = hash_with(&mut memory, "pass-word-1").unwrap();
        let reference = Argon2::new(Algorithm::Argon2id, Version::V0x13, params().unwrap());
        // The crate's own verifier accepts what we wrote…
        assert!(
            reference
                .verify_password(b"pass-word-1", ours.as_str())
                .is_ok()
        );
        assert!(
            reference
                .verify_password(b"pass-word-2", ours.as_str())
                .is_err()
        );
        // …and ours accepts what the crate writes.
        let theirs = reference.hash_password(b"pass-word-1").unwrap().to_string();
        assert!(verify_with(&mut memory, "pass-word-1", &theirs).unwrap());
        assert!(!verify_with(&mut memory, "pass-word-2", &theirs).unwrap());
        assert!(verify_with(&mut memory, "x", "$md5$nonsense").is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_is_refused_as_unavailable() {
        let hasher = PasswordHasher::new(1).unwrap();
        let hash = hasher.hash("pass-word-1").await.unwrap();
        let tasks: Vec<_> = (0..(QUEUE_PER_THREAD + 40))
            .map(|_| {
                let (hasher, hash) = (hasher.clone(), hash.clone());
                tokio::spawn(async move { hasher.verify("pass-word-1", Some(&hash)).await })
            })
            .collect();
        let mut refused = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(matched) => assert!(matched),
                Err(StoreError::Unavailable(_)) => refused += 1,
                Err(other) => panic!("unexpected {other}"),
            }
        }
        assert!(refused > 0, "a queue past its bound must refuse work");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_jobs_all_complete_on_a_small_pool() {
        let hasher = PasswordHasher::new(2).unwrap();
        let hash = hasher.hash("pass-word-1").await.unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (hasher, hash) = (hasher.clone(), hash.clone());
                tokio::spawn(async move {
                    let guess = if i % 2 == 0 {
                        "pass-word-1"
                    } else {
                        "wrong-word"
                    };
                    hasher.verify(guess, Some(&hash)).await.unwrap()
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        assert_eq!(
            results,
            [true, false, true, false, true, false, true, false]
        );
    }
}
