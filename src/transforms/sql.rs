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
    /// The most records the transform holds: its input, and each table. Past the limit the
    /// run fails saying so (raise it, or filter and select before the `sql` transform).
    /// Default 5000000.
    #[serde(default = "default_max_rows")]
    pub max_rows: u64,
    /// The most memory, in bytes, the input may take as columns, and each table: polars' count
    /// of their buffers, and 16 bytes for each text value's view. A million orders of twelve
    /// fields (134 bytes of CSV each) take 222 MiB as columns, and the whole run peaked at
    /// 530 MB: the query's own work comes on top (joins and sorts copy what they touch). Past
    /// the limit the run fails saying so, before the machine runs out of memory. Default
    /// 2147483648 (2 GiB).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
}

fn default_max_rows() -> u64 {
    5_000_000
}

fn default_max_bytes() -> u64 {
    2 << 30
}

impl SqlConfig {
    /// `query` over the input alone, with the default limit (`convert --sql`).
    pub fn over_input(query: String) -> Self {
        SqlConfig {
            query,
            tables: BTreeMap::new(),
            max_rows: default_max_rows(),
            max_bytes: default_max_bytes(),
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
        if self.max_bytes == 0 {
            problems.push(Invalid::new("max_bytes", "must be at least 1"));
        }
        problems
    }
}

#[cfg(feature = "polars")]
pub use with_polars::Sql;

#[cfg(feature = "polars")]
mod with_polars {
    use polars::prelude::{DataFrame, IntoLazy};
    use polars::sql::SQLContext;

    use super::SqlConfig;
    use crate::codecs::FormatConfig;
    use crate::codecs::frame::{FrameBuilder, frame_to_records};
    use crate::codecs::limit::{DEFAULT_MAX_RECORD_BYTES, human_bytes};
    use crate::codecs::unpack::{self, UnpackLimits};
    use crate::error::StageError;
    use crate::record::Batch;
    use crate::stage::{RunContext, Transform};

    /// Records a batch of the result holds.
    const RESULT_BATCH: usize = 10_000;

    pub struct Sql {
        query: String,
        /// The tables besides `input`, read at build.
        tables: Vec<(String, DataFrame)>,
        /// The input so far, as columns.
        input: FrameBuilder,
        limits: Limits,
    }

    impl Sql {
        pub fn new(config: &SqlConfig, cx: &RunContext) -> Result<Self, StageError> {
            let limits = Limits {
                rows: config.max_rows,
                bytes: config.max_bytes,
            };
            let mut tables = Vec::new();
            for (name, path) in &config.tables {
                tables.push((name.clone(), read_table(name, path, cx, &limits)?));
            }
            Ok(Sql {
                query: config.query.clone(),
                tables,
                input: FrameBuilder::default(),
                limits,
            })
        }
    }

    /// `max_rows` and `max_bytes`.
    struct Limits {
        rows: u64,
        bytes: u64,
    }

    impl Limits {
        /// Refuses `rows` more records when they would pass `max_rows`.
        fn room_for(&self, held: &FrameBuilder, rows: usize, what: &str) -> Result<(), StageError> {
            if (held.rows() + rows) as u64 > self.rows {
                return Err(StageError::Refused(format!(
                    "{what} more than max_rows = {} records: raise `max_rows`, or filter and select before the `sql` transform",
                    self.rows
                )));
            }
            Ok(())
        }

        /// Refuses columns that take more than `max_bytes`.
        fn within_bytes(&self, held: &FrameBuilder, what: &str) -> Result<(), StageError> {
            if held.bytes() as u64 > self.bytes {
                return Err(StageError::Refused(format!(
                    "{what} more than max_bytes = {} as columns (after {} records): raise `max_bytes`, or filter and select before the `sql` transform",
                    human_bytes(self.bytes),
                    held.rows()
                )));
            }
            Ok(())
        }
    }

    /// The table `name`'s file, as columns.
    fn read_table(
        name: &str,
        path: &str,
        cx: &RunContext,
        limits: &Limits,
    ) -> Result<DataFrame, StageError> {
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
        // Unpacked as a source's file is: `FormatConfig::infer` reads `prices.csv.gz` as CSV.
        let part = unpack::unpack(Box::new(file), &shown, UnpackLimits::default(), false)?
            .next_part()?
            .expect("a file that is not an archive is one part");
        let mut decoder = format.decoder(part.reader, &shown, None, DEFAULT_MAX_RECORD_BYTES)?;
        let what = format!("table `{name}`: {shown} has");
        let mut table = FrameBuilder::default();
        let mut records = Vec::new();
        while decoder.next_batch(&mut records, RESULT_BATCH)? {
            limits.room_for(&table, records.len(), &what)?;
            table
                .push(&records)
                .map_err(|e| StageError::Refused(format!("table `{name}`: {e}")))?;
            limits.within_bytes(&table, &format!("table `{name}`: {shown} takes"))?;
            records.clear();
        }
        table
            .finish()
            .map_err(|e| StageError::Refused(format!("table `{name}`: {e}")))
    }

    /// A polars error as the run's: the query's message, with what usually causes it.
    fn failed(error: impl std::fmt::Display) -> StageError {
        StageError::Refused(format!(
            "the query failed: {error} (values from CSV or XML are text unless typed: `infer_types`, a `schema`, or a `cast` before the `sql` transform)"
        ))
    }

    impl Transform for Sql {
        fn apply(&mut self, batch: &mut Batch) -> Result<(), StageError> {
            self.limits.room_for(
                &self.input,
                batch.records.len(),
                "the input (table `input`) has",
            )?;
            self.input
                .push(&batch.records)
                .map_err(|e| StageError::Refused(format!("table `input`: {e}")))?;
            self.limits
                .within_bytes(&self.input, "the input (table `input`) takes")?;
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
            tracing::debug!(
                "sql: the input is {} records, {} as columns",
                input.rows(),
                human_bytes(input.bytes() as u64)
            );
            let mut context = SQLContext::new();
            let input = input
                .finish()
                .map_err(|e| StageError::Refused(format!("table `input`: {e}")))?;
            context.register("input", input.lazy());
            for (name, frame) in std::mem::take(&mut self.tables) {
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
