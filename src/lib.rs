//! singularity: a street-lighting central management system (lighting server, field
//! simulator, CLI and NOC console) over gRPC.

pub mod domain;
pub mod proto;
