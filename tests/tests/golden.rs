//! The golden vectors of PROTOCOL.md §11: `proto/testdata/golden/*.hex`, exchanged with a real
//! server on SQLite and on PostgreSQL. Every `>` line is sent byte for byte as it is written; the
//! answer is decoded and must equal the decoded `<` line after it once the fields the file's
//! `# varies:` line names are cleared (raw bytes after a frame, `<+`, must be equal byte for
//! byte). The files must also hold exactly the exchanges this test's script builds (the same
//! requests, except the enrollment CSR, whose signature differs at each signing), and nothing
//! else may sit beside them. So the document, the files and the server cannot drift apart.
//!
//! The set-up is fixed: a server with nothing in it; the grid `S1` → `S1-C1` with checkpoint
//! `S1-C1-P1` at (45.75, 126.625); user `golden`, a patroller assigned `S1-C1`, whose
//! enrollment code is `GOLD-0000-0000-0000-0001`. The device's key is `device.key.hex`.
//!
//! `PATROLSYNC_GOLDEN=write cargo test -p patrolsync-tests --test golden` writes the files anew
//! from requests built here and the server's answers (on SQLite); review the diff.

use std::path::PathBuf;

use patrolsync_proto::{Message, frame, wire};
use patrolsync_server::store::{NewCell, NewCheckpoint, NewEnrollment, Store};
use patrolsync_server::testkit::test_databases;
use patrolsync_tests::Harness;

/// The enrollment code the set-up creates.
const CODE: &str = "GOLD-0000-0000-0000-0001";
/// 2026-12-01T00:00:00Z: the device time of every record.
const T: i64 = 1_796_083_200_000;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../proto/testdata/golden")
}

