//! The agent end to end in QEMU: the default recipe (plus the test CA, so the box trusts the
//! fakes) built with owner settings by `carapace build --owner-settings`'s code, booted on a
//! private network whose DNS answers api.telegram.org and api.openai.com with the fakes'
//! addresses. The box must show the pairing link, ignore a stranger, pair the owner through
//! the deep link's `/start <code>`, and answer the owner through the LLM with a tool call, all
//! through netd's DNS stub and the firewall's allow sets; then keep two memories and recall
//! the right one by meaning through the box's own embedding model, without the LLM; and
//! answer a voice note that holds no speech through the box's voice-activity model.

#[path = "common/agent_box.rs"]
mod agent_box;
mod common;
#[path = "common/net.rs"]
mod net;

use agent_box::{OWNER, PairedBox, STRANGER, WAIT, boot_and_pair};
use carapace_fakes::llm::Script;
use common::{fail, power_off};
use serde_json::json;

#[test]
fn the_default_image_pairs_over_telegram_and_answers_its_owner() {
    let PairedBox {
        mut vm,
        telegram,
        llm,
        handle,
        dirs: _dirs,
        net: _net,
    } = boot_and_pair("agent");

    // The owner asks; the model calls a tool; its answer comes back.
    llm.push(Script::tool("device_status", json!({})));
    llm.push(Script::text("Your box is fine."));
    telegram.inject_text(OWNER, OWNER, "Ann", "how is my box?");
    let sent = handle.block_on(telegram.wait_sent(2, WAIT));
    if sent.len() < 2 {
        fail(&vm, format!("no answer through the LLM: {sent:?}"));
    }
    assert_eq!(sent[1].text, "Your box is fine.", "{sent:?}");
    let requests = llm.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(requests.iter().all(|r| r.key_ok));
    let tool_result = requests[1].body["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "tool"))
        .cloned()
        .unwrap_or_else(|| panic!("no tool result in {}", requests[1].body));
    let content = tool_result["content"].as_str().unwrap_or_default();
    assert!(
        content.contains("\"slot\"") && content.contains("ed25519:"),
        "{content}"
    );

    // /logs needs no model: the logger hands agentd the box's last lines.
    telegram.inject_text(OWNER, OWNER, "Ann", "/logs");
    let sent = handle.block_on(telegram.wait_sent(3, WAIT));
    if sent.len() < 3 {
        fail(&vm, format!("no answer to /logs: {sent:?}"));
    }
    assert!(
        sent[2]
            .text
            .contains("agentd: pairing: telegram 4242 is now the owner"),
        "{}",
        sent[2].text
    );

    // "Remember this", then recall by meaning: the box's own embedding model (the infer
    // service, loopback only) ranks the memories; no LLM call, nothing leaves the box.
    let notes = [
        "the spare key is under the blue flowerpot",
        "the wifi router is in the hallway closet",
    ];
    for (i, note) in notes.iter().enumerate() {
        telegram.inject_text(OWNER, OWNER, "Ann", &format!("/remember {note}"));
        let sent = handle.block_on(telegram.wait_sent(4 + i, WAIT));
        if sent.len() < 4 + i {
            fail(&vm, format!("no answer to /remember: {sent:?}"));
        }
        // Embedded at once: not "Remembered (memory N). It will be searchable once ...".
        let answer = &sent[3 + i].text;
        assert!(
            answer.starts_with("Remembered (memory ")
                && answer.ends_with(").")
                && answer.len() < 32,
            "the engine did not embed the memory: {answer}"
        );
    }
    telegram.inject_text(OWNER, OWNER, "Ann", "/recall where did I leave the key");
    let sent = handle.block_on(telegram.wait_sent(6, WAIT));
    if sent.len() < 6 {
        fail(&vm, format!("no answer to /recall: {sent:?}"));
    }
    let mut recalled = sent[5].text.lines();
    assert_eq!(recalled.next(), Some("From memory:"), "{}", sent[5].text);
    let best = recalled.next().unwrap_or_default();
    assert!(
        best.ends_with(". the spare key is under the blue flowerpot"),
        "the best match is not the key: {}",
        sent[5].text
    );
    assert_eq!(llm.requests().len(), 2, "memories went to the LLM");

    // A voice note of hiss: the engine's voice-activity model (Silero, on ONNX Runtime, which
    // the dynamically linked engine loads from the image) finds no speech, so agentd answers
    // at once, without Whisper (minutes a window under emulation) and without the LLM.
    let noise = carapace_fakes::voice_note::noise_voice_note(4);
    telegram.inject_voice(OWNER, OWNER, "Ann", noise, 4);
    let sent = handle.block_on(telegram.wait_sent(7, WAIT));
    if sent.len() < 7 {
        fail(&vm, format!("no answer to a voice note: {sent:?}"));
    }
    assert_eq!(sent[6].text, "I heard no speech in that voice note.");
    assert_eq!(llm.requests().len(), 2, "a voice note went to the LLM");

    // The engine ran as its own service, on the models the image carries.
    assert!(
        vm.console()
            .iter()
            .any(|l| l == "infer: carapace-infer: listening on http://127.0.0.1:8089"),
        "{:?}",
        vm.console()
    );

    // Nothing ever went to the stranger, and the model never saw their words.
    assert!(
        telegram
            .sent()
            .iter()
            .all(|m| m.chat_id != STRANGER.to_string()),
        "{:?}",
        telegram.sent()
    );
    assert!(
        requests
            .iter()
            .all(|r| !r.body.to_string().contains("hello, box"))
    );
    // The screen (tty1, handed to agentd by PID 1) took the QR code without complaint.
    assert!(
        !vm.console()
            .iter()
            .any(|l| l.starts_with("agentd: screen:")),
        "{:?}",
        vm.console()
    );
    power_off(&mut vm);
}
