//! Times all-MiniLM-L6-v2 through candle: one sentence, and a batch of 32, on a given number
//! of threads; prints medians and the peak resident memory. tests/data/time_sentence_transformers.py
//! times sentence-transformers on the same batches.
//!
//!     cargo run --release -p carapace-infer --example embed_bench -- [THREADS] [RUNS]

use std::num::NonZeroUsize;
use std::path::Path;
use std::time::{Duration, Instant};

use carapace_infer::Embedder;

/// Sentences with at most this many pieces make up the batch of 32: everyday lengths, not the
/// two long test sentences, which would pad every row to 256.
const SHORT_PIECES: usize = 64;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn peak_rss_kib() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .map_or("unknown".into(), |value| value.trim().to_string())
}

fn time_runs(embedder: &Embedder, batch: &[&str], runs: usize) -> Duration {
    embedder.embed(batch).unwrap(); // warm-up, not counted
    let samples = (0..runs)
        .map(|_| {
            let start = Instant::now();
            embedder.embed(batch).unwrap();
            start.elapsed()
        })
        .collect();
    median(samples)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: NonZeroUsize = args
        .next()
        .map_or(NonZeroUsize::new(2).unwrap(), |a| a.parse().unwrap());
    let runs: usize = args.next().map_or(7, |a| a.parse().unwrap());
    #[allow(unsafe_code)]
    // SAFETY: the first statement of main after reading the arguments; no other thread exists.
    unsafe {
        carapace_infer::pin_cpu_threads(threads)
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = runtime
        .block_on(carapace_infer::fetch_pinned("all-minilm-l6-v2"))
        .unwrap();

    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/reference.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reference).unwrap()).unwrap();
    let sentences: Vec<String> = serde_json::from_value(json["sentences"].clone()).unwrap();
    let pieces: Vec<usize> = serde_json::from_value(json["pieces"].clone()).unwrap();
    let one = [sentences[3].as_str()];
    let short: Vec<&str> = sentences
        .iter()
        .zip(&pieces)
        .filter(|(_, n)| **n <= SHORT_PIECES)
        .map(|(s, _)| s.as_str())
        .collect();
    let thirty_two: Vec<&str> = short.iter().copied().cycle().take(32).collect();

    let start = Instant::now();
    let embedder = Embedder::load(&dir, threads).unwrap();
    embedder.embed(&one).unwrap();
    let first = start.elapsed();

    let batch_1 = time_runs(&embedder, &one, runs);
    let batch_32 = time_runs(&embedder, &thirty_two, runs);
    println!("candle, {threads} threads, medians of {runs} runs");
    println!(
        "  load + first embedding: {:.1} ms",
        first.as_secs_f64() * 1e3
    );
    println!("  batch of 1:  {:.2} ms", batch_1.as_secs_f64() * 1e3);
    println!("  batch of 32: {:.2} ms", batch_32.as_secs_f64() * 1e3);
    println!("  peak RSS: {}", peak_rss_kib());
}
