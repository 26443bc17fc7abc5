//! agentd end to end on this machine, the real binary against the fakes: pairing, a turn with
//! a tool call, a SIGKILL in the middle of a turn, settings transactions, the audit log, and
//! memories found by meaning through the real local inference engine (run in this process).

mod support;

use std::time::Duration;

use board_support::local_inference::{
    MEMORY_EMBEDDING_MODEL, OCR_MODEL, SPEECH_MODEL, VOICE_ACTIVITY_MODEL, VOICE_MODEL,
};
use carapace_fakes::llm::Script;
use carapace_fakes::telegram::SentKind;
use serde_json::json;
use support::{Harness, OWNER, STRANGER, install_example_skill, pack_signing_key};

#[test]
fn a_stranger_gets_nothing_and_the_owner_is_answered_through_a_tool_call() {
    let mut h = Harness::new();
    h.start();
    h.wait_line("owner settings imported");
    let link = h.wait_line("pairing link=");
    assert!(
        link.ends_with(&format!("?start={}", support::CODE)),
        "{link}"
    );

    h.telegram
        .inject_text(STRANGER, STRANGER, "Mallory", "hello, box");
    h.telegram
        .inject_text(STRANGER, STRANGER, "Mallory", "/start WrongCode-0123456789");
    let paired = h.pair();
    assert_eq!(paired.chat_id, OWNER.to_string());
    assert!(
        paired.text.starts_with("Paired: you are this box's owner"),
        "{}",
        paired.text
    );

    h.llm.push(Script::tool(
        "set_reminder",
        json!({"in_seconds": 1, "text": "tea"}),
    ));
    h.llm.push(Script::text("A reminder is set."));
    h.say("remind me about tea in a second");
    let sent = h.wait_sent(3);
    assert_eq!(sent[1].text, "A reminder is set.");
    // The reminder itself, a second later, from the store.
    assert_eq!(sent[2].text, "Reminder: tea");

    let requests = h.llm.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests.iter().all(|r| r.body_len < 8 * 1024),
        "{:?}",
        requests.iter().map(|r| r.body_len).collect::<Vec<_>>()
    );
    assert!(
        h.telegram
            .sent()
            .iter()
            .all(|m| m.chat_id != STRANGER.to_string())
    );
    assert!(
        requests
            .iter()
            .all(|r| !r.body.to_string().contains("hello, box"))
    );
}

#[test]
fn sigkill_in_the_middle_of_a_turn_loses_nothing_and_answers_once() {
    let mut h = Harness::new();
    h.start();
    h.pair();
    // The first try hangs in the model; agentd is killed while it waits.
    h.llm.push(Script::Slow {
        delay: Duration::from_secs(30),
        then: Box::new(Script::text("too late")),
    });
    h.say("what is two and two?");
    h.handle
        .block_on(h.llm.wait_requests(1, support::WAIT))
        .expect("the question reached the model");
    h.kill();
    h.llm.push(Script::text("Four."));
    h.start();
    let sent = h.wait_sent(2);
    assert_eq!(sent[1].text, "Four.");
    std::thread::sleep(Duration::from_secs(2));
    let answers: Vec<_> = h
        .telegram
        .sent()
        .into_iter()
        .skip(1)
        .map(|m| m.text)
        .collect();
    assert_eq!(answers, ["Four."], "answered more than once");
    assert_eq!(h.llm.requests().len(), 2);
}

#[test]
fn a_settings_change_to_a_dead_llm_endpoint_is_rolled_back_by_itself() {
    let mut h = Harness::new();
    h.start();
    h.pair();
    h.say("/settings set llm.0.base_url http://127.0.0.1:9/v1");
    let sent = h.wait_sent(3);
    assert!(
        sent[1].text.starts_with("Trying the new llm.0.base_url"),
        "{}",
        sent[1].text
    );
    assert!(
        sent[2].text.starts_with(
            "I kept the previous settings: with the new llm.0.base_url, no LLM provider answered"
        ),
        "{}",
        sent[2].text
    );
    // The old settings still work.
    h.llm.push(Script::text("Still here."));
    h.say("are you there?");
    assert_eq!(h.wait_sent(4)[3].text, "Still here.");
    h.say("/settings");
    let listed = &h.wait_sent(5)[4].text;
    assert!(
        listed.contains("llm.0.base_url = http://127.0.0.1:"),
        "{listed}"
    );
    assert!(!listed.contains(":9/v1"), "{listed}");
    assert!(
        !listed.contains(carapace_fakes::llm::DEFAULT_KEY),
        "{listed}"
    );
}

#[test]
fn bad_settings_get_a_clear_message_and_change_nothing() {
    let mut h = Harness::new();
    h.start();
    h.pair();
    h.say("/settings set llm.0.base_url nowhere");
    let text = &h.wait_sent(2)[1].text;
    assert!(
        text.starts_with("Not changed:") && text.contains("is not a URL"),
        "{text}"
    );
    h.say("/settings set llm.7.model x");
    let text = &h.wait_sent(3)[2].text;
    assert!(
        text.contains("there is no setting \"llm.7.model\""),
        "{text}"
    );
}

#[test]
fn the_audit_log_verifies_and_a_tampered_entry_is_detected() {
    let mut h = Harness::new();
    h.start();
    h.pair();
    h.llm.push(Script::tool(
        "remember",
        json!({"fact": "the cat is called Tom"}),
    ));
    h.llm.push(Script::text("Noted."));
    h.say("remember my cat is Tom");
    h.wait_sent(2);
    h.say("/audit");
    let text = &h.wait_sent(3)[2].text;
    assert!(text.starts_with("The audit log verifies:"), "{text}");
    assert!(
        text.contains("pairing") && text.contains("remember"),
        "{text}"
    );

    let log = std::fs::read_to_string(h.audit_log()).expect("audit log");
    let report = carapace_audit::verify(log.as_bytes()).expect("verifies");
    let tool_line = report
        .entries
        .iter()
        .position(|e| e.kind == "tool")
        .expect("a tool entry");
    let tampered = log.replace("the cat is called Tom", "the cat is called Bob");
    assert_ne!(tampered, log);
    let failure = carapace_audit::verify(tampered.as_bytes()).expect_err("tampering is found");
    assert_eq!(failure.line, tool_line + 1, "{failure}");
}

#[test]
fn the_first_boot_file_is_ignored_once_the_box_is_paired() {
    let mut h = Harness::new();
    h.start();
    h.pair();
    // Past the moment the reply left the outbox (a kill between the IM server taking a reply
    // and the outbox forgetting it sends that reply again: at least once, never lost).
    std::thread::sleep(Duration::from_millis(500));
    h.kill();
    std::fs::write(
        h.state_dir().join(board_support::OWNER_SETTINGS_FILE),
        "[telegram]\nbot = \"evil_bot\"\ntoken = \"1:AAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\n",
    )
    .expect("write");
    h.start();
    h.wait_line("owner settings on the boot partition ignored: the box is paired");
    assert!(
        !h.state_dir()
            .join(board_support::OWNER_SETTINGS_FILE)
            .exists()
    );
    h.llm.push(Script::text("Same bot."));
    h.say("still you?");
    assert_eq!(h.wait_sent(2)[1].text, "Same bot.");
}

#[test]
fn feishu_pairs_and_answers_while_telegram_is_down() {
    let mut h = Harness::with_feishu(true);
    // Telegram fails every poll: the Feishu link must not care.
    h.telegram.fail_next("getUpdates", 10_000, 502);
    h.start();
    let owner = "ou_0a1b2c3d4e5f60718293a4b5c6d7e8f9";
    let chat = "oc_5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c";
    h.feishu.inject_text(
        "ou_ffffffffffffffffffffffffffffffff",
        "oc_stranger",
        "hello",
    );
    h.feishu.inject_text(owner, chat, support::CODE);
    let sent = h.handle.block_on(h.feishu.wait_sent(1, support::WAIT));
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].receive_id, chat);
    assert!(
        sent[0].text.starts_with("Paired: you are this box's owner"),
        "{}",
        sent[0].text
    );
    h.llm.push(Script::text("Hello from the model."));
    h.feishu.inject_text(owner, chat, "hi");
    let sent = h.handle.block_on(h.feishu.wait_sent(2, support::WAIT));
    assert_eq!(
        sent.get(1).map(|s| s.text.as_str()),
        Some("Hello from the model."),
        "{sent:?}"
    );
    assert!(h.telegram.sent().is_empty());
}

/// What agentd sends netd to put `ssid` with `passphrase` on trial.
fn wifi_trial(ssid: &str, passphrase: &str) -> serde_json::Value {
    json!({
        "op": "wifi_trial",
        "networks": [{"ssid": ssid, "passphrase": passphrase}],
        "revert_after_s": 60,
    })
}

fn assert_not_on_the_console(h: &Harness, secret: &str) {
    let lines = h.lines.lock().expect("lines");
    assert!(
        lines.iter().all(|l| !l.contains(secret)),
        "{secret:?} on the console: {lines:?}"
    );
}

#[test]
fn a_wifi_change_that_still_reaches_the_model_and_the_chat_is_committed() {
    let mut h = Harness::new();
    h.start();
    h.pair();
    h.say("/settings set wifi.add \"My  Home\" \"correct horse\"");
    let sent = h.wait_sent(3);
    assert!(
        sent[1]
            .text
            .starts_with("Trying the new Wi-Fi networks (My  Home);"),
        "{}",
        sent[1].text
    );
    assert!(
        sent[2]
            .text
            .starts_with("Done: Wi-Fi networks (My  Home) changed"),
        "{}",
        sent[2].text
    );
    assert_eq!(
        h.netd.requests(),
        [
            wifi_trial("My  Home", "correct horse"),
            json!({"op": "commit"})
        ]
    );
    h.say("/settings");
    let listed = &h.wait_sent(4)[3].text;
    assert!(
        listed.contains("wifi.0.ssid = My  Home\nwifi.0.passphrase = …(set)"),
        "{listed}"
    );
    assert!(!listed.contains("correct horse"), "{listed}");
    assert_not_on_the_console(&h, "correct horse");

    // Removing it is a transaction too: the list netd gets is empty.
    h.say("/settings set wifi.remove \"My  Home\"");
    let sent = h.wait_sent(6);
    assert!(
        sent[5].text.starts_with("Done: Wi-Fi networks ()"),
        "{}",
        sent[5].text
    );
    let requests = h.netd.requests();
    assert_eq!(
        requests[2..],
        [
            json!({"op": "wifi_trial", "networks": [], "revert_after_s": 60}),
            json!({"op": "commit"})
        ]
    );
}

