//! Outputs that must not be published: two sinks writing the same file (both would report it
//! published while one output is lost), a sink writing over the file it reads, and a sink
//! writing where the source's glob reads it back on the next run, and the next, forever. The
//! loader refuses what the pipeline file shows ([`feeds_on_input`], with representative values
//! for the placeholders); [`check`] sees the resolved paths (links, `..`, the real
//! `{source_stem}`s) after every sink prepared, before anything is published.

use std::path::{Path, PathBuf};

use crate::sinks::publish;
use crate::sources::file::{glob_options, is_pattern};
use crate::stage::RunContext;
use crate::state::PreparedOutput;
use crate::state::report::FileDigest;
use crate::template::{PathTemplate, TemplateValues};

/// Where a path template writes for one output, resolved as a run resolves it: `{pipeline}`
/// and the run's time from `cx`, `stem` for `{source_stem}`. `None` for a template that does
/// not parse (reported on its own).
pub fn render(template: &str, cx: &RunContext, stem: &str) -> Option<PathBuf> {
    let template = PathTemplate::parse(template).ok()?;
    Some(cx.resolve(&template.render(&TemplateValues {
        pipeline: &cx.pipeline,
        started_at: cx.started_at,
        source_stem: Some(stem),
        part: 1,
    })))
}

/// Whether a file sink writing `template` writes over the `file` source's own input (`path`,
/// one file or a glob), or where the source's glob would read its output back, as far as the
/// pipeline file shows. `{source_stem}` stands for the stem of a file the source reads.
pub fn feeds_on_input(source: &str, template: &str, cx: &RunContext) -> bool {
    let sample = if is_pattern(source) {
        sample_match(source)
    } else {
        source.to_string()
    };
    let stem = crate::record::Origin { path: sample }.stem().to_string();
    let Some(output) = render(template, cx, &stem) else {
        return false;
    };
    if !is_pattern(source) {
        return output == cx.resolve(source);
    }
    glob::Pattern::new(&cx.resolve_pattern(source).to_string_lossy())
        .is_ok_and(|pattern| pattern.matches_path_with(&output, glob_options()))
}

/// A path the glob `pattern` matches, near enough for its stem: each wildcard becomes `x`, a
/// character class its first character.
fn sample_match(pattern: &str) -> String {
    let mut sample = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' | '?' => {
                if !sample.ends_with('x') {
                    sample.push('x');
                }
            }
            '[' => {
                let class: String = chars.by_ref().take_while(|&c| c != ']').collect();
                let first = class.trim_start_matches('!').chars().next();
                sample.push(if class.starts_with('!') {
                    '_'
                } else {
                    first.unwrap_or('x')
                });
            }
            c => sample.push(c),
        }
    }
    sample
}

/// Why the run's prepared outputs (per sink label, in order) must not be published: the label
/// of the sink at fault and the message. Two outputs that are the same file (after links and
/// `..`), an output that is a file this run read (`inputs`), or an output the source's glob
/// (`pattern`, resolved) would read back.
pub fn check(
    outputs: &[(String, Vec<PreparedOutput>)],
    inputs: &[FileDigest],
    pattern: Option<&Path>,
) -> Option<(String, String)> {
    let inputs: Vec<(PathBuf, &str)> = inputs
        .iter()
        .filter_map(|input| {
            std::fs::canonicalize(&input.path)
                .ok()
                .map(|path| (path, input.path.as_str()))
        })
        .collect();
    // Listed only when an output's path does not match the pattern already: it walks the
    // pattern's folders again.
    let read_dirs = std::cell::OnceCell::new();
    let read_dirs = || read_dirs.get_or_init(|| pattern.map(dirs_read_by).unwrap_or_default());
    let name_pattern = pattern
        .and_then(Path::file_name)
        .and_then(|name| glob::Pattern::new(&name.to_string_lossy()).ok());
    let pattern = pattern.and_then(|p| glob::Pattern::new(&p.to_string_lossy()).ok());
    let mut seen: Vec<(PathBuf, &str, &Path)> = Vec::new();
    for (label, prepared) in outputs {
        for output in prepared {
            let shown = output.path.display();
            let key = identity(output);
            if let Some((_, first, path)) = seen.iter().find(|(k, _, _)| *k == key) {
                let whose = if first == label {
                    "another output of this sink".to_string()
                } else {
                    format!("the output of {first}")
                };
                return Some((
                    label.clone(),
                    format!(
                        "{shown} is the same file as {}, {whose}: one would overwrite the other and both be reported published; nothing was published. Give each sink its own `path`",
                        path.display()
                    ),
                ));
            }
            if output.remote.is_none() {
                if let Some((_, input)) = inputs.iter().find(|(path, _)| *path == key) {
                    return Some((
                        label.clone(),
                        format!(
                            "{shown} is {input}, which this run read: the output would replace the pipeline's own input; nothing was published. Write the output elsewhere"
                        ),
                    ));
                }
                let read_back = |dir: &Path, name: &std::ffi::OsStr| {
                    read_dirs().iter().any(|read| read == dir)
                        && name_pattern.as_ref().is_some_and(|p| {
                            p.matches_with(&name.to_string_lossy(), glob_options())
                        })
                };
                let through_link = || {
                    key.parent()
                        .zip(key.file_name())
                        .is_some_and(|(dir, name)| read_back(dir, name))
                };
                if let Some(pattern) = &pattern
                    && let Some(how) = if pattern.matches_path_with(&output.path, glob_options()) {
                        Some("")
                    } else {
                        through_link().then_some(" through a link to its folder")
                    }
                {
                    return Some((
                        label.clone(),
                        format!(
                            "{shown} matches the source's pattern {pattern}{how}: the next run would read this output as input; nothing was published. Write the output outside the pattern"
                        ),
                    ));
                }
            }
            seen.push((key, label, &output.path));
        }
    }
    None
}

