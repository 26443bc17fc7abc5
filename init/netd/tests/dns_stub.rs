//! The stub over real loopback sockets, against a fake upstream: what reaches the client, what
//! reaches the firewall, and in which order.

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use carapace_netd::dns::{StatsSnapshot, Stub, serve};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

use support::upstream::{FakeUpstream, NEGATIVE_TTL, Zone};
use support::{
    ListPolicy, ManualClock, RecordingSink, SharedSink, ask_tcp_many, ask_udp, exchange_udp, parse,
    query_bytes,
};

type TestStub = Stub<ListPolicy, SharedSink>;

struct Running {
    stub: Arc<TestStub>,
    udp: SocketAddr,
    tcp: SocketAddr,
    sink: Arc<RecordingSink>,
    upstreams: watch::Sender<Vec<SocketAddr>>,
}

fn zone() -> Zone {
    Zone::default()
        .a("a.allowed.test.", Ipv4Addr::new(192, 0, 2, 1), 300)
        .a("a.allowed.test.", Ipv4Addr::new(192, 0, 2, 2), 200)
        .aaaa(
            "a.allowed.test.",
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            400,
        )
        .cname("www.allowed.test.", "cdn.other.test.", 600)
        .a("cdn.other.test.", Ipv4Addr::new(1, 2, 3, 4), 30)
        .a("long.allowed.test.", Ipv4Addr::new(192, 0, 2, 7), 86_400)
        .a("denied.test.", Ipv4Addr::new(203, 0, 113, 1), 300)
}

fn policy() -> ListPolicy {
    ListPolicy::of(&[
        ("a.allowed.test", &[443, 8443]),
        ("www.allowed.test", &[443]),
        ("long.allowed.test", &[443]),
        ("missing.allowed.test", &[443]),
    ])
}

async fn start(
    sink: RecordingSink,
    upstreams: Vec<SocketAddr>,
    configure: impl FnOnce(TestStub) -> TestStub,
) -> Running {
    let sink = Arc::new(sink);
    let (sender, receiver) = watch::channel(upstreams);
    let stub = Arc::new(configure(Stub::new(
        Arc::new(policy()),
        SharedSink(Arc::clone(&sink)),
        receiver,
    )));
    let udp_socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|error| panic!("stub UDP bind: {error}"));
    let tcp_listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|error| panic!("stub TCP bind: {error}"));
    let udp = udp_socket
        .local_addr()
        .unwrap_or_else(|error| panic!("{error}"));
    let tcp = tcp_listener
        .local_addr()
        .unwrap_or_else(|error| panic!("{error}"));
    tokio::spawn(serve(udp_socket, tcp_listener, Arc::clone(&stub)));
    Running {
        stub,
        udp,
        tcp,
        sink,
        upstreams: sender,
    }
}

async fn start_with_upstream(sink: RecordingSink) -> (Running, FakeUpstream) {
    let upstream = FakeUpstream::start(zone()).await;
    let running = start(sink, vec![upstream.address], |stub| stub).await;
    (running, upstream)
}

fn addresses(reply: &Message) -> Vec<IpAddr> {
    reply
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect()
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

#[tokio::test]
async fn an_allowed_name_is_answered_only_after_the_sink_opened_each_address_for_each_port() {
    let sink = RecordingSink {
        delay: Duration::from_millis(200),
        ..RecordingSink::default()
    };
    let (running, upstream) = start_with_upstream(sink).await;
    let sent_at = Instant::now();
    let reply = ask_udp(running.udp, "a.allowed.test.", RecordType::A).await;
    let received_at = Instant::now();

    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&reply), vec![v4(192, 0, 2, 1), v4(192, 0, 2, 2)]);
    assert_eq!(upstream.queries(), 1);
    let calls = running.sink.calls();
    assert_eq!(calls.len(), 1, "one sink call per upstream answer");
    let mut entries = calls[0].entries.clone();
    entries.sort();
    assert_eq!(
        entries,
        vec![
            (v4(192, 0, 2, 1), 443),
            (v4(192, 0, 2, 1), 8443),
            (v4(192, 0, 2, 2), 443),
            (v4(192, 0, 2, 2), 8443)
        ]
    );
    assert_eq!(
        calls[0].timeout,
        Duration::from_secs(200),
        "the smallest address TTL"
    );
    assert!(
        calls[0].finished_at <= received_at,
        "the sink finished after the client had its answer"
    );
    assert!(
        received_at - sent_at >= Duration::from_millis(200),
        "the answer did not wait for the sink"
    );
    let stats = running.stub.stats();
    assert_eq!(
        (stats.queries, stats.answered, stats.allow_insertions),
        (1, 1, 4)
    );
}

