//! Every format converts to every other: the sample orders go from each format to each other
//! one and back to NDJSON, and come out as the same records. Plus `.gz` on both sides.

use crate::support::{Sandbox, repo_path};

/// One file name per format (the extension picks the format), with options where the format
/// must be named.
const FORMATS: &[(&str, &[&str])] = &[
    ("orders.csv", &[]),
    ("orders.tsv", &[]),
    ("orders.ndjson", &[]),
    ("orders.json", &[]),
    ("orders.jarr", &["json-array"]),
    ("orders.xml", &[]),
    ("orders.xlsx", &[]),
];

fn format_args(file: &str, flag: &str) -> Vec<String> {
    FORMATS
        .iter()
        .find(|(name, _)| file.trim_end_matches(".gz").ends_with(name))
        .map(|(_, named)| {
            named
                .iter()
                .flat_map(|f| [flag.to_string(), f.to_string()])
                .collect()
        })
        .unwrap_or_default()
}

fn convert(sandbox: &Sandbox, from: &str, to: &str) {
    let mut args = vec!["-q".to_string(), "convert".into(), from.into(), to.into()];
    args.extend(format_args(from, "--from"));
    args.extend(format_args(to, "--to"));
    sandbox.run(&args).assert_success().assert_stderr("");
}

#[test]
fn every_format_converts_to_every_other_and_back() {
    let expected = std::fs::read_to_string(repo_path("samples/orders.ndjson")).unwrap();
    let sandbox = Sandbox::new();
    sandbox.copy_from_repo("samples/orders.ndjson", "orders.ndjson");
    for (from, _) in FORMATS {
        if *from != "orders.ndjson" {
            convert(&sandbox, "orders.ndjson", from);
        }
    }
    for (from, _) in FORMATS {
        for (to, _) in FORMATS {
            let target = format!("pair/{to}");
            let _ = std::fs::remove_file(sandbox.join(&target));
            convert(&sandbox, from, &target);
            convert(&sandbox, &target, "pair/back.ndjson");
            assert_eq!(
                sandbox.read("pair/back.ndjson"),
                expected,
                "{from} -> {to} -> ndjson"
            );
        }
        // Compressed on the way out and in (a workbook is a zip already: no `.xlsx.gz`).
        if from.ends_with(".xlsx") {
            continue;
        }
        let gz = format!("gz/{from}.gz");
        convert(&sandbox, from, &gz);
        convert(&sandbox, &gz, "gz/back.ndjson");
        assert_eq!(
            sandbox.read("gz/back.ndjson"),
            expected,
            "{from} -> {from}.gz -> ndjson"
        );
    }
}
