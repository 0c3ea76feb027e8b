//! Progress on a terminal: a bar per large transfer (bytes, rate, ETA,
//! starting from what a resume skipped), notices above the bars, and
//! silence when stderr is not a terminal or with --quiet.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::escape::visible;
use crate::transfer::Progress;

pub struct Reporter {
    multi: MultiProgress,
    bars: bool,
    quiet: bool,
}

impl Reporter {
    pub fn new(quiet: bool) -> Self {
        let bars = !quiet && std::io::stderr().is_terminal();
        let multi = MultiProgress::with_draw_target(if bars {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        Reporter { multi, bars, quiet }
    }

    /// A progress sink for one transfer; `bar` asks for a bar of its own.
    pub fn transfer(self: &Arc<Self>, bar: bool) -> Arc<dyn Progress> {
        Arc::new(TransferProgress {
            reporter: self.clone(),
            want_bar: bar && self.bars,
            bar: Mutex::new(None),
        })
    }

    /// A bar managed by the caller, or `None` when bars are off.
    pub fn bar(&self, len: u64) -> Option<ProgressBar> {
        self.bars.then(|| self.multi.add(ProgressBar::new(len)))
    }

    /// A line for the user (not an error), kept clear of the bars.
    pub fn say(&self, msg: &str) {
        if self.quiet {
            return;
        }
        let msg = visible(msg);
        if self.bars {
            let _ = self.multi.println(msg);
        } else {
            eprintln!("{msg}");
        }
    }

    /// Errors are printed even with --quiet.
    pub fn error(&self, msg: &str) {
        let msg = visible(msg);
        if self.bars {
            let _ = self.multi.println(format!("ferry: error: {msg}"));
        } else {
            eprintln!("ferry: error: {msg}");
        }
    }
}

struct TransferProgress {
    reporter: Arc<Reporter>,
    want_bar: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl Progress for TransferProgress {
    fn start(&self, name: &str, total: u64, already: u64) {
        if !self.want_bar {
            return;
        }
        let bar = self.reporter.multi.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:30!} {bar:30} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} ETA {eta}",
            )
            .expect("static template"),
        );
        bar.set_message(visible(name).into_owned());
        bar.set_position(already);
        *self.bar.lock().unwrap() = Some(bar);
    }

    fn advance(&self, bytes: u64) {
        if let Some(b) = self.bar.lock().unwrap().as_ref() {
            b.inc(bytes);
        }
    }

    fn finish(&self) {
        if let Some(b) = self.bar.lock().unwrap().take() {
            b.finish_and_clear();
            self.reporter.multi.remove(&b);
        }
    }

    fn note(&self, msg: &str) {
        self.reporter.say(&format!("ferry: {msg}"));
    }
}
