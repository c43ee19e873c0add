//! The `Users` service. Passwords are hashed here, off the async runtime, before anything is
//! stored; replies are built from `User`, which has no password hash to leak.

use tonic::{Request, Response, Status};

use super::audit::{self, Change};
use super::context::Context;
use super::error::ServiceError;
use super::paging::{self, PageStream, Pager};
use crate::domain::auth::Caller;
use crate::domain::inventory::{NewUser, User, UserPatch};
use crate::passwords;
use crate::proto::{self, users_server::Users};
use crate::wire;

pub struct UserService(pub Context);

const PAGER: Pager<User, proto::User, proto::UserPage> = Pager {
    fetch: |store, scan| store.users(scan),
    item: |record| proto::User::from(record),
    page: |items, next_page_token| proto::UserPage {
        items,
        next_page_token,
    },
};

/// Hashes a password on the password threads (argon2 takes tens of milliseconds on purpose).
pub(super) async fn hash(context: &Context, password: String) -> Result<String, ServiceError> {
    context
        .passwords
        .run(move || passwords::hash(&password))
        .await?
        .map_err(|e| ServiceError::Internal(e.to_string()))
}

impl UserService {
    /// After a change to a user: their cached sessions are forgotten (a new password, role or
    /// status applies at once) and the change goes to the audit trail.
    async fn changed<R>(
        &self,
        request: &Request<R>,
        verb: &str,
        id: i64,
        before: Option<&proto::User>,
        after: Option<&proto::User>,
        also: Option<&'static str>,
    ) {
        // Any change to a user (password, role, status) applies to their sessions at once.
        self.0.user_changed(id);
        audit::record(
            &self.0,
            request.extensions().get::<Caller>(),
            Change {
                action: format!("Users.{verb}"),
                entity: "user",
                entity_id: id,
                before,
                after,
                also,
            },
        )
        .await;
    }
}

#[tonic::async_trait]
impl Users for UserService {
    type ListStream = PageStream<proto::UserPage>;

    async fn get(
        &self,
        request: Request<proto::IdRequest>,
    ) -> Result<Response<proto::User>, Status> {
        let id = wire::requests::id_request(request.get_ref())?;
        let record = self.0.lookup(move |s| s.user(id)).await?;
        Ok(Response::new(record.into()))
    }

    async fn list(
        &self,
        request: Request<proto::ListOptions>,
    ) -> Result<Response<Self::ListStream>, Status> {
        let list = wire::list_request(request.get_ref())?;
        Ok(Response::new(paging::stream(&self.0, list, PAGER)))
    }

    async fn create(
        &self,
        request: Request<proto::CreateUserRequest>,
    ) -> Result<Response<proto::User>, Status> {
        let draft = wire::new_user(request.get_ref())?;
        let new = NewUser {
            password_hash: hash(&self.0, draft.password).await?,
            username: draft.username,
            display_name: draft.display_name,
            role: draft.role,
            status: draft.status,
        };
        let record = self.0.blocking(move |s| s.create_user(new)).await?;
        let after = proto::User::from(record);
        self.changed(&request, "Create", after.id, None, Some(&after), None)
            .await;
        Ok(Response::new(after))
    }

    async fn update(
        &self,
        request: Request<proto::UpdateUserRequest>,
    ) -> Result<Response<proto::User>, Status> {
        let change = wire::user_update(request.get_ref())?;
        let password_hash = match change.password {
            Some(password) => Some(hash(&self.0, password).await?),
            None => None,
        };
        let patch = UserPatch {
            display_name: change.display_name,
            role: change.role,
            password_hash,
            status: change.status,
        };
        let (id, version) = (change.id, change.expected_version);
        let password_changed = patch.password_hash.is_some();
        let before = self
            .0
            .lookup(move |s| s.user(id))
            .await
            .ok()
            .map(proto::User::from);
        let record = self
            .0
            .blocking(move |s| s.update_user(id, version, patch))
            .await?;
        let after = proto::User::from(record);
        // The trail says that the password changed, never what to.
        let also = password_changed.then_some("password: set, every session ended");
        self.changed(&request, "Update", id, before.as_ref(), Some(&after), also)
            .await;
        Ok(Response::new(after))
    }

    async fn delete(
        &self,
        request: Request<proto::IdRequest>,
    ) -> Result<Response<proto::User>, Status> {
        let id = wire::requests::id_request(request.get_ref())?;
        let before = self
            .0
            .lookup(move |s| s.user(id))
            .await
            .ok()
            .map(proto::User::from);
        let record = self.0.blocking(move |s| s.delete_user(id)).await?;
        let after = proto::User::from(record);
        self.changed(&request, "Delete", id, before.as_ref(), Some(&after), None)
            .await;
        Ok(Response::new(after))
    }

    async fn prune(
        &self,
        request: Request<proto::IdRequest>,
    ) -> Result<Response<proto::PruneResponse>, Status> {
        let id = wire::requests::id_request(request.get_ref())?;
        let before = self
            .0
            .lookup(move |s| s.user(id))
            .await
            .ok()
            .map(proto::User::from);
        self.0.blocking(move |s| s.prune_user(id)).await?;
        self.changed(&request, "Prune", id, before.as_ref(), None, None)
            .await;
        Ok(Response::new(proto::PruneResponse { id }))
    }
}
