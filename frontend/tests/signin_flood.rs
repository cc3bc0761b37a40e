//! Wrong passwords sent all at once to a frontend's sign-in, over real connections to its
//! routes served as `td frontend` serves them, with real Argon2 hashes of a real accounts file
//! and a lock shortened to seconds: the limit is counted before the hash, so most are refused
//! (429, Retry-After) and only as many hashes are computed as the limit allows; hashes run a few
//! at a time and the memory kept stays that of a few hashes; another account still signs in
//! from the same address, and the guessed one does once its back-off has passed.

use std::sync::Arc;
use std::time::Duration;

use frontend::portal::{gate, limiter, Portal};
use frontend::Front;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ADA: &str = "ada's right password";
const BOB: &str = "bob's right password";
/// Argon2's default working memory (m = 19456 KiB).
const HASH_MEMORY: usize = 19 * 1024 * 1024;

struct Site {
    addr: std::net::SocketAddr,
    front: Arc<Front>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Site {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn site(limits: limiter::Limits) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cluster.toml");
    // Nothing answers the node's address: sign-in needs only the secret and the accounts file.
    std::fs::write(
        &config,
        "name = \"sign-in test\"\n\
         [[frontend]]\nname = \"fe-1\"\naddress = \"127.0.0.1:7\"\n\
         [[node]]\nname = \"node-a\"\naddress = \"127.0.0.1:9\"\npower_domain = \"A\"\n",
    )
    .unwrap();
    let config = cluster::ClusterConfig::load(&config).unwrap();
    floor::secret_file::create(&config.secret_path()).unwrap();
    let mut users = frontend::portal::users::Users::default();
    users.add("ada", ADA, false).unwrap();
    users.add("bob", BOB, false).unwrap();
    users.save(&config.users_path()).unwrap();
    // The frontend `td frontend` opens, with its portal's lock shortened.
    let Ok(mut front) = Arc::try_unwrap(frontend::open(&config, "fe-1").unwrap()) else {
        panic!("a frontend just opened is not shared");
    };
    front.portal = Arc::new(Portal::new(&config, front.table.clone()).with_signin_limits(limits));
    let front = Arc::new(front);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(frontend::http::serve(listener, front.clone(), async move {
        let _ = stopped.await;
    }));
    Site {
        addr,
        front,
        stop: Some(stop),
        _dir: dir,
    }
}

/// A sign-in form posted on its own connection: the status and the `Retry-After`, if any.
async fn sign_in(addr: std::net::SocketAddr, name: &str, password: &str) -> (u16, Option<u64>) {
    let body = serde_urlencoded::to_string([("name", name), ("password", password)]).unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /portal/login HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
                 content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    let status = answer[9..12].parse().unwrap();
    let retry = answer
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("retry-after: "))
        .map(|v| v.trim().parse().unwrap());
    (status, retry)
}

/// Sends `guesses` at once: (name, password) each.
async fn at_once(
    addr: std::net::SocketAddr,
    guesses: Vec<(String, String)>,
) -> Vec<(u16, Option<u64>)> {
    let mut all = tokio::task::JoinSet::new();
    for (name, password) in guesses {
        all.spawn(async move { sign_in(addr, &name, &password).await });
    }
    all.join_all().await
}

fn resident_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_wrong_passwords_at_once_are_mostly_refused_before_any_hash() {
    let limits = limiter::Limits {
        window: Duration::from_secs(3),
        ..limiter::Limits::default()
    };
    let site = site(limits).await;
    let guesses = (0..40)
        .map(|i| ("ada".to_string(), format!("wrong guess {i}")))
        .collect();
    let answers = at_once(site.addr, guesses).await;
    let count = |s: u16| answers.iter().filter(|(status, _)| *status == s).count();
    assert_eq!(
        (count(401), count(429)),
        (limits.per_account, 40 - limits.per_account),
        "{answers:?}"
    );
    for (status, retry) in &answers {
        if *status == 429 {
            let retry = retry.expect("a 429 says when to try again");
            assert!((1..=limits.window.as_secs()).contains(&retry), "{retry}");
        }
    }
    let hashes = site.front.portal.signin_hashes();
    assert_eq!(
        hashes.hashed, limits.per_account as u64,
        "only the attempts within the limit are hashed"
    );
    assert!(hashes.peak <= gate::HASHES, "{hashes:?}");
    assert!(hashes.memory <= gate::HASHES * HASH_MEMORY, "{hashes:?}");

    // Another account, from the same address, is not held up.
    assert_eq!(sign_in(site.addr, "bob", BOB).await.0, 303);
    // The guessed account is slowed, never locked: once its back-off has passed (the
    // Retry-After it is told), the right password works.
    let mut tries = 0;
    loop {
        match sign_in(site.addr, "ada", ADA).await {
            (303, _) => break,
            (429, Some(retry)) => {
                assert!(retry <= limits.backoff_cap.as_secs(), "{retry}");
                tries += 1;
                assert!(tries <= 3, "still held up after {tries} back-offs");
                tokio::time::sleep(Duration::from_secs(retry)).await;
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_of_names_is_hashed_a_few_at_a_time_in_bounded_memory() {
    let limits = limiter::Limits::default();
    let site = site(limits).await;
    // The first unknown name builds the stand-in hash that unknown names are checked against.
    assert_eq!(sign_in(site.addr, "nobody", "a guess").await.0, 401);
    let before = resident_bytes();
    let guesses = (0..40)
        .map(|i| (format!("name{i}"), format!("guess {i}")))
        .collect();
    let answers = at_once(site.addr, guesses).await;
    let after = resident_bytes();
    let count = |s: u16| answers.iter().filter(|(status, _)| *status == s).count();
    assert_eq!(
        count(401) + count(429) + count(503),
        40,
        "only wrong, locked or busy: {answers:?}"
    );
    assert!(
        count(401) < limits.per_address,
        "one address's failures stay within its limit: {answers:?}"
    );
    for (status, retry) in &answers {
        if *status != 401 {
            assert!(retry.is_some(), "a {status} says when to try again");
        }
    }
    let hashes = site.front.portal.signin_hashes();
    assert_eq!(hashes.hashed, 1 + count(401) as u64, "{hashes:?}");
    assert!(hashes.peak <= gate::HASHES, "{hashes:?}");
    assert!(hashes.memory <= gate::HASHES * HASH_MEMORY, "{hashes:?}");
    // What the process holds grew by at most the places' memory and some slack, not by a hash
    // per guess (which was 19 MiB each, kept).
    let grown = after.saturating_sub(before);
    assert!(
        grown <= gate::HASHES * HASH_MEMORY + 32 * 1024 * 1024,
        "resident memory grew by {} MiB",
        grown >> 20
    );
}
