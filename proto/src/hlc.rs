//! Hybrid logical clock (Kulkarni et al., 2014): a timestamp that follows wall time when clocks
//! are sane and still orders causally related edits when they are not. Pure: the caller passes
//! the wall clock in.

use crate::wire;

/// An HLC timestamp. Ordered by wall time, then the logical counter; ties between devices are
/// broken by the caller (by device id) where a total order is needed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hlc {
    /// Physical part, Unix milliseconds.
    pub wall_ms: u64,
    /// Counter within one millisecond.
    pub logical: u32,
}

impl Hlc {
    /// The timestamp for a local event at wall time `now_ms`, strictly after `self`.
    #[must_use]
    pub fn tick(self, now_ms: u64) -> Hlc {
        if now_ms > self.wall_ms {
            Hlc {
                wall_ms: now_ms,
                logical: 0,
            }
        } else {
            self.bump()
        }
    }

    /// The timestamp after receiving `remote` at wall time `now_ms`: strictly after both `self`
    /// and `remote`.
    #[must_use]
    pub fn observe(self, remote: Hlc, now_ms: u64) -> Hlc {
        let wall = now_ms.max(self.wall_ms).max(remote.wall_ms);
        if wall == now_ms && wall > self.wall_ms && wall > remote.wall_ms {
            return Hlc {
                wall_ms: wall,
                logical: 0,
            };
        }
        let base = self.max(remote);
        if base.wall_ms == wall {
            base.bump()
        } else {
            Hlc {
                wall_ms: wall,
                logical: 0,
            }
        }
    }

    fn bump(self) -> Hlc {
        match self.logical.checked_add(1) {
            Some(logical) => Hlc {
                wall_ms: self.wall_ms,
                logical,
            },
            // 4 billion events in one millisecond: borrow the next millisecond.
            None => Hlc {
                wall_ms: self.wall_ms + 1,
                logical: 0,
            },
        }
    }
}

impl From<wire::Hlc> for Hlc {
    fn from(w: wire::Hlc) -> Self {
        Hlc {
            wall_ms: w.wall_ms,
            logical: w.logical,
        }
    }
}

impl From<Hlc> for wire::Hlc {
    fn from(h: Hlc) -> Self {
        wire::Hlc {
            wall_ms: h.wall_ms,
            logical: h.logical,
        }
    }
}

impl std::fmt::Display for Hlc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.wall_ms, self.logical)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tick_follows_wall_clock_and_never_goes_back() {
        let a = Hlc::default().tick(1_000);
        assert_eq!(
            a,
            Hlc {
                wall_ms: 1_000,
                logical: 0
            }
        );
        // Wall clock jumped back: the HLC keeps going forward.
        let b = a.tick(500);
        assert_eq!(
            b,
            Hlc {
                wall_ms: 1_000,
                logical: 1
            }
        );
    }

    proptest! {
        #[test]
        fn observe_is_after_both(local_w in 0u64..1_000_000, local_l in 0u32..100,
                                 remote_w in 0u64..1_000_000, remote_l in 0u32..100,
                                 now in 0u64..1_000_000) {
            let local = Hlc { wall_ms: local_w, logical: local_l };
            let remote = Hlc { wall_ms: remote_w, logical: remote_l };
            let next = local.observe(remote, now);
            prop_assert!(next > local);
            prop_assert!(next > remote);
            prop_assert!(next.wall_ms >= now);
        }

        #[test]
        fn ticks_are_strictly_increasing(clock in proptest::collection::vec(0u64..10_000, 1..50)) {
            let mut h = Hlc::default();
            for now in clock {
                let next = h.tick(now);
                prop_assert!(next > h);
                h = next;
            }
        }
    }
}
