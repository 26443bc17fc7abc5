//! `make bench`: how long an update takes the owner, from /update to committed, beside a plain
//! reboot of the same box (/reboot confirm to the ready line), in one run on the same QEMU
//! machine (TCG): the default recipe with an update source, 0.1.0 on slot a and 0.1.1 in a
//! test repository on the private network (bundled with a patch from 0.1.0), paired with its
//! owner over the fake Telegram, as tests/tests/update.rs sets it up.
//!
//! Each round: /update install (force, after the first) until the owner hears the slot is
//! written; /update reboot until the new slot's ready line and its commit; then /reboot confirm
//! until the ready line again. The commit waits for agentd to have run a minute (the trial's
//! stability window, `updated`'s default): that minute is part of what an owner waits.
//! `CARAPACE_BENCH_ROUNDS` rounds (default 3); the table gives medians.
//!
//! No libtest harness: `cargo bench` passes `--bench` and gets the benchmark; `cargo test
//! --benches` runs it without and gets the self-checks.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/net.rs"]
mod net;
#[path = "../tests/common/update_lab.rs"]
mod update_lab;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use carapace_image::qemu;
use update_lab::{
    Chat, Lab, SWITCH_TIMEOUT, WAIT, boot_and_pair, build_first_image, bundle_and_publish_patched,
    console_line, keep_slot, recipe,
};

const ROUNDS_ENV: &str = "CARAPACE_BENCH_ROUNDS";

/// One round's times.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Round {
    /// /update install → "is written to slot".
    install: Duration,
    /// /update reboot → the new slot's ready line.
    reboot: Duration,
    /// That ready line → "committed".
    commit: Duration,
    /// /reboot confirm → the ready line.
    plain: Duration,
}

impl Round {
    fn total(&self) -> Duration {
        self.install + self.reboot + self.commit
    }
}

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        for (name, check) in CHECKS {
            check();
            println!("check {name} ... ok");
        }
        println!(
            "{} checks passed (the benchmark itself runs with `make bench`)",
            CHECKS.len()
        );
        return ExitCode::SUCCESS;
    }
    let rounds = match std::env::var(ROUNDS_ENV) {
        Ok(text) => match text.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("bench: {ROUNDS_ENV}={text} is not a positive number");
                return ExitCode::FAILURE;
            }
        },
        Err(_) => 3,
    };
    let measured = measure(rounds);
    println!("{}", render(&measured));
    ExitCode::SUCCESS
}

fn measure(rounds: usize) -> Vec<Round> {
    let lab = Lab::new("utime");
    let (net, site, keys, build_dir) = (&lab.net, &lab.site, &lab.keys, lab.dir());
    let chat = lab.fakes.chat();
    let recipe_for =
        |name: &str, version: &str| recipe(build_dir, name, version, &net.ca_pem, keys, false, "");
    let recipe_a = recipe_for("utime-a", "0.1.0");
    let recipe_b = recipe_for("utime-b", "0.1.1");
    eprintln!("bench: building 0.1.0 (the box) and 0.1.1 (the update)");
    let (image, code) = build_first_image(build_dir, &recipe_a);
    let release_a = keep_slot(&recipe_a, &build_dir.join("release-0.1.0"));
    bundle_and_publish_patched(&recipe_b, keys, &site.join("x86-64"), &[release_a]);
    let (_machine, _config, mut vm) = boot_and_pair(&image, "utime", net, &chat, &code);

    let mut measured = Vec::new();
    let mut seen = chat.telegram.sent().len();
    for round in 0..rounds {
        let slot = if round % 2 == 0 { "b" } else { "a" };
        let install = if round == 0 {
            "/update install"
        } else {
            "/update install force"
        };
        let started = Instant::now();
        chat.send(install);
        let written = format!("0.1.1 is written to slot {slot}");
        (seen, _) = chat.wait_for(&vm, seen, &written, WAIT);
        let install_took = started.elapsed();

        let from = vm.console().len();
        let started = Instant::now();
        chat.send("/update reboot");
        let ready = console_line(
            &mut vm,
            from,
            &format!("carapace: ready slot={slot}"),
            SWITCH_TIMEOUT,
        );
        let reboot_took = started.elapsed();
        let started = Instant::now();
        console_line(
            &mut vm,
            ready,
            &format!("updated: update: committed slot={slot}"),
            SWITCH_TIMEOUT,
        );
        let commit_took = started.elapsed();
        // The owner hears of the commit before the next round asks for anything.
        (seen, _) = chat.wait_for(&vm, seen, &format!("Updated to 0.1.1 (slot {slot})"), WAIT);

        let plain_took = plain_reboot(&mut vm, &chat, &mut seen, slot);
        let round = Round {
            install: install_took,
            reboot: reboot_took,
            commit: commit_took,
            plain: plain_took,
        };
        eprintln!("bench: round {}: {round:?}", measured.len() + 1);
        measured.push(round);
    }
    common::power_off(&mut vm);
    measured
}

