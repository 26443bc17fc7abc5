//! Power cuts during updates (QEMU killed, no shutdown): in the download, the slot write, the
//! trial boot and the commit. After every cut the box must come back to its ready line on a
//! slot it can run (dm-verity checked the root it booted), with /data intact: agentd loads its
//! identity (it does not make a new one) and is still paired with its owner.
//!
//! The cuts take the steps in turn. A cut in the trial boot brings the box back on trial, and
//! the commit's cut lands in that trial boot, from 2 s before to 3 s after its commit is due
//! (the image's stability window after updated's trial line); the box must then commit on the
//! next boot, or be committed already. Cut n draws its moment from seed + n, all printed before
//! it happens. CARAPACE_POWER_CUT_SEED=<seed> replays a run's cuts (CARAPACE_POWER_CUTS=<n>
//! stops after the nth). `make test` cuts CARAPACE_POWER_CUTS times, `make test-all` 100.

mod common;
#[path = "common/net.rs"]
mod net;
#[path = "common/update_lab.rs"]
mod update_lab;

use std::time::Duration;

use carapace_image::qemu::Vm;
use common::{fail, power_off, value};
use update_lab::{
    Chat, Lab, SWITCH_TIMEOUT, TRIAL_BOOT, TRIAL_STABLE_S, WAIT, boot_and_pair, boot_kind,
    build_first_image, bundle_and_publish, console_line, recipe,
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

/// Where the box is after a cut.
struct Back {
    /// The console index to look from next.
    from: usize,
    /// The index of updated's trial line when the box came back in a trial boot that is left
    /// unjudged for the next cut (the commit's).
    trial: Option<usize>,
    /// The slot whose ready line the box reached last.
    slot: String,
}

/// Waits for the box to come back after a cut: the ready line (of whichever slot booted),
/// agentd with its identity and its owner, then updated's line that says whether this boot is
/// a trial. A trial is waited out to its end (committed, or rolled back and ready again),
/// unless `leave_trial`: then the next cut lands in it.
fn back_up(vm: &mut Vm, from: usize, leave_trial: bool) -> Back {
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
    if trial && leave_trial {
        println!("  back, on trial: {line}");
        return Back {
            from: vm.console().len().max(at + 1),
            trial: Some(kind_at),
            slot: value(&line, "slot").to_owned(),
        };
    }
    if trial {
        // Judged on this boot: committed, or rolled back into a reboot and a ready line.
        let deadline = std::time::Instant::now() + SWITCH_TIMEOUT;
        loop {
            let console = vm.console();
            if console[kind_at..]
                .iter()
                .any(|l| l.starts_with("updated: update: committed slot="))
            {
                break;
            }
            if let Some(i) = console[kind_at..]
                .iter()
                .position(|l| l.starts_with("updated: update: rolled back"))
            {
                let (next, next_line) = vm
                    .wait_for("carapace: ready slot=", kind_at + i, SWITCH_TIMEOUT)
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
    Back {
        from: vm.console().len().max(at + 1),
        trial: None,
        slot: value(&line, "slot").to_owned(),
    }
}

/// Asks for the install and waits until `step` is under way, then a drawn moment more.
/// updated's console lines say where it is (the owner's messages may come later). The commit
/// step cuts into `trial` (the index of its trial line) when the last cut left the box in one.
fn drive_to(
    step: Step,
    vm: &mut Vm,
    chat: &Chat,
    draw: &mut Draw,
    from: usize,
    trial: Option<usize>,
) {
    if let (Step::Commit, Some(trial_at)) = (step, trial) {
        return cut_near_the_commit(vm, draw, trial_at);
    }
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
                    let trial_at = console_line(vm, before, TRIAL_BOOT, SWITCH_TIMEOUT);
                    cut_near_the_commit(vm, draw, trial_at);
                }
            }
        }
    }
}

/// Returns at a drawn moment from 2 s before to 3 s after the trial's commit is due: updated
/// commits a healthy trial within its 2 s poll once the stability window (from its trial
/// line) is over, so the cut lands just before, in or just after the commit's rename.
fn cut_near_the_commit(vm: &Vm, draw: &mut Draw, trial_at: usize) {
    let due = Duration::from_secs(u64::from(TRIAL_STABLE_S));
    let at = due - Duration::from_secs(2) + draw.millis(5000);
    let since = vm.arrived_ago(trial_at).expect("the trial line");
    std::thread::sleep(at.saturating_sub(since));
}

