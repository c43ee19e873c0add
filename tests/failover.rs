//! Clients given several servers (`--server a,b`): calls go to those serving, move away from
//! one that stops, and come back to it when it serves again. Two real servers on their own
//! databases stand in for servers sharing one: the same generated estate and one session
//! known to both.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::time::Duration;

use common::{TEST_ADMIN, TestServer};
use singularity::domain::auth::token_hash;
use singularity::link::{lazy_channel, servers, with_token};
use singularity::proto::{self, lamps_client::LampsClient};

/// Makes `from`'s admin session valid on `to` as well, as one database would.
fn share_session(from: &TestServer, to: &TestServer) {
    let (admin, _) = to.store.credentials(TEST_ADMIN).unwrap().unwrap();
    to.store
        .open_session(
            admin.id,
            token_hash(&from.token),
            chrono::Utc::now() + chrono::Duration::hours(1),
            100,
        )
        .unwrap();
}

/// Calls until `wanted` succeed in a row, at most `attempts` calls 50 ms apart; how many
/// failed on the way.
async fn settle(
    lamps: &mut LampsClient<singularity::link::AuthedChannel>,
    wanted: usize,
) -> (usize, usize) {
    let (mut streak, mut failed) = (0, 0);
    for _ in 0..400 {
        match lamps.get(proto::IdRequest { id: 1 }).await {
            Ok(_) => streak += 1,
            Err(_) => {
                failed += 1;
                streak = 0;
            }
        }
        if streak >= wanted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (streak, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_move_to_the_server_still_serving_and_back_when_it_returns() {
    let mut a = TestServer::start(20).await;
    let b = TestServer::start(20).await;
    share_session(&a, &b);
    let both = format!("{},{}", a.url(), b.url());
    let channel = lazy_channel(&both, None, |endpoint| endpoint).unwrap();
    let mut lamps = LampsClient::new(with_token(channel, Some(&a.token)).unwrap());

    let (streak, failed) = settle(&mut lamps, 20).await;
    assert_eq!((streak, failed), (20, 0), "both serve");

    // A stops: it says it is not serving, drains, and closes its port.
    let address = a.address;
    let dir = std::mem::replace(&mut a.dir, tempfile::tempdir().unwrap());
    let store = a.store.clone();
    a.stop().await;
    let (streak, _) = settle(&mut lamps, 40).await;
    assert_eq!(
        streak, 40,
        "every call goes to B once A is known to be gone"
    );

    // B stops and A comes back where it was: calls find A again.
    let mut a = TestServer::on_address(dir, store, common::config(), &address.to_string()).await;
    let mut b = b;
    b.stop().await;
    let (streak, _) = settle(&mut lamps, 20).await;
    assert_eq!(streak, 20, "calls return to A");
    a.stop().await;
}

#[test]
fn a_server_list_is_urls_separated_by_commas() {
    assert_eq!(
        servers("http://a:1, http://b:2,http://a:1").unwrap(),
        vec!["http://a:1", "http://b:2"]
    );
    let empty = servers("http://a:1,,http://b:2").unwrap_err();
    assert!(empty.contains("empty server address"), "{empty}");
}
