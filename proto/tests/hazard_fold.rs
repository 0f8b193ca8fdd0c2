//! Convergence of the hazard fold: any delivery order, any duplication, the same state; and the
//! closed loop's rules, conflicts kept rather than dropped.

use patrolsync_proto::hazard::*;
use patrolsync_proto::{DeviceId, EventId, HazardId, Hlc, Role};
use proptest::prelude::*;

fn device(n: u8) -> DeviceId {
    DeviceId(uuid::Uuid::from_bytes([n; 16]))
}

fn stamp(wall: u64, logical: u32, dev: u8) -> Stamp {
    Stamp {
        hlc: Hlc {
            wall_ms: wall,
            logical,
        },
        device: device(dev),
    }
}

fn hazard() -> HazardId {
    HazardId(uuid::Uuid::from_bytes([0xAA; 16]))
}

fn report() -> Report {
    Report {
        id: hazard(),
        grid_cell: "S1-C1-K1".into(),
        checkpoint: String::new(),
        position: None,
        category: HazardCategory::BlockedFireLane,
        severity: Severity::General,
        handling: Handling::ByDeadline,
        deadline_ms: Some(2_000_000_000_000),
        description: "bikes in the fire lane".into(),
        photos: vec![[1; 32]],
        device_time_ms: 1_800_000_000_000,
    }
}

fn event(id: u8, kind: EventKind) -> Event {
    Event {
        id: EventId(uuid::Uuid::from_bytes([id; 16])),
        hazard: hazard(),
        kind,
        deadline_ms: (kind == EventKind::Notify).then_some(2_100_000_000_000),
        agency: (kind == EventKind::Transfer).then_some(Agency::FireBrigade),
        merge_into: (kind == EventKind::Merge)
            .then(|| HazardId(uuid::Uuid::from_bytes([0xBB; 16]))),
        note: "n".into(),
        photos: vec![[id.wrapping_add(100); 32]],
        device_time_ms: 1_800_000_000_000,
    }
}

#[test]
fn an_information_report_folds_to_acknowledged_and_keeps_its_kind() {
    let info = Report {
        category: HazardCategory::OutsideWorkers,
        handling: Handling::OnTheSpot,
        deadline_ms: None,
        ..report()
    };
    let edit = |value| {
        HazardOp::Edit(Edit {
            hazard: hazard(),
            value,
        })
    };
    let ops = vec![
        (stamp(10, 0, 1), HazardOp::Report(info)),
        // Kept in the log, not applied: a hazard's category, a deadline, a rectification step.
        (
            stamp(11, 0, 2),
            edit(FieldValue::Category(HazardCategory::Gas)),
        ),
        (
            stamp(12, 0, 2),
            edit(FieldValue::Deadline(Some(2_100_000_000_000))),
        ),
        (
            stamp(13, 0, 2),
            HazardOp::Event(event(1, EventKind::Notify), Role::GridManager),
        ),
        // Applied: another information kind, and the acknowledgement.
        (
            stamp(14, 0, 2),
            edit(FieldValue::Category(HazardCategory::UnstableFactor)),
        ),
        (
            stamp(15, 0, 2),
            HazardOp::Event(
                Event {
                    deadline_ms: Some(2_200_000_000_000),
                    ..event(2, EventKind::Acknowledge)
                },
                Role::GridManager,
            ),
        ),
    ];
    let s = fold(hazard(), &ops);
    assert_eq!(s.status, Status::Acknowledged);
    assert_eq!(s.category.value, HazardCategory::UnstableFactor);
    assert_eq!(s.deadline_ms.value, None);
    assert_eq!(s.history.len(), 2);
    assert_eq!(s.conflicts().count(), 1);
    assert!(s.history.iter().all(|e| e.information));
    // Any order, any repeats: the same state.
    let mut reversed = ops.clone();
    reversed.reverse();
    reversed.extend(ops.iter().cloned());
    assert_eq!(fold(hazard(), &reversed), s);
}