/// The slot of the last trial line on `vm`'s console ("... trial boot 1 of 0.1.1 in slot b").
fn trial_slot(vm: &Vm) -> String {
    let console = vm.console();
    let line = console
        .iter()
        .rev()
        .find(|l| l.starts_with(TRIAL_BOOT))
        .unwrap_or_else(|| fail(vm, "the commit's cut came with no trial boot"));
    match line.rsplit_once(" in slot ") {
        Some((_, slot)) => slot.to_owned(),
        None => fail(vm, format!("no slot in the trial line '{line}'")),
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

    let lab = Lab::new("cuts");
    let (net, site, keys, build_dir) = (&lab.net, &lab.site, &lab.keys, lab.dir());
    let chat = lab.fakes.chat();
    let recipe_a = recipe(build_dir, "cuts-a", "0.1.0", &net.ca_pem, keys, false, CAP);
    let recipe_b = recipe(build_dir, "cuts-b", "0.1.1", &net.ca_pem, keys, false, CAP);
    let (image, code) = build_first_image(build_dir, &recipe_a);
    bundle_and_publish(&recipe_b, keys, &site.join("x86-64"));
    let (_machine, config, mut vm) = boot_and_pair(&image, "cuts", net, &chat, &code);
    let mut from = vm.console().len();
    let mut trial = None;
    // Boots of the slot on trial in machines already cut (each takes one of its tries).
    let mut trial_boots_before = 0;

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
        let continues_trial = trial.is_some();
        drive_to(step, &mut vm, &chat, &mut draw, from, trial.take());
        // The commit's cut lands in a trial; the trial's slot must be the one that comes back,
        // committed before the cut or judged again after it, unless its boots since the
        // reboot into it used all its tries. The old slot coming back with tries left was the
        // vfat rename that a cut left without its size (atomic_file::rename_durably).
        let trial_slot = matches!(step, Step::Commit).then(|| trial_slot(&vm));
        let before_cut = vm.console();
        // Every boot since the reboot into the trial took one of the slot's tries: those of
        // this machine (from its start when it continues a trial left by the last cut, else
        // since this step's reboot) and those of the machine cut before it.
        let boots_here = before_cut[if continues_trial { 0 } else { from }..]
            .iter()
            .filter(|l| l.starts_with("carapace: stage1 start"))
            .count();
        let trial_boots = boots_here
            + if continues_trial {
                trial_boots_before
            } else {
                0
            };
        trial_boots_before = if matches!(step, Step::TrialBoot) {
            boots_here
        } else {
            0
        };
        vm.kill();
        drop(vm);
        vm = Vm::start(&config).expect("start QEMU again");
        // After a cut in a trial boot the box comes back on trial (or on the old slot): the
        // next cut, the commit's, lands in that trial, whose end the cut after it waits for.
        let leave_trial = matches!(step, Step::TrialBoot) && cut + 1 < cuts;
        let back = back_up(&mut vm, 0, leave_trial);
        // Its tries used up, the trial slot is skipped and the old one boots: right.
        let tries = board_support::boot_entry::DEFAULT_TRIES as usize;
        if let Some(trial_slot) = &trial_slot
            && back.slot != *trial_slot
            && trial_boots >= tries
        {
            println!(
                "  the trial's {trial_boots} boots used its {tries} tries: back on the old slot"
            );
        } else if let Some(trial_slot) = trial_slot
            && back.slot != trial_slot
        {
            let trial_boot = before_cut
                .iter()
                .rposition(|l| l.starts_with("carapace: stage1 start"))
                .unwrap_or(0);
            fail(
                &vm,
                format!(
                    "a cut near the commit of slot {trial_slot} (its boot {trial_boots} of \
                     {tries} tries) brought back slot {}\n--- the trial boot, up to the cut \
                     ---\n{}",
                    back.slot,
                    before_cut[trial_boot..].join("\n")
                ),
            );
        }
        from = back.from;
        trial = back.trial;
    }
    power_off(&mut vm);
}
