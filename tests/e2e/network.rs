//! Reaching the API from a company network, through the built binary: an
//! HTTPS API whose certificate comes from a CA made in the test (trusted
//! through `BLOOMREACH_CA_FILE` or the system store's `SSL_CERT_FILE`,
//! refused otherwise), and a forward proxy on loopback (tunnels for
//! `https://`, absolute-form requests for `http://`, `NO_PROXY`, credentials
//! in its URL, a proxy that refuses or is not there).

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;

use crate::support::binary::{api_args, api_env, command};
use crate::support::fake_api::{expected_pools, fake_api};
use crate::support::proxy::{Proxy, ProxyMode};
use crate::support::tls::{tls_front, TestCa};
use crate::support::PROJECT;

/// A folder of its own for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vouchers-net-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// `call list_voucher_pools` against `base_url` with `extra` arguments and
/// `env` beside the test key.
async fn list_pools(base_url: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut args = api_args(base_url);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.extend(["call".into(), "list_voucher_pools".into()]);
    args.push(format!("project_id={PROJECT}"));
    let mut all_env = api_env();
    all_env.extend_from_slice(env);
    command(&args, &all_env)
        .output()
        .await
        .expect("run the binary")
}

fn envelope(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "one JSON envelope on stdout ({e}); stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn assert_served(output: &Output) {
    let envelope = envelope(output);
    assert_eq!(envelope["success"], true, "{envelope}");
    assert_eq!(envelope["data"], expected_pools());
    assert!(output.status.success());
}

fn error_text(output: &Output) -> String {
    let envelope = envelope(output);
    assert_eq!(envelope["success"], false, "{envelope}");
    assert_eq!(output.status.code(), Some(1));
    envelope["error"]
        .as_str()
        .expect("an error text")
        .to_owned()
}

