//! The module layers of `src/` (see docs/architecture.md, "Layers"): a module names only
//! modules of the layers below its own, so the crate reads bottom-up and any part can be
//! understood, tested or split out with what is under it. This test reads every source file
//! and fails naming each `crate::…` path that points up or sideways.

use std::collections::BTreeMap;
use std::path::Path;

/// The top-level modules of `src/`, bottom layer first. Foundation modules may use each other
/// (without a cycle); in every other layer a module uses only the layers below.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundation",
        &[
            "error", "digest", "redact", "progress", "backoff", "template", "names", "record",
        ],
    ),
    ("config building blocks", &["config"]),
    ("state and its persisted formats", &["state"]),
    ("stage traits", &["stage"]),
    (
        "formats, file servers, HTTP",
        &["codecs", "filestore", "net"],
    ),
    ("stages", &["sources", "transforms", "sinks", "notify"]),
    ("the pipeline file", &["pipeline"]),
    ("running a pipeline", &["runner"]),
    ("the command line", &["cli"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

/// Every `crate::module` a file's code names (comments left out), with the line.
fn references(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.push((number + 1, name));
        }
    }
    found
}

/// `(module, file)` for every source file: its top-level module and its path in `src/`.
fn source_files(src: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut pending = vec![src.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(src).expect("under src");
                let first = relative.components().next().expect("a component");
                let module = first
                    .as_os_str()
                    .to_string_lossy()
                    .trim_end_matches(".rs")
                    .to_string();
                files.push((module, relative.display().to_string()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn modules_name_only_the_layers_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    let mut foundation: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (module, file) in source_files(&src) {
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(layer) = layer_of(&module) else {
            wrong.push(format!("src/{file}: module `{module}` is in no layer: add it to LAYERS and docs/architecture.md"));
            continue;
        };
        let text = std::fs::read_to_string(src.join(&file)).expect("read a source file");
        for (line, target) in references(&text) {
            if target == module {
                continue;
            }
            let Some(target_layer) = layer_of(&target) else {
                continue;
            };
            let allowed = target_layer < layer || (layer == 0 && target_layer == 0);
            if !allowed {
                wrong.push(format!(
                    "src/{file}:{line}: `{module}` ({}) names `crate::{target}` ({})",
                    LAYERS[layer].0, LAYERS[target_layer].0
                ));
            }
            if layer == 0 && target_layer == 0 {
                foundation.entry(module.clone()).or_default().push(target);
            }
        }
    }
    // Foundation modules use each other without a cycle.
    for (module, targets) in &foundation {
        for target in targets {
            if foundation
                .get(target)
                .is_some_and(|back| back.contains(module))
            {
                wrong.push(format!("`{module}` and `{target}` name each other"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn an_upward_import_is_caught() {
    let found = references("use crate::runner::Run; // crate::cli in a comment\n");
    assert_eq!(found, [(1, "runner".to_string())]);
    assert!(layer_of("runner") > layer_of("sinks"));
}