/// The photo the vectors upload: 1,000 bytes.
fn photo() -> Vec<u8> {
    (0..1000u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// Which connection a file's requests go on.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Conn {
    /// No client certificate (only Enroll).
    Stranger,
    /// The enrolled device.
    Device,
}

/// One request and its answer.
#[derive(Clone, Debug, Default)]
struct Exchange {
    comment: Vec<String>,
    request: Vec<u8>,
    request_bytes: Vec<u8>,
    response: Vec<u8>,
    response_bytes: Vec<u8>,
}

/// One vector file.
#[derive(Clone, Debug)]
struct Golden {
    name: &'static str,
    title: Vec<String>,
    conn: Conn,
    varies: Vec<String>,
    exchanges: Vec<Exchange>,
}

impl Golden {
    fn path(&self) -> PathBuf {
        dir().join(format!("{}.hex", self.name))
    }

    fn read(name: &'static str) -> anyhow::Result<Golden> {
        let text = std::fs::read_to_string(dir().join(format!("{name}.hex")))?;
        let mut g = Golden {
            name,
            title: Vec::new(),
            conn: Conn::Device,
            varies: Vec::new(),
            exchanges: Vec::new(),
        };
        let mut comment = Vec::new();
        let mut current: Option<Exchange> = None;
        for line in text.lines() {
            if let Some(c) = line.strip_prefix("# connection: ") {
                g.title = std::mem::take(&mut comment);
                g.conn = match c {
                    "stranger" => Conn::Stranger,
                    "device" => Conn::Device,
                    other => anyhow::bail!("{name}: unknown connection {other:?}"),
                };
                continue;
            }
            if let Some(v) = line.strip_prefix("# varies: ") {
                g.varies = v.split(',').map(|v| v.trim().to_owned()).collect();
                continue;
            }
            if let Some(c) = line.strip_prefix('#') {
                comment.push(c.trim_start().to_owned());
                continue;
            }
            if line.trim().is_empty() {
                continue;
            }
            let (tag, rest) = line
                .split_once(' ')
                .ok_or_else(|| anyhow::anyhow!("{name}: a line without hex: {line:?}"))?;
            let bytes = hex::decode(rest.trim())?;
            match tag {
                ">" => {
                    g.exchanges.extend(current.take());
                    current = Some(Exchange {
                        comment: std::mem::take(&mut comment),
                        request: bytes,
                        ..Exchange::default()
                    });
                }
                ">+" | "<" | "<+" => {
                    let e = current
                        .as_mut()
                        .ok_or_else(|| anyhow::anyhow!("{name}: {tag} before any >"))?;
                    let slot = match tag {
                        ">+" => &mut e.request_bytes,
                        "<" => &mut e.response,
                        _ => &mut e.response_bytes,
                    };
                    anyhow::ensure!(
                        slot.is_empty(),
                        "{name}: a second {tag} line for one > line"
                    );
                    anyhow::ensure!(!bytes.is_empty(), "{name}: an empty {tag} line");
                    *slot = bytes;
                }
                other => anyhow::bail!("{name}: unknown line tag {other:?}"),
            }
        }
        g.exchanges.extend(current);
        if let Some(i) = g.exchanges.iter().position(|e| e.response.is_empty()) {
            anyhow::bail!("{name}: exchange {i} has no < line");
        }
        Ok(g)
    }

    fn write(&self) -> anyhow::Result<()> {
        let mut out = String::new();
        for t in &self.title {
            out.push_str(&format!("# {t}\n"));
        }
        out.push_str(&format!(
            "# connection: {}\n",
            match self.conn {
                Conn::Stranger => "stranger",
                Conn::Device => "device",
            }
        ));
        out.push_str(&format!("# varies: {}\n", self.varies.join(", ")));
        for e in &self.exchanges {
            out.push('\n');
            for c in &e.comment {
                out.push_str(&format!("# {c}\n"));
            }
            out.push_str(&format!("> {}\n", hex::encode(&e.request)));
            if !e.request_bytes.is_empty() {
                out.push_str(&format!(">+ {}\n", hex::encode(&e.request_bytes)));
            }
            out.push_str(&format!("< {}\n", hex::encode(&e.response)));
            if !e.response_bytes.is_empty() {
                out.push_str(&format!("<+ {}\n", hex::encode(&e.response_bytes)));
            }
        }
        std::fs::create_dir_all(dir())?;
        std::fs::write(self.path(), out)?;
        Ok(())
    }
}

/// The response frame's message, with the fields the file says vary cleared.
fn normalized(frame_bytes: &[u8], varies: &[String]) -> anyhow::Result<wire::Response> {
    anyhow::ensure!(frame_bytes.len() >= frame::HEADER_LEN, "no response frame");
    let (header, body) = frame_bytes.split_at(frame::HEADER_LEN);
    let len = frame::body_len(header.try_into()?, 1 << 24)?;
    anyhow::ensure!(
        body.len() == len,
        "response frame length {len}, got {}",
        body.len()
    );
    let mut r: wire::Response = frame::decode(body)?;
    for v in varies {
        use wire::response::Kind;
        match (v.as_str(), r.kind.as_mut()) {
            ("enroll.device_id", Some(Kind::Enroll(e))) => e.device_id.clear(),
            ("enroll.certificate_der", Some(Kind::Enroll(e))) => e.certificate_der.clear(),
            ("enroll.server_ca_der", Some(Kind::Enroll(e))) => e.server_ca_der.clear(),
            ("push.results.message", Some(Kind::Push(p))) => {
                p.results.iter_mut().for_each(|r| r.message.clear())
            }
            ("pull.changes.device_id", Some(Kind::Pull(p))) => {
                p.changes.iter_mut().for_each(|c| c.device_id.clear())
            }
            ("error.message", Some(Kind::Error(e))) => e.message.clear(),
            (
                "enroll.device_id"
                | "enroll.certificate_der"
                | "enroll.server_ca_der"
                | "push.results.message"
                | "pull.changes.device_id"
                | "error.message",
                _,
            ) => {}
            (other, _) => anyhow::bail!("unknown varies key {other:?}"),
        }
    }
    Ok(r)
}

/// Sends one exchange's request (and raw bytes) on a fresh stream; returns the answer frame and
/// the raw bytes after it.
async fn send(conn: &quinn::Connection, e: &Exchange) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(&e.request).await?;
    send.write_all(&e.request_bytes).await?;
    send.finish()?;
    let all = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        recv.read_to_end(16 << 20),
    )
    .await??;
    anyhow::ensure!(all.len() >= frame::HEADER_LEN, "no answer");
    let len = frame::body_len(all[..frame::HEADER_LEN].try_into()?, 16 << 20)?;
    let (head, rest) = all.split_at(frame::HEADER_LEN + len);
    Ok((head.to_vec(), rest.to_vec()))
}

