//! Updates over the air, end to end in QEMU: the default recipe with an update source (a
//! repository on a static HTTPS server in the test's network namespace, built and published
//! with `carapace bundle` and `publish`'s code), paired with its owner over the fake Telegram.
//! The owner drives it from the chat, as a user would:
//!
//! 1. a repository whose chunks were tampered with: refused, nothing written;
//! 2. a link that drops mid-chunk: refused as truncated; the next try resumes the chunk with a
//!    range request;
//! 3. 0.1.0 (slot a) → 0.1.1 (slot b), bundled with a patch from 0.1.0's root (the box downloads
//!    the patch, not the changed chunks), committed once agentd passed its self-test and its
//!    Telegram link is back; then back to slot a (forced, same version), committed;
//! 4. 0.1.2, a broken release (its service table leaves out agentd's runtime directory, so
//!    agentd exits at start and crash-loops): never committed, the box is back on slot a by
//!    itself (updated's rollback or systemd-boot's tries running out), and the owner is told;
//! 5. and 6. releases with a corrupt root block and a kernel that panics; 7. one with a
//!    service that hangs (the hardware watchdog resets the box): each back on slot a.
//!
//! 5 and 6 fail the same way as far as boot control goes (no userspace of theirs runs, so
//! systemd-boot's tries run out), and each costs three boots under TCG; 7 fails that way too,
//! each try ending in a watchdog reset, which tests/tests/system.rs checks on its own. `make
//! test` runs 5; `make test-all` (CARAPACE_UPDATE_EVERY_BREAKAGE=1) 5, 6 and 7.
//! tests/tests/pi5.rs has a panicking kernel too, on the Pi's way back.

mod common;
#[path = "common/net.rs"]
mod net;
#[path = "common/update_lab.rs"]
mod update_lab;

use std::path::PathBuf;

use carapace_image::qemu::Vm;
use common::{BOOT_TIMEOUT, fail, power_off, workspace};
use update_lab::{
    Breakage, Chat, Lab, SWITCH_TIMEOUT, WAIT, add_stalling_service, boot_and_pair, boot_kind,
    build_first_image, bundle_and_publish, bundle_and_publish_patched, console_line, keep_slot,
    publish_broken, recipe, signed_skill_pack,
};

const EVERY_BREAKAGE_ENV: &str = "CARAPACE_UPDATE_EVERY_BREAKAGE";

