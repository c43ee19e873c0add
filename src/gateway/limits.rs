//! How many calls a second the gateway lets each user and each address make, counted in
//! one-second windows; past it, RESOURCE_EXHAUSTED.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use super::error::Refusal;

/// Calls a second (0: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    pub per_user: u32,
    pub per_address: u32,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self {
            per_user: 1_000,
            per_address: 2_000,
        }
    }
}

/// Windows kept before the old ones are swept out.
const SWEEP_AT: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Caller {
    User(String),
    Address(IpAddr),
}

pub struct Limiter {
    limits: CallLimits,
    began: Instant,
    /// Each caller's current second and its calls in it.
    windows: Mutex<HashMap<Caller, (u64, u32)>>,
}

impl Limiter {
    pub fn new(limits: CallLimits) -> Self {
        Self {
            limits,
            began: Instant::now(),
            windows: Mutex::default(),
        }
    }

    pub fn admit_address(&self, address: IpAddr) -> Result<(), Refusal> {
        self.admit(Caller::Address(address), self.limits.per_address)
            .map_err(|()| Refusal::TooMany(format!("from {address}")))
    }

    pub fn admit_user(&self, username: &str) -> Result<(), Refusal> {
        self.admit(Caller::User(username.to_owned()), self.limits.per_user)
            .map_err(|()| Refusal::TooMany(format!("by {username}")))
    }

    fn admit(&self, caller: Caller, limit: u32) -> Result<(), ()> {
        self.admit_in(self.began.elapsed().as_secs(), caller, limit)
    }

    /// `admit` in a given second since the limiter began.
    fn admit_in(&self, second: u64, caller: Caller, limit: u32) -> Result<(), ()> {
        if limit == 0 {
            return Ok(());
        }
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if windows.len() >= SWEEP_AT {
            windows.retain(|_, (s, _)| *s == second);
        }
        let window = windows.entry(caller).or_insert((second, 0));
        if window.0 != second {
            *window = (second, 0);
        }
        if window.1 >= limit {
            return Err(());
        }
        window.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_caller_has_its_own_allowance_each_second() {
        let limiter = Limiter::new(CallLimits {
            per_user: 3,
            per_address: 5,
        });
        let ana = || Caller::User("ana".into());
        let here = || Caller::Address("10.0.0.7".parse().unwrap());
        let admitted = |second: u64, caller: &dyn Fn() -> Caller, limit: u32| {
            (0..10)
                .filter(|_| limiter.admit_in(second, caller(), limit).is_ok())
                .count()
        };
        assert_eq!(admitted(0, &ana, 3), 3);
        assert_eq!(admitted(0, &here, 5), 5);
        assert!(limiter.admit_in(0, Caller::User("bob".into()), 3).is_ok());
        // The next second starts afresh.
        assert_eq!(admitted(1, &ana, 3), 3);
        assert_eq!(admitted(1, &ana, 0), 10, "0 is no limit");
        let refused = Limiter::new(CallLimits {
            per_user: 1,
            per_address: 1,
        });
        assert!(refused.admit_user("ana").is_ok());
        let error = refused.admit_user("ana").unwrap_err().to_string();
        assert!(error.contains("by ana"), "{error}");
    }
}
