//! `singularity server`: the lighting server on a configured listener and database.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;
use color_eyre::eyre::{Result, WrapErr, eyre};
use tokio::net::TcpListener;

use super::{DEFAULT_DATABASE_URL, DEFAULT_LISTEN, init_logging, shutdown_signal};
use crate::store::sqlite::SqliteStore;

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "SINGULARITY_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Where the estate is stored: sqlite://path/to/file.db.
    #[arg(long, env = "SINGULARITY_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Log filter: error, warn, info, debug, trace, or per module (singularity=debug).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_level: String,
}

pub async fn run(args: ServerArgs) -> Result<()> {
    init_logging(&args.log_level)?;
    let store = open_store(&args.database_url)?;
    serve(args.listen, store).await
}

/// Opens the store a database URL names; the scheme picks the backend.
pub fn open_store(url: &str) -> Result<Arc<SqliteStore>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Err(eyre!(
            "PostgreSQL is not supported by this build yet; use a SQLite URL such as {DEFAULT_DATABASE_URL}"
        ));
    }
    let store = SqliteStore::open_url(url)
        .wrap_err_with(|| format!("cannot open the database at {url}"))?;
    Ok(Arc::new(store))
}

/// Binds, serves until Ctrl-C or SIGTERM, then closes the database cleanly.
pub async fn serve(listen: SocketAddr, store: Arc<SqliteStore>) -> Result<()> {
    let listener = TcpListener::bind(listen).await.wrap_err_with(|| {
        format!("cannot listen on {listen}; is another server running there? choose another with --listen")
    })?;
    let address = listener.local_addr()?;
    tracing::info!(%address, database = %store.path().display(), "lighting server listening");
    let result = crate::server::run(
        listener,
        store.clone(),
        crate::server::ServerConfig::default(),
        shutdown_signal(),
    )
    .await;
    store.close();
    tracing::info!("database closed; bye");
    result.wrap_err("the server stopped with an error")
}