#[test]
fn the_owner_updates_to_slot_b_and_back_to_a_and_broken_releases_go_back_by_themselves() {
    let lab = Lab::new("update");
    let (net, site, keys, build_dir) = (&lab.net, &lab.site, &lab.keys, lab.dir());
    let server = &lab.fakes.server;
    let chat = lab.fakes.chat();
    let recipe_a = recipe(build_dir, "update-a", "0.1.0", &net.ca_pem, keys, false, "");
    let recipe_b = recipe(build_dir, "update-b", "0.1.1", &net.ca_pem, keys, false, "");
    let recipe_bad = recipe(
        build_dir,
        "update-bad",
        "0.1.2",
        &net.ca_pem,
        keys,
        true,
        "",
    );
    // 0.1.0 carries a signed skill pack, which the builder checks with the recipe's keys.
    let pack = signed_skill_pack(build_dir, keys, "teapot", "1.0");
    let mut text = std::fs::read_to_string(&recipe_a).expect("recipe a");
    text.push_str(&format!(
        "\n[[skill_pack]]\npath = \"{}\"\n",
        pack.display()
    ));
    std::fs::write(&recipe_a, text).expect("recipe a");
    let (image, code) = build_first_image(build_dir, &recipe_a);
    let release_a = keep_slot(&recipe_a, &build_dir.join("release-0.1.0"));
    bundle_and_publish_patched(&recipe_b, keys, &site.join("x86-64"), &[release_a]);
    let (_machine, _config, mut vm) = boot_and_pair(&image, "update", net, &chat, &code);
    let follows = console_line(
        &mut vm,
        0,
        "updated: update: x86-64 0.1.0 slot a follows",
        BOOT_TIMEOUT,
    );
    let (kind, trial) = boot_kind(&mut vm, follows, WAIT);
    assert!(
        !trial && vm.console()[kind] == "updated: update: slot a is committed",
        "the first boot is not a trial: {}",
        vm.console()[kind]
    );
    // The image's pack is listed as signed; one the owner sends is checked on the box with the
    // update keys in its image, and offered as signed.
    let signer = carapace_update::SecretKey::load(&keys.signing, carapace_update::KeyKind::Signing)
        .expect("signing key")
        .id();
    chat.send("/skills");
    let (seen, listed) = chat.wait_for(&vm, 0, "Skills:", WAIT);
    let image_pack =
        format!("\nteapot (in the image, signed pack 1.0 by key {signer}): instructions only");
    if !listed.contains(&image_pack) {
        fail(&vm, format!("{image_pack:?} not in {listed:?}"));
    }
    let sent = signed_skill_pack(build_dir, keys, "kettle", "0.3");
    chat.send_file("kettle-0.3.zip", std::fs::read(sent).expect("the pack"));
    let (_, offer) = chat.wait_for(&vm, seen + 1, "Install skill kettle?", WAIT);
    let signed = format!(
        "\nIt is a signed pack, version 0.3, signed by key {signer}, which this box trusts for its \
         updates."
    );
    if !offer.contains(&signed) {
        fail(&vm, format!("{signed:?} not in {offer:?}"));
    }
    chat.send("/update");
    let (seen, text) = chat.wait_for(&vm, 0, "0.1.1 is available", WAIT);
    assert!(text.contains("this box runs 0.1.0"), "{text}");

    // 1. Tampered chunks: refused before a byte is written; the box stays on slot a.
    let chunks = site.join("x86-64/chunks");
    let originals: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&chunks)
        .expect("chunks")
        .map(|entry| {
            let path = entry.expect("chunk").path();
            let bytes = std::fs::read(&path).expect("chunk bytes");
            (path, bytes)
        })
        .collect();
    for (path, bytes) in &originals {
        let mut tampered = bytes.clone();
        tampered[bytes.len() / 2] ^= 0x55;
        std::fs::write(path, tampered).expect("tamper");
    }
    chat.send("/update install");
    let (seen, refused) = chat.wait_for(&vm, seen + 1, "Installing 0.1.1 failed:", WAIT);
    assert!(refused.contains("hash"), "{refused}");
    assert!(
        refused.contains("The running slot a is untouched"),
        "{refused}"
    );
    for (path, bytes) in &originals {
        std::fs::write(path, bytes).expect("restore");
    }

    // 2. The link drops after 10 000 bytes of a chunk: refused as truncated; the next try
    //    continues that chunk from its 10 000th byte.
    server.cut_chunks_at(10_000);
    chat.send("/update install");
    let (seen, truncated) = chat.wait_for(&vm, seen + 1, "Installing 0.1.1 failed:", WAIT);
    assert!(truncated.contains("truncated"), "{truncated}");
    server.cut_chunks_at(0);
    let sent_before = server.bytes_sent();
    chat.send("/update install");
    let (seen, downloading) = chat.wait_for(&vm, seen + 1, "Downloading 0.1.1:", WAIT);
    // 0.1.1 was bundled with a patch from 0.1.0's root, which this box runs.
    assert!(
        downloading.contains("a patch against this box's files among them"),
        "{downloading}"
    );
    let (seen, written) = chat.wait_for(&vm, seen, "0.1.1 is written to slot b", WAIT);
    assert!(written.contains("/update reboot"), "{written}");
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.ends_with("range=10000-")),
        "the interrupted chunk was not resumed: {:?}",
        server.requests()
    );
    println!(
        "update 0.1.0 -> 0.1.1: {downloading:?}; {} bytes sent by the server for it",
        server.bytes_sent() - sent_before
    );

    // 3. Into slot b, committed once agentd is healthy and the chat link is back.
    let before_reboot = vm.console().len();
    chat.send("/update reboot");
    let at = console_line(
        &mut vm,
        before_reboot,
        "carapace: ready slot=b",
        SWITCH_TIMEOUT,
    );
    let (kind, trial) = boot_kind(&mut vm, before_reboot, WAIT);
    assert!(
        trial,
        "slot b's first boot is a trial: {}",
        vm.console()[kind]
    );
    console_line(
        &mut vm,
        at,
        "updated: update: committed slot=b version=0.1.1",
        WAIT,
    );
    let (seen, committed) = chat.wait_for(&vm, seen, "Updated to 0.1.1 (slot b)", WAIT);
    assert!(committed.contains("chat link is back"), "{committed}");

    // Back to slot a: the same version, forced; every chunk is already on the box.
    let sent_before = server.bytes_sent();
    chat.send("/update install force");
    let (seen, _) = chat.wait_for(&vm, seen + 1, "0.1.1 is written to slot a", WAIT);
    let chunk_bytes = server.bytes_sent() - sent_before;
    let before_reboot = vm.console().len();
    chat.send("/update reboot");
    let at = console_line(
        &mut vm,
        before_reboot,
        "carapace: ready slot=a",
        SWITCH_TIMEOUT,
    );
    console_line(
        &mut vm,
        at,
        "updated: update: committed slot=a version=0.1.1",
        WAIT,
    );
    let (seen, _) = chat.wait_for(&vm, seen, "Updated to 0.1.1 (slot a)", WAIT);
    println!("back to slot a: {chunk_bytes} bytes from the server");

    // 4. A broken release: its agentd never comes up, so the trial is never committed; the box
    //    goes back to slot a by itself and says so.
    bundle_and_publish(&recipe_bad, keys, &site.join("x86-64"));
    chat.send("/update install");
    let (seen, _) = chat.wait_for(&vm, seen + 1, "0.1.2 is written to slot b", WAIT);
    let before_reboot = vm.console().len();
    chat.send("/update reboot");
    let trial = console_line(
        &mut vm,
        before_reboot,
        "carapace: stage1 start",
        SWITCH_TIMEOUT,
    );
    let back = console_line(&mut vm, trial, "carapace: ready slot=a", SWITCH_TIMEOUT);
    let console = vm.console();
    assert!(
        console[trial..back]
            .iter()
            .any(|l| l.starts_with("updated: update: trial boot 1 of 0.1.2 in slot b")),
        "slot b never booted its trial:\n{}",
        console[trial..back].join("\n")
    );
    let (at, rolled_back) = chat.wait_for_any(
        &vm,
        seen + 1,
        &["0.1.2 failed its trial", "0.1.2 did not start properly"],
        SWITCH_TIMEOUT,
    );
    let mut seen = at;
    assert!(rolled_back.contains("(slot a)"), "{rolled_back}");
    assert!(
        !vm.console()
            .iter()
            .any(|l| l.starts_with("updated: update: committed slot=b version=0.1.2")),
        "the bad slot was committed"
    );

    // 5 and 6. Releases that pass every signature and hash but cannot boot: a root with a
    //    corrupt block (dm-verity refuses it and restarts) and a kernel that panics. No
    //    userspace of theirs ever runs; systemd-boot's tries run out and slot a boots.
    let built_b = workspace().join("out/update-b");
    let every_breakage = std::env::var_os(EVERY_BREAKAGE_ENV).is_some();
    let breakages = [
        (
            "0.1.3",
            Breakage::CorruptRootBlock,
            "carapace: FATAL verify /dev/dm-",
        ),
        ("0.1.4", Breakage::KernelPanic, "Kernel panic"),
    ];
    let run = if every_breakage { 2 } else { 1 };
    println!(
        "broken releases that never reach userspace: {run} of 2 ({EVERY_BREAKAGE_ENV} for both)"
    );
    for (version, breakage, sign) in breakages.into_iter().take(run) {
        publish_broken(&built_b, version, breakage, keys, &site.join("x86-64"));
        chat.send("/update install");
        let (at, _) = chat.wait_for(
            &vm,
            seen + 1,
            &format!("{version} is written to slot b"),
            WAIT,
        );
        seen = at;
        let before_reboot = vm.console().len();
        chat.send("/update reboot");
        let back = console_line(
            &mut vm,
            before_reboot + 1,
            "carapace: ready slot=a",
            SWITCH_TIMEOUT,
        );
        let console = vm.console();
        let failed_boots = console[before_reboot..back]
            .iter()
            .filter(|l| l.contains(sign))
            .count();
        assert!(
            failed_boots >= 1,
            "{version} ({breakage:?}) never failed the way it should:\n{}",
            console[before_reboot..back].join("\n")
        );
        let (at, told) = chat.wait_for(
            &vm,
            seen,
            &format!("{version} did not start properly"),
            WAIT,
        );
        seen = at;
        assert!(told.contains("back on 0.1.1 (slot a)"), "{told}");
    }

    if every_breakage {
        a_hanging_release_goes_back(&mut vm, &lab, &chat, seen);
    }
    power_off(&mut vm);
}

