//! Streaming: the source runs on its own thread and hands batches over a bounded channel to
//! the main thread, which runs them through the transforms to every sink. Decoding and
//! encoding overlap on two cores while memory stays at a few batches.

use std::sync::atomic::Ordering;
use std::sync::mpsc;

use super::BATCH_RECORDS;
use super::crash::crash_point;
use super::dry_run::add_to_plan;
use super::stages::Chain;
use crate::error::{RunError, StageError};
use crate::progress::RunProgress;
use crate::record::Batch;
use crate::stage::{RunContext, Sink, Source, SourceProgress};
use crate::state::report::PlannedRequest;

/// Batches buffered between the source thread and the sinks.
const BATCHES_IN_FLIGHT: usize = 4;

/// What streaming did.
#[derive(Default)]
pub(super) struct Streamed {
    pub(super) records_read: u64,
    /// Records that reached the sinks (each reaches every sink), the rejects file aside.
    pub(super) records_to_sinks: u64,
    pub(super) source: SourceProgress,
    /// Per transform, then per sink: records in and out.
    pub(super) counts: Vec<(u64, u64)>,
    /// Dry run: per sink (rejects last), records per destination in order of first use.
    pub(super) plan: Vec<Vec<(String, u64)>>,
    /// Dry run: per sink (rejects aside), the first requests it would send.
    pub(super) requests: Vec<Vec<PlannedRequest>>,
    /// What the transforms said of their work (values a `cast` made null as asked).
    pub(super) warnings: Vec<String>,
}

/// Streams every batch from the source through the transforms to the sinks (or, in a dry run,
/// counts what each sink would receive where). What was streamed is returned even when
/// streaming failed.
pub(super) fn stream(
    source: &mut Box<dyn Source>,
    chain: &mut Chain,
    cx: &RunContext,
    dry_run: bool,
) -> (Streamed, Result<(), RunError>) {
    let mut streamed = Streamed {
        counts: vec![
            (0, 0);
            chain.transforms.len() + chain.sinks.len() + chain.rejects.iter().len()
        ],
        plan: vec![Vec::new(); chain.sinks.len() + chain.rejects.iter().len()],
        ..Streamed::default()
    };
    let progress = RunProgress::start(&chain.pipeline);
    let mut batches = 0u64;
    let result = std::thread::scope(|scope| -> Result<(), RunError> {
        let (sender, receiver) = mpsc::sync_channel::<Result<Batch, StageError>>(BATCHES_IN_FLIGHT);
        let source = &mut *source;
        let reader = std::thread::Builder::new().name("source".into());
        let spawned = reader.spawn_scoped(scope, move || {
            loop {
                let mut batch = Batch::default();
                let next = match source.next_batch(&mut batch, BATCH_RECORDS) {
                    Ok(true) => Ok(batch),
                    Ok(false) => return,
                    Err(e) => Err(e),
                };
                let failed = next.is_err();
                // A closed channel means the receiving side failed and stopped: stop too.
                if sender.send(next).is_err() || failed {
                    return;
                }
            }
        });
        if let Err(e) = spawned {
            return Err(chain.fail(
                &chain.source_label,
                StageError::io("the source", "start a thread", e),
            ));
        }
        // The records numbered so far, per origin (see `Batch::numbers`).
        let mut numbered = Numbered::default();
        for next in receiver {
            let mut batch = next.map_err(|e| chain.fail(&chain.source_label, e))?;
            streamed.records_read += batch.len() as u64;
            let rejected = chain
                .rejects
                .as_mut()
                .map(|r| r.take_unreadable(&mut batch));
            if !chain.transforms.is_empty() {
                number_records(&mut batch, &mut numbered);
            }
            let origin = batch.origin.clone();
            deliver(chain, &mut streamed, batch, 0, rejected, dry_run)?;
            batches += 1;
            if batches == 1 {
                crash_point("after-first-batch");
            }
            progress.update(
                streamed.records_read,
                cx.bytes_read.load(Ordering::Relaxed),
                origin.as_ref().map(|o| o.path.as_str()),
            );
        }
        // Transforms that held records back (`dedupe` with `keep = "last"`) give them up now,
        // through the transforms after them (whose own `finish` comes after) to the sinks.
        for index in 0..chain.transforms.len() {
            let (label, transform) = &mut chain.transforms[index];
            let held = transform
                .finish()
                .map_err(|e| RunError::new(&chain.pipeline, label, e))?;
            for mut batch in held {
                streamed.counts[index].1 += batch.len() as u64;
                let rejected = chain.rejects.as_mut().map(|r| r.take(&mut batch));
                deliver(chain, &mut streamed, batch, index + 1, rejected, dry_run)?;
            }
        }
        for (label, transform) in &mut chain.transforms {
            for warning in transform.take_warnings() {
                tracing::warn!("{label}: {warning}");
                streamed.warnings.push(format!("{label}: {warning}"));
            }
        }
        if !dry_run {
            // A sink that sends as it goes sends the rest now, before anything is prepared.
            for (label, sink) in &mut chain.sinks {
                sink.end_of_input()
                    .map_err(|e| RunError::new(&chain.pipeline, label, e))?;
            }
            pass_sink_rejects(chain, &mut streamed)?;
        } else {
            for (label, sink) in &mut chain.sinks {
                let requests = sink
                    .planned_requests()
                    .map_err(|e| RunError::new(&chain.pipeline, label, e))?;
                streamed.requests.push(requests);
            }
        }
        Ok(())
    });
    streamed.source = source.progress();
    (streamed, result)
}

