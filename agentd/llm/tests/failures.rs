//! How failures surface: failover past a dead provider and a refused key, a rate limit
//! when no other provider is left, a rejected request that is not retried elsewhere, streams
//! that die or fall silent, and the key kept out of every error.

mod common;

use std::time::Duration;

use carapace_fakes::llm::{Api, Script};
use carapace_llm::{ApiKind, Error, Timeouts};
use common::*;

#[tokio::test]
async fn a_dead_provider_fails_over_to_the_next() {
    for (api, kind) in BOTH {
        let fake = fake().await;
        let llm = llm(vec![
            settings_at(&closed_port(), ApiKind::OpenAi),
            settings(&fake, api, kind),
        ]);
        let reply = llm.complete(&ask("anyone?")).await.unwrap();
        assert_eq!((reply.provider, reply.text.as_str()), (1, "ok: anyone?"));
    }
}

#[tokio::test]
async fn a_refused_key_fails_over_to_the_next() {
    for (api, kind) in BOTH {
        let refusing = fake().await;
        refusing.set_key("sk-some-other-key");
        let working = fake().await;
        let llm = llm(vec![
            settings(&refusing, api, kind),
            settings(&working, api, kind),
        ]);
        let reply = llm.complete(&ask("hi")).await.unwrap();
        assert_eq!(reply.provider, 1, "{api:?}");
        let refused = refusing.requests();
        assert_eq!(refused.len(), 1);
        assert!(!refused[0].key_ok);
    }
}

#[tokio::test]
async fn every_failure_is_listed_when_no_provider_answers() {
    let refusing = fake().await;
    refusing.set_key("sk-some-other-key");
    let dead = closed_port();
    let llm = llm(vec![
        settings_at(&dead, ApiKind::OpenAi),
        settings(&refusing, Api::Anthropic, ApiKind::Anthropic),
    ]);
    let error = llm.complete(&ask("hi")).await.unwrap_err();
    assert_no_key(&error);
    let Error::NoProviderAnswered(failures) = &error else {
        panic!("not a list: {error}");
    };
    assert!(matches!(failures[0], Error::Unreachable { .. }), "{error}");
    assert!(
        matches!(failures[1], Error::Unauthorized { status: 401, .. }),
        "{error}"
    );
    let text = error.to_string();
    let dead_host = dead.trim_start_matches("http://").trim_end_matches("/v1");
    assert!(text.contains(&format!("#0 ({dead_host})")), "{text}");
    assert!(
        text.contains(&format!("#1 ({})", refusing.address())),
        "{text}"
    );
    assert!(text.contains("the owner must set a valid key"), "{text}");
}

#[tokio::test]
async fn a_rate_limit_with_no_other_provider_says_when_to_retry() {
    for (api, kind) in BOTH {
        let fake = fake().await;
        fake.push(Script::rate_limited(17));
        let llm = llm(vec![settings(&fake, api, kind)]);
        let error = llm.complete(&ask("hi")).await.unwrap_err();
        assert_no_key(&error);
        assert!(
            matches!(error, Error::RateLimited { retry_after: Some(wait), .. } if wait == Duration::from_secs(17)),
            "{api:?}: {error}"
        );
    }
}

#[tokio::test]
async fn a_rejected_request_is_not_sent_to_the_next_provider() {
    for (api, kind) in BOTH {
        let rejecting = fake().await;
        rejecting.push(Script::fail(404, "The model `test-model` does not exist"));
        let other = fake().await;
        let llm = llm(vec![
            settings(&rejecting, api, kind),
            settings(&other, api, kind),
        ]);
        let error = llm.complete(&ask("hi")).await.unwrap_err();
        assert!(
            matches!(&error, Error::Rejected { status: 404, message, .. } if message.contains("does not exist")),
            "{api:?}: {error}"
        );
        assert!(other.requests().is_empty());
    }
}

#[tokio::test]
async fn a_stream_cut_mid_way_is_an_error_not_a_partial_answer() {
    for (api, kind) in BOTH {
        let fake = fake().await;
        fake.push(Script::cut("one two three four five", 2));
        let llm = llm(vec![settings(&fake, api, kind)]);
        let error = llm.complete(&ask("count")).await.unwrap_err();
        assert!(
            matches!(&error, Error::Unreachable { reason, .. } if reason.contains("broke off")),
            "{api:?}: {error}"
        );
        // The next reply on the same provider is whole again.
        let reply = llm.complete(&ask("again")).await.unwrap();
        assert_eq!(reply.text, "ok: again");
    }
}

