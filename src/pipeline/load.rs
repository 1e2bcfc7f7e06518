//! Loading a pipeline file so that one `validate` shows every problem in it, each at its line
//! and column with a hint. serde stops at the first error, so the file is parsed once into a
//! spanned tree, each section (`source`, every transform, every sink) is deserialized on its own,
//! and an unknown key is reported, removed, and the section tried again. References
//! (`${env:NAME}`, `${var:NAME}`, `${file:PATH}`) in every string are resolved first, each
//! unresolvable one reported at its position ([`super::interpolate`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::overlap;
use crate::sources::file::is_pattern;
use crate::stage::RunContext;
use crate::template::PathTemplate;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::{
    ConfigError, NotifyConfig, Pipeline, PipelineConfig, Problem, SinkConfig, SourceConfig,
    TransformConfig, Validate,
};
use crate::config::interpolate::{self, Resolver, Template, Variables};
use crate::redact::names_a_secret;

/// A stage config enum whose variant is chosen by the section's `type` key.
pub(crate) trait TaggedSection: Sized + Validate {
    /// What the section is called in messages (`source`, `transform`, `sink`).
    const ROLE: &'static str;
    /// The accepted `type` values.
    const KINDS: &'static [&'static str];
    /// Deserializes the section (without its `type` key) as `kind`; `None` for an unknown kind.
    fn deserialize_kind(
        kind: &str,
        table: ValueDeserializer<'_>,
    ) -> Option<Result<Self, toml::de::Error>>;
}

/// The top-level keys the loader reads, each its own way (so that every problem in a file is
/// reported at once); the same as `PipelineConfig`'s fields, as a test checks.
const TOP_LEVEL_KEYS: &[&str] = &[
    "name",
    "description",
    "source",
    "transforms",
    "sinks",
    "on_overlap",
    "max_runtime_secs",
    "state",
    "rejects",
    "notify",
];

/// How a pipeline file is loaded.
#[derive(Debug, Clone, Default)]
pub struct Loading {
    /// The values of `--var NAME=VALUE`, for `${var:NAME}`.
    pub vars: Variables,
    /// Leaves a reference that cannot be resolved as it is written instead of reporting it,
    /// except in `name` and `[state]`: for commands that look only at a pipeline's name and
    /// state (`runs`, `state`), which must work without the run's environment.
    pub lenient: bool,
}

/// Reads and checks a pipeline file.
pub fn load(file: &Path, loading: &Loading) -> Result<Pipeline, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    parse(&text, file, loading)
}

/// Checks pipeline text; `file` is where it came from (for messages and relative paths).
pub fn parse(text: &str, file: &Path, loading: &Loading) -> Result<Pipeline, ConfigError> {
    let mut loader = Loader {
        text,
        loading,
        base_dir: file.parent().unwrap_or(Path::new("")),
        problems: Vec::new(),
        unresolved: Vec::new(),
        written: Vec::new(),
        literals: Vec::new(),
    };
    let pipeline = loader.pipeline(file);
    let mut problems = loader.problems;
    match pipeline {
        Some(pipeline) if problems.is_empty() => Ok(pipeline),
        _ => {
            problems.sort_by_key(|p| (p.line, p.column));
            problems.dedup();
            Err(ConfigError::Invalid {
                file: file.to_path_buf(),
                problems,
            })
        }
    }
}

struct Loader<'t> {
    text: &'t str,
    loading: &'t Loading,
    /// The pipeline file's folder, where relative `${file:…}` paths start.
    base_dir: &'t Path,
    problems: Vec<Problem>,
    /// Where values whose references could not be resolved start: reported once, so the
    /// checks of their unresolved text are not reported too.
    unresolved: Vec<usize>,
    /// Each resolved string with references, and its text as written: a message that quotes
    /// a value (serde's `invalid type: string "…"`) quotes it as written, since the resolved
    /// text may be a secret.
    written: Vec<(String, String)>,
    /// Every string written without references, where it is and under which key, to find
    /// the secrets written into the file as they are.
    literals: Vec<Literal>,
}

