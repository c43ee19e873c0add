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

/// One attempt counted before its password is checked, so that attempts in flight at once
/// are counted at once: `release` takes it back when the password was right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    username: String,
    peer: Option<IpAddr>,
    at: Instant,
}

impl LoginLimiter {
    pub fn new(limits: LoginLimits) -> Self {
        Self {
            limits,
            users: Mutex::new(HashMap::new()),
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt for the user and the peer before its password is checked, or
    /// `Err(wait)` when either has used up its attempts. Checking and counting happen under
    /// one lock, so however many attempts arrive at once, at most the limit's worth get a
    /// password checked.
    pub fn reserve(
        &self,
        username: &str,
        peer: Option<IpAddr>,
        now: Instant,
    ) -> Result<Reservation, Duration> {
        let window = self.limits.window;
        // Always users, then peers: one order for both locks.
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let user_wait = users
            .get_mut(username)
            .and_then(|f| wait(f, self.limits.per_user, window, now));
        let peer_wait = peer.and_then(|peer| {
            peers
                .get_mut(&peer)
                .and_then(|f| wait(f, self.limits.per_peer, window, now))
        });
        if let Some(wait) = user_wait.max(peer_wait) {
            return Err(wait);
        }
        bound(&mut users, window, now);
        users.entry(username.to_owned()).or_default().push_back(now);
        if let Some(peer) = peer {
            bound(&mut peers, window, now);
            peers.entry(peer).or_default().push_back(now);
        }
        Ok(Reservation {
            username: username.to_owned(),
            peer,
            at: now,
        })
    }

    /// A failed attempt made on another server sharing the database: it counts here too,
    /// so the limits hold whichever server an attacker picks.
    pub fn count_failure(&self, username: &str, peer: Option<IpAddr>, now: Instant) {
        let window = self.limits.window;
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        bound(&mut users, window, now);
        users.entry(username.to_owned()).or_default().push_back(now);
        if let Some(peer) = peer {
            bound(&mut peers, window, now);
            peers.entry(peer).or_default().push_back(now);
        }
    }

    /// The password was right: the attempt no longer counts against the peer, and the
    /// user's failures are cleared.
    pub fn release(&self, reservation: Reservation) {
        self.users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&reservation.username);
        if let Some(peer) = reservation.peer {
            let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(failures) = peers.get_mut(&peer)
                && let Some(at) = failures.iter().position(|t| *t == reservation.at)
            {
                failures.remove(at);
            }
        }
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

    fn limiter(per_user: u32, per_peer: u32) -> LoginLimiter {
        LoginLimiter::new(LoginLimits {
            per_user,
            per_peer,
            window: Duration::from_secs(60),
        })
    }

    #[test]
    fn a_user_is_held_off_after_the_limit_until_the_window_passes() {
        let limiter = limiter(3, 100);
        let t0 = Instant::now();
        let peer = Some(IpAddr::from([10, 0, 0, 1]));
        for i in 0..3 {
            assert!(limiter.reserve("ana", peer, t0).is_ok(), "attempt {i}");
        }
        let wait = limiter.reserve("ana", peer, t0 + Duration::from_secs(10));
        assert_eq!(wait, Err(Duration::from_secs(50)));
        assert!(
            limiter.reserve("bob", peer, t0).is_ok(),
            "other users are not held"
        );
        assert!(
            limiter
                .reserve("ana", peer, t0 + Duration::from_secs(60))
                .is_ok()
        );
    }

    #[test]
    fn one_address_trying_many_names_is_held_off() {
        let limiter = limiter(100, 4);
        let t0 = Instant::now();
        let peer = Some(IpAddr::from([10, 0, 0, 2]));
        for name in ["a", "b", "c", "d"] {
            assert!(limiter.reserve(name, peer, t0).is_ok());
        }
        assert!(limiter.reserve("e", peer, t0).is_err());
        assert!(
            limiter
                .reserve("e", Some(IpAddr::from([10, 0, 0, 3])), t0)
                .is_ok()
        );
    }

    #[test]
    fn a_right_password_takes_its_attempt_back() {
        let limiter = limiter(2, 3);
        let t0 = Instant::now();
        let peer = Some(IpAddr::from([10, 0, 0, 4]));
        assert!(limiter.reserve("ana", peer, t0).is_ok());
        let good = limiter.reserve("ana", peer, t0).unwrap();
        limiter.release(good);
        // The user's failures are cleared and the peer keeps only the one failure.
        assert!(limiter.reserve("ana", peer, t0).is_ok());
        assert!(limiter.reserve("ana", peer, t0).is_ok());
        assert!(
            limiter.reserve("ana", peer, t0).is_err(),
            "3 failures from the peer"
        );
    }

    #[test]
    fn attempts_at_once_from_many_threads_get_at_most_the_limit() {
        let limiter = std::sync::Arc::new(limiter(5, 20));
        let t0 = Instant::now();
        let granted = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..25 {
                        if limiter
                            .reserve("ana", Some(IpAddr::from([10, 0, 0, 5])), t0)
                            .is_ok()
                        {
                            granted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(granted.into_inner(), 5);
    }
}
