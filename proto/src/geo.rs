//! Distances on the Earth's surface, for duplicate detection and check-in plausibility.

pub use crate::checkin::Datum;

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
    use super::Datum;

    // Tiananmen area, WGS-84, and its GCJ-02 and BD-09 as the published forward formulas give
    // them (the values every GCJ-02 implementation reproduces).
    const WGS84: (f64, f64) = (39.915, 116.404);
    const GCJ02: (f64, f64) = (39.91640428150164, 116.41024449916938);

    #[test]
    fn gcj02_and_bd09_come_back_to_wgs84_within_a_metre() {
        let back = Datum::Gcj02.to_wgs84(GCJ02.0, GCJ02.1);
        let off = super::distance_m(back, WGS84);
        assert!(off < 1.0, "{off} m");
        // The shift being undone is hundreds of metres.
        assert!(super::distance_m(GCJ02, WGS84) > 400.0);
        let (bd_lon, bd_lat) = coordtransform::wgs84_to_bd09(WGS84.1, WGS84.0);
        let back = Datum::Bd09.to_wgs84(bd_lat, bd_lon);
        assert!(super::distance_m(back, WGS84) < 1.0);
    }

    #[test]
    fn outside_mainland_china_nothing_moves() {
        // Seoul, Hong Kong, Berlin: given as GCJ-02 or BD-09, they are WGS-84 already.
        for (lat, lon) in [(37.5665, 126.978), (22.2800, 114.1588), (52.52, 13.405)] {
            assert_eq!(Datum::Gcj02.to_wgs84(lat, lon), (lat, lon));
        }
        assert_eq!(Datum::Wgs84.to_wgs84(WGS84.0, WGS84.1), WGS84);
    }

    #[test]
    fn known_distances() {
        // 0.001° of latitude is about 111 m anywhere.
        let d = super::distance_m((45.75, 126.65), (45.751, 126.65));
        assert!((d - 111.2).abs() < 0.5, "{d}");
        assert_eq!(super::distance_m((45.75, 126.65), (45.75, 126.65)), 0.0);
    }
}