#[tokio::test]
async fn aaaa_answers_open_ipv6_addresses_and_the_timeout_is_clamped_to_an_hour() {
    let (running, _upstream) = start_with_upstream(RecordingSink::default()).await;
    let reply = ask_udp(running.udp, "a.allowed.test.", RecordType::AAAA).await;
    let address = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    assert_eq!(addresses(&reply), vec![address]);
    let reply = ask_udp(running.udp, "long.allowed.test.", RecordType::A).await;
    assert_eq!(
        reply.answers[0].ttl, 3600,
        "clients are told no more than the element lives"
    );
    let calls = running.sink.calls();
    assert_eq!(calls[0].entries, vec![(address, 443), (address, 8443)]);
    assert_eq!(calls[0].timeout, Duration::from_secs(400));
    assert_eq!(
        calls[1].timeout,
        Duration::from_secs(3600),
        "86400 s clamps to 3600 s"
    );
}

#[tokio::test]
async fn a_name_outside_the_policy_is_refused_without_asking_upstream() {
    let (running, upstream) = start_with_upstream(RecordingSink::default()).await;
    let reply = ask_udp(running.udp, "denied.test.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    assert!(reply.answers.is_empty());
    assert_eq!(reply.queries.len(), 1, "REFUSED echoes the question");
    assert_eq!(upstream.queries(), 0);
    assert!(running.sink.calls().is_empty());
    let stats = running.stub.stats();
    assert_eq!(
        stats,
        StatsSnapshot {
            queries: 1,
            refused: 1,
            ..StatsSnapshot::default()
        }
    );
}

#[tokio::test]
async fn a_cname_chain_opens_the_final_address_for_the_queried_names_ports() {
    let (running, _upstream) = start_with_upstream(RecordingSink::default()).await;
    let reply = ask_udp(running.udp, "WWW.Allowed.Test.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        reply.answers.len(),
        2,
        "the CNAME and its target's A record"
    );
    assert_eq!(
        reply.queries[0].name().to_ascii(),
        "WWW.Allowed.Test.",
        "the question as asked"
    );
    assert_eq!(addresses(&reply), vec![v4(1, 2, 3, 4)]);
    let calls = running.sink.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].entries, vec![(v4(1, 2, 3, 4), 443)]);
    assert_eq!(
        calls[0].timeout,
        Duration::from_secs(60),
        "a 30 s TTL is raised to 60 s"
    );
}

#[tokio::test]
async fn a_repeated_question_is_served_from_the_cache_with_its_ttls_reduced() {
    let clock = ManualClock::new();
    let upstream = FakeUpstream::start(zone()).await;
    let running = start(RecordingSink::default(), vec![upstream.address], |stub| {
        stub.with_clock(clock.clock())
    })
    .await;
    let first = ask_udp(running.udp, "a.allowed.test.", RecordType::A).await;
    assert!(
        first.answers.iter().all(|record| record.ttl == 200),
        "TTLs capped at the cache lifetime"
    );
    clock.advance(Duration::from_millis(7_500));
    let second = ask_udp(running.udp, "A.ALLOWED.TEST.", RecordType::A).await;

    assert_eq!(
        upstream.queries(),
        1,
        "the second answer came from the cache"
    );
    assert_eq!(running.sink.calls().len(), 1, "a cache hit inserts nothing");
    assert_eq!(addresses(&second), addresses(&first));
    assert!(
        second.answers.iter().all(|record| record.ttl == 193),
        "7.5 s in the cache: 200 - 7"
    );
    assert_eq!(running.stub.stats().cache_hits, 1);
}

#[tokio::test]
async fn a_cached_answer_expires_after_its_lifetime() {
    let clock = ManualClock::new();
    let upstream = FakeUpstream::start(zone()).await;
    let running = start(RecordingSink::default(), vec![upstream.address], |stub| {
        stub.with_clock(clock.clock())
    })
    .await;
    ask_udp(running.udp, "www.allowed.test.", RecordType::A).await;
    clock.advance(Duration::from_secs(29));
    ask_udp(running.udp, "www.allowed.test.", RecordType::A).await;
    assert_eq!(upstream.queries(), 1, "29 s into a 30 s lifetime: cached");
    clock.advance(Duration::from_secs(1));
    let reply = ask_udp(running.udp, "www.allowed.test.", RecordType::A).await;
    assert_eq!(upstream.queries(), 2, "30 s: expired, asked again");
    assert_eq!(
        running.sink.calls().len(),
        2,
        "the fresh answer is opened again"
    );
    assert_eq!(addresses(&reply), vec![v4(1, 2, 3, 4)]);
}