/// Runs `batch` through the transforms from `first_transform` on and hands it to every sink
/// (or, in a dry run, to the plan); what the transforms set aside joins `rejected`, the
/// batch's rejects for the rejects file.
fn deliver(
    chain: &mut Chain,
    streamed: &mut Streamed,
    mut batch: Batch,
    first_transform: usize,
    mut rejected: Option<Batch>,
    dry_run: bool,
) -> Result<(), RunError> {
    for (index, (label, transform)) in chain
        .transforms
        .iter_mut()
        .enumerate()
        .skip(first_transform)
    {
        streamed.counts[index].0 += batch.len() as u64;
        transform
            .apply(&mut batch)
            .map_err(|e| RunError::new(&chain.pipeline, label, e))?;
        streamed.counts[index].1 += batch.len() as u64;
    }
    // What the transforms set aside joins the source's rejects.
    if let (Some(file), Some(rejected)) = (chain.rejects.as_mut(), rejected.as_mut())
        && !batch.rejects.is_empty()
    {
        rejected.records.extend(file.take(&mut batch).records);
    }
    streamed.records_to_sinks += batch.len() as u64;
    let first_sink = chain.transforms.len();
    let pipeline = chain.pipeline.clone();
    for (index, (label, sink)) in chain.all_sinks().enumerate() {
        let batch = if label == "rejects" {
            rejected.as_ref().expect("rejects configured")
        } else {
            &batch
        };
        if batch.is_empty() {
            continue;
        }
        let count = &mut streamed.counts[first_sink + index];
        count.0 += batch.len() as u64;
        count.1 += batch.len() as u64;
        if dry_run {
            add_to_plan(
                &mut streamed.plan[index],
                sink.destination(batch),
                batch.len(),
            );
            sink.plan_batch(batch)
                .map_err(|e| RunError::new(&pipeline, label, e))?;
        } else {
            sink.write_batch(batch)
                .map_err(|e| RunError::new(&pipeline, label, e))?;
        }
    }
    if !dry_run {
        pass_sink_rejects(chain, streamed)?;
    }
    Ok(())
}

/// How many records each origin delivered so far.
#[derive(Default)]
struct Numbered {
    origin: Option<String>,
    count: u64,
}

/// Numbers `batch`'s records among those read from its origin: batches of one origin come one
/// after another.
fn number_records(batch: &mut Batch, numbered: &mut Numbered) {
    let origin = batch.origin.as_ref().map(|origin| origin.path.as_str());
    if numbered.origin.as_deref() != origin {
        numbered.origin = origin.map(str::to_string);
        numbered.count = 0;
    }
    let first = numbered.count + 1;
    numbered.count += batch.len() as u64;
    batch.numbers = (first..=numbered.count).collect();
}

/// Writes the records the sinks set aside (a receiver refused them) to the rejects file,
/// where they are counted like the source's rejects (and `max_rejects` applies to them).
fn pass_sink_rejects(chain: &mut Chain, streamed: &mut Streamed) -> Result<(), RunError> {
    let mut rejects = Vec::new();
    for (_, sink) in &mut chain.sinks {
        rejects.extend(sink.take_rejects());
    }
    // Sinks set records aside only with `[rejects]` (`RunContext::quarantine`).
    let Some(file) = chain.rejects.as_mut().filter(|_| !rejects.is_empty()) else {
        return Ok(());
    };
    let mut refused = Batch {
        rejects,
        ..Batch::default()
    };
    let records = file.take(&mut refused);
    if let Some(count) = streamed.counts.last_mut() {
        count.0 += records.len() as u64;
        count.1 += records.len() as u64;
    }
    file.sink
        .write_batch(&records)
        .map_err(|e| RunError::new(&chain.pipeline, "rejects", e))
}
