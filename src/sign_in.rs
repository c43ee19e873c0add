//! How a client program (CLI, console, simulator, bench) reaches the server (`--ca` for TLS)
//! and proves who it is: `--user` (the password is asked for without echo, or read from
//! SINGULARITY_PASSWORD when nobody is there to type it) or the token of a session from
//! SINGULARITY_TOKEN.

use clap::Args;
use tonic::transport::Channel;

use crate::link::{AuthedChannel, LinkError, sign_in, with_token};
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

/// Times a typed password is asked for before giving up.
const PASSWORD_TRIES: u32 = 3;

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
                // A password typed wrong is asked for again; one from the environment is not.
                let typed = std::env::var_os("SINGULARITY_PASSWORD").is_none();
                let tries = if typed { PASSWORD_TRIES } else { 1 };
                for attempt in 1..=tries {
                    let password = password_for(user)?;
                    match sign_in(channel.clone(), user, &password).await {
                        Ok((link, session)) => return Ok((link, Some(session))),
                        Err(LinkError::SignIn(status))
                            if status.code() == tonic::Code::Unauthenticated =>
                        {
                            if attempt < tries {
                                eprintln!("{}; try again", status.message());
                            } else if typed {
                                return Err(format!(
                                    "{}, {tries} times; check the user name and password (an admin can set a new one)",
                                    status.message()
                                ));
                            } else {
                                return Err(format!(
                                    "{}; check SINGULARITY_PASSWORD for {user}",
                                    status.message()
                                ));
                            }
                        }
                        Err(LinkError::SignIn(status))
                            if matches!(
                                status.code(),
                                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                            ) =>
                        {
                            return Err(format!(
                                "cannot reach the server to sign in ({}); is it running? check --server or SINGULARITY_SERVER",
                                status.message()
                            ));
                        }
                        Err(e) => return Err(e.to_string()),
                    }
                }
                Err(HOW_TO_SIGN_IN.to_owned())
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
