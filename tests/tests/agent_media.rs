//! The box's local perception end to end in QEMU (make test-slow: under emulation each model's
//! first load and run take minutes): the default image, paired through the fakes, speaks with
//! its own voice (`/say`: Piper on ONNX Runtime, phonemes from the espeak-ng program in the
//! image), reads the text in a photo (a photo captioned `/read`: PP-OCRv4), and hears a voice
//! note (Silero VAD and Whisper), whose answer from the LLM comes back spoken. The LLM gets the
//! words and the photo's text, never audio or an image.

#[path = "common/agent_box.rs"]
mod agent_box;
mod common;
#[path = "common/net.rs"]
mod net;

use std::time::Duration;

use agent_box::{OWNER, PairedBox, boot_and_pair};
use carapace_fakes::llm::Script;
use carapace_fakes::page::receipt_photo;
use carapace_fakes::telegram::SentKind;
use carapace_fakes::voice_note::voice_note;
use common::{fail, power_off};

/// One model's first load and run under TCG: minutes (Whisper's encoder is the longest).
const MEDIA_WAIT: Duration = Duration::from_secs(900);

#[test]
fn the_default_image_speaks_reads_photos_and_hears_voice_notes() {
    let PairedBox {
        mut vm,
        telegram,
        llm,
        handle,
        dirs: _dirs,
        net: _net,
    } = boot_and_pair("agent-media");
    let wait = |count: usize, what: &str, vm: &carapace_image::qemu::Vm| {
        let sent = handle.block_on(telegram.wait_sent(count, MEDIA_WAIT));
        if sent.len() < count {
            fail(vm, format!("no answer to {what}: {sent:?}"));
        }
        sent
    };

    telegram.inject_text(OWNER, OWNER, "Ann", "/say the kettle is on");
    let sent = wait(2, "/say", &vm);
    assert_eq!(sent[1].kind, SentKind::Voice, "{:?}", sent[1].text);
    assert!(sent[1].bytes.starts_with(b"OggS") && sent[1].bytes.len() > 2000);

    telegram.inject_photo(OWNER, OWNER, "Ann", receipt_photo(), "/read");
    let sent = wait(3, "a photo captioned /read", &vm);
    assert!(sent[2].text.contains("348.50"), "{}", sent[2].text);
    assert!(llm.requests().is_empty(), "/say or /read went to the LLM");

    llm.push(Script::text("I will remind you tonight."));
    let spoken = "Please send the report to my brother tonight.";
    telegram.inject_voice(OWNER, OWNER, "Ann", voice_note(spoken), 3);
    let sent = wait(5, "a voice note", &vm);
    assert_eq!(sent[3].kind, SentKind::Voice, "{:?}", sent[3].text);
    assert_eq!(sent[4].text, "I will remind you tonight.");
    let requests = llm.requests();
    assert_eq!(requests.len(), 1);
    let body = requests[0].body.to_string();
    assert!(
        body.contains("[a voice note, transcribed on the box] ")
            && body.to_lowercase().contains("report to my brother"),
        "{body}"
    );
    assert!(!body.contains("OggS") && !body.contains("T2dnUw"), "{body}");
    power_off(&mut vm);
}