#[test]
fn closed_loop_happy_path() {
    let ops = vec![
        (stamp(10, 0, 1), HazardOp::Report(report())),
        (
            stamp(20, 0, 2),
            HazardOp::Event(event(1, EventKind::Notify), Role::GridManager),
        ),
        (
            stamp(30, 0, 1),
            HazardOp::Event(event(2, EventKind::SubmitFix), Role::Patroller),
        ),
        (
            stamp(40, 0, 2),
            HazardOp::Event(event(3, EventKind::VerifyPass), Role::GridManager),
        ),
    ];
    let s = fold(hazard(), &ops);
    assert_eq!(s.status, Status::Closed);
    assert_eq!(
        s.deadline_ms.value,
        Some(2_100_000_000_000),
        "notify set the deadline"
    );
    assert_eq!(s.conflicts().count(), 0);
    assert_eq!(
        s.photos.len(),
        4,
        "report and every event's photos are kept"
    );
}

#[test]
fn losing_transition_is_kept_as_a_conflict() {
    // Offline: one manager verifies the fix, another transfers the hazard to the fire brigade.
    let ops = vec![
        (stamp(10, 0, 1), HazardOp::Report(report())),
        (
            stamp(20, 0, 1),
            HazardOp::Event(event(1, EventKind::Notify), Role::GridManager),
        ),
        (
            stamp(30, 0, 1),
            HazardOp::Event(event(2, EventKind::SubmitFix), Role::Patroller),
        ),
        (
            stamp(40, 0, 2),
            HazardOp::Event(event(3, EventKind::VerifyPass), Role::GridManager),
        ),
        (
            stamp(41, 0, 3),
            HazardOp::Event(event(4, EventKind::Transfer), Role::GridManager),
        ),
    ];
    let s = fold(hazard(), &ops);
    assert_eq!(s.status, Status::Closed);
    assert_eq!(s.agency, None);
    let conflicts: Vec<_> = s.conflicts().collect();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].kind, EventKind::Transfer);
    assert!(
        conflicts[0]
            .conflict
            .as_deref()
            .unwrap_or("")
            .contains("closed"),
        "{conflicts:?}"
    );
    assert_eq!(s.history.len(), 4, "no event is missing from the history");
    assert!(
        s.photos.contains(&[104; 32]),
        "the losing event's evidence is kept"
    );
}

#[test]
fn an_information_report_is_acknowledged_or_merged_and_never_rectified() {
    use Status::*;
    // Every rectification step is refused for its kind, whoever fires it and whatever the state.
    for kind in EventKind::ALL.iter().copied() {
        for role in [
            Role::Patroller,
            Role::GridManager,
            Role::Agency,
            Role::Admin,
        ] {
            let t = transition(true, Reported, kind, role);
            match kind {
                EventKind::Acknowledge | EventKind::Merge if role == Role::GridManager => {
                    assert!(t.is_ok(), "{kind} by {role}: {t:?}")
                }
                EventKind::Acknowledge | EventKind::Merge if role == Role::Admin => {
                    assert!(t.is_ok(), "{kind} by {role}: {t:?}")
                }
                EventKind::Acknowledge | EventKind::Merge => {
                    assert_eq!(t, Err(Refusal::Role { role }), "{kind} by {role}")
                }
                _ => assert_eq!(t, Err(Refusal::Kind { information: true }), "{kind}"),
            }
        }
    }
    assert_eq!(
        transition(true, Reported, EventKind::Acknowledge, Role::GridManager),
        Ok(Acknowledged)
    );
    assert!(!Acknowledged.is_open());
    assert_eq!(
        transition(
            true,
            Acknowledged,
            EventKind::Acknowledge,
            Role::GridManager
        ),
        Err(Refusal::WrongState {
            status: Acknowledged
        })
    );
    // A hazard is never acknowledged; a patroller may not acknowledge anything.
    assert_eq!(
        transition(false, Reported, EventKind::Acknowledge, Role::GridManager),
        Err(Refusal::Kind { information: false })
    );
    assert_eq!(
        may_fire(EventKind::Acknowledge, Role::Patroller),
        Err(Refusal::Role {
            role: Role::Patroller
        })
    );
    assert_eq!(may_fire(EventKind::Acknowledge, Role::GridManager), Ok(()));
}

#[test]
fn roles_are_enforced() {
    assert_eq!(
        transition(false, Status::Reported, EventKind::Notify, Role::Patroller),
        Err(Refusal::Role {
            role: Role::Patroller
        })
    );
    assert_eq!(
        transition(
            false,
            Status::Transferred,
            EventKind::AgencyAccept,
            Role::GridManager
        ),
        Err(Refusal::Role {
            role: Role::GridManager
        })
    );
    assert_eq!(
        transition(
            false,
            Status::Transferred,
            EventKind::AgencyAccept,
            Role::Agency
        ),
        Ok(Status::AgencyHandling)
    );
    assert_eq!(
        transition(false, Status::Closed, EventKind::Reopen, Role::GridManager),
        Ok(Status::Rectifying)
    );
    assert_eq!(
        transition(false, Status::Closed, EventKind::Merge, Role::GridManager),
        Err(Refusal::WrongState {
            status: Status::Closed
        })
    );
}

