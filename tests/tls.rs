//! TLS end to end with a certificate authority and certificates made inside the test: the
//! server serves rustls, clients that trust the CA get through (the library and the CLI with
//! `--ca`), clients that do not are refused, and the server will not serve plaintext on an
//! address other machines can reach. The gateway terminates TLS the same way and reaches
//! TLS services through the CA it is given.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::process::Command;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use singularity::domain::estate::{City, EstateSpec, generate};
use singularity::domain::inventory::Role;
use singularity::link::{endpoint, with_token};
use singularity::proto::{self, auth_client::AuthClient};
use singularity::server::{ServerConfig, TlsIdentity};
use singularity::store::prelude::*;
use singularity::store::sqlite::SqliteStore;

struct Pki {
    ca_pem: String,
    server: TlsIdentity,
}

/// A CA, and a certificate for `localhost` that it signed.
fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "singularity test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        server: TlsIdentity {
            cert_pem: server_cert.pem().into_bytes(),
            key_pem: server_key.serialize_pem().into_bytes(),
        },
    }
}

/// A TLS server on a 10-lamp estate, with a session for a user; stops when `stop` is sent.
struct TlsServer {
    _dir: tempfile::TempDir,
    port: u16,
    token: String,
    stop: tokio::sync::oneshot::Sender<()>,
    running: tokio::task::JoinHandle<Result<(), singularity::server::ServerError>>,
}

async fn tls_server(identity: &TlsIdentity) -> TlsServer {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("estate.db")).unwrap());
    store
        .import_estate(&generate(&EstateSpec {
            lamps: 10,
            rng_seed: 1,
            city: City::by_key("london").unwrap(),
        }))
        .unwrap();
    let token = common::session_for(store.as_ref(), "remote", Role::User);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = ServerConfig {
        tls: Some(identity.clone()),
        ..common::config()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(singularity::server::run(
        listener,
        store,
        config,
        async move {
            let _ = stopped.await;
        },
    ));
    TlsServer {
        _dir: dir,
        port,
        token,
        stop,
        running,
    }
}

impl TlsServer {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.running.await.unwrap().unwrap();
    }
}