/// /reboot confirm → the ready line of the same slot; waits until the owner can talk to the
/// box again (its next answer) before the next step.
fn plain_reboot(vm: &mut qemu::Vm, chat: &Chat, seen: &mut usize, slot: &str) -> Duration {
    chat.send("/reboot");
    (*seen, _) = chat.wait_for(vm, *seen, "Send /reboot confirm", WAIT);
    let from = vm.console().len();
    let started = Instant::now();
    chat.send("/reboot confirm");
    console_line(vm, from, &format!("carapace: ready slot={slot}"), WAIT);
    let took = started.elapsed();
    chat.send("/status");
    (*seen, _) = chat.wait_for(vm, *seen + 1, "users:", WAIT);
    took
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    match values.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2,
    }
}

fn render(rounds: &[Round]) -> String {
    let of = |pick: fn(&Round) -> Duration| median(rounds.iter().map(pick).collect());
    let plain = of(|r| r.plain);
    let row = |what: &str, took: Duration| {
        format!(
            "| {what} | {:.1} s | {:.2} |\n",
            took.as_secs_f64(),
            took.as_secs_f64() / plain.as_secs_f64().max(0.001)
        )
    };
    let mut out = format!(
        "## From /update to committed, beside a plain reboot (QEMU, TCG; medians of {} rounds)\n\n\
         | step | median | / plain reboot |\n|---|---:|---:|\n",
        rounds.len()
    );
    out.push_str(&row(
        "/update install → written to the other slot",
        of(|r| r.install),
    ));
    out.push_str(&row(
        "/update reboot → ready on the new slot",
        of(|r| r.reboot),
    ));
    out.push_str(&row(
        "ready → committed (the trial's health checks and stability minute)",
        of(|r| r.commit),
    ));
    out.push_str(&row("**/update → committed**", of(Round::total)));
    out.push_str(&row("plain reboot: /reboot confirm → ready", plain));
    out
}

const CHECKS: &[(&str, fn())] = &[
    ("medians of odd and even counts", || {
        let s = Duration::from_secs;
        assert_eq!(median(vec![s(3), s(1), s(2)]), s(2));
        assert_eq!(
            median(vec![s(4), s(1), s(2), s(3)]),
            Duration::from_millis(2500)
        );
    }),
    ("the table gives each step beside the plain reboot", || {
        let s = Duration::from_secs;
        let round = Round {
            install: s(10),
            reboot: s(20),
            commit: s(60),
            plain: s(20),
        };
        let table = render(&[round, round]);
        assert!(
            table.contains("| **/update → committed** | 90.0 s | 4.50 |"),
            "{table}"
        );
        assert!(table.contains("| plain reboot: /reboot confirm → ready | 20.0 s | 1.00 |"));
        assert!(table.contains("medians of 2 rounds"), "{table}");
    }),
];
