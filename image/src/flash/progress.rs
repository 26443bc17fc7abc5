//! The progress line of a long write or read-back: bytes, speed and time left. On a terminal
//! it redraws one line; into a pipe or a log it prints a line at every tenth.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use super::target::human;

pub struct Progress {
    what: &'static str,
    total: u64,
    started: Instant,
    drawn: Instant,
    terminal: bool,
    /// The last tenth printed, when not on a terminal.
    tenth: u64,
}

impl Progress {
    pub fn new(what: &'static str, total: u64) -> Progress {
        let now = Instant::now();
        Progress {
            what,
            total: total.max(1),
            started: now,
            drawn: now,
            terminal: std::io::stderr().is_terminal(),
            tenth: 0,
        }
    }

    pub fn update(&mut self, done: u64) {
        if self.terminal {
            if self.drawn.elapsed() >= Duration::from_millis(200) {
                self.drawn = Instant::now();
                eprint!("\r{}   ", self.line(done));
                let _ = std::io::stderr().flush();
            }
        } else {
            let tenth = done.saturating_mul(10) / self.total;
            if tenth > self.tenth && done < self.total {
                self.tenth = tenth;
                eprintln!("{}", self.line(done));
            }
        }
    }

    /// The time the whole job took; the last line says so.
    pub fn finish(&mut self) -> Duration {
        let took = self.started.elapsed();
        if self.terminal {
            eprint!("\r");
        }
        eprintln!(
            "carapace: {} {} in {:.1} s ({}/s)",
            self.what,
            human(self.total),
            took.as_secs_f64(),
            human(rate(self.total, took) as u64)
        );
        took
    }

    fn line(&self, done: u64) -> String {
        let took = self.started.elapsed();
        let speed = rate(done, took);
        let left = if speed > 0.0 {
            let seconds = (self.total.saturating_sub(done)) as f64 / speed;
            format!("{}:{:02} left", seconds as u64 / 60, seconds as u64 % 60)
        } else {
            "time left unknown".into()
        };
        format!(
            "carapace: {} {} of {}, {}/s, {left}",
            self.what,
            human(done),
            human(self.total),
            human(speed as u64)
        )
    }
}

fn rate(bytes: u64, took: Duration) -> f64 {
    let seconds = took.as_secs_f64();
    if seconds > 0.0 {
        bytes as f64 / seconds
    } else {
        0.0
    }
}
