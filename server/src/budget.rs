//! What a peer may make this node do, and how fast: request rates per device, enrollment
//! attempts per source address, photo bytes and refused-op bytes per device per day, and the
//! connections an address may hold before it has enrolled. Each is a GCRA limit (governor),
//! counted in this node's memory: a cluster of N nodes allows up to N times as much to a device
//! that spreads itself over them, which the limits are sized for.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use patrolsync_proto::DeviceId;

use crate::config::Limits;

/// Budgets counted per day use KiB as their unit (governor counts in `u32` cells).
const KIB: u64 = 1024;
const DAY: Duration = Duration::from_secs(24 * 3600);

/// A refusal: when the budget allows it again (`None`: never, the request alone is larger
/// than the whole budget).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Refused {
    pub retry_in: Option<Duration>,
}

/// `burst` events, refilled at `per_second`.
fn rate(per_second: f64, burst: u32) -> Quota {
    let period = Duration::from_secs_f64(1.0 / per_second.max(1e-6));
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

/// `bytes` a day, all of them usable at once (in KiB cells).
fn daily(bytes: u64) -> Quota {
    let cells = u32::try_from((bytes / KIB).max(1)).unwrap_or(u32::MAX);
    let period = DAY / cells;
    Quota::with_period(period.max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(cells).unwrap_or(NonZeroU32::MIN))
}

fn one<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
) -> Result<(), Refused> {
    limiter.check_key(key).map_err(|not_until| Refused {
        retry_in: Some(not_until.wait_time_from(governor::clock::Clock::now(
            &governor::clock::DefaultClock::default(),
        ))),
    })
}

fn bytes<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
    n: u64,
) -> Result<(), Refused> {
    let cells = u32::try_from(n.div_ceil(KIB).max(1)).unwrap_or(u32::MAX);
    let cells = NonZeroU32::new(cells).unwrap_or(NonZeroU32::MIN);
    match limiter.check_key_n(key, cells) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(not_until)) => Err(Refused {
            retry_in: Some(not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ))),
        }),
        Err(_) => Err(Refused { retry_in: None }),
    }
}

/// The node's budgets.
pub(crate) struct Budgets {
    limits: Limits,
    pushes: DefaultKeyedRateLimiter<DeviceId>,
    requests: DefaultKeyedRateLimiter<DeviceId>,
    enrolls: DefaultKeyedRateLimiter<IpAddr>,
    photo_bytes: DefaultKeyedRateLimiter<DeviceId>,
    refused_bytes: DefaultKeyedRateLimiter<DeviceId>,
    unenrolled: Mutex<Unenrolled>,
}

#[derive(Default)]
struct Unenrolled {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// A connection without a device certificate, counted while it lives.
pub(crate) struct UnenrolledSlot {
    budgets: Arc<Budgets>,
    address: IpAddr,
}

impl Drop for UnenrolledSlot {
    fn drop(&mut self) {
        let mut u = self
            .budgets
            .unenrolled
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        u.total = u.total.saturating_sub(1);
        if let Some(n) = u.by_address.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                u.by_address.remove(&self.address);
            }
        }
    }
}

/// Why an unenrolled connection was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Crowded {
    /// This address holds its share already.
    Address(u32),
    /// The node holds its share already.
    Node(u32),
}

impl Budgets {
    /// Budgets from `limits`.
    pub fn new(limits: &Limits) -> Budgets {
        Budgets {
            limits: limits.clone(),
            pushes: RateLimiter::keyed(rate(limits.pushes_per_second, limits.push_burst)),
            requests: RateLimiter::keyed(rate(limits.requests_per_second, limits.request_burst)),
            enrolls: RateLimiter::keyed(rate(
                limits.enrolls_per_minute_per_address / 60.0,
                limits.enrolls_per_minute_per_address.ceil() as u32,
            )),
            photo_bytes: RateLimiter::keyed(daily(limits.photo_bytes_per_day)),
            refused_bytes: RateLimiter::keyed(daily(limits.refused_bytes_per_day)),
            unenrolled: Mutex::default(),
        }
    }

    /// One push of `device`.
    pub fn push(&self, device: DeviceId) -> Result<(), Refused> {
        one(&self.pushes, &device)
    }

