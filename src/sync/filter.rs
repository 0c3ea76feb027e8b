//! `--include` / `--exclude` glob filters, applied to keys relative to the
//! transfer root (always `/`-separated). A pattern without `/` matches the
//! last segment at any depth (`*.tmp`); a pattern with `/` matches the whole
//! relative path (`build/**`); `**` crosses directories. A pattern ending in
//! `/` names directories only, and an excluded directory is pruned from the
//! walk instead of being read and filtered file by file.
//!
//! A file is taken when it matches no exclude and, if any include is given,
//! matches an include.
//!
//! `--files-from` narrows further to the keys a list names: a key filter
//! like the globs, so it applies to both sides alike and a key left out
//! is never deleted; a directory holding no listed key is pruned, and an
//! upload stats the listed files instead of walking (`walk`).

use std::collections::BTreeSet;
use std::sync::Arc;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

#[derive(Debug, Clone, Default)]
pub struct Filter {
    include: Option<Matcher>,
    exclude: Option<Matcher>,
    /// Directory-only excludes (patterns that ended with `/`) and plain
    /// excludes both prune directories.
    exclude_dirs: Option<Matcher>,
    /// `--files-from`: only these keys.
    listed: Option<Arc<BTreeSet<String>>>,
}

#[derive(Debug, Clone)]
struct Matcher {
    by_name: GlobSet,
    by_path: GlobSet,
}

impl Matcher {
    fn matches(&self, rel: &str) -> bool {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        self.by_name.is_match(name) || self.by_path.is_match(rel)
    }
}

fn glob(p: &str) -> Result<Glob, String> {
    GlobBuilder::new(p)
        .literal_separator(true)
        .build()
        .map_err(|e| format!("bad pattern '{p}': {e}"))
}

fn build<'a>(patterns: impl Iterator<Item = &'a str>) -> Result<Option<Matcher>, String> {
    let mut by_name = GlobSetBuilder::new();
    let mut by_path = GlobSetBuilder::new();
    let mut any = false;
    for p in patterns {
        any = true;
        let p = p.trim_start_matches("./");
        if p.contains('/') {
            by_path.add(glob(p.trim_start_matches('/'))?);
        } else {
            by_name.add(glob(p)?);
        }
    }
    if !any {
        return Ok(None);
    }
    Ok(Some(Matcher {
        by_name: by_name.build().map_err(|e| e.to_string())?,
        by_path: by_path.build().map_err(|e| e.to_string())?,
    }))
}

impl Filter {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Filter, String> {
        let files_excl = exclude
            .iter()
            .filter(|p| !p.ends_with('/'))
            .map(String::as_str);
        let dirs_excl = exclude.iter().map(|p| p.trim_end_matches('/'));
        Ok(Filter {
            include: build(include.iter().map(String::as_str))?,
            exclude: build(files_excl)?,
            exclude_dirs: build(dirs_excl)?,
            listed: None,
        })
    }

    /// Only the keys in `listed` (from [`read_files_from`]).
    pub fn only(mut self, listed: BTreeSet<String>) -> Filter {
        self.listed = Some(Arc::new(listed));
        self
    }

    /// The `--files-from` keys, in key order.
    pub fn listed(&self) -> Option<&BTreeSet<String>> {
        self.listed.as_deref()
    }

    pub fn is_empty(&self) -> bool {
        self.include.is_none() && self.exclude.is_none() && self.listed.is_none()
    }

    /// Whether a file (by relative key) is transferred.
    pub fn file(&self, rel: &str) -> bool {
        if self.listed.as_ref().is_some_and(|l| !l.contains(rel)) {
            return false;
        }
        if let Some(ex) = &self.exclude {
            if ex.matches(rel) {
                return false;
            }
        }
        if self.dir_excluded_on_path(rel) {
            return false;
        }
        match &self.include {
            Some(inc) => inc.matches(rel),
            None => true,
        }
    }

