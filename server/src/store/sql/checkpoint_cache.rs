//! Checkpoints as ingest looks them up, kept in memory between grid edits.
//!
//! Every check-in names a checkpoint, and looking it up was a query per push: on SQLite at
//! 5,000 single check-ins a second, 12.6% of the server's CPU went to it
//! (`tests/bench/results/profile-steady-sqlite.txt`). A checkpoint changes only when the grid is
//! edited, so the ones found are kept here.
//!
//! Every grid edit logs its cells and checkpoints in the change log, in the transaction that
//! makes it, so the position of the log's last grid entry (the grid's version) moves exactly
//! when an edit commits, whoever commits it: this server, a `patrolsync admin` command run
//! beside it, another node on the same PostgreSQL. The cache reads that position at most every
//! [`STALE_AFTER`] and starts over when it moved, so an edit made elsewhere takes effect here
//! within about that long. This server's own grid edits empty the cache when they commit.
//!
//! Only checkpoints that exist are kept: an unknown code is looked up every time, so made-up
//! codes cost a peer what they cost before and fill nothing here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::CheckpointRef;

/// How long the cache goes without reading the grid's version.
pub(super) const STALE_AFTER: Duration = Duration::from_secs(1);

/// Most checkpoints kept; past this many, the rest are read each time (a city the size of
/// Harbin has about 150,000).
const MAX_ENTRIES: usize = 1 << 18;

#[derive(Debug, Default)]
pub(super) struct CheckpointCache {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Bumped each time the entries are dropped. A lookup that read the database under an
    /// older epoch keeps what it read out of the cache: it may predate the edit.
    epoch: u64,
    /// The grid version the entries agree with. `None`: read it before trusting them.
    version: Option<i64>,
    /// When a caller last began to read the version (one caller reads it at a time).
    read_at: Option<Instant>,
    entries: HashMap<String, CheckpointRef>,
}

/// What a lookup found in the cache, and what it must read.
#[derive(Debug)]
pub(super) struct Probe {
    /// The epoch to [`CheckpointCache::fill`] under.
    pub epoch: u64,
    /// Checkpoints the cache holds.
    pub found: Vec<CheckpointRef>,
    /// Codes it does not hold.
    pub missing: Vec<String>,
}

impl CheckpointCache {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a map and counters; a panic while holding the lock leaves them usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether this caller is to read the grid version at `now`, and under which epoch: when
    /// none has begun to for [`STALE_AFTER`], or ever since the entries were dropped. Lookups
    /// meanwhile go on with the entries as they are, or, while the version is unknown, read
    /// the database.
    pub fn version_due(&self, now: Instant) -> Option<u64> {
        let mut s = self.state();
        let due = s
            .read_at
            .is_none_or(|at| now.saturating_duration_since(at) >= STALE_AFTER);
        if !due {
            return None;
        }
        s.read_at = Some(now);
        Some(s.epoch)
    }

    /// The grid version, read by a caller that [`version_due`](Self::version_due) sent at
    /// `epoch`. A version other than the entries' drops them. A reading that another has
    /// overtaken (the epoch moved) is ignored.
    pub fn agree(&self, epoch: u64, version: i64) {
        let mut s = self.state();
        if s.epoch != epoch || s.version == Some(version) {
            return;
        }
        s.drop_entries();
        s.version = Some(version);
    }

    /// A version reading failed: the entries go unused until one succeeds, and the next lookup
    /// tries again.
    pub fn version_unknown(&self, epoch: u64) {
        let mut s = self.state();
        if s.epoch == epoch {
            s.version = None;
            s.read_at = None;
        }
    }

    /// Splits `codes` into the checkpoints held and the codes to read.
    pub fn probe(&self, codes: &[String]) -> Probe {
        let s = self.state();
        let mut found = Vec::with_capacity(codes.len());
        let mut missing = Vec::new();
        if s.version.is_some() {
            for code in codes {
                match s.entries.get(code) {
                    Some(cp) => found.push(cp.clone()),
                    None => missing.push(code.clone()),
                }
            }
        } else {
            missing.extend_from_slice(codes);
        }
        Probe {
            epoch: s.epoch,
            found,
            missing,
        }
    }

