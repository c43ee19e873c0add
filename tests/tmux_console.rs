//! The built `singularity console` in a real terminal (tmux): it asks for the password
//! without echo (again after a wrong one), signs in, draws, follows the server, opens help,
//! announces a new CRITICAL in the window title until the operator looks, copies a fault to
//! the clipboard by OSC 52, quits on `q`, and leaves the terminal as it found it. Skipped, saying so, where
//! tmux is not installed.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use common::TestServer;
use common::terminal::{capture, tmux, wait_for};

const PASSWORD: &str = "owl-at-night-42";

#[tokio::test(flavor = "multi_thread")]
async fn the_console_runs_in_a_real_terminal_and_restores_it() {
    if !common::terminal::tmux_installed() {
        eprintln!("skipped: tmux is not installed");
        return;
    }
    let mut server = TestServer::start(50).await;
    let dir = tempfile::tempdir().unwrap();
    let session = format!("singularity-test-{}", std::process::id());
    // An operator with a real password, typed at the prompt.
    server
        .store
        .create_user(singularity::domain::inventory::NewUser {
            username: "nightowl".into(),
            display_name: "Night Owl".into(),
            role: singularity::domain::inventory::Role::User,
            password_hash: singularity::passwords::hash(PASSWORD).unwrap(),
            status: singularity::domain::inventory::EntityStatus::Active,
        })
        .unwrap();
    let command = format!(
        "env -u SINGULARITY_TOKEN -u SINGULARITY_PASSWORD {} console --server {} --user nightowl --log-file {} --theme 16 --bell",
        env!("CARGO_BIN_EXE_singularity"),
        server.url(),
        dir.path().join("console.log").display()
    );
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "100",
        "-y",
        "30",
        &command,
    ]);
    assert!(started.status.success(), "{started:?}");
    tmux(&["set-option", "-t", &session, "remain-on-exit", "on"]);
    // tmux keeps what a program sends by OSC 52 in its paste buffer.
    tmux(&["set-option", "-s", "set-clipboard", "on"]);
    let session_ref = session.clone();
    tokio::task::spawn_blocking(move || {
        let s = session_ref.as_str();
        wait_for(s, "the password prompt", |t| {
            t.contains("Password for nightowl:")
        });
        // A mistyped password is asked for again, not the end of the console.
        tmux(&["send-keys", "-t", s, "not-the-password", "Enter"]);
        wait_for(s, "the second try", |t| {
            t.contains("try again") && t.matches("Password for nightowl:").count() == 2
        });
        tmux(&["send-keys", "-t", s, PASSWORD, "Enter"]);
        let live = wait_for(s, "the live feed", |t| t.contains("faults: live"));
        assert!(live.contains("nightowl (user)"), "{live}");
        assert!(!live.contains(PASSWORD), "the password was echoed:\n{live}");
        assert!(
            live.contains("1 Faults") && live.contains("Daily Faults"),
            "{live}"
        );
        tmux(&["send-keys", "-t", s, "?"]);
        wait_for(s, "the help", |t| t.contains("keys, from the keymap"));
        tmux(&["send-keys", "-t", s, "x"]);
        wait_for(s, "the help closed", |t| {
            !t.contains("keys, from the keymap")
        });
        tmux(&["send-keys", "-t", s, "3"]);
        wait_for(s, "the billing tab", |t| t.contains("energy and cost"));
    })
    .await
    .unwrap();

    // A CRITICAL fault arrives while the operator is on another tab.
    let (lamp, uuid) = common::lamps_with_telecells(&server, 1).await.remove(0);
    common::send(
        &server,
        vec![common::earth_leakage(
            &uuid,
            lamp,
            chrono::Utc::now() - chrono::Duration::minutes(1),
        )],
    )
    .await;
    let session_ref = session.clone();
    let screen = tokio::task::spawn_blocking(move || {
        let s = session_ref.as_str();
        let title = |s: &str| {
            let shown = tmux(&["display-message", "-p", "-t", s, "#{pane_title}"]);
            String::from_utf8_lossy(&shown.stdout).trim().to_owned()
        };
        wait_for(s, "the title badge", |_| {
            title(s).starts_with("(+1 critical)")
        });
        wait_for(s, "the badge", |t| {
            t.contains("+1 critical since you looked")
        });
        tmux(&["send-keys", "-t", s, "1"]);
        wait_for(s, "the board", |t| t.contains("EARTH_LEAKAGE"));
        wait_for(s, "the badge cleared", |_| {
            title(s).starts_with("singularity")
        });
        wait_for(s, "the badge gone", |t| {
            !t.contains("critical since you looked")
        });
        tmux(&["send-keys", "-t", s, "y"]);
        wait_for(s, "the copy", |t| t.contains("copied: fault"));
        let buffer = tmux(&["show-buffer"]);
        let copied = String::from_utf8_lossy(&buffer.stdout);
        assert!(
            copied.starts_with("fault ")
                && copied.contains(&format!("lamp {lamp} "))
                && copied.contains("EARTH_LEAKAGE OPEN first seen"),
            "{copied}"
        );
        tmux(&["send-keys", "-t", s, "q"]);
        wait_for(s, "the console to end", |_| {
            let dead = tmux(&["display-message", "-p", "-t", s, "#{pane_dead}"]);
            String::from_utf8_lossy(&dead.stdout).trim() == "1"
        });
        // Captured once the process has ended: a capture taken while checking could still
        // show the last frame.
        capture(s)
    })
    .await
    .unwrap();
    tmux(&["kill-session", "-t", &session]);
    // The alternate screen is gone: what the console drew is not left behind.
    assert!(
        !screen.contains("1 Faults"),
        "terminal not restored:\n{screen}"
    );
    assert!(!screen.contains(PASSWORD), "{screen}");
    server.stop().await;
}
