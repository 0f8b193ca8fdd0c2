//! Application error codes for QUIC connection closes and stream resets. Business errors travel
//! in `Response.error`; these are only for transport outcomes.

/// Connection close: the peer presented no usable device credential.
pub const CLOSE_UNAUTHENTICATED: u32 = 0x10;
/// Connection close: the device was revoked by an admin; re-enroll.
pub const CLOSE_REVOKED: u32 = 0x11;
/// Connection close: protocol version not supported.
pub const CLOSE_VERSION_UNSUPPORTED: u32 = 0x12;
/// Connection close: the server is going away (drain, restart).
pub const CLOSE_GOING_AWAY: u32 = 0x13;
/// Connection close: the device holds too many connections already.
pub const CLOSE_TOO_MANY_CONNECTIONS: u32 = 0x14;
/// Connection close by a client that is done.
pub const CLOSE_DONE: u32 = 0x00;

/// Stream reset: not processed, safe to retry.
pub const RESET_RETRY_SAFE: u32 = 0x20;
/// Stream reset / stop: the peer sent something that is not the protocol.
pub const RESET_PROTOCOL_ERROR: u32 = 0x21;
/// Stream reset: the server is overloaded; retry later.
pub const RESET_EXCESSIVE_LOAD: u32 = 0x22;
/// Stream reset: cancelled.
pub const RESET_CANCELLED: u32 = 0x23;
/// Stream reset: the outcome is unknown to the client (e.g. the answer was lost after a
/// commit); replaying is safe because ingest is exactly-once.
pub const RESET_ANSWER_LOST: u32 = 0x24;
