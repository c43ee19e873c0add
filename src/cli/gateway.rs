//! `singularity gateway`: the one address clients use when the services run apart, routing
//! each part of the API to its instances (`--route part=URL,URL` or a TOML file).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use color_eyre::eyre::{Result, WrapErr, eyre};

use super::serve::TlsArgs;
use super::{LogFormat, init_logging, shutdown_signal};
use crate::gateway::{CallLimits, GatewayConfig};
use crate::server::services::Part;

pub const DEFAULT_GATEWAY_LISTEN: &str = "127.0.0.1:50050";

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Address to listen on: IP:PORT or HOST:PORT.
    #[arg(long, env = "SINGULARITY_GATEWAY_LISTEN", default_value = DEFAULT_GATEWAY_LISTEN, value_parser = super::listen_address)]
    listen: SocketAddr,
    /// Where a part of the API is served: PART=URL[,URL...], e.g.
    /// inventory=http://10.0.0.5:50051,http://10.0.0.6:50051 (repeat for each part; auth is
    /// required: every call is authenticated by it).
    #[arg(long = "route", value_name = "PART=URLS")]
    routes: Vec<String>,
    /// A TOML file of routes instead: a [routes] table of part = ["URL", ...].
    #[arg(long, env = "SINGULARITY_GATEWAY_ROUTES", value_name = "FILE")]
    routes_file: Option<PathBuf>,
    /// PEM CA certificate that signed the services' TLS certificates (default: the system's
    /// roots).
    #[arg(long, env = "SINGULARITY_UPSTREAM_CA")]
    upstream_ca: Option<PathBuf>,
    /// Calls a second one user may make through the gateway (0: no limit).
    #[arg(long, env = "SINGULARITY_GATEWAY_CALLS_PER_USER", default_value_t = CallLimits::default().per_user)]
    calls_per_second_per_user: u32,
    /// Calls a second one address may make through the gateway (0: no limit).
    #[arg(long, env = "SINGULARITY_GATEWAY_CALLS_PER_ADDRESS", default_value_t = CallLimits::default().per_address)]
    calls_per_second_per_address: u32,
    /// How long the auth service's answer about a token is trusted (a logout through the
    /// gateway forgets it at once).
    #[arg(long, env = "SINGULARITY_GATEWAY_SESSION_CACHE_SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=60))]
    session_cache_seconds: u64,
    /// Serve Prometheus metrics over HTTP at this address (GET /metrics).
    #[arg(long, env = "SINGULARITY_METRICS_LISTEN", value_parser = super::listen_address)]
    metrics_listen: Option<SocketAddr>,
    /// Log filter: error, warn, info, debug, trace, or per module (singularity=debug).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log_level: String,
    /// Log lines as text (human) or one JSON object per line (json).
    #[arg(long, env = "SINGULARITY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(flatten)]
    tls: TlsArgs,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutesFile {
    routes: std::collections::BTreeMap<String, Vec<String>>,
}

/// `PART=URL,URL` into a part and its URLs.
fn route(text: &str) -> Result<(Part, Vec<String>)> {
    let (name, urls) = text.split_once('=').ok_or_else(|| {
        eyre!("--route {text:?}: write PART=URL[,URL...], e.g. inventory=http://10.0.0.5:50051")
    })?;
    let part = part_named(name.trim())?;
    let urls = crate::link::servers(urls).map_err(|e| eyre!("--route {text:?}: {e}"))?;
    Ok((part, urls))
}

fn part_named(name: &str) -> Result<Part> {
    Part::named(name).ok_or_else(|| {
        eyre!(
            "{name:?} is not a part of the API; choose from {}",
            crate::server::Services::all()
        )
    })
}

impl GatewayArgs {
    fn routes(&self) -> Result<Vec<(Part, Vec<String>)>> {
        let mut routes: Vec<(Part, Vec<String>)> = Vec::new();
        if let Some(path) = &self.routes_file {
            let text = std::fs::read_to_string(path)
                .wrap_err_with(|| format!("--routes-file {}: cannot read it", path.display()))?;
            let file: RoutesFile = toml::from_str(&text)
                .map_err(|e| eyre!("--routes-file {}: {e}", path.display()))?;
            for (name, urls) in file.routes {
                let urls = crate::link::servers(&urls.join(","))
                    .map_err(|e| eyre!("--routes-file {}: {name}: {e}", path.display()))?;
                routes.push((part_named(&name)?, urls));
            }
        }
        for text in &self.routes {
            routes.push(route(text)?);
        }
        let mut seen = std::collections::HashSet::new();
        for (part, _) in &routes {
            if !seen.insert(*part) {
                return Err(eyre!(
                    "{} is routed twice; give each part once, with all its URLs",
                    part.name()
                ));
            }
        }
        if !seen.contains(&Part::Auth) {
            return Err(eyre!(
                "no route for auth: every call is authenticated by it; add --route auth=URL"
            ));
        }
        Ok(routes)
    }
}

