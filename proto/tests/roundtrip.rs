//! Property tests: every wire message survives framing and decoding unchanged, and no frame
//! larger than the limit is ever buffered.

use patrolsync_proto::frame::{self, FrameDecoder, FrameError};
use patrolsync_proto::wire;
use proptest::prelude::*;

fn bytes16() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 16)
}

fn geo_fix() -> impl Strategy<Value = wire::GeoFix> {
    (
        any::<f64>(),
        any::<f64>(),
        any::<f64>(),
        any::<i64>(),
        any::<bool>(),
        any::<i32>(),
    )
        .prop_map(
            |(latitude, longitude, accuracy_m, fix_time_ms, mock, datum)| wire::GeoFix {
                latitude,
                longitude,
                accuracy_m,
                fix_time_ms,
                mock,
                datum,
            },
        )
}

fn check_in() -> impl Strategy<Value = wire::CheckIn> {
    (
        bytes16(),
        ".{0,40}",
        any::<i32>(),
        any::<i32>(),
        any::<i64>(),
        proptest::option::of(geo_fix()),
        proptest::collection::vec(
            (
                ".{0,10}",
                any::<i32>(),
                ".{0,10}",
                proptest::collection::vec(any::<u8>(), 32),
            ),
            0..4,
        ),
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 32), 0..3),
        ".{0,60}",
    )
        .prop_map(
            |(id, checkpoint, method, outcome, device_time_ms, fix, answers, photos, note)| {
                wire::CheckIn {
                    id,
                    checkpoint,
                    kind: outcome.wrapping_add(1),
                    method,
                    tag_uid: String::new(),
                    device_time_ms,
                    monotonic_ms: device_time_ms.unsigned_abs(),
                    fix,
                    outcome,
                    template_id: "fire-basic".into(),
                    template_version: 3,
                    answers: answers
                        .into_iter()
                        .map(|(item_id, value, note, photo)| wire::Answer {
                            item_id,
                            value,
                            note,
                            photo_sha256: vec![photo],
                        })
                        .collect(),
                    photo_sha256: photos,
                    household: note.chars().take(8).collect(),
                    note,
                }
            },
        )
}

fn hazard_report() -> impl Strategy<Value = wire::HazardReport> {
    (
        bytes16(),
        ".{0,20}",
        any::<i32>(),
        any::<i32>(),
        any::<i64>(),
        proptest::option::of(geo_fix()),
    )
        .prop_map(
            |(id, cell, category, severity, deadline_ms, position)| wire::HazardReport {
                id,
                grid_cell: cell,
                checkpoint: String::new(),
                position,
                category,
                severity,
                handling: severity,
                deadline_ms,
                description: "blocked lane".into(),
                photo_sha256: vec![vec![7; 32]],
                device_time_ms: deadline_ms,
            },
        )
}

fn hazard_event() -> impl Strategy<Value = wire::HazardEvent> {
    (
        bytes16(),
        bytes16(),
        any::<i32>(),
        any::<i64>(),
        any::<i32>(),
    )
        .prop_map(
            |(id, hazard_id, kind, deadline_ms, agency)| wire::HazardEvent {
                id,
                hazard_id: hazard_id.clone(),
                kind,
                deadline_ms,
                agency,
                merge_into: hazard_id,
                note: "fixed".into(),
                photo_sha256: vec![],
                device_time_ms: deadline_ms,
            },
        )
}