fn req(kind: wire::request::Kind) -> Vec<u8> {
    frame::encode(&wire::Request { kind: Some(kind) })
}

fn uuid(n: u8) -> Vec<u8> {
    let mut b = [0u8; 16];
    b[0] = 0x01;
    b[1] = 0x93;
    b[15] = n;
    b.to_vec()
}

fn op(seq: u64, body: wire::op::Body) -> wire::Op {
    wire::Op {
        op_id: uuid(0x40 + seq as u8),
        device_seq: seq,
        hlc: Some(wire::Hlc {
            wall_ms: (T as u64) + seq,
            logical: 0,
        }),
        body: Some(body),
    }
}

/// The vector files as this test writes them: requests built here, answers left empty.
fn script(key_der: &[u8]) -> anyhow::Result<Vec<Golden>> {
    let key = rcgen::KeyPair::try_from(key_der)?;
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())?
        .serialize_request(&key)?
        .der()
        .to_vec();
    let sha = patrolsync_proto::digest::sha256(&photo()).to_vec();
    let check_in = |id: u8, fix: Option<wire::GeoFix>| {
        wire::op::Body::CheckIn(wire::CheckIn {
            id: uuid(id),
            checkpoint: "S1-C1-P1".into(),
            method: wire::CheckInMethod::Qr as i32,
            outcome: wire::CheckInOutcome::Inspected as i32,
            device_time_ms: T,
            fix,
            photo_sha256: vec![sha.clone()],
            ..Default::default()
        })
    };
    let report = wire::op::Body::HazardReport(wire::HazardReport {
        id: uuid(0x20),
        grid_cell: "S1-C1".into(),
        category: wire::HazardCategory::BlockedFireLane as i32,
        handling: wire::Handling::OnTheSpot as i32,
        description: "消防通道被电动车堵塞".into(),
        device_time_ms: T,
        ..Default::default()
    });
    let submit_fix = wire::op::Body::HazardEvent(wire::HazardEvent {
        id: uuid(0x21),
        hazard_id: uuid(0x20),
        kind: wire::HazardEventKind::SubmitFix as i32,
        note: "已清理".into(),
        photo_sha256: vec![sha.clone()],
        device_time_ms: T,
        ..Default::default()
    });
    let push = req(wire::request::Kind::Push(wire::PushRequest {
        ops: vec![
            op(1, check_in(0x10, None)),
            op(2, check_in(0x10, None)),
            op(
                3,
                check_in(
                    0x11,
                    Some(wire::GeoFix {
                        latitude: 123.0,
                        longitude: 126.625,
                        accuracy_m: 5.0,
                        ..Default::default()
                    }),
                ),
            ),
            op(4, report),
            op(5, submit_fix),
        ],
    }));
    let photo = photo();
    let exchange = |comment: &[&str], request: Vec<u8>, bytes: &[u8]| Exchange {
        comment: comment.iter().map(|c| c.to_string()).collect(),
        request,
        request_bytes: bytes.to_vec(),
        ..Exchange::default()
    };
    let upload = |offset: u64| {
        req(wire::request::Kind::BlobUpload(wire::BlobUploadRequest {
            sha256: sha.clone(),
            size: 1000,
            offset,
        }))
    };
    Ok(vec![
        Golden {
            name: "enroll",
            title: vec!["Enroll: code GOLD-0000-0000-0000-0001 and a CSR of device.key.hex's key, on a connection without a certificate.".into()],
            conn: Conn::Stranger,
            varies: vec![
                "enroll.device_id".into(),
                "enroll.certificate_der".into(),
                "enroll.server_ca_der".into(),
            ],
            exchanges: vec![exchange(
                &["EnrollResponse: the device's user (golden), role (patroller) and cells (S1-C1)."],
                req(wire::request::Kind::Enroll(wire::EnrollRequest {
                    code: CODE.into(),
                    csr_der: csr,
                    device_name: "golden phone".into(),
                    app_version: "golden 1".into(),
                })),
                &[],
            )],
        },
        Golden {
            name: "push",
            title: vec!["Push: one op of each outcome, then the same push again.".into()],
            conn: Conn::Device,
            varies: vec!["push.results.message".into()],
            exchanges: vec![
                exchange(
                    &[
                        "seq 1 a check-in: APPLIED; seq 2 the same check-in id under another op: DUPLICATE;",
                        "seq 3 latitude 123: REJECTED (1, out_of_range, fix.latitude); seq 4 a hazard report:",
                        "APPLIED; seq 5 SUBMIT_FIX on it while reported: CONFLICT. acked_through 5.",
                    ],
                    push.clone(),
                    &[],
                ),
                exchange(
                    &["The same push replayed: each recorded answer again, nothing stored twice."],
                    push,
                    &[],
                ),
            ],
        },
        Golden {
            name: "pull",
            title: vec!["Pull from cursor 0, protocol 2: the device's first page.".into()],
            conn: Conn::Device,
            varies: vec!["pull.changes.device_id".into()],
            exchanges: vec![exchange(
                &[
                    "S1-C1 and its checkpoint (the backfill of the grant, below its position),",
                    "the grant, the hazard's report and its conflicting SUBMIT_FIX; feed user:1.",
                ],
                req(wire::request::Kind::Pull(wire::PullRequest {
                    cursor: 0,
                    limit: 100,
                    protocol: 2,
                    ..Default::default()
                })),
                &[],
            )],
        },
        Golden {
            name: "upload",
            title: vec!["A photo the device's check-in references, uploaded in two goes, then read back.".into()],
            conn: Conn::Device,
            varies: vec!["error.message".into()],
            exchanges: vec![
                exchange(
                    &["1,000 bytes announced, 400 sent, then FIN: BAD_REQUEST, retryable, held_offset 400."],
                    upload(0),
                    &photo[..400],
                ),
                exchange(
                    &["BlobStatus: 400 held, not complete."],
                    req(wire::request::Kind::BlobStatus(wire::BlobStatusRequest {
                        sha256: sha.clone(),
                        size: 1000,
                    })),
                    &[],
                ),
                exchange(
                    &["The rest from 400: complete, held 1000."],
                    upload(400),
                    &photo[400..],
                ),
                exchange(
                    &["BlobDownload from 0: size 1000, then the photo's bytes."],
                    req(wire::request::Kind::BlobDownload(
                        wire::BlobDownloadRequest {
                            sha256: sha,
                            offset: 0,
                        },
                    )),
                    &[],
                ),
            ],
        },
    ])
}

