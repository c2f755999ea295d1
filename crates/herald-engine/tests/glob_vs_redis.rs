//! Differential test: `Glob::matches` against a real `redis-server`.
//!
//! Redis is asked through the path Herald reimplements: one connection
//! PSUBSCRIBEs every pattern, another PUBLISHes every subject, and the
//! `pmessage`s that arrive say exactly which (pattern, subject) pairs Redis
//! matched. (KEYS would be simpler but special-cases the pattern `*` and
//! never calls the matcher for it.)
//!
//! A missing `redis-server` fails the test unless `HERALD_SKIP_REDIS_DIFF=1`:
//! a differential test that silently skips proves nothing.

use std::collections::{BTreeSet, HashSet};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use herald_engine::Glob;

const SKIP_ENV: &str = "HERALD_SKIP_REDIS_DIFF";
/// Every socket read and write gives up after this, so the test cannot hang.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const STARTUP_TIMEOUT: Duration = Duration::from_secs(5);
const RANDOM_PATTERNS: usize = 300;
const RANDOM_SUBJECTS: usize = 300;
/// Override with `HERALD_GLOB_DIFF_SEED` to explore other inputs.
const DEFAULT_SEED: u64 = 0x5eed_9e37_79b9_7f4a;

/// Kills the child on every exit path, panics included.
struct RedisServer {
    child: Child,
    port: u16,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts redis-server on a free port; `Ok(None)` only when it is missing and
/// the skip variable is set.
fn start_redis() -> io::Result<Option<RedisServer>> {
    // Redis cannot listen on port 0, so borrow a free port from the OS.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let spawned = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match spawned {
        Ok(child) => child,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            if std::env::var(SKIP_ENV).as_deref() == Ok("1") {
                eprintln!("redis-server not found; skipped because {SKIP_ENV}=1");
                return Ok(None);
            }
            panic!(
                "redis-server not found on PATH ({err}). Install it (apt-get install \
                 redis-server) or set {SKIP_ENV}=1 to skip this differential test."
            );
        }
        Err(err) => return Err(err),
    };
    let mut server = RedisServer { child, port };
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = server.child.try_wait()? {
            panic!("redis-server exited during startup: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "redis-server did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Some(server))
}

/// The RESP2 replies this test needs.
#[derive(Debug, PartialEq)]
enum Reply {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn connect(port: u16) -> io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(Conn {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    fn send(&mut self, args: &[&[u8]]) -> io::Result<()> {
        let mut frame = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            frame.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            frame.extend_from_slice(arg);
            frame.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&frame)
    }

    fn line(&mut self) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line)?;
        if !line.ends_with(b"\r\n") {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated"));
        }
        line.truncate(line.len() - 2);
        Ok(line)
    }

    fn number(bytes: &[u8]) -> io::Result<i64> {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad number"))
    }

    fn read(&mut self) -> io::Result<Reply> {
        let line = self.line()?;
        let (kind, rest) = line
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "empty line"))?;
        Ok(match kind {
            b'+' => Reply::Simple(rest.to_vec()),
            b'-' => Reply::Error(rest.to_vec()),
            b':' => Reply::Integer(Self::number(rest)?),
            b'$' => match usize::try_from(Self::number(rest)?) {
                Err(_) => Reply::Bulk(None),
                Ok(len) => {
                    let mut data = vec![0; len + 2];
                    self.reader.read_exact(&mut data)?;
                    data.truncate(len);
                    Reply::Bulk(Some(data))
                }
            },
            b'*' => {
                let len = usize::try_from(Self::number(rest)?).unwrap_or(0);
                let items = (0..len).map(|_| self.read()).collect::<io::Result<_>>()?;
                Reply::Array(items)
            }
            _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "bad reply")),
        })
    }
}

/// xorshift64*: deterministic inputs without a new dependency.
struct Rng(u64);

impl Rng {
    /// Scrambles the seed (splitmix64) so nearby seeds differ and none is 0.
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, alphabet: &[u8], max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len)
            .map(|_| alphabet[self.below(alphabet.len())])
            .collect()
    }
}

