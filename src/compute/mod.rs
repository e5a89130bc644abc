//! Process-wide compute settings and measurements shared by the stages.

pub mod attention;
pub(crate) mod on_cpu;
pub mod tap_sum;

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

/// The matrix-multiply kernels tract chose for a model's products (e.g.
/// `arm64simd_mmm_f32_16x4_a55` on arm64, `fma_mmm_f32_16x6` on x86-64):
/// which of its CPU-specific kernels actually run on this machine.
pub fn matmul_kernels(
    model: &tract_onnx::prelude::TypedModel,
) -> std::collections::BTreeSet<String> {
    use tract_onnx::tract_core::ops::matmul::optimized::OptMatMul;
    model
        .nodes()
        .iter()
        .filter_map(|node| node.op_as::<OptMatMul>())
        .flat_map(|op| op.mmm.iter().map(|mmm| mmm.name().to_owned()))
        .collect()
}

/// Threads tract's kernels use (see [`set_compute_threads`]).
pub(crate) fn compute_threads() -> usize {
    COMPUTE_THREADS.load(Ordering::Relaxed)
}

/// An executor of `threads` threads for [`tract_linalg::multithread::multithread_tract_scope`].
pub(crate) fn executor(threads: usize) -> tract_linalg::multithread::Executor {
    use tract_linalg::multithread::Executor;
    if threads <= 1 {
        Executor::SingleThread
    } else {
        Executor::multithread(threads)
    }
}

/// Sets glibc's allocator to keep freed memory for the next allocation
/// instead of handing it back to the kernel at once. Every tract run
/// allocates its intermediate tensors afresh (the voice decoder's are 1–10
/// MB each); with glibc's defaults most were fresh `mmap`s, zeroed page by
/// page by the kernel on first touch and unmapped again when freed, which
/// cost about 12 % of a sentence's synthesis (`vivid bench tts`: 0.133 →
/// 0.119 real-time factor on one thread). Allocations up to 32 MiB now come
/// from the heap, and up to 256 MiB of free heap stays mapped between runs;
/// [`release_freed_memory`] gives it back when the work is done. Call once,
/// at start-up, before other threads run.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use nix::libc::{M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, mallopt};
        // SAFETY: FFI into glibc; mallopt only changes allocator parameters
        // and is called before any other thread allocates.
        let set = unsafe {
            mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 256 << 20) == 1
        };
        if !set {
            tracing::debug!("glibc refused the allocator settings; keeping its defaults");
        }
    }
}

/// Hands free heap memory back to the kernel, for an idle service between
/// jobs (see [`keep_freed_memory`]).
pub(crate) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: FFI into glibc; malloc_trim only returns unused pages.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// Runs `plan` node by node and adds each node's time to `times` under
/// its op's name (the `--profile` of `vivid bench tts` and `background`).
pub(crate) fn run_timed(
    plan: &std::sync::Arc<tract_onnx::prelude::TypedRunnableModel>,
    inputs: tract_onnx::prelude::TVec<tract_onnx::prelude::TValue>,
    times: &mut std::collections::HashMap<String, f64>,
) -> tract_onnx::prelude::TractResult<tract_onnx::prelude::TVec<tract_onnx::prelude::TValue>> {
    let mut state = plan.spawn()?;
    state.run_plan_with_eval(inputs, |session, op_state, node, input| {
        let started = std::time::Instant::now();
        let result = tract_onnx::tract_core::plan::eval(session, op_state, node, input);
        *times.entry(node.op.name().to_string()).or_default() += started.elapsed().as_secs_f64();
        result
    })
}

/// tract's thread pool for the current run (see [`set_compute_threads`]
/// and [`executor`]), when it has more than one thread: vivid's own ops
/// spread their work over it as tract's kernels do.
pub(crate) fn tract_thread_pool() -> Option<std::sync::Arc<rayon::ThreadPool>> {
    match tract_linalg::multithread::current_tract_executor() {
        tract_linalg::multithread::Executor::MultiThread(pool) => {
            Some(pool).filter(|pool| pool.current_num_threads() > 1)
        }
        _ => None,
    }
}

/// Runs `work` on every item: on `pool`'s threads when there is one and
/// more than one item, else here, in order.
pub(crate) fn run_items<T: Send>(
    pool: Option<&rayon::ThreadPool>,
    items: Vec<T>,
    work: impl Fn(T) -> tract_onnx::prelude::TractResult<()> + Sync + Send,
) -> tract_onnx::prelude::TractResult<()> {
    match pool {
        Some(pool) if items.len() > 1 => {
            use rayon::prelude::*;
            pool.install(|| items.into_par_iter().try_for_each(work))
        }
        _ => items.into_iter().try_for_each(work),
    }
}

/// `view` cut into blocks of `rows` rows (the last may have fewer), each
/// with the index of its first row: disjoint work items for [`run_items`].
pub(crate) fn row_blocks<'a>(
    mut view: tract_onnx::prelude::tract_ndarray::ArrayViewMut2<'a, f32>,
    rows: usize,
) -> Vec<(
    usize,
    tract_onnx::prelude::tract_ndarray::ArrayViewMut2<'a, f32>,
)> {
    use tract_onnx::prelude::tract_ndarray::Axis;
    let mut blocks = Vec::new();
    let mut first = 0;
    while view.nrows() > 0 {
        let take = rows.max(1).min(view.nrows());
        let (block, rest) = view.split_at(Axis(0), take);
        blocks.push((first, block));
        first += take;
        view = rest;
    }
    blocks
}

/// Cores this process may run on.
pub(crate) fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Peak resident memory of this process so far, in KiB (`VmHWM`; the
/// rusage figure would include a parent's peak across exec).
pub(crate) fn peak_rss_kb() -> u64 {
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
