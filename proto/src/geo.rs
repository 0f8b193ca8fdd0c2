//! Distances on the Earth's surface, for duplicate detection and check-in plausibility.

/// Mean Earth radius, metres (IUGG).
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle distance in metres between two WGS-84 points `(lat, lon)` in degrees
/// (haversine; well under 0.5 % error at patrol distances).
pub fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1) = (a.0.to_radians(), a.1.to_radians());
    let (la2, lo2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_distances() {
        // 0.001° of latitude is about 111 m anywhere.
        let d = super::distance_m((45.75, 126.65), (45.751, 126.65));
        assert!((d - 111.2).abs() < 0.5, "{d}");
        assert_eq!(super::distance_m((45.75, 126.65), (45.75, 126.65)), 0.0);
    }
}