    /// Keeps checkpoints read from the database under `epoch`, unless the entries were
    /// dropped since or no version is known for them; past [`MAX_ENTRIES`], keeps no more.
    pub fn fill(&self, epoch: u64, read: &[CheckpointRef]) {
        let mut s = self.state();
        if s.epoch != epoch || s.version.is_none() {
            return;
        }
        for cp in read {
            if s.entries.len() >= MAX_ENTRIES {
                break;
            }
            s.entries.insert(cp.code.clone(), cp.clone());
        }
    }

    /// This server edited the grid: drop everything, and read the version before keeping more.
    pub fn invalidate(&self) {
        let mut s = self.state();
        s.drop_entries();
        s.version = None;
        s.read_at = None;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.state().entries.len()
    }
}

impl State {
    fn drop_entries(&mut self) {
        self.entries.clear();
        self.epoch += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(code: &str, retired: bool) -> CheckpointRef {
        CheckpointRef {
            code: code.to_owned(),
            id: 1,
            cell_id: 2,
            cell_path: "/S1/".to_owned(),
            retired,
        }
    }

    /// One lookup as `SqlStore::checkpoints` makes it at `now`, with `version` and `db` standing
    /// for the database. Returns what it found and how many codes it read from `db`.
    fn lookup(
        cache: &CheckpointCache,
        codes: &[&str],
        version: i64,
        db: &[CheckpointRef],
        now: Instant,
    ) -> (Vec<CheckpointRef>, usize) {
        if let Some(epoch) = cache.version_due(now) {
            cache.agree(epoch, version);
        }
        let codes: Vec<String> = codes.iter().map(|c| (*c).to_owned()).collect();
        let probe = cache.probe(&codes);
        let read: Vec<CheckpointRef> = db
            .iter()
            .filter(|c| probe.missing.contains(&c.code))
            .cloned()
            .collect();
        cache.fill(probe.epoch, &read);
        let reads = probe.missing.len();
        let mut out = probe.found;
        out.extend(read);
        (out, reads)
    }

    /// A cache that has read grid version `version` at `now` and holds nothing yet.
    fn knowing(version: i64, now: Instant) -> CheckpointCache {
        let cache = CheckpointCache::default();
        let epoch = cache
            .version_due(now)
            .expect("the first lookup reads the version");
        cache.agree(epoch, version);
        cache
    }

    #[test]
    fn a_found_checkpoint_is_served_from_memory_until_the_grid_version_moves() {
        let cache = CheckpointCache::default();
        let t0 = Instant::now();
        let db = vec![cp("K1", false)];
        assert_eq!(lookup(&cache, &["K1"], 7, &db, t0), (db.clone(), 1));
        // Held: no read, also after the version is read again (unchanged).
        assert_eq!(lookup(&cache, &["K1"], 7, &db, t0), (db.clone(), 0));
        assert_eq!(
            lookup(&cache, &["K1"], 7, &db, t0 + STALE_AFTER),
            (db.clone(), 0)
        );
        // Retired elsewhere: the version moved. Not seen before the next reading is due…
        let retired = vec![cp("K1", true)];
        let soon = t0 + STALE_AFTER + STALE_AFTER / 2;
        assert_eq!(lookup(&cache, &["K1"], 8, &retired, soon), (db.clone(), 0));
        // …and read again once it is.
        let later = t0 + STALE_AFTER * 2;
        assert_eq!(
            lookup(&cache, &["K1"], 8, &retired, later),
            (retired.clone(), 1)
        );
    }

    #[test]
    fn unknown_codes_are_read_every_time_and_never_kept() {
        let cache = CheckpointCache::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(lookup(&cache, &["NOPE"], 1, &[], t0), (Vec::new(), 1));
        }
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_read_that_began_before_an_edit_is_not_kept() {
        let t0 = Instant::now();
        let cache = knowing(1, t0);
        let probe = cache.probe(&["K1".to_owned()]);
        // This server edits the grid while the lookup reads the database.
        cache.invalidate();
        cache.fill(probe.epoch, &[cp("K1", false)]);
        assert_eq!(cache.len(), 0);
        // The next lookup reads the version first (at once), then keeps what it reads.
        assert_eq!(
            lookup(&cache, &["K1"], 2, &[cp("K1", true)], t0),
            (vec![cp("K1", true)], 1)
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn an_overtaken_version_reading_changes_nothing() {
        let cache = CheckpointCache::default();
        let t0 = Instant::now();
        let slow = cache
            .version_due(t0)
            .expect("the first lookup reads the version");
        // The slow reading takes longer than STALE_AFTER: another caller reads it too.
        let fast = cache.version_due(t0 + STALE_AFTER).expect("due again");
        cache.agree(fast, 5);
        cache.fill(cache.probe(&[]).epoch, &[cp("K1", false)]);
        // A reading of 4, begun earlier, arrives late: the entries stand.
        cache.agree(slow, 4);
        assert_eq!(cache.len(), 1);
        // A failed reading under the old epoch does not unsettle them either.
        cache.version_unknown(slow);
        let now = t0 + STALE_AFTER;
        assert_eq!(
            lookup(&cache, &["K1"], 5, &[], now),
            (vec![cp("K1", false)], 0)
        );
    }

    #[test]
    fn one_caller_at_a_time_reads_the_version_also_while_it_is_unknown() {
        let cache = CheckpointCache::default();
        let t0 = Instant::now();
        let e = cache
            .version_due(t0)
            .expect("the first lookup reads the version");
        assert_eq!(
            cache.version_due(t0),
            None,
            "the first caller is reading it"
        );
        // Meanwhile lookups read the database and keep nothing.
        assert_eq!(lookup(&cache, &["K1"], 0, &[cp("K1", false)], t0).1, 1);
        assert_eq!(cache.len(), 0);
        cache.agree(e, 1);
        let due = t0 + STALE_AFTER;
        assert!(cache.version_due(due).is_some());
        assert_eq!(
            cache.version_due(due),
            None,
            "the first caller is reading it"
        );
        // After this server's own edit, the next lookup reads it at once, and only one does.
        cache.invalidate();
        assert!(cache.version_due(due).is_some());
        assert_eq!(cache.version_due(due), None);
    }

    #[test]
    fn a_failed_version_reading_leaves_the_entries_unused_until_one_succeeds() {
        let cache = CheckpointCache::default();
        let t0 = Instant::now();
        assert_eq!(lookup(&cache, &["K1"], 1, &[cp("K1", false)], t0).1, 1);
        let later = t0 + STALE_AFTER;
        let e = cache.version_due(later).expect("due");
        cache.version_unknown(e);
        let probe = cache.probe(&["K1".to_owned()]);
        assert_eq!((probe.found.len(), probe.missing.len()), (0, 1));
        // The next lookup tries again, at once.
        assert!(cache.version_due(later).is_some());
    }

    #[test]
    fn past_its_bound_the_cache_keeps_no_more() {
        let t0 = Instant::now();
        let cache = knowing(1, t0);
        let many: Vec<CheckpointRef> = (0..MAX_ENTRIES)
            .map(|i| cp(&format!("K{i}"), false))
            .collect();
        cache.fill(cache.probe(&[]).epoch, &many);
        assert_eq!(cache.len(), MAX_ENTRIES);
        assert_eq!(
            lookup(&cache, &["ONE-MORE"], 1, &[cp("ONE-MORE", false)], t0).1,
            1
        );
        assert_eq!(
            lookup(&cache, &["ONE-MORE"], 1, &[cp("ONE-MORE", false)], t0).1,
            1
        );
        assert_eq!(cache.len(), MAX_ENTRIES);
        assert_eq!(
            lookup(&cache, &["K0"], 1, &[], t0),
            (vec![cp("K0", false)], 0)
        );
    }
}