#[test]
fn on_new_wifi_networks_the_links_get_a_few_seconds_to_come_up() {
    let mut h = Harness::new();
    h.start();
    h.pair();
    // The model's first answers are 503s, as while the new network is still being joined.
    for _ in 0..2 {
        h.llm.push(Script::fail(503, "not yet"));
    }
    h.say("/settings set wifi.add cafe");
    let text = &h.wait_sent(3)[2].text;
    assert!(
        text.starts_with("Done: Wi-Fi networks (cafe) changed"),
        "{text}"
    );
    assert_eq!(
        h.llm.requests().len(),
        3,
        "checked until the model answered"
    );
    assert_eq!(
        h.netd.requests(),
        [wifi_trial("cafe", ""), json!({"op": "commit"})]
    );
}

#[test]
fn a_wifi_change_after_which_the_model_cannot_be_reached_is_reverted() {
    let mut h = Harness::new();
    h.start();
    h.pair();
    // On the new network the model refuses the key: the check fails for good.
    h.llm.set_key("sk-some-other-key-0123456789");
    h.say("/settings set wifi.add home \"correct horse\"");
    let sent = h.wait_sent(3);
    let text = &sent[2].text;
    assert!(
        text.starts_with(
            "I kept the previous settings: with the new Wi-Fi networks (home), no LLM provider \
             answered"
        ) && text.ends_with("The box is back on its previous Wi-Fi networks."),
        "{text}"
    );
    assert_eq!(
        h.netd.requests(),
        [wifi_trial("home", "correct horse"), json!({"op": "revert"})]
    );
    h.llm.set_key(carapace_fakes::llm::DEFAULT_KEY);
    h.say("/settings");
    let listed = &h.wait_sent(4)[3].text;
    assert!(!listed.contains("wifi."), "{listed}");
    assert_not_on_the_console(&h, "correct horse");
}

#[test]
fn networks_netd_refuses_change_nothing_and_the_owner_hears_why() {
    let mut h = Harness::new();
    h.start();
    h.pair();
    h.netd
        .refuse_next("no Wi-Fi trial could start: /data/netd is full");
    h.say("/settings set wifi.add cafe");
    let text = &h.wait_sent(3)[2].text;
    assert!(
        text.starts_with("I kept the previous settings: with the new Wi-Fi networks (cafe), netd did not take the Wi-Fi networks: netd refused: no Wi-Fi trial could start: /data/netd is full"),
        "{text}"
    );
    assert!(!text.contains("Wi-Fi networks."), "{text}");
    // Never started, so nothing to commit or revert.
    assert_eq!(h.netd.requests(), [wifi_trial("cafe", "")]);
}

#[test]
fn the_first_boot_networks_reach_netd_once_it_listens_and_only_once() {
    let mut h =
        Harness::with_settings("\n[[wifi]]\nssid = \"home\"\npassphrase = \"home-secret\"\n");
    h.netd.close();
    h.start();
    h.wait_line("wifi: the first-boot networks (home) are not with netd yet");
    h.netd.listen();
    assert_eq!(
        h.netd.wait_requests(2),
        [wifi_trial("home", "home-secret"), json!({"op": "commit"})]
    );
    h.wait_line("wifi: netd has the first-boot networks (home)");
    h.kill();
    h.start();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        h.netd.requests().len(),
        2,
        "handed over again after a restart"
    );
    assert_not_on_the_console(&h, "home-secret");
}

#[test]
fn the_model_may_propose_a_reboot_and_only_the_owner_confirms_it() {
    let mut h = Harness::new();
    h.start();
    h.pair();
    h.llm.push(Script::tool("reboot", json!({})));
    h.llm.push(Script::text("Send /reboot confirm to restart."));
    h.say("please restart yourself");
    assert_eq!(h.wait_sent(2)[1].text, "Send /reboot confirm to restart.");
    let tool_result = h.llm.requests()[1].body.to_string();
    assert!(tool_result.contains("Not restarted yet"), "{tool_result}");
    h.say("/reboot confirm");
    assert_eq!(
        h.wait_sent(3)[2].text,
        "Restarting now; I will be back in a minute."
    );
    // A second confirm has nothing to confirm.
    h.say("/reboot confirm");
    assert!(
        h.wait_sent(4)[3]
            .text
            .starts_with("Send /reboot confirm within")
    );
    let log = std::fs::read_to_string(h.audit_log()).expect("audit log");
    assert!(log.contains("\"kind\":\"reboot\""), "{log}");
}

const KEY: &str = "the spare key is under the blue flowerpot";
const ROUTER: &str = "the wifi router is in the hallway closet";
const BIRTHDAY: &str = "my sister's birthday is on the 14th of May";

/// The memory `/recall` lists first: the text after "N. " on the line below the heading.
fn first_recalled(answer: &str) -> &str {
    assert!(answer.starts_with("From memory:\n"), "{answer}");
    let line = answer.lines().nth(1).unwrap_or_default();
    line.split_once(". ").map_or(line, |(_, text)| text)
}

/// The engine's similarities of `query` to each memory, as agentd computes them (the same
/// client and API), printed so that a run shows the margins ranking rests on.
fn similarities(query: &str, memories: &[&str]) -> Vec<f32> {
    let url = carapace_http::Url::parse(support::engine::url()).expect("url");
    let client = carapace_agentd::local_inference::LocalInference::new(url).expect("client");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut texts = vec![query];
    texts.extend_from_slice(memories);
    let vectors = runtime.block_on(client.embed(&texts)).expect("embeddings");
    let scores: Vec<f32> = vectors[1..]
        .iter()
        .map(|v| v.iter().zip(&vectors[0]).map(|(a, b)| a * b).sum())
        .collect();
    eprintln!("similarities to {query:?}: {scores:?}");
    scores
}

#[test]
fn memories_are_found_by_meaning_through_the_local_engine_by_command_and_by_tool() {
    let mut h = Harness::new();
    h.inference_url = support::engine::url().to_string();
    h.start();
    h.pair();
    for (i, memory) in [KEY, ROUTER, BIRTHDAY].into_iter().enumerate() {
        h.say(&format!("/remember {memory}"));
        let text = &h.wait_sent(2 + i)[1 + i].text;
        assert!(
            text.starts_with("Remembered (memory ") && text.ends_with(")."),
            "{text}"
        );
    }

    // The margins the ranking rests on, measured with the same model and API.
    let memories = [KEY, ROUTER, BIRTHDAY];
    let min = carapace_agentd::memory::MIN_SIMILARITY;
    for (query, expected) in [
        ("where did I leave the key", 0),
        ("when is the birthday", 2),
    ] {
        let scores = similarities(query, &memories);
        assert!(scores[expected] >= min, "{query}: {scores:?}");
        for (i, score) in scores.iter().enumerate() {
            if i != expected {
                assert!(*score < scores[expected], "{query}: {scores:?}");
            }
        }
    }
    let unrelated = similarities("what is the capital of Peru", &memories);
    assert!(unrelated.iter().all(|s| *s < min), "{unrelated:?}");

    h.say("/recall where did I leave the key");
    assert_eq!(first_recalled(&h.wait_sent(5)[4].text), KEY);
    h.say("/recall when is the birthday");
    assert_eq!(first_recalled(&h.wait_sent(6)[5].text), BIRTHDAY);
    h.say("/recall what is the capital of Peru");
    assert_eq!(h.wait_sent(7)[6].text, "Nothing in memory matches that.");
    h.say("/recall");
    let latest = &h.wait_sent(8)[7].text;
    assert!(
        latest.starts_with("Latest memories:\n")
            && latest.lines().nth(1).unwrap_or("").ends_with(BIRTHDAY),
        "{latest}"
    );

    // The model's tool: what went back to it is the flowerpot.
    h.llm.push(Script::tool(
        "recall",
        json!({"query": "where is the spare key?"}),
    ));
    h.llm.push(Script::text("Under the blue flowerpot."));
    h.say("where did I put the spare key?");
    assert_eq!(h.wait_sent(9)[8].text, "Under the blue flowerpot.");
    let requests = h.llm.requests();
    assert_eq!(requests.len(), 2);
    let tool_result = requests[1].body.to_string();
    assert!(tool_result.contains(KEY), "{tool_result}");
    assert!(!tool_result.contains("14th of May"), "{tool_result}");

    // Forgotten: the birthday (the latest) is found no more.
    let id = latest
        .lines()
        .nth(1)
        .and_then(|l| l.split_once('.'))
        .map(|(id, _)| id);
    let id = id.expect("a numbered line");
    h.say(&format!("/forget_memory {id}"));
    assert_eq!(h.wait_sent(10)[9].text, format!("Memory {id} forgotten."));
    h.say("/recall when is the birthday");
    let text = &h.wait_sent(11)[10].text;
    assert!(!text.contains(BIRTHDAY), "{text}");
    h.say(&format!("/forget_memory {id}"));
    assert!(
        h.wait_sent(12)[11]
            .text
            .starts_with(&format!("There is no memory {id};"))
    );
}

#[test]
fn with_the_engine_down_a_memory_is_still_kept_and_found_once_it_answers() {
    let mut h = Harness::new();
    let closed = support::engine::closed_url();
    h.inference_url = closed.clone();
    h.start();
    h.pair();
    h.say(&format!("/remember {KEY}"));
    let text = &h.wait_sent(2)[1].text;
    assert!(text.starts_with("Remembered (memory "), "{text}");
    assert!(
        text.contains(&format!(
            "). It will be searchable once the local inference engine answers; just now the \
             local inference engine is not answering at {closed}: "
        )),
        "{text}"
    );
    h.say("/recall where is the key");
    let text = &h.wait_sent(3)[2].text;
    assert!(
        text.starts_with(&format!(
            "Cannot search memory now: the local inference engine is not answering at {closed}: "
        )),
        "{text}"
    );

    // The engine is back: the memory kept without its vector is embedded and found. (Past
    // the moment the reply left the outbox, so that the restart sends nothing twice.)
    std::thread::sleep(Duration::from_millis(500));
    h.kill();
    h.inference_url = support::engine::url().to_string();
    h.start();
    h.say("/recall where is the key");
    assert_eq!(first_recalled(&h.wait_sent(4)[3].text), KEY);
}

