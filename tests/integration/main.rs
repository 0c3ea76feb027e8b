//! ferry's integration tests: one binary, run against a real S3-compatible
//! server (Garage) started for the run, and where a behaviour does not need
//! a network, also against the in-memory store with the same test body.

mod alibaba_fakes;
mod harness;
mod listing_proxy;
mod proxy;

mod alibaba;
mod backup;
mod bad_input;
mod between;
mod check;
mod checksums;
mod cluster;
mod commands;
mod cost;
mod credentials;
mod delete_safety;
mod download_edges;
mod endpoints;
mod jobs;
mod listing_encoding;
mod moto_s3;
mod mount;
mod object_options;
mod resume;
mod roundtrip;
mod store_contract;
mod store_edges;
mod streams;
mod sync;
mod versions;
