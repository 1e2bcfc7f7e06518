//! SFTP and FTPS transfer speed of longshore's file stores against real servers on loopback
//! (OpenSSH's sshd, vsftpd with explicit TLS), next to the reference clients timed in the same
//! run, round-robin: OpenSSH's `sftp`, and `curl` for FTPS. Uploads and downloads of one file
//! (512 MB by default; `TRANSFER_MB` sets another size), reports MB/s of each and longshore's
//! share of the reference, and this process's peak RSS (the clients and servers are processes
//! of their own). Needs root (the servers log in a system user), sshd, vsftpd, sftp and curl.
//! Run with `cargo bench --bench transfer`.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use longshore::filestore::ftps::FtpServerConfig;
use longshore::filestore::sftp::SftpServerConfig;
use longshore::filestore::{Connection, ServerConfig};
use longshore::stage::RunContext;

// The test suite's servers, started the same way (not every helper is used here).
#[allow(dead_code)]
#[path = "../tests/it/support/accounts.rs"]
mod accounts;
#[allow(dead_code)]
#[path = "../tests/it/support/certs.rs"]
mod certs;
#[allow(dead_code)]
#[path = "../tests/it/support/sshd.rs"]
mod sshd;
#[allow(dead_code)]
#[path = "../tests/it/support/vsftpd.rs"]
mod vsftpd;

use accounts::{PASSWORD, USER};
use sshd::SftpServer;
use vsftpd::{FtpMode, FtpServer};

const ROUNDS: usize = 3;

fn main() {
    let megabytes: u64 = std::env::var("TRANSFER_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let work = tempfile::tempdir().expect("a temporary directory");
    let file = work.path().join("payload.bin");
    write_payload(&file, megabytes << 20);
    let sftp = SftpServer::start().expect("the transfer bench needs root and sshd");
    let ftp =
        FtpServer::start(FtpMode::Explicit).expect("the transfer bench needs root and vsftpd");
    let cx = RunContext::new("bench", work.path());
    let sftp_config: SftpServerConfig = toml::from_str(&format!(
        "host = \"127.0.0.1\"\nport = {}\nuser = \"{USER}\"\nprivate_key = \"{}\"\nknown_hosts = \"{}\"",
        sftp.port,
        sftp.client_key().display(),
        sftp.known_hosts().display()
    ))
    .expect("an SFTP config");
    let ftp_config: FtpServerConfig = toml::from_str(&format!(
        "host = \"127.0.0.1\"\nport = {}\nuser = \"{USER}\"\npassword = \"{PASSWORD}\"\nca_file = \"{}\"",
        ftp.port,
        ftp.ca().display()
    ))
    .expect("an FTP config");
    let mut sftp_connection = sftp_config.connection(&cx).expect("an SFTP connection");
    let mut ftp_connection = ftp_config.connection(&cx).expect("an FTP connection");
    let down = work.path().join("down.bin");

    println!("transfer: {megabytes} MB over loopback, {ROUNDS} rounds, medians (MB/s)");
    let sftp_reference = |batch: &str| {
        let batch_file = work.path().join("batch");
        std::fs::write(&batch_file, batch).expect("write the sftp batch");
        let status = Command::new("sftp")
            .args(["-q", "-P", &sftp.port.to_string(), "-i"])
            .arg(sftp.client_key())
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                sftp.known_hosts().display()
            ))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-b",
            ])
            .arg(&batch_file)
            .arg(format!("{USER}@127.0.0.1"))
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run sftp");
        assert!(status.success(), "sftp failed");
    };
    let curl = |args: &[&str]| {
        let status = Command::new("curl")
            .args(["-sS", "--ssl-reqd", "--cacert"])
            .arg(ftp.ca())
            .args(["-u", &format!("{USER}:{PASSWORD}")])
            .args(args)
            .status()
            .expect("run curl");
        assert!(status.success(), "curl failed");
    };
    let ftp_url = |name: &str| format!("ftp://127.0.0.1:{}/{name}", ftp.port);
    let file_shown = file.display().to_string();
    let down_shown = down.display().to_string();

    let mut results: Vec<(&str, Vec<f64>, Vec<f64>)> = vec![
        ("SFTP upload", Vec::new(), Vec::new()),
        ("SFTP download", Vec::new(), Vec::new()),
        ("FTPS upload", Vec::new(), Vec::new()),
        ("FTPS download", Vec::new(), Vec::new()),
    ];
    let bytes = megabytes << 20;
    for _ in 0..ROUNDS {
        // SFTP upload: ours, then `sftp put`.
        results[0].1.push(rate(bytes, || {
            upload(&mut sftp_connection, &file, "ours.bin")
        }));
        results[0].2.push(rate(bytes, || {
            sftp_reference(&format!("put {file_shown} ref.bin\n"))
        }));
        // SFTP download of what was uploaded.
        results[1].1.push(rate(bytes, || {
            download(&mut sftp_connection, "ours.bin", &down)
        }));
        results[1].2.push(rate(bytes, || {
            sftp_reference(&format!("get ref.bin {down_shown}\n"))
        }));
        // FTPS, then curl.
        results[2].1.push(rate(bytes, || {
            upload(&mut ftp_connection, &file, "ours.bin")
        }));
        results[2].2.push(rate(bytes, || {
            curl(&["-T", &file_shown, &ftp_url("ref.bin")])
        }));
        results[3].1.push(rate(bytes, || {
            download(&mut ftp_connection, "ours.bin", &down)
        }));
        results[3].2.push(rate(bytes, || {
            curl(&["-o", &down_shown, &ftp_url("ref.bin")])
        }));
        for data in [sftp.data(), ftp.data()] {
            assert_eq!(
                std::fs::metadata(data.join("ours.bin"))
                    .expect("uploaded")
                    .len(),
                bytes
            );
            assert_eq!(
                std::fs::metadata(data.join("ref.bin"))
                    .expect("uploaded")
                    .len(),
                bytes
            );
        }
    }
    println!("| transfer | longshore | reference | share |");
    println!("|---|---:|---:|---:|");
    for (name, ours, reference) in &mut results {
        let (ours, reference) = (median(ours), median(reference));
        let client = if name.starts_with("SFTP") {
            "sftp"
        } else {
            "curl"
        };
        println!(
            "| {name} | {ours:.0} | {reference:.0} ({client}) | {:.0}% |",
            100.0 * ours / reference
        );
    }
    println!("peak RSS of longshore's side: {:.1} MB", peak_rss_mb());
}

