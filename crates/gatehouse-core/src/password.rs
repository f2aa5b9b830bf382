//! Password hashing with argon2id (OWASP parameters), off the async threads and bounded.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

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
/// The default share of one source (an IP address, a username): an eighth of the queue.
const DEFAULT_PER_SOURCE_PER_THREAD: usize = QUEUE_PER_THREAD / 8;

/// Whom a password check is for. Each IP address and each username may have only a share of the
/// hashing queue waiting or running, so a flood from one of them cannot turn everyone else away;
/// and waiting checks are taken in turn by source, so it cannot slow everyone else down either.
#[derive(Debug, Clone, Default)]
pub struct HashSource {
    pub ip: Option<String>,
    pub username: Option<String>,
}

impl HashSource {
    fn keys(&self) -> Vec<String> {
        let mut keys = Vec::with_capacity(2);
        if let Some(ip) = &self.ip {
            // One share per client: an IPv6 holder's whole /64, not each of its addresses.
            match ip.parse() {
                Ok(ip) => keys.push(format!("ip {}", gatehouse_proto::peer::source_address(ip))),
                Err(_) => keys.push(format!("ip {ip}")),
            }
        }
        if let Some(username) = &self.username {
            // Fixed size, whatever was typed.
            keys.push(format!(
                "user {}",
                crate::secret::hash_secret(&username.to_lowercase())
            ));
        }
        keys
    }
}

/// Waiting jobs, taken in turn by source: each thread takes the oldest job of the source whose
/// turn it is, so a source with many checks waiting is served no more often than one with a
/// single check (round robin), instead of everyone queueing behind a flood in arrival order.
struct FairQueue {
    waiting: Mutex<Waiting>,
    more: Condvar,
    capacity: usize,
}

#[derive(Default)]
struct Waiting {
    by_source: HashMap<String, VecDeque<Job>>,
    /// Sources with jobs waiting, in the order of their turns.
    turns: VecDeque<String>,
    len: usize,
    /// No hasher is left to give work: threads finish what waits, then end.
    closed: bool,
}

enum QueueRefusal {
    Full,
    Closed,
}

impl FairQueue {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, source: &str, job: Job) -> Result<(), QueueRefusal> {
        let mut waiting = self.lock();
        if waiting.closed {
            return Err(QueueRefusal::Closed);
        }
        if waiting.len >= self.capacity {
            return Err(QueueRefusal::Full);
        }
        let Waiting {
            by_source, turns, ..
        } = &mut *waiting;
        let jobs = by_source.entry(source.to_owned()).or_default();
        if jobs.is_empty() {
            turns.push_back(source.to_owned());
        }
        jobs.push_back(job);
        waiting.len += 1;
        drop(waiting);
        self.more.notify_one();
        Ok(())
    }

    /// The next job in turn, waiting for one; `None` once closed and empty.
    fn pop(&self) -> Option<Job> {
        let mut waiting = self.lock();
        loop {
            let Waiting {
                by_source, turns, ..
            } = &mut *waiting;
            if let Some(source) = turns.pop_front() {
                let Some(jobs) = by_source.get_mut(&source) else {
                    continue;
                };
                let job = jobs.pop_front();
                if jobs.is_empty() {
                    by_source.remove(&source);
                } else {
                    turns.push_back(source);
                }
                if let Some(job) = job {
                    waiting.len = waiting.len.saturating_sub(1);
                    return Some(job);
                }
                continue;
            }
            if waiting.closed {
                return None;
            }
            waiting = self
                .more
                .wait(waiting)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.more.notify_all();
    }
}

/// Held by every clone of a [`PasswordHasher`]; when the last is dropped the threads end.
struct Submitter(Arc<FairQueue>);

