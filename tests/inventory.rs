//! The inventory services over real gRPC on a temporary SQLite estate: CRUD round trips,
//! soft delete and prune, paging, spatial search, links, and every bad input api.md names.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use common::TestServer;
use futures::StreamExt;
use prost::Message;
use singularity::proto::{
    self, assets_client::AssetsClient, basestations_client::BasestationsClient,
    catalog_client::CatalogClient, lamps_client::LampsClient, telecells_client::TelecellsClient,
    users_client::UsersClient,
};
use tonic::{Code, Status};

fn code_of<T: std::fmt::Debug>(result: Result<T, Status>) -> (Code, String) {
    let status = result.expect_err("expected an error");
    (status.code(), status.message().to_owned())
}

fn assert_invalid<T: std::fmt::Debug>(result: Result<T, Status>, field: &str) {
    let (code, message) = code_of(result);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(
        message.starts_with(field),
        "message {message:?} should name {field}"
    );
}

fn point(lat: f64, lon: f64) -> Option<proto::GeoPoint> {
    Some(proto::GeoPoint { lat, lon })
}

async fn collect<P>(
    stream: Result<tonic::Response<tonic::Streaming<P>>, Status>,
) -> Result<Vec<P>, Status> {
    let mut stream = stream?.into_inner();
    let mut pages = Vec::new();
    while let Some(page) = stream.next().await {
        pages.push(page?);
    }
    Ok(pages)
}

fn list(page_size: Option<i32>) -> proto::ListOptions {
    proto::ListOptions {
        page_size,
        ..Default::default()
    }
}

