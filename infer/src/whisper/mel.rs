//! Whisper's input: the log-mel spectrogram of 16 kHz audio, computed as openai-whisper's
//! `log_mel_spectrogram` does: a 400-point STFT with a periodic Hann window every 160 samples
//! (centred, reflect-padded), power spectrum, a Slaney-style mel filter bank (librosa's
//! default, which Whisper's mel_filters.npz holds), log10, a floor 8 below the loudest value,
//! then (x + 4) / 4.

use std::ops::Range;
use std::sync::Arc;

use realfft::RealFftPlanner;

pub const N_FFT: usize = 400;
pub const HOP: usize = 160;
const BINS: usize = N_FFT / 2 + 1;

/// The mel filter bank and the FFT plan, made once per loaded model.
pub struct MelSpectrogram {
    mel_bins: usize,
    /// `mel_bins` rows of [`BINS`] weights.
    filters: Vec<f32>,
    /// Each row's bins with a weight (a triangle's few, out of 201): the others add +0.0,
    /// which leaves a sum as it is, so skipping them changes no bit.
    weighted: Vec<Range<usize>>,
    window: Vec<f32>,
    fft: Arc<dyn realfft::RealToComplex<f32>>,
}

impl MelSpectrogram {
    pub fn new(mel_bins: usize, sample_rate: u32) -> MelSpectrogram {
        let window = (0..N_FFT)
            .map(|i| {
                let phase = 2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64;
                (0.5 * (1.0 - phase.cos())) as f32
            })
            .collect();
        let filters = slaney_mel_filters(mel_bins, sample_rate);
        let weighted = filters
            .chunks(BINS)
            .map(|row| {
                let first = row.iter().position(|&w| w != 0.0).unwrap_or(0);
                let end = row
                    .iter()
                    .rposition(|&w| w != 0.0)
                    .map_or(0, |last| last + 1);
                first..end
            })
            .collect();
        MelSpectrogram {
            mel_bins,
            filters,
            weighted,
            window,
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT),
        }
    }

    /// `mel_bins` rows of `samples.len() / HOP` frames (row-major), normalised as Whisper's.
    pub fn compute(&self, samples: &[f32]) -> Vec<f32> {
        let frames = samples.len() / HOP;
        let pad = N_FFT / 2;
        // Reflect padding (torch.stft's center=True): x[pad], ..., x[1], x..., x[n-2], ...
        let at = |i: isize| -> f32 {
            let n = samples.len() as isize;
            if n == 0 {
                return 0.0;
            }
            let mut i = i;
            if i < 0 {
                i = -i;
            }
            if i >= n {
                i = 2 * (n - 1) - i;
            }
            samples
                .get(i.clamp(0, n - 1) as usize)
                .copied()
                .unwrap_or(0.0)
        };
        let mut mel = vec![0f32; self.mel_bins * frames];
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f32; BINS];
        for frame in 0..frames {
            let start = (frame * HOP) as isize - pad as isize;
            for (k, value) in input.iter_mut().enumerate() {
                *value = at(start + k as isize) * self.window[k];
            }
            // Whisper pads every note with 30 s of silence: a window of it has no power at
            // any frequency, without a transform.
            if input.iter().all(|&value| value == 0.0) {
                power.fill(0.0);
            } else {
                // The lengths match the plan, so this cannot fail.
                if self
                    .fft
                    .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                    .is_err()
                {
                    continue;
                }
                for (p, c) in power.iter_mut().zip(&spectrum) {
                    *p = c.norm_sqr();
                }
            }
            for (bin, weighted) in self.weighted.iter().enumerate() {
                let row = &self.filters[bin * BINS..(bin + 1) * BINS];
                let energy: f32 = row[weighted.clone()]
                    .iter()
                    .zip(&power[weighted.clone()])
                    .map(|(w, p)| w * p)
                    .sum();
                mel[bin * frames + frame] = energy.max(1e-10).log10();
            }
        }
        let loudest = mel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for value in &mut mel {
            *value = (value.max(loudest - 8.0) + 4.0) / 4.0;
        }
        mel
    }
}