const SPOKEN: &str = "Please send the report to my brother tonight.";

#[test]
fn a_voice_note_is_heard_on_the_box_and_only_its_words_reach_the_model() {
    let mut h = Harness::new();
    h.inference_url = support::engine::url().to_string();
    h.start();
    h.pair();
    h.llm.push(Script::text("I will remind you tonight."));
    let note = carapace_fakes::voice_note::voice_note(SPOKEN);
    h.telegram.inject_voice(OWNER, OWNER, "Ann", note, 3);
    // The owner spoke, so the answer is spoken too (on the box), then sent as text.
    let sent = h.wait_sent(3);
    assert_eq!(sent[1].kind, SentKind::Voice);
    assert_eq!(
        hear(&sent[1].bytes),
        "i will remind you tonight",
        "the spoken answer"
    );
    assert_eq!(sent[2].text, "I will remind you tonight.");
    let requests = h.llm.requests();
    assert_eq!(requests.len(), 1);
    let body = requests[0].body.to_string();
    assert!(
        body.contains(&format!("[a voice note, transcribed on the box] {SPOKEN}")),
        "{body}"
    );
    // No audio went to the model: not the Ogg bytes, not their base64 ("OggS" is "T2dnUw").
    assert!(!body.contains("T2dnUw") && !body.contains("OggS"), "{body}");
    let audit = std::fs::read_to_string(h.audit_log()).expect("the audit log");
    assert!(
        audit.contains(&format!(
            "a 3 s voice note from telegram {} was transcribed on the box",
            OWNER
        )),
        "{audit}"
    );
    assert!(
        audit.contains(&format!(
            "the reply to telegram {OWNER} was spoken on the box (26 characters, "
        )),
        "{audit}"
    );
}

/// Where the image carries Whisper base, voice notes go to it: one in German reaches the model
/// as German, marked so, and its answer goes as text (the box's voice speaks English, and says
/// so in the audit log); one in English is still answered in speech too.
#[test]
fn a_voice_note_in_german_is_heard_in_german_and_answered_in_text() {
    const GERMAN: &str = "Bitte schick den Bericht heute Abend an meinen Bruder.";
    let mut h = Harness::new();
    h.inference_url = support::engine::multilingual_url().to_string();
    h.start();
    h.pair();
    h.llm.push(Script::text("Ich schicke ihn heute Abend."));
    let note = carapace_fakes::voice_note::voice_note_in("de", GERMAN);
    h.telegram.inject_voice(OWNER, OWNER, "Ann", note, 4);
    // The first note the multilingual engine hears loads Whisper base (290 MB), on two cores
    // that the other tests running beside this one share: 13 s alone, past 20 in `make test`.
    let sent = h.wait_sent_within(2, 3 * support::WAIT);
    assert_eq!(
        (sent[1].kind, sent[1].text.as_str()),
        (SentKind::Text, "Ich schicke ihn heute Abend.")
    );
    let body = h.llm.requests()[0].body.to_string();
    assert!(
        body.contains(
            "[a voice note in german, transcribed on the box] Bitte schick den Bericht heute Abend"
        ),
        "{body}"
    );
    let audit = std::fs::read_to_string(h.audit_log()).expect("the audit log");
    assert!(
        audit.contains(&format!(
            "the reply to telegram {OWNER} went as text only: the voice note was in german, and \
             the box's voice speaks english"
        )),
        "{audit}"
    );

    h.llm.push(Script::text("I will remind you tonight."));
    let note = carapace_fakes::voice_note::voice_note(SPOKEN);
    h.telegram.inject_voice(OWNER, OWNER, "Ann", note, 3);
    let sent = h.wait_sent(4);
    assert_eq!(sent[2].kind, SentKind::Voice);
    assert_eq!(sent[3].text, "I will remind you tonight.");
    let body = h.llm.requests()[1].body.to_string();
    assert!(
        body.contains("[a voice note, transcribed on the box] Please send the report"),
        "{body}"
    );
}

/// What the engine's Whisper hears in an Ogg Opus voice note: lower case, no punctuation.
fn hear(ogg: &[u8]) -> String {
    assert!(
        ogg.starts_with(b"OggS"),
        "not Ogg: {:?}",
        &ogg[..ogg.len().min(8)]
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let url = support::engine::url().parse().expect("the engine's URL");
    let engine = carapace_agentd::local_inference::LocalInference::new(url).expect("a client");
    let heard = runtime
        .block_on(engine.transcribe(ogg.to_vec()))
        .expect("a transcription");
    carapace_fakes::voice_note::normalised(&heard.text)
}

#[test]
fn a_photo_is_read_on_the_box_and_only_its_text_reaches_the_model() {
    let mut h = Harness::new();
    h.inference_url = support::engine::url().to_string();
    h.start();
    h.pair();
    h.llm
        .push(Script::text("That was 348.50 euros at the bakery."));
    h.telegram.inject_photo(
        OWNER,
        OWNER,
        "Ann",
        carapace_fakes::page::receipt_photo(),
        "what did I spend?",
    );
    assert_eq!(
        h.wait_sent(2)[1].text,
        "That was 348.50 euros at the bakery."
    );
    let requests = h.llm.requests();
    assert_eq!(requests.len(), 1);
    let body = requests[0].body.to_string();
    assert!(
        body.contains("[a photo; the text in it, read on the box:") && body.contains("348.50"),
        "{body}"
    );
    assert!(body.contains("] what did I spend?"), "{body}");
    // No image went to the model: no JPEG bytes, not their base64 ("/9j/" starts a JPEG's).
    assert!(!body.contains("/9j/") && !body.contains("JFIF"), "{body}");
    let audit = std::fs::read_to_string(h.audit_log()).expect("the audit log");
    assert!(
        audit.contains(&format!(
            "a photo from telegram {OWNER} was read on the box ("
        )) && audit.contains("the image did not leave it"),
        "{audit}"
    );

    // Captioned /read: the text comes straight back, and the model is not asked.
    h.telegram.inject_photo(
        OWNER,
        OWNER,
        "Ann",
        carapace_fakes::page::receipt_photo(),
        "/read",
    );
    let text = &h.wait_sent(3)[2].text;
    assert!(
        text.contains("Corner Bakery") && text.contains(" 348.50 EUR"),
        "{text}"
    );
    assert_eq!(h.llm.requests().len(), 1);
}

#[test]
fn models_lists_the_engines_models_and_where_each_runs_without_the_llm() {
    let mut h = Harness::new();
    h.inference_url = support::engine::vision_url().to_string();
    h.start();
    h.pair();
    h.telegram.inject_text(OWNER, OWNER, "Ann", "/models");
    let text = h.wait_sent(2)[1].text.clone();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("The box's own models (nothing sent to them leaves it):")
    );
    let listed: Vec<&str> = lines.collect();
    for (id, capability) in [
        (MEMORY_EMBEDDING_MODEL, "embeddings"),
        (VOICE_ACTIVITY_MODEL, "voice activity"),
        (SPEECH_MODEL, "transcription"),
        (VOICE_MODEL, "speech"),
        (OCR_MODEL, "ocr"),
        // A pack names its version and where it came from.
        (
            "tiny-smolvlm 1.0.0, a pack in the image",
            "image description",
        ),
    ] {
        let line = listed
            .iter()
            .find(|line| line.starts_with(&format!("{id}: ")))
            .unwrap_or_else(|| panic!("{id} is not listed: {text}"));
        // ONNX models are placed when they first load (another test may have loaded one).
        assert!(
            line.starts_with(&format!("{id}: {capability}, on the cpu (")),
            "{line}"
        );
    }
    assert!(h.llm.requests().is_empty());

    // The engine down: the owner hears why.
    let mut h = Harness::new();
    let closed = support::engine::closed_url();
    h.inference_url = closed.clone();
    h.start();
    h.pair();
    h.telegram.inject_text(OWNER, OWNER, "Ann", "/models");
    let text = &h.wait_sent(2)[1].text;
    assert!(
        text.starts_with(&format!(
            "No local models to list: the local inference engine is not answering at {closed}: "
        )),
        "{text}"
    );
}

#[test]
fn with_a_pack_that_describes_pictures_the_model_gets_the_description_too() {
    let mut h = Harness::new();
    h.inference_url = support::engine::vision_url().to_string();
    h.start();
    h.pair();
    let photo = carapace_fakes::page::receipt_photo();
    // What the engine's model sees in the photo, asked directly.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let engine = carapace_agentd::local_inference::LocalInference::new(
        carapace_http::Url::parse(&h.inference_url).unwrap(),
    )
    .unwrap();
    let seen = runtime
        .block_on(engine.describe(photo.clone()))
        .unwrap()
        .expect("the pack's model describes the photo");
    h.llm.push(Script::text("A receipt."));
    h.telegram
        .inject_photo(OWNER, OWNER, "Ann", photo.clone(), "what is this?");
    assert_eq!(h.wait_sent(2)[1].text, "A receipt.");
    let body = h.llm.requests()[0].body.to_string();
    let expected = serde_json::to_string(&format!(
        "[a photo; what the box sees in it: {seen}; the text in it, read on the box:"
    ))
    .unwrap();
    assert!(
        body.contains(expected.trim_end_matches('"')) && body.contains("348.50"),
        "{body}"
    );
    assert!(!body.contains("/9j/"), "{body}");
    let audit = std::fs::read_to_string(h.audit_log()).expect("the audit log");
    assert!(
        audit.contains(&format!(
            " characters of text) and described there ({} characters); the image did not leave it",
            seen.chars().count()
        )),
        "{audit}"
    );

    // Captioned /read: the text alone, as before, and no description is asked for.
    h.telegram.inject_photo(OWNER, OWNER, "Ann", photo, "/read");
    let text = &h.wait_sent(3)[2].text;
    assert!(text.contains("348.50") && !text.contains(&seen), "{text}");
}

