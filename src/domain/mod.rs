//! Pure types and rules of the lighting estate: no I/O, no async, no gRPC, no SQL.

pub mod auth;
pub mod billing;
pub mod estate;
pub mod faults;
pub mod geo;
pub mod inventory;
pub mod local_time;
pub mod paging;
pub mod sun;
pub mod telemetry;
pub mod validation;

pub use validation::ValidationError;