    /// One other request of `device` (Hello, Pull, photo status, uploads and downloads).
    pub fn request(&self, device: DeviceId) -> Result<(), Refused> {
        one(&self.requests, &device)
    }

    /// One enrollment attempt from `address`.
    pub fn enroll(&self, address: IpAddr) -> Result<(), Refused> {
        one(&self.enrolls, &address)
    }

    /// `n` photo bytes `device` is about to send.
    pub fn photo_bytes(&self, device: DeviceId, n: u64) -> Result<(), Refused> {
        bytes(&self.photo_bytes, &device, n)
    }

    /// Whether the refusal log may keep `n` more bytes of `device`'s refused ops today (beyond
    /// it a refusal is still recorded and answered, without the op's payload).
    pub fn keep_refused(&self, device: DeviceId, n: u64) -> bool {
        bytes(&self.refused_bytes, &device, n).is_ok()
    }

    /// A place for a connection from `address` that has no device certificate, if the address
    /// and the node have one left.
    pub fn admit_unenrolled(self: &Arc<Self>, address: IpAddr) -> Result<UnenrolledSlot, Crowded> {
        let mut u = self.unenrolled.lock().unwrap_or_else(|e| e.into_inner());
        let per = self.limits.unenrolled_connections_per_address;
        let total = self.limits.unenrolled_connections;
        if u.total >= total as usize {
            return Err(Crowded::Node(total));
        }
        let mine = u.by_address.entry(address).or_default();
        if *mine >= per as usize {
            return Err(Crowded::Address(per));
        }
        *mine += 1;
        u.total += 1;
        Ok(UnenrolledSlot {
            budgets: self.clone(),
            address,
        })
    }

    /// Forgets keys that have had their full budget back for a while (a flood of addresses
    /// must not grow the limiters without bound).
    pub fn forget_idle(&self) {
        self.pushes.retain_recent();
        self.requests.retain_recent();
        self.enrolls.retain_recent();
        self.photo_bytes.retain_recent();
        self.refused_bytes.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(n: u128) -> DeviceId {
        DeviceId(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn a_burst_then_refusal_with_a_wait_per_device() {
        let b = Budgets::new(&Limits {
            pushes_per_second: 1.0,
            push_burst: 3,
            ..Limits::default()
        });
        for _ in 0..3 {
            assert_eq!(b.push(device(1)), Ok(()));
        }
        let refused = b.push(device(1)).expect_err("over the burst");
        assert!(
            refused
                .retry_in
                .is_some_and(|d| d <= Duration::from_secs(1))
        );
        assert_eq!(b.push(device(2)), Ok(()), "another device has its own");
    }

    #[test]
    fn daily_bytes_are_spent_and_a_request_larger_than_the_day_never_fits() {
        let b = Budgets::new(&Limits {
            photo_bytes_per_day: 10 << 20,
            ..Limits::default()
        });
        assert_eq!(b.photo_bytes(device(1), 6 << 20), Ok(()));
        let refused = b.photo_bytes(device(1), 6 << 20).expect_err("over the day");
        assert!(
            refused
                .retry_in
                .is_some_and(|d| d > Duration::from_secs(3600))
        );
        assert_eq!(
            b.photo_bytes(device(2), 11 << 20),
            Err(Refused { retry_in: None })
        );
    }

    #[test]
    fn unenrolled_connections_are_counted_per_address_and_in_total() {
        let b = Arc::new(Budgets::new(&Limits {
            unenrolled_connections: 3,
            unenrolled_connections_per_address: 2,
            ..Limits::default()
        }));
        let (a, c): (IpAddr, IpAddr) = (
            "192.0.2.1".parse().unwrap_or(IpAddr::from([0; 4])),
            "192.0.2.2".parse().unwrap_or(IpAddr::from([0; 4])),
        );
        let first = b.admit_unenrolled(a).expect("first");
        let _second = b.admit_unenrolled(a).expect("second");
        assert!(matches!(b.admit_unenrolled(a), Err(Crowded::Address(2))));
        let _third = b.admit_unenrolled(c).expect("another address");
        assert!(matches!(b.admit_unenrolled(c), Err(Crowded::Node(3))));
        drop(first);
        assert!(
            b.admit_unenrolled(c).is_ok(),
            "a closed one frees its place"
        );
    }
}
