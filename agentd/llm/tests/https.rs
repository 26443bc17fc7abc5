//! One exchange over HTTPS: a throwaway CA (made with the openssl CLI) signs a certificate
//! for 127.0.0.1 and localhost, the fake serves with it, and the box's client trusts that CA
//! through `carapace_http::client_trusting`. It proves that reqwest really uses our rustls
//! configuration (`tls_backend_preconfigured`), and that without the CA it refuses.

mod common;

use std::path::Path;
use std::process::Command;

use carapace_fakes::llm::{Api, FakeLlm, Script};
use carapace_fakes::server::tls_acceptor;
use carapace_llm::{ApiKind, Error, Llm};
use common::*;

fn openssl(directory: &Path, arguments: &[&str]) {
    let output = Command::new("openssl")
        .args(arguments)
        .current_dir(directory)
        .output()
        .expect("the openssl CLI must be installed for this test");
    assert!(
        output.status.success(),
        "openssl {arguments:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Writes ca.pem, server.pem and server.key into `directory`.
fn make_certificates(directory: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    let mut ca = vec!["req", "-x509", "-nodes", "-days", "2"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=Carapace throwaway test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(directory, &ca);
    let mut request = vec!["req", "-nodes"];
    request.extend(ec);
    request.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(directory, &request);
    std::fs::write(
        directory.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        directory,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
}

#[tokio::test]
async fn both_apis_over_https_with_the_test_ca() {
    let directory = tempfile::tempdir().unwrap();
    make_certificates(directory.path());
    let acceptor = tls_acceptor(
        &directory.path().join("server.pem"),
        &directory.path().join("server.key"),
    )
    .unwrap();
    let fake = FakeLlm::start(LOOPBACK.parse().unwrap(), Some(acceptor))
        .await
        .unwrap();
    fake.set_key(SECRET);
    fake.push(Script::text("over TLS"));
    assert!(fake.base_url(Api::OpenAi).starts_with("https://127.0.0.1:"));

    let ca_path = directory.path().join("ca.pem");
    let ca_pem = std::fs::read(&ca_path).unwrap();
    let trusting = carapace_http::client_trusting(Some(&ca_pem), &ca_path).unwrap();
    let providers = vec![
        settings(&fake, Api::OpenAi, ApiKind::OpenAi),
        // The certificate's DNS name, not only its IP address.
        settings_at(
            &format!("https://localhost:{}", fake.address().port()),
            ApiKind::Anthropic,
        ),
    ];
    let llm = Llm::new(trusting, providers.clone()).unwrap();
    assert_eq!(llm.complete(&ask("hi")).await.unwrap().text, "over TLS");
    llm.check(1).await.unwrap();
    assert_eq!(fake.requests().len(), 2);

    // Without the test CA the same server is refused: the check above was real.
    let public_only = Llm::new(http(), providers).unwrap();
    let error = public_only.check(0).await.unwrap_err();
    assert!(
        matches!(&error, Error::Unreachable { reason, .. } if reason.contains("certificate")),
        "{error}"
    );
    assert_eq!(fake.requests().len(), 2, "no request got through");
}
