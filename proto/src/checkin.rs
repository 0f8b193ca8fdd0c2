//! Check-ins: immutable proof of presence at a checkpoint with checklist answers, and the
//! validation every check-in passes before the server stores it (the SDK runs the same checks
//! before queueing, so a bad record is refused on the phone, not hours later).

use crate::ids::CheckInId;
use crate::wire;

/// Earliest plausible device time: 2020-01-01T00:00:00Z. Anything before is a dead RTC battery.
pub const MIN_PLAUSIBLE_TIME_MS: i64 = 1_577_836_800_000;
/// How far ahead of server time a device clock may be before its records are refused.
pub const MAX_FUTURE_SKEW_MS: i64 = 366 * 24 * 3600 * 1000;
/// Limits on the sizes of a check-in's parts.
pub const MAX_TEXT_CHARS: usize = 4096;
/// At most this many photos per check-in or answer.
pub const MAX_PHOTOS: usize = 20;
/// Characters a grid cell or checkpoint code may have.
pub const MAX_CODE_CHARS: usize = 128;
/// At most this many checklist answers per check-in.
pub const MAX_ANSWERS: usize = 500;

/// Why a record was refused: the field, a stable machine-readable reason, and a sentence a
/// person can act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// Dotted path of the offending field, e.g. `fix.latitude`.
    pub field: String,
    /// Stable reason code, e.g. `out_of_range`.
    pub reason: &'static str,
    /// Human explanation naming the value and the rule.
    pub message: String,
    /// The rule's bound, where it has one (`too_long`: the most characters).
    pub limit: Option<u64>,
}

impl Invalid {
    /// A refusal of `field` for `reason`.
    pub fn new(field: impl Into<String>, reason: &'static str, message: impl Into<String>) -> Self {
        Invalid {
            field: field.into(),
            reason,
            message: message.into(),
            limit: None,
        }
    }

    /// The same refusal, naming the rule's bound.
    pub fn with_limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }
}

wire_enum!(
    /// What the visit was for.
    CheckInKind, CheckInKind, "kind", {
    /// A routine patrol pass.
    Patrol = "patrol",
    /// An inspection with a checklist.
    Inspection = "inspection",
    /// A must-visit household (六必访).
    Visit = "visit",
});

wire_enum!(
    /// How presence was proven.
    CheckInMethod, CheckInMethod, "method", {
    /// NFC tag read.
    Nfc = "nfc",
    /// QR code scan.
    Qr = "qr",
    /// GPS position only.
    Gps = "gps",
    /// Entered by hand.
    Manual = "manual",
});

wire_enum!(
    /// Whether the checkpoint could be inspected, and if not, why.
    CheckInOutcome, CheckInOutcome, "outcome", {
    /// Inspected.
    Inspected = "inspected",
    /// Could not inspect: locked (锁门).
    Locked = "locked",
    /// Could not inspect: not found (找不到).
    NotFound = "not_found",
    /// Could not inspect: moved away (搬迁).
    Moved = "moved",
    /// Could not inspect: business closed (停业).
    Closed = "closed",
    /// Could not inspect: under renovation (装修).
    Renovation = "renovation",
    /// Could not inspect: vacant (空置).
    Vacant = "vacant",
});

wire_enum!(
    /// One checklist item's answer.
    AnswerValue, AnswerValue, "answers.value", {
    /// Fine.
    Ok = "ok",
    /// A problem was found.
    Issue = "issue",
    /// Does not apply here.
    NotApplicable = "not_applicable",
});

wire_enum!(
    /// The datum of a position. Maps and phones in mainland China give GCJ-02 or BD-09;
    /// everything patrolsync stores and compares is WGS-84.
    Datum, Datum, "datum", {
    /// WGS-84 (GPS; most of the world's maps).
    Wgs84 = "wgs84",
    /// GCJ-02 (Amap/Gaode, Tencent, Android network location in mainland China).
    Gcj02 = "gcj02",
    /// BD-09 (Baidu).
    Bd09 = "bd09",
});

