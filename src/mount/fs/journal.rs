//! The journal at mount and unmount: finishing an earlier mount's
//! uploads, flushing before exit.

use std::sync::Arc;

use super::*;

impl MountFs {
    fn spawn_background(self: &Arc<Self>, ino: Option<Ino>, s: Arc<Staged>, what: &'static str) {
        self.background.enter();
        let me = self.clone();
        tokio::spawn(async move {
            let key = s.meta().key;
            match me.upload_staged(&s).await {
                Ok(Some((plan, out))) => {
                    if let Some(ino) = ino {
                        me.uploaded(ino, &s, &plan, &out);
                    }
                    (me.notify)(&format!(
                        "{what} {} ({} sent, {} were already on the server)",
                        plan.key,
                        crate::units::human(out.bytes_sent),
                        crate::units::human(out.bytes_resumed)
                    ));
                }
                Ok(None) => {}
                Err(e) => (me.notify)(&format!(
                    "could not upload {key}: {e}; the data stays in the cache dir and is retried on the next mount"
                )),
            }
            me.background.leave();
        });
    }

    /// Scans the journal of an earlier mount with the same cache dir:
    /// finished-but-not-uploaded files are uploaded in the background
    /// (resuming multipart uploads) and visible at once; files that were
    /// never closed are set aside.
    pub fn recover(self: &Arc<Self>) -> RecoveryReport {
        let mut report = RecoveryReport::default();
        let (found, problems) = self.journal.scan();
        report.problems = problems;
        for p in found {
            let m = &p.manifest;
            if m.state == EntryState::Writing {
                match self.journal.set_aside(&p) {
                    Ok(path) => report.set_aside.push((m.key.clone(), path)),
                    Err(e) => report
                        .problems
                        .push(format!("{}: cannot set aside: {e}", m.key)),
                }
                continue;
            }
            if m.endpoint != self.cfg.transfer.endpoint_id || m.bucket != self.cfg.bucket {
                report
                    .foreign
                    .push(format!("{} {}/{}", m.endpoint, m.bucket, m.key));
                continue;
            }
            let s = match self.journal.recovered(&p) {
                Ok(s) => s,
                Err(e) => {
                    report.problems.push(format!("{}: {e}", m.key));
                    continue;
                }
            };
            // The names it was renamed away from stay hidden until its
            // upload deletes them.
            self.doom_held(&m.supersedes);
            let ino = self.attach(&m.key, &s);
            report.resumed.push((m.key.clone(), s.meta().size));
            self.spawn_background(ino, s, "finished the interrupted upload of");
        }
        report
    }

    /// Makes a recovered file visible at its path (creating directory
    /// nodes on the way), if it lies under the mount's prefix.
    fn attach(&self, key: &str, s: &Arc<Staged>) -> Option<Ino> {
        let rel = key.strip_prefix(&self.cfg.prefix)?;
        let (dirs, file) = split_relative(rel)?;
        let mut t = self.tree();
        let mut cur = ROOT;
        for d in dirs {
            cur = t.ensure_child(cur, d, Kind::Dir);
        }
        let ino = t.ensure_child(cur, file, Kind::File);
        t.get_mut(ino)?.staged = Some(s.clone());
        Some(ino)
    }

    /// Unmount: waits for background uploads and retries files whose
    /// upload failed, until the deadline.
    pub async fn shutdown(self: &Arc<Self>, timeout: Duration) -> ShutdownReport {
        let retry: Vec<(Ino, Arc<Staged>)> = {
            let t = self.tree();
            t.staged_nodes()
                .into_iter()
                .filter(|(i, s)| s.meta().dirty() && t.get(*i).is_some_and(|n| n.handles == 0))
                .collect()
        };
        for (ino, s) in retry {
            // A running recovery upload holds `commit`; this one then finds
            // nothing left to do.
            self.spawn_background(Some(ino), s, "uploaded");
        }
        let deadline = Instant::now() + timeout;
        let mut rx = self.background.count.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|n| *n == 0)).await;
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(still) = tokio::time::timeout(left, self.retry_leftovers()).await {
            for key in still {
                (self.notify)(&format!(
                    "could not delete {key}, the old name of a file renamed through this mount; the data is under its new name, and both names exist in the bucket"
                ));
            }
        }
        let t = self.tree();
        let mut unflushed: Vec<String> = t
            .staged_nodes()
            .into_iter()
            .filter(|(_, s)| s.meta().dirty())
            .map(|(_, s)| s.meta().key)
            .collect();
        unflushed.sort();
        ShutdownReport { unflushed }
    }

    /// Uploads still running in the background.
    pub fn background_uploads(&self) -> usize {
        *self.background.count.borrow()
    }
}
