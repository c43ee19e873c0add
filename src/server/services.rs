//! Which parts of the API a server process serves (`--services`). Each name stands for the
//! gRPC services it owns; a process serves health and reflection for what it serves. The
//! work that must happen once (judging reports, the offline sweep, settlement, retention)
//! is fed by ingest, so only processes serving telemetry take part in choosing its leader.

use std::fmt;

/// One part of the API, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    Inventory,
    Telemetry,
    Faults,
    Billing,
    Auth,
}

impl Part {
    pub const ALL: [Part; 5] = [
        Part::Inventory,
        Part::Telemetry,
        Part::Faults,
        Part::Billing,
        Part::Auth,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Part::Inventory => "inventory",
            Part::Telemetry => "telemetry",
            Part::Faults => "faults",
            Part::Billing => "billing",
            Part::Auth => "auth",
        }
    }

    /// The fully qualified gRPC services this part owns.
    pub fn grpc_services(self) -> &'static [&'static str] {
        match self {
            Part::Inventory => &[
                "singularity.v1.Basestations",
                "singularity.v1.Telecells",
                "singularity.v1.Assets",
                "singularity.v1.Lamps",
                "singularity.v1.Catalog",
            ],
            Part::Telemetry => &["singularity.v1.Telemetry"],
            Part::Faults => &["singularity.v1.Faults", "singularity.v1.Presence"],
            Part::Billing => &["singularity.v1.Billing"],
            Part::Auth => &[
                "singularity.v1.Auth",
                "singularity.v1.Users",
                "singularity.v1.Audit",
            ],
        }
    }

    /// The part with a command-line name.
    pub fn named(name: &str) -> Option<Part> {
        Part::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The part that owns a fully qualified gRPC service, if any.
    pub fn owning(grpc_service: &str) -> Option<Part> {
        Part::ALL
            .into_iter()
            .find(|part| part.grpc_services().contains(&grpc_service))
    }
}

/// A set of parts; every part by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Services(u8);

impl Default for Services {
    fn default() -> Self {
        Self::all()
    }
}

impl Services {
    pub fn all() -> Self {
        Self(0b1_1111)
    }

    fn bit(part: Part) -> u8 {
        1 << (part as u8)
    }

    pub fn serves(self, part: Part) -> bool {
        self.0 & Self::bit(part) != 0
    }

    pub fn is_all(self) -> bool {
        self == Self::all()
    }

    /// Whether the process takes part in choosing the leader (it serves ingest).
    pub fn leads_work(self) -> bool {
        self.serves(Part::Telemetry)
    }

    /// Whether a fully qualified gRPC service is served here.
    pub fn serves_grpc(self, grpc_service: &str) -> bool {
        Part::owning(grpc_service).is_some_and(|part| self.serves(part))
    }

    /// Whether `auth_urls` fit: a process serving auth checks sessions itself and takes none;
    /// one without it must name where auth runs.
    pub fn check_auth_urls(self, auth_urls: &[String]) -> Result<(), String> {
        match (self.serves(Part::Auth), auth_urls.is_empty()) {
            (true, false) => Err(
                "--auth-url is for a process without the auth service; this one serves auth itself: leave --auth-url out".into(),
            ),
            (false, true) => Err(format!(
                "--services {self}: a process without the auth service asks one who each caller is; give --auth-url URL of a process serving auth"
            )),
            _ => Ok(()),
        }
    }

    /// Whether this process asks the inventory's service: it serves billing (lamps and
    /// zones) or telemetry (lamps' wiring) without serving the inventory itself.
    pub fn asks_inventory(self) -> bool {
        !self.serves(Part::Inventory)
            && (self.serves(Part::Billing) || self.serves(Part::Telemetry))
    }

    /// Whether `inventory_urls` fit: a process serving billing or telemetry without the
    /// inventory asks one and must name where it runs; no other process takes them.
    pub fn check_inventory_urls(self, inventory_urls: &[String]) -> Result<(), String> {
        match (self.asks_inventory(), inventory_urls.is_empty()) {
            (false, false) => Err(if self.serves(Part::Inventory) {
                "--inventory-url is for a process without the inventory; this one serves it itself: leave --inventory-url out".into()
            } else {
                format!(
                    "--inventory-url: --services {self} asks nothing of the inventory (only billing and telemetry do); leave it out"
                )
            }),
            (true, true) => Err(format!(
                "--services {self}: billing and telemetry without the inventory ask one for lamps, zones and wiring; give --inventory-url URL of a process serving inventory"
            )),
            _ => Ok(()),
        }
    }