impl Datum {
    /// `(latitude, longitude)` given in this datum, in WGS-84. GCJ-02 and BD-09 are shifted
    /// only inside mainland China, where they are used; elsewhere (Hong Kong, Macau, abroad)
    /// their coordinates are WGS-84 already and pass unchanged. The inverse of the published
    /// forward conversion is refined numerically (`coordtransform`), well under a metre.
    pub fn to_wgs84(self, latitude: f64, longitude: f64) -> (f64, f64) {
        let (lon, lat) = match self {
            Datum::Wgs84 => (longitude, latitude),
            Datum::Gcj02 => coordtransform::gcj02_to_wgs84(longitude, latitude),
            Datum::Bd09 => coordtransform::bd09_to_wgs84(longitude, latitude),
        };
        (lat, lon)
    }

    /// The datum a wire fix names (absent: WGS-84).
    pub(crate) fn of_wire(raw: i32) -> Result<Datum, Invalid> {
        Ok(Datum::from_wire(raw)?.unwrap_or(Datum::Wgs84))
    }
}

/// A position fix from the device.
#[derive(Clone, Debug, PartialEq)]
pub struct GeoFix {
    /// Latitude, degrees, in `datum`.
    pub latitude: f64,
    /// Longitude, degrees, in `datum`.
    pub longitude: f64,
    /// Horizontal accuracy radius, metres.
    pub accuracy_m: f64,
    /// When the fix was taken (device clock, Unix ms).
    pub fix_time_ms: i64,
    /// The OS flagged the location as simulated.
    pub mock: bool,
    /// The datum the device gave the position in. A validated record's fix is always WGS-84:
    /// validation converts.
    pub datum: Datum,
}

impl GeoFix {
    /// A fix from the wire, checked as a record's fix is (range, accuracy, time) and converted
    /// to WGS-84; errors name `{prefix}.latitude` and so on.
    pub fn from_wire(prefix: &str, f: wire::GeoFix, now_ms: i64) -> Result<GeoFix, Invalid> {
        validate_fix(prefix, f, now_ms)
    }

    /// The wire form.
    pub fn to_wire(&self) -> wire::GeoFix {
        wire::GeoFix {
            latitude: self.latitude,
            longitude: self.longitude,
            accuracy_m: self.accuracy_m,
            fix_time_ms: self.fix_time_ms,
            mock: self.mock,
            // WGS-84 is the absent value, so a WGS-84 fix encodes as it did before datums.
            datum: match self.datum {
                Datum::Wgs84 => 0,
                other => other.to_wire(),
            },
        }
    }
}

/// One checklist answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// Template item id, stable across template versions.
    pub item_id: String,
    /// The answer.
    pub value: AnswerValue,
    /// Free text.
    pub note: String,
    /// SHA-256 of photos attached to this answer.
    pub photos: Vec<[u8; 32]>,
}

/// A validated check-in.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckIn {
    /// Client-generated UUIDv7.
    pub id: CheckInId,
    /// Checkpoint code.
    pub checkpoint: String,
    /// Patrol, inspection or visit.
    pub kind: CheckInKind,
    /// How presence was proven.
    pub method: CheckInMethod,
    /// NFC/QR tag UID, empty otherwise.
    pub tag_uid: String,
    /// Device wall clock when recorded (Unix ms).
    pub device_time_ms: i64,
    /// Device monotonic clock since boot when recorded (ms).
    pub monotonic_ms: u64,
    /// Position fix, if the device had one.
    pub fix: Option<GeoFix>,
    /// Inspected, or why not.
    pub outcome: CheckInOutcome,
    /// Checklist template id (empty for none).
    pub template_id: String,
    /// Checklist template version the answers were recorded against.
    pub template_version: u32,
    /// Checklist answers.
    pub answers: Vec<Answer>,
    /// SHA-256 of photos of the whole check-in.
    pub photos: Vec<[u8; 32]>,
    /// Free text.
    pub note: String,
    /// For a visit: the household visited (六必访); empty otherwise.
    pub household: String,
}