/// The directories the glob `pattern` reads files from, links resolved: an output in one of
/// them is read back when its name matches, even if its path does not show it (`data/**/*.csv`
/// with a link `data/feed -> ../out`).
fn dirs_read_by(pattern: &Path) -> Vec<PathBuf> {
    let Some(dir) = pattern.parent() else {
        return Vec::new();
    };
    let text = dir.to_string_lossy();
    let mut dirs = vec![dir.to_path_buf()];
    if is_pattern(&text) {
        dirs = glob::glob_with(&text, glob_options())
            .map(|found| found.flatten().filter(|path| path.is_dir()).collect())
            .unwrap_or_default();
    }
    dirs.iter()
        .filter_map(|dir| std::fs::canonicalize(dir).ok())
        .collect()
}

/// What makes two outputs the same file: for a local file, its directory with links and `..`
/// resolved (it exists once prepared) and its name; for an upload, the server and the path.
fn identity(output: &PreparedOutput) -> PathBuf {
    if let Some(remote) = &output.remote {
        return Path::new(&remote.location).join(&output.path);
    }
    let dir = publish::parent_dir(&output.path);
    match (std::fs::canonicalize(dir), output.path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => std::path::absolute(&output.path).unwrap_or_else(|_| output.path.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_match_keeps_what_the_stem_is_made_of() {
        assert_eq!(sample_match("data/orders-*.csv"), "data/orders-x.csv");
        assert_eq!(sample_match("data/**/*.csv"), "data/x/x.csv");
        assert_eq!(sample_match("in/[ab]?.csv"), "in/ax.csv");
    }

    #[test]
    fn sinks_that_read_their_own_output_are_found() {
        let cx = RunContext::new("p", Path::new("etl"));
        assert!(feeds_on_input("in.csv", "./in.csv", &cx));
        assert!(feeds_on_input("in.csv", "{source_stem}.csv", &cx));
        assert!(feeds_on_input(
            "data/**/*.csv",
            "data/out/{source_stem}.csv",
            &cx
        ));
        assert!(feeds_on_input(
            "data/orders-*.csv",
            "data/{source_stem}-{run_ts}.csv",
            &cx
        ));
        assert!(!feeds_on_input(
            "data/*.csv",
            "data/out/{pipeline}.csv",
            &cx
        ));
        assert!(!feeds_on_input("data/*.csv", "data/{pipeline}.ndjson", &cx));
        assert!(!feeds_on_input("data/*.csv", "data/.{pipeline}.csv", &cx));
        assert!(!feeds_on_input("in.csv", "out/in.csv", &cx));
    }

    #[test]
    fn prepared_outputs_are_checked_on_resolved_paths() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        std::fs::create_dir(base.join("data")).unwrap();
        std::fs::write(base.join("data/in.csv"), "a\n").unwrap();
        let output = |path: &str| PreparedOutput {
            path: base.join(path),
            temp: base.join("data/.part"),
            size: 0,
            sha256: String::new(),
            if_exists: Default::default(),
            remote: None,
        };
        let sink = |label: &str, paths: &[&str]| {
            (
                label.to_string(),
                paths.iter().map(|p| output(p)).collect::<Vec<_>>(),
            )
        };
        let input = FileDigest {
            path: base.join("data/in.csv").display().to_string(),
            size: 2,
            sha256: String::new(),
        };
        let pattern = base.join("data/*.csv");
        let fails = |outputs: &[(String, Vec<PreparedOutput>)]| {
            check(outputs, std::slice::from_ref(&input), Some(&pattern)).map(|(label, _)| label)
        };
        assert_eq!(
            fails(&[sink("a", &["out.csv"]), sink("b", &["out2.csv"])]),
            None
        );
        assert_eq!(
            fails(&[sink("a", &["out.csv"]), sink("b", &["data/../out.csv"])]),
            Some("b".into())
        );
        assert_eq!(
            fails(&[sink("a", &["x.csv", "data/../x.csv"])]),
            Some("a".into())
        );
        assert_eq!(fails(&[sink("a", &["data/in.csv"])]), Some("a".into()));
        assert_eq!(fails(&[sink("a", &["data/new.csv"])]), Some("a".into()));
    }

    #[test]
    fn a_glob_that_reaches_an_output_through_a_link_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        for made in ["data/deep", "out", "elsewhere"] {
            std::fs::create_dir_all(base.join(made)).unwrap();
        }
        std::os::unix::fs::symlink("../../out", base.join("data/deep/feed")).unwrap();
        std::os::unix::fs::symlink("out", base.join("linked")).unwrap();
        let output = |path: &str| PreparedOutput {
            path: base.join(path),
            temp: base.join("out/.part"),
            size: 0,
            sha256: String::new(),
            if_exists: Default::default(),
            remote: None,
        };
        let fails = |pattern: &str, path: &str| {
            let outputs = [("a".to_string(), vec![output(path)])];
            check(&outputs, &[], Some(&base.join(pattern))).map(|(_, message)| message)
        };
        let message = fails("data/**/*.csv", "out/x.csv").unwrap();
        assert!(
            message.contains("out/x.csv matches the source's pattern")
                && message.contains("data/**/*.csv through a link to its folder: the next run"),
            "{message}"
        );
        assert!(fails("linked/*.csv", "out/x.csv").is_some());
        assert_eq!(fails("data/**/*.csv", "out/x.ndjson"), None);
        assert_eq!(fails("data/**/*.csv", "elsewhere/x.csv"), None);
        assert_eq!(fails("linked/*.csv", "elsewhere/x.csv"), None);
    }
}
