//! Where logs go when a terminal program owns the screen (the console, the demo): a file.

/// Sends logs to a file (the console owns the screen); with no file, nowhere.
pub fn log_to_file(path: Option<&std::path::Path>, level: &str) -> color_eyre::Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            color_eyre::eyre::eyre!("cannot create {} for the log: {e}", dir.display())
        })?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| color_eyre::eyre::eyre!("cannot open the log {}: {e}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| color_eyre::eyre::eyre!("log level {level:?} is not valid ({e})"))?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
    Ok(())
}