impl Drop for Submitter {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Jobs waiting or running per source key. Only sources with work in hand are held, so its size
/// is bounded by the queue's.
type InHand = Arc<Mutex<HashMap<String, usize>>>;

fn with_in_hand<T>(in_hand: &InHand, f: impl FnOnce(&mut HashMap<String, usize>) -> T) -> T {
    match in_hand.lock() {
        Ok(mut guard) => f(&mut guard),
        Err(poisoned) => f(&mut poisoned.into_inner()),
    }
}

/// A job's place in its sources' shares, given back when the job is done or dropped.
struct Share {
    in_hand: InHand,
    keys: Vec<String>,
}

impl Drop for Share {
    fn drop(&mut self) {
        with_in_hand(&self.in_hand, |counts| {
            for key in &self.keys {
                if let Some(n) = counts.get_mut(key) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        counts.remove(key);
                    }
                }
            }
        });
    }
}

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
    jobs: Arc<Submitter>,
    /// Jobs waiting or running per source, and how many one source may have.
    in_hand: InHand,
    per_source: usize,
    /// Verified against when a username is unknown, so that answer takes as long as a wrong password.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    /// Starts `limit` hashing threads; they end when the last clone of the hasher is dropped.
    /// One source may have an eighth of the queue (8 checks per thread) waiting or running.
    pub fn new(limit: usize) -> Result<Self, StoreError> {
        Self::with_share(limit, 0)
    }

    /// [`PasswordHasher::new`] with at most `per_source` checks waiting or running for one IP
    /// address or one username (0: an eighth of the queue).
    pub fn with_share(limit: usize, per_source: usize) -> Result<Self, StoreError> {
        let queue = Arc::new(FairQueue {
            waiting: Mutex::default(),
            more: Condvar::new(),
            capacity: limit.max(1) * QUEUE_PER_THREAD,
        });
        let jobs = Arc::new(Submitter(queue.clone()));
        for i in 0..limit.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("gatehouse-argon2-{i}"))
                .spawn(move || work(&queue))
                .map_err(|e| StoreError::Backend(format!("cannot start a hashing thread: {e}")))?;
        }
        let per_source = match per_source {
            0 => limit.max(1) * DEFAULT_PER_SOURCE_PER_THREAD,
            n => n,
        };
        let mut hasher = Self {
            jobs,
            in_hand: InHand::default(),
            per_source,
            dummy_hash: Arc::from(""),
        };
        let mut memory = Vec::new();
        hasher.dummy_hash = hash_with(&mut memory, "gatehouse-dummy-password-for-timing")?.into();
        Ok(hasher)
    }

    /// Takes a place in each of the source's shares, or refuses when one is used up.
    fn take_share(&self, source: &HashSource) -> Result<Share, StoreError> {
        let keys = source.keys();
        with_in_hand(&self.in_hand, |counts| {
            if keys
                .iter()
                .any(|k| counts.get(k).is_some_and(|n| *n >= self.per_source))
            {
                return Err(StoreError::Unavailable(
                    "too many password checks waiting for this source".into(),
                ));
            }
            for key in &keys {
                *counts.entry(key.clone()).or_insert(0) += 1;
            }
            Ok(())
        })?;
        Ok(Share {
            in_hand: self.in_hand.clone(),
            keys,
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        source: &HashSource,
        job: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let share = self.take_share(source)?;
        // Turns go by the first key: the address when there is one.
        let turn = share.keys.first().cloned().unwrap_or_default();
        let (done, result) = tokio::sync::oneshot::channel();
        self.jobs
            .0
            .push(
                &turn,
                Box::new(move |memory: &mut Vec<Block>| {
                    // Held until the job is done (or dropped unrun), and given back before the
                    // answer goes out, so a caller that has its answer has its share back too.
                    let share = share;
                    // The caller gave up (timeout, hung up): do not spend a hash on it.
                    if !done.is_closed() {
                        let answer = job(memory);
                        drop(share);
                        let _ = done.send(answer);
                    }
                }),
            )
            .map_err(|refusal| match refusal {
                QueueRefusal::Full => {
                    StoreError::Unavailable("too many password checks waiting".into())
                }
                QueueRefusal::Closed => {
                    StoreError::Backend("the password hasher has stopped".into())
                }
            })?;
        result
            .await
            .map_err(|_| StoreError::Backend("a password hashing job was lost".into()))
    }

    pub async fn hash(&self, password: &str, source: &HashSource) -> Result<String, StoreError> {
        let password = password.to_owned();
        self.run(source, move |memory| hash_with(memory, &password))
            .await?
    }

    /// Verifies `password` against `stored`, or against a dummy hash when there is no user, so
    /// both cases cost the same.
    pub async fn verify(
        &self,
        password: &str,
        stored: Option<&str>,
        source: &HashSource,
    ) -> Result<bool, StoreError> {
        let password = password.to_owned();
        let known = stored.is_some();
        let hash = stored.map_or_else(|| self.dummy_hash.to_string(), str::to_owned);
        let matched = self
            .run(source, move |memory| verify_with(memory, &password, &hash))
            .await??;
        Ok(known && matched)
    }
}

/// A hashing thread: runs jobs with its own memory until every hasher is gone.
fn work(queue: &FairQueue) {
    let mut memory = Vec::new();
    while let Some(job) = queue.pop() {
        job(&mut memory);
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

    const ANY: HashSource = HashSource {
        ip: None,
        username: None,
    };

    #[tokio::test]
    async fn verifies_right_password_only_and_never_for_unknown_users() {
        let hasher = PasswordHasher::new(2).unwrap();
        let hash = hasher.hash("correct horse", &ANY).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            hasher
                .verify("correct horse", Some(&hash), &ANY)
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("wrong horse", Some(&hash), &ANY)
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("gatehouse-dummy-password-for-timing", None, &ANY)
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
        let hash = hasher.hash("pass-word-1", &ANY).await.unwrap();
        let tasks: Vec<_> = (0..(QUEUE_PER_THREAD + 40))
            .map(|_| {
                let (hasher, hash) = (hasher.clone(), hash.clone());
                tokio::spawn(async move { hasher.verify("pass-word-1", Some(&hash), &ANY).await })
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
    async fn one_source_gets_only_its_share_and_others_still_get_in() {
        let hasher = PasswordHasher::with_share(1, 4).unwrap();
        let hash = hasher.hash("pass-word-1", &ANY).await.unwrap();
        let from = |ip: &str, username: &str| HashSource {
            ip: Some(ip.into()),
            username: Some(username.into()),
        };
        // Taken directly, so the shares stay held while the test looks.
        let held: Vec<Share> = (0..4)
            .map(|i| {
                hasher
                    .take_share(&from("10.0.0.1", &format!("u{i}")))
                    .unwrap()
            })
            .collect();
        assert!(matches!(
            hasher.take_share(&from("10.0.0.1", "another")),
            Err(StoreError::Unavailable(_))
        ));
        // The same username from elsewhere is one source too.
        let _victim: Vec<Share> = ["10.0.0.9", "10.0.0.8", "10.0.0.7", "10.0.0.6"]
            .iter()
            .map(|ip| hasher.take_share(&from(ip, "Victim")).unwrap())
            .collect();
        assert!(hasher.take_share(&from("10.0.0.5", "victim")).is_err());
        // Someone else is checked at once.
        assert!(
            hasher
                .verify("pass-word-1", Some(&hash), &from("10.0.0.2", "bob"))
                .await
                .unwrap()
        );
        drop(held);
        assert!(
            hasher
                .verify("pass-word-1", Some(&hash), &from("10.0.0.1", "again"))
                .await
                .unwrap(),
            "shares are given back when jobs end"
        );
        assert!(with_in_hand(&hasher.in_hand, |c| c
            .get("ip 10.0.0.1")
            .is_none()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flooding_source_is_served_in_turn_with_the_others() {
        // One thread, so the order jobs are taken in is the order they finish in.
        let hasher = PasswordHasher::with_share(1, 32).unwrap();
        let hash = hasher.hash("pass-word-1", &ANY).await.unwrap();
        let finished = Arc::new(Mutex::new(Vec::new()));
        let check = |ip: &'static str, label: String| {
            let (hasher, hash, finished) = (hasher.clone(), hash.clone(), finished.clone());
            let source = HashSource {
                ip: Some(ip.into()),
                username: Some(label.clone()),
            };
            tokio::spawn(async move {
                hasher.verify("wrong", Some(&hash), &source).await.unwrap();
                finished.lock().unwrap().push(label);
            })
        };
        let mut tasks: Vec<_> = (0..16)
            .map(|i| check("10.0.0.1", format!("flood {i}")))
            .collect();
        // Queued behind the whole flood: in arrival order, it would finish last.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let done_before = finished.lock().unwrap().len();
        tasks.push(check("10.0.0.2", "someone".into()));
        for task in tasks {
            task.await.unwrap();
        }
        let finished = finished.lock().unwrap();
        let place = finished.iter().position(|l| l == "someone").unwrap();
        // At most: the check running when it arrived, one taken just before it was queued,
        // and the flood's turn ahead of its own.
        assert!(
            place - done_before <= 3,
            "the other source waited for {} of the flood's checks: {finished:?}",
            place - done_before
        );
        assert!(
            done_before + 3 < 16,
            "the flood was over before the other source came"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_jobs_all_complete_on_a_small_pool() {
        let hasher = PasswordHasher::new(2).unwrap();
        let hash = hasher.hash("pass-word-1", &ANY).await.unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (hasher, hash) = (hasher.clone(), hash.clone());
                tokio::spawn(async move {
                    let guess = if i % 2 == 0 {
                        "pass-word-1"
                    } else {
                        "wrong-word"
                    };
                    hasher.verify(guess, Some(&hash), &ANY).await.unwrap()
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