#[tokio::test]
async fn an_error_mid_stream_is_an_error_and_fails_over() {
    for (api, kind) in BOTH {
        let failing = fake().await;
        failing.push(Script::ErrorMidStream {
            text: vec!["Half ".into(), "an ".into()],
            message: "Overloaded".into(),
        });
        let llm_one = llm(vec![settings(&failing, api, kind)]);
        let error = llm_one.complete(&ask("hi")).await.unwrap_err();
        assert!(
            matches!(&error, Error::Unreachable { reason, .. } if reason.contains("Overloaded")),
            "{api:?}: {error}"
        );
        let working = fake().await;
        failing.push(Script::ErrorMidStream {
            text: vec!["Half".into()],
            message: "Overloaded".into(),
        });
        let llm_two = llm(vec![
            settings(&failing, api, kind),
            settings(&working, api, kind),
        ]);
        assert_eq!(llm_two.complete(&ask("hi")).await.unwrap().provider, 1);
    }
}

#[tokio::test]
async fn a_silent_provider_hits_the_idle_limit_and_a_slow_one_the_total() {
    let fake = fake().await;
    let settings = settings(&fake, Api::OpenAi, ApiKind::OpenAi);
    let quick = carapace_llm::Llm::new(http(), vec![settings.clone()])
        .unwrap()
        .with_timeouts(Timeouts {
            request: Duration::from_secs(10),
            idle: Duration::from_millis(300),
        });
    // Slow, but within the idle limit: fine.
    fake.push(Script::slow(
        Duration::from_millis(50),
        Script::text("late"),
    ));
    assert_eq!(quick.complete(&ask("hi")).await.unwrap().text, "late");
    fake.push(Script::slow(
        Duration::from_secs(3),
        Script::text("too late"),
    ));
    let error = quick.complete(&ask("hi")).await.unwrap_err();
    assert!(
        matches!(&error, Error::Unreachable { reason, .. } if reason.contains("nothing came back for 0.3 s")),
        "{error}"
    );
    let short = carapace_llm::Llm::new(http(), vec![settings])
        .unwrap()
        .with_timeouts(Timeouts {
            request: Duration::from_millis(400),
            idle: Duration::from_secs(10),
        });
    fake.push(Script::slow(
        Duration::from_secs(3),
        Script::text("too late"),
    ));
    let error = short.complete(&ask("hi")).await.unwrap_err();
    assert!(
        matches!(&error, Error::Unreachable { reason, .. } if reason.contains("no complete reply within 0.4 s")),
        "{error}"
    );
}

#[tokio::test]
async fn a_server_error_page_is_unreachable_and_readable() {
    let fake = fake().await;
    fake.push(Script::Raw {
        status: 502,
        content_type: "text/html".into(),
        body: "<html>Bad Gateway</html>".into(),
        retry_after: None,
    });
    let llm = llm(vec![settings(&fake, Api::OpenAi, ApiKind::OpenAi)]);
    let error = llm.complete(&ask("hi")).await.unwrap_err();
    assert!(
        matches!(&error, Error::Unreachable { reason, .. } if reason.contains("HTTP 502: <html>Bad Gateway</html>")),
        "{error}"
    );
}

#[tokio::test]
async fn the_key_is_in_no_error() {
    let mut errors = Vec::new();
    for (api, kind) in BOTH {
        let fake = fake().await;
        let llm = llm(vec![settings(&fake, api, kind)]);
        // Providers that echo what they were sent, key included, in their messages.
        let echo = format!("bad request from {SECRET}");
        fake.push(Script::fail(400, &echo));
        fake.push(Script::fail(500, &echo));
        fake.push(Script::ErrorMidStream {
            text: vec![],
            message: echo.clone(),
        });
        fake.push(Script::cut("a b c", 1));
        for _ in 0..4 {
            errors.push(llm.complete(&ask(SECRET)).await.unwrap_err());
        }
        fake.set_key("sk-another");
        errors.push(llm.complete(&ask("hi")).await.unwrap_err());
        errors.push(llm.check(0).await.unwrap_err());
    }
    let dead = llm(vec![settings_at(&closed_port(), ApiKind::Anthropic)]);
    errors.push(dead.complete(&ask("hi")).await.unwrap_err());
    assert_eq!(errors.len(), 13);
    for error in &errors {
        assert_no_key(error);
    }
    // The scrubbing is what kept it out: the echoed message itself is there.
    assert!(
        errors[0].to_string().contains("bad request from <key>"),
        "{}",
        errors[0]
    );
}

#[tokio::test]
async fn a_redirect_is_not_followed_so_the_key_stays_with_its_host() {
    for (api, kind) in BOTH {
        let elsewhere = fake().await;
        let redirecting = fake().await;
        let path = match api {
            Api::OpenAi => "/v1/chat/completions",
            Api::Anthropic => "/v1/messages",
        };
        redirecting.push(Script::Redirect {
            status: 307,
            location: format!("http://{}{path}", elsewhere.address()),
        });
        let llm = llm(vec![settings(&redirecting, api, kind)]);
        let error = llm.complete(&ask("hi")).await.unwrap_err();
        assert!(
            matches!(&error, Error::Rejected { status: 307, message, .. } if message.contains("redirects")),
            "{api:?}: {error}"
        );
        assert!(
            elsewhere.requests().is_empty(),
            "{api:?}: the request followed the redirect"
        );
    }
}
