//! `carapace-infer probe`: what this box has for inference and what each model does here,
//! measured, as a box reports itself when it is plugged in.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use crate::engine::{Capability, Engine};
use crate::onnx::OnnxRuntimeKind;

/// The CPU's vector extensions the kernels use, as the running CPU reports them.
fn cpu_features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut found: Vec<&'static str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        for (name, present) in [
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            (
                "avx512vnni",
                std::arch::is_x86_feature_detected!("avx512vnni"),
            ),
        ] {
            if present {
                found.push(name);
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        for (name, present) in [
            ("neon", std::arch::is_aarch64_feature_detected!("neon")),
            (
                "dotprod",
                std::arch::is_aarch64_feature_detected!("dotprod"),
            ),
            ("fp16", std::arch::is_aarch64_feature_detected!("fp16")),
        ] {
            if present {
                found.push(name);
            }
        }
    }
    found
}

/// Accelerators by the device nodes their drivers make, and whether this engine drives them.
fn accelerators(onnx_runtime: OnnxRuntimeKind) -> Vec<(&'static str, bool, &'static str)> {
    let present = |path: &str| Path::new(path).exists();
    vec![
        (
            "nvidia-gpu",
            present("/dev/nvidia0") || present("/dev/nvhost-ctrl-gpu"),
            "not driven by this build (CUDA is the engine's cuda feature)",
        ),
        (
            "intel-gpu/npu",
            present("/dev/dri/renderD128") || present("/dev/accel/accel0"),
            match onnx_runtime {
                OnnxRuntimeKind::OpenVino => {
                    "the ONNX models ask OpenVINO for the GPU (each model's line says if it got it)"
                }
                OnnxRuntimeKind::Default => {
                    "not driven by this runtime (serve --onnx-runtime openvino drives it)"
                }
            },
        ),
        ("hailo", present("/dev/hailo0"), "not driven yet (HailoRT)"),
    ]
}

/// The whole report, measuring each model that is present (loading it, one small run).
pub fn report(engine: &Engine) -> String {
    let mut out = String::new();
    let threads = engine.config().threads;
    let _ = writeln!(
        out,
        "cpu: {}, {threads} threads for inference, {}",
        std::env::consts::ARCH,
        match cpu_features().join(" ") {
            features if features.is_empty() => "no vector extensions detected".to_string(),
            features => features,
        }
    );
    for (name, present, how) in accelerators(engine.config().onnx_runtime) {
        let _ = writeln!(
            out,
            "{name}: {}",
            if present {
                format!("present, {how}")
            } else {
                "absent".to_string()
            }
        );
    }
    let _ = writeln!(out, "models in {}:", engine.config().models_dir.display());
    for status in engine.status() {
        let measured = measure(engine, &status.id, status.capability);
        let _ = writeln!(
            out,
            "  {:<24} {:<15} {}: {measured}",
            status.id,
            format!("{:?}", status.capability),
            status.device
        );
    }
    out
}

/// One small run of model `capability` on fixed input: what it was.
fn run_once(engine: &Engine, id: &str, capability: Capability) -> crate::Result<&'static str> {
    match capability {
        Capability::Embeddings => engine
            .embed(id, &["the kettle is on"])
            .map(|_| "one sentence"),
        // Ten seconds of quiet: the real-time factor of voice activity.
        Capability::VoiceActivity => engine
            .speech_segments(id, &vec![0.0; 160_000])
            .map(|_| "10 s of audio"),
        // Ten seconds of quiet: one window encoded and its first tokens decoded.
        Capability::Transcription => engine
            .transcribe(id, &vec![0.0; 160_000], &Default::default())
            .map(|_| "10 s of audio"),
        Capability::Speech => engine
            .speak(id, "The kettle is on.", 1.0)
            .map(|_| "one sentence"),
        // A blank 640 x 480 page: the detector's full pass over a photo-sized image.
        Capability::Ocr => engine
            .read_text(
                id,
                &image::RgbImage::from_pixel(640, 480, image::Rgb([255; 3])),
            )
            .map(|_| "a 640 x 480 image"),
        // A plain 512 × 512 picture: encoded, and eight tokens of answer.
        Capability::ImageDescription => engine
            .describe_image(id, &crate::vision::plain_png(512, 512), None, 8)
            .map(|_| "one picture, 8 tokens"),
    }
}

/// How long loading and one run of model `id` took, or why it cannot run.
fn measure(engine: &Engine, id: &str, capability: Capability) -> String {
    let started = Instant::now();
    let result = run_once(engine, id, capability);
    let first = started.elapsed();
    match result {
        Err(error) => format!("cannot run: {error}"),
        Ok(what) => {
            let again = Instant::now();
            let _ = run_once(engine, id, capability);
            format!(
                "{what} in {:.1} ms once loaded ({:.0} ms with loading)",
                again.elapsed().as_secs_f64() * 1e3,
                first.as_secs_f64() * 1e3
            )
        }
    }
}
