//! Certificates for the test servers that speak TLS: self-signed, for 127.0.0.1 and
//! localhost, made by the `openssl` command. A test client trusts one by naming it as its CA.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A certificate and its key, written to `dir` as `NAME.pem` and `NAME.key`.
pub struct SelfSigned {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Makes a self-signed certificate for 127.0.0.1 and localhost whose subject is `subject` (a
/// name no system CA has, so a client that does not trust it fails with `UnknownIssuer`). It is
/// not a CA certificate: rustls refuses a CA's as a server's.
pub fn self_signed(dir: &Path, name: &str, subject: &str) -> SelfSigned {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec"])
        .args([
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
        ])
        .arg("-subj")
        .arg(format!("/CN={subject}"))
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap_or_else(|e| panic!("run openssl (apt-get install openssl): {e}"));
    assert!(
        made.status.success(),
        "openssl could not make a certificate:\n{}",
        String::from_utf8_lossy(&made.stderr)
    );
    SelfSigned { cert, key }
}