impl CheckIn {
    /// Validates a wire check-in received at server (or device) time `now_ms`.
    pub fn from_wire(w: wire::CheckIn, now_ms: i64) -> Result<CheckIn, Invalid> {
        let id = CheckInId::from_slice(&w.id).ok_or_else(|| {
            Invalid::new(
                "id",
                "invalid_id",
                format!("id must be a 16-byte UUID, got {} bytes", w.id.len()),
            )
        })?;
        let checkpoint = w.checkpoint.trim().to_owned();
        if checkpoint.is_empty() {
            return Err(Invalid::new(
                "checkpoint",
                "missing",
                "checkpoint code is required",
            ));
        }
        text("checkpoint", &checkpoint, MAX_CODE_CHARS)?;
        text("tag_uid", &w.tag_uid, 256)?;
        text("note", &w.note, MAX_TEXT_CHARS)?;
        text("template_id", &w.template_id, 128)?;
        let kind = CheckInKind::from_wire(w.kind)?.unwrap_or(CheckInKind::Patrol);
        let household = w.household.trim().to_owned();
        text("household", &household, MAX_CODE_CHARS)?;
        if !household.is_empty() && kind != CheckInKind::Visit {
            return Err(Invalid::new(
                "household",
                "not_a_visit",
                format!("only a visit names a household; this check-in is a {kind}"),
            ));
        }
        let method = CheckInMethod::from_wire(w.method)?.ok_or_else(|| {
            Invalid::new(
                "method",
                "missing",
                "method is required (nfc, qr, gps or manual)",
            )
        })?;
        let outcome = CheckInOutcome::from_wire(w.outcome)?.ok_or_else(|| {
            Invalid::new(
                "outcome",
                "missing",
                "outcome is required (inspected, or why it could not be inspected)",
            )
        })?;
        plausible_time("device_time_ms", w.device_time_ms, now_ms)?;
        let fix = w.fix.map(|f| validate_fix("fix", f, now_ms)).transpose()?;
        if w.answers.len() > MAX_ANSWERS {
            return Err(Invalid::new(
                "answers",
                "too_many",
                format!(
                    "{} answers exceed the limit of {MAX_ANSWERS}",
                    w.answers.len()
                ),
            ));
        }
        let answers = w
            .answers
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                if a.item_id.trim().is_empty() {
                    return Err(Invalid::new(
                        format!("answers[{i}].item_id"),
                        "missing",
                        "item id is required",
                    ));
                }
                text(&format!("answers[{i}].item_id"), &a.item_id, 128)?;
                text(&format!("answers[{i}].note"), &a.note, MAX_TEXT_CHARS)?;
                let value = AnswerValue::from_wire(a.value)?.ok_or_else(|| {
                    Invalid::new(
                        format!("answers[{i}].value"),
                        "missing",
                        "answer value is required (ok, issue or not_applicable)",
                    )
                })?;
                Ok(Answer {
                    item_id: a.item_id,
                    value,
                    note: a.note,
                    photos: photo_hashes(&format!("answers[{i}].photo_sha256"), &a.photo_sha256)?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CheckIn {
            id,
            checkpoint,
            kind,
            method,
            tag_uid: w.tag_uid,
            device_time_ms: w.device_time_ms,
            monotonic_ms: w.monotonic_ms,
            fix,
            outcome,
            template_id: w.template_id,
            template_version: w.template_version,
            answers,
            photos: photo_hashes("photo_sha256", &w.photo_sha256)?,
            note: w.note,
            household,
        })
    }

    /// The wire form.
    pub fn to_wire(&self) -> wire::CheckIn {
        wire::CheckIn {
            id: self.id.to_bytes(),
            checkpoint: self.checkpoint.clone(),
            kind: self.kind.to_wire(),
            method: self.method.to_wire(),
            tag_uid: self.tag_uid.clone(),
            device_time_ms: self.device_time_ms,
            monotonic_ms: self.monotonic_ms,
            fix: self.fix.as_ref().map(GeoFix::to_wire),
            outcome: self.outcome.to_wire(),
            template_id: self.template_id.clone(),
            template_version: self.template_version,
            answers: self
                .answers
                .iter()
                .map(|a| wire::Answer {
                    item_id: a.item_id.clone(),
                    value: a.value.to_wire(),
                    note: a.note.clone(),
                    photo_sha256: a.photos.iter().map(|p| p.to_vec()).collect(),
                })
                .collect(),
            photo_sha256: self.photos.iter().map(|p| p.to_vec()).collect(),
            note: self.note.clone(),
            household: self.household.clone(),
        }
    }
}

/// Refuses text longer than `max_chars` or containing control characters other than tab,
/// newline and carriage return (a NUL would also be refused by PostgreSQL later).
pub(crate) fn text(field: &str, value: &str, max_chars: usize) -> Result<(), Invalid> {
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(Invalid::new(
            field,
            "control_character",
            "text must not contain control characters",
        ));
    }
    let n = value.chars().count();
    if n > max_chars {
        return Err(Invalid::new(
            field,
            "too_long",
            format!("{n} characters exceed the limit of {max_chars}"),
        )
        .with_limit(max_chars as u64));
    }
    Ok(())
}

