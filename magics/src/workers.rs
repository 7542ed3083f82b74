//! An order-preserving parallel map on short-lived scoped worker threads.
//!
//! Hand-written rather than rayon: planning needs one fork-join over a
//! slice, and short-lived threads also free proc-macro2's per-thread source
//! map (everything a worker lexed) when they exit.

/// Below this many inputs per worker, fewer workers are used.
const MIN_PER_WORKER: usize = 64;

/// Map `f` over `inputs` on worker threads (at least one), preserving order.
pub(crate) fn par_map<T: Sync, R: Send>(inputs: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if inputs.is_empty() {
        return Vec::new();
    }
    let cores = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(16);
    let workers = cores.min(inputs.len().div_ceil(MIN_PER_WORKER)).max(1);
    let chunk = inputs.len().div_ceil(workers);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = inputs
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn par_map_preserves_order_across_workers() {
        let inputs: Vec<usize> = (0..1000).collect();
        assert_eq!(
            par_map(&inputs, |x| x * 2),
            inputs.iter().map(|x| x * 2).collect::<Vec<_>>()
        );
        assert!(par_map(&Vec::<u8>::new(), |x| *x).is_empty());
    }
}
