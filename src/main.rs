fn main() -> std::process::ExitCode {
    tune_allocator();
    exapp_janitor::cli::main()
}

/// glibc's allocator, left alone, keeps the peak of every scan and every
/// response for good: an arena per thread, and a threshold for returning
/// large blocks to the system that rises with each one freed. Two arenas and
/// a fixed 128 KiB threshold keep the server's RSS near what it holds
/// (BENCHMARKS.md, load). MALLOC_ARENA_MAX / MALLOC_MMAP_THRESHOLD_ in the
/// environment still win.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let unset = |name: &str| std::env::var_os(name).is_none();
        // SAFETY: mallopt only sets allocator parameters; no other thread
        // runs yet.
        unsafe {
            if unset("MALLOC_ARENA_MAX") {
                libc::mallopt(libc::M_ARENA_MAX, 2);
            }
            if unset("MALLOC_MMAP_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
            }
        }
    }
}
