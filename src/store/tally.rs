//! Requests sent, by kind: what a `--dry-run` itself sent (its LISTs and
//! HEADs, which the real run repeats) for the cost preview. Every attempt
//! counts, as every attempt is billed.

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct RequestTally(Mutex<BTreeMap<&'static str, u64>>);

impl RequestTally {
    pub fn add(&self, op: &'static str) {
        *self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(op)
            .or_default() += 1;
    }

    /// Requests of kind `op` so far (`LIST`, `HEAD`, `PUT`…).
    pub fn get(&self, op: &str) -> u64 {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.get(op).copied().unwrap_or(0)
    }
}
