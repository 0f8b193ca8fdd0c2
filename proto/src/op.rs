//! Ops: the unit of a device's outbox and of exactly-once ingest. Every mutation a device makes
//! is an op `{op_id, device_seq, hlc, body}`; `device_seq` increases by one per op on a device.

use crate::checkin::{CheckIn, Invalid};
use crate::hlc::Hlc;
use crate::ids::OpId;
use crate::wire;

/// A decoded, validated op.
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    /// Client-generated UUIDv7.
    pub op_id: OpId,
    /// Position in the device's op sequence, from 1.
    pub device_seq: u64,
    /// When the device made the edit.
    pub hlc: Hlc,
    /// What the op does.
    pub body: OpBody,
}

/// What an op does.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum OpBody {
    /// Record a check-in.
    CheckIn(Box<CheckIn>),
    /// Report a hazard.
    HazardReport(Box<crate::hazard::Report>),
    /// A transition of a hazard's closed loop.
    HazardEvent(Box<crate::hazard::Event>),
    /// A last-writer-wins edit of a hazard field.
    HazardEdit(crate::hazard::Edit),
    /// Make a task (a manager's device).
    Task(Box<crate::task::Task>),
    /// A step of a task.
    TaskEvent(Box<crate::task::TaskEvent>),
}

impl OpBody {
    /// [`OpBody::kind_name`] of a check-in.
    pub const CHECK_IN: &'static str = "check_in";

    /// Stable name of the op kind: `check_in`, or the change kind of a hazard op (a hazard's
    /// entries are change-log entries; check-ins are not).
    pub fn kind_name(&self) -> &'static str {
        use crate::change::ChangeKind;
        match self {
            OpBody::CheckIn(_) => Self::CHECK_IN,
            OpBody::HazardReport(_) => ChangeKind::HazardReport.as_str(),
            OpBody::HazardEvent(_) => ChangeKind::HazardEvent.as_str(),
            OpBody::HazardEdit(_) => ChangeKind::HazardEdit.as_str(),
            OpBody::Task(_) => ChangeKind::Task.as_str(),
            OpBody::TaskEvent(_) => ChangeKind::TaskEvent.as_str(),
        }
    }
}

/// Why a whole push was refused before any op was looked at. Nothing is stored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// More ops than the server accepts in one push.
    #[error("push carries {count} ops; the limit is {limit} per push")]
    TooManyOps {
        /// Ops sent.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// `device_seq` 0 is never valid (sequences start at 1).
    #[error("op #{index} has device_seq 0; sequences start at 1")]
    ZeroSeq {
        /// Index of the op in the push.
        index: usize,
    },
    /// A `device_seq` beyond what storage can hold (2^63 - 1).
    #[error("device_seq {seq} is too large")]
    SeqTooLarge {
        /// The sequence number.
        seq: u64,
    },
    /// Two ops in one push share an op id.
    #[error("two ops in one push share an op_id")]
    RepeatedOpId,
    /// Two ops in one push share a `device_seq`.
    #[error("device_seq {seq} appears twice in one push")]
    RepeatedSeq {
        /// The repeated sequence number.
        seq: u64,
    },
}

/// Checks the shape of a push: size and sequence numbers. Content is checked per op.
pub fn check_batch(ops: &[wire::Op], max_ops: usize) -> Result<(), BatchError> {
    if ops.len() > max_ops {
        return Err(BatchError::TooManyOps {
            count: ops.len(),
            limit: max_ops,
        });
    }
    let mut seqs: Vec<u64> = Vec::with_capacity(ops.len());
    for (index, op) in ops.iter().enumerate() {
        if op.device_seq == 0 {
            return Err(BatchError::ZeroSeq { index });
        }
        if op.device_seq > i64::MAX as u64 {
            return Err(BatchError::SeqTooLarge { seq: op.device_seq });
        }
        seqs.push(op.device_seq);
    }
    let mut ids: Vec<&[u8]> = ops
        .iter()
        .map(|o| o.op_id.as_slice())
        .filter(|i| !i.is_empty())
        .collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(BatchError::RepeatedOpId);
    }
    seqs.sort_unstable();
    if let Some(w) = seqs.windows(2).find(|w| w[0] == w[1]) {
        return Err(BatchError::RepeatedSeq { seq: w[0] });
    }
    Ok(())
}