/// What each exchange's comment says, checked on the server's answer (so a file rewritten from a
/// server that does something else fails here, not in review).
fn says(name: &str, i: usize, r: &wire::Response, raw: &[u8]) {
    use wire::response::Kind;
    let outcomes = |p: &wire::PushResponse| -> Vec<(u64, i32)> {
        p.results
            .iter()
            .map(|r| (r.device_seq, r.outcome))
            .collect()
    };
    use wire::OpOutcome::{Applied, Conflict, Duplicate, Rejected};
    match (name, i, r.kind.as_ref()) {
        ("enroll", 0, Some(Kind::Enroll(e))) => {
            assert_eq!(
                (e.user.as_str(), e.role, e.grid_cells.clone()),
                (
                    "golden",
                    wire::Role::Patroller as i32,
                    vec!["S1-C1".to_owned()]
                )
            );
        }
        ("push", _, Some(Kind::Push(p))) => {
            assert_eq!(p.acked_through, 5);
            let first = if i == 0 { Applied } else { Duplicate };
            let fourth = if i == 0 { Applied } else { Duplicate };
            assert_eq!(
                outcomes(p),
                vec![
                    (1, first as i32),
                    (2, Duplicate as i32),
                    (3, Rejected as i32),
                    (4, fourth as i32),
                    (5, Conflict as i32)
                ]
            );
            let r3 = &p.results[2];
            assert_eq!(
                (r3.code, r3.reason.as_str(), r3.field.as_str()),
                (
                    wire::ErrorCode::BadRequest as i32,
                    "out_of_range",
                    "fix.latitude"
                )
            );
            assert_eq!(p.results[4].reason, "conflict");
        }
        ("pull", 0, Some(Kind::Pull(p))) => {
            use wire::change::Entity;
            let kinds: Vec<&str> = p
                .changes
                .iter()
                .map(|c| match &c.entity {
                    Some(Entity::Cell(_)) => "cell",
                    Some(Entity::Checkpoint(_)) => "checkpoint",
                    Some(Entity::Scope(_)) => "scope",
                    Some(Entity::HazardReport(_)) => "hazard_report",
                    Some(Entity::HazardEvent(_)) => "hazard_event",
                    _ => "other",
                })
                .collect();
            assert_eq!(
                kinds,
                [
                    "cell",
                    "checkpoint",
                    "scope",
                    "hazard_report",
                    "hazard_event"
                ]
            );
            assert_eq!(
                (p.feed.as_str(), p.has_more, p.reset),
                ("user:1", false, false)
            );
        }
        ("upload", 0, Some(Kind::Error(e))) => {
            assert_eq!(
                (e.code, e.retryable, e.held_offset),
                (wire::ErrorCode::BadRequest as i32, true, 400)
            );
        }
        ("upload", 1, Some(Kind::BlobStatus(b))) => assert_eq!((b.held, b.complete), (400, false)),
        ("upload", 2, Some(Kind::BlobUpload(b))) => assert_eq!((b.held, b.complete), (1000, true)),
        ("upload", 3, Some(Kind::BlobDownload(d))) => {
            assert_eq!(d.size, 1000);
            assert_eq!(raw, photo());
        }
        other => panic!("unexpected answer {other:?}"),
    }
}

