//! Power cuts during updates (QEMU killed, no shutdown): in the download, the slot write, the
//! trial boot and the commit. After every cut the box must come back to its ready line on a
//! slot it can run (dm-verity checked the root it booted), with /data intact: agentd loads its
//! identity (it does not make a new one) and is still paired with its owner.
//!
//! The cuts take the steps in turn; cut n draws its moment from seed + n, all printed before
//! it happens. CARAPACE_POWER_CUT_SEED=<seed> replays a run's cuts (CARAPACE_POWER_CUTS=<n>
//! stops after the nth). `make test` cuts CARAPACE_POWER_CUTS times, `make test-all` 100.

mod common;
#[path = "common/net.rs"]
mod net;
#[path = "common/update_lab.rs"]
mod update_lab;

use std::time::Duration;

use carapace_image::qemu::Vm;
use common::{fail, power_off};
use net::TestNet;
use update_lab::{
    Chat, Fakes, SWITCH_TIMEOUT, TRIAL_BOOT, WAIT, boot_and_pair, boot_kind, build_first_image,
    bundle_and_publish, console_line, make_keys, recipe,
};

const CUTS_ENV: &str = "CARAPACE_POWER_CUTS";
const SEED_ENV: &str = "CARAPACE_POWER_CUT_SEED";
const DEFAULT_CUTS: u64 = 20;
/// Slow enough that a download takes seconds, so cuts land inside it.
const CAP: &str = "max_kib_per_s = 64";

#[derive(Clone, Copy, Debug)]
enum Step {
    Download,
    SlotWrite,
    TrialBoot,
    Commit,
}

/// xorshift64*: enough to spread cuts, and the same sequence for the same seed.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn millis(&mut self, below: u64) -> Duration {
        Duration::from_millis(self.next() % below)
    }
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.parse()
            .unwrap_or_else(|_| panic!("{name}={text} is not a number")),
    )
}