/// 7. A release with a service that hangs: PID 1 finds its watchdog missed and stops petting
///    the hardware watchdog, which resets the box before the trial's stability window
///    (TRIAL_STABLE_S) is up; each reset costs a boot try, and then slot a boots.
fn a_hanging_release_goes_back(vm: &mut Vm, lab: &Lab, chat: &Chat, mut seen: usize) {
    let (net, site, keys, build_dir) = (&lab.net, &lab.site, &lab.keys, lab.dir());
    let recipe_hang = recipe(
        build_dir,
        "update-hang",
        "0.1.5",
        &net.ca_pem,
        keys,
        false,
        "",
    );
    add_stalling_service(&recipe_hang);
    bundle_and_publish(&recipe_hang, keys, &site.join("x86-64"));
    chat.send("/update install");
    let (at, _) = chat.wait_for(vm, seen + 1, "0.1.5 is written to slot b", WAIT);
    seen = at;
    let before_reboot = vm.console().len();
    chat.send("/update reboot");
    let back = console_line(
        vm,
        before_reboot + 1,
        "carapace: ready slot=a",
        SWITCH_TIMEOUT,
    );
    let console = vm.console()[before_reboot..back].to_vec();
    let missed = console
        .iter()
        .position(|l| l.starts_with("carapace: service stall watchdog missed"))
        .unwrap_or_else(|| fail(vm, "the hung service's watchdog was never missed"));
    let reset = console[missed..]
        .iter()
        .position(|l| l.starts_with("carapace: stage1 start"))
        .unwrap_or_else(|| fail(vm, "the box was never reset after the missed watchdog"));
    assert!(
        !console[missed..missed + reset]
            .iter()
            .any(|l| l.starts_with("carapace: shutdown") || l.starts_with("carapace: FATAL")),
        "the box was not reset by the watchdog but shut down:\n{}",
        console.join("\n")
    );
    assert!(
        !console
            .iter()
            .any(|l| l.starts_with("updated: update: committed slot=b version=0.1.5")),
        "the hanging release was committed"
    );
    let (_, told) = chat.wait_for(vm, seen, "0.1.5 did not start properly", WAIT);
    assert!(told.contains("back on 0.1.1 (slot a)"), "{told}");
}