/// The files hold what the script builds: the same files, connections, varying fields and
/// requests (all but the enrollment CSR, signed anew each time), and nothing else is in the
/// directory.
fn same_as_script(files: &[Golden], script: &[Golden]) -> anyhow::Result<()> {
    let mut present: Vec<String> = std::fs::read_dir(dir())?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<anyhow::Result<_>>()?;
    present.sort();
    let mut expected: Vec<String> = script.iter().map(|g| format!("{}.hex", g.name)).collect();
    expected.push("device.key.hex".into());
    expected.sort();
    anyhow::ensure!(
        present == expected,
        "proto/testdata/golden holds {present:?}; the test knows {expected:?}"
    );
    anyhow::ensure!(files.len() == script.len(), "one file per scripted file");
    for (f, s) in files.iter().zip(script) {
        anyhow::ensure!(
            (f.name, f.conn, &f.varies) == (s.name, s.conn, &s.varies),
            "{}: connection or varies differ from the script",
            f.name
        );
        anyhow::ensure!(
            f.exchanges.len() == s.exchanges.len(),
            "{}: {} exchanges in the file, {} in the script",
            f.name,
            f.exchanges.len(),
            s.exchanges.len()
        );
        for (i, (fe, se)) in f.exchanges.iter().zip(&s.exchanges).enumerate() {
            // The enrollment CSR is signed anew each time: compare everything else of it.
            let without_csr = |bytes: &[u8]| -> anyhow::Result<wire::Request> {
                let mut r: wire::Request = frame::decode(&bytes[frame::HEADER_LEN..])?;
                if let Some(wire::request::Kind::Enroll(e)) = r.kind.as_mut() {
                    e.csr_der.clear();
                }
                Ok(r)
            };
            let same = if fe.request == se.request {
                true
            } else {
                let (file, scripted) = (without_csr(&fe.request)?, without_csr(&se.request)?);
                matches!(file.kind, Some(wire::request::Kind::Enroll(_))) && file == scripted
            };
            anyhow::ensure!(
                same && fe.request_bytes == se.request_bytes,
                "{}: request {i} differs from the script's (PATROLSYNC_GOLDEN=write rewrites the files)",
                f.name
            );
        }
    }
    Ok(())
}