/// Refuses a device timestamp that no working clock could produce.
pub fn plausible_time(field: &str, t_ms: i64, now_ms: i64) -> Result<(), Invalid> {
    if t_ms < MIN_PLAUSIBLE_TIME_MS {
        return Err(Invalid::new(
            field,
            "implausible_time",
            format!("{t_ms} is before 2020-01-01; the device clock is not set"),
        ));
    }
    if t_ms > now_ms.saturating_add(MAX_FUTURE_SKEW_MS) {
        return Err(Invalid::new(
            field,
            "implausible_time",
            format!(
                "{t_ms} is more than a year after server time {now_ms}; the device clock is wrong"
            ),
        ));
    }
    Ok(())
}

/// Validates a position fix; errors name `{prefix}.latitude` and so on.
pub(crate) fn validate_fix(prefix: &str, f: wire::GeoFix, now_ms: i64) -> Result<GeoFix, Invalid> {
    coordinate(&format!("{prefix}.latitude"), "latitude", f.latitude, 90.0)?;
    coordinate(
        &format!("{prefix}.longitude"),
        "longitude",
        f.longitude,
        180.0,
    )?;
    if !f.accuracy_m.is_finite() || !(0.0..=100_000.0).contains(&f.accuracy_m) {
        return Err(Invalid::new(
            format!("{prefix}.accuracy_m"),
            "out_of_range",
            format!(
                "accuracy {} m is out of range (must be between 0 and 100000)",
                f.accuracy_m
            ),
        ));
    }
    if f.fix_time_ms != 0 {
        plausible_time(&format!("{prefix}.fix_time_ms"), f.fix_time_ms, now_ms)?;
    }
    // Everything after this point (distances, anomaly rules, storage) is WGS-84.
    let datum = Datum::of_wire(f.datum).map_err(|mut e| {
        e.field = format!("{prefix}.datum");
        e
    })?;
    let (latitude, longitude) = datum.to_wgs84(f.latitude, f.longitude);
    Ok(GeoFix {
        latitude,
        longitude,
        accuracy_m: f.accuracy_m,
        fix_time_ms: f.fix_time_ms,
        mock: f.mock,
        datum: Datum::Wgs84,
    })
}

