//! `singularity client login | logout | whoami | password | audit`: sessions, one's own
//! password, and the audit trail.

use super::output::outln;
use clap::Subcommand;
use futures::StreamExt;
use tonic::transport::Channel;

use super::calls::Failure;
use super::output::{print_many, print_one};
use super::sign_in::{SignInArgs, password_for};
use crate::link::sign_in;
use crate::proto::{self, audit_client::AuditClient, auth_client::AuthClient};
use crate::wire;

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Signs in and prints a session token: `export SINGULARITY_TOKEN=...` for later calls.
    Login,
    /// Ends the session of SINGULARITY_TOKEN.
    Logout,
    /// Who the session belongs to, and when it ends.
    Whoami,
    /// Changes your password (both asked for without echo); every session of yours ends.
    Password,
    /// The audit trail, newest first.
    Audit {
        /// Only this user's actions.
        #[arg(long)]
        actor: Option<String>,
        /// Only this kind of record: asset, basestation, lamp, telecell, user, fault, tariff.
        #[arg(long)]
        entity: Option<String>,
        /// Only this record (with --entity).
        #[arg(long, requires = "entity")]
        id: Option<i64>,
        /// Only entries at or after this instant (RFC 3339).
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// At most this many entries, newest first (1-10000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i32).range(1..=10_000))]
        limit: i32,
    },
}

pub async fn run(
    channel: Channel,
    sign: &SignInArgs,
    command: AccountCommand,
    json: bool,
) -> Result<(), Failure> {
    let signed = |channel: Channel| async move {
        sign.link(channel)
            .await
            .map(|(link, _)| link)
            .map_err(Failure::Usage)
    };
    match command {
        AccountCommand::Login => login(channel, sign, json).await,
        AccountCommand::Logout => {
            AuthClient::new(signed(channel).await?)
                .logout(proto::LogoutRequest {})
                .await?;
            if !json {
                outln!("signed out");
            }
            Ok(())
        }
        AccountCommand::Whoami => {
            let reply = AuthClient::new(signed(channel).await?)
                .who_am_i(proto::WhoAmIRequest {})
                .await?;
            print_one(&reply.into_inner(), json);
            Ok(())
        }
        AccountCommand::Password => {
            let current = rpassword::prompt_password("Current password: ")
                .map_err(|e| Failure::Usage(format!("cannot read the password: {e}")))?;
            let new = rpassword::prompt_password("New password: ")
                .map_err(|e| Failure::Usage(format!("cannot read the password: {e}")))?;
            let again = rpassword::prompt_password("New password again: ")
                .map_err(|e| Failure::Usage(format!("cannot read the password: {e}")))?;
            if new != again {
                return Err(Failure::Usage(
                    "the new passwords differ; nothing changed".into(),
                ));
            }
            AuthClient::new(signed(channel).await?)
                .change_password(proto::ChangePasswordRequest {
                    current_password: current,
                    new_password: new,
                })
                .await?;
            if !json {
                outln!("password changed; every session ended: sign in again");
            }
            Ok(())
        }
        AccountCommand::Audit {
            actor,
            entity,
            id,
            since,
            limit,
        } => {
            let mut pages = AuditClient::new(signed(channel).await?)
                .list(proto::ListAuditRequest {
                    from: since.map(wire::timestamp),
                    to: None,
                    actor: actor.unwrap_or_default(),
                    entity: entity.unwrap_or_default(),
                    entity_id: id.unwrap_or_default(),
                    limit: Some(limit),
                })
                .await?
                .into_inner();
            let mut all = Vec::new();
            while let Some(page) = pages.next().await {
                all.extend(page?.items);
            }
            print_many(&all, json);
            Ok(())
        }
    }
}

/// Signs in with `--user` and prints the session, token included.
async fn login(channel: Channel, sign: &SignInArgs, json: bool) -> Result<(), Failure> {
    let user = sign
        .user
        .clone()
        .ok_or_else(|| Failure::Usage("give --user NAME to sign in".into()))?;
    let password = password_for(&user).map_err(Failure::Usage)?;
    let (_, session) = sign_in(channel, &user, &password)
        .await
        .map_err(|e| match e {
            crate::link::LinkError::SignIn(status) => Failure::Rpc(status),
            other => Failure::Usage(other.to_string()),
        })?;
    print_one(&session, json);
    Ok(())
}
