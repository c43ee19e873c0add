//! `singularity seed`: creates the schema and loads a generated estate plus one user per role.

use super::output::outln;
use std::time::Instant;

use clap::Args;
use color_eyre::eyre::{Result, WrapErr, eyre};
use rand::Rng;
use rand::distr::Alphanumeric;

use super::serve::open_store;
use super::{DEFAULT_DATABASE_URL, init_logging};
use chrono::{NaiveDate, NaiveTime};

use crate::domain::billing::calendar::Calendar;
use crate::domain::billing::{Band, NewTariff};
use crate::domain::estate::{City, EstateSpec, generate};
use crate::domain::inventory::{EntityStatus, NewUser, Role, validate_password};
use crate::passwords;
use crate::store::{EstateCounts, Store};

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Where the estate is stored: sqlite://path/to/file.db.
    #[arg(long, env = "SINGULARITY_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Number of lamps to generate.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u32).range(1..=5_000_000))]
    pub lamps: u32,
    /// Seed of the generator: the same seed gives the same estate.
    #[arg(long, default_value_t = 1)]
    pub rng_seed: u64,
    /// City to lay the estate out around: london, manchester or melbourne.
    #[arg(long, default_value = "london")]
    pub city: String,
    /// Replace an estate that is already there.
    #[arg(long)]
    pub reset: bool,
    /// Log filter.
    #[arg(long, env = "RUST_LOG", default_value = "warn")]
    pub log_level: String,
}

pub async fn run(args: SeedArgs) -> Result<()> {
    init_logging(&args.log_level, super::LogFormat::Human)?;
    let city = City::by_key(&args.city).map_err(|e| eyre!("--{e}"))?;
    let store = open_store(&args.database_url)?;
    let spec = EstateSpec {
        lamps: args.lamps,
        rng_seed: args.rng_seed,
        city,
    };
    let store_for_seed = store.clone();
    let reset = args.reset;
    let summary =
        tokio::task::spawn_blocking(move || seed(store_for_seed.as_ref(), &spec, reset)).await??;
    store.close();
    outln!("{summary}");
    Ok(())
}

/// The users every estate gets, one per role, and the variable that can set each password.
pub const SEED_USERS: [(&str, Role, &str); 4] = [
    ("admin", Role::Admin, "SINGULARITY_ADMIN_PASSWORD"),
    ("manager", Role::Manager, "SINGULARITY_MANAGER_PASSWORD"),
    ("operator", Role::User, "SINGULARITY_OPERATOR_PASSWORD"),
    ("dev", Role::Dev, "SINGULARITY_DEV_PASSWORD"),
];

/// Generates and loads an estate; returns a report to print once (it may hold passwords).
pub fn seed(store: &dyn Store, spec: &EstateSpec, reset: bool) -> Result<String> {
    let started = Instant::now();
    if reset {
        store.reset().wrap_err("cannot clear the database")?;
    }
    let estate = generate(spec);
    let generated = started.elapsed();
    let counts = store.import_estate(&estate)?;
    let tariff = default_tariff(spec.city.time_zone)?;
    let tariff = store.set_tariff(Calendar::london(), None, tariff)?;
    let loaded = started.elapsed();
    let mut report = describe(&counts, spec);
    report.push_str(&format!(
        "\ntariff {} {:?} from {}: {}\n",
        tariff.id,
        tariff.terms.name,
        tariff.terms.valid_from,
        tariff
            .terms
            .bands
            .iter()
            .map(|b| format!(
                "{} from {} at {:.3} p/kWh",
                b.name,
                b.starts_at.format("%H:%M"),
                f64::from(b.price_millipence_per_kwh) / 1000.0
            ))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    report.push_str(&format!(
        "\ngenerated in {:.2} s, stored in {:.2} s\n\nUsers (passwords are shown only now; set them with the variables named to choose your own):\n",
        generated.as_secs_f64(),
        (loaded - generated).as_secs_f64()
    ));
    for (username, role, variable) in SEED_USERS {
        let (password, shown) = match std::env::var(variable) {
            Ok(chosen) => {
                validate_password(variable, &chosen).map_err(|e| eyre!("{e}"))?;
                (chosen, format!("(from {variable})"))
            }
            Err(_) => {
                let random: String = rand::rng()
                    .sample_iter(&Alphanumeric)
                    .take(16)
                    .map(char::from)
                    .collect();
                (random.clone(), random)
            }
        };
        let password_hash = passwords::hash(&password)?;
        store.create_user(NewUser {
            username: username.to_owned(),
            display_name: format!("{} ({})", username, role.as_str()),
            role,
            password_hash,
            status: EntityStatus::Active,
        })?;
        report.push_str(&format!("  {username:<9} {:<8} {shown}\n", role.as_str()));
    }
    Ok(report)
}

/// A typical unmetered-supply day/night tariff, in the estate's own time zone; replace it
/// with `client billing set-tariff`.
fn default_tariff(time_zone: &str) -> Result<NewTariff> {
    let band = |name: &str, hour, minute, price| {
        Ok::<_, color_eyre::Report>(Band {
            name: name.to_owned(),
            starts_at: NaiveTime::from_hms_opt(hour, minute, 0)
                .ok_or_else(|| eyre!("bad band start"))?,
            price_millipence_per_kwh: price,
        })
    };
    NewTariff {
        name: "Unmetered supply, day/night".to_owned(),
        time_zone: time_zone
            .parse()
            .map_err(|_| eyre!("{time_zone} is not a time zone"))?,
        valid_from: NaiveDate::from_ymd_opt(2020, 1, 1).ok_or_else(|| eyre!("bad date"))?,
        valid_to: None,
        bands: vec![band("night", 0, 30, 17_500)?, band("day", 7, 30, 27_300)?],
    }
    .validate()
    .map_err(|e| eyre!("{e}"))
}

fn describe(counts: &EstateCounts, spec: &EstateSpec) -> String {
    format!(
        "Seeded an estate around {} (rng seed {}):\n  {} lamps on {} assets, {} telecells, {} basestations, {} zones, {} circuits",
        spec.city.name,
        spec.rng_seed,
        counts.lamps,
        counts.assets,
        counts.telecells,
        counts.basestations,
        counts.zones,
        counts.circuits
    )
}
