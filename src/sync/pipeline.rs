//! The streaming shape every tree sync shares: two feeds into the merge,
//! each pair through the driver's plan, jobs to the runner while the merge
//! goes on, and the delete candidates handed back for the end of the run.

use std::future::Future;

use tokio::sync::mpsc;

use super::delete_list::DeleteList;
use super::listing::{Feed, FeedRx};
use super::merge::{Keyed, MergeJoin, Step};
use super::runner::Job;
use super::SyncError;
use crate::transfer::Cancel;

/// What the driver made of one key.
#[allow(clippy::large_enum_variant)] // one per key, moved straight on
pub(crate) enum Planned<J = Job> {
    Job(J),
    /// Not in the source, and the plan says delete (the key relative to
    /// the root): kept until every transfer is done (an interrupted run
    /// deletes nothing).
    Delete(String),
    Nothing,
}

/// One side of the merge: its feed and its name for messages.
pub(crate) struct Side<T> {
    pub feed: FeedRx<T>,
    pub name: &'static str,
}

impl<T> Side<T> {
    /// The next batch; `None` once the side has ended.
    async fn next(&mut self) -> Result<Option<Vec<T>>, SyncError> {
        match self.feed.recv().await {
            Some(Feed::Batch(b)) => Ok(Some(b)),
            Some(Feed::End) => Ok(None),
            Some(Feed::Failed(e)) => Err(e),
            None => Err(SyncError::Ended(self.name)),
        }
    }
}

/// Merges `src` with `dst`, planning each key with `plan`; `drive` runs
/// the resulting jobs (`-j` at a time) as they come. Returns the delete
/// candidates, or the error that stopped the merge (jobs already planned
/// still finish).
pub(crate) async fn merge_and_run<S: Keyed, D: Keyed, J, R: Future<Output = ()>>(
    cancel: &Cancel,
    mut src: Side<S>,
    mut dst: Side<D>,
    mut plan: impl FnMut(Option<S>, Option<D>) -> Planned<J>,
    drive: impl FnOnce(mpsc::Receiver<J>) -> R,
) -> Result<DeleteList, SyncError> {
    let (job_tx, job_rx) = mpsc::channel::<J>(1024);
    let cancel = cancel.clone();
    let merger = async move {
        let mut m = MergeJoin::new();
        let mut deletes = DeleteList::default();
        while !cancel.is_cancelled() {
            let planned = match m.step() {
                Step::NeedSrc => {
                    match src.next().await? {
                        Some(b) => m.push_src(b),
                        None => m.end_src(),
                    }
                    continue;
                }
                Step::NeedDst => {
                    match dst.next().await? {
                        Some(b) => m.push_dst(b),
                        None => m.end_dst(),
                    }
                    continue;
                }
                Step::Done => break,
                Step::Unkeyed(s) => plan(Some(s), None),
                Step::Pair(s, d) => plan(s, d),
            };
            match planned {
                Planned::Job(j) => {
                    if job_tx.send(j).await.is_err() {
                        break;
                    }
                }
                Planned::Delete(x) => deletes.push(x),
                Planned::Nothing => {}
            }
        }
        Ok(deletes)
    };
    let (deletes, ()) = tokio::join!(merger, drive(job_rx));
    deletes
}
