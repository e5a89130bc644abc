//! Process-wide compute settings and measurements shared by the stages.

/// Sets how many threads tract's kernels use; 0 means one per core.
pub fn set_compute_threads(threads: usize) {
    use tract_linalg::multithread::{Executor, set_default_executor};
    let threads = if threads == 0 {
        available_cores()
    } else {
        threads
    };
    if threads <= 1 {
        set_default_executor(Executor::SingleThread);
    } else {
        set_default_executor(Executor::multithread(threads));
    }
}

/// Cores this process may run on.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Peak resident memory of this process so far, in KiB (`VmHWM`; the
/// rusage figure would include a parent's peak across exec).
pub fn peak_rss_kb() -> u64 {
    let from_status = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        });
    from_status.unwrap_or_else(|| {
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
            .map(|u| u.max_rss().max(0) as u64)
            .unwrap_or(0)
    })
}
