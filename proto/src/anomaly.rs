//! Anomaly flags on check-ins: what the server marks on a check-in whose
//! proof of presence is doubtful. Flag, never drop: a flagged check-in stays in every ledger,
//! and compliance counts it as inspected-but-flagged rather than silently as inspected.
//!
//! Pure rules over what the check-in carries, where its checkpoint is, the device's clock
//! offset, and the same user's previous check-in, so ledgers and reports computed on any node
//! from the same rows agree.

use std::fmt;

use crate::geo::distance_m;

/// One reason a check-in is doubtful.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Anomaly {
    /// Further from the checkpoint than its radius plus the fix's accuracy.
    OutOfRadius,
    /// The device said the position came from a mock provider.
    MockLocation,
    /// No position at all, at a checkpoint that has one.
    NoFix,
    /// The device's clock was off by more than the allowed skew (its Hello estimate, or a
    /// device time later than the server received the record).
    ClockSkew,
    /// Faster than anyone patrols from the same user's previous check-in.
    ImpossibleSpeed,
    /// A repeat of the same user's check-in at the same checkpoint moments before.
    DoubleTap,
}

impl Anomaly {
    /// Every flag, in the order reports list them.
    pub const ALL: [Anomaly; 6] = [
        Anomaly::OutOfRadius,
        Anomaly::MockLocation,
        Anomaly::NoFix,
        Anomaly::ClockSkew,
        Anomaly::ImpossibleSpeed,
        Anomaly::DoubleTap,
    ];

    /// The name used in ledgers and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Anomaly::OutOfRadius => "out_of_radius",
            Anomaly::MockLocation => "mock_location",
            Anomaly::NoFix => "no_fix",
            Anomaly::ClockSkew => "clock_skew",
            Anomaly::ImpossibleSpeed => "impossible_speed",
            Anomaly::DoubleTap => "double_tap",
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Thresholds of the rules.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AnomalyRules {
    /// A device clock further than this from the server's is skewed, ms.
    pub clock_skew_ms: i64,
    /// Faster than this between consecutive check-ins is impossible, m/s.
    pub max_speed_mps: f64,
    /// Moves shorter than this (after both fixes' accuracy) are never a speed anomaly, m: GPS
    /// noise between two check-ins seconds apart must not read as a sprint.
    pub min_speed_distance_m: f64,
}

impl Default for AnomalyRules {
    fn default() -> Self {
        AnomalyRules {
            clock_skew_ms: 5 * 60_000,
            // 120 km/h: a car on an urban expressway; patrols walk, cycle or drive in town.
            max_speed_mps: 120.0 / 3.6,
            min_speed_distance_m: 200.0,
        }
    }
}

/// What the rules look at in one check-in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observed {
    /// The fix: latitude, longitude (degrees), accuracy (m).
    pub fix: Option<(f64, f64, f64)>,
    /// The device flagged the fix as mocked.
    pub mock: bool,
    /// Device time of the check-in, ms.
    pub device_time_ms: i64,
    /// When the server received it, ms.
    pub received_at_ms: i64,
    /// The device's clock offset as last estimated at Hello (device − server), ms.
    pub clock_offset_ms: Option<i64>,
    /// Marked a double tap at ingest.
    pub double_tap: bool,
}

/// Where the checkpoint is: latitude, longitude (degrees), radius (m).
pub type Place = (f64, f64, f64);

