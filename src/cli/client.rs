//! `singularity client`: every inventory RPC from the command line, printed as a table or
//! JSON, with exit codes a script can act on.

use std::process::ExitCode;

use crate::link::AuthedChannel;
use clap::{Args, Subcommand};
use futures::StreamExt;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

use super::DEFAULT_SERVER;
use super::calls::Failure;
use super::calls::all_pages;
use super::output::{Fields, print_many, print_one};
use super::sign_in::SignInArgs;
use crate::domain::inventory::{EntityStatus, Role};
use crate::proto::{
    self, assets_client::AssetsClient, basestations_client::BasestationsClient,
    catalog_client::CatalogClient, lamps_client::LampsClient, telecells_client::TelecellsClient,
    users_client::UsersClient,
};
use crate::wire;

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Server to call; several separated by commas: the first that answers takes the call.
    #[arg(long, env = "SINGULARITY_SERVER", default_value = DEFAULT_SERVER, global = true)]
    server: String,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    sign_in: SignInArgs,
    #[command(subcommand)]
    command: ClientCommand,
}

/// Signing in and the audit trail, or a call on the estate (which needs a session).
#[derive(Debug, Subcommand)]
enum ClientCommand {
    #[command(flatten)]
    Account(super::account::AccountCommand),
    #[command(flatten)]
    Estate(Resource),
}

