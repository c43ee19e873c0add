//! A real terminal for tests of the console: tmux sessions, their screens, and waiting for
//! what an operator would see.

use std::process::Command;
use std::time::{Duration, Instant};

/// Runs tmux with `args`.
pub fn tmux(args: &[&str]) -> std::process::Output {
    Command::new("tmux").args(args).output().unwrap()
}

/// Whether tmux is installed here.
pub fn tmux_installed() -> bool {
    Command::new("tmux").arg("-V").output().is_ok()
}

/// The screen of a session as text.
pub fn capture(session: &str) -> String {
    String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", session]).stdout).into_owned()
}

/// Waits (up to a minute, for debug builds on a busy machine) until the screen shows
/// `what`, as `needle` tells; the screen then.
pub fn wait_for(session: &str, what: &str, needle: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let screen = capture(session);
        if needle(&screen) {
            return screen;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never saw {what}:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