/// A string value of the file without references.
struct Literal {
    start: usize,
    /// Its key, and the key of the table holding it (`headers`).
    key: String,
    parent: String,
    text: String,
}

impl<'t> Loader<'t> {
    /// The line and column (from 1) of byte `offset`.
    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, self.text[line_start..offset].chars().count() + 1)
    }

    fn report(&mut self, span: Range<usize>, message: impl Into<String>, help: Option<String>) {
        if self.unresolved.contains(&span.start) {
            return;
        }
        let mut message: String = message.into();
        for (resolved, written) in self.written.iter().filter(|(r, _)| !r.is_empty()) {
            // serde quotes a string as Rust's `{:?}` does (escapes included).
            message = message.replace(&format!("{resolved:?}"), &format!("{written:?}"));
        }
        let (line, column) = self.position(span.start);
        self.problems.push(Problem {
            line,
            column,
            message,
            help,
        });
    }

    fn pipeline(&mut self, file: &Path) -> Option<Pipeline> {
        let (root, syntax_errors) = DeTable::parse_recoverable(self.text);
        if !syntax_errors.is_empty() {
            for error in syntax_errors {
                let message = format!("invalid TOML: {}", error.message().trim_end());
                self.report(error.span().unwrap_or(0..0), message, None);
            }
            return None;
        }
        let mut root = root.into_inner();
        let mut written = HashMap::new();
        for (key, value) in root.iter_mut() {
            // Even leniently, the name and the state's path must be what a run would use:
            // `state reset` must not reset another pipeline's state.
            let strict =
                !self.loading.lenient || matches!(key.get_ref().as_ref(), "name" | "state");
            self.resolve_references(value, &mut written, strict, key.get_ref(), "");
        }
        self.written = written
            .iter()
            .map(|(resolved, written)| (resolved.clone(), written.clone()))
            .collect();
        let (pipeline, literal_secrets) =
            interpolate::with_written(written, || self.sections(root, file));
        let mut pipeline = pipeline?;
        pipeline.warnings = self.literal_secret_warnings(&literal_secrets, file);
        Some(pipeline)
    }

    /// Warnings for the secrets written into the file as they are, at their positions. A
    /// header is a secret option, but a plain one (`Accept = "application/json"`) is only
    /// warned of when its name says it holds a secret.
    fn literal_secret_warnings(&self, secrets: &[String], file: &Path) -> Vec<String> {
        let mut found: Vec<&Literal> = self
            .literals
            .iter()
            .filter(|literal| secrets.contains(&literal.text))
            .filter(|literal| literal.parent != "headers" || names_a_secret(&literal.key))
            .collect();
        found.sort_by_key(|literal| literal.start);
        found
            .into_iter()
            .map(|literal| {
                let (line, column) = self.position(literal.start);
                format!(
                    "{}:{line}:{column}: `{}` holds a secret written into the pipeline file: read it from the environment (`${{env:NAME}}`) or a file (`${{file:PATH}}`) instead, since pipeline files end up in version control",
                    file.display(),
                    literal.key
                )
            })
            .collect()
    }

    /// Resolves the references in every string below `value`, noting each string that held
    /// any in `written` (resolved text -> text as written), for secrets.
    fn resolve_references(
        &mut self,
        value: &mut Spanned<DeValue<'_>>,
        written: &mut HashMap<String, String>,
        strict: bool,
        key: &str,
        parent: &str,
    ) {
        let span = value.span();
        match value.get_mut() {
            DeValue::String(text) if !text.contains("${") => self.literals.push(Literal {
                start: span.start,
                key: key.to_string(),
                parent: parent.to_string(),
                text: text.to_string(),
            }),
            DeValue::String(text) if text.contains("${") => {
                let resolver = Resolver {
                    vars: &self.loading.vars,
                    base_dir: self.base_dir,
                };
                let resolved = Template::parse(text)
                    .and_then(|template| template.render(&resolver).map_err(|e| e.to_string()));
                match resolved {
                    Ok(resolved) => {
                        written.insert(resolved.clone(), text.to_string());
                        *text = Cow::Owned(resolved);
                    }
                    Err(message) => {
                        if strict {
                            self.report(span.clone(), message, None);
                        }
                        self.unresolved.push(span.start);
                    }
                }
            }
            DeValue::Table(table) => {
                for (child_key, child) in table.iter_mut() {
                    self.resolve_references(child, written, strict, child_key.get_ref(), key);
                }
            }
            DeValue::Array(items) => {
                for item in items.iter_mut() {
                    self.resolve_references(item, written, strict, key, parent);
                }
            }
            _ => {}
        }
    }

    fn sections(&mut self, root: DeTable<'_>, file: &Path) -> Option<Pipeline> {
        // Each `Some` once read (a key left out is `Some` of its default); `None` after a
        // problem, so that no pipeline is built.
        let (mut name, mut description, mut source) = (Some(None), Some(None), None);
        let (mut transforms, mut sinks) = (Some(Vec::new()), None);
        let (mut on_overlap, mut max_runtime_secs) = (Some(Default::default()), Some(None));
        let (mut state, mut rejects, mut notify) = (Some(None), Some(None), Some(Vec::new()));
        // Where each sink's `path` is, for the checks that need the whole pipeline.
        let mut path_spans = Vec::new();
        for (key, value) in root {
            match key.get_ref().as_ref() {
                "name" => name = self.plain::<String>(value, "`name`").map(Some),
                "description" => {
                    description = self.plain::<String>(value, "`description`").map(Some)
                }
                "source" => source = Some(self.stage::<SourceConfig>(value, "source".into())),
                "transforms" => {
                    transforms =
                        self.stage_list::<TransformConfig>(value, "transforms", "transform")
                }
                "sinks" => {
                    let list = self.stage_list::<SinkConfig>(value.clone(), "sinks", "sink");
                    if let DeValue::Array(items) = value.get_ref() {
                        path_spans = items
                            .iter()
                            .map(|item| key_span(item, "path").unwrap_or(item.span()))
                            .collect();
                    }
                    sinks = Some(list);
                }
                "on_overlap" => on_overlap = self.plain(value, "`on_overlap`"),
                "max_runtime_secs" => {
                    let span = value.span();
                    max_runtime_secs = self.plain(value, "`max_runtime_secs`").map(Some);
                    if max_runtime_secs == Some(Some(0)) {
                        self.report(span, "`max_runtime_secs` must be at least 1", None);
                    }
                }
                "state" => state = self.table(value, "state").map(Some),
                "rejects" => rejects = self.table(value, "rejects").map(Some),
                "notify" => {
                    notify = self.stage_list::<NotifyConfig>(value.clone(), "notify", "notify");
                    if let (Some(list), DeValue::Array(items)) = (&notify, value.get_ref()) {
                        self.report_missing_files(list, items);
                    }
                }
                unknown => {
                    let help = suggest(unknown, TOP_LEVEL_KEYS);
                    self.report(
                        key.span(),
                        format!("unknown top-level key `{unknown}`"),
                        Some(help),
                    );
                }
            }
        }
        if source.is_none() {
            self.report(
                0..0,
                "the pipeline has no `[source]`",
                Some("add a `[source]` table with a `type`, e.g. `type = \"file\"`".into()),
            );
        }
        match &sinks {
            None => self.report(
                0..0,
                "the pipeline has no `[[sinks]]`",
                Some(
                    "add at least one `[[sinks]]` table with a `type`, e.g. `type = \"file\"`"
                        .into(),
                ),
            ),
            Some(Some(list)) if list.is_empty() => self.report(
                0..0,
                "`sinks` is empty",
                Some("add at least one `[[sinks]]` table".into()),
            ),
            _ => {}
        }
        let run_name = name.clone().flatten().unwrap_or_else(|| {
            file.file_stem()
                .map_or_else(|| "pipeline".into(), |s| s.to_string_lossy().into_owned())
        });
        if let Some(Some(list)) = &sinks {
            let cx = RunContext::new(&run_name, self.base_dir);
            self.report_shared_destinations(list, &path_spans, &cx);
            if let Some(Some(SourceConfig::File(source))) = &source {
                self.report_own_input(&source.path, list, &path_spans, &cx);
            }
            if let Some(transforms) = &transforms {
                self.report_stem_of_mixed_files(transforms, list, &path_spans);
            }
        }
        Some(Pipeline {
            name: run_name,
            file: file.to_path_buf(),
            config: PipelineConfig {
                name: name?,
                description: description?,
                source: source??,
                transforms: transforms?,
                sinks: sinks??,
                on_overlap: on_overlap?,
                max_runtime_secs: max_runtime_secs?,
                state: state?,
                rejects: rejects?,
                notify: notify?,
            },
            vars: self.loading.vars.clone(),
            warnings: Vec::new(),
        })
    }

    fn plain<T: serde::de::DeserializeOwned>(
        &mut self,
        value: Spanned<DeValue<'_>>,
        what: &str,
    ) -> Option<T> {
        let span = value.span();
        match T::deserialize(ValueDeserializer::from(value)) {
            Ok(v) => Some(v),
            Err(e) => {
                self.report(
                    e.span().unwrap_or(span),
                    format!("{what}: {}", e.message()),
                    None,
                );
                None
            }
        }
    }

    /// An array of stage tables (`[[sinks]]`); `None` when any of them is unusable.
    fn stage_list<T: TaggedSection>(
        &mut self,
        value: Spanned<DeValue<'_>>,
        key: &str,
        role: &str,
    ) -> Option<Vec<T>> {
        let span = value.span();
        let DeValue::Array(items) = value.into_inner() else {
            self.report(
                span,
                format!("`{key}` must be a list of tables"),
                Some(format!("write each one as a `[[{key}]]` table")),
            );
            return None;
        };
        let mut stages = Some(Vec::with_capacity(items.len()));
        for (index, item) in items.iter().enumerate() {
            let stage = self.stage::<T>(item.clone(), format!("{role} {}", index + 1));
            stages = stages.zip(stage).map(|(mut list, stage)| {
                list.push(stage);
                list
            });
        }
        stages
    }

    /// One stage table: its `type` picks the config type, then the rest is deserialized,
    /// reporting (and dropping) unknown keys until it succeeds or hits another kind of error.
    fn stage<T: TaggedSection>(&mut self, value: Spanned<DeValue<'_>>, label: String) -> Option<T> {
        let span = value.span();
        let DeValue::Table(mut table) = value.into_inner() else {
            self.report(span, format!("{label} must be a table"), None);
            return None;
        };
        let kinds = T::KINDS.join("`, `");
        let Some(kind_value) = table.remove("type") else {
            self.report(
                span,
                format!("{label} has no `type`"),
                Some(format!("set `type` to one of `{kinds}`")),
            );
            return None;
        };
        let kind_span = kind_value.span();
        let Some(kind) = kind_value.get_ref().as_str().map(str::to_owned) else {
            self.report(kind_span, format!("{label}: `type` must be a string"), None);
            return None;
        };
        if !T::KINDS.contains(&kind.as_str()) {
            self.report(
                kind_span,
                format!("unknown {} type `{kind}`", T::ROLE),
                Some(suggest(&kind, T::KINDS)),
            );
            return None;
        }
        let label = format!("{label} ({kind})");
        let section = Spanned::new(span, DeValue::Table(table));
        self.section(section, &label, |de| {
            T::deserialize_kind(&kind, de).expect("a known kind")
        })
    }

    /// A table that is not a stage, e.g. `[state]`.
    fn table<T: serde::de::DeserializeOwned + Validate>(
        &mut self,
        value: Spanned<DeValue<'_>>,
        label: &str,
    ) -> Option<T> {
        if !matches!(value.get_ref(), DeValue::Table(_)) {
            self.report(value.span(), format!("`{label}` must be a table"), None);
            return None;
        }
        self.section(value, &format!("`{label}`"), |de| T::deserialize(de))
    }

    /// Deserializes a table, reporting (and dropping) unknown keys and bad values until it
    /// succeeds or hits another kind of error, so that one pass finds all its problems.
    fn section<T: Validate>(
        &mut self,
        mut section: Spanned<DeValue<'_>>,
        label: &str,
        deserialize: impl Fn(ValueDeserializer<'_>) -> Result<T, toml::de::Error>,
    ) -> Option<T> {
        let span = section.span();
        let mut dropped_keys = false;
        let mut removed: Vec<String> = Vec::new();
        // Each round either succeeds, stops, or removes one key: bounded by the key count.
        loop {
            let de = ValueDeserializer::from(section.clone());
            let error = match deserialize(de) {
                Ok(config) if dropped_keys => {
                    // Report the remaining problems too, but do not use a config read without
                    // some of its keys.
                    self.report_invalid(&config, &section, label);
                    return None;
                }
                Ok(config) => {
                    let before = self.problems.len();
                    self.report_invalid(&config, &section, label);
                    return (self.problems.len() == before).then_some(config);
                }
                Err(error) => error,
            };
            let message = error.message().to_string();
            let error_span = error.span().unwrap_or(span.clone());
            if let Some(unknown) = backticked(&message).first().filter(|_| {
                message.starts_with("unknown field") || message.starts_with("unknown variant")
            }) {
                let candidates = expected_words(&message);
                let what = if message.starts_with("unknown field") {
                    "key"
                } else {
                    "value"
                };
                let help = suggest(unknown, &candidates);
                if what == "key"
                    && let Some(key_span) = remove_key(&mut section, unknown, &error_span)
                {
                    self.report(
                        key_span,
                        format!("unknown key `{unknown}` in {label}"),
                        Some(help),
                    );
                    dropped_keys = true;
                    continue;
                }
                self.report(
                    error_span,
                    format!("unknown {what} `{unknown}` in {label}"),
                    Some(help),
                );
                return None;
            }
            if let Some(missing) = message
                .strip_prefix("missing field `")
                .and_then(|m| m.strip_suffix('`'))
                && removed.iter().any(|r| r == missing)
            {
                // Only missing because its bad value was removed above: already reported.
                return None;
            }
            self.report(error_span.clone(), format!("{label}: {message}"), None);
            // Drop the offending value and go on, to find the section's other problems too.
            match remove_value_at(&mut section, &error_span) {
                Some(key) if error_span != span => {
                    removed.push(key);
                    dropped_keys = true;
                }
                _ => return None,
            }
        }
    }

    /// The files notifications need that are not there: a broken alert is found by
    /// `validate`, not by the failure it was meant to report. Not when loading leniently.
    fn report_missing_files(&mut self, entries: &[NotifyConfig], items: &[Spanned<DeValue<'_>>]) {
        if self.loading.lenient {
            return;
        }
        for (index, (entry, item)) in entries.iter().zip(items).enumerate() {
            for invalid in entry.spec().missing_files(self.base_dir) {
                let span = key_span(item, &invalid.key).unwrap_or(item.span());
                let label = format!("notify {} ({})", index + 1, entry.kind());
                self.report(span, format!("{label}: {}", invalid.message), None);
            }
        }
    }

    /// Two sinks writing the same path would overwrite each other's output.
    /// Sinks writing the same file: the same `path`, or paths that name the same file once
    /// `{pipeline}` and the run's time are filled in and `.` and `..` removed (`same/p.csv` and
    /// `./same/{pipeline}.csv`). `{source_stem}` stands for the same file's stem in both, so
    /// `a/{source_stem}.csv` and `b/../a/{source_stem}.csv` collide for every source file,
    /// while `a/{source_stem}.csv` and `a/x.csv` only for some (the run finds those).
    fn report_shared_destinations(
        &mut self,
        sinks: &[SinkConfig],
        spans: &[Range<usize>],
        cx: &RunContext,
    ) {
        // Not a name any file has: only the same placement in both paths renders the same.
        const STEM: &str = "\u{1}source_stem\u{1}";
        let rendered: Vec<Option<PathBuf>> = sinks
            .iter()
            .map(|sink| overlap::render(sink.spec().destination()?, cx, STEM))
            .collect();
        for (index, sink) in sinks.iter().enumerate() {
            let Some(path) = sink.spec().destination() else {
                continue;
            };
            let first = (0..index).find(|&other| {
                sinks[other].spec().destination() == Some(path)
                    || (rendered[index].is_some() && rendered[other] == rendered[index])
            });
            if let (Some(first), Some(span)) = (first, spans.get(index)) {
                let message = if sinks[first].spec().destination() == Some(path) {
                    format!(
                        "sink {}: writes to the same `path` as sink {}",
                        index + 1,
                        first + 1
                    )
                } else {
                    format!(
                        "sink {}: writes to the same file as sink {} (`{}`)",
                        index + 1,
                        first + 1,
                        sinks[first].spec().destination().unwrap_or_default()
                    )
                };
                self.report(
                    span.clone(),
                    message,
                    Some("give each sink its own path: one would overwrite the other".into()),
                );
            }
        }
    }

    /// File sinks writing over the `file` source's input (`source`), or where its glob would
    /// read their output back on the next run.
    fn report_own_input(
        &mut self,
        source: &str,
        sinks: &[SinkConfig],
        spans: &[Range<usize>],
        cx: &RunContext,
    ) {
        for (index, (sink, span)) in sinks.iter().zip(spans).enumerate() {
            let Some(path) = sink.spec().destination() else {
                continue;
            };
            if !overlap::feeds_on_input(source, path, cx) {
                continue;
            }
            let (what, help) = if is_pattern(source) {
                (
                    format!("its outputs match the source's `path` `{source}`"),
                    "every run would read the outputs of the run before: write outside the pattern, or narrow it",
                )
            } else {
                (
                    format!("writes over the source's input `{source}`"),
                    "write the output elsewhere: the run would replace the file it reads",
                )
            };
            self.report(
                span.clone(),
                format!("sink {}: {what}", index + 1),
                Some(help.into()),
            );
        }
    }

    /// Sink paths with `{source_stem}` after a transform whose records come from no one file.
    fn report_stem_of_mixed_files(
        &mut self,
        transforms: &[TransformConfig],
        sinks: &[SinkConfig],
        spans: &[Range<usize>],
    ) {
        let Some((mixer, transform)) = transforms
            .iter()
            .enumerate()
            .find(|(_, transform)| transform.spec().mixes_files())
        else {
            return;
        };
        for (index, (sink, span)) in sinks.iter().zip(spans).enumerate() {
            let Some(path) = sink.spec().path() else {
                continue;
            };
            if !PathTemplate::parse(path).is_ok_and(|template| template.uses_source_stem()) {
                continue;
            }
            self.report(
                span.clone(),
                format!(
                    "sink {}: `{{source_stem}}` names an output after its source file, but the records of transform {} ({}) come from all the files at once",
                    index + 1,
                    mixer + 1,
                    transform.kind()
                ),
                Some("name the output with `{pipeline}` and `{run_ts}` instead".into()),
            );
        }
    }

    fn report_invalid<T: Validate>(
        &mut self,
        config: &T,
        section: &Spanned<DeValue<'_>>,
        label: &str,
    ) {
        for invalid in config.problems() {
            let span = key_span(section, &invalid.key).unwrap_or(section.span());
            self.report(span, format!("{label}: {}", invalid.message), None);
        }
    }
}

/// The span of the value at a dotted key path (`format.delimiter`) within a section.
fn key_span(section: &Spanned<DeValue<'_>>, path: &str) -> Option<Range<usize>> {
    let mut current = section;
    for part in path.split('.') {
        current = current.get_ref().as_table()?.get(part)?;
    }
    Some(current.span())
}

/// Removes the key `name` from the innermost table around `near` (where serde reported it) and
/// returns the key's span. Errors inside a `type`-tagged inner table (e.g. `format`) carry that
/// table's span, so the table is found by containment.
fn remove_key(
    value: &mut Spanned<DeValue<'_>>,
    name: &str,
    near: &Range<usize>,
) -> Option<Range<usize>> {
    let span = value.span();
    let contains = span.start <= near.start && near.end <= span.end;
    match value.get_mut() {
        DeValue::Table(table) => {
            for (_, child) in table.iter_mut() {
                if let Some(found) = remove_key(child, name, near) {
                    return Some(found);
                }
            }
            if let Some((key, _)) = table.get_key_value(name)
                && (contains || overlaps(&key.span(), near))
            {
                let key_span = key.span();
                table.remove(name);
                return Some(key_span);
            }
            None
        }
        DeValue::Array(items) => items
            .iter_mut()
            .find_map(|item| remove_key(item, name, near)),
        _ => None,
    }
}

/// Removes the entry whose value is exactly at `span` (where serde reported a bad value) and
/// returns its key.
fn remove_value_at(value: &mut Spanned<DeValue<'_>>, span: &Range<usize>) -> Option<String> {
    match value.get_mut() {
        DeValue::Table(table) => {
            let key = table
                .iter()
                .find(|(_, v)| v.span() == *span)
                .map(|(k, _)| k.get_ref().to_string());
            if let Some(key) = key {
                table.remove(key.as_str());
                return Some(key);
            }
            table
                .iter_mut()
                .find_map(|(_, child)| remove_value_at(child, span))
        }
        DeValue::Array(items) => items
            .iter_mut()
            .find_map(|item| remove_value_at(item, span)),
        _ => None,
    }
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// The words a serde message quotes in backticks, in order.
fn backticked(message: &str) -> Vec<&str> {
    message.split('`').skip(1).step_by(2).collect()
}

/// The alternatives serde lists after "expected" (`expected one of `a`, `b``).
fn expected_words(message: &str) -> Vec<&str> {
    message
        .split_once("expected")
        .map(|(_, rest)| backticked(rest))
        .unwrap_or_default()
}

/// "did you mean `x`?" for a near miss, else the list of what is accepted.
fn suggest(given: &str, known: &[&str]) -> String {
    let nearest = known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(given, k), *k))
        .min();
    match nearest {
        Some((distance, key)) if distance <= 2.max(given.len() / 3) => {
            format!("did you mean `{key}`?")
        }
        _ if known.is_empty() => "this table takes no keys".into(),
        _ => format!("expected one of `{}`", known.join("`, `")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The top level is described by `PipelineConfig` (its docs are the reference); the loader
    /// reads the same keys.
    #[test]
    fn the_loader_reads_the_keys_pipeline_config_documents() {
        let schema: serde_json::Value =
            serde_json::from_str(&crate::pipeline::json_schema()).unwrap();
        let documented: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut read = TOP_LEVEL_KEYS.to_vec();
        read.sort_unstable();
        assert_eq!(read, documented);
    }

    fn problems(text: &str) -> Vec<String> {
        match parse(text, Path::new("p.toml"), &Loading::default()) {
            Ok(_) => Vec::new(),
            Err(ConfigError::Invalid { problems, .. }) => problems
                .into_iter()
                .map(|p| {
                    let help = p.help.map(|h| format!(" ({h})")).unwrap_or_default();
                    format!("{}:{}: {}{help}", p.line, p.column, p.message)
                })
                .collect(),
            Err(e) => panic!("{e}"),
        }
    }

    const GOOD: &str = r#"
name = "orders"
[source]
type = "file"
path = "in/*.csv"
format = { type = "csv", delimiter = ";" }

[[transforms]]
type = "rename"
fields = { identifier = "order_id" }

[[sinks]]
type = "file"
path = "out/{pipeline}-{run_date}.ndjson"
"#;

    #[test]
    fn a_good_file_loads() {
        let pipeline = parse(
            GOOD,
            Path::new("pipelines/orders.toml"),
            &Loading::default(),
        )
        .unwrap();
        assert_eq!(pipeline.name, "orders");
        assert_eq!(pipeline.config.source.kind(), "file");
        assert_eq!(pipeline.config.transforms.len(), 1);
        assert_eq!(pipeline.config.sinks.len(), 1);
        assert_eq!(pipeline.base_dir(), Path::new("pipelines"));
    }

    #[test]
    fn every_problem_is_reported_with_position_and_hint() {
        let text = r#"nmae = "x"
[source]
type = "file"
path = "in.csv"
recursve = true
format = { type = "csv", delimter = ";", quote = "''" }

[[transforms]]
type = "renam"

[[sinks]]
type = "file"
pth = "out.csv"
"#;
        assert_eq!(
            problems(text),
            [
                "1:1: unknown top-level key `nmae` (did you mean `name`?)",
                "5:1: unknown key `recursve` in source (file) (expected one of `path`, `format`, `reprocess`, `encoding`, `infer_types`, `schema`, `max_unpacked_bytes`, `max_zip_members`, `max_record_bytes`, `file_fields`)",
                "6:10: source (file): invalid value: string \"''\", expected a character",
                "6:26: unknown key `delimter` in source (file) (did you mean `delimiter`?)",
                "9:8: unknown transform type `renam` (did you mean `rename`?)",
                "11:1: sink 1 (file): missing field `path`",
                "13:1: unknown key `pth` in sink 1 (file) (did you mean `path`?)",
            ]
        );
    }

    #[test]
    fn missing_sections_and_types_are_reported() {
        assert_eq!(
            problems("[source]\npath = \"x\"\n"),
            [
                "1:1: source has no `type` (set `type` to one of `file`, `http`, `sftp`, `ftps`)",
                "1:1: the pipeline has no `[[sinks]]` (add at least one `[[sinks]]` table with a `type`, e.g. `type = \"file\"`)",
            ]
        );
    }

    #[test]
    fn two_sinks_with_one_path_are_refused() {
        let text = "[source]\ntype = \"file\"\npath = \"a.csv\"\n[[sinks]]\ntype = \"file\"\npath = \"o.csv\"\n[[sinks]]\ntype = \"file\"\npath = \"o.csv\"\n";
        assert_eq!(
            problems(text),
            [
                "9:8: sink 2: writes to the same `path` as sink 1 (give each sink its own path: one would overwrite the other)"
            ]
        );
    }

    #[test]
    fn syntax_errors_have_positions() {
        let found = problems("[source\ntype = \"file\"\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("1:8: invalid TOML"), "{found:?}");
    }

    #[test]
    fn value_checks_point_at_the_key() {
        let text = "[source]\ntype = \"file\"\npath = \"a.csv\"\nformat = { type = \"csv\", delimiter = \"é\" }\n[[sinks]]\ntype = \"file\"\npath = \"o.csv\"\n";
        assert_eq!(
            problems(text),
            ["4:38: source (file): `delimiter` must be one ASCII character, not `é`"]
        );
    }
}