/// The owner adds a model pack from a link: agentd downloads it in the background and streams
/// it into the engine, which takes it only once its signature and files check out; from then on
/// photos are described by it, until `/remove_model` takes it off the box.
#[test]
fn the_owner_adds_a_model_pack_from_a_link_and_photos_are_described_until_it_is_removed() {
    let mut h = Harness::new();
    let (url, store) = support::engine::store_url();
    h.inference_url = url.clone();
    let mut files = std::collections::BTreeMap::new();
    files.insert(
        "tiny-smolvlm-1.0.0.tar".to_string(),
        support::engine::tiny_vlm_tar("1.0.0", true),
    );
    files.insert(
        "stranger.tar".to_string(),
        support::engine::tiny_vlm_tar("1.0.0", false),
    );
    let host = h.github_on_loopback("models", files);
    let link = |file: &str| format!("http://{}/acme/models/main/{file}", host.address());
    h.start();
    h.pair();
    let mut count = 1;
    let mut next = |h: &Harness| {
        count += 1;
        h.wait_sent_within(count, Duration::from_secs(60))[count - 1]
            .text
            .clone()
    };
    let fetching = "Fetching the model pack from 127.0.0.1. I will say here when it is checked and \
                    ready; I answer other messages meanwhile.";

    h.say("/add_model");
    assert!(next(&h).starts_with("Send /add_model LINK: an https link"));
    h.say(&format!("/add_model {}", link("missing.tar")));
    assert_eq!(next(&h), fetching);
    assert_eq!(
        next(&h),
        "I could not add the model pack: 127.0.0.1 answered 404 Not Found"
    );
    h.say(&format!("/add_model {}", link("stranger.tar")));
    assert_eq!(next(&h), fetching);
    let refused = next(&h);
    assert!(
        refused.starts_with("I could not add the model pack: ")
            && refused.contains("its signature does not hold"),
        "{refused}"
    );
    let stored = || {
        std::fs::read_dir(store)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
    };
    assert!(stored().is_empty(), "{:?}", stored());

    h.say(&format!("/add_model {}", link("tiny-smolvlm-1.0.0.tar")));
    assert_eq!(next(&h), fetching);
    let added = next(&h);
    assert!(
        added.starts_with("Added the model tiny-smolvlm 1.0.0: image description, signed by key ")
            && added.contains(" Photos are described on the box from now on."),
        "{added}"
    );
    assert_eq!(stored(), ["tiny-smolvlm-1.0.0"]);
    h.say("/models");
    let models = next(&h);
    assert!(
        models.contains("\ntiny-smolvlm 1.0.0, added by you: image description, on the cpu"),
        "{models}"
    );

    let photo = carapace_fakes::page::receipt_photo();
    h.llm.push(Script::text("A receipt."));
    h.telegram
        .inject_photo(OWNER, OWNER, "Ann", photo.clone(), "what is this?");
    assert_eq!(next(&h), "A receipt.");
    let body = h.llm.requests()[0].body.to_string();
    assert!(
        body.contains("[a photo; what the box sees in it: ") && body.contains("348.50"),
        "{body}"
    );
    let audit = std::fs::read_to_string(h.audit_log()).expect("the audit log");
    assert!(
        audit.contains("model pack tiny-smolvlm 1.0.0 (image_description, signed by key ")
            && audit.contains(") added from 127.0.0.1 for telegram:4242")
            && audit.contains("the model pack from 127.0.0.1 for telegram:4242 was not added: "),
        "{audit}"
    );

    h.say("/remove_model all-minilm-l6-v2");
    let kept = next(&h);
    assert!(
        kept.starts_with("I could not remove all-minilm-l6-v2: ")
            && kept.contains("all-minilm-l6-v2 is one of the image's models"),
        "{kept}"
    );
    h.say("/remove_model tiny-smolvlm");
    assert_eq!(next(&h), "Removed the model tiny-smolvlm 1.0.0.");
    assert!(stored().is_empty(), "{:?}", stored());
    h.llm.push(Script::text("Still a receipt."));
    h.telegram
        .inject_photo(OWNER, OWNER, "Ann", photo, "and now?");
    assert_eq!(next(&h), "Still a receipt.");
    let body = h.llm.requests()[1].body.to_string();
    assert!(
        body.contains("[a photo; the text in it, read on the box:"),
        "{body}"
    );
}

#[test]
fn the_owner_may_let_the_model_see_a_chats_photos_and_each_decision_is_audited() {
    use carapace_fakes::llm::images_in;
    let mut h = Harness::new();
    h.inference_url = support::engine::url().to_string();
    h.start();
    h.pair();
    let photo = carapace_fakes::page::receipt_photo();
    h.telegram.inject_text(OWNER, OWNER, "Ann", "/share_photos");
    let status = &h.wait_sent(2)[1].text;
    assert!(
        status.starts_with("Photos sent in this chat stay on the box"),
        "{status}"
    );
    h.telegram
        .inject_text(OWNER, OWNER, "Ann", "/share_photos on");
    let on = &h.wait_sent(3)[2].text;
    assert!(
        on.starts_with("From now on the model sees the photos sent in this chat"),
        "{on}"
    );

    h.llm.push(Script::text("A bakery receipt."));
    h.telegram
        .inject_photo(OWNER, OWNER, "Ann", photo.clone(), "what is this?");
    assert_eq!(h.wait_sent(4)[3].text, "A bakery receipt.");
    let requests = h.llm.requests();
    assert_eq!(requests.len(), 1);
    // The photo's own bytes, and the text the box read in it.
    assert_eq!(images_in(&requests[0].body), vec![photo.clone()]);
    let body = requests[0].body.to_string();
    assert!(
        body.contains("[a photo, attached; the text in it, read on the box:")
            && body.contains("348.50")
            && body.contains("] what is this?"),
        "{body}"
    );
    // The next turn carries the words of the last one, not its image.
    h.llm.push(Script::text("You are welcome."));
    h.telegram.inject_text(OWNER, OWNER, "Ann", "thanks");
    h.wait_sent(5);
    let requests = h.llm.requests();
    assert!(images_in(&requests[1].body).is_empty());
    assert!(requests[1].body.to_string().contains("[a photo, attached;"));

    h.telegram
        .inject_text(OWNER, OWNER, "Ann", "/share_photos off");
    let off = &h.wait_sent(6)[5].text;
    assert!(
        off.starts_with("Photos sent in this chat stay on the box again"),
        "{off}"
    );
    h.llm.push(Script::text("Still a receipt."));
    h.telegram
        .inject_photo(OWNER, OWNER, "Ann", photo, "and now?");
    h.wait_sent(7);
    let requests = h.llm.requests();
    assert_eq!(requests.len(), 3);
    assert!(images_in(&requests[2].body).is_empty());
    assert!(!requests[2].body.to_string().contains("/9j/"));

    let audit = std::fs::read_to_string(h.audit_log()).expect("the audit log");
    let owner = format!("the owner (telegram {OWNER})");
    let chat = format!("telegram chat {OWNER}");
    for line in [
        format!("{owner} let the model see the photos sent in {chat}"),
        format!("{owner} kept the photos sent in {chat} on the box again"),
        "bytes) goes to the model too, as the owner allows in this chat since ".to_string(),
    ] {
        assert!(
            audit.contains(&line),
            "{line} is not in the audit log:\n{audit}"
        );
    }
    assert_eq!(
        audit.matches("the image did not leave it").count(),
        1,
        "{audit}"
    );
}

#[test]
fn say_speaks_the_words_back_as_a_voice_note_without_the_model() {
    let mut h = Harness::new();
    h.inference_url = support::engine::url().to_string();
    h.start();
    h.pair();
    h.say("/say the kettle is on");
    let sent = h.wait_sent(2);
    assert_eq!(sent[1].kind, SentKind::Voice);
    assert_eq!(hear(&sent[1].bytes), "the kettle is on");
    h.say("/say");
    assert_eq!(
        h.wait_sent(3)[2].text,
        "Send /say and the words to speak: /say good morning"
    );
    assert!(h.llm.requests().is_empty());
}

#[test]
fn a_voice_note_of_noise_is_answered_without_transcribing_it_or_calling_the_model() {
    let mut h = Harness::new();
    h.inference_url = support::engine::url().to_string();
    h.start();
    h.pair();
    let note = carapace_fakes::voice_note::noise_voice_note(4);
    h.telegram.inject_voice(OWNER, OWNER, "Ann", note, 4);
    assert_eq!(
        h.wait_sent(2)[1].text,
        "I heard no speech in that voice note."
    );
    assert!(h.llm.requests().is_empty());
    let audit = std::fs::read_to_string(h.audit_log()).expect("the audit log");
    assert!(
        audit.contains(&format!(
            "a 4 s voice note from telegram {OWNER} held no speech (voice activity, on the box); \
             it was not transcribed"
        )),
        "{audit}"
    );
}

#[test]
fn with_the_engine_down_a_voice_note_is_answered_with_why_and_never_sent_to_the_model() {
    let mut h = Harness::new();
    let closed = support::engine::closed_url();
    h.inference_url = closed.clone();
    h.start();
    h.pair();
    h.telegram.inject_voice(
        OWNER,
        OWNER,
        "Ann",
        carapace_fakes::voice_note::voice_note(SPOKEN),
        3,
    );
    let text = &h.wait_sent(2)[1].text;
    assert!(
        text.starts_with(&format!(
            "I could not hear that voice note: the local inference engine is not answering at \
             {closed}: "
        )),
        "{text}"
    );
    assert!(h.llm.requests().is_empty());
}

