//! The generated gRPC code for `singularity.v1`, and nothing else.

#![allow(clippy::all, clippy::pedantic, reason = "generated code")]

tonic::include_proto!("singularity.v1");

/// The encoded descriptor set of every `singularity.v1` file, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("singularity_descriptor");