#[tokio::test]
async fn basestation_round_trip_soft_delete_then_prune() {
    let mut server = TestServer::start(0).await;
    let mut client = BasestationsClient::new(server.channel.clone());
    let created = client
        .create(proto::CreateBasestationRequest {
            uuid: String::new(),
            name: "BS-North".into(),
            firmware_version: "7.3.0".into(),
            location: point(51.5, -0.12),
            status: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.status, proto::EntityStatus::Active as i32);
    assert_eq!(created.meta.as_ref().unwrap().version, 1);
    assert!(uuid::Uuid::parse_str(&created.uuid).is_ok());
    let fetched = client
        .get(proto::IdRequest { id: created.id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched, created);

    let updated = client
        .update(proto::UpdateBasestationRequest {
            id: created.id,
            expected_version: Some(1),
            name: Some("BS-North-2".into()),
            location: point(51.51, -0.13),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.name, "BS-North-2");
    assert_eq!(
        updated.firmware_version, "7.3.0",
        "fields not named stay as they were"
    );
    assert_eq!(updated.location, point(51.51, -0.13));
    assert_eq!(updated.meta.as_ref().unwrap().version, 2);

    let stale = client
        .update(proto::UpdateBasestationRequest {
            id: created.id,
            expected_version: Some(1),
            name: Some("lost update".into()),
            ..Default::default()
        })
        .await;
    let (code, message) = code_of(stale);
    assert_eq!(code, Code::Aborted);
    assert!(
        message.contains("version 2") && message.contains("BS-North-2"),
        "{message}"
    );

    let (code, _) = code_of(client.prune(proto::IdRequest { id: created.id }).await);
    assert_eq!(
        code,
        Code::FailedPrecondition,
        "only a deleted record can be pruned"
    );

    let deleted = client
        .delete(proto::IdRequest { id: created.id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.status, proto::EntityStatus::Deleted as i32);
    let live: Vec<i64> = collect(client.list(list(None)).await)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|p| p.items)
        .map(|b| b.id)
        .collect();
    assert!(
        !live.contains(&created.id),
        "soft-deleted records leave the default listing"
    );
    let everything = collect(
        client
            .list(proto::ListOptions {
                include_deleted: true,
                ..Default::default()
            })
            .await,
    )
    .await
    .unwrap();
    assert!(
        everything
            .iter()
            .flat_map(|p| &p.items)
            .any(|b| b.id == created.id)
    );

    client
        .prune(proto::IdRequest { id: created.id })
        .await
        .unwrap();
    let (code, _) = code_of(client.get(proto::IdRequest { id: created.id }).await);
    assert_eq!(code, Code::NotFound);
    server.stop().await;
}

#[tokio::test]
async fn telecell_asset_and_lamp_round_trips_with_links() {
    let mut server = TestServer::start(0).await;
    let mut basestations = BasestationsClient::new(server.channel.clone());
    let mut telecells = TelecellsClient::new(server.channel.clone());
    let mut assets = AssetsClient::new(server.channel.clone());
    let mut lamps = LampsClient::new(server.channel.clone());
    let zone = CatalogClient::new(server.channel.clone())
        .list_zones(proto::ListZonesRequest {})
        .await
        .unwrap()
        .into_inner()
        .zones[0]
        .clone();

    let basestation = basestations
        .create(proto::CreateBasestationRequest {
            name: "BS".into(),
            location: point(51.5, -0.1),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let telecell = telecells
        .create(proto::CreateTelecellRequest {
            uuid: "6f1c1d9e-3b1a-4a57-9a59-0a3c7f0e2b11".into(),
            basestation_id: basestation.id,
            location: point(51.5001, -0.1001),
            firmware_version: "4.2.1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(telecell.uuid, "6f1c1d9e-3b1a-4a57-9a59-0a3c7f0e2b11");
    let (code, _) = code_of(
        telecells
            .create(proto::CreateTelecellRequest {
                uuid: telecell.uuid.clone(),
                basestation_id: basestation.id,
                location: point(51.5, -0.1),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(code, Code::AlreadyExists, "a uuid is one piece of hardware");

    let asset = assets
        .create(proto::CreateAssetRequest {
            reference: "COL-A1".into(),
            location: point(51.5001, -0.1001),
            zone_id: zone.id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(asset.zone_name, zone.name);
    let other_asset = assets
        .create(proto::CreateAssetRequest {
            reference: "COL-A2".into(),
            location: point(51.5002, -0.1002),
            zone_id: zone.id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    let lamp = lamps
        .create(proto::CreateLampRequest {
            reference: "LMP-A1".into(),
            asset_id: asset.id,
            lamp_type_id: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lamp.lamp_type.as_ref().unwrap().wattage_w, 36);
    assert_eq!(
        lamp.location, asset.location,
        "a lamp stands where its asset stands"
    );
    let second = lamps
        .create(proto::CreateLampRequest {
            reference: "LMP-A2".into(),
            lamp_type_id: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.asset_id, 0);
    assert!(second.location.is_none());

    // Lamps.AddToAsset mounts, and moves between assets.
    let mounted = lamps
        .add_to_asset(proto::AddToAssetRequest {
            lamp_id: second.id,
            asset_id: asset.id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mounted.asset_id, asset.id);
    let moved = lamps
        .add_to_asset(proto::AddToAssetRequest {
            lamp_id: second.id,
            asset_id: other_asset.id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.asset_id, other_asset.id);
    let reread = assets
        .get(proto::IdRequest { id: asset.id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reread.lamp_ids, vec![lamp.id]);

    // Telecells.AddToLamps and RemoveFromLamps.
    let linked = telecells
        .add_to_lamps(proto::TelecellLampsRequest {
            telecell_id: telecell.id,
            lamp_ids: vec![lamp.id, second.id],
        })
        .await
        .unwrap()
        .into_inner()
        .telecell
        .unwrap();
    assert_eq!(linked.lamp_ids, vec![lamp.id, second.id]);
    let driven = lamps
        .get(proto::IdRequest { id: lamp.id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(driven.telecell_id, telecell.id);
    let other_telecell = telecells
        .create(proto::CreateTelecellRequest {
            basestation_id: basestation.id,
            location: point(51.5, -0.1),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (code, message) = code_of(
        telecells
            .add_to_lamps(proto::TelecellLampsRequest {
                telecell_id: other_telecell.id,
                lamp_ids: vec![lamp.id],
            })
            .await,
    );
    assert_eq!(code, Code::FailedPrecondition, "{message}");
    let (code, _) = code_of(
        telecells
            .remove_from_lamps(proto::TelecellLampsRequest {
                telecell_id: other_telecell.id,
                lamp_ids: vec![lamp.id],
            })
            .await,
    );
    assert_eq!(
        code,
        Code::FailedPrecondition,
        "a lamp it does not drive cannot be removed"
    );
    let (code, _) = code_of(
        telecells
            .add_to_lamps(proto::TelecellLampsRequest {
                telecell_id: telecell.id,
                lamp_ids: vec![999_999],
            })
            .await,
    );
    assert_eq!(code, Code::NotFound);
    let unlinked = telecells
        .remove_from_lamps(proto::TelecellLampsRequest {
            telecell_id: telecell.id,
            lamp_ids: vec![second.id],
        })
        .await
        .unwrap()
        .into_inner()
        .telecell
        .unwrap();
    assert_eq!(unlinked.lamp_ids, vec![lamp.id]);

    // Dependents block a prune until they are moved or pruned themselves.
    basestations
        .delete(proto::IdRequest { id: basestation.id })
        .await
        .unwrap();
    let (code, message) = code_of(
        basestations
            .prune(proto::IdRequest { id: basestation.id })
            .await,
    );
    assert_eq!(code, Code::FailedPrecondition);
    assert!(message.contains("telecells"), "{message}");
    assets
        .delete(proto::IdRequest { id: asset.id })
        .await
        .unwrap();
    let (code, _) = code_of(assets.prune(proto::IdRequest { id: asset.id }).await);
    assert_eq!(code, Code::FailedPrecondition);

    // Lamp update, soft delete, prune.
    let renamed = lamps
        .update(proto::UpdateLampRequest {
            id: lamp.id,
            reference: Some("LMP-A1-R".into()),
            lamp_type_id: Some(4),
            status: proto::EntityStatus::Inactive.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.reference, "LMP-A1-R");
    assert_eq!(renamed.lamp_type.unwrap().wattage_w, 80);
    assert_eq!(renamed.status, proto::EntityStatus::Inactive as i32);
    lamps
        .delete(proto::IdRequest { id: lamp.id })
        .await
        .unwrap();
    lamps.prune(proto::IdRequest { id: lamp.id }).await.unwrap();
    assert_eq!(
        code_of(lamps.get(proto::IdRequest { id: lamp.id }).await).0,
        Code::NotFound
    );

    // Asset update keeps what is not named, clears the circuit on 0.
    let updated = assets
        .update(proto::UpdateAssetRequest {
            id: other_asset.id,
            circuit_id: Some(0),
            location: point(51.6, -0.2),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.reference, "COL-A2");
    assert_eq!(updated.circuit_id, 0);
    let moved_lamp = lamps
        .get(proto::IdRequest { id: second.id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        moved_lamp.location,
        point(51.6, -0.2),
        "lamps follow their asset"
    );

    // Telecell update: relay through another, then stop relaying.
    let relaying = telecells
        .update(proto::UpdateTelecellRequest {
            id: other_telecell.id,
            relay_via_id: Some(telecell.id),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(relaying.relay_via_id, telecell.id);
    let (code, _) = code_of(
        telecells
            .update(proto::UpdateTelecellRequest {
                id: other_telecell.id,
                relay_via_id: Some(other_telecell.id),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(code, Code::FailedPrecondition);
    let direct = telecells
        .update(proto::UpdateTelecellRequest {
            id: other_telecell.id,
            relay_via_id: Some(0),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(direct.relay_via_id, 0);
    server.stop().await;
}

#[tokio::test]
async fn users_round_trip_and_no_reply_ever_carries_a_password_hash() {
    let mut server = TestServer::start_on_sqlite(0).await;
    let mut users = UsersClient::new(server.channel.clone());
    let password = "lamp-post-secret";
    let created = users
        .create(proto::CreateUserRequest {
            username: "night.shift".into(),
            display_name: "Night Shift".into(),
            role: proto::Role::User.into(),
            password: password.into(),
            status: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let (code, _) = code_of(
        users
            .create(proto::CreateUserRequest {
                username: "night.shift".into(),
                role: proto::Role::Dev.into(),
                password: "another-password".into(),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(code, Code::AlreadyExists);
    let updated = users
        .update(proto::UpdateUserRequest {
            id: created.id,
            expected_version: Some(1),
            role: proto::Role::Manager.into(),
            password: Some("a-new-password".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.role, proto::Role::Manager as i32);
    assert_eq!(updated.display_name, "Night Shift");
    let fetched = users
        .get(proto::IdRequest { id: created.id })
        .await
        .unwrap()
        .into_inner();
    let listed = collect(users.list(list(None)).await).await.unwrap();
    let deleted = users
        .delete(proto::IdRequest { id: created.id })
        .await
        .unwrap()
        .into_inner();

    let mut replies: Vec<Vec<u8>> = vec![
        created.encode_to_vec(),
        updated.encode_to_vec(),
        fetched.encode_to_vec(),
        deleted.encode_to_vec(),
    ];
    replies.extend(listed.iter().map(Message::encode_to_vec));
    for bytes in replies {
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("$argon2"), "a reply carried a password hash");
        assert!(!text.contains(password) && !text.contains("a-new-password"));
    }
    // The hash is stored, salted, and matches the new password only.
    let stored: String = rusqlite::Connection::open(server.dir.path().join("estate.db"))
        .unwrap()
        .query_row(
            "SELECT password_hash FROM users WHERE id = ?1",
            [created.id],
            |row| row.get(0),
        )
        .unwrap();
    assert!(singularity::passwords::verify("a-new-password", &stored));
    assert!(!singularity::passwords::verify(password, &stored));

    users
        .prune(proto::IdRequest { id: created.id })
        .await
        .unwrap();
    assert_eq!(
        code_of(users.get(proto::IdRequest { id: created.id }).await).0,
        Code::NotFound
    );
    server.stop().await;
}

#[tokio::test]
async fn list_spans_pages_in_id_order_and_resumes_from_a_token() {
    let mut server = TestServer::start(2_000).await;
    let mut lamps = LampsClient::new(server.channel.clone());
    let pages = collect(lamps.list(list(Some(300))).await).await.unwrap();
    assert_eq!(pages.len(), 7);
    assert!(pages[..6].iter().all(|p| p.items.len() == 300));
    assert_eq!(pages[6].items.len(), 200);
    assert!(pages[..6].iter().all(|p| !p.next_page_token.is_empty()));
    assert_eq!(
        pages[6].next_page_token, "",
        "the last page says there is nothing after it"
    );
    let ids: Vec<i64> = pages
        .iter()
        .flat_map(|p| p.items.iter().map(|l| l.id))
        .collect();
    assert_eq!(ids, (1..=2_000).collect::<Vec<_>>());

    let resumed = collect(
        lamps
            .list(proto::ListOptions {
                page_size: Some(1000),
                page_token: pages[2].next_page_token.clone(),
                ..Default::default()
            })
            .await,
    )
    .await
    .unwrap();
    let resumed_ids: Vec<i64> = resumed
        .iter()
        .flat_map(|p| p.items.iter().map(|l| l.id))
        .collect();
    assert_eq!(resumed_ids, (901..=2_000).collect::<Vec<_>>());

    let limited = collect(
        lamps
            .list(proto::ListOptions {
                limit: Some(5),
                ..Default::default()
            })
            .await,
    )
    .await
    .unwrap();
    assert_eq!(limited.iter().map(|p| p.items.len()).sum::<usize>(), 5);

    // Status filter.
    lamps
        .update(proto::UpdateLampRequest {
            id: 10,
            status: proto::EntityStatus::Inactive.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let inactive = collect(
        lamps
            .list(proto::ListOptions {
                status: proto::EntityStatus::Inactive.into(),
                ..Default::default()
            })
            .await,
    )
    .await
    .unwrap();
    let inactive_ids: Vec<i64> = inactive
        .iter()
        .flat_map(|p| p.items.iter().map(|l| l.id))
        .collect();
    assert_eq!(inactive_ids, vec![10]);
    server.stop().await;
}

#[tokio::test]
async fn search_by_location_finds_exactly_what_is_inside() {
    let mut server = TestServer::start(3_000).await;
    let mut lamps = LampsClient::new(server.channel.clone());
    let all: Vec<proto::Lamp> = collect(lamps.list(list(Some(1000))).await)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|p| p.items)
        .collect();
    let centre = all[1500].location.unwrap();
    let area = proto::GeoBox {
        south: centre.lat - 0.002,
        west: centre.lon - 0.003,
        north: centre.lat + 0.002,
        east: centre.lon + 0.003,
    };
    let expected: Vec<i64> = all
        .iter()
        .filter(|l| {
            let p = l.location.unwrap();
            p.lat >= area.south && p.lat <= area.north && p.lon >= area.west && p.lon <= area.east
        })
        .map(|l| l.id)
        .collect();
    assert!(expected.len() > 10, "the box should hold a street or two");
    let found: Vec<i64> = collect(
        lamps
            .search_by_location(proto::SearchByLocationRequest {
                r#box: Some(area),
                page_size: Some(7),
                include_deleted: false,
            })
            .await,
    )
    .await
    .unwrap()
    .into_iter()
    .flat_map(|p| p.items.into_iter().map(|l| l.id))
    .collect();
    assert_eq!(found, expected);

    // Assets and telecells search the same way.
    let assets_found = collect(
        AssetsClient::new(server.channel.clone())
            .search_by_location(proto::SearchByLocationRequest {
                r#box: Some(area),
                ..Default::default()
            })
            .await,
    )
    .await
    .unwrap();
    assert!(!assets_found.is_empty());
    let telecells_found = collect(
        TelecellsClient::new(server.channel.clone())
            .search_by_location(proto::SearchByLocationRequest {
                r#box: Some(area),
                ..Default::default()
            })
            .await,
    )
    .await
    .unwrap();
    assert!(!telecells_found.is_empty());

    // A box with nothing in it: mid-Atlantic.
    let empty = collect(
        lamps
            .search_by_location(proto::SearchByLocationRequest {
                r#box: Some(proto::GeoBox {
                    south: 40.0,
                    west: -40.0,
                    north: 41.0,
                    east: -39.0,
                }),
                ..Default::default()
            })
            .await,
    )
    .await
    .unwrap();
    assert_eq!(empty.iter().map(|p| p.items.len()).sum::<usize>(), 0);

    // An inverted box (south above north) is refused, naming the field.
    let inverted = proto::GeoBox {
        south: area.north,
        west: area.west,
        north: area.south,
        east: area.east,
    };
    assert_invalid(
        lamps
            .search_by_location(proto::SearchByLocationRequest {
                r#box: Some(inverted),
                ..Default::default()
            })
            .await,
        "box.south",
    );
    server.stop().await;
}

#[tokio::test]
async fn a_box_with_west_greater_than_east_crosses_the_antimeridian() {
    let mut server = TestServer::start(0).await;
    let mut basestations = BasestationsClient::new(server.channel.clone());
    let mut ids = Vec::new();
    for (name, lon) in [
        ("Fiji-East", 179.9),
        ("Fiji-West", -179.9),
        ("Greenwich", 0.0),
    ] {
        let created = basestations
            .create(proto::CreateBasestationRequest {
                name: name.into(),
                location: point(-17.0, lon),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        ids.push(created.id);
    }
    let found: Vec<i64> = collect(
        basestations
            .search_by_location(proto::SearchByLocationRequest {
                r#box: Some(proto::GeoBox {
                    south: -18.0,
                    west: 179.0,
                    north: -16.0,
                    east: -179.0,
                }),
                ..Default::default()
            })
            .await,
    )
    .await
    .unwrap()
    .into_iter()
    .flat_map(|p| p.items.into_iter().map(|b| b.id))
    .collect();
    assert_eq!(found, vec![ids[0], ids[1]]);
    server.stop().await;
}

#[tokio::test]
async fn missing_ids_are_not_found_on_every_service() {
    let mut server = TestServer::start(0).await;
    let c = server.channel.clone();
    let missing = proto::IdRequest { id: 424_242 };
    assert_eq!(
        code_of(BasestationsClient::new(c.clone()).get(missing).await).0,
        Code::NotFound
    );
    assert_eq!(
        code_of(TelecellsClient::new(c.clone()).get(missing).await).0,
        Code::NotFound
    );
    assert_eq!(
        code_of(AssetsClient::new(c.clone()).get(missing).await).0,
        Code::NotFound
    );
    assert_eq!(
        code_of(LampsClient::new(c.clone()).get(missing).await).0,
        Code::NotFound
    );
    assert_eq!(
        code_of(UsersClient::new(c.clone()).get(missing).await).0,
        Code::NotFound
    );
    assert_eq!(
        code_of(LampsClient::new(c.clone()).delete(missing).await).0,
        Code::NotFound
    );
    assert_eq!(
        code_of(AssetsClient::new(c.clone()).prune(missing).await).0,
        Code::NotFound
    );
    assert_eq!(
        code_of(
            LampsClient::new(c.clone())
                .update(proto::UpdateLampRequest {
                    id: 424_242,
                    ..Default::default()
                })
                .await
        )
        .0,
        Code::NotFound
    );
    let (code, message) = code_of(
        AssetsClient::new(c.clone())
            .create(proto::CreateAssetRequest {
                reference: "X".into(),
                location: point(51.0, 0.0),
                zone_id: 9_999,
                ..Default::default()
            })
            .await,
    );
    assert_eq!(code, Code::NotFound);
    assert!(message.starts_with("zone_id"), "{message}");
    let (code, message) = code_of(
        LampsClient::new(c.clone())
            .add_to_asset(proto::AddToAssetRequest {
                lamp_id: 424_242,
                asset_id: 1,
            })
            .await,
    );
    assert_eq!(code, Code::NotFound, "{message}");
    server.stop().await;
}

#[tokio::test]
async fn every_bad_input_is_invalid_argument_naming_the_field() {
    let mut server = TestServer::start(0).await;
    let c = server.channel.clone();
    let mut basestations = BasestationsClient::new(c.clone());
    let mut assets = AssetsClient::new(c.clone());
    let mut lamps = LampsClient::new(c.clone());
    let mut users = UsersClient::new(c.clone());
    let mut telecells = TelecellsClient::new(c.clone());
    let create_bs = |name: &str, location| proto::CreateBasestationRequest {
        name: name.into(),
        location,
        ..Default::default()
    };

    // Coordinates: NaN, infinity, out of range, missing.
    assert_invalid(
        basestations
            .create(create_bs("a", point(f64::NAN, 0.0)))
            .await,
        "location.lat",
    );
    assert_invalid(
        basestations
            .create(create_bs("a", point(0.0, f64::INFINITY)))
            .await,
        "location.lon",
    );
    assert_invalid(
        basestations.create(create_bs("a", point(91.0, 0.0))).await,
        "location.lat",
    );
    assert_invalid(
        basestations
            .create(create_bs("a", point(0.0, -181.0)))
            .await,
        "location.lon",
    );
    assert_invalid(basestations.create(create_bs("a", None)).await, "location");
    let bad_box = |south, west, north, east| proto::SearchByLocationRequest {
        r#box: Some(proto::GeoBox {
            south,
            west,
            north,
            east,
        }),
        ..Default::default()
    };
    assert_invalid(
        lamps
            .search_by_location(bad_box(f64::NAN, 0.0, 1.0, 1.0))
            .await,
        "box.south",
    );
    assert_invalid(
        lamps.search_by_location(bad_box(0.0, 0.0, 95.0, 1.0)).await,
        "box.north",
    );
    assert_invalid(
        lamps
            .search_by_location(bad_box(0.0, -200.0, 1.0, 1.0))
            .await,
        "box.west",
    );
    assert_invalid(
        lamps
            .search_by_location(proto::SearchByLocationRequest::default())
            .await,
        "box",
    );

    // Empty names.
    assert_invalid(
        basestations
            .create(create_bs("   ", point(51.0, 0.0)))
            .await,
        "name",
    );
    assert_invalid(
        assets
            .create(proto::CreateAssetRequest {
                reference: "".into(),
                location: point(51.0, 0.0),
                zone_id: 1,
                ..Default::default()
            })
            .await,
        "reference",
    );
    assert_invalid(
        lamps
            .update(proto::UpdateLampRequest {
                id: 1,
                reference: Some(" ".into()),
                ..Default::default()
            })
            .await,
        "reference",
    );
    assert_invalid(
        users
            .create(proto::CreateUserRequest {
                username: "".into(),
                role: 1,
                password: "long enough".into(),
                ..Default::default()
            })
            .await,
        "username",
    );

    // Unknown enum values, and a required enum left unspecified.
    let mut bad_status = create_bs("a", point(51.0, 0.0));
    bad_status.status = 42;
    assert_invalid(basestations.create(bad_status).await, "status");
    assert_invalid(
        users
            .create(proto::CreateUserRequest {
                username: "x".into(),
                role: 17,
                password: "long enough".into(),
                ..Default::default()
            })
            .await,
        "role",
    );
    assert_invalid(
        users
            .create(proto::CreateUserRequest {
                username: "x".into(),
                role: 0,
                password: "long enough".into(),
                ..Default::default()
            })
            .await,
        "role",
    );
    assert_invalid(
        lamps
            .list(proto::ListOptions {
                status: 9,
                ..Default::default()
            })
            .await,
        "status",
    );
    assert_invalid(
        users
            .create(proto::CreateUserRequest {
                username: "x".into(),
                role: 1,
                password: "short".into(),
                ..Default::default()
            })
            .await,
        "password",
    );

    // Page sizes: zero, negative, oversized; a forged page token.
    assert_invalid(lamps.list(list(Some(0))).await, "page_size");
    assert_invalid(lamps.list(list(Some(-3))).await, "page_size");
    assert_invalid(lamps.list(list(Some(1_001))).await, "page_size");
    let mut search = bad_box(50.0, -1.0, 52.0, 1.0);
    search.page_size = Some(5_000);
    assert_invalid(lamps.search_by_location(search).await, "page_size");
    assert_invalid(
        lamps
            .list(proto::ListOptions {
                page_token: "drop table".into(),
                ..Default::default()
            })
            .await,
        "page_token",
    );
    assert_invalid(
        lamps
            .list(proto::ListOptions {
                limit: Some(-1),
                ..Default::default()
            })
            .await,
        "limit",
    );

    // Ids and versions.
    assert_invalid(lamps.get(proto::IdRequest { id: 0 }).await, "id");
    assert_invalid(lamps.get(proto::IdRequest { id: -5 }).await, "id");
    assert_invalid(
        lamps
            .update(proto::UpdateLampRequest {
                id: 1,
                expected_version: Some(0),
                ..Default::default()
            })
            .await,
        "expected_version",
    );
    assert_invalid(
        lamps
            .add_to_asset(proto::AddToAssetRequest {
                lamp_id: 1,
                asset_id: 0,
            })
            .await,
        "asset_id",
    );
    assert_invalid(
        telecells
            .add_to_lamps(proto::TelecellLampsRequest {
                telecell_id: 1,
                lamp_ids: vec![],
            })
            .await,
        "lamp_ids",
    );
    assert_invalid(
        telecells
            .add_to_lamps(proto::TelecellLampsRequest {
                telecell_id: 1,
                lamp_ids: vec![-1],
            })
            .await,
        "lamp_ids",
    );
    assert_invalid(
        telecells
            .create(proto::CreateTelecellRequest {
                uuid: "not-a-uuid".into(),
                basestation_id: 1,
                location: point(51.0, 0.0),
                ..Default::default()
            })
            .await,
        "uuid",
    );
    assert_invalid(
        CatalogClient::new(c.clone())
            .list_circuits(proto::ListCircuitsRequest {
                zone_id: -1,
                ..Default::default()
            })
            .await,
        "zone_id",
    );
    server.stop().await;
}

#[tokio::test]
async fn hostile_text_is_stored_and_returned_verbatim() {
    let mut server = TestServer::start(0).await;
    let mut basestations = BasestationsClient::new(server.channel.clone());
    let name = "Robert'); DROP TABLE lamps;-- ☃";
    let created = basestations
        .create(proto::CreateBasestationRequest {
            name: name.into(),
            location: point(51.0, 0.0),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let fetched = basestations
        .get(proto::IdRequest { id: created.id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.name, name);
    server.stop().await;
}

#[tokio::test]
async fn concurrent_updates_to_one_lamp_stay_consistent() {
    let mut server = TestServer::start(50).await;
    let lamp_id = 7;
    // Blind updates: every one applies, each exactly once.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let mut lamps = LampsClient::new(server.channel.clone());
        tasks.push(tokio::spawn(async move {
            lamps
                .update(proto::UpdateLampRequest {
                    id: lamp_id,
                    reference: Some(format!("LMP-RACE-{i}")),
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner())
        }));
    }
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.unwrap().unwrap().meta.unwrap().version);
    }
    versions.sort_unstable();
    assert_eq!(
        versions,
        (2..=41).collect::<Vec<_>>(),
        "each update saw its own version"
    );

    // Read-modify-write with the version: of racers that read the same version, one wins.
    let mut lamps = LampsClient::new(server.channel.clone());
    let seen = lamps
        .get(proto::IdRequest { id: lamp_id })
        .await
        .unwrap()
        .into_inner();
    let version = seen.meta.unwrap().version;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let mut lamps = LampsClient::new(server.channel.clone());
        tasks.push(tokio::spawn(async move {
            lamps
                .update(proto::UpdateLampRequest {
                    id: lamp_id,
                    expected_version: Some(version),
                    reference: Some(format!("LMP-WIN-{i}")),
                    ..Default::default()
                })
                .await
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(reply) => winners.push(reply.into_inner()),
            Err(status) => assert_eq!(status.code(), Code::Aborted),
        }
    }
    assert_eq!(winners.len(), 1);
    let last = lamps
        .get(proto::IdRequest { id: lamp_id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(last.reference, winners[0].reference);
    assert_eq!(last.meta.unwrap().version, version + 1);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_while_a_list_stream_is_open_ends_it_cleanly() {
    let mut server = TestServer::start(3_000).await;
    let mut lamps = LampsClient::new(server.channel.clone());
    let mut stream = lamps.list(list(Some(1))).await.unwrap().into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.items.len(), 1);
    let stopping = server.begin_stop();
    let mut received = 1;
    let ending = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            match stream.next().await {
                Some(Ok(page)) => received += page.items.len(),
                Some(Err(status)) => return Some(status),
                None => return None,
            }
        }
    })
    .await
    .expect("the stream must end soon after shutdown begins");
    assert!(
        received < 3_000,
        "the stream ended early rather than running to completion"
    );
    let status = ending.expect("an unfinished listing ends with a status, never as if complete");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("page_token"),
        "{}",
        status.message()
    );
    tokio::time::timeout(std::time::Duration::from_secs(20), stopping)
        .await
        .expect("the server finishes draining")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut server = TestServer::start(0).await;
    let health = HealthClient::new(server.channel.clone())
        .check(HealthCheckRequest {
            service: "singularity.v1.Lamps".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = ServerReflectionClient::new(server.channel.clone())
        .server_reflection_info(futures::stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(services)) = reply.message_response else {
        panic!("expected a service list");
    };
    let names: Vec<String> = services.service.into_iter().map(|s| s.name).collect();
    for wanted in [
        "singularity.v1.Lamps",
        "singularity.v1.Basestations",
        "singularity.v1.Users",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "{wanted} missing from {names:?}"
        );
    }
    server.stop().await;
}
