//! Tasks (dispatch): made by an admin or the intake API, offered by the dispatcher to the
//! cell's on-duty patrollers nearest first, escalated to the cell's managers when nobody takes
//! them in time. Devices' steps arrive through ingest.

use async_trait::async_trait;
use patrolsync_proto::TaskId;

use super::{Dispatched, NewTask, StoreError, TaskLogEntry, TaskRecord, TaskRef, TaskSummary};

/// What dispatch and the task commands need of storage.
#[async_trait]
pub trait TaskStore: Send + Sync {
    /// Makes a task (its first log entry is the server's) in a cell that exists and is not
    /// retired; the household, unit and checkpoint it names must exist in that cell.
    async fn create_task(&self, task: &NewTask, now_ms: i64) -> Result<(TaskId, u64), StoreError>;

    /// Looks up tasks by id, with how many entries `device` made; unknown ids are absent.
    async fn task_refs(
        &self,
        ids: &[TaskId],
        device: patrolsync_proto::DeviceId,
    ) -> Result<Vec<TaskRef>, StoreError>;

    /// Tasks, newest first: only open ones with `open`, only those in `cell`'s subtree.
    async fn tasks(
        &self,
        open: bool,
        cell: Option<&str>,
        limit: u32,
    ) -> Result<Vec<TaskSummary>, StoreError>;

    /// The tasks made in `[from_ms, to_ms)` in `cell`'s subtree (every cell for `None`), each
    /// folded from the entries received by `as_of_ms`, oldest first: what reports and the
    /// help-call ledger read.
    async fn report_tasks(
        &self,
        cell: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        as_of_ms: i64,
    ) -> Result<Vec<TaskRecord>, StoreError>;

    /// One task and its log, with each entry's conflict.
    async fn task(
        &self,
        id: TaskId,
    ) -> Result<Option<(TaskSummary, Vec<TaskLogEntry>)>, StoreError>;

    /// Moves every task nobody has yet: offers an open one (or one whose offer went unanswered
    /// for `offer_timeout_ms`) to the nearest on-duty patroller of its cell not yet offered it,
    /// and escalates it to the cell's managers when none is left. Each step is a server entry
    /// in the task's log, made once however many nodes dispatch at the same moment. A device
    /// whose last Hello on duty is older than `duty_ttl_ms` is on duty no more: it is offered
    /// nothing, and its position is deleted.
    async fn dispatch(
        &self,
        now_ms: i64,
        offer_timeout_ms: i64,
        duty_ttl_ms: i64,
    ) -> Result<Dispatched, StoreError>;
}