impl Op {
    /// Validates one op received at time `now_ms`. The caller has already run [`check_batch`].
    pub fn from_wire(w: wire::Op, now_ms: i64) -> Result<Op, Invalid> {
        let op_id = OpId::from_slice(&w.op_id).ok_or_else(|| {
            Invalid::new(
                "op_id",
                "invalid_id",
                format!("op_id must be a 16-byte UUID, got {} bytes", w.op_id.len()),
            )
        })?;
        let hlc = w.hlc.map(Hlc::from).unwrap_or_default();
        // An HLC far ahead of the server would win every last-writer-wins register for ever.
        let ahead = now_ms.saturating_add(crate::checkin::MAX_FUTURE_SKEW_MS);
        if hlc.wall_ms > ahead.max(0) as u64 {
            return Err(Invalid::new(
                "hlc",
                "implausible_time",
                format!(
                    "op clock {} is more than a year after server time {now_ms}; the device clock is wrong",
                    hlc.wall_ms
                ),
            ));
        }
        let body = match w.body {
            None => return Err(Invalid::new("body", "missing", "op has no body")),
            Some(wire::op::Body::CheckIn(c)) => {
                OpBody::CheckIn(Box::new(CheckIn::from_wire(c, now_ms)?))
            }
            Some(wire::op::Body::HazardReport(r)) => {
                OpBody::HazardReport(Box::new(crate::hazard::Report::from_wire(r, now_ms)?))
            }
            Some(wire::op::Body::HazardEvent(e)) => {
                OpBody::HazardEvent(Box::new(crate::hazard::Event::from_wire(e, now_ms)?))
            }
            Some(wire::op::Body::HazardFieldEdit(e)) => {
                OpBody::HazardEdit(crate::hazard::Edit::from_wire(e)?)
            }
            Some(wire::op::Body::Task(t)) => {
                OpBody::Task(Box::new(crate::task::Task::from_wire(t, now_ms)?))
            }
            Some(wire::op::Body::TaskEvent(e)) => {
                OpBody::TaskEvent(Box::new(crate::task::TaskEvent::from_wire(e, now_ms)?))
            }
        };
        Ok(Op {
            op_id,
            device_seq: w.device_seq,
            hlc,
            body,
        })
    }

    /// The wire form.
    pub fn to_wire(&self) -> wire::Op {
        wire::Op {
            op_id: self.op_id.to_bytes(),
            device_seq: self.device_seq,
            hlc: Some(self.hlc.into()),
            body: match &self.body {
                OpBody::CheckIn(c) => Some(wire::op::Body::CheckIn(c.to_wire())),
                OpBody::HazardReport(r) => Some(wire::op::Body::HazardReport(r.to_wire())),
                OpBody::HazardEvent(e) => Some(wire::op::Body::HazardEvent(e.to_wire())),
                OpBody::HazardEdit(e) => Some(wire::op::Body::HazardFieldEdit(e.to_wire())),
                OpBody::Task(t) => Some(wire::op::Body::Task(t.to_wire())),
                OpBody::TaskEvent(e) => Some(wire::op::Body::TaskEvent(e.to_wire())),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(seq: u64) -> wire::Op {
        wire::Op {
            device_seq: seq,
            ..Default::default()
        }
    }

    #[test]
    fn batch_shape_is_checked_before_content() {
        assert_eq!(check_batch(&[op(1), op(2)], 10), Ok(()));
        assert_eq!(
            check_batch(&[op(1), op(0)], 10),
            Err(BatchError::ZeroSeq { index: 1 })
        );
        assert_eq!(
            check_batch(&[op(3), op(3)], 10),
            Err(BatchError::RepeatedSeq { seq: 3 })
        );
        assert_eq!(
            check_batch(&[op(1), op(2), op(3)], 2),
            Err(BatchError::TooManyOps { count: 3, limit: 2 })
        );
    }

    #[test]
    fn op_without_body_is_refused() {
        let mut w = op(1);
        w.op_id = uuid::Uuid::now_v7().as_bytes().to_vec();
        assert_eq!(Op::from_wire(w, 0).expect_err("no body").field, "body");
    }
}