/// An instruction-only skill in Agent Skills' format and one in OpenClaw's: the prompt carries
/// their names and descriptions only; the model reads one's instructions and a file they name
/// through read_skill (each call in the audit log), and a path out of the skill's folder gets
/// nothing.
#[test]
fn the_model_sees_skills_by_description_and_reads_one_when_it_uses_it() {
    let mut h = Harness::new();
    let tea = h.skills.path().join("tea-brewing");
    std::fs::create_dir_all(&tea).unwrap();
    std::fs::write(
        tea.join("SKILL.md"),
        "---\nname: tea-brewing\ndescription: How to brew tea; use when asked about tea.\nlicense: MIT\n---\n# Tea\nSteep as steeping.md says.\n",
    )
    .unwrap();
    std::fs::write(tea.join("steeping.md"), "Green tea: 2 minutes at 80 C.\n").unwrap();
    let haiku = h.skills.path().join("haiku");
    std::fs::create_dir_all(&haiku).unwrap();
    std::fs::write(
        haiku.join("SKILL.md"),
        "---\nname: haiku\ndescription: \"Answer in a haiku when asked for one.\"\nmetadata: {\"openclaw\": {\"emoji\": \"🌸\"}}\n---\nThree lines: 5, 7 and 5 syllables.\n",
    )
    .unwrap();
    h.start();
    h.wait_line("skills: haiku tea-brewing");
    h.pair();

    h.llm
        .push(Script::tool("read_skill", json!({"name": "tea-brewing"})));
    h.llm.push(Script::tool(
        "read_skill",
        json!({"name": "tea-brewing", "file": "steeping.md"}),
    ));
    h.llm.push(Script::tool(
        "read_skill",
        json!({"name": "tea-brewing", "file": "../haiku/SKILL.md"}),
    ));
    h.llm.push(Script::text("Two minutes at 80 C."));
    h.say("how long should green tea steep?");
    let sent = h.wait_sent(2);
    assert_eq!(sent[1].text, "Two minutes at 80 C.");

    let requests = h.llm.requests();
    assert_eq!(requests.len(), 4);
    let first = requests[0].body.to_string();
    assert!(
        first.contains("tea-brewing: How to brew tea; use when asked about tea.")
            && first.contains("haiku: Answer in a haiku when asked for one."),
        "{first}"
    );
    assert!(!first.contains("Steep as steeping.md says"), "{first}");
    assert!(requests.iter().all(|r| r.body_len < 8 * 1024));
    let results = |index: usize| requests[index].body.to_string();
    assert!(
        results(1).contains("Steep as steeping.md says."),
        "{}",
        results(1)
    );
    assert!(
        results(2).contains("Green tea: 2 minutes at 80 C."),
        "{}",
        results(2)
    );
    assert!(
        results(3).contains("is not a path inside skill tea-brewing's folder"),
        "{}",
        results(3)
    );
    let audit = std::fs::read_to_string(h.audit_log()).unwrap();
    assert_eq!(audit.matches("read_skill").count(), 3, "{audit}");
}

