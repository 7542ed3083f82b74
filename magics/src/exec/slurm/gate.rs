//! [`OutputGate`]: output shown and its offsets saved as one step, so that
//! a process about to exit can stop its watchers in between two steps.

use std::sync::Mutex;

/// Shared by the watchers of one process (the kernel's, or the CLI's).
/// Each batch of output is emitted and its offsets saved through
/// [`OutputGate::pass`]; [`OutputGate::freeze`] waits for a batch in
/// progress and lets none pass after it. A kernel about to exit (restart)
/// freezes its gate, so a later `%attach` resumes exactly after the last
/// line shown: none lost, none repeated.
#[derive(Debug, Default)]
pub struct OutputGate {
    frozen: Mutex<bool>,
}

impl OutputGate {
    pub fn new() -> OutputGate {
        OutputGate::default()
    }

    /// Wait until output being emitted has its offsets saved, then stop
    /// every watcher of this gate from emitting or saving more (for good).
    pub fn freeze(&self) {
        *self.frozen.lock().unwrap_or_else(|p| p.into_inner()) = true;
    }

    pub fn is_frozen(&self) -> bool {
        *self.frozen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `step` (emit output and save its offsets) unless the gate is
    /// frozen; `None` when it is.
    pub fn pass<R>(&self, step: impl FnOnce() -> R) -> Option<R> {
        let frozen = self.frozen.lock().unwrap_or_else(|p| p.into_inner());
        if *frozen {
            return None;
        }
        let r = step();
        drop(frozen);
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn freeze_waits_for_the_step_in_progress_and_stops_the_next() {
        let gate = Arc::new(OutputGate::new());
        assert_eq!(gate.pass(|| 1), Some(1));
        let (tx, rx) = std::sync::mpsc::channel();
        let g = gate.clone();
        let step = std::thread::spawn(move || {
            g.pass(|| {
                tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(200));
                "shown and saved"
            })
        });
        rx.recv().unwrap();
        gate.freeze();
        assert_eq!(step.join().unwrap(), Some("shown and saved"));
        assert!(gate.is_frozen());
        assert_eq!(gate.pass(|| 2), None);
    }
}