    /// Whether the URLs of `part` (telemetry or faults, given by `flag`) fit: the inventory
    /// run without that part asks it for lamps' status and must name where it runs; no other
    /// process takes them.
    pub fn check_status_urls(self, part: Part, flag: &str, urls: &[String]) -> Result<(), String> {
        let asks = self.serves(Part::Inventory) && !self.serves(part);
        let name = part.name();
        match (asks, urls.is_empty()) {
            (false, false) => Err(format!(
                "{flag}: --services {self} asks nothing of {name} (only the inventory without it does, for lamps' status); leave it out"
            )),
            (true, true) => Err(format!(
                "--services {self}: the inventory without {name} asks it for lamps' status; give {flag} URL of a process serving {name}"
            )),
            _ => Ok(()),
        }
    }

    /// Whether a service account fits: telemetry and billing without the inventory read
    /// every lamp's wiring from it (the fault engine when it takes the leader's role,
    /// settlement apart from telemetry), calls no caller makes, so they need an account of
    /// their own (and its password, unless this process serves auth and opens the session
    /// itself); no other process takes one.
    pub fn check_service_account(
        self,
        username: Option<&str>,
        has_password: bool,
    ) -> Result<(), String> {
        match (self.asks_inventory(), username) {
            (true, None) => Err(format!(
                "--services {self}: telemetry and billing without the inventory read the lamps' wiring from it as an account of their own; give --service-user NAME (a user with any role) and its password in SINGULARITY_SERVICE_PASSWORD"
            )),
            (false, Some(_)) => Err(format!(
                "--service-user: --services {self} needs no account of its own (only telemetry and billing without the inventory do); leave it out"
            )),
            (true, Some(name)) if name.trim().is_empty() => {
                Err("--service-user: give the name of a user".into())
            }
            (true, Some(name)) if !self.serves(Part::Auth) && !has_password => Err(format!(
                "--service-user {name}: the account signs in at the auth service; set SINGULARITY_SERVICE_PASSWORD to its password"
            )),
            _ => Ok(()),
        }
    }

    pub fn parts(self) -> impl Iterator<Item = Part> {
        Part::ALL.into_iter().filter(move |part| self.serves(*part))
    }

    /// `inventory,telemetry,...` (any order, each once).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut set = 0u8;
        for word in list.split(',').map(str::trim) {
            let Some(part) = Part::named(word) else {
                return Err(format!(
                    "{word:?} is not a service; choose from {}",
                    Self::all()
                ));
            };
            if set & Self::bit(part) != 0 {
                return Err(format!("{word} is named twice"));
            }
            set |= Self::bit(part);
        }
        Ok(Self(set))
    }
}