/// A skill with code (Python, built by `carapace skill build`): its declared tools reach the
/// model as `<skill>__<tool>`, and run only as the owner allows. The first call of one is kept
/// and the owner asked with buttons; Allow runs it and gives the result to the model in a new
/// turn, and later calls run at once. A call runs in the skill host service and keeps its file
/// in the skill's scratch directory in the service's state; a skill that reads outside it gets
/// nothing, one that loops forever is stopped at its deadline and one that hoards memory at its
/// limit, each said to the model; agentd answers the owner through all of it and audits each
/// call and each approval.
#[test]
fn a_skills_code_runs_as_the_owner_allows_and_its_misdeeds_are_stopped() {
    let mut h = Harness::new();
    install_example_skill(h.skills.path(), "mischief");
    h.start();
    h.wait_line("skills: mischief");
    h.pair();
    let sent_after = |h: &Harness, count: usize, wait_secs: u64| {
        h.wait_sent_within(count, Duration::from_secs(wait_secs))
    };

    // Asked, then allowed with the button.
    let keep = json!({"name": "list.txt", "text": "milk, tea"});
    h.llm.push(Script::tool("mischief__keep", keep.clone()));
    h.llm.push(Script::text("I asked you first."));
    h.say("remember my list");
    let sent = sent_after(&h, 3, 20);
    assert_eq!(sent[1].text, "I asked you first.");
    assert_eq!(
        sent[2].text,
        format!("Allow mischief__keep to run? It would be called with {keep}")
    );
    let labels: Vec<&str> = sent[2]
        .buttons
        .iter()
        .map(|(label, _)| label.as_str())
        .collect();
    assert_eq!(labels, ["Allow", "Never"]);
    assert!(
        !h.skillhost
            .state
            .path()
            .join("scratch/mischief/list.txt")
            .exists()
    );
    let told = h.llm.requests()[1].body.to_string();
    assert!(told.contains("Not run yet: the owner was asked"), "{told}");

    let allow = sent[2].buttons[0].1.clone();
    h.llm.push(Script::text("Kept: milk, tea."));
    h.telegram.inject_button(OWNER, OWNER, "Ann", &allow);
    let sent = sent_after(&h, 4, 240);
    assert_eq!(sent[3].text, "Kept: milk, tea.");
    let turn = h.llm.requests()[2].body.to_string();
    assert!(
        turn.contains("[The owner allowed mischief__keep; it ran with")
            && turn.contains("answered:\\nmilk, tea]"),
        "{turn}"
    );
    assert_eq!(
        std::fs::read_to_string(h.skillhost.state.path().join("scratch/mischief/list.txt"))
            .unwrap(),
        "milk, tea"
    );
    assert_eq!(h.telegram.answered_queries().len(), 1);
    // A second press of the same question does nothing again.
    h.telegram.inject_button(OWNER, OWNER, "Ann", &allow);
    assert_eq!(
        sent_after(&h, 5, 20)[4].text,
        "That question was answered already."
    );

    h.say("/tools");
    let listed = &sent_after(&h, 6, 20)[5].text;
    assert!(listed.contains("\nmischief__keep: always"), "{listed}");
    assert!(
        listed.contains("\nmischief__spin: ask the first time"),
        "{listed}"
    );
    for tool in ["mischief__peek", "mischief__spin", "mischief__hog"] {
        h.say(&format!("/tools {tool} always"));
    }
    assert_eq!(sent_after(&h, 9, 20)[8].text, "mischief__hog: always.");

    // Allowed: each runs in the sandbox, and the sandbox stops what it must.
    h.llm.push(Script::tool(
        "mischief__keep",
        json!({"name": "b.txt", "text": "bread"}),
    ));
    h.llm.push(Script::tool(
        "mischief__peek",
        json!({"path": "/etc/passwd"}),
    ));
    h.llm.push(Script::tool("mischief__spin", json!({})));
    h.llm.push(Script::tool("mischief__hog", json!({})));
    h.llm.push(Script::text("Done."));
    h.say("try your tricks");
    let sent = sent_after(&h, 10, 240);
    assert_eq!(sent[9].text, "Done.");
    let requests = h.llm.requests();
    let first = requests[3].body.to_string();
    assert!(first.contains("(skill mischief) Loops forever."), "{first}");
    let result = |index: usize| {
        requests[index].body["messages"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .to_string()
    };
    assert!(result(4).contains("bread"), "{}", result(4));
    assert!(result(5).contains("refused: "), "{}", result(5));
    assert!(
        result(6).contains("skill mischief stopped: it ran past its deadline of 10000 ms"),
        "{}",
        result(6)
    );
    assert!(
        result(7).contains(
            "skill mischief stopped: it tried to use more than its memory limit of 128 MiB"
        ),
        "{}",
        result(7)
    );
    let audit = std::fs::read_to_string(h.audit_log()).unwrap();
    for line in [
        "asked the owner about mischief__keep",
        "the owner chose Always for mischief__keep",
        "allowed by the owner",
        "the owner set mischief__hog to always",
        "mischief__spin {} -> error",
    ] {
        assert!(audit.contains(line), "{line} not audited: {audit}");
    }

    // agentd is still there.
    h.llm.push(Script::text("Still here."));
    h.say("are you ok?");
    assert_eq!(sent_after(&h, 11, 20)[10].text, "Still here.");
}

/// The owner gives a skill its secret in the chat: `/secret` lists what the skills take, a
/// value is kept only for a secret the skill declares, and it never reaches the model, the
/// audit log or the console. Before it is given, the skill's call stops with no request sent,
/// and the model hears how the owner gives it.
#[test]
fn the_owner_gives_a_skill_its_secret_and_the_value_stays_out_of_the_model_and_the_logs() {
    const KEY: &str = "wk-7f3a9c2e1d";
    let mut h = Harness::new();
    install_example_skill(h.skills.path(), "weather");
    h.start();
    h.wait_line("skills: weather");
    h.pair();
    let sent_after = |h: &Harness, count: usize, wait_secs: u64| {
        h.wait_sent_within(count, Duration::from_secs(wait_secs))
    };
    h.say("/tools weather__forecast always");
    assert_eq!(sent_after(&h, 2, 20)[1].text, "weather__forecast: always.");
    h.say("/secret");
    assert_eq!(
        sent_after(&h, 3, 20)[2].text,
        "Secrets the skills take:\nweather: WEATHER_KEY (not given)\nGive one: /secret SKILL NAME VALUE"
    );

    h.llm
        .push(Script::tool("weather__forecast", json!({"place": "Oslo"})));
    h.llm.push(Script::text("I need the weather key."));
    h.say("weather in Oslo?");
    assert_eq!(sent_after(&h, 4, 240)[3].text, "I need the weather key.");
    let told = h.llm.requests()[1].body.to_string();
    assert!(
        told.contains(
            "the owner has not given skill weather its secret WEATHER_KEY; the owner can, with \
             /secret weather WEATHER_KEY <value>"
        ),
        "{told}"
    );

    h.say("/secret weather API_TOKEN abcdefgh");
    assert_eq!(
        sent_after(&h, 5, 20)[4].text,
        "Skill weather has no secret API_TOKEN; it declares WEATHER_KEY."
    );
    h.say(&format!("/secret weather WEATHER_KEY {KEY}"));
    let kept = &sent_after(&h, 6, 20)[5].text;
    assert!(
        kept.starts_with(
            "Kept WEATHER_KEY for skill weather: only its requests to weather.carapace.test carry it"
        ) && kept.ends_with("I deleted your message with the value from this chat."),
        "{kept}"
    );
    // The message with the value left the chat; the one naming an undeclared secret stays.
    let deleted = h.telegram.deleted();
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(
        deleted[0]["text"],
        format!("/secret weather WEATHER_KEY {KEY}")
    );
    h.say("/secret");
    assert!(
        sent_after(&h, 7, 20)[6]
            .text
            .contains("\nweather: WEATHER_KEY (kept)\n")
    );
    h.say("/forget_secret weather WEATHER_KEY");
    assert_eq!(
        sent_after(&h, 8, 20)[7].text,
        "Forgot WEATHER_KEY of skill weather."
    );

    let audit = std::fs::read_to_string(h.audit_log()).unwrap();
    for line in [
        "the owner gave skill weather its secret WEATHER_KEY",
        "the owner took back skill weather's secret WEATHER_KEY",
    ] {
        assert!(audit.contains(line), "{line} not audited: {audit}");
    }
    assert!(
        !audit.contains(KEY),
        "the value is in the audit log: {audit}"
    );
    assert_not_on_the_console(&h, KEY);
    for request in h.llm.requests() {
        assert!(!request.body.to_string().contains(KEY), "{}", request.body);
    }
}

/// agentd puts a skill's secret into its request as it sends it to the skill's approved host
/// (the fake weather API over HTTPS, trusted through the test CA), and a value the API echoes
/// back is scrubbed before the skill's code sees it: the model would hear the reference.
#[test]
fn a_skills_secret_reaches_its_host_but_never_its_code() {
    use carapace_agentd::skill_secrets;
    let skills = tempfile::tempdir().unwrap();
    install_example_skill(skills.path(), "weather");
    let (catalog, problems) = carapace_skills::Catalog::load(skills.path());
    assert!(problems.is_empty(), "{problems:?}");
    let weather = catalog.skills()[0].clone();
    let state = tempfile::tempdir().unwrap();
    let store = carapace_agentd::store::Store::open(state.path()).unwrap();

    let certs = tempfile::tempdir().unwrap();
    let ca = carapace_fakes::test_ca::make(certs.path(), &["weather.carapace.test"]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let api = runtime.block_on(async {
        let tls = carapace_fakes::server::tls_acceptor(&ca.cert, &ca.key).unwrap();
        carapace_fakes::weather::FakeWeather::start(
            "127.0.0.1:0".parse().unwrap(),
            Some(tls),
            "right-key-42",
        )
        .await
        .unwrap()
    });
    let tls = carapace_http::tls_config_trusting(Some(ca.ca_pem.as_bytes()), &ca.ca).unwrap();
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .resolve("weather.carapace.test", api.address())
        .build()
        .unwrap();
    let service = support::SkillHostService::start();
    let host = carapace_agentd::skill_code::SkillHost {
        socket: service.socket(),
        http,
        limits: Default::default(),
    };
    let forecast = || {
        let given = skill_secrets::given(&store, &weather).unwrap();
        runtime.block_on(host.call(&weather, "forecast", &json!({"place": "Oslo"}), &given))
    };

    skill_secrets::give(&store, &weather, "WEATHER_KEY", "wrong-key-17")
        .unwrap()
        .unwrap();
    let refused = forecast().unwrap_err();
    assert!(
        refused.contains("answered 401: unknown key: Bearer {{secret:WEATHER_KEY}}")
            && !refused.contains("wrong-key-17"),
        "{refused}"
    );
    skill_secrets::give(&store, &weather, "WEATHER_KEY", "right-key-42")
        .unwrap()
        .unwrap();
    let answer: serde_json::Value = serde_json::from_str(&forecast().unwrap()).unwrap();
    assert_eq!(
        answer,
        json!({"place": "Oslo", "celsius": 4, "sky": "snow"})
    );
    assert_eq!(
        api.authorizations(),
        ["Bearer wrong-key-17", "Bearer right-key-42"]
    );
}

/// A remote MCP server (the fake, over loopback): the owner adds it in the chat, its tools join
/// the model's as `<server>__<tool>` (one with a name the LLM APIs refuse is left out, said),
/// a call is asked about with buttons and, allowed, runs on the server in a session and its
/// result reaches the model; the tools are back after a restart without the network, and go
/// when the owner removes the server.
#[test]
fn an_mcp_servers_tools_join_when_the_owner_adds_it_and_run_as_the_owner_allows() {
    let mut h = Harness::new();
    let mcp = h
        .handle
        .block_on(carapace_fakes::mcp::FakeMcp::start())
        .unwrap();
    h.start();
    h.pair();
    h.say(&format!("/mcp add shop {}", mcp.url()));
    let added = h.wait_sent(2)[1].text.clone();
    assert!(
        added.starts_with("Added shop: shop__add, shop__lookup_order, "),
        "{added}"
    );
    assert!(added.contains("Left out: bad name! ("), "{added}");

    h.llm
        .push(Script::tool("shop__add", json!({"a": 2, "b": 3})));
    h.llm.push(Script::text("I asked you."));
    h.say("what is 2 + 3?");
    let sent = h.wait_sent(4);
    assert_eq!(
        sent[3].text,
        "Allow shop__add to run? It would be called with {\"a\":2,\"b\":3}"
    );
    let first = h.llm.requests()[0].body.to_string();
    assert!(first.contains("(MCP shop) "), "{first}");
    h.llm.push(Script::text("It is 5."));
    h.telegram
        .inject_button(OWNER, OWNER, "Ann", &sent[3].buttons[0].1);
    assert_eq!(h.wait_sent(5)[4].text, "It is 5.");
    let turn = h.llm.requests()[2].body.to_string();
    assert!(
        turn.contains(
            "[The owner allowed shop__add; it ran with {\\\"a\\\":2,\\\"b\\\":3} and answered:\\n5]"
        ),
        "{turn}"
    );
    assert!(mcp.methods().contains(&("tools/call".to_string(), 200)));

    // The server says add and lookup_order only read: asked the first time. It says nothing
    // of snapshot, which may then change things: asked every time.
    h.say("/tools");
    let listed = h.wait_sent(6)[5].text.clone();
    for line in [
        "\nshop__add: always\n",
        "\nshop__lookup_order: ask the first time\n",
        "\nshop__snapshot: ask every time (it sends, spends or deletes)\n",
    ] {
        assert!(listed.contains(line), "{line:?} not in {listed}");
    }

    // After a restart (the outbox may send its last reply again: at least once), by text.
    let wait_text = |h: &Harness, text: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !h.telegram.sent().iter().any(|sent| sent.text == text) {
            assert!(std::time::Instant::now() < deadline, "no {text:?} sent");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let last_request = |h: &Harness| h.llm.requests().last().unwrap().body.to_string();
    h.kill();
    h.start();
    h.llm.push(Script::text("Hello."));
    h.say("hi");
    wait_text(&h, "Hello.");
    let after_restart = last_request(&h);
    assert!(
        after_restart.contains("shop__lookup_order"),
        "{after_restart}"
    );

    h.say("/mcp remove shop");
    wait_text(&h, "Removed shop and its tools.");
    h.llm.push(Script::text("Bye."));
    h.say("bye");
    wait_text(&h, "Bye.");
    let tools = h.llm.requests().last().unwrap().body["tools"].to_string();
    assert!(!tools.contains("shop__"), "{tools}");
    let audit = std::fs::read_to_string(h.audit_log()).unwrap();
    assert!(
        audit.contains("the owner added server shop with"),
        "{audit}"
    );
    assert!(
        !audit.contains(&mcp.url()),
        "the server's address is in the audit log"
    );
    // The loopback needed no allowlist entry.
    assert!(h.netd.requests().is_empty(), "{:?}", h.netd.requests());
}

/// A server elsewhere joins netd's allowlist before the box calls it; when netd says no, the
/// server is not added, and the owner hears why.
#[test]
fn an_mcp_server_elsewhere_is_added_only_if_netd_lets_the_box_reach_it() {
    let mut h = Harness::new();
    h.start();
    h.pair();
    h.netd.refuse_next("a Wi-Fi change is being tried");
    h.say("/mcp add far https://mcp.far.test:8443/mcp");
    let told = h.wait_sent(2)[1].text.clone();
    assert!(
        told.starts_with("I could not add far: the box may not reach mcp.far.test: ")
            && told.contains("a Wi-Fi change is being tried"),
        "{told}"
    );
    assert_eq!(
        h.netd.requests(),
        [json!({"op": "allow", "name": "mcp.far.test", "port": 8443})]
    );
    h.say("/mcp");
    assert!(h.wait_sent(3)[2].text.starts_with("No MCP servers."));
}

/// Without skills, the prompt and the tools are what they always were.
/// The owner sends a skill as a zip: agentd checks it as the builder would, shows what it
/// declares with Install and Decline, and only an Install puts it to use (its hosts let out
/// through netd). Its code is compiled in the background at once. A new version is asked about
/// again and its tools' approvals start afresh; the install survives a restart, and
/// `/remove_skill` takes it away with its files, its compiled code and its hosts.
#[test]
fn the_owner_installs_a_skill_sent_as_a_zip_after_seeing_what_it_declares() {
    let mut h = Harness::new();
    h.start();
    h.pair();
    let mut count = 1;
    let mut next = |h: &Harness| {
        count += 1;
        h.wait_sent_within(count, Duration::from_secs(240))[count - 1].clone()
    };
    let built = tempfile::tempdir().unwrap();

    // Code that was never built is refused, with what to run.
    let unbuilt = built.path().join("unbuilt");
    std::fs::create_dir(&unbuilt).unwrap();
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let weather = unbuilt.join("weather");
    std::fs::create_dir_all(weather.join("scripts")).unwrap();
    for file in ["SKILL.md", "skill.toml", "scripts/tools.py"] {
        std::fs::copy(
            workspace.join("tests/skills/weather").join(file),
            weather.join(file),
        )
        .unwrap();
    }
    h.send_file(
        "weather.zip",
        carapace_image::skill_zip::zip(&weather).unwrap(),
    );
    assert_eq!(
        next(&h).text,
        "weather.zip cannot be installed as a skill: skill weather: it declares tools in \
         skill.toml but has no skill.wasm: run `carapace skill build weather`"
    );

    // Built: offered with what it declares, installed with the button.
    install_example_skill(built.path(), "text-format");
    let text_format = built.path().join("text-format");
    h.send_file(
        "text-format.zip",
        carapace_image::skill_zip::zip(&text_format).unwrap(),
    );
    let offer = next(&h);
    assert!(
        offer.text.starts_with("Install skill text-format? "),
        "{}",
        offer.text
    );
    for shown in [
        "\n- text-format__title_case (asks you the first time): A heading",
        "\nIt reaches no host on the internet.",
    ] {
        assert!(
            offer.text.contains(shown),
            "{shown:?} not in {}",
            offer.text
        );
    }
    let labels: Vec<&str> = offer.buttons.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, ["Install", "Decline"]);
    let installed = h.state.path().join("skills/installed/text-format");
    assert!(!installed.exists(), "installed before the owner said so");
    h.telegram
        .inject_button(OWNER, OWNER, "Ann", &offer.buttons[0].1);
    assert_eq!(
        next(&h).text,
        "Installed text-format. Its tools run only as you allow; /tools lists them."
    );
    assert!(installed.join("skill.wasm").is_file());
    // Its code is compiled right away, in the background: the first call will not wait.
    h.wait_line_within(
        "skills: text-format's code was compiled for this box in ",
        Duration::from_secs(240),
    );
    let compiled_dir = h.skillhost.state.path().join("compiled");
    let compiled_code = || {
        std::fs::read_dir(&compiled_dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "cwasm"))
            .map(|path| (std::fs::metadata(&path).unwrap().modified().unwrap(), path))
            .collect::<Vec<_>>()
    };
    let compiled = compiled_code();
    assert_eq!(compiled.len(), 1, "{compiled:?}");

    // The model sees it and uses it, once the owner allows the tool.
    h.llm.push(Script::tool(
        "text-format__title_case",
        json!({"text": "the lord of the rings"}),
    ));
    h.llm.push(Script::text("I asked you first."));
    h.say("make this a title: the lord of the rings");
    assert_eq!(next(&h).text, "I asked you first.");
    let prompt = h.llm.requests()[0].body.to_string();
    assert!(prompt.contains("- text-format: "), "{prompt}");
    let question = next(&h);
    assert!(
        question
            .text
            .starts_with("Allow text-format__title_case to run?"),
        "{}",
        question.text
    );
    h.llm.push(Script::text("The Lord of the Rings"));
    h.telegram
        .inject_button(OWNER, OWNER, "Ann", &question.buttons[0].1);
    assert_eq!(next(&h).text, "The Lord of the Rings");
    let turn = h.llm.requests()[2].body.to_string();
    assert!(turn.contains("answered:\\nThe Lord of the Rings"), "{turn}");
    assert_eq!(compiled_code(), compiled, "compiled again for the call");

    // A new version that reaches a host and takes a secret: declined once, then installed.
    let declaration = text_format.join("skill.toml");
    let toml = std::fs::read_to_string(&declaration).unwrap();
    std::fs::write(
        &declaration,
        format!(
            "hosts = [\"format.carapace.test\"]\nsecrets = [\"FORMAT_KEY\"]\n\
             [secret_hosts]\nFORMAT_KEY = [\"format.carapace.test\"]\n{toml}"
        ),
    )
    .unwrap();
    let second = carapace_image::skill_zip::zip(&text_format).unwrap();
    h.send_file("text-format.zip", second.clone());
    let offer = next(&h);
    for shown in [
        "\nIt would reach, over HTTPS: format.carapace.test",
        "\nSecrets it takes (you give them; its code never sees them): FORMAT_KEY (sent only \
         to format.carapace.test)",
        "\nIt replaces the text-format you installed before.",
    ] {
        assert!(
            offer.text.contains(shown),
            "{shown:?} not in {}",
            offer.text
        );
    }
    h.telegram
        .inject_button(OWNER, OWNER, "Ann", &offer.buttons[1].1);
    assert_eq!(next(&h).text, "Skill text-format was not installed.");
    assert!(h.netd.requests().is_empty(), "{:?}", h.netd.requests());
    h.send_file("text-format.zip", second);
    let offer = next(&h);
    h.telegram
        .inject_button(OWNER, OWNER, "Ann", &offer.buttons[0].1);
    assert_eq!(
        next(&h).text,
        "Installed text-format. Its tools run only as you allow; /tools lists them.\n\
         Give it FORMAT_KEY: /secret text-format FORMAT_KEY <value>"
    );
    assert_eq!(
        h.netd.requests(),
        [json!({"op": "allow", "name": "format.carapace.test", "port": 443})]
    );
    h.telegram
        .inject_button(OWNER, OWNER, "Ann", &offer.buttons[0].1);
    assert_eq!(next(&h).text, "That question was answered already.");
    h.say("/tools");
    let tools = next(&h).text;
    assert!(
        tools.contains("\ntext-format__title_case: ask the first time"),
        "{tools}"
    );

    // It is still there after a restart (which may send the last reply again: the outbox
    // sends at least once); then the owner removes it.
    h.kill();
    h.start();
    h.say("/skills");
    let listed = loop {
        let sent = next(&h);
        if sent.text.starts_with("Skills:") {
            break sent;
        }
    };
    assert_eq!(
        listed.text,
        "Skills:\ntext-format (installed by you): tools title_case, table, wrap; hosts \
         format.carapace.test; secrets FORMAT_KEY\nSend a skill's zip to install one; \
         /remove_skill NAME removes one you installed."
    );
    h.say("/remove_skill text-format");
    assert_eq!(
        next(&h).text,
        "Removed text-format, with its files and secrets."
    );
    assert!(!installed.exists());
    // Its host leaves netd's allowlist: nothing else on the box reaches it.
    assert_eq!(
        h.netd.requests(),
        [
            json!({"op": "allow", "name": "format.carapace.test", "port": 443}),
            json!({"op": "disallow", "name": "format.carapace.test", "port": 443})
        ]
    );
    // Its compiled code (and the file that locks its compile) goes with it.
    h.wait_line("skills: removed 2 compiled files no skill needs");
    assert_eq!(std::fs::read_dir(&compiled_dir).unwrap().count(), 0);
    h.say("/skills");
    assert!(next(&h).text.starts_with("No skills yet."));
    let staging = h.state.path().join("skills/staging");
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);

    let audit = std::fs::read_to_string(h.audit_log()).unwrap();
    for line in [
        "the owner sent weather.zip (sha256 ",
        "not a skill to install: skill weather: it declares tools",
        "the owner sent skill text-format (sha256 ",
        "tools title_case, table, wrap; hosts none; secrets none; asked the owner to install it",
        "the owner installed skill text-format (sha256 ",
        "the owner declined skill text-format",
        "the owner removed skill text-format",
    ] {
        assert!(audit.contains(line), "{line} not audited: {audit}");
    }
}