/// A file of `bytes` pseudo-random (incompressible) bytes, written in 1 MiB pieces.
fn write_payload(path: &Path, bytes: u64) {
    let mut file =
        std::io::BufWriter::new(std::fs::File::create(path).expect("create the payload"));
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut piece = vec![0u8; 1 << 20];
    for _ in 0..bytes >> 20 {
        for chunk in piece.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        file.write_all(&piece).expect("write the payload");
    }
    file.flush().expect("write the payload");
}

fn upload(connection: &mut Connection, file: &Path, name: &str) {
    connection
        .run("upload", |store| {
            let mut local = std::fs::File::open(file).expect("open the payload");
            store.upload(name, &mut local)
        })
        .expect("upload");
}

fn download(connection: &mut Connection, name: &str, to: &Path) {
    let mut remote = connection
        .run("download", |store| store.open(name))
        .expect("open");
    let mut local = std::fs::File::create(to).expect("create the download");
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = remote.read(&mut buffer).expect("download");
        if read == 0 {
            break;
        }
        local
            .write_all(&buffer[..read])
            .expect("write the download");
    }
}

/// MB/s of moving `bytes` with `transfer`.
fn rate(bytes: u64, transfer: impl FnOnce()) -> f64 {
    let started = Instant::now();
    transfer();
    let elapsed: Duration = started.elapsed();
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Peak resident memory of this process, in MB: `VmHWM`, which starts afresh with the
/// program (`getrusage`'s maximum carries over from the process that started it, cargo).
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kilobytes: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status");
    kilobytes / 1024.0
}
