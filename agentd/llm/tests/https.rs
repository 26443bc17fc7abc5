//! One exchange over HTTPS: a throwaway CA (made with the openssl CLI) signs a certificate
//! for 127.0.0.1 and localhost, the fake serves with it, and the box's client trusts that CA
//! through `carapace_http::client_trusting`. It proves that reqwest really uses our rustls
//! configuration (`tls_backend_preconfigured`), and that without the CA it refuses.

mod common;

use carapace_fakes::llm::{Api, FakeLlm, Script};
use carapace_fakes::server::tls_acceptor;
use carapace_llm::{ApiKind, Error, Llm};
use common::*;

#[tokio::test]
async fn both_apis_over_https_with_the_test_ca() {
    let directory = tempfile::tempdir().unwrap();
    carapace_fakes::test_ca::make(directory.path(), &["127.0.0.1", "localhost"]);
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
