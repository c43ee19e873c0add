//! The shape every located inventory service shares (Get, List, Create, Update, Delete,
//! Prune, SearchByLocation: decode, call the store, encode), written once. Each service file
//! names its types and store calls and adds its own RPCs.

/// Declares `$service` and implements `$trait` for it. `extra` holds the service's own
/// associated types and RPCs, which land in the same `impl` (tonic's traits are async-trait
/// traits, so they must be inside the block the attribute sees).
macro_rules! located_inventory_service {
    (
        service: $service:ident,
        implements: $trait:path,
        audit_as: ($service_name:literal, $entity:literal),
        record: $record:ty,
        message: $message:ty,
        page: $page:ident,
        create_request: $create_request:ty,
        update_request: $update_request:ty,
        decode_create: $decode_create:path,
        decode_update: $decode_update:path,
        get: $get:ident,
        scan: $scan:ident,
        create: $create:ident,
        update: $update:ident,
        delete: $delete:ident,
        prune: $prune:ident,
        extra: { $($extra:tt)* }
    ) => {
        pub struct $service(pub $crate::server::context::Context);

        impl $service {
            /// Records a change to the audit trail as the request's caller.
            async fn audit<R>(
                &self,
                request: &tonic::Request<R>,
                verb: &'static str,
                id: i64,
                before: Option<&$message>,
                after: Option<&$message>,
            ) {
                let caller = request.extensions().get::<$crate::domain::auth::Caller>();
                $crate::server::audit::record(
                    &self.0,
                    caller,
                    $crate::server::audit::Change {
                        action: format!("{}.{}", $service_name, verb),
                        entity: $entity,
                        entity_id: id,
                        before,
                        after,
                        also: None,
                    },
                )
                .await;
            }
        }

        const PAGER: $crate::server::paging::Pager<$record, $message, $crate::proto::$page> =
            $crate::server::paging::Pager {
                fetch: |store, scan| store.$scan(scan),
                item: |record| <$message>::from(record),
                page: |items, next_page_token| $crate::proto::$page { items, next_page_token },
            };

        #[tonic::async_trait]
        impl $trait for $service {
            type ListStream = $crate::server::paging::PageStream<$crate::proto::$page>;
            type SearchByLocationStream = $crate::server::paging::PageStream<$crate::proto::$page>;

            $($extra)*

            async fn get(
                &self,
                request: tonic::Request<$crate::proto::IdRequest>,
            ) -> Result<tonic::Response<$message>, tonic::Status> {
                let id = $crate::wire::requests::id_request(request.get_ref())?;
                let record = self.0.lookup(move |s| s.$get(id)).await?;
                Ok(tonic::Response::new(record.into()))
            }

            async fn list(
                &self,
                request: tonic::Request<$crate::proto::ListOptions>,
            ) -> Result<tonic::Response<Self::ListStream>, tonic::Status> {
                let list = $crate::wire::list_request(request.get_ref())?;
                Ok(tonic::Response::new($crate::server::paging::stream(&self.0, list, PAGER)))
            }

            async fn create(
                &self,
                request: tonic::Request<$create_request>,
            ) -> Result<tonic::Response<$message>, tonic::Status> {
                let new = $decode_create(request.get_ref())?;
                let record = self.0.blocking(move |s| s.$create(new)).await?;
                let after = <$message>::from(record);
                self.audit(&request, "Create", after.id, None, Some(&after)).await;
                Ok(tonic::Response::new(after))
            }

            async fn update(
                &self,
                request: tonic::Request<$update_request>,
            ) -> Result<tonic::Response<$message>, tonic::Status> {
                let (id, version, patch) = $decode_update(request.get_ref())?;
                let before = self.0.lookup(move |s| s.$get(id)).await.ok().map(<$message>::from);
                let record = self.0.blocking(move |s| s.$update(id, version, patch)).await?;
                let after = <$message>::from(record);
                self.audit(&request, "Update", id, before.as_ref(), Some(&after)).await;
                Ok(tonic::Response::new(after))
            }

            async fn delete(
                &self,
                request: tonic::Request<$crate::proto::IdRequest>,
            ) -> Result<tonic::Response<$message>, tonic::Status> {
                let id = $crate::wire::requests::id_request(request.get_ref())?;
                let before = self.0.lookup(move |s| s.$get(id)).await.ok().map(<$message>::from);
                let record = self.0.blocking(move |s| s.$delete(id)).await?;
                let after = <$message>::from(record);
                self.audit(&request, "Delete", id, before.as_ref(), Some(&after)).await;
                Ok(tonic::Response::new(after))
            }

            async fn prune(
                &self,
                request: tonic::Request<$crate::proto::IdRequest>,
            ) -> Result<tonic::Response<$crate::proto::PruneResponse>, tonic::Status> {
                let id = $crate::wire::requests::id_request(request.get_ref())?;
                let before = self.0.lookup(move |s| s.$get(id)).await.ok().map(<$message>::from);
                self.0.blocking(move |s| s.$prune(id)).await?;
                self.audit(&request, "Prune", id, before.as_ref(), None).await;
                Ok(tonic::Response::new($crate::proto::PruneResponse { id }))
            }

            async fn search_by_location(
                &self,
                request: tonic::Request<$crate::proto::SearchByLocationRequest>,
            ) -> Result<tonic::Response<Self::SearchByLocationStream>, tonic::Status> {
                let search = $crate::wire::search_request(request.get_ref())?;
                Ok(tonic::Response::new($crate::server::paging::stream(&self.0, search, PAGER)))
            }
        }
    };
}

pub(crate) use located_inventory_service;
