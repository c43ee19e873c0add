//! singularity: a street-lighting central management system (lighting server, field
//! simulator, CLI and NOC console) over gRPC.

pub mod cli;
pub mod console;
pub mod domain;
pub mod failover;
pub mod figures;
pub mod gateway;
pub mod handover;
pub mod link;
pub mod logging;
pub mod passwords;
pub mod proto;
pub mod remote;
pub mod server;
pub mod sign_in;
pub mod sim;
pub mod store;
pub mod wire;
