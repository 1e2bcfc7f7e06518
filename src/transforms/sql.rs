//! `sql`: what cannot stream (totals per customer, a join with a price list, a top-N) as one
//! SQL query over all the records that reach it (table `input`) and over reference files
//! (`tables`), run by polars' lazy engine. It holds its input, as columns, until the source
//! ends (`Transform::finish`), bounded by `max_rows`, and hands the result on in batches. Built
//! with the `polars` feature; without it, a pipeline that uses it is refused by `validate`
//! saying how to build it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::{Invalid, Validate};

/// Runs a SQL query over the records: `query = "SELECT customer_id, sum(total) AS total FROM
/// input GROUP BY customer_id ORDER BY total DESC"`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlConfig {
    /// The query, in polars' SQL (PostgreSQL-like: `GROUP BY`, joins, window functions,
    /// `CASE`, string and date functions). The records that reach the transform are the table
    /// `input`; its result's rows are the records handed on, its columns their fields. Text
    /// stays text: values from a CSV file are text unless the source has `infer_types` or a
    /// `schema`, or a `cast` comes first, so that `sum(total)` adds numbers. Required.
    pub query: String,
    /// More tables, by name: a file each, read with longshore's own formats (by extension, as
    /// a file source reads it; relative to the pipeline file's folder), e.g. `{ prices =
    /// "ref/prices.csv" }`, then `... JOIN prices USING (sku)`. Read when the run starts.
    /// Default: none.
    #[serde(default)]
    pub tables: BTreeMap<String, String>,
    /// The most records the transform holds: its input, and each table. The input is kept as
    /// columns, a batch at a time: a million orders of twelve fields (134 bytes of CSV each)
    /// took 518 MB at the peak. Past the limit the run fails saying so (raise it, or filter and
    /// select before the `sql` transform). Default 5000000.
    #[serde(default = "default_max_rows")]
    pub max_rows: u64,
}

fn default_max_rows() -> u64 {
    5_000_000
}

impl SqlConfig {
    /// `query` over the input alone, with the default limit (`convert --sql`).
    pub fn over_input(query: String) -> Self {
        SqlConfig {
            query,
            tables: BTreeMap::new(),
            max_rows: default_max_rows(),
        }
    }
}

/// What `validate` says of a pipeline that uses what this build lacks.
pub const NOT_BUILT: &str =
    "needs longshore built with the `polars` feature: `cargo build --release --features polars`";

impl Validate for SqlConfig {
    fn problems(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        if !cfg!(feature = "polars") {
            problems.push(Invalid::new("type", format!("`sql` {NOT_BUILT}")));
        }
        if self.query.trim().is_empty() {
            problems.push(Invalid::new(
                "query",
                "write the query, e.g. `SELECT * FROM input`",
            ));
        }
        for name in self.tables.keys() {
            let identifier = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !identifier {
                problems.push(Invalid::new(
                    "tables",
                    format!(
                        "`{name}` is not a table name: letters, digits and `_`, not first a digit"
                    ),
                ));
            } else if name.eq_ignore_ascii_case("input") {
                problems.push(Invalid::new(
                    "tables",
                    "`input` is the records that reach the transform: name the table otherwise",
                ));
            }
        }
        if self.max_rows == 0 {
            problems.push(Invalid::new("max_rows", "must be at least 1"));
        }
        problems
    }
}

#[cfg(feature = "polars")]
pub use with_polars::Sql;

#[cfg(feature = "polars")]
mod with_polars {
    use polars::prelude::IntoLazy;
    use polars::sql::SQLContext;

    use super::SqlConfig;
    use crate::codecs::FormatConfig;
    use crate::codecs::frame::{FrameBuilder, frame_to_records, records_to_frame};
    use crate::codecs::limit::DEFAULT_MAX_RECORD_BYTES;
    use crate::error::StageError;
    use crate::record::{Batch, Record};
    use crate::stage::{RunContext, Transform};

