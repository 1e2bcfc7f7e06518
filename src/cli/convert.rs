//! `longshore convert`: its arguments, and the checks of the formats and encodings they name
//! before `runner::convert` reads anything.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::Error;
use crate::codecs::limit::DEFAULT_MAX_RECORD_BYTES;
use crate::codecs::types::Typing;
use crate::codecs::unpack::{self, UnpackLimits};
use crate::codecs::{FormatConfig, TextEncoding};
use crate::runner;
use crate::sources::file::ReadOptions;

// The command's help is the doc comment of `Command::Convert`.
#[derive(Debug, clap::Args)]
pub(super) struct ConvertArgs {
    /// The file to read.
    input: PathBuf,
    /// The file to write, or `-` for standard output. It is replaced atomically, so it must
    /// be a regular file or not exist: a device (`/dev/null`), a named pipe or a symbolic
    /// link is refused.
    output: PathBuf,
    #[arg(long, help = format!("The input format ({}). Default: from the input's extension", FormatConfig::names()))]
    from: Option<String>,
    #[arg(long, help = format!("The output format ({}). Default: from the output's extension", FormatConfig::names()))]
    to: Option<String>,
    /// The input's text encoding when it has no byte-order mark, e.g. windows-1252. Default: UTF-8.
    #[arg(long, value_parser = TextEncoding::parse)]
    encoding: Option<TextEncoding>,
    /// The output's text encoding, e.g. windows-1252 or utf-16le. Default: UTF-8.
    #[arg(long, value_parser = TextEncoding::parse)]
    to_encoding: Option<TextEncoding>,
    /// Give text values the type they read as (integers, decimals, booleans, dates), e.g.
    /// for typed spreadsheet cells from a CSV.
    #[arg(long)]
    infer_types: bool,
    /// The most bytes one record (a CSV row, an NDJSON line, a JSON array element, an XML
    /// record element) may take; a larger one fails the conversion.
    #[arg(long, default_value_t = DEFAULT_MAX_RECORD_BYTES, value_parser = clap::value_parser!(u64).range(1..))]
    max_record_bytes: u64,
    /// Write the result of a SQL query over the input (the table `input`) instead of the
    /// input itself, e.g. `--sql "SELECT customer_id, sum(total) AS total FROM input GROUP BY
    /// customer_id"`. Text values are typed as `--infer-types` does. Needs longshore built
    /// with the `polars` feature.
    #[arg(long, value_name = "QUERY")]
    sql: Option<String>,
}

/// Converts `input` to `output` as the command line says.
pub(super) fn convert(args: ConvertArgs) -> Result<ExitCode, Error> {
    let ConvertArgs {
        input,
        output,
        from,
        to,
        encoding,
        to_encoding,
        infer_types,
        max_record_bytes,
        sql,
    } = args;
    if sql.is_some() && !cfg!(feature = "polars") {
        return Err(Error::Usage(format!(
            "--sql {}",
            crate::transforms::sql::NOT_BUILT
        )));
    }
    // A zip archive's members are each of the format their names imply.
    let archive = from.is_none() && unpack::is_zip_name(&input.to_string_lossy());
    let from = match archive {
        true => None,
        false => Some(format_for(&input, from.as_deref(), "--from")?),
    };
    if let Some(message) = from.as_ref().and_then(|f| f.encoding_problem(encoding)) {
        return Err(Error::Usage(format!("--encoding: {message}")));
    }
    let read = ReadOptions {
        format: from,
        encoding,
        limits: UnpackLimits::default(),
        max_record_bytes,
        // SQL's sums and comparisons want numbers, not their text.
        typing: Typing::new(infer_types || sql.is_some(), None),
        file_fields: false,
    };
    let to = format_for(&output, to.as_deref(), "--to")?;
    if output != Path::new("-")
        && let Some(message) = to.output_problem(&output.to_string_lossy())
    {
        return Err(Error::Usage(message));
    }
    if let Some(message) = to.encoding_problem(to_encoding) {
        return Err(Error::Usage(format!("--to-encoding: {message}")));
    }
    let report = runner::convert(&input, &output, read, to, to_encoding, sql)?;
    tracing::info!(
        "wrote {} records to {}",
        report.records,
        report.published.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

fn format_for(path: &Path, given: Option<&str>, flag: &str) -> Result<FormatConfig, Error> {
    let format = named_or_inferred(path, given, flag)?;
    // A format this build lacks (Parquet without the `polars` feature) is a usage error too.
    match format.problems().into_iter().next() {
        Some(problem) => Err(Error::Usage(format!(
            "{}: {}",
            path.display(),
            problem.message
        ))),
        None => Ok(format),
    }
}

fn named_or_inferred(path: &Path, given: Option<&str>, flag: &str) -> Result<FormatConfig, Error> {
    match given {
        Some(name) => FormatConfig::from_name(name).ok_or_else(|| {
            Error::Usage(format!(
                "unknown format `{name}` for {flag}: use one of {}",
                FormatConfig::names()
            ))
        }),
        None => FormatConfig::infer(&path.to_string_lossy()).ok_or_else(|| {
            Error::Usage(format!(
                "cannot tell the format of `{}` from its extension: pass {flag} (one of {})",
                path.display(),
                FormatConfig::names()
            ))
        }),
    }
}