    /// Whether a directory (by relative path) is pruned from the walk.
    pub fn prune_dir(&self, rel: &str) -> bool {
        if let Some(l) = &self.listed {
            let under = format!("{rel}/");
            if !l
                .range(under.clone()..)
                .next()
                .is_some_and(|k| k.starts_with(&under))
            {
                return true;
            }
        }
        self.exclude_dirs.as_ref().is_some_and(|m| m.matches(rel))
    }

    /// A remote key has no walk to prune, so check each ancestor directory.
    fn dir_excluded_on_path(&self, rel: &str) -> bool {
        let Some(m) = &self.exclude_dirs else {
            return false;
        };
        let mut end = 0;
        while let Some(i) = rel[end..].find('/') {
            end += i;
            if m.matches(&rel[..end]) {
                return true;
            }
            end += 1;
        }
        false
    }
}

/// The lines of a rule file (`--include-from`, `--exclude-from`): one
/// pattern per line; blank lines and lines starting with `#` are skipped.
pub fn read_rules(path: &std::path::Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// `--files-from`: one relative path per line (blank lines and `#`
/// comments skipped, a leading `./` dropped); a path that could leave the
/// root is refused with its line number.
pub fn read_files_from(path: &std::path::Path) -> Result<BTreeSet<String>, String> {
    let mut keys = BTreeSet::new();
    for (n, line) in read_rules(path)?.iter().enumerate() {
        let key = line.trim().trim_start_matches("./").trim_start_matches('/');
        if key.split('/').any(|s| s == ".." || s == ".") || key.contains("//") {
            return Err(format!(
                "{}: line {}: '{line}' is not a plain relative path",
                path.display(),
                n + 1
            ));
        }
        if !key.is_empty() {
            keys.insert(key.to_string());
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(inc: &[&str], exc: &[&str]) -> Filter {
        Filter::new(
            &inc.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            &exc.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    #[test]
    fn names_paths_and_double_star() {
        let x = f(&[], &["*.tmp", "build/**", "node_modules/"]);
        assert!(!x.file("a.tmp"));
        assert!(!x.file("deep/er/a.tmp"));
        assert!(x.file("a.txt"));
        assert!(!x.file("build/out/x.o"));
        assert!(x.file("src/build/x.o"), "path patterns are anchored");
        assert!(x.prune_dir("node_modules"));
        assert!(x.prune_dir("web/node_modules"));
        assert!(
            !x.file("web/node_modules/pkg/index.js"),
            "remote keys under a pruned dir"
        );
        assert!(x.file("node_modules.txt"));
    }

    #[test]
    fn includes_whitelist() {
        let x = f(&["*.jpg", "docs/**"], &["secret*"]);
        assert!(x.file("a/b.jpg"));
        assert!(x.file("docs/readme.md"));
        assert!(!x.file("a/b.png"));
        assert!(!x.file("secret.jpg"));
        assert!(!x.prune_dir("a"), "includes never prune directories");
    }

    #[test]
    fn a_files_from_list_takes_its_keys_and_prunes_other_directories() {
        let listed: BTreeSet<String> = ["a/b/c.txt", "top"].iter().map(|s| s.to_string()).collect();
        let x = f(&[], &["*.tmp"]).only(listed);
        assert!(x.file("a/b/c.txt") && x.file("top"));
        assert!(!x.file("a/b/d.txt") && !x.file("top2"));
        assert!(!x.prune_dir("a") && !x.prune_dir("a/b"));
        assert!(x.prune_dir("a/bb") && x.prune_dir("z"));
        assert!(!x.is_empty());

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("list");
        std::fs::write(&p, "# photos\n./a/b/c.txt\n\n/top\n").unwrap();
        assert_eq!(read_files_from(&p).unwrap().len(), 2);
        std::fs::write(&p, "ok\n../etc/passwd\n").unwrap();
        assert!(read_files_from(&p).unwrap_err().contains("line 2"));
    }

    #[test]
    fn single_star_stays_in_a_segment() {
        let x = f(&[], &["logs/*.log"]);
        assert!(!x.file("logs/a.log"));
        assert!(x.file("logs/old/a.log"));
        assert!(Filter::new(&[], &["[".into()]).is_err());
    }
}
