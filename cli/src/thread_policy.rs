//! Scheduling policies for the threads of `sekai serve` (Linux; elsewhere nothing changes).
//!
//! A hand-off between two threads of the server (a T1 batch's answers to the sessions, a fan-out
//! pass's pushes, a commit's reply to its processor) wakes the receiving thread. On a busy core
//! the woken thread preempted the sender at once: one context switch per message, the sender
//! resuming only to hand over the next one. [`ThreadPolicy::Batch`] makes the server's threads
//! `SCHED_BATCH`: a woken batch thread does not preempt the running one, so the sender finishes
//! its burst and the receiver takes the whole of it in one run. The store's background threads
//! (fjall's flushes and compactions, named `fjall:*`) become `SCHED_IDLE`: any server thread that
//! wakes preempts them (batch threads cannot preempt a normal one, so a flush would otherwise
//! hold every hand-off behind it), and they run on the core's idle time. If they fall far behind
//! under sustained overload, fjall halts writes (4 sealed memtables), which idles the core for
//! them.
//!
//! Invariants: only threads of this process are changed, and only to policies an unprivileged
//! process may take; a thread the kernel refuses is logged and left as it was; threads started
//! later inherit the policy of the thread that starts them.

/// How `sekai serve` schedules its threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ThreadPolicy {
    /// Server threads `SCHED_BATCH`, the store's background threads `SCHED_IDLE` (see the
    /// module docs).
    #[default]
    Batch,
    /// The operating system's default for every thread.
    Normal,
}

/// The threads changed by [`apply`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Threads made `SCHED_BATCH`.
    pub batch: usize,
    /// Threads made `SCHED_IDLE`.
    pub idle: usize,
}

/// Applies `policy` to every thread of this process now (call it once the server has started
/// its threads).
pub fn apply(policy: ThreadPolicy) -> Applied {
    match policy {
        ThreadPolicy::Normal => Applied::default(),
        ThreadPolicy::Batch => apply_batch(),
    }
}

#[cfg(target_os = "linux")]
fn apply_batch() -> Applied {
    let mut applied = Applied::default();
    let tasks = match std::fs::read_dir("/proc/self/task") {
        Ok(tasks) => tasks,
        Err(error) => {
            tracing::warn!(%error, "cannot list this process's threads; scheduling unchanged");
            return applied;
        }
    };
    for task in tasks.flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<i32>().ok())
        else {
            continue;
        };
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        match set_policy(tid, name.trim()) {
            Ok(libc::SCHED_IDLE) => applied.idle += 1,
            Ok(_) => applied.batch += 1,
            Err(error) => {
                tracing::warn!(tid, name = name.trim(), %error, "cannot set the thread's policy");
            }
        }
    }
    tracing::info!(
        batch = applied.batch,
        idle = applied.idle,
        "thread policies set (SCHED_BATCH, store background SCHED_IDLE)"
    );
    applied
}

/// Gives thread `tid` of this process, named `name`, its policy; returns the policy.
#[cfg(target_os = "linux")]
fn set_policy(tid: i32, name: &str) -> std::io::Result<i32> {
    let policy = if name.starts_with("fjall") {
        libc::SCHED_IDLE
    } else {
        libc::SCHED_BATCH
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid `sched_param` for the call's duration; `tid` names a thread of
    // this process (one that ended meanwhile makes the call fail with ESRCH, nothing else).
    match unsafe { libc::sched_setscheduler(tid, policy, &param) } {
        0 => Ok(policy),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(not(target_os = "linux"))]
fn apply_batch() -> Applied {
    tracing::info!("thread policies are Linux only; scheduling unchanged");
    Applied::default()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Runs a thread named `name` until the returned sender is dropped; gives its id.
    fn parked(
        name: &str,
    ) -> (
        i32,
        std::sync::mpsc::Sender<()>,
        std::thread::JoinHandle<()>,
    ) {
        let (ready, tid) = std::sync::mpsc::channel();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                // SAFETY: gettid has no preconditions.
                ready
                    .send(unsafe { libc::gettid() })
                    .expect("report the id");
                let _ = stopped.recv();
            })
            .expect("spawn");
        (tid.recv().expect("thread id"), stop, thread)
    }

    #[test]
    fn server_threads_become_batch_and_store_threads_idle() {
        let (server, stop_server, server_thread) = parked("sekai-edge-9");
        let (store, stop_store, store_thread) = parked("fjall:worker");
        let set = (
            set_policy(server, "sekai-edge-9"),
            set_policy(store, "fjall:worker"),
        );
        // SAFETY: plain syscalls on thread ids of this process, still running.
        let got = unsafe {
            (
                libc::sched_getscheduler(server),
                libc::sched_getscheduler(store),
            )
        };
        drop((stop_server, stop_store));
        server_thread.join().expect("join");
        store_thread.join().expect("join");
        assert_eq!(set.0.ok(), Some(libc::SCHED_BATCH));
        assert_eq!(set.1.ok(), Some(libc::SCHED_IDLE));
        assert_eq!(got, (libc::SCHED_BATCH, libc::SCHED_IDLE));
        assert_eq!(apply(ThreadPolicy::Normal), Applied::default());
    }
}