/// An HTTPS API (`https://localhost:<port>`) signed by a fresh test CA.
async fn https_api(ca: &TestCa) -> (wiremock::MockServer, String) {
    let api = fake_api().await;
    let front = tls_front(ca, *api.address()).await;
    (api, format!("https://localhost:{}", front.port()))
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_naming_the_host_and_the_ca_setting() {
    let ca = TestCa::new();
    let (_api, base) = https_api(&ca).await;
    let text = error_text(&list_pools(&base, &[], &[]).await);
    let host = base.trim_start_matches("https://");
    assert!(
        text.starts_with(&format!(
            "Could not reach the Bloomreach API at {host}: its TLS certificate is not trusted"
        )),
        "{text}"
    );
    assert!(
        text.contains("BLOOMREACH_CA_FILE (\"Extra CA certificates\" in the extension's settings)"),
        "{text}"
    );
    // A certificate is not retried: trying again cannot change it.
    assert!(!text.contains("retr"), "{text}");
}

#[tokio::test]
async fn the_ca_file_setting_adds_the_certificate_authority() {
    let ca = TestCa::new();
    let (_api, base) = https_api(&ca).await;
    let dir = scratch("ca-file");
    let ca_file = ca.write_ca(&dir, "corp-ca.pem");
    let ca_file = ca_file.to_str().unwrap();
    assert_served(&list_pools(&base, &[], &[("BLOOMREACH_CA_FILE", ca_file)]).await);
    assert_served(&list_pools(&base, &["--ca-file", ca_file], &[]).await);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_ca_installed_in_the_system_store_is_trusted() {
    let ca = TestCa::new();
    let (_api, base) = https_api(&ca).await;
    let dir = scratch("system-store");
    let bundle = ca.write_ca(&dir, "system-bundle.pem");
    assert_served(&list_pools(&base, &[], &[("SSL_CERT_FILE", bundle.to_str().unwrap())]).await);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_ca_file_that_is_missing_or_holds_no_certificate_stops_the_start() {
    let dir = scratch("bad-ca");
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let missing = dir.join("missing.pem");
    for (path, problem) in [
        (&missing, "cannot be read"),
        (&empty, "holds no PEM certificate"),
    ] {
        let output = command(
            &["--demo", "tools"],
            &[("BLOOMREACH_CA_FILE", path.to_str().unwrap())],
        )
        .output()
        .await
        .unwrap();
        assert_eq!(output.status.code(), Some(2));
        assert!(output.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("error: BLOOMREACH_CA_FILE (--ca-file) {problem}")),
            "{stderr}"
        );
        assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn https_goes_through_the_proxy_tunnel_unless_no_proxy_names_the_host() {
    let ca = TestCa::new();
    let (_api, base) = https_api(&ca).await;
    let dir = scratch("tunnel");
    let ca_file = ca.write_ca(&dir, "ca.pem");
    let ca_file = ca_file.to_str().unwrap();
    let host = base.trim_start_matches("https://").to_owned();

    for variable in ["HTTPS_PROXY", "https_proxy", "ALL_PROXY"] {
        let proxy = Proxy::start(ProxyMode::Open).await;
        let url = proxy.url();
        let output = list_pools(
            &base,
            &[],
            &[("BLOOMREACH_CA_FILE", ca_file), (variable, url.as_str())],
        )
        .await;
        assert_served(&output);
        let lines: Vec<String> = proxy.seen().into_iter().map(|s| s.request_line).collect();
        assert_eq!(lines, [format!("CONNECT {host} HTTP/1.1")], "{variable}");
    }

    for no_proxy in ["localhost", ".localhost,example.com", "*"] {
        let proxy = Proxy::start(ProxyMode::Open).await;
        let url = proxy.url();
        let output = list_pools(
            &base,
            &[],
            &[
                ("BLOOMREACH_CA_FILE", ca_file),
                ("HTTPS_PROXY", url.as_str()),
                ("NO_PROXY", no_proxy),
            ],
        )
        .await;
        assert_served(&output);
        assert_eq!(proxy.seen(), [], "NO_PROXY={no_proxy}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn plain_http_goes_through_http_proxy_as_absolute_requests() {
    let api = fake_api().await;
    let proxy = Proxy::start(ProxyMode::Open).await;
    let url = proxy.url();
    assert_served(&list_pools(&api.uri(), &[], &[("HTTP_PROXY", url.as_str())]).await);
    let lines: Vec<String> = proxy.seen().into_iter().map(|s| s.request_line).collect();
    assert_eq!(
        lines,
        [format!(
            "GET {}/data/v2/projects/{PROJECT}/vouchers/pools HTTP/1.1",
            api.uri()
        )]
    );
}

#[tokio::test]
async fn proxy_credentials_reach_the_proxy_and_never_stderr() {
    let ca = TestCa::new();
    let (_api, base) = https_api(&ca).await;
    let dir = scratch("proxy-auth");
    let ca_file = ca.write_ca(&dir, "ca.pem");
    // base64("corp-user:Pr0xy-S3cret!")
    let proxy = Proxy::start(ProxyMode::RequireAuth(
        "Basic Y29ycC11c2VyOlByMHh5LVMzY3JldCE=",
    ))
    .await;
    let url = format!("http://corp-user:Pr0xy-S3cret%21@{}", proxy.addr);
    let output = list_pools(
        &base,
        &[],
        &[
            ("BLOOMREACH_CA_FILE", ca_file.to_str().unwrap()),
            ("HTTPS_PROXY", url.as_str()),
            ("RUST_LOG", "trace"),
        ],
    )
    .await;
    assert_served(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.lines().count() > 5, "trace logging is on: {stderr}");
    for secret in [
        "Pr0xy-S3cret",
        "Y29ycC11c2VyOlByMHh5LVMzY3JldCE",
        "corp-user",
    ] {
        assert!(!stderr.contains(secret), "{secret} leaked: {stderr}");
    }

    // Without the right credentials the proxy answers 407, reported as the
    // proxy's, at once, with neither the wrong credentials nor a retry.
    let wrong = format!("http://corp-user:wrong-Pw@{}", proxy.addr);
    let output = list_pools(
        &base,
        &[],
        &[
            ("BLOOMREACH_CA_FILE", ca_file.to_str().unwrap()),
            ("HTTPS_PROXY", wrong.as_str()),
        ],
    )
    .await;
    let text = error_text(&output);
    assert!(
        text.contains(&format!(
            "the proxy at {} (set by HTTPS_PROXY) failed: the proxy asks for credentials (HTTP 407), which go in the proxy URL as http://user:password@host:port; check HTTPS_PROXY, or list localhost in NO_PROXY to reach it directly",
            proxy.addr
        )),
        "{text}"
    );
    assert!(
        !text.contains("wrong-Pw") && !text.contains("retr"),
        "{text}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_proxy_that_refuses_or_is_absent_is_named_as_the_fault() {
    let ca = TestCa::new();
    let (_api, base) = https_api(&ca).await;
    let host = base.trim_start_matches("https://").to_owned();

    let refusing = Proxy::start(ProxyMode::Refuse).await;
    let url = refusing.url();
    let text = error_text(&list_pools(&base, &[], &[("HTTPS_PROXY", url.as_str())]).await);
    assert!(
        text.starts_with(&format!(
            "Could not reach the Bloomreach API: the proxy at {} (set by HTTPS_PROXY) failed: the proxy refused to open a connection to {host}",
            refusing.addr
        )),
        "{text}"
    );
    assert!(
        text.ends_with("(after 3 retries); check HTTPS_PROXY, or list localhost in NO_PROXY to reach it directly"),
        "{text}"
    );

    // A port nothing listens on: bound, then closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let url = format!("http://{closed_addr}");
    let text = error_text(&list_pools(&base, &[], &[("ALL_PROXY", url.as_str())]).await);
    assert!(
        text.starts_with(&format!(
            "Could not reach the Bloomreach API: the proxy at {closed_addr} (set by ALL_PROXY) failed: the proxy could not be reached"
        )),
        "{text}"
    );
}

#[tokio::test]
async fn an_unusable_proxy_variable_stops_the_start_without_quoting_it() {
    let output = command(
        &["--demo", "tools"],
        &[("HTTPS_PROXY", "ftp://someone:hunter2@proxy.corp:21")],
    )
    .output()
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: HTTPS_PROXY "), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
