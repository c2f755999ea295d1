//! Crash tests of the append-only file with real processes: writers record every write the
//! server acknowledged under `appendfsync always`, the server is killed with SIGKILL at
//! random moments, restarted on the same file, and every acknowledged write must be there.
//! Also the SIGTERM path (everything flushed) and `herald check-aof`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;

use common::{Running, HERALD, WAIT};

/// SIGKILL points per run.
const KILL_POINTS: usize = 20;
const WRITERS: usize = 4;

/// `herald server` with the append-only file in `dir` (and no gateway), plus `extra`.
fn start(dir: &Path, extra: &[&str]) -> Running {
    let mut args: Vec<&std::ffi::OsStr> =
        ["--port", "0", "--no-http", "--appendonly", "yes", "--dir"]
            .iter()
            .map(std::ffi::OsStr::new)
            .collect();
    args.push(dir.as_os_str());
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    common::start(args)
}

/// A blocking RESP client good enough for `SET`, `GET` and `INCR`.
struct Client {
    stream: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: &str) -> std::io::Result<Client> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(WAIT))?;
        Ok(Client {
            stream: BufReader::new(stream),
        })
    }

    /// Sends a command and reads a one-line or bulk reply, without its CRLF.
    fn call(&mut self, words: &[&str]) -> std::io::Result<String> {
        let mut request = format!("*{}\r\n", words.len());
        for word in words {
            request.push_str(&format!("${}\r\n{word}\r\n", word.len()));
        }
        self.stream.get_mut().write_all(request.as_bytes())?;
        let mut line = String::new();
        if self.stream.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end().to_owned();
        if let Some(length) = line.strip_prefix('$') {
            let Ok(length) = length.parse::<usize>() else {
                return Ok("(nil)".to_owned());
            };
            let mut bulk = vec![0; length + 2];
            self.stream.read_exact(&mut bulk)?;
            bulk.truncate(length);
            return Ok(String::from_utf8_lossy(&bulk).into_owned());
        }
        Ok(line)
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("herald-crash-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What the writers saw acknowledged: per writer, the last sequence number whose SET
/// replied `+OK`, and the highest counter value an INCR replied.
#[derive(Default)]
struct Acknowledged {
    last_set: [Option<u64>; WRITERS],
    counter: i64,
}

#[test]
fn no_acknowledged_write_is_lost_to_sigkill() {
    let dir = temp_dir("sigkill");
    let acknowledged = Arc::new(Mutex::new(Acknowledged::default()));
    let mut next = [0u64; WRITERS];
    let mut lost = 0;
    let mut verified = 0;
    let mut server = start(&dir, &["--appendfsync", "always"]);
    for point in 0..KILL_POINTS {
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let (addr, stop, acknowledged) = (
                    server.addr.clone(),
                    Arc::clone(&stop),
                    Arc::clone(&acknowledged),
                );
                let first = next[writer];
                std::thread::spawn(move || {
                    let Ok(mut client) = Client::connect(&addr) else {
                        return first;
                    };
                    let mut sequence = first;
                    while !stop.load(Ordering::Relaxed) {
                        let key = format!("w{writer}:{sequence}");
                        match client.call(&["SET", &key, &sequence.to_string()]) {
                            Ok(reply) if reply == "+OK" => {
                                acknowledged.lock().unwrap().last_set[writer] = Some(sequence);
                            }
                            _ => break,
                        }
                        sequence += 1;
                        match client.call(&["INCR", "counter"]) {
                            Ok(reply) => {
                                if let Some(value) =
                                    reply.strip_prefix(':').and_then(|v| v.parse().ok())
                                {
                                    let mut acked = acknowledged.lock().unwrap();
                                    acked.counter = acked.counter.max(value);
                                }
                            }
                            Err(_) => break,
                        }
                    }
                    sequence
                })
            })
            .collect();
        // A different moment each time: early, mid-burst, late.
        std::thread::sleep(Duration::from_millis(30 + (point as u64 * 37) % 170));
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        for (writer, handle) in writers.into_iter().enumerate() {
            next[writer] = handle.join().unwrap();
        }

        server = start(&dir, &["--appendfsync", "always"]);
        let mut client = Client::connect(&server.addr).unwrap();
        let acked = acknowledged.lock().unwrap();
        for (writer, last) in acked.last_set.iter().enumerate() {
            let Some(last) = last else { continue };
            // Every acknowledged SET of this writer so far, sampled densely near the end.
            let mut checks: Vec<u64> = (last.saturating_sub(20)..=*last).collect();
            checks.extend((0..*last).step_by(97));
            for sequence in checks {
                verified += 1;
                let value = client
                    .call(&["GET", &format!("w{writer}:{sequence}")])
                    .unwrap();
                if value != sequence.to_string() {
                    lost += 1;
                    eprintln!("lost w{writer}:{sequence} (got {value})");
                }
            }
        }
        let counter: i64 = client
            .call(&["GET", "counter"])
            .unwrap()
            .parse()
            .unwrap_or(0);
        assert!(
            counter >= acked.counter,
            "counter {counter} < acknowledged {}",
            acked.counter
        );
    }
    let writes: u64 = next.iter().sum();
    eprintln!(
        "{KILL_POINTS} SIGKILL points, {writes} SETs sent, {verified} acknowledged writes checked, {lost} lost"
    );
    assert!(writes > 100, "the writers barely ran: {writes}");
    assert_eq!(lost, 0, "acknowledged writes were lost");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_flushes_everything_under_appendfsync_no() {
    let dir = temp_dir("sigterm");
    let server = start(&dir, &["--appendfsync", "no"]);
    let mut client = Client::connect(&server.addr).unwrap();
    for n in 0..500 {
        assert_eq!(
            client.call(&["RPUSH", "list", &n.to_string()]).unwrap(),
            format!(":{}", n + 1)
        );
    }
    server.send_sigterm();
    server.wait_for("append-only file flushed and fsynced");
    drop(server);
    let server = start(&dir, &[]);
    let mut client = Client::connect(&server.addr).unwrap();
    assert_eq!(client.call(&["LLEN", "list"]).unwrap(), ":500");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

fn check_aof(args: &[&str]) -> (i32, String) {
    let output = Command::new(HERALD)
        .arg("check-aof")
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

#[test]
fn check_aof_reports_and_fix_repairs() {
    let dir = temp_dir("check");
    let path = dir.join("appendonly.aof");
    let mut file = String::new();
    for n in 0..3 {
        file.push_str(&format!("*3\r\n$3\r\nSET\r\n$1\r\n{n}\r\n$1\r\nv\r\n"));
    }
    std::fs::write(&path, &file).unwrap();
    let shown = path.to_str().unwrap();
    let (code, text) = check_aof(&[shown]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("3 commands") && text.contains("AOF is valid"),
        "{text}"
    );

    // What a crash under `always` leaves: the records, then the zeros written ahead.
    let mut crashed = file.clone().into_bytes();
    crashed.resize(crashed.len() + 50_000, 0);
    std::fs::write(&path, &crashed).unwrap();
    let (code, text) = check_aof(&[shown]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("3 commands")
            && text.contains(&format!("records end at offset {}", file.len()))
            && text.contains("50000 bytes of zeros"),
        "{text}"
    );
    // Zeros and then data again is damage, not a crash's tail.
    crashed.extend_from_slice(file.as_bytes());
    std::fs::write(&path, &crashed).unwrap();
    let (code, text) = check_aof(&[shown]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("damaged") && text.contains("zero-filled"),
        "{text}"
    );

    std::fs::write(&path, &file[..file.len() - 4]).unwrap();
    let (code, text) = check_aof(&[shown]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("truncated"), "{text}");
    let (code, text) = check_aof(&[shown, "--fix"]);
    assert_eq!(code, 0, "{text}");
    let record = file.len() / 3;
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 * record as u64);
    assert!(dir.join("appendonly.aof.discarded").exists());

    let mut damaged = file.clone().into_bytes();
    damaged[record] = b'?';
    std::fs::write(&path, &damaged).unwrap();
    let (code, text) = check_aof(&[shown]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&format!("offset {record}")), "{text}");

    let (code, text) = check_aof(&[dir.join("missing.aof").to_str().unwrap()]);
    assert_eq!(code, 2, "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_damaged_file_keeps_the_server_from_starting() {
    let dir = temp_dir("refuse");
    std::fs::write(
        dir.join("appendonly.aof"),
        "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nDEL\r\nx\r\n",
    )
    .unwrap();
    let output = Command::new(HERALD)
        .args([
            "server",
            "--port",
            "0",
            "--no-http",
            "--appendonly",
            "yes",
            "--dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("offset 27"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