fn coordinate(field: &str, name: &str, value: f64, bound: f64) -> Result<(), Invalid> {
    if !value.is_finite() {
        return Err(Invalid::new(
            field,
            "not_a_number",
            format!("{name} {value} is not a finite number"),
        ));
    }
    if !(-bound..=bound).contains(&value) {
        return Err(Invalid::new(
            field,
            "out_of_range",
            format!("{name} {value} is out of range (must be between -{bound} and {bound})"),
        ));
    }
    Ok(())
}

fn photo_hashes(field: &str, raw: &[Vec<u8>]) -> Result<Vec<[u8; 32]>, Invalid> {
    if raw.len() > MAX_PHOTOS {
        return Err(Invalid::new(
            field,
            "too_many",
            format!("{} photos exceed the limit of {MAX_PHOTOS}", raw.len()),
        ));
    }
    raw.iter()
        .enumerate()
        .map(|(i, h)| {
            <[u8; 32]>::try_from(h.as_slice()).map_err(|_| {
                Invalid::new(
                    format!("{field}[{i}]"),
                    "invalid_hash",
                    format!(
                        "a photo hash must be 32 bytes of SHA-256, got {} bytes",
                        h.len()
                    ),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000_000;

    fn sample() -> wire::CheckIn {
        wire::CheckIn {
            id: uuid::Uuid::now_v7().as_bytes().to_vec(),
            checkpoint: "S1-C1-K1-B1-P1".into(),
            method: wire::CheckInMethod::Nfc as i32,
            outcome: wire::CheckInOutcome::Inspected as i32,
            device_time_ms: NOW - 60_000,
            fix: Some(wire::GeoFix {
                latitude: 45.75,
                longitude: 126.65,
                accuracy_m: 8.0,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn valid_check_in_round_trips() {
        let c = CheckIn::from_wire(sample(), NOW).expect("valid");
        assert_eq!(CheckIn::from_wire(c.to_wire(), NOW).expect("again"), c);
    }

    #[test]
    fn only_a_visit_names_a_household() {
        let mut w = sample();
        w.household = " H-0301 ".into();
        let err = CheckIn::from_wire(w.clone(), NOW).expect_err("a patrol naming a household");
        assert_eq!(
            (err.field.as_str(), err.reason),
            ("household", "not_a_visit")
        );
        w.kind = wire::CheckInKind::Visit as i32;
        let visit = CheckIn::from_wire(w, NOW).expect("a visit");
        assert_eq!(visit.household, "H-0301", "trimmed");
        assert_eq!(
            CheckIn::from_wire(visit.to_wire(), NOW).expect("again"),
            visit
        );
    }

    #[test]
    fn latitude_out_of_range_names_field_and_reason() {
        let mut w = sample();
        w.fix.as_mut().expect("fix").latitude = 123.0;
        let err = CheckIn::from_wire(w, NOW).expect_err("refused");
        assert_eq!(err.field, "fix.latitude");
        assert_eq!(err.reason, "out_of_range");
        assert!(err.message.contains("123"), "{}", err.message);
    }

    #[test]
    fn nan_longitude_is_refused() {
        let mut w = sample();
        w.fix.as_mut().expect("fix").longitude = f64::NAN;
        assert_eq!(
            CheckIn::from_wire(w, NOW).expect_err("refused").reason,
            "not_a_number"
        );
    }

    #[test]
    fn unknown_enum_value_is_refused_with_the_known_values() {
        let mut w = sample();
        w.outcome = 99;
        let err = CheckIn::from_wire(w, NOW).expect_err("refused");
        assert_eq!(err.reason, "unknown_value");
        assert!(err.message.contains("inspected"), "{}", err.message);
    }

    #[test]
    fn missing_outcome_and_dead_clock_are_refused() {
        let mut w = sample();
        w.outcome = 0;
        assert_eq!(
            CheckIn::from_wire(w, NOW).expect_err("refused").field,
            "outcome"
        );
        let mut w = sample();
        w.device_time_ms = 0;
        assert_eq!(
            CheckIn::from_wire(w, NOW).expect_err("refused").reason,
            "implausible_time"
        );
    }
}
