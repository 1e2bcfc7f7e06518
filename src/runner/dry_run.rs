//! Dry runs (`--dry-run`): instead of writing, each sink is asked where a batch would go, and
//! the report lists what each sink would write where (`PlannedOutput`), or for a run without
//! records, the empty file it would write or that it would write nothing (`if_empty`).

use super::Run;
use super::stages::Chain;
use crate::record::Batch;
use crate::sinks::IfEmpty;
use crate::state::report::{PlannedOutput, PlannedRequest};

impl Run<'_> {
    /// A dry run's plan: what each sink would write where, and, for a run without records,
    /// whether each sink that writes files would write an empty one (`if_empty`).
    pub(super) fn plan(
        &mut self,
        chain: &Chain,
        plan: Vec<Vec<(String, u64)>>,
        requests: Vec<Vec<PlannedRequest>>,
        no_records: bool,
    ) {
        let labels = chain
            .sinks
            .iter()
            .map(|(label, _)| label.as_str())
            .chain(chain.rejects.iter().map(|_| "rejects"));
        let mut requests = requests.into_iter();
        for (sink, destinations) in labels.zip(plan) {
            // A sink's requests go with its first destination (the http sink has one).
            let mut requests = requests.next().unwrap_or_default();
            self.report
                .planned
                .extend(
                    destinations
                        .into_iter()
                        .map(|(destination, records)| PlannedOutput {
                            sink: sink.to_string(),
                            destination: Some(destination),
                            records,
                            if_empty: None,
                            requests: std::mem::take(&mut requests),
                        }),
                );
        }
        if !no_records {
            return;
        }
        for ((label, sink), config) in chain.sinks.iter().zip(&self.pipeline.config.sinks) {
            let Some(if_empty) = config.spec().if_empty() else {
                continue;
            };
            self.report.planned.push(PlannedOutput {
                sink: label.clone(),
                destination: (if_empty == IfEmpty::Write)
                    .then(|| sink.destination(&Batch::default())),
                records: 0,
                if_empty: Some(if_empty.as_str().to_string()),
                requests: Vec::new(),
            });
        }
    }
}

pub(super) fn add_to_plan(plan: &mut Vec<(String, u64)>, destination: String, records: usize) {
    match plan.iter_mut().find(|(d, _)| *d == destination) {
        Some((_, count)) => *count += records as u64,
        None => plan.push((destination, records as u64)),
    }
}
