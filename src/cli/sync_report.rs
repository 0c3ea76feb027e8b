//! How a recursive copy reports: an overall bar on a terminal, one line per
//! failure or skipped item, `--dry-run` plan lines, `--json` events, and a
//! final summary.

use super::escape::visible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use super::progress::Reporter;
use crate::sync::{cost, Event, Observer, Summary};
use crate::transfer::Progress;
use crate::units::human;

/// Files at least this large get a bar of their own.
const BAR_MIN: u64 = 16 * 1024 * 1024;

pub struct SyncReport {
    reporter: Arc<Reporter>,
    /// Running totals over every pass (watch mode makes many).
    totals: Mutex<Summary>,
    json: bool,
    overall: Mutex<Option<ProgressBar>>,
    files: AtomicU64,
    bytes: AtomicU64,
    /// `--dry-run`: the planned actions priced, and the LISTs and HEADs
    /// the preview itself sent (the real run sends them too).
    cost: Mutex<Option<(cost::Rules, cost::Tally)>>,
    sent: Mutex<(u64, u64)>,
}

impl SyncReport {
    pub fn new(reporter: Arc<Reporter>, json: bool) -> Self {
        let overall = (!json).then(|| reporter.bar(0)).flatten();
        if let Some(b) = &overall {
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg} {bytes_per_sec:>12} elapsed {elapsed}",
                )
                .expect("static template"),
            );
            b.enable_steady_tick(std::time::Duration::from_millis(200));
        }
        SyncReport {
            reporter,
            totals: Mutex::new(Summary::default()),
            json,
            overall: Mutex::new(overall),
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            cost: Mutex::new(None),
            sent: Mutex::new((0, 0)),
        }
    }

    /// Prices what the run plans (a dry run) by `rules`.
    pub fn price(&self, rules: cost::Rules) {
        *self.cost.lock().unwrap() = Some((rules, cost::Tally::default()));
    }

    /// The LISTs and HEADs the dry run sent, counted by the stores.
    pub fn sent_by_preview(&self, lists: u64, heads: u64) {
        *self.sent.lock().unwrap() = (lists, heads);
    }

    fn cost(&self) -> Option<cost::Cost> {
        let guard = self.cost.lock().unwrap();
        let (rules, tally) = guard.as_ref()?;
        let mut c = tally.total(rules);
        let (lists, heads) = *self.sent.lock().unwrap();
        c.list += lists;
        c.head += heads;
        Some(c)
    }

    fn tick(&self) {
        if let Some(b) = self.overall.lock().unwrap().as_ref() {
            b.set_message(format!(
                "{} files, {} transferred",
                self.files.load(Ordering::Relaxed),
                human(self.bytes.load(Ordering::Relaxed))
            ));
        }
    }

    pub fn finish(&self, verb: &str, s: &Summary, started: Instant) {
        if let Some(b) = self.overall.lock().unwrap().take() {
            b.finish_and_clear();
        }
        let secs = started.elapsed().as_secs_f64();
        if self.json {
            let mut v = serde_json::to_value(s).unwrap_or_default();
            v["event"] = "summary".into();
            v["seconds"] = secs.into();
            if let Some(c) = self.cost() {
                v["cost"] = serde_json::to_value(c).unwrap_or_default();
            }
            println!("{v}");
            return;
        }
        let mut line = format!(
            "{verb} {} files ({}) in {secs:.1}s, {}/s; {} up to date or skipped",
            s.transferred,
            human(s.bytes),
            human((s.bytes as f64 / secs.max(0.001)) as u64),
            s.skipped
        );
        if s.resumed_bytes > 0 {
            line.push_str(&format!(
                "; {} resumed from earlier runs",
                human(s.resumed_bytes)
            ));
        }
        if s.deleted > 0 {
            line.push_str(&format!("; {} deleted", s.deleted));
        }
        if s.backed_up > 0 {
            line.push_str(&format!("; {} backed up first", s.backed_up));
        }
        if s.failed > 0 {
            line.push_str(&format!("; {} FAILED", s.failed));
        }
        if s.interrupted {
            line.push_str("; interrupted (run the same command again to continue)");
        }
        self.reporter.say(&line);
        if let Some(c) = self.cost() {
            self.reporter.say(&format!("the run would send: {c}"));
        }
    }
}

impl SyncReport {
    pub fn total(&self) -> Summary {
        self.totals.lock().unwrap().clone()
    }
}

impl crate::watch::WatchObserver for SyncReport {
    fn pass_done(&self, full: bool, s: &Summary) {
        if s.transferred + s.deleted + s.failed > 0 && !self.json {
            self.reporter.say(&format!(
                "ferry: {} sent {} files ({}), deleted {}, {} failed",
                if full { "full pass" } else { "changes" },
                s.transferred,
                human(s.bytes),
                s.deleted,
                s.failed
            ));
        }
    }

    fn note(&self, msg: &str) {
        self.reporter.say(&format!("ferry: {msg}"));
    }
}

impl Observer for SyncReport {
    fn event(&self, e: &Event) {
        self.totals.lock().unwrap().add(e);
        if let Event::Planned { action, size, .. } = e {
            if let Some((rules, tally)) = self.cost.lock().unwrap().as_mut() {
                tally.add(action, *size, rules);
            }
        }
        if self.json {
            if let Ok(s) = serde_json::to_string(e) {
                println!("{s}");
            }
            return;
        }
        match e {
            Event::Transferred { bytes, .. } => {
                self.files.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(*bytes, Ordering::Relaxed);
                self.tick();
            }
            Event::Planned {
                action,
                key,
                reason,
                ..
            } => {
                println!("would {action} {} ({})", visible(key), reason.describe());
            }
            Event::Skipped { .. } | Event::Deleted { .. } | Event::BackedUp { .. } => {}
            Event::Warning { path, message } => self
                .reporter
                .say(&format!("ferry: skipping {path}: {message}")),
            Event::DeletesWithheld { reason, .. } => self.reporter.error(reason),
            Event::Failed {
                key, op, message, ..
            } => self.reporter.error(&format!("{op} {key}: {message}")),
        }
    }

    fn progress(&self, size: u64) -> Arc<dyn Progress> {
        self.reporter.transfer(!self.json && size >= BAR_MIN)
    }
}
