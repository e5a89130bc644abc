//! Process-wide compute settings and measurements shared by the stages.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Threads tract's kernels use, as last set.
static COMPUTE_THREADS: AtomicUsize = AtomicUsize::new(1);

/// Sets how many threads tract's kernels use; 0 means one per core.
pub fn set_compute_threads(threads: usize) {
    use tract_linalg::multithread::{Executor, set_default_executor};
    let threads = if threads == 0 {
        available_cores()
    } else {
        threads
    };
    COMPUTE_THREADS.store(threads.max(1), Ordering::Relaxed);
    if threads <= 1 {
        set_default_executor(Executor::SingleThread);
    } else {
        set_default_executor(Executor::multithread(threads));
    }
}

/// Threads tract's kernels use (see [`set_compute_threads`]).
pub fn compute_threads() -> usize {
    COMPUTE_THREADS.load(Ordering::Relaxed)
}

/// An executor of `threads` threads for [`tract_linalg::multithread::multithread_tract_scope`].
pub fn executor(threads: usize) -> tract_linalg::multithread::Executor {
    use tract_linalg::multithread::Executor;
    if threads <= 1 {
        Executor::SingleThread
    } else {
        Executor::multithread(threads)
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
