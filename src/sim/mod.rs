//! The field simulator: a model of every lamp in an estate (switching at dusk and dawn,
//! dimming on a schedule, metering energy, failing at configurable rates) and the runner that
//! streams its reports to a lighting server like a set of basestations would.

pub mod model;
pub mod runner;