pub async fn run(args: GatewayArgs) -> Result<()> {
    init_logging(&args.log_level, args.log_format)?;
    let routes = args.routes()?;
    let upstream_ca_pem = match &args.upstream_ca {
        Some(path) => Some(
            std::fs::read(path)
                .wrap_err_with(|| format!("--upstream-ca {}: cannot read it", path.display()))?,
        ),
        None => None,
    };
    let config = GatewayConfig {
        routes,
        tls: args.tls.identity(args.listen)?,
        upstream_ca_pem,
        limits: CallLimits {
            per_user: args.calls_per_second_per_user,
            per_address: args.calls_per_second_per_address,
        },
        session_cache: std::time::Duration::from_secs(args.session_cache_seconds),
        ..GatewayConfig::default()
    };
    let metrics = std::sync::Arc::new(crate::server::metrics::Metrics::default());
    if let Some(address) = args.metrics_listen {
        let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
            eyre!("--metrics-listen {address}: cannot listen there ({e}); choose another address")
        })?;
        tokio::spawn(crate::server::metrics::serve(
            listener,
            metrics.clone(),
            tokio_util::sync::CancellationToken::new(),
        ));
    }
    let listener = super::serve::bind(args.listen).await?;
    tracing::info!(address = %args.listen, "gateway listening");
    crate::gateway::run(listener, config, metrics, shutdown_signal())
        .await
        .wrap_err("the gateway stopped with an error")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> GatewayArgs {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: GatewayArgs,
        }
        let mut argv = vec!["gateway"];
        argv.extend_from_slice(extra);
        <Wrapper as clap::Parser>::try_parse_from(argv)
            .unwrap()
            .args
    }

    #[test]
    fn routes_come_from_a_file_and_the_command_line_each_part_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("routes.toml");
        std::fs::write(
            &file,
            "[routes]\ninventory = [\"http://10.0.0.5:50051\", \"http://10.0.0.6:50051\"]\nauth = [\"http://10.0.0.5:50051\"]\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let routes = args(&[
            "--routes-file",
            path,
            "--route",
            "faults=http://10.0.0.7:50051",
        ])
        .routes()
        .unwrap();
        let inventory = routes.iter().find(|(p, _)| *p == Part::Inventory).unwrap();
        assert_eq!(inventory.1.len(), 2);
        assert!(routes.iter().any(|(p, _)| *p == Part::Faults));

        let twice = args(&[
            "--routes-file",
            path,
            "--route",
            "auth=http://10.0.0.9:50051",
        ])
        .routes()
        .unwrap_err()
        .to_string();
        assert!(twice.contains("auth is routed twice"), "{twice}");
        let no_auth = args(&["--route", "faults=http://10.0.0.7:50051"])
            .routes()
            .unwrap_err()
            .to_string();
        assert!(no_auth.contains("no route for auth"), "{no_auth}");
        std::fs::write(&file, "[routes]\nlamps = [\"http://10.0.0.5:50051\"]\n").unwrap();
        let unknown = args(&["--routes-file", path])
            .routes()
            .unwrap_err()
            .to_string();
        assert!(
            unknown.contains("\"lamps\" is not a part of the API"),
            "{unknown}"
        );
        std::fs::write(&file, "[roots]\nauth = []\n").unwrap();
        let malformed = args(&["--routes-file", path])
            .routes()
            .unwrap_err()
            .to_string();
        assert!(malformed.contains("routes.toml"), "{malformed}");
    }

    #[test]
    fn the_gateway_serves_plaintext_only_on_loopback_unless_told() {
        let route = ["--route", "auth=http://10.0.0.5:50051"];
        let open = args(&[&["--listen", "0.0.0.0:50050"][..], &route[..]].concat());
        let refused = open.tls.identity(open.listen).unwrap_err().to_string();
        assert!(refused.contains("--insecure"), "{refused}");
        let told = args(&[&["--listen", "0.0.0.0:50050", "--insecure"][..], &route[..]].concat());
        assert!(told.tls.identity(told.listen).unwrap().is_none());
        let local = args(&route);
        assert!(local.tls.identity(local.listen).unwrap().is_none());
    }

    #[test]
    fn a_route_names_a_part_and_its_instances() {
        let (part, urls) = route("inventory=http://10.0.0.5:50051,http://10.0.0.6:50051").unwrap();
        assert_eq!(part, Part::Inventory);
        assert_eq!(urls.len(), 2);
        let error = route("lamps=http://10.0.0.5:50051")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("\"lamps\" is not a part of the API"),
            "{error}"
        );
        assert!(
            route("inventory")
                .unwrap_err()
                .to_string()
                .contains("PART=URL")
        );
    }
}