/// Who `token` is, asked over TLS of `url` by a client trusting `ca_pem`.
async fn who_am_i(
    url: &str,
    ca_pem: &str,
    token: &str,
) -> Result<proto::LoginResponse, tonic::Status> {
    let channel = endpoint(url, Some(ca_pem.as_bytes()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    AuthClient::new(with_token(channel, Some(token)).unwrap())
        .who_am_i(proto::WhoAmIRequest {})
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn clients_that_trust_the_ca_get_through_and_others_do_not() {
    let pki = pki();
    let server = tls_server(&pki.server).await;
    let (port, token) = (server.port, server.token.clone());
    let dir = tempfile::tempdir().unwrap();
    let url = format!("https://localhost:{port}");

    // Trusting the CA: signed in, over TLS, with the peer recorded.
    let me = who_am_i(&url, &pki.ca_pem, &token).await.unwrap();
    assert_eq!(me.user.unwrap().username, "remote");

    // Trusting only the system's roots: the handshake fails.
    let untrusted = endpoint(&url, None).unwrap().connect().await;
    assert!(
        untrusted.is_err(),
        "a certificate from an unknown CA was accepted"
    );
    // Plaintext to the TLS port gets nowhere either.
    let plain = tonic::transport::Endpoint::from_shared(format!("http://localhost:{port}"))
        .unwrap()
        .connect()
        .await;
    let refused = match plain {
        Err(_) => true,
        Ok(channel) => AuthClient::new(channel)
            .login(proto::LoginRequest::default())
            .await
            .is_err(),
    };
    assert!(refused);

    // The CLI with --ca.
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let (url_cli, ca_cli, token_cli) = (url.clone(), ca_file.clone(), token.clone());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_singularity"))
            .args(["client", "--server", &url_cli, "--ca"])
            .arg(&ca_cli)
            .args(["--json", "whoami"])
            .env("SINGULARITY_TOKEN", &token_cli)
            .env_remove("SINGULARITY_USER")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("\"remote\""), "{stdout}");

    // Without the CA the CLI says the certificate was not trusted, and against what; plain
    // http to the TLS port says to use https. Both are "unreachable" (6), not bad usage.
    let (url_cli, token_cli) = (url.clone(), token.clone());
    let plain_url = format!("http://localhost:{port}");
    let (untrusted, plain) = tokio::task::spawn_blocking(move || {
        let run = |server: &str| {
            Command::new(env!("CARGO_BIN_EXE_singularity"))
                .args(["client", "--server", server, "whoami"])
                .env("SINGULARITY_TOKEN", &token_cli)
                .env_remove("SINGULARITY_USER")
                .env_remove("SINGULARITY_CA")
                .output()
                .unwrap()
        };
        (run(&url_cli), run(&plain_url))
    })
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&untrusted.stderr);
    assert_eq!(untrusted.status.code(), Some(6), "{said}");
    assert!(
        said.contains("not trusted") && said.contains("--ca"),
        "{said}"
    );
    let said = String::from_utf8_lossy(&plain.stderr);
    assert_eq!(plain.status.code(), Some(6), "{said}");
    assert!(said.contains("https://"), "{said}");

    server.stop().await;
}

#[tokio::test]
async fn the_gateway_terminates_tls_and_reaches_tls_services_through_their_ca() {
    let pki = pki();
    let server = tls_server(&pki.server).await;
    let token = server.token.clone();
    let server_url = format!("https://localhost:{}", server.port);

    // The gateway serves TLS with its own certificate and trusts the services' CA.
    let start_gateway = |upstream_ca: Option<Vec<u8>>| async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://localhost:{}",
            listener.local_addr().unwrap().port()
        );
        let routes = singularity::server::services::Part::ALL
            .iter()
            .map(|part| (*part, vec![server_url.clone()]))
            .collect();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(singularity::gateway::run(
            listener,
            singularity::gateway::GatewayConfig {
                routes,
                tls: Some(pki.server.clone()),
                upstream_ca_pem: upstream_ca,
                ..Default::default()
            },
            Arc::new(singularity::server::metrics::Metrics::default()),
            async move {
                let _ = stopped.await;
            },
        ));
        (url, stop)
    };
    let (gateway_url, stop_gateway) = start_gateway(Some(pki.ca_pem.clone().into_bytes())).await;
    let me = who_am_i(&gateway_url, &pki.ca_pem, &token).await.unwrap();
    assert_eq!(me.user.unwrap().username, "remote");
    // A client that does not trust the gateway's CA gets no further than the handshake.
    assert!(
        endpoint(&gateway_url, None)
            .unwrap()
            .connect()
            .await
            .is_err()
    );

    // A gateway that does not trust the services' CA cannot reach them: it says so.
    let (doubting_url, stop_doubting) = start_gateway(None).await;
    let refused = who_am_i(&doubting_url, &pki.ca_pem, &token)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("certificate"), "{refused:?}");

    let _ = stop_gateway.send(());
    let _ = stop_doubting.send(());
    server.stop().await;
}

#[test]
fn the_server_refuses_plaintext_where_others_can_reach_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("estate.db").display());
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_singularity"))
            .args(["server", "--database-url", &url])
            .args(args)
            .env_remove("SINGULARITY_LISTEN")
            .env_remove("SINGULARITY_INSECURE")
            .output()
            .unwrap()
    };
    let open = run(&["--listen", "0.0.0.0:0"]);
    assert!(!open.status.success());
    let message = String::from_utf8_lossy(&open.stderr);
    assert!(
        message.contains("refusing to serve plaintext on 0.0.0.0:0")
            && message.contains("--tls-cert"),
        "{message}"
    );
    let half = run(&["--listen", "0.0.0.0:0", "--tls-cert", "cert.pem"]);
    assert!(!half.status.success());
    assert!(
        String::from_utf8_lossy(&half.stderr).contains("--tls-key"),
        "{}",
        String::from_utf8_lossy(&half.stderr)
    );
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let bad = run(&[
        "--listen",
        "0.0.0.0:0",
        "--tls-cert",
        not_pem.to_str().unwrap(),
        "--tls-key",
        not_pem.to_str().unwrap(),
    ]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("no PEM certificate"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