/// A skill pack signed with a key of the box's update key list is offered with its version and
/// key; one changed after signing, or signed by a key the box does not trust, is refused with
/// what is wrong; an unsigned zip says so, and more loudly when it would replace a signed one.
#[test]
fn a_signed_skill_pack_is_offered_as_signed_and_one_changed_after_signing_is_refused() {
    let mut h = Harness::new();
    h.start();
    h.pair();
    let mut count = 1;
    let mut next = |h: &Harness| {
        count += 1;
        h.wait_sent_within(count, Duration::from_secs(60))[count - 1].clone()
    };
    let built = tempfile::tempdir().unwrap();
    install_example_skill(built.path(), "tea-brewing");
    let skill = built.path().join("tea-brewing");
    let signing = pack_signing_key();
    let packs = tempfile::tempdir().unwrap();
    let pack = carapace_image::skill_pack::make(&skill, "1.0", &signing, packs.path()).unwrap();
    let pack_bytes = std::fs::read(&pack).unwrap();
    let pack_sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&pack_bytes));

    // Changed after signing: unpacked, one file edited, zipped again.
    let edited = tempfile::tempdir().unwrap();
    carapace_skills::archive::unpack(&pack_bytes, edited.path()).unwrap();
    let steeping = edited.path().join("tea-brewing/steeping.md");
    let text = std::fs::read_to_string(&steeping).unwrap();
    std::fs::write(&steeping, text.replacen("minutes", "MINUTES", 1)).unwrap();
    let tampered = carapace_image::skill_zip::zip(&edited.path().join("tea-brewing")).unwrap();
    h.send_file("tea-brewing-1.0.zip", tampered);
    let refused = next(&h).text;
    assert!(
        refused.starts_with(
            "tea-brewing-1.0.zip cannot be installed as a skill: it is a signed skill pack that \
             does not check out: steeping.md has sha256 "
        ) && refused.ends_with("it was changed after signing"),
        "{refused}"
    );
    // Signed by a key the box's list does not name.
    let stranger =
        carapace_update::SecretKey::from_seed(carapace_update::KeyKind::Signing, &[99; 32]);
    let foreign = tempfile::tempdir().unwrap();
    let foreign =
        carapace_image::skill_pack::make(&skill, "1.0", &stranger, foreign.path()).unwrap();
    h.send_file("tea-brewing-1.0.zip", std::fs::read(foreign).unwrap());
    let refused = next(&h).text;
    assert!(
        refused.starts_with(
            "tea-brewing-1.0.zip cannot be installed as a skill: it is a signed skill pack that \
             does not check out: its signature does not hold: "
        ),
        "{refused}"
    );
    let installed = h.state.path().join("skills/installed/tea-brewing");
    assert!(!installed.exists());

    // Whole and signed by a trusted key: offered as such, installed with the button.
    h.send_file("tea-brewing-1.0.zip", pack_bytes.clone());
    let offer = next(&h);
    let key = signing.id().to_string();
    let signed_line = format!(
        "\nIt is a signed pack, version 1.0, signed by key {key}, which this box trusts for its \
         updates."
    );
    assert!(
        offer.text.starts_with("Install skill tea-brewing? "),
        "{}",
        offer.text
    );
    assert!(offer.text.contains(&signed_line), "{}", offer.text);
    h.telegram
        .inject_button(OWNER, OWNER, "Ann", &offer.buttons[0].1);
    assert_eq!(next(&h).text, "Installed tea-brewing.");
    assert!(installed.join("pack.sig").is_file());
    h.say("/skills");
    assert_eq!(
        next(&h).text,
        format!(
            "Skills:\ntea-brewing (installed by you, signed pack 1.0 by key {key}): instructions \
             only\nSend a skill's zip to install one; /remove_skill NAME removes one you installed."
        )
    );

    // The same skill unsigned: said so, and that it would replace a signed one.
    h.send_file(
        "tea-brewing.zip",
        carapace_image::skill_zip::zip(&skill).unwrap(),
    );
    let offer = next(&h);
    for shown in [
        "\nIt is not signed: install it only if you trust where it came from.",
        "\nIt replaces the tea-brewing you installed before, which was a signed pack (version \
         1.0); this one is not signed.",
    ] {
        assert!(
            offer.text.contains(shown),
            "{shown:?} not in {}",
            offer.text
        );
    }
    h.telegram
        .inject_button(OWNER, OWNER, "Ann", &offer.buttons[1].1);
    assert_eq!(next(&h).text, "Skill tea-brewing was not installed.");

    // A box whose image has no update keys cannot check a signature, and says so.
    std::fs::remove_file(h.update_keys.path().join("update-root.pub")).unwrap();
    h.send_file("tea-brewing-1.0.zip", pack_bytes);
    let offer = next(&h);
    assert!(
        offer.text.contains(
            "\nIt is signed, but this box cannot check the signature (its image has no \
                       update keys): install it only if you trust where it came from."
        ),
        "{}",
        offer.text
    );
    assert!(
        offer
            .text
            .ends_with("this one's signature cannot be checked."),
        "{}",
        offer.text
    );
    // Installed so, it is not listed as signed: nothing checked its signature.
    h.telegram
        .inject_button(OWNER, OWNER, "Ann", &offer.buttons[0].1);
    assert_eq!(next(&h).text, "Installed tea-brewing.");
    assert!(!installed.join("pack.sig").exists());
    h.say("/skills");
    let listed = next(&h).text;
    assert!(
        listed.starts_with("Skills:\ntea-brewing (installed by you): instructions only"),
        "{listed}"
    );

    let audit = std::fs::read_to_string(h.audit_log()).unwrap();
    for line in [
        "not a skill to install: it is a signed skill pack that does not check out: steeping.md \
         has sha256 "
            .to_string(),
        format!(", version 1.0 signed by key {key}): instructions only; asked the owner"),
        format!(
            "the owner installed skill tea-brewing (sha256 {pack_sha256}, version 1.0 signed by key {key})"
        ),
        ", unsigned): instructions only; asked the owner".to_string(),
    ] {
        assert!(audit.contains(&line), "{line} not audited: {audit}");
    }
}