/// Hand-picked cases: every rule in util.c, and Redis's own regressions.
fn curated() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let patterns: &[&[u8]] = &[
        b"",
        b"*",
        b"**",
        b"?",
        b"foo.*",
        b"f?o",
        b"*?*",
        b"[]",
        b"[^]",
        b"[",
        b"[^",
        b"[a-",
        b"[a-]",
        b"[a-]b",
        b"[z-a]",
        b"[\\]]",
        b"[\\",
        b"[a\\",
        b"\\*",
        b"foo\\",
        b"\\",
        b"[]a]",
        b"[^]a]",
        b"[a-\xff]",
        b"[\x7f-\x80]",
        b"[!-\\]",
        b"h[^e]llo",
        b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b",
    ];
    let subjects: &[&[u8]] = &[
        b"",
        b"a",
        b"b",
        b"]",
        b"-",
        b"\\",
        b"*",
        b"[",
        b"^",
        b"\0",
        b"\x80",
        b"\xff",
        b"foo",
        b"foo.1",
        b"foo1",
        b"barfoo.1",
        b"foo\\",
        b"hallo",
        b"hello",
        b"ab",
        b"a]b",
    ];
    let mut patterns: Vec<Vec<u8>> = patterns.iter().map(|p| p.to_vec()).collect();
    let mut subjects: Vec<Vec<u8>> = subjects.iter().map(|s| s.to_vec()).collect();
    // Redis's nesting guard: 1000 star groups match, 1001 do not.
    patterns.extend([b"*a".repeat(1000), b"*a".repeat(1001), b"*?".repeat(50_000)]);
    subjects.extend([vec![b'a'; 1000], vec![b'a'; 1001], vec![b'a'; 50_000]]);
    let mut ab = vec![b'a'; 40];
    ab.push(b'b');
    subjects.push(ab);
    (patterns, subjects)
}

#[test]
fn glob_agrees_with_redis_server() {
    let started = Instant::now();
    let Some(server) = start_redis().unwrap() else {
        return;
    };
    let seed = std::env::var("HERALD_GLOB_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let mut rng = Rng::new(seed);
    let (mut patterns, mut subjects) = curated();
    for _ in 0..RANDOM_PATTERNS {
        patterns.push(rng.bytes(b"*?[]^-\\abc*?[]abc\0\x80\xff", 10));
    }
    for _ in 0..RANDOM_SUBJECTS {
        subjects.push(rng.bytes(b"abc-]^*\\[?abcabc\0\x80\xff", 8));
    }
    // Patterns read as subjects hit classes and escapes far more often.
    subjects.extend(patterns[patterns.len() - 100..].iter().cloned());
    let patterns: Vec<Vec<u8>> = BTreeSet::from_iter(patterns).into_iter().collect();
    let subjects: Vec<Vec<u8>> = BTreeSet::from_iter(subjects).into_iter().collect();

    let mut sub = Conn::connect(server.port).unwrap();
    let mut publisher = Conn::connect(server.port).unwrap();
    let mut command: Vec<&[u8]> = vec![b"PSUBSCRIBE"];
    command.extend(patterns.iter().map(Vec::as_slice));
    sub.send(&command).unwrap();
    for _ in &patterns {
        let Reply::Array(ack) = sub.read().unwrap() else {
            panic!("PSUBSCRIBE did not ack with an array");
        };
        assert_eq!(
            ack.first(),
            Some(&Reply::Bulk(Some(b"psubscribe".to_vec())))
        );
    }

    // Redis's verdict: each pmessage names one matching (pattern, subject).
    let mut expected_deliveries = 0;
    for chunk in subjects.chunks(64) {
        for subject in chunk {
            publisher.send(&[b"PUBLISH", subject, b"m"]).unwrap();
        }
        for _ in chunk {
            match publisher.read().unwrap() {
                Reply::Integer(n) => expected_deliveries += n,
                other => panic!("PUBLISH replied {other:?}"),
            }
        }
    }
    let mut redis_says = HashSet::new();
    for _ in 0..expected_deliveries {
        let Reply::Array(items) = sub.read().unwrap() else {
            panic!("expected a pmessage");
        };
        let [_, Reply::Bulk(Some(pattern)), Reply::Bulk(Some(channel)), _] = &items[..] else {
            panic!("malformed pmessage {items:?}");
        };
        redis_says.insert((pattern.clone(), channel.clone()));
    }

    let mut mismatches = Vec::new();
    let mut positives = 0;
    for pattern in &patterns {
        let glob = Glob::new(pattern);
        for subject in &subjects {
            let ours = glob.matches(subject);
            positives += usize::from(ours);
            if ours != redis_says.contains(&(pattern.clone(), subject.clone())) {
                mismatches.push(format!(
                    "pattern {:?} subject {:?}: glob says {ours}, redis says {}",
                    truncated(pattern),
                    truncated(subject),
                    !ours
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "seed {seed}: {} of {} pairs differ from redis-server:\n{}",
        mismatches.len(),
        patterns.len() * subjects.len(),
        mismatches[..mismatches.len().min(25)].join("\n")
    );
    // Guard against a vacuous pass (e.g. nothing delivered at all).
    assert!(positives > 1000, "only {positives} matching pairs");
    eprintln!(
        "{} patterns x {} subjects agree with redis-server ({positives} matches) in {:?}",
        patterns.len(),
        subjects.len(),
        started.elapsed()
    );
}

fn truncated(bytes: &[u8]) -> String {
    let shown = bytes.escape_ascii().to_string();
    if shown.len() > 60 {
        format!("{}... ({} bytes)", &shown[..60], bytes.len())
    } else {
        shown
    }
}