impl fmt::Display for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.parts().map(Part::name).collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_process_without_auth_names_where_auth_runs() {
        let url = vec!["http://10.0.0.5:50051".to_owned()];
        let field = Services::parse("telemetry,faults,billing").unwrap();
        assert_eq!(field.check_auth_urls(&url), Ok(()));
        assert!(
            field
                .check_auth_urls(&[])
                .unwrap_err()
                .contains("--auth-url")
        );
        assert!(
            Services::all()
                .check_auth_urls(&url)
                .unwrap_err()
                .contains("leave --auth-url out")
        );
        assert_eq!(Services::all().check_auth_urls(&[]), Ok(()));
    }

    #[test]
    fn only_billing_or_telemetry_without_the_inventory_names_where_the_inventory_runs() {
        let url = vec!["http://10.0.0.5:50051".to_owned()];
        let field = Services::parse("telemetry,faults,billing").unwrap();
        assert_eq!(field.check_inventory_urls(&url), Ok(()));
        assert!(
            field
                .check_inventory_urls(&[])
                .unwrap_err()
                .contains("--inventory-url")
        );
        assert!(
            Services::all()
                .check_inventory_urls(&url)
                .unwrap_err()
                .contains("leave --inventory-url out")
        );
        let faults = Services::parse("faults").unwrap();
        assert_eq!(faults.check_inventory_urls(&[]), Ok(()));
        assert!(faults.check_inventory_urls(&url).is_err());
        let telemetry = Services::parse("telemetry").unwrap();
        assert_eq!(telemetry.check_inventory_urls(&url), Ok(()));
        assert!(telemetry.check_inventory_urls(&[]).is_err());
    }

    #[test]
    fn only_the_inventory_without_telemetry_or_faults_names_where_they_run() {
        let url = vec!["http://10.0.0.7:50051".to_owned()];
        let inventory = Services::parse("inventory,auth").unwrap();
        for part in [Part::Telemetry, Part::Faults] {
            assert_eq!(inventory.check_status_urls(part, "--x-url", &url), Ok(()));
            let missing = inventory
                .check_status_urls(part, "--x-url", &[])
                .unwrap_err();
            assert!(missing.contains("give --x-url URL"), "{missing}");
            assert_eq!(
                Services::all().check_status_urls(part, "--x-url", &[]),
                Ok(())
            );
            assert!(
                Services::all()
                    .check_status_urls(part, "--x-url", &url)
                    .is_err()
            );
        }
        // With telemetry but not faults, only faults is asked.
        let half = Services::parse("inventory,telemetry").unwrap();
        assert_eq!(
            half.check_status_urls(Part::Telemetry, "--telemetry-url", &[]),
            Ok(())
        );
        assert!(
            half.check_status_urls(Part::Faults, "--faults-url", &[])
                .is_err()
        );
        let field = Services::parse("telemetry,faults").unwrap();
        assert_eq!(
            field.check_status_urls(Part::Faults, "--faults-url", &[]),
            Ok(())
        );
    }

    #[test]
    fn only_telemetry_without_the_inventory_signs_in_as_an_account_of_its_own() {
        let field = Services::parse("telemetry,faults,billing").unwrap();
        assert_eq!(field.check_service_account(Some("engine"), true), Ok(()));
        let missing = field.check_service_account(None, false).unwrap_err();
        assert!(missing.contains("--service-user NAME"), "{missing}");
        let no_password = field
            .check_service_account(Some("engine"), false)
            .unwrap_err();
        assert!(
            no_password.contains("SINGULARITY_SERVICE_PASSWORD"),
            "{no_password}"
        );
        assert!(field.check_service_account(Some(" "), true).is_err());
        // Serving auth itself, it opens the account's session without a password.
        let with_auth = Services::parse("telemetry,auth").unwrap();
        assert_eq!(
            with_auth.check_service_account(Some("engine"), false),
            Ok(())
        );
        let billing = Services::parse("billing").unwrap();
        assert!(billing.check_service_account(None, false).is_err());
        assert_eq!(billing.check_service_account(Some("engine"), true), Ok(()));
        for others in ["inventory,billing", "inventory,telemetry", "faults"] {
            let services = Services::parse(others).unwrap();
            assert_eq!(services.check_service_account(None, false), Ok(()));
            assert!(
                services
                    .check_service_account(Some("engine"), true)
                    .is_err()
            );
        }
        assert_eq!(Services::all().check_service_account(None, false), Ok(()));
    }

    #[test]
    fn a_list_names_each_part_once() {
        let set = Services::parse("inventory, auth").unwrap();
        assert!(set.serves(Part::Inventory) && set.serves(Part::Auth));
        assert!(!set.serves(Part::Telemetry) && !set.leads_work());
        assert!(set.serves_grpc("singularity.v1.Lamps"));
        assert!(set.serves_grpc("singularity.v1.Users"));
        assert!(!set.serves_grpc("singularity.v1.Faults"));
        assert_eq!(set.to_string(), "inventory,auth");
        assert!(
            Services::parse("inventory,telemetry,faults,billing,auth")
                .unwrap()
                .is_all()
        );
        let error = Services::parse("inventory,lamps").unwrap_err();
        assert!(error.contains("\"lamps\" is not a service"), "{error}");
        assert!(
            error.contains("inventory,telemetry,faults,billing,auth"),
            "{error}"
        );
        assert!(Services::parse("auth,auth").unwrap_err().contains("twice"));
        assert!(Services::parse("").is_err());
    }

    #[test]
    fn every_service_of_the_contract_belongs_to_exactly_one_part() {
        let descriptors = <prost_types::FileDescriptorSet as prost::Message>::decode(
            crate::proto::FILE_DESCRIPTOR_SET,
        )
        .unwrap();
        let mut seen = 0;
        for file in descriptors.file {
            for service in &file.service {
                let name = format!("{}.{}", file.package(), service.name());
                let owners = Part::ALL
                    .into_iter()
                    .filter(|p| p.grpc_services().contains(&name.as_str()))
                    .count();
                assert_eq!(owners, 1, "{name}");
                seen += 1;
            }
        }
        assert_eq!(seen, 12);
    }
}
