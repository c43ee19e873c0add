//! Failed sign-ins counted per username and per peer address over a sliding window; past the
//! limit, further attempts are refused until the oldest failure leaves the window.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Failed attempts allowed for one username within the window.
    pub per_user: u32,
    /// Failed attempts allowed from one address within the window (any usernames).
    pub per_peer: u32,
    pub window: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_user: 5,
            per_peer: 20,
            window: Duration::from_secs(300),
        }
    }
}

/// Keys tracked at most per map; beyond it, keys with no failure in the window are dropped.
const MAX_TRACKED: usize = 100_000;

pub struct LoginLimiter {
    limits: LoginLimits,
    users: Mutex<HashMap<String, VecDeque<Instant>>>,
    peers: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl LoginLimiter {
    pub fn new(limits: LoginLimits) -> Self {
        Self {
            limits,
            users: Mutex::new(HashMap::new()),
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` when the user or the peer has used up its failures.
    pub fn check(
        &self,
        username: &str,
        peer: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Duration> {
        let window = self.limits.window;
        let user_wait = {
            let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
            users
                .get_mut(username)
                .and_then(|f| wait(f, self.limits.per_user, window, now))
        };
        let peer_wait = peer.and_then(|peer| {
            let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
            peers
                .get_mut(&peer)
                .and_then(|f| wait(f, self.limits.per_peer, window, now))
        });
        match user_wait.max(peer_wait) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    pub fn failed(&self, username: &str, peer: Option<IpAddr>, now: Instant) {
        let window = self.limits.window;
        {
            let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
            bound(&mut users, window, now);
            users.entry(username.to_owned()).or_default().push_back(now);
        }
        if let Some(peer) = peer {
            let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
            bound(&mut peers, window, now);
            peers.entry(peer).or_default().push_back(now);
        }
    }

    /// A correct password clears the user's failures (not the peer's).
    pub fn succeeded(&self, username: &str) {
        self.users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(username);
    }
}

fn forget_old(failures: &mut VecDeque<Instant>, window: Duration, now: Instant) {
    while failures
        .front()
        .is_some_and(|at| now.duration_since(*at) >= window)
    {
        failures.pop_front();
    }
}

fn wait(
    failures: &mut VecDeque<Instant>,
    limit: u32,
    window: Duration,
    now: Instant,
) -> Option<Duration> {
    forget_old(failures, window, now);
    if failures.len() < limit as usize {
        return None;
    }
    let oldest = *failures.front()?;
    Some(window.saturating_sub(now.duration_since(oldest)))
}

fn bound<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, VecDeque<Instant>>,
    window: Duration,
    now: Instant,
) {
    if map.len() >= MAX_TRACKED {
        map.retain(|_, failures| {
            forget_old(failures, window, now);
            !failures.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_held_off_after_the_limit_until_the_window_passes() {
        let limiter = LoginLimiter::new(LoginLimits {
            per_user: 3,
            per_peer: 100,
            window: Duration::from_secs(60),
        });
        let t0 = Instant::now();
        let peer = Some(IpAddr::from([10, 0, 0, 1]));
        for i in 0..3 {
            assert!(limiter.check("ana", peer, t0).is_ok(), "attempt {i}");
            limiter.failed("ana", peer, t0);
        }
        let wait = limiter.check("ana", peer, t0 + Duration::from_secs(10));
        assert_eq!(wait, Err(Duration::from_secs(50)));
        assert!(
            limiter.check("bob", peer, t0).is_ok(),
            "other users are not held"
        );
        assert!(
            limiter
                .check("ana", peer, t0 + Duration::from_secs(60))
                .is_ok()
        );
    }

    #[test]
    fn one_address_trying_many_names_is_held_off() {
        let limiter = LoginLimiter::new(LoginLimits {
            per_user: 100,
            per_peer: 4,
            window: Duration::from_secs(60),
        });
        let t0 = Instant::now();
        let peer = Some(IpAddr::from([10, 0, 0, 2]));
        for name in ["a", "b", "c", "d"] {
            limiter.failed(name, peer, t0);
        }
        assert!(limiter.check("e", peer, t0).is_err());
        assert!(
            limiter
                .check("e", Some(IpAddr::from([10, 0, 0, 3])), t0)
                .is_ok()
        );
    }

    #[test]
    fn success_clears_the_users_count() {
        let limiter = LoginLimiter::new(LoginLimits {
            per_user: 2,
            per_peer: 100,
            window: Duration::from_secs(60),
        });
        let t0 = Instant::now();
        limiter.failed("ana", None, t0);
        limiter.succeeded("ana");
        limiter.failed("ana", None, t0);
        assert!(limiter.check("ana", None, t0).is_ok());
    }
}