    /// Records a batch of the result holds.
    const RESULT_BATCH: usize = 10_000;

    pub struct Sql {
        query: String,
        /// The tables besides `input`, read at build.
        tables: Vec<(String, Vec<Record>)>,
        /// The input so far, as columns.
        input: FrameBuilder,
        max_rows: u64,
    }

    impl Sql {
        pub fn new(config: &SqlConfig, cx: &RunContext) -> Result<Self, StageError> {
            let mut tables = Vec::new();
            for (name, path) in &config.tables {
                let records = read_table(name, path, cx, config.max_rows)?;
                tables.push((name.clone(), records));
            }
            Ok(Sql {
                query: config.query.clone(),
                tables,
                input: FrameBuilder::default(),
                max_rows: config.max_rows,
            })
        }
    }

    /// The records of table `name`'s file.
    fn read_table(
        name: &str,
        path: &str,
        cx: &RunContext,
        max_rows: u64,
    ) -> Result<Vec<Record>, StageError> {
        let resolved = cx.resolve(path);
        let shown = resolved.display().to_string();
        let format = FormatConfig::infer(path).ok_or_else(|| {
            StageError::Refused(format!(
                "table `{name}`: cannot tell the format of `{path}` from its extension ({})",
                FormatConfig::names()
            ))
        })?;
        let file = std::fs::File::open(&resolved)
            .map_err(|e| StageError::io(&shown, "read the table's file", e))?;
        let mut decoder = format.decoder(Box::new(file), &shown, None, DEFAULT_MAX_RECORD_BYTES)?;
        let mut records = Vec::new();
        while decoder.next_batch(&mut records, RESULT_BATCH)? {
            if records.len() as u64 > max_rows {
                return Err(StageError::Refused(format!(
                    "table `{name}`: {shown} has more than max_rows = {max_rows} records"
                )));
            }
        }
        Ok(records)
    }

    /// A polars error as the run's: the query's message, with what usually causes it.
    fn failed(error: impl std::fmt::Display) -> StageError {
        StageError::Refused(format!(
            "the query failed: {error} (values from CSV or XML are text unless typed: `infer_types`, a `schema`, or a `cast` before the `sql` transform)"
        ))
    }

    impl Transform for Sql {
        fn apply(&mut self, batch: &mut Batch) -> Result<(), StageError> {
            if (self.input.rows() + batch.records.len()) as u64 > self.max_rows {
                return Err(StageError::Refused(format!(
                    "more than max_rows = {} records reached the `sql` transform: raise `max_rows`, or filter and select before it",
                    self.max_rows
                )));
            }
            self.input
                .push(&batch.records)
                .map_err(|e| StageError::Refused(format!("table `input`: {e}")))?;
            batch.records.clear();
            batch.numbers.clear();
            Ok(())
        }

        fn finish(&mut self) -> Result<Vec<Batch>, StageError> {
            let input = std::mem::take(&mut self.input);
            if input.rows() == 0 {
                // No columns to query: nothing in, nothing out.
                return Ok(Vec::new());
            }
            let mut context = SQLContext::new();
            let input = input
                .finish()
                .map_err(|e| StageError::Refused(format!("table `input`: {e}")))?;
            context.register("input", input.lazy());
            for (name, records) in std::mem::take(&mut self.tables) {
                let frame = records_to_frame(&records)
                    .map_err(|e| StageError::Refused(format!("table `{name}`: {e}")))?;
                context.register(&name, frame.lazy());
            }
            let result = context
                .execute(&self.query)
                .map_err(failed)?
                .collect()
                .map_err(failed)?;
            let mut records = frame_to_records(&result).map_err(failed)?;
            let mut batches = Vec::new();
            while !records.is_empty() {
                let rest = records.split_off(records.len().min(RESULT_BATCH));
                batches.push(Batch {
                    records: std::mem::replace(&mut records, rest),
                    ..Batch::default()
                });
            }
            Ok(batches)
        }
    }
}