#[derive(Debug, Subcommand)]
enum Resource {
    /// Radio gateways.
    Basestations {
        #[command(subcommand)]
        action: BasestationAction,
    },
    /// Radio nodes on the lamps.
    Telecells {
        #[command(subcommand)]
        action: TelecellAction,
    },
    /// Lampposts (columns).
    Assets {
        #[command(subcommand)]
        action: AssetAction,
    },
    /// Lamps (luminaires).
    Lamps {
        #[command(subcommand)]
        action: LampAction,
    },
    /// People and their roles.
    Users {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Faults: list, detail, Daily Faults, watch, triage.
    Faults {
        #[command(subcommand)]
        action: super::faults::FaultCommand,
    },
    /// Energy billing: totals, a lamp's half-hours, live totals, tariffs.
    Billing {
        #[command(subcommand)]
        action: super::billing::BillingCommand,
    },
    /// Zones (wards).
    Zones,
    /// Circuits (feeder pillars).
    Circuits {
        /// Only circuits of this zone.
        #[arg(long)]
        zone: Option<i64>,
    },
    /// Lamp types and their wattages.
    LampTypes,
}

#[derive(Debug, Args)]
struct IdArg {
    /// The record's id.
    id: i64,
}

#[derive(Debug, Args)]
struct ListFlags {
    /// Only records in this status: active, inactive, unavailable or deleted.
    #[arg(long, value_parser = parse_status)]
    status: Option<EntityStatus>,
    /// Include soft-deleted records.
    #[arg(long)]
    include_deleted: bool,
    /// Records per page (1-1000).
    #[arg(long)]
    page_size: Option<i32>,
    /// Resume after the page that carried this token.
    #[arg(long, default_value = "")]
    page_token: String,
    /// Stop after this many records.
    #[arg(long)]
    limit: Option<i64>,
}

#[derive(Debug, Args)]
struct SearchFlags {
    /// The box: south,west,north,east in decimal degrees (west > east crosses the antimeridian).
    #[arg(long = "box", value_parser = parse_box, allow_hyphen_values = true)]
    area: proto::GeoBox,
    /// Include soft-deleted records.
    #[arg(long)]
    include_deleted: bool,
}

#[derive(Debug, Args)]
struct LocationFlags {
    /// Latitude in decimal degrees (with --lon).
    #[arg(long, allow_hyphen_values = true, requires = "lon")]
    lat: Option<f64>,
    /// Longitude in decimal degrees (with --lat).
    #[arg(long, allow_hyphen_values = true, requires = "lat")]
    lon: Option<f64>,
}

impl LocationFlags {
    fn point(&self) -> Option<proto::GeoPoint> {
        Some(proto::GeoPoint {
            lat: self.lat?,
            lon: self.lon?,
        })
    }
}

#[derive(Debug, Args)]
struct ChangeFlags {
    /// Refuse the change unless the record is still at this version.
    #[arg(long)]
    expected_version: Option<i64>,
    /// New status: active, inactive, unavailable or deleted.
    #[arg(long, value_parser = parse_status)]
    status: Option<EntityStatus>,
}

#[derive(Debug, Subcommand)]
enum BasestationAction {
    /// One basestation.
    Get(IdArg),
    /// Basestations in id order, page by page.
    List(ListFlags),
    /// Basestations inside a box.
    Search(SearchFlags),
    /// Add a basestation.
    Create {
        /// Its name, e.g. BS-Victoria.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        location: LocationFlags,
        /// Firmware version.
        #[arg(long, default_value = "")]
        firmware: String,
        /// Hardware uuid; generated when omitted.
        #[arg(long, default_value = "")]
        uuid: String,
    },
    /// Change a basestation's fields.
    Update {
        /// The basestation's id.
        id: i64,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New firmware version.
        #[arg(long)]
        firmware: Option<String>,
        #[command(flatten)]
        location: LocationFlags,
        #[command(flatten)]
        change: ChangeFlags,
    },
    /// Soft delete (status DELETED; prune removes it for good).
    Delete(IdArg),
    /// Remove a soft-deleted basestation for good.
    Prune(IdArg),
}

#[derive(Debug, Subcommand)]
enum TelecellAction {
    /// One telecell.
    Get(IdArg),
    /// Telecells in id order, page by page.
    List(ListFlags),
    /// Telecells inside a box.
    Search(SearchFlags),
    /// Add a telecell.
    Create {
        /// The basestation it reports through.
        #[arg(long)]
        basestation: i64,
        #[command(flatten)]
        location: LocationFlags,
        /// The telecell this one relays through.
        #[arg(long, default_value_t = 0)]
        relay_via: i64,
        /// Firmware version.
        #[arg(long, default_value = "")]
        firmware: String,
        /// Hardware uuid; generated when omitted.
        #[arg(long, default_value = "")]
        uuid: String,
    },
    /// Change a telecell's fields.
    Update {
        /// The telecell's id.
        id: i64,
        /// Move it to this basestation.
        #[arg(long)]
        basestation: Option<i64>,
        /// 0 stops relaying.
        #[arg(long)]
        relay_via: Option<i64>,
        /// New firmware version.
        #[arg(long)]
        firmware: Option<String>,
        #[command(flatten)]
        location: LocationFlags,
        #[command(flatten)]
        change: ChangeFlags,
    },
    /// Soft delete (status DELETED; prune removes it for good).
    Delete(IdArg),
    /// Remove a soft-deleted telecell for good.
    Prune(IdArg),
    /// Make the telecell drive these lamps.
    Link {
        /// The telecell's id.
        id: i64,
        /// Lamp ids, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        lamps: Vec<i64>,
    },
    /// Stop the telecell driving these lamps.
    Unlink {
        /// The telecell's id.
        id: i64,
        /// Lamp ids, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        lamps: Vec<i64>,
    },
}

#[derive(Debug, Subcommand)]
enum AssetAction {
    /// One asset (lamppost).
    Get(IdArg),
    /// Assets in id order, page by page.
    List(ListFlags),
    /// Assets inside a box.
    Search(SearchFlags),
    /// Add an asset.
    Create {
        /// Its reference, e.g. COL-0001234.
        #[arg(long)]
        reference: String,
        #[command(flatten)]
        location: LocationFlags,
        /// The zone (ward) it stands in.
        #[arg(long)]
        zone: i64,
        /// The circuit feeding it (0: none).
        #[arg(long, default_value_t = 0)]
        circuit: i64,
    },
    /// Change an asset's fields.
    Update {
        /// The asset's id.
        id: i64,
        /// New reference.
        #[arg(long)]
        reference: Option<String>,
        /// Move it to this zone.
        #[arg(long)]
        zone: Option<i64>,
        /// 0 takes the asset off its circuit.
        #[arg(long)]
        circuit: Option<i64>,
        #[command(flatten)]
        location: LocationFlags,
        #[command(flatten)]
        change: ChangeFlags,
    },
    /// Soft delete (status DELETED; prune removes it for good).
    Delete(IdArg),
    /// Remove a soft-deleted asset for good.
    Prune(IdArg),
}

#[derive(Debug, Subcommand)]
enum LampAction {
    /// One lamp.
    Get(IdArg),
    /// Lamps in id order, page by page.
    List(ListFlags),
    /// Lamps on assets inside a box.
    Search(SearchFlags),
    /// Add a lamp.
    Create {
        /// Its reference, e.g. LMP-0001234.
        #[arg(long)]
        reference: String,
        /// Its lamp type (ids from `client lamp-types`).
        #[arg(long)]
        lamp_type: i64,
        /// The asset it is mounted on (0: none yet).
        #[arg(long, default_value_t = 0)]
        asset: i64,
        /// The telecell that drives it (0: none yet).
        #[arg(long, default_value_t = 0)]
        telecell: i64,
    },
    /// Change a lamp's fields.
    Update {
        /// The lamp's id.
        id: i64,
        /// New reference.
        #[arg(long)]
        reference: Option<String>,
        /// New lamp type.
        #[arg(long)]
        lamp_type: Option<i64>,
        #[command(flatten)]
        change: ChangeFlags,
    },
    /// Soft delete (status DELETED; prune removes it for good).
    Delete(IdArg),
    /// Remove a soft-deleted lamp for good.
    Prune(IdArg),
    /// The lamp's latest reading and derived health.
    Status(IdArg),
    /// Mount the lamp on an asset.
    Mount {
        /// The lamp's id.
        id: i64,
        /// The asset to mount it on.
        #[arg(long)]
        asset: i64,
    },
}

#[derive(Debug, Subcommand)]
enum UserAction {
    /// One user.
    Get(IdArg),
    /// Users in id order.
    List(ListFlags),
    /// Create a user; the password is prompted for (without echo) unless --password-env names
    /// a variable that holds it.
    Create {
        /// The name they sign in with.
        #[arg(long)]
        username: String,
        /// admin, manager, user or dev.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Their full name, for people.
        #[arg(long, default_value = "")]
        display_name: String,
        /// Read the password from this environment variable instead of prompting.
        #[arg(long)]
        password_env: Option<String>,
    },
    /// Change a user's name, role or password.
    Update {
        /// The user's id.
        id: i64,
        /// New full name.
        #[arg(long)]
        display_name: Option<String>,
        /// New role: admin, manager, user or dev.
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
        /// Prompt for a new password.
        #[arg(long)]
        new_password: bool,
        /// Read the new password from this environment variable.
        #[arg(long)]
        password_env: Option<String>,
        #[command(flatten)]
        change: ChangeFlags,
    },
    /// Soft delete: the user can no longer sign in.
    Delete(IdArg),
    /// Remove a soft-deleted user for good.
    Prune(IdArg),
}

pub async fn run(args: ClientArgs) -> ExitCode {
    let server = args.server.clone();
    match dispatch(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Connect(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(6)
        }
        // The connection went away under the call: typically plain http to a TLS port,
        // whose server drops what it cannot read.
        Err(Failure::Rpc(status))
            if matches!(status.code(), Code::Cancelled | Code::Unknown)
                && server.starts_with("http://") =>
        {
            eprintln!(
                "error: the server at {server} dropped the connection ({}); if it uses TLS, use an https:// URL",
                status.message()
            );
            ExitCode::from(6)
        }
        Err(Failure::Rpc(status)) => {
            eprintln!("error ({:?}): {}", status.code(), status.message());
            ExitCode::from(exit_code(status.code()))
        }
    }
}

/// 3 not found, 4 invalid argument, 5 conflict (exists, stale, precondition), 6 unavailable,
/// 7 not allowed, 1 anything else.
fn exit_code(code: Code) -> u8 {
    match code {
        Code::NotFound => 3,
        Code::InvalidArgument | Code::OutOfRange => 4,
        Code::AlreadyExists | Code::Aborted | Code::FailedPrecondition => 5,
        Code::Unavailable | Code::DeadlineExceeded => 6,
        Code::Unauthenticated | Code::PermissionDenied => 7,
        _ => 1,
    }
}

/// Connects now. Given several servers, returns once one of them answers, with a channel
/// over all of them (calls go to those serving); the error names each that could not be
/// reached.
pub async fn connect(server: &str, ca_pem: Option<&[u8]>) -> Result<Channel, String> {
    let servers = crate::link::servers(server)?;
    let mut failures = Vec::new();
    for one in &servers {
        match crate::link::endpoint(one, ca_pem)?.connect().await {
            Ok(channel) if servers.len() == 1 => return Ok(channel),
            Ok(_) => return crate::link::lazy_channel(server, ca_pem, |endpoint| endpoint),
            Err(e) => failures.push(connect_error(one, ca_pem.is_some(), &e)),
        }
    }
    Err(failures.join("; "))
}

/// Why a connection failed, in words that say what to do: an untrusted certificate is not
/// "unreachable", and plain http to a TLS port wants https.
fn connect_error(server: &str, with_ca: bool, error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    let lower = chain.to_lowercase();
    if lower.contains("certificate") || lower.contains("unknownissuer") {
        let trusted = if with_ca {
            "the CA given with --ca"
        } else {
            "the system's roots (give --ca with the CA that signed it)"
        };
        return format!(
            "the server at {server} presented a certificate that was not trusted, checked against {trusted}: {chain}"
        );
    }
    let hint = if server.starts_with("http://") {
        "; if the server uses TLS, use an https:// URL"
    } else {
        ""
    };
    format!(
        "cannot reach the server at {server} ({chain}); is it running? set --server or SINGULARITY_SERVER{hint}"
    )
}

async fn dispatch(args: ClientArgs) -> Result<(), Failure> {
    let ca = args.sign_in.ca_pem().map_err(Failure::Usage)?;
    let channel = connect(&args.server, ca.as_deref())
        .await
        .map_err(Failure::Connect)?;
    let json = args.json;
    let resource = match args.command {
        ClientCommand::Account(command) => {
            return super::account::run(channel, &args.sign_in, command, json).await;
        }
        ClientCommand::Estate(resource) => resource,
    };
    let (channel, _) = args.sign_in.link(channel).await.map_err(Failure::Usage)?;
    match resource {
        Resource::Basestations { action } => {
            basestations(BasestationsClient::new(channel), action, json).await
        }
        Resource::Telecells { action } => {
            telecells(TelecellsClient::new(channel), action, json).await
        }
        Resource::Assets { action } => assets(AssetsClient::new(channel), action, json).await,
        Resource::Lamps { action } => lamps(LampsClient::new(channel), action, json).await,
        Resource::Users { action } => users(UsersClient::new(channel), action, json).await,
        Resource::Faults { action } => super::faults::run(channel, action, json).await,
        Resource::Billing { action } => super::billing::run(channel, action, json).await,
        Resource::Zones => {
            let reply = CatalogClient::new(channel)
                .list_zones(proto::ListZonesRequest {})
                .await?;
            print_many(&reply.into_inner().zones, json);
            Ok(())
        }
        Resource::Circuits { zone } => {
            let catalog = CatalogClient::new(channel);
            let zone_id = zone.unwrap_or_default();
            let circuits = all_pages(|page_token| {
                let mut catalog = catalog.clone();
                async move {
                    let reply = catalog
                        .list_circuits(proto::ListCircuitsRequest {
                            zone_id,
                            page_token,
                        })
                        .await?
                        .into_inner();
                    Ok((reply.circuits, reply.next_page_token))
                }
            })
            .await?;
            print_many(&circuits, json);
            Ok(())
        }
        Resource::LampTypes => {
            let reply = CatalogClient::new(channel)
                .list_lamp_types(proto::ListLampTypesRequest {})
                .await?;
            print_many(&reply.into_inner().lamp_types, json);
            Ok(())
        }
    }
}

fn list_options(flags: ListFlags) -> proto::ListOptions {
    proto::ListOptions {
        page_size: flags.page_size,
        page_token: flags.page_token,
        status: flags
            .status
            .map(|s| wire::entity_status(s) as i32)
            .unwrap_or_default(),
        include_deleted: flags.include_deleted,
        limit: flags.limit,
    }
}

fn search_request(flags: SearchFlags) -> proto::SearchByLocationRequest {
    proto::SearchByLocationRequest {
        r#box: Some(flags.area),
        page_size: None,
        include_deleted: flags.include_deleted,
    }
}

fn status_value(status: Option<EntityStatus>) -> i32 {
    status
        .map(|s| wire::entity_status(s) as i32)
        .unwrap_or_default()
}

/// Collects every page of a listing, then prints it.
async fn print_pages<P, T: Fields>(
    stream: Result<tonic::Response<Streaming<P>>, Status>,
    items: fn(P) -> Vec<T>,
    json: bool,
) -> Result<(), Failure> {
    let mut stream = stream?.into_inner();
    let mut all = Vec::new();
    while let Some(page) = stream.next().await {
        all.extend(items(page?));
    }
    print_many(&all, json);
    Ok(())
}

fn show<T: Fields>(reply: Result<tonic::Response<T>, Status>, json: bool) -> Result<(), Failure> {
    print_one(&reply?.into_inner(), json);
    Ok(())
}

async fn basestations(
    mut c: BasestationsClient<AuthedChannel>,
    action: BasestationAction,
    json: bool,
) -> Result<(), Failure> {
    use BasestationAction as A;
    match action {
        A::Get(IdArg { id }) => show(c.get(proto::IdRequest { id }).await, json),
        A::List(flags) => {
            print_pages(
                c.list(list_options(flags)).await,
                |p: proto::BasestationPage| p.items,
                json,
            )
            .await
        }
        A::Search(flags) => {
            print_pages(
                c.search_by_location(search_request(flags)).await,
                |p: proto::BasestationPage| p.items,
                json,
            )
            .await
        }
        A::Create {
            name,
            location,
            firmware,
            uuid,
        } => {
            let request = proto::CreateBasestationRequest {
                uuid,
                name,
                firmware_version: firmware,
                location: location.point(),
                status: 0,
            };
            show(c.create(request).await, json)
        }
        A::Update {
            id,
            name,
            firmware,
            location,
            change,
        } => {
            let request = proto::UpdateBasestationRequest {
                id,
                expected_version: change.expected_version,
                name,
                firmware_version: firmware,
                location: location.point(),
                status: status_value(change.status),
            };
            show(c.update(request).await, json)
        }
        A::Delete(IdArg { id }) => show(c.delete(proto::IdRequest { id }).await, json),
        A::Prune(IdArg { id }) => show(c.prune(proto::IdRequest { id }).await, json),
    }
}

async fn telecells(
    mut c: TelecellsClient<AuthedChannel>,
    action: TelecellAction,
    json: bool,
) -> Result<(), Failure> {
    use TelecellAction as A;
    let linked = |reply: Result<tonic::Response<proto::TelecellLampsResponse>, Status>| {
        reply.map(|r| tonic::Response::new(r.into_inner().telecell.unwrap_or_default()))
    };
    match action {
        A::Get(IdArg { id }) => show(c.get(proto::IdRequest { id }).await, json),
        A::List(flags) => {
            print_pages(
                c.list(list_options(flags)).await,
                |p: proto::TelecellPage| p.items,
                json,
            )
            .await
        }
        A::Search(flags) => {
            print_pages(
                c.search_by_location(search_request(flags)).await,
                |p: proto::TelecellPage| p.items,
                json,
            )
            .await
        }
        A::Create {
            basestation,
            location,
            relay_via,
            firmware,
            uuid,
        } => {
            let request = proto::CreateTelecellRequest {
                uuid,
                basestation_id: basestation,
                relay_via_id: relay_via,
                location: location.point(),
                firmware_version: firmware,
                status: 0,
            };
            show(c.create(request).await, json)
        }
        A::Update {
            id,
            basestation,
            relay_via,
            firmware,
            location,
            change,
        } => {
            let request = proto::UpdateTelecellRequest {
                id,
                expected_version: change.expected_version,
                basestation_id: basestation,
                relay_via_id: relay_via,
                location: location.point(),
                firmware_version: firmware,
                status: status_value(change.status),
            };
            show(c.update(request).await, json)
        }
        A::Delete(IdArg { id }) => show(c.delete(proto::IdRequest { id }).await, json),
        A::Prune(IdArg { id }) => show(c.prune(proto::IdRequest { id }).await, json),
        A::Link { id, lamps } => {
            let request = proto::TelecellLampsRequest {
                telecell_id: id,
                lamp_ids: lamps,
            };
            show(linked(c.add_to_lamps(request).await), json)
        }
        A::Unlink { id, lamps } => {
            let request = proto::TelecellLampsRequest {
                telecell_id: id,
                lamp_ids: lamps,
            };
            show(linked(c.remove_from_lamps(request).await), json)
        }
    }
}

async fn assets(
    mut c: AssetsClient<AuthedChannel>,
    action: AssetAction,
    json: bool,
) -> Result<(), Failure> {
    use AssetAction as A;
    match action {
        A::Get(IdArg { id }) => show(c.get(proto::IdRequest { id }).await, json),
        A::List(flags) => {
            print_pages(
                c.list(list_options(flags)).await,
                |p: proto::AssetPage| p.items,
                json,
            )
            .await
        }
        A::Search(flags) => {
            print_pages(
                c.search_by_location(search_request(flags)).await,
                |p: proto::AssetPage| p.items,
                json,
            )
            .await
        }
        A::Create {
            reference,
            location,
            zone,
            circuit,
        } => {
            let request = proto::CreateAssetRequest {
                reference,
                location: location.point(),
                zone_id: zone,
                circuit_id: circuit,
                status: 0,
            };
            show(c.create(request).await, json)
        }
        A::Update {
            id,
            reference,
            zone,
            circuit,
            location,
            change,
        } => {
            let request = proto::UpdateAssetRequest {
                id,
                expected_version: change.expected_version,
                reference,
                location: location.point(),
                zone_id: zone,
                circuit_id: circuit,
                status: status_value(change.status),
            };
            show(c.update(request).await, json)
        }
        A::Delete(IdArg { id }) => show(c.delete(proto::IdRequest { id }).await, json),
        A::Prune(IdArg { id }) => show(c.prune(proto::IdRequest { id }).await, json),
    }
}

async fn lamps(
    mut c: LampsClient<AuthedChannel>,
    action: LampAction,
    json: bool,
) -> Result<(), Failure> {
    use LampAction as A;
    match action {
        A::Get(IdArg { id }) => show(c.get(proto::IdRequest { id }).await, json),
        A::List(flags) => {
            print_pages(
                c.list(list_options(flags)).await,
                |p: proto::LampPage| p.items,
                json,
            )
            .await
        }
        A::Search(flags) => {
            print_pages(
                c.search_by_location(search_request(flags)).await,
                |p: proto::LampPage| p.items,
                json,
            )
            .await
        }
        A::Create {
            reference,
            lamp_type,
            asset,
            telecell,
        } => {
            let request = proto::CreateLampRequest {
                reference,
                asset_id: asset,
                lamp_type_id: lamp_type,
                telecell_id: telecell,
                status: 0,
            };
            show(c.create(request).await, json)
        }
        A::Update {
            id,
            reference,
            lamp_type,
            change,
        } => {
            let request = proto::UpdateLampRequest {
                id,
                expected_version: change.expected_version,
                reference,
                lamp_type_id: lamp_type,
                status: status_value(change.status),
            };
            show(c.update(request).await, json)
        }
        A::Delete(IdArg { id }) => show(c.delete(proto::IdRequest { id }).await, json),
        A::Prune(IdArg { id }) => show(c.prune(proto::IdRequest { id }).await, json),
        A::Status(IdArg { id }) => show(c.get_status(proto::IdRequest { id }).await, json),
        A::Mount { id, asset } => show(
            c.add_to_asset(proto::AddToAssetRequest {
                lamp_id: id,
                asset_id: asset,
            })
            .await,
            json,
        ),
    }
}

async fn users(
    mut c: UsersClient<AuthedChannel>,
    action: UserAction,
    json: bool,
) -> Result<(), Failure> {
    use UserAction as A;
    match action {
        A::Get(IdArg { id }) => show(c.get(proto::IdRequest { id }).await, json),
        A::List(flags) => {
            print_pages(
                c.list(list_options(flags)).await,
                |p: proto::UserPage| p.items,
                json,
            )
            .await
        }
        A::Create {
            username,
            role,
            display_name,
            password_env,
        } => {
            let password = read_password(password_env.as_deref())?;
            let request = proto::CreateUserRequest {
                username,
                display_name,
                role: wire::role(role).into(),
                password,
                status: 0,
            };
            show(c.create(request).await, json)
        }
        A::Update {
            id,
            display_name,
            role,
            new_password,
            password_env,
            change,
        } => {
            let password = if new_password || password_env.is_some() {
                Some(read_password(password_env.as_deref())?)
            } else {
                None
            };
            let request = proto::UpdateUserRequest {
                id,
                expected_version: change.expected_version,
                display_name,
                role: role.map(|r| wire::role(r) as i32).unwrap_or_default(),
                password,
                status: status_value(change.status),
            };
            show(c.update(request).await, json)
        }
        A::Delete(IdArg { id }) => show(c.delete(proto::IdRequest { id }).await, json),
        A::Prune(IdArg { id }) => show(c.prune(proto::IdRequest { id }).await, json),
    }
}

/// The password from the named variable, or typed at a prompt without echo.
fn read_password(variable: Option<&str>) -> Result<String, Failure> {
    match variable {
        Some(name) => std::env::var(name)
            .map_err(|_| Failure::Usage(format!("--password-env names {name}, which is not set"))),
        None => rpassword::prompt_password("Password: ").map_err(|e| {
            Failure::Usage(format!(
                "cannot read a password from the terminal ({e}); use --password-env"
            ))
        }),
    }
}

fn parse_status(text: &str) -> Result<EntityStatus, String> {
    EntityStatus::parse(text)
        .ok_or_else(|| "expected active, inactive, unavailable or deleted".to_owned())
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| "expected admin, manager, user or dev".to_owned())
}

fn parse_box(text: &str) -> Result<proto::GeoBox, String> {
    let parts: Vec<f64> = text
        .split(',')
        .map(|part| part.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| "expected four numbers: south,west,north,east".to_owned())?;
    match parts.as_slice() {
        [south, west, north, east] => Ok(proto::GeoBox {
            south: *south,
            west: *west,
            north: *north,
            east: *east,
        }),
        _ => Err("expected four numbers: south,west,north,east".to_owned()),
    }
}