/// agentd may start before the skill host service listens (or while PID 1 restarts it): the
/// image's skills are compiled once it answers, without an install or a restart to ask again.
#[test]
fn the_image_skills_are_compiled_once_the_skill_host_service_answers() {
    let mut h = Harness::new();
    install_example_skill(h.skills.path(), "text-format");
    h.skillhost.stop();
    h.start();
    h.wait_line("skills: compiled code was not pruned: the skill host service at ");
    h.wait_line("skills: trying the skill host service again in 1s");
    h.wait_line_within(
        "skills: trying the skill host service again in 2s",
        Duration::from_secs(10),
    );
    h.skillhost.restart();
    h.wait_line_within(
        "skills: text-format's code was compiled for this box in ",
        Duration::from_secs(240),
    );
    let compiled = std::fs::read_dir(h.skillhost.state.path().join("compiled"))
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|e| e == "cwasm")
        })
        .count();
    assert_eq!(compiled, 1);
}

/// `/install_skill` with a GitHub folder link: the box lists the folder through GitHub's
/// contents API, fetches each file from its download link, and offers the skill as a sent zip
/// is; a folder that is not there, and a link that is neither kind, are answered with why.
#[test]
fn the_owner_installs_a_skill_from_a_github_folder_link() {
    let mut h = Harness::new();
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = std::collections::BTreeMap::new();
    for file in ["SKILL.md", "steeping.md"] {
        let bytes = std::fs::read(workspace.join("tests/skills/tea-brewing").join(file)).unwrap();
        files.insert(format!("skills/tea-brewing/{file}"), bytes);
    }
    files.insert(
        "skills/tea-brewing/notes/green.md".into(),
        b"Sencha: 70 C.\n".to_vec(),
    );
    files.insert("skills/other/SKILL.md".into(), b"not this one".to_vec());
    files.insert("README.md".into(), b"# skills\n".to_vec());
    let github = h.github_on_loopback("skills", files);
    h.github_api = Some(format!("http://{}", github.address()));
    h.start();
    h.pair();
    let mut count = 1;
    let mut next = |h: &Harness| {
        count += 1;
        h.wait_sent_within(count, Duration::from_secs(60))[count - 1].clone()
    };

    h.say("/install_skill https://github.com/acme/skills/tree/main/skills/tea-brewing");
    let offer = next(&h);
    assert!(
        offer.text.starts_with("Install skill tea-brewing? ")
            && offer
                .text
                .contains("\nIt is not signed: install it only if you trust where it came from."),
        "{}",
        offer.text
    );
    h.telegram
        .inject_button(OWNER, OWNER, "Ann", &offer.buttons[0].1);
    assert_eq!(next(&h).text, "Installed tea-brewing.");
    let installed = h.state.path().join("skills/installed/tea-brewing");
    assert_eq!(
        std::fs::read(installed.join("notes/green.md")).unwrap(),
        b"Sencha: 70 C.\n"
    );
    let mut asked = github.requests();
    asked.sort();
    assert_eq!(
        asked,
        [
            "/acme/skills/main/skills/tea-brewing/SKILL.md",
            "/acme/skills/main/skills/tea-brewing/notes/green.md",
            "/acme/skills/main/skills/tea-brewing/steeping.md",
            "/repos/acme/skills/contents/skills/tea-brewing/notes?ref=main",
            "/repos/acme/skills/contents/skills/tea-brewing?ref=main",
        ]
    );
    // GitHub's file host joins netd's allowlist for the fetch and leaves it afterwards (the
    // fake API is on this machine, which needs no entry).
    assert_eq!(
        h.netd.requests(),
        [
            json!({"op": "allow", "name": "raw.githubusercontent.com", "port": 443}),
            json!({"op": "disallow", "name": "raw.githubusercontent.com", "port": 443})
        ]
    );

    let api = format!("http://{}", github.address());
    h.say("/install_skill https://github.com/acme/skills/tree/main/skills/missing");
    assert_eq!(
        next(&h).text,
        format!(
            "I could not fetch https://github.com/acme/skills/tree/main/skills/missing: \
             {api}/repos/acme/skills/contents/skills/missing?ref=main answered 404 Not Found"
        )
    );
    h.say("/install_skill https://github.com/acme/skills/tree/main/README.md");
    assert_eq!(
        next(&h).text,
        "I could not fetch https://github.com/acme/skills/tree/main/README.md: GitHub did not \
         list README.md as a folder in acme/skills at main"
    );
    h.say("/install_skill https://example.com/tea");
    let refused = next(&h).text;
    assert!(
        refused.starts_with("I cannot fetch that: that link is neither: send a GitHub folder link"),
        "{refused}"
    );
    let audit = std::fs::read_to_string(h.audit_log()).unwrap();
    for line in [
        "the owner sent skill tea-brewing (sha256 ",
        "the owner installed skill tea-brewing (sha256 ",
        "the owner asked to install https://github.com/acme/skills/tree/main/skills/missing; it \
         could not be fetched: ",
    ] {
        assert!(audit.contains(line), "{line} not audited: {audit}");
    }
}

#[test]
fn a_box_without_skills_offers_no_skill_tool() {
    let mut h = Harness::new();
    h.start();
    h.pair();
    h.llm.push(Script::text("Hello."));
    h.say("hi");
    h.wait_sent(2);
    let body = h.llm.requests()[0].body.to_string();
    assert!(
        !body.contains("read_skill") && !body.contains("Skills ("),
        "{body}"
    );
}

/// `/recovery_key` shows the key the disk helper handed over, to the owner only, and audits
/// each showing without the key; a box without one says why.
#[test]
fn the_owner_alone_is_shown_the_recovery_key_and_each_showing_is_audited() {
    let mut h = Harness::new();
    h.start();
    let paired = h.pair();
    assert!(!paired.text.contains("/recovery_key"), "{}", paired.text);
    h.say("/recovery_key");
    let sent = h.wait_sent(2);
    assert!(
        sent[1].text.starts_with("This box has no recovery key: "),
        "{}",
        sent[1].text
    );

    let key = "ABCDE-FGH01-23456-789JK-MNPQR";
    std::fs::write(
        h.state_dir().join(board_support::DATA_RECOVERY_KEY_FILE),
        format!("{key}\n"),
    )
    .expect("write the handed-over key");
    h.say("/recovery_key");
    let sent = h.wait_sent(3);
    assert!(
        sent[2].text.starts_with(&format!(
            "/data's recovery key: {key}\nKeep it off this box"
        )),
        "{}",
        sent[2].text
    );
    assert!(sent[2].text.contains("carapace-recovery-key.txt"));

    // Someone the owner invited is a user, and is not shown it.
    h.say("/pair");
    let invitation = h.wait_sent(4)[3].text.clone();
    let code = invitation
        .split("?start=")
        .nth(1)
        .expect("an invitation link")
        .trim();
    h.telegram
        .inject_text(STRANGER, STRANGER, "Mallory", &format!("/start {code}"));
    let paired = h.wait_sent(5)[4].text.clone();
    assert!(
        paired.starts_with("Paired: you are this box's user.") && !paired.contains("recovery"),
        "{paired}"
    );
    h.telegram
        .inject_text(STRANGER, STRANGER, "Mallory", "/recovery_key");
    let sent = h.wait_sent(6);
    assert_eq!(sent[5].chat_id, STRANGER.to_string());
    assert_eq!(sent[5].text, "Only the owner can do that.");

    let log = std::fs::read_to_string(h.audit_log()).expect("audit log");
    assert_eq!(
        log.matches("recovery key shown to").count(),
        1,
        "one showing, audited\n{log}"
    );
    assert!(!log.contains(key), "the key itself is in the audit log");
}

/// On a box whose /data is encrypted, the owner is told at pairing to keep the recovery key.
#[test]
fn pairing_tells_the_owner_of_an_encrypted_box_to_keep_its_recovery_key() {
    let mut h = Harness::new();
    std::fs::write(
        h.state_dir().join(board_support::DATA_RECOVERY_KEY_FILE),
        "ABCDE-FGH01-23456-789JK-MNPQR\n",
    )
    .expect("write the handed-over key");
    h.start();
    let paired = h.pair();
    assert!(
        paired.text.starts_with("Paired: you are this box's owner.")
            && paired
                .text
                .contains("\nThis box's /data is encrypted: send /recovery_key and keep"),
        "{}",
        paired.text
    );
    assert!(!paired.text.contains("ABCDE"), "{}", paired.text);
}