/// The fixed set-up: the grid and the enrollment code.
async fn set_up(store: &dyn Store) -> anyhow::Result<()> {
    let now = patrolsync_server::now_ms();
    let cell = |code: &str, parent: Option<&str>, level: u32| NewCell {
        code: code.into(),
        parent: parent.map(str::to_owned),
        level,
        name: code.into(),
        boundary: None,
    };
    store
        .upsert_grid(
            &[cell("S1", None, 1), cell("S1-C1", Some("S1"), 2)],
            &[NewCheckpoint {
                code: "S1-C1-P1".into(),
                cell: "S1-C1".into(),
                name: "S1-C1-P1".into(),
                tag_uid: None,
                position: Some((45.75, 126.625)),
                radius_m: 50.0,
                cadence: None,
            }],
            now,
        )
        .await?;
    store
        .create_enrollment(
            &NewEnrollment {
                code_hash: patrolsync_server::enroll::hash_code(CODE),
                user: "golden".into(),
                role: patrolsync_proto::Role::Patroller,
                cells: vec!["S1-C1".into()],
                expires_at_ms: now + 3_600_000,
                agency: None,
            },
            now,
        )
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_golden_vectors_are_what_the_server_says() -> anyhow::Result<()> {
    let writing = std::env::var("PATROLSYNC_GOLDEN").as_deref() == Ok("write");
    let key_file = dir().join("device.key.hex");
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start_empty(db).await?;
        set_up(h.server().store().as_ref()).await?;
        let (key, mut files) = if writing {
            let key = rcgen::KeyPair::generate()?.serialize_der();
            (key.clone(), script(&key)?)
        } else {
            let key = hex::decode(std::fs::read_to_string(&key_file)?.trim())?;
            let scripted = script(&key)?;
            let files = scripted
                .iter()
                .map(|g| Golden::read(g.name))
                .collect::<anyhow::Result<Vec<_>>>()?;
            same_as_script(&files, &scripted)?;
            (key, files)
        };
        let ca = h.config.data_dir.join("ca.crt");
        let stranger = patrolsync_tests::raw_connect(h.addr(), &ca, None).await?;
        let mut device: Option<quinn::Connection> = None;
        for g in &mut files {
            let conn = match g.conn {
                Conn::Stranger => stranger.clone(),
                Conn::Device => device
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("{}: no device enrolled yet", g.name))?,
            };
            for (i, e) in g.exchanges.iter_mut().enumerate() {
                // Every request is one well-formed frame.
                let len = frame::body_len(e.request[..frame::HEADER_LEN].try_into()?, 1 << 24)?;
                anyhow::ensure!(
                    e.request.len() == frame::HEADER_LEN + len,
                    "{}: request {i}",
                    g.name
                );
                wire::Request::decode(&e.request[frame::HEADER_LEN..])?;
                let (got, got_bytes) = send(&conn, e).await?;
                if writing {
                    (e.response, e.response_bytes) = (got.clone(), got_bytes.clone());
                }
                let actual = normalized(&got, &g.varies)?;
                let expected = normalized(&e.response, &g.varies)?;
                assert_eq!(
                    actual, expected,
                    "{backend}: {} exchange {i}: {:?}",
                    g.name, e.comment
                );
                assert_eq!(
                    got_bytes, e.response_bytes,
                    "{backend}: {} exchange {i}: raw bytes",
                    g.name
                );
                says(g.name, i, &actual, &got_bytes);
                if let Some(wire::response::Kind::Enroll(r)) =
                    frame::decode::<wire::Response>(&got[frame::HEADER_LEN..])?.kind
                {
                    device = Some(
                        patrolsync_tests::raw_connect(
                            h.addr(),
                            &ca,
                            Some((r.certificate_der.clone(), key.clone())),
                        )
                        .await?,
                    );
                }
            }
        }
        if writing && backend == "sqlite" {
            std::fs::create_dir_all(dir())?;
            std::fs::write(&key_file, format!("{}\n", hex::encode(&key)))?;
            for g in &files {
                g.write()?;
            }
        }
        h.finish().await;
        if writing {
            break;
        }
    }
    Ok(())
}