#[tokio::test]
async fn nxdomain_is_passed_on_and_cached_for_the_soa_minimum() {
    let clock = ManualClock::new();
    let upstream = FakeUpstream::start(zone()).await;
    let running = start(RecordingSink::default(), vec![upstream.address], |stub| {
        stub.with_clock(clock.clock())
    })
    .await;
    let reply = ask_udp(running.udp, "missing.allowed.test.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    clock.advance(Duration::from_secs(u64::from(NEGATIVE_TTL) - 1));
    let reply = ask_udp(running.udp, "missing.allowed.test.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        reply.authorities[0].ttl, 1,
        "the SOA's TTL counts down in the cache"
    );
    assert_eq!(upstream.queries(), 1);
    clock.advance(Duration::from_secs(1));
    ask_udp(running.udp, "missing.allowed.test.", RecordType::A).await;
    assert_eq!(upstream.queries(), 2);
    assert!(running.sink.calls().is_empty(), "nothing to open");
    assert_eq!(running.stub.stats().answered, 3);
}

#[tokio::test]
async fn several_queries_on_one_tcp_connection_are_answered_in_order() {
    let (running, upstream) = start_with_upstream(RecordingSink::default()).await;
    let (id_a, query_a) = query_bytes("a.allowed.test.", RecordType::A, false);
    let (id_www, query_www) = query_bytes("www.allowed.test.", RecordType::A, true);
    let (id_denied, query_denied) = query_bytes("denied.test.", RecordType::A, false);
    let replies = ask_tcp_many(running.tcp, &[query_a, query_www, query_denied]).await;
    let ids: Vec<u16> = replies.iter().map(|reply| reply.metadata.id).collect();
    assert_eq!(ids, vec![id_a, id_www, id_denied]);
    assert_eq!(
        addresses(&replies[0]),
        vec![v4(192, 0, 2, 1), v4(192, 0, 2, 2)]
    );
    assert_eq!(addresses(&replies[1]), vec![v4(1, 2, 3, 4)]);
    assert!(
        replies[1].edns.is_some(),
        "an EDNS query gets an EDNS reply"
    );
    assert_eq!(replies[2].metadata.response_code, ResponseCode::Refused);
    assert_eq!(
        upstream.udp_queries(),
        2,
        "the stub itself asks upstream over UDP"
    );
}

#[tokio::test]
async fn a_truncated_udp_answer_from_upstream_is_fetched_again_over_tcp() {
    let (running, upstream) = start_with_upstream(RecordingSink::default()).await;
    upstream.set_truncate_udp(true);
    let reply = ask_udp(running.udp, "a.allowed.test.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(!reply.metadata.truncation);
    assert_eq!(addresses(&reply), vec![v4(192, 0, 2, 1), v4(192, 0, 2, 2)]);
    assert_eq!((upstream.udp_queries(), upstream.tcp_queries()), (1, 1));
    assert_eq!(running.sink.calls().len(), 1);
}

#[tokio::test]
async fn a_silent_upstream_gives_servfail_within_the_timeout() {
    let upstream = FakeUpstream::start(zone()).await;
    upstream.set_silent(true);
    let timeout = Duration::from_millis(300);
    let running = start(RecordingSink::default(), vec![upstream.address], |stub| {
        stub.with_upstream_timeout(timeout)
    })
    .await;
    let sent_at = Instant::now();
    let reply = ask_udp(running.udp, "a.allowed.test.", RecordType::A).await;
    let waited = sent_at.elapsed();
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    assert!(reply.answers.is_empty());
    assert!(
        waited >= timeout && waited < timeout * 3,
        "SERVFAIL after {waited:?}"
    );
    let stats = running.stub.stats();
    assert_eq!(
        (stats.servfail, stats.upstream_failures, stats.answered),
        (1, 1, 0)
    );
    assert!(running.sink.calls().is_empty());
}

#[tokio::test]
async fn the_second_upstream_answers_when_the_first_is_silent() {
    let silent = FakeUpstream::start(zone()).await;
    silent.set_silent(true);
    let answering = FakeUpstream::start(zone()).await;
    let running = start(
        RecordingSink::default(),
        vec![silent.address, answering.address],
        |stub| stub.with_upstream_timeout(Duration::from_millis(300)),
    )
    .await;
    let reply = ask_udp(running.udp, "a.allowed.test.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&reply).len(), 2);
    assert_eq!((silent.queries(), answering.queries()), (1, 1));
    assert_eq!(running.stub.stats().upstream_failures, 1);
}

#[tokio::test]
async fn no_upstream_gives_servfail_and_a_new_lease_is_followed() {
    let upstream = FakeUpstream::start(zone()).await;
    let running = start(RecordingSink::default(), Vec::new(), |stub| stub).await;
    let reply = ask_udp(running.udp, "a.allowed.test.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    running.upstreams.send_replace(vec![upstream.address]);
    let reply = ask_udp(running.udp, "a.allowed.test.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(upstream.queries(), 1);
}

#[tokio::test]
async fn a_failing_sink_gives_servfail_and_nothing_is_cached() {
    let sink = RecordingSink::default();
    sink.failing.store(true, Ordering::SeqCst);
    let (running, upstream) = start_with_upstream(sink).await;
    let reply = ask_udp(running.udp, "a.allowed.test.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    assert!(
        reply.answers.is_empty(),
        "no address the firewall did not open"
    );
    assert_eq!(running.stub.cached_answers(), 0);
    running.sink.failing.store(false, Ordering::SeqCst);
    let reply = ask_udp(running.udp, "a.allowed.test.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(upstream.queries(), 2, "the failed answer was not cached");
    let stats = running.stub.stats();
    assert_eq!(
        (stats.servfail, stats.answered, stats.allow_insertions),
        (1, 1, 4)
    );
}

#[tokio::test]
async fn a_reloaded_policy_applies_to_the_next_query_even_when_cached() {
    let (running, upstream) = start_with_upstream(RecordingSink::default()).await;
    ask_udp(running.udp, "www.allowed.test.", RecordType::A).await;
    running.stub.set_policy(Arc::new(ListPolicy::of(&[(
        "www.allowed.test",
        &[443, 22],
    )])));
    let reply = ask_udp(running.udp, "www.allowed.test.", RecordType::A).await;
    assert_eq!(
        upstream.queries(),
        2,
        "port 22 was never opened: not a cache hit"
    );
    assert_eq!(addresses(&reply), vec![v4(1, 2, 3, 4)]);
    assert_eq!(
        running.sink.calls()[1].entries,
        vec![(v4(1, 2, 3, 4), 22), (v4(1, 2, 3, 4), 443)]
    );
    running.stub.set_policy(Arc::new(ListPolicy::default()));
    let reply = ask_udp(running.udp, "www.allowed.test.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
}

#[tokio::test]
async fn garbage_is_dropped_or_formerr_and_the_stub_answers_afterwards() {
    let (running, _upstream) = start_with_upstream(RecordingSink::default()).await;
    let client = UdpSocket::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    client
        .send_to(b"\x01\x02\x03", running.udp)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    // A header (id 0xbeef, one question) followed by a name that runs off the end.
    let mut truncated_question = vec![0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    truncated_question.extend_from_slice(b"\x3fabc");
    let reply = parse(&exchange_udp(running.udp, &truncated_question).await);
    assert_eq!(reply.metadata.id, 0xbeef);
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);

    let reply = ask_udp(running.udp, "a.allowed.test.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    let stats = running.stub.stats();
    assert_eq!(
        (stats.queries, stats.dropped, stats.formerr, stats.answered),
        (3, 1, 1, 1)
    );
}

#[tokio::test]
async fn two_questions_in_one_query_get_formerr() {
    let (running, upstream) = start_with_upstream(RecordingSink::default()).await;
    let mut message = Message::query();
    message.add_query(hickory_proto::op::Query::query(
        support::name("a.allowed.test."),
        RecordType::A,
    ));
    message.add_query(hickory_proto::op::Query::query(
        support::name("www.allowed.test."),
        RecordType::A,
    ));
    let request = message.to_vec().unwrap_or_else(|error| panic!("{error}"));
    let reply = parse(&exchange_udp(running.udp, &request).await);
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(upstream.queries(), 0);
}
