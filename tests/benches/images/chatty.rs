//! Boot time with a service flooding its output: the test image booted on a fresh disk with
//! and without the fw_cfg hook that makes its `chatty` service print as fast as it can, in
//! alternating rounds. PID 1 must not slow down because a service talks (its console rings
//! drop what the serial line cannot take), so the ratio should stay near 1.

use std::path::Path;

use carapace_image::board::Board;
use carapace_image::qemu::Accel;

use crate::boot::{self, BootSample, System};
use crate::error::{Context, Result, fail};
use crate::stats;

pub const TEST_RECIPE: &str = "recipes/x86-64-qemu-test.toml";

/// Medians of kernel start → ready, in seconds: (quiet, chatty).
pub struct ChattyBoots {
    pub quiet_s: f64,
    pub chatty_s: f64,
}

pub fn measure(
    workspace: &Path,
    board: &Board,
    accel: Accel,
    boots: usize,
    out: &Path,
) -> Result<ChattyBoots> {
    eprintln!("bench: building the test image ({TEST_RECIPE}) for the chatty-service boots");
    let built = carapace_image::build::build(&workspace.join(TEST_RECIPE), workspace)
        .context(|| format!("build {TEST_RECIPE}"))?;
    let (mut quiet, mut chatty): (Vec<f64>, Vec<f64>) = (vec![], vec![]);
    for round in 1..=boots {
        for (flood, samples) in [(false, &mut quiet), (true, &mut chatty)] {
            let name = if flood { "chatty" } else { "quiet" };
            eprintln!("bench: round {round}/{boots}: test image, {name}, first boot");
            let mut config = boot::fresh_machine(board, &built.image, &out.join(name), accel)?;
            if flood {
                config
                    .fw_cfg
                    .push(("carapace.test".into(), "chatty".into()));
            }
            let sample: BootSample = boot::boot(&config, System::Carapace)?;
            eprintln!(
                "bench:   ready {:.2} s after kernel start",
                sample.kernel_to_ready_s
            );
            samples.push(sample.kernel_to_ready_s);
        }
    }
    let median = |v: &[f64]| stats::median(v).ok_or_else(|| fail("no chatty-service boot"));
    Ok(ChattyBoots {
        quiet_s: median(&quiet)?,
        chatty_s: median(&chatty)?,
    })
}

impl ChattyBoots {
    pub fn report(&self, boots: usize) -> String {
        format!(
            "## Boot with a chatty service (test image, first boot, kernel start → ready, medians of {boots})\n\n\
             | quiet | `chatty` flooding its stdout | chatty / quiet |\n|---:|---:|---:|\n\
             | {:.2} s | {:.2} s | {:.2} |\n",
            self.quiet_s,
            self.chatty_s,
            self.chatty_s / self.quiet_s
        )
    }
}
