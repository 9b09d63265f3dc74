//! What Linux's `/proc` says about a running child: its memory and its CPU
//! time. Read while the child lives, so each figure is that one process's.
//!
//! `VmHWM` (the peak resident set) is only updated lazily by the kernel:
//! memory the allocator hands back with `madvise` never raises it. So a
//! peak is the larger of `VmHWM` and the highest `VmRSS` an [`RssSampler`]
//! saw while the work ran.

use std::io::BufRead;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often an [`RssSampler`] reads `VmRSS`.
const SAMPLE_EVERY: Duration = Duration::from_millis(2);

/// A numeric field of `/proc/<pid>/status` (memory fields are in kB).
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let file = std::fs::File::open(format!("/proc/{pid}/status")).ok()?;
    for line in std::io::BufReader::new(file).lines() {
        let line = line.ok()?;
        if let Some(rest) = line.strip_prefix(field) {
            let rest = rest.strip_prefix(':')?;
            return rest.split_whitespace().next()?.parse().ok();
        }
    }
    None
}

/// CPU time of a process's live threads, in ns, from
/// `/proc/<pid>/task/*/schedstat` (first field: time on a CPU).
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread may end between the listing and the read.
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Samples `VmRSS` of a process every 2 ms on a thread of its own.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<u64>>,
}

impl RssSampler {
    pub fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Some(kb) = status_kb(pid, "VmRSS") {
                    samples.push(kb);
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
            samples
        });
        Self { stop, thread }
    }

    /// Stops sampling; the samples in kB, in order.
    pub fn finish(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// The peak resident set of a process so far, in kB: the larger of its
/// `VmHWM` and the highest of `samples`. `None` when `/proc` cannot be read.
pub fn peak_kb(pid: u32, samples: &[u64]) -> Option<u64> {
    let sampled = samples.iter().copied().max().unwrap_or(0);
    Some(status_kb(pid, "VmHWM")?.max(sampled))
}
