//! `singularity` with no command: the lighting server on an estate in the user's data
//! directory, seeded on first run.

use std::net::SocketAddr;

use clap::Args;
use color_eyre::eyre::{Result, eyre};

use super::serve::{open_store, serve};
use super::{DEFAULT_LISTEN, init_logging};
use crate::domain::estate::{City, EstateSpec};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, env = "SINGULARITY_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Where the demo estate lives; defaults to a file in your data directory.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Lamps to seed on first run.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub lamps: u32,
    /// Log filter.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_level: String,
    #[command(flatten)]
    pub engine: super::serve::EngineArgs,
}

pub async fn run(args: DemoArgs) -> Result<()> {
    init_logging(&args.log_level)?;
    let url = match args.database_url {
        Some(url) => url,
        None => default_database_url()?,
    };
    let store = open_store(&url)?;
    if store.counts()?.lamps == 0 {
        let spec = EstateSpec {
            lamps: args.lamps,
            rng_seed: 1,
            city: City::by_key("london").map_err(|e| eyre!("{e}"))?,
        };
        let seeding = store.clone();
        let report =
            tokio::task::spawn_blocking(move || super::seed::seed(seeding.as_ref(), &spec, false))
                .await??;
        println!("First run: {report}");
    }
    println!(
        "Demo estate: {url}\nServing on http://{}  (Ctrl-C to stop)",
        args.listen
    );
    serve(args.listen, store, args.engine.config()).await
}

fn default_database_url() -> Result<String> {
    let dirs = directories::ProjectDirs::from("", "", "singularity").ok_or_else(|| {
        eyre!("cannot find your data directory (is HOME set?); pass --database-url")
    })?;
    Ok(format!(
        "sqlite://{}",
        dirs.data_dir().join("demo.db").display()
    ))
}