#[test]
fn field_edits_are_last_writer_wins_by_stamp_then_device() {
    let edit = |d: &str| {
        HazardOp::Edit(Edit {
            hazard: hazard(),
            value: FieldValue::Description(d.into()),
        })
    };
    let ops = vec![
        (stamp(10, 0, 1), HazardOp::Report(report())),
        (stamp(50, 0, 2), edit("two")),
        (stamp(50, 0, 3), edit("three")), // same HLC: the higher device id wins
        (stamp(40, 5, 4), edit("older")),
    ];
    assert_eq!(fold(hazard(), &ops).description.value, "three");
}

fn any_op() -> impl Strategy<Value = HazardOp> {
    let kinds = proptest::sample::select(EventKind::ALL.to_vec());
    let roles = proptest::sample::select(vec![
        Role::Patroller,
        Role::GridManager,
        Role::Agency,
        Role::Admin,
    ]);
    prop_oneof![
        (any::<u8>(), kinds, roles).prop_map(|(id, k, r)| HazardOp::Event(event(id, k), r)),
        (".{0,8}", any::<u8>()).prop_map(|(d, sev)| if sev % 2 == 0 {
            HazardOp::Edit(Edit {
                hazard: hazard(),
                value: FieldValue::Description(d),
            })
        } else {
            HazardOp::Edit(Edit {
                hazard: hazard(),
                value: FieldValue::Severity(if sev % 4 == 1 {
                    Severity::Major
                } else {
                    Severity::General
                }),
            })
        }),
    ]
}

/// Ops of 2–8 devices, each device's HLCs increasing, with unique event ids.
fn fleet_ops() -> impl Strategy<Value = Vec<(Stamp, HazardOp)>> {
    (
        2u8..=8,
        proptest::collection::vec((0u8..8, 0u64..50, any_op()), 1..40),
    )
        .prop_map(|(devices, raw)| {
            let mut clock = [0u64; 9];
            let mut out = vec![(stamp(1, 0, 1), HazardOp::Report(report()))];
            for (i, (dev, advance, mut op)) in raw.into_iter().enumerate() {
                let dev = dev % devices + 1;
                clock[dev as usize] += advance + 1;
                if let HazardOp::Event(e, _) = &mut op {
                    e.id = EventId(uuid::Uuid::from_u128(i as u128 + 1));
                }
                out.push((stamp(clock[dev as usize], 0, dev), op));
            }
            out
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_order_and_duplication_gives_the_same_state(
        ops in fleet_ops(),
        seed_a in any::<u64>(),
        seed_b in any::<u64>(),
        dups in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
    ) {
        // Two replicas receive the same ops in different orders, one with repeats.
        let shuffle = |seed: u64| {
            let mut v = ops.clone();
            let mut x = seed | 1;
            for i in (1..v.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                v.swap(i, (x % (i as u64 + 1)) as usize);
            }
            v
        };
        let a = shuffle(seed_a);
        let mut b = shuffle(seed_b);
        for d in &dups {
            b.push(ops[d.index(ops.len())].clone());
        }
        let (sa, sb) = (fold(hazard(), &a), fold(hazard(), &b));
        prop_assert_eq!(&sa, &sb);
        // Every distinct event appears in the history exactly once.
        let mut ids: Vec<_> = ops.iter().filter_map(|(_, o)| match o { HazardOp::Event(e, _) => Some(e.id), _ => None }).collect();
        ids.sort(); ids.dedup();
        prop_assert_eq!(sa.history.len(), ids.len());
    }

    #[test]
    fn partial_delivery_then_catch_up_converges(ops in fleet_ops(), cut in any::<prop::sample::Index>()) {
        // A replica that folded a prefix and later receives the rest ends where one that got
        // everything at once does.
        let k = cut.index(ops.len());
        let mut late = ops[k..].to_vec();
        late.extend_from_slice(&ops[..k]);
        prop_assert_eq!(fold(hazard(), &late), fold(hazard(), &ops));
    }
}
