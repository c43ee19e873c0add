//! What the benchmarks share: dialling more connections as the same session, and
//! percentiles of measured latencies.

use std::time::Duration;

use color_eyre::eyre::{Result, eyre};

use crate::cli::client::connect;
use crate::link::AuthedChannel;

/// Opens further connections as the same session.
pub struct Dialer {
    pub server: String,
    pub ca_pem: Option<Vec<u8>>,
    pub token: Option<String>,
}

impl Dialer {
    pub async fn dial(&self) -> Result<AuthedChannel> {
        let channel = connect(&self.server, self.ca_pem.as_deref())
            .await
            .map_err(|e| eyre!(e))?;
        crate::link::with_token(channel, self.token.as_deref()).map_err(|e| eyre!("{e}"))
    }
}

/// The latency at quantile `q` of sorted timings, in milliseconds.
pub fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index].as_secs_f64() * 1e3
}
