//! The XDG base directories ferry uses, resolved in one place through
//! [`Env`] so tests can point them anywhere. Each falls back to the XDG
//! default under `$HOME`; with no home at all a relative or temporary
//! directory still lets a command run.

use std::path::PathBuf;

use super::Env;

fn base(env: &dyn Env, var: &str, under_home: &str) -> Option<PathBuf> {
    env.var(var)
        .map(PathBuf::from)
        .or_else(|| env.home().map(|h| h.join(under_home)))
}

/// `$XDG_CONFIG_HOME/ferry` (`~/.config/ferry`): the config file.
pub fn config_dir(env: &dyn Env) -> Option<PathBuf> {
    base(env, "XDG_CONFIG_HOME", ".config").map(|b| b.join("ferry"))
}

/// `$XDG_CACHE_HOME/ferry` (`~/.cache/ferry`): the known-mtimes cache and
/// mount caches; losing it costs requests, never data.
pub fn cache_dir(env: &dyn Env) -> PathBuf {
    base(env, "XDG_CACHE_HOME", ".cache")
        .unwrap_or_else(std::env::temp_dir)
        .join("ferry")
}

/// `$XDG_STATE_HOME/ferry` (`~/.local/state/ferry`): job checkpoints and
/// job results.
pub fn state_dir(env: &dyn Env) -> PathBuf {
    base(env, "XDG_STATE_HOME", ".local/state")
        .unwrap_or_else(|| PathBuf::from(".ferry-state"))
        .join("ferry")
}

/// `$XDG_RUNTIME_DIR/ferry`, else `$TMPDIR/ferry-<uid>` (`/tmp/ferry-<uid>`):
/// mount pid and status files, which must not outlive a reboot. The
/// fallback sits in a directory every user can write, so the mount creates
/// it 0700 and refuses it unless it is a real directory owned by this user
/// (`mount::control::prepare_state_dir`), and never follows a link inside.
pub fn runtime_dir(env: &dyn Env) -> PathBuf {
    match env.var("XDG_RUNTIME_DIR") {
        Some(d) => PathBuf::from(d).join("ferry"),
        None => env
            .var("TMPDIR")
            .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from)
            // SAFETY: geteuid has no preconditions and cannot fail.
            .join(format!("ferry-{}", unsafe { libc::geteuid() })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn xdg_variables_win_over_home() {
        let env: HashMap<&str, &str> = [
            ("HOME", "/h"),
            ("XDG_CACHE_HOME", "/c"),
            ("XDG_RUNTIME_DIR", "/r"),
        ]
        .into();
        assert_eq!(cache_dir(&env), PathBuf::from("/c/ferry"));
        assert_eq!(state_dir(&env), PathBuf::from("/h/.local/state/ferry"));
        assert_eq!(config_dir(&env), Some(PathBuf::from("/h/.config/ferry")));
        assert_eq!(runtime_dir(&env), PathBuf::from("/r/ferry"));
    }

    #[test]
    fn the_runtime_fallback_is_per_user() {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        let none: HashMap<&str, &str> = HashMap::new();
        assert_eq!(
            runtime_dir(&none),
            PathBuf::from(format!("/tmp/ferry-{me}"))
        );
        let tmp: HashMap<&str, &str> = [("TMPDIR", "/t")].into();
        assert_eq!(runtime_dir(&tmp), PathBuf::from(format!("/t/ferry-{me}")));
    }
}