/// Waits for the box to come back after a cut: the ready line (of whichever slot booted),
/// then, if that boot is a trial, its end (committed, or rolled back and ready again).
/// Returns the console index to look from next.
fn back_up(vm: &mut Vm, from: usize) -> usize {
    let (mut at, mut line) = match vm.wait_for("carapace: ready slot=", from, SWITCH_TIMEOUT) {
        Ok(hit) => hit,
        Err(e) => fail(vm, format!("no ready line after the cut: {e}")),
    };
    let start = vm.console()[from..at]
        .iter()
        .rposition(|l| l.starts_with("carapace: stage1 start"))
        .map_or(from, |i| from + i);
    let booted = &vm.console()[start..=at];
    assert!(
        booted
            .iter()
            .any(|l| l.starts_with("agentd: identity ed25519=") && l.ends_with(" loaded")),
        "agentd did not load its identity from /data:\n{}",
        booted.join("\n")
    );
    assert!(
        !booted
            .iter()
            .any(|l| l.starts_with("agentd: pairing link=")),
        "the box forgot its owner:\n{}",
        booted.join("\n")
    );
    // updated says on every boot whether it is a trial (it starts with the other services, so
    // its line may come just before or after the ready line).
    let (kind_at, trial) = boot_kind(vm, start, WAIT);
    if trial {
        let trial_at = kind_at;
        // Judged on this boot: committed, or rolled back into a reboot and a ready line.
        let deadline = std::time::Instant::now() + SWITCH_TIMEOUT;
        loop {
            let console = vm.console();
            if console[trial_at..]
                .iter()
                .any(|l| l.starts_with("updated: update: committed slot="))
            {
                break;
            }
            if let Some(i) = console[trial_at..]
                .iter()
                .position(|l| l.starts_with("updated: update: rolled back"))
            {
                let (next, next_line) = vm
                    .wait_for("carapace: ready slot=", trial_at + i, SWITCH_TIMEOUT)
                    .unwrap_or_else(|e| fail(vm, e));
                at = next;
                line = next_line;
                break;
            }
            if std::time::Instant::now() >= deadline {
                fail(vm, "a trial boot after a cut was never judged");
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    println!("  back: {line}");
    vm.console().len().max(at + 1)
}

/// Asks for the install and waits until `step` is under way, then a drawn moment more.
/// updated's console lines say where it is (the owner's messages may come later).
fn drive_to(step: Step, vm: &mut Vm, chat: &Chat, draw: &mut Draw, from: usize) {
    chat.send("/update install force");
    match step {
        Step::Download => {
            // Into the slot that ran 0.1.0 there are chunks to fetch; into the one that ran
            // 0.1.1 before, none ("Writing"), and the cut lands in the slot write instead.
            let started = |line: &str| {
                line.starts_with("updated: update: Downloading 0.1.1:")
                    || line.starts_with("updated: update: Writing 0.1.1:")
            };
            let deadline = std::time::Instant::now() + WAIT;
            while !vm.console().iter().skip(from).any(|line| started(line)) {
                if std::time::Instant::now() >= deadline {
                    fail(vm, "the install never started");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            std::thread::sleep(draw.millis(4000));
        }
        Step::SlotWrite => {
            console_line(vm, from, "updated: update: downloaded ", WAIT);
            std::thread::sleep(draw.millis(2500));
        }
        Step::TrialBoot | Step::Commit => {
            console_line(vm, from, "updated: update: 0.1.1 is written to slot", WAIT);
            let before = vm.console().len();
            chat.send("/update reboot");
            match step {
                Step::TrialBoot => {
                    console_line(vm, before, "carapace: stage1 start", SWITCH_TIMEOUT);
                    std::thread::sleep(draw.millis(20_000));
                }
                _ => {
                    console_line(vm, before, TRIAL_BOOT, SWITCH_TIMEOUT);
                    std::thread::sleep(draw.millis(3000));
                }
            }
        }
    }
}

#[test]
fn power_cuts_during_updates_always_come_back_on_a_good_slot_with_data_intact() {
    let cuts = env_number(CUTS_ENV).unwrap_or(DEFAULT_CUTS);
    let first_seed = env_number(SEED_ENV).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    println!("power cuts: {cuts} from seed {first_seed}");

    let net = TestNet::new("cuts");
    let build_dir = tempfile::tempdir().expect("tempdir");
    let site = build_dir.path().join("site");
    let fakes = Fakes::start(&net, &site);
    let chat = fakes.chat();
    let keys_dir = build_dir.path().join("keys");
    std::fs::create_dir(&keys_dir).expect("keys dir");
    let keys = make_keys(&keys_dir);
    let recipe_a = recipe(
        build_dir.path(),
        "cuts-a",
        "0.1.0",
        &net.ca_pem,
        &keys,
        false,
        CAP,
    );
    let recipe_b = recipe(
        build_dir.path(),
        "cuts-b",
        "0.1.1",
        &net.ca_pem,
        &keys,
        false,
        CAP,
    );
    let (image, code) = build_first_image(build_dir.path(), &recipe_a);
    bundle_and_publish(&recipe_b, &keys, &site.join("x86-64"));
    let (_machine, config, mut vm) = boot_and_pair(&image, "cuts", &net, &chat, &code);
    let mut from = vm.console().len();

    for cut in 0..cuts {
        let seed = first_seed.wrapping_add(cut).max(1);
        let mut draw = Draw(seed);
        // The steps in turn, so any four cuts cover each; the moment comes from the seed.
        let step = match cut % 4 {
            0 => Step::Download,
            1 => Step::SlotWrite,
            2 => Step::TrialBoot,
            _ => Step::Commit,
        };
        println!("power cut {}/{cuts}: seed={seed} step={step:?}", cut + 1);
        drive_to(step, &mut vm, &chat, &mut draw, from);
        vm.kill();
        drop(vm);
        vm = Vm::start(&config).expect("start QEMU again");
        from = back_up(&mut vm, 0);
    }
    power_off(&mut vm);
}