/// The flags of `this` check-in at `checkpoint`, given the same user's previous check-in (by
/// device time), in [`Anomaly::ALL`] order.
pub fn flags(
    rules: &AnomalyRules,
    this: &Observed,
    checkpoint: Option<Place>,
    previous: Option<&Observed>,
) -> Vec<Anomaly> {
    let mut out = Vec::new();
    if let (Some((lat, lon, accuracy)), Some((clat, clon, radius))) = (this.fix, checkpoint)
        && distance_m((lat, lon), (clat, clon)) > radius + accuracy.max(0.0)
    {
        out.push(Anomaly::OutOfRadius);
    }
    if this.mock {
        out.push(Anomaly::MockLocation);
    }
    if this.fix.is_none() && checkpoint.is_some() {
        out.push(Anomaly::NoFix);
    }
    let offset_skewed = this
        .clock_offset_ms
        .is_some_and(|o| o.abs() > rules.clock_skew_ms);
    let from_the_future = this.device_time_ms > this.received_at_ms + rules.clock_skew_ms;
    if offset_skewed || from_the_future {
        out.push(Anomaly::ClockSkew);
    }
    if let (Some(prev), Some((lat, lon, acc))) = (previous, this.fix)
        && let Some((plat, plon, pacc)) = prev.fix
    {
        // Give the user the benefit of both fixes' accuracy.
        let moved = distance_m((plat, plon), (lat, lon)) - acc.max(0.0) - pacc.max(0.0);
        if moved > rules.min_speed_distance_m {
            let seconds = (this.device_time_ms - prev.device_time_ms) as f64 / 1000.0;
            if seconds <= 0.0 || moved / seconds > rules.max_speed_mps {
                out.push(Anomaly::ImpossibleSpeed);
            }
        }
    }
    if this.double_tap {
        out.push(Anomaly::DoubleTap);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: Place = (45.75, 126.65, 30.0);

    fn at(lat: f64, lon: f64, accuracy: f64, t: i64) -> Observed {
        Observed {
            fix: Some((lat, lon, accuracy)),
            mock: false,
            device_time_ms: t,
            received_at_ms: t + 1_000,
            clock_offset_ms: Some(0),
            double_tap: false,
        }
    }

    fn check(this: &Observed, previous: Option<&Observed>) -> Vec<Anomaly> {
        flags(&AnomalyRules::default(), this, Some(HERE), previous)
    }

    #[test]
    fn a_clean_check_in_has_no_flags() {
        assert!(check(&at(45.75, 126.65, 10.0, 0), None).is_empty());
    }

    #[test]
    fn out_of_radius_counts_the_accuracy() {
        // ~111 m north: outside 30 m + 10 m, inside 30 m + 90 m.
        assert_eq!(
            check(&at(45.751, 126.65, 10.0, 0), None),
            [Anomaly::OutOfRadius]
        );
        assert!(check(&at(45.751, 126.65, 90.0, 0), None).is_empty());
    }

    #[test]
    fn mock_no_fix_and_double_tap_are_flagged() {
        let mut o = at(45.75, 126.65, 5.0, 0);
        o.mock = true;
        o.double_tap = true;
        assert_eq!(check(&o, None), [Anomaly::MockLocation, Anomaly::DoubleTap]);
        o = at(0.0, 0.0, 0.0, 0);
        o.fix = None;
        assert_eq!(check(&o, None), [Anomaly::NoFix]);
        // A checkpoint without a position asks for none.
        assert!(flags(&AnomalyRules::default(), &o, None, None).is_empty());
    }

    #[test]
    fn clock_skew_from_the_hello_estimate_or_a_future_device_time() {
        let mut o = at(45.75, 126.65, 5.0, 0);
        o.clock_offset_ms = Some(-6 * 60_000);
        assert_eq!(check(&o, None), [Anomaly::ClockSkew]);
        o.clock_offset_ms = Some(4 * 60_000);
        assert!(check(&o, None).is_empty());
        o.clock_offset_ms = None;
        o.received_at_ms = o.device_time_ms - 10 * 60_000;
        assert_eq!(check(&o, None), [Anomaly::ClockSkew]);
        // Offline for hours is not skew: received long after it was recorded.
        o.received_at_ms = o.device_time_ms + 8 * 3_600_000;
        assert!(check(&o, None).is_empty());
    }

    #[test]
    fn impossible_speed_between_consecutive_check_ins() {
        let prev = at(45.75, 126.65, 10.0, 0);
        // ~11 km north in 5 minutes: 133 km/h.
        let far = at(45.85, 126.65, 10.0, 5 * 60_000);
        assert!(
            flags(&AnomalyRules::default(), &far, None, Some(&prev))
                .contains(&Anomaly::ImpossibleSpeed)
        );
        // The same in 10 minutes: 67 km/h, a car.
        let later = at(45.85, 126.65, 10.0, 10 * 60_000);
        assert!(flags(&AnomalyRules::default(), &later, None, Some(&prev)).is_empty());
        // GPS noise: 150 m in one second, within the distance floor.
        let jitter = at(45.7513, 126.65, 10.0, 1_000);
        assert!(flags(&AnomalyRules::default(), &jitter, None, Some(&prev)).is_empty());
        // Same device time, far apart.
        let same_time = at(45.85, 126.65, 10.0, 0);
        assert_eq!(
            flags(&AnomalyRules::default(), &same_time, None, Some(&prev)),
            [Anomaly::ImpossibleSpeed]
        );
    }
}