fn op() -> impl Strategy<Value = wire::Op> {
    let body = prop_oneof![
        check_in().prop_map(wire::op::Body::CheckIn),
        hazard_report().prop_map(wire::op::Body::HazardReport),
        hazard_event().prop_map(wire::op::Body::HazardEvent),
        (bytes16(), any::<i32>(), ".{0,20}").prop_map(|(hazard_id, field, value)| {
            wire::op::Body::HazardFieldEdit(wire::HazardFieldEdit {
                hazard_id,
                field,
                value,
            })
        }),
    ];
    (
        bytes16(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        proptest::option::of(body),
    )
        .prop_map(|(op_id, device_seq, wall_ms, logical, body)| wire::Op {
            op_id,
            device_seq,
            hlc: Some(wire::Hlc { wall_ms, logical }),
            body,
        })
}

fn request() -> impl Strategy<Value = wire::Request> {
    use wire::request::Kind;
    let kind = prop_oneof![
        (any::<u64>(), any::<u64>(), ".{0,12}", any::<i64>()).prop_map(|(d, a, v, t)| Kind::Hello(
            wire::Hello {
                outbox_depth: d,
                oldest_pending_age_ms: a,
                pending_photo_bytes: d ^ a,
                app_version: v.clone(),
                sdk_version: v.clone(),
                device_time_ms: t,
                language: v,
                on_duty: d % 2 == 0,
                position: (d % 3 == 0).then(|| wire::GeoFix {
                    latitude: 45.75,
                    longitude: 126.65,
                    accuracy_m: 8.0,
                    fix_time_ms: t,
                    ..Default::default()
                }),
            }
        )),
        proptest::collection::vec(op(), 0..5).prop_map(|ops| Kind::Push(wire::PushRequest { ops })),
        (any::<u64>(), any::<u32>()).prop_map(|(cursor, limit)| Kind::Pull(wire::PullRequest {
            cursor,
            limit,
            compact: limit % 2 == 0,
            backfill_after: cursor / 2,
            protocol: limit % 3,
            feed: format!("user:{limit}"),
        })),
        (proptest::collection::vec(any::<u8>(), 32), any::<u64>())
            .prop_map(|(sha256, size)| Kind::BlobStatus(wire::BlobStatusRequest { sha256, size })),
        (
            proptest::collection::vec(any::<u8>(), 32),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(
                |(sha256, size, offset)| Kind::BlobUpload(wire::BlobUploadRequest {
                    sha256,
                    size,
                    offset
                })
            ),
        (proptest::collection::vec(any::<u8>(), 32), any::<u64>()).prop_map(|(sha256, offset)| {
            Kind::BlobDownload(wire::BlobDownloadRequest { sha256, offset })
        }),
        (".{0,30}", proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(code, csr_der)| {
            Kind::Enroll(wire::EnrollRequest {
                code,
                csr_der,
                device_name: "phone".into(),
                app_version: "1.0".into(),
            })
        }),
    ];
    proptest::option::of(kind).prop_map(|kind| wire::Request { kind })
}

fn response() -> impl Strategy<Value = wire::Response> {
    use wire::response::Kind;
    let kind = prop_oneof![
        (any::<i64>(), any::<u64>(), ".{0,10}").prop_map(|(t, seq, user)| Kind::Hello(
            wire::HelloResponse {
                server_time_ms: t,
                limits: Some(wire::Limits {
                    max_frame_bytes: 1 << 20,
                    max_ops_per_push: 500,
                    max_blob_bytes: seq
                }),
                acked_through: seq,
                cursor: seq,
                device_id: user.clone(),
                user,
                role: 1,
                grid_cells: vec!["S1".into()],
                server_version: "0.1.0".into(),
            }
        )),
        (
            any::<u64>(),
            proptest::collection::vec((any::<u64>(), any::<i32>(), ".{0,20}"), 0..5)
        )
            .prop_map(|(acked_through, results)| Kind::Push(wire::PushResponse {
                acked_through,
                results: results
                    .into_iter()
                    .map(|(device_seq, outcome, message)| wire::OpResult {
                        device_seq,
                        outcome,
                        code: outcome,
                        message: message.clone(),
                        reason: message,
                        field: "fix.latitude".into(),
                    })
                    .collect(),
            })),
        (
            any::<u64>(),
            any::<bool>(),
            proptest::collection::vec((any::<u64>(), ".{0,8}"), 0..4)
        )
            .prop_map(
                |(next_cursor, has_more, cells)| Kind::Pull(wire::PullResponse {
                    changes: cells
                        .into_iter()
                        .map(|(seq, code)| wire::Change {
                            seq,
                            hlc: Some(wire::Hlc {
                                wall_ms: seq,
                                logical: 1
                            }),
                            device_id: code.clone(),
                            role: 2,
                            entity: Some(if seq % 3 == 0 {
                                wire::change::Entity::Scope(wire::ScopeChange {
                                    kind: (seq % 2 + 1) as i32,
                                    path: format!("/{code}/"),
                                    keep: vec![code.clone()],
                                    cell: code,
                                    hazard_id: Vec::new(),
                                    reason: (seq % 7 + 1) as i32,
                                })
                            } else {
                                wire::change::Entity::Cell(wire::GridCell {
                                    code,
                                    parent: String::new(),
                                    level: 1,
                                    name: "street".into(),
                                    retired: has_more,
                                    boundary: String::new(),
                                })
                            }),
                        })
                        .collect(),
                    next_cursor,
                    has_more,
                    backfill_after: next_cursor / 3,
                    feed: "agency:fire_brigade".into(),
                    reset: !has_more,
                })
            ),
        (any::<u64>(), any::<bool>()).prop_map(|(held, complete)| Kind::BlobStatus(
            wire::BlobStatusResponse { held, complete }
        )),
        (any::<u64>(), any::<bool>()).prop_map(|(held, complete)| Kind::BlobUpload(
            wire::BlobUploadResponse { held, complete }
        )),
        any::<u64>().prop_map(|size| Kind::BlobDownload(wire::BlobDownloadResponse { size })),
        (".{0,36}", proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(device_id, der)| {
            Kind::Enroll(wire::EnrollResponse {
                device_id,
                certificate_der: der.clone(),
                server_ca_der: der,
                user: "alice".into(),
                role: 1,
                grid_cells: vec!["S1-C1".into()],
            })
        }),
        (any::<i32>(), ".{0,40}", any::<bool>(), any::<u64>()).prop_map(
            |(code, message, retryable, held_offset)| {
                Kind::Error(wire::Error {
                    code,
                    message,
                    retryable,
                    held_offset,
                })
            }
        ),
    ];
    proptest::option::of(kind).prop_map(|kind| wire::Response { kind })
}

fn server_event() -> impl Strategy<Value = wire::ServerEvent> {
    use wire::server_event::Kind;
    prop_oneof![
        any::<u64>().prop_map(|cursor| Kind::Notify(wire::Notify { cursor })),
        (".{0,20}", any::<u32>()).prop_map(|(reason, reconnect_after_ms)| Kind::GoAway(
            wire::GoAway {
                reason,
                reconnect_after_ms
            }
        )),
    ]
    .prop_map(|k| wire::ServerEvent { kind: Some(k) })
}

fn round_trip<M>(msg: &M) -> M
where
    M: patrolsync_proto::Message + Default,
{
    let bytes = frame::encode(msg);
    let mut dec = FrameDecoder::new(frame::DEFAULT_MAX_FRAME_BYTES);
    let frames = dec.push(&bytes).expect("frame within limit");
    dec.finish().expect("no trailing bytes");
    assert_eq!(frames.len(), 1);
    frame::decode(&frames[0]).expect("decodes")
}

proptest! {
    #[test]
    fn every_request_round_trips(msg in request()) {
        prop_assert_eq!(round_trip(&msg), msg);
    }

    #[test]
    fn every_response_round_trips(msg in response()) {
        prop_assert_eq!(round_trip(&msg), msg);
    }

    #[test]
    fn every_server_event_round_trips(msg in server_event()) {
        prop_assert_eq!(round_trip(&msg), msg);
    }

    #[test]
    fn frames_split_anywhere_decode_the_same(msgs in proptest::collection::vec(request(), 1..4),
                                            cut in 1usize..64) {
        let stream: Vec<u8> = msgs.iter().flat_map(frame::encode).collect();
        let mut dec = FrameDecoder::new(frame::DEFAULT_MAX_FRAME_BYTES);
        let mut out = Vec::new();
        for chunk in stream.chunks(cut) {
            out.extend(dec.push(chunk).expect("within limit"));
        }
        dec.finish().expect("complete");
        let decoded: Vec<wire::Request> = out.iter().map(|b| frame::decode(b).expect("decodes")).collect();
        prop_assert_eq!(decoded, msgs);
    }

    #[test]
    fn frame_over_limit_is_refused_without_allocating(limit in 0u32..1_000_000, excess in 1u32..u32::MAX) {
        let announced = limit.saturating_add(excess).max(limit + 1);
        let mut dec = FrameDecoder::new(limit);
        let mut bytes = announced.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0u8; 16]);
        let err = dec.push(&bytes).expect_err("over the limit");
        prop_assert_eq!(err, FrameError::TooLarge { len: u64::from(announced), limit });
        // Nothing was allocated for the body.
        prop_assert_eq!(dec.buffered_capacity(), 0);
    }
}

// Fuzzing on the stable toolchain: arbitrary bytes through the decoder and the validation
// never panic; they are refused with a typed error or accepted.
proptest! {
    #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512), limit in 0u32..1024) {
        let mut dec = FrameDecoder::new(limit);
        if let Ok(frames) = dec.push(&bytes) {
            for f in frames {
                let _ = frame::decode::<wire::Request>(&f);
                let _ = frame::decode::<wire::Response>(&f);
            }
        }
        let _ = dec.finish();
    }

    #[test]
    fn arbitrary_ops_never_panic_validation(bytes in proptest::collection::vec(any::<u8>(), 0..512), now in any::<i64>()) {
        use patrolsync_proto::Message;
        if let Ok(op) = wire::Op::decode(bytes.as_slice()) {
            let _ = patrolsync_proto::op::check_batch(std::slice::from_ref(&op), 10);
            let _ = patrolsync_proto::Op::from_wire(op, now);
        }
    }

    #[test]
    fn arbitrary_checkins_never_panic_validation(c in check_in(), now in any::<i64>()) {
        let _ = patrolsync_proto::CheckIn::from_wire(c, now);
    }
}