/// librosa.filters.mel(sr, n_fft=400, n_mels, htk=False, norm="slaney"): triangles on the
/// Slaney mel scale (linear below 1 kHz, logarithmic above), each scaled to unit area.
fn slaney_mel_filters(mel_bins: usize, sample_rate: u32) -> Vec<f32> {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    let min_log_mel = MIN_LOG_HZ / F_SP;
    let log_step = 6.4f64.ln() / 27.0;
    let hz_to_mel = |hz: f64| {
        if hz >= MIN_LOG_HZ {
            min_log_mel + (hz / MIN_LOG_HZ).ln() / log_step
        } else {
            hz / F_SP
        }
    };
    let mel_to_hz = |mel: f64| {
        if mel >= min_log_mel {
            MIN_LOG_HZ * (log_step * (mel - min_log_mel)).exp()
        } else {
            mel * F_SP
        }
    };
    let nyquist = f64::from(sample_rate) / 2.0;
    let top = hz_to_mel(nyquist);
    let edges: Vec<f64> = (0..mel_bins + 2)
        .map(|i| mel_to_hz(top * i as f64 / (mel_bins + 1) as f64))
        .collect();
    let mut filters = vec![0f32; mel_bins * BINS];
    for bin in 0..mel_bins {
        let (low, centre, high) = (edges[bin], edges[bin + 1], edges[bin + 2]);
        let area = 2.0 / (high - low);
        for k in 0..BINS {
            let hz = k as f64 * f64::from(sample_rate) / N_FFT as f64;
            let rising = (hz - low) / (centre - low);
            let falling = (high - hz) / (high - centre);
            filters[bin * BINS + k] = (rising.min(falling).max(0.0) * area) as f32;
        }
    }
    filters
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_bank_matches_whispers_mel_filters_npz() {
        // Values read from openai-whisper 20250625's whisper/assets/mel_filters.npz, mel_80
        // (librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)), float32.
        let filters = slaney_mel_filters(80, 16_000);
        let at = |row: usize, bin: usize| filters[row * BINS + bin];
        assert!((at(0, 1) - 0.024_862_595).abs() < 1e-7, "{}", at(0, 1));
        assert_eq!((at(0, 0), at(0, 2)), (0.0, 0.0));
        let peak = |row: usize| {
            (0..BINS)
                .max_by(|&a, &b| at(row, a).total_cmp(&at(row, b)))
                .unwrap()
        };
        assert_eq!(peak(25), 24);
        assert!((at(25, 24) - 0.020_874_01).abs() < 1e-7, "{}", at(25, 24));
        assert_eq!(peak(79), 192);
        assert!(
            (at(79, 192) - 0.003_164_711_9).abs() < 1e-8,
            "{}",
            at(79, 192)
        );
    }

    #[test]
    fn weighing_only_a_filters_bins_and_skipping_silent_windows_changes_no_bit() {
        let sparse = MelSpectrogram::new(80, 16_000);
        let mut dense = MelSpectrogram::new(80, 16_000);
        dense.weighted = vec![0..BINS; 80];
        assert!(sparse.weighted.iter().all(|bins| bins.len() < BINS / 4));
        // A second of a rising tone, then Whisper's padding of silence.
        let mut samples: Vec<f32> = (0..16_000)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                0.3 * (2.0 * std::f32::consts::PI * (200.0 + 1500.0 * t) * t).sin()
            })
            .collect();
        samples.resize(64_000, 0.0);
        let (fast, full) = (sparse.compute(&samples), dense.compute(&samples));
        let bits = |mel: &[f32]| mel.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&fast), bits(&full));
        // A window wholly in the silence is what no power gives: log10 of the floor, 1e-10,
        // clamped to 8 below the loudest and scaled.
        let frames = samples.len() / HOP;
        let loudest = (0..80 * frames)
            .map(|i| fast[i] * 4.0 - 4.0)
            .fold(f32::NEG_INFINITY, f32::max);
        let silent = ((-10f32).max(loudest - 8.0) + 4.0) / 4.0;
        let last = frames - 1;
        assert!((0..80).all(|bin| (fast[bin * frames + last] - silent).abs() < 1e-6));
    }

    #[test]
    fn a_tone_lights_the_mel_bin_of_its_frequency() {
        let mel = MelSpectrogram::new(80, 16_000);
        let tone: Vec<f32> = (0..16_000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin())
            .collect();
        let out = mel.compute(&tone);
        let frames = tone.len() / HOP;
        assert_eq!(out.len(), 80 * frames);
        let frame = frames / 2;
        let loudest = (0..80)
            .max_by(|&a, &b| out[a * frames + frame].total_cmp(&out[b * frames + frame]))
            .unwrap();
        // 1000 Hz is mel 15 on the Slaney scale; with 80 bins up to 8 kHz (mel 45.2) the
        // triangle centred nearest is bin 15 * 81 / 45.245 - 1 ≈ 25.9.
        assert!((25..=27).contains(&loudest), "{loudest}");
        assert!(out.iter().all(|v| v.is_finite()));
    }
}
