//! How a command-line program reaches the server (`--ca` for TLS) and proves who it is: `--user` (the password is asked for without
//! echo, or read from SINGULARITY_PASSWORD when nobody is there to type it) or the token of a
//! session from SINGULARITY_TOKEN.

use clap::Args;
use tonic::transport::Channel;

use crate::link::{AuthedChannel, sign_in, with_token};
use crate::proto;

#[derive(Debug, Clone, Default, Args)]
pub struct SignInArgs {
    /// Sign in as this user; the password is asked for (or read from SINGULARITY_PASSWORD).
    #[arg(long, env = "SINGULARITY_USER", global = true)]
    pub user: Option<String>,
    /// A session token (from `singularity client login`); used when --user is not given.
    /// Prefer the environment variable: a flag shows in the process list.
    #[arg(long, env = "SINGULARITY_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// PEM file of the certificate authority to trust for an https:// server [default: the
    /// system's roots].
    #[arg(long, env = "SINGULARITY_CA", global = true)]
    pub ca: Option<std::path::PathBuf>,
}

pub const HOW_TO_SIGN_IN: &str = "sign in first: give --user NAME (the password is asked for) or set SINGULARITY_TOKEN (`singularity client login --user NAME` prints one)";

impl SignInArgs {
    /// The CA certificate to trust, read from `--ca`.
    pub fn ca_pem(&self) -> Result<Option<Vec<u8>>, String> {
        self.ca
            .as_ref()
            .map(|path| {
                std::fs::read(path)
                    .map_err(|e| format!("--ca {}: cannot read it ({e})", path.display()))
            })
            .transpose()
    }

    /// A channel carrying this user's session, and the session when one was opened here.
    pub async fn link(
        &self,
        channel: Channel,
    ) -> Result<(AuthedChannel, Option<proto::LoginResponse>), String> {
        match (&self.user, &self.token) {
            (Some(user), _) => {
                let password = password_for(user)?;
                let (link, session) = sign_in(channel, user, &password)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok((link, Some(session)))
            }
            (None, Some(token)) => Ok((
                with_token(channel, Some(token)).map_err(|e| format!("SINGULARITY_TOKEN: {e}"))?,
                None,
            )),
            (None, None) => Err(HOW_TO_SIGN_IN.to_owned()),
        }
    }
}

pub fn password_for(user: &str) -> Result<String, String> {
    if let Ok(password) = std::env::var("SINGULARITY_PASSWORD") {
        return Ok(password);
    }
    rpassword::prompt_password(format!("Password for {user}: ")).map_err(|e| {
        format!(
            "cannot read the password ({e}); set SINGULARITY_PASSWORD when there is no terminal"
        )
    })
}
