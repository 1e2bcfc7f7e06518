//! Integration tests: the real `longshore` binary run on files in temporary directories, plus
//! codec round trips at the library level. One test binary, so it is linked once.

mod arbitrary_input;
mod bad_input;
mod cli;
mod convert;
mod destinations;
mod empty_runs;
mod excel;
mod filestore;
mod golden;
mod http;
mod http_silent;
mod huge_records;
mod late_columns;
mod layers;
mod names;
mod notify;
mod operate;
mod packing;
mod pairs;
mod pickup;
mod pipelines;
mod polars;
mod preview;
mod push;
mod references;
mod reruns;
mod roundtrip;
mod support;
mod transforms_reshape;
mod transforms_rules;
mod transforms_typing;
mod types;
mod upload;
mod xml;
