use candle_core::{DType, Device, Tensor};
use std::time::Instant;
fn main() {
    let d = Device::Cpu;
    let shapes: &[(usize, usize, usize, &str)] = &[
        (1500, 384, 384, "whisper qkv"),
        (1500, 1536, 384, "whisper fc1"),
        (1500, 384, 1536, "whisper fc2"),
        (256, 1500, 64, "whisper scores blk"),
        (256, 64, 1500, "whisper pv blk"),
        (1024, 768, 768, "siglip qkv"),
        (1024, 3072, 768, "siglip fc1"),
        (1024, 768, 3072, "siglip fc2"),
    ];
    for &(m, n, k, name) in shapes {
        let a = Tensor::randn(0f32, 1., (1, m, k), &d).unwrap();
        let w = Tensor::randn(0f32, 1., (n, k), &d).unwrap();
        let lin = candle_nn::Linear::new(w.clone(), None);
        use candle_core::Module;
        let _ = lin.forward(&a).unwrap();
        let mut best = f64::MAX;
        for _ in 0..7 {
            let t = Instant::now();
            let _ = lin.forward(&a).unwrap();
            best = best.min(t.elapsed().as_secs_f64());
        }
        let gf = 2.0 * (m * n * k) as f64 / best / 1e9;
        println!(
            "{name:20} {m}x{n}x{k}: {:.2} ms {gf:.1} GFLOP/s",
            best * 1e3
        );
    }
    let _ = DType::F32;
}
