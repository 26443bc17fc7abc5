//! How the engine's process keeps memory that a model's step frees. A window of Whisper or a
//! batch of embeddings allocates and frees tensors of megabytes, again and again. glibc's malloc
//! serves anything above its (dynamic, at first 128 KiB) mmap threshold with a fresh mapping
//! and hands freed memory above its trim threshold straight back to the kernel, so every such
//! tensor cost page faults and zeroing: measured, a third of Whisper tiny's time per window.
//! The engine raises both thresholds while it works and gives the memory back itself when it
//! unloads idle models, and once an ONNX model is loaded (its parse's leftovers).

/// The largest block served from the heap (mallopt's ceiling on 64-bit: 32 MiB).
#[cfg(target_env = "gnu")]
const MMAP_THRESHOLD: libc::c_int = 32 << 20;
/// Free memory at the heap's top kept for the next step rather than returned at once.
#[cfg(target_env = "gnu")]
const TRIM_THRESHOLD: libc::c_int = 64 << 20;

/// Raises malloc's mmap and trim thresholds for this process. Call it early in `main` (it
/// holds for the allocations made after it). Elsewhere than glibc it does nothing.
pub fn reuse_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets malloc's parameters, under malloc's own lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Returns the freed memory malloc keeps to the kernel (after models were loaded or unloaded).
pub(crate) fn return_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim releases free pages under malloc's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
