//! The filesystem backend of photo storage: photos at `<root>/<hex[..2]>/<hex>`, each upload's
//! staging at `<root>/staging/<hex>.<device>`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncSeekExt;

use super::{BlobError, BlobReader, SYNC_EVERY, digest_bytes};
use crate::config::Photos;

/// Photos on the filesystem under `root`.
#[derive(Debug)]
pub(super) struct FsBlobs {
    root: PathBuf,
}

/// A file staging: bytes are hashed as they arrive (while the stream has just left them in the
/// CPU's cache) and gathered a MiB at a time; each MiB is written and fsynced in the blocking
/// pool while the next one arrives (two buffers), so the disk does not stall the stream, and
/// finishing needs no second pass over the file. The file travels with the write in flight and
/// comes back when it is done.
///
/// Every path out of an upload waits for the write in flight (`persist`, or `finish`, which
/// settles it first), so no write outlives the upload's claim and appends behind a resumed
/// upload's hash. The file is locked while the staging is open (`flock` on Linux, which NFS
/// carries to the server): a node still serving a dead connection's upload keeps another node,
/// on the same photo directory, from resuming it under it.
pub(super) struct FileStaging {
    path: PathBuf,
    file: Option<StagingFile>,
    buf: Aligned,
    spare: Aligned,
    ctx: Box<ring::digest::Context>,
    pending: Option<tokio::task::JoinHandle<Written>>,
    unsynced: u64,
    /// Bytes the hash covers: what was held when the staging opened, and every byte since.
    hashed: u64,
    /// Bytes of the file once the writes handed to the pool land: where the next one goes.
    end: u64,
}

impl std::fmt::Debug for FileStaging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "File({} bytes buffered)", self.buf.len())
    }
}

/// The staging file, opened twice: for appends through the page cache (locked; the hash of a
/// resumed upload reads it, and the ends of uploads that do not fill a block are written
/// through it), and, where the filesystem allows it, for direct writes (`O_DIRECT`, Linux) of
/// the whole blocks a MiB brings. A photo is written once and read rarely: copied through the
/// page cache it costs a copy, the filesystem's work per 4 KiB page, writeback at each fsync and
/// dropping the pages after (measured as a fifth of the server's CPU while photos upload).
struct StagingFile {
    file: std::fs::File,
    direct: Option<std::fs::File>,
    /// Bytes written through `direct`.
    direct_bytes: u64,
}

/// Direct writes start, end and sit in memory on this boundary: every device's logical block
/// divides it. A filesystem that wants more refuses the first direct write, and the staging
/// goes on through the page cache.
const DIRECT_ALIGN: usize = 4096;

/// A buffer whose bytes start at an address aligned for direct writes (`DIRECT_ALIGN`): its
/// allocation is padded at the front up to the first such address, and never moves (bytes past
/// its capacity go to a new one). Not zeroed: only the bytes put in are touched.
#[derive(Default)]
struct Aligned {
    mem: Vec<u8>,
    start: usize,
}

impl Aligned {
    fn with_capacity(capacity: usize) -> Aligned {
        let mut mem: Vec<u8> = Vec::with_capacity(capacity + DIRECT_ALIGN);
        // `align_offset` may answer that it cannot say (usize::MAX): the bytes then start
        // where the allocation does, and go through the page cache (`is_aligned`).
        let start = match mem.as_ptr().align_offset(DIRECT_ALIGN) {
            n if n < DIRECT_ALIGN => n,
            _ => 0,
        };
        mem.resize(start, 0);
        Aligned { mem, start }
    }

    fn len(&self) -> usize {
        self.mem.len() - self.start
    }

    fn bytes(&self) -> &[u8] {
        &self.mem[self.start..]
    }

    fn is_aligned(&self) -> bool {
        self.bytes().as_ptr().align_offset(DIRECT_ALIGN) == 0
    }

    fn extend(&mut self, chunk: &[u8]) {
        if self.mem.len() + chunk.len() > self.mem.capacity() {
            let len = self.len();
            let mut bigger = Aligned::with_capacity((len + chunk.len()).max(2 * len));
            bigger.mem.extend_from_slice(self.bytes());
            *self = bigger;
        }
        self.mem.extend_from_slice(chunk);
    }

    fn truncate(&mut self, len: usize) {
        self.mem.truncate(self.start + len);
    }

    fn clear(&mut self) {
        self.truncate(0);
    }
}

type Written = std::io::Result<(StagingFile, Aligned)>;

/// Appends `bytes` to the staging at `path`, whose end is `offset`, and fsyncs, in the
/// blocking pool. If that fails, the staging is deleted: the file may then read
/// back bytes the disk does not hold (from the page cache), and a resume would hash and count
/// them; it starts over instead.
fn write_durably(
    path: PathBuf,
    mut f: StagingFile,
    bytes: Aligned,
    offset: u64,
) -> tokio::task::JoinHandle<Written> {
    tokio::task::spawn_blocking(move || {
        let written = f.append(bytes.bytes(), offset, bytes.is_aligned());
        if let Err(e) = written {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok((f, bytes))
    })
}

impl StagingFile {
    /// Appends `bytes` (at the file's end, `offset`) and makes them durable: directly where
    /// they are whole blocks in `aligned` memory at a block boundary and the filesystem takes
    /// direct writes, else through the page cache. Stamps the file for expiry.
    fn append(&mut self, bytes: &[u8], offset: u64, aligned: bool) -> std::io::Result<()> {
        use std::io::Write;
        let whole = |x: u64| x.is_multiple_of(DIRECT_ALIGN as u64);
        let direct = aligned && whole(offset) && whole(bytes.len() as u64) && !bytes.is_empty();
        let mut cached = true;
        if direct && let Some(d) = &self.direct {
            match write_direct(d, bytes, offset) {
                Ok(()) => {
                    cached = false;
                    self.direct_bytes += bytes.len() as u64;
                }
                // Refused before a byte was written: this filesystem or device wants another
                // alignment, or takes no direct writes after all. The page cache takes this
                // staging's writes from now on.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
                    ) =>
                {
                    self.direct = None
                }
                Err(e) => return Err(e),
            }
        }
        if cached {
            self.file.write_all(bytes)?;
        }
        stamp(&self.file);
        self.file.sync_data()?;
        if cached {
            drop_cached(&self.file);
        }
        Ok(())
    }
}

/// Writes all of `bytes` at `offset` through the direct handle `d`; `InvalidInput` or
/// `Unsupported` only if it was refused before any byte was written.
fn write_direct(d: &std::fs::File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut done = 0;
    while done < bytes.len() {
        match d.write_at(&bytes[done..], offset + done as u64) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(k) => done += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if done > 0
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
                    ) =>
            {
                return Err(std::io::Error::other(e));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A second handle on the staging `file` (at `path`) for direct writes, if `path` still names
/// `file` and it lies on a local filesystem known to take them (ext2/3/4, XFS, btrfs). Direct
/// writes land at this upload's own idea of the file's end, so they are safe only where no
/// other node can write to the file: on a directory shared over the network (NFS, CIFS, a
/// cluster filesystem) the lock may hold only locally (NFS `local_lock`), and there every write
/// is an append, which the byte count checked at the end catches.
fn open_direct(file: &std::fs::File, path: &Path) -> Option<std::fs::File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        const EXT4: i64 = 0xEF53;
        const XFS: i64 = 0x5846_5342;
        const BTRFS: i64 = 0x9123_683E;
        // `f_type`'s width differs between architectures.
        #[allow(clippy::unnecessary_cast)]
        let kind = rustix::fs::fstatfs(file).ok()?.f_type as i64;
        if ![EXT4, XFS, BTRFS].contains(&kind) {
            return None;
        }
        let direct = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
            .open(path)
            .ok()?;
        let (a, b) = (file.metadata().ok()?, direct.metadata().ok()?);
        ((a.dev(), a.ino()) == (b.dev(), b.ino())).then_some(direct)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, path);
        None
    }
}

/// Stamps the staging with this process's clock, which `expire_staging` reads it against: a
/// filesystem's own stamp may come from another clock (an NFS server's). Only for expiry, so a
/// refusal (nodes on a shared directory running as different users) fails nothing.
fn stamp(f: &std::fs::File) {
    let _ = f.set_modified(std::time::SystemTime::now());
}

/// Lets the kernel drop the file's pages from its cache once they are on disk. A photo is
/// written once and read rarely, and not soon; kept cached, every upload would take fresh
/// memory (on a VM, memory its host has to fault in page by page: measured as 29% of the
/// server's CPU during uploads) and push the database's pages out. Dropped, the next MiB is
/// written into pages just freed. Only advice: nothing depends on it being taken.
fn drop_cached(f: &std::fs::File) {
    #[cfg(target_os = "linux")]
    let _ = rustix::fs::fadvise(f, 0, None, rustix::fs::Advice::DontNeed);
    #[cfg(not(target_os = "linux"))]
    let _ = f;
}

/// The end of an upload, in the blocking pool: if the bytes were `verified`, the bytes not yet
/// written (`rest`) are written and synced, and the staging at `path`, if it holds the `hashed`
/// bytes, becomes the photo at `dest`, its rename made durable; else the staging is deleted. If
/// the photo is stored already (another device finished first), the staging is deleted: the
/// upload only proved that its device holds the photo. Returns the stored photo's size.
#[allow(clippy::too_many_arguments)]
fn seal(
    mut f: StagingFile,
    rest: &Aligned,
    end: u64,
    path: &Path,
    dest: &Path,
    verified: bool,
    hashed: u64,
    hex: String,
) -> Result<u64, BlobError> {
    let dir = dest.parent().ok_or_else(lost)?;
    if !verified {
        let _ = std::fs::remove_file(path);
        return Err(BlobError::HashMismatch(hex));
    }
    if let Ok(m) = std::fs::metadata(dest) {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        // The upload that stored it may not have made its rename durable yet; this one is
        // answered only once it is.
        sync_dir(dir)?;
        return Ok(m.len());
    }
    // Stamped as `write_durably` does, should the staging outlive this (a failed rename).
    if let Err(e) = f.append(rest.bytes(), end, rest.is_aligned()) {
        // As in `write_durably`: what the file reads back may not be on disk.
        let _ = std::fs::remove_file(path);
        return Err(e.into());
    }
    let open = f.file.metadata()?;
    let size = open.len();
    if size != hashed {
        // Something other than this upload wrote to the staging: what is on disk is not what
        // was hashed. (The lock keeps another node out; this holds where locks do not.)
        let _ = std::fs::remove_file(path);
        return Err(BlobError::Io(std::io::Error::other(format!(
            "photo {hex}: its staging holds {size} bytes, not the {hashed} this upload sent; \
             it was discarded, send the photo again"
        ))));
    }
    // The path must still name this upload's file: an expired staging deleted under it, and
    // another upload's file made at the same path since, must not be stored as this one.
    if !same_file(&open, path)? {
        return Err(BlobError::Io(std::io::Error::other(format!(
            "photo {hex}: its staging was replaced during this upload; send the photo again"
        ))));
    }
    std::fs::rename(path, dest)?;
    // The rename is durable once the directory is synced. If that fails the upload is answered
    // "retry", and the retry finds the photo stored and syncs the directory again.
    sync_dir(dir)?;
    // The lock goes with the file, once the photo is in place.
    drop(f);
    Ok(size)
}

/// Whether a staging could be locked for an upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lock {
    /// Locked by this upload (`flock`; released when the file closes).
    Held,
    /// Another upload holds it.
    Busy,
    /// Files cannot be locked here (another system, a filesystem without locks): the byte
    /// count checked as the upload finishes still keeps what was not hashed from being stored.
    Unlockable,
}

/// Locks the staging file for this upload.
fn lock(f: &std::fs::File) -> Lock {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{FlockOperation, flock};
        match flock(f, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Lock::Held,
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => Lock::Busy,
            Err(e) => {
                tracing::warn!(error = %e, "photo staging cannot be locked; nodes sharing this \
                    photo directory need a filesystem with working locks (NFS: not `nolock`)");
                Lock::Unlockable
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = f;
        Lock::Unlockable
    }
}

/// Whether `path` names the open file whose metadata is `open`.
fn same_file(open: &std::fs::Metadata, path: &Path) -> Result<bool, BlobError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let named = std::fs::metadata(path)?;
        Ok((open.dev(), open.ino()) == (named.dev(), named.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = (open, path);
        Ok(true)
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Waits for the write in flight, if any, and takes back the file and its buffer.
async fn settle(
    pending: &mut Option<tokio::task::JoinHandle<Written>>,
    file: &mut Option<StagingFile>,
    spare: &mut Aligned,
) -> Result<(), BlobError> {
    if let Some(h) = pending.take() {
        let (f, mut b) = h
            .await
            .map_err(|e| BlobError::Io(std::io::Error::other(e)))??;
        b.clear();
        *file = Some(f);
        *spare = b;
    }
    Ok(())
}

fn lost() -> BlobError {
    BlobError::Io(std::io::Error::other(
        "staging file lost by an earlier error",
    ))
}

impl FileStaging {
    /// See [`super::Staging::write`].
    pub(super) async fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        self.ctx.update(chunk);
        self.hashed += chunk.len() as u64;
        self.buf.extend(chunk);
        self.unsynced += chunk.len() as u64;
        if self.unsynced >= SYNC_EVERY {
            self.start_write(false).await?;
            self.unsynced = 0;
        }
        Ok(())
    }

    /// See [`super::Staging::persist`].
    pub(super) async fn persist(&mut self) -> Result<(), BlobError> {
        if self.buf.len() > 0 {
            self.start_write(true).await?;
        }
        settle(&mut self.pending, &mut self.file, &mut self.spare).await?;
        self.unsynced = 0;
        Ok(())
    }

    /// Waits for the write in flight (so at most two MiB and a block are ever not yet
    /// durable), then sends the buffered bytes on their way to disk; the spare buffer takes
    /// their place. Unless `all` are to go, the bytes past the last block boundary of the file
    /// stay for the next write, so every write after the first ends on one and the next can
    /// go direct.
    async fn start_write(&mut self, all: bool) -> Result<(), BlobError> {
        settle(&mut self.pending, &mut self.file, &mut self.spare).await?;
        let f = self.file.take().ok_or_else(lost)?;
        let len = self.buf.len();
        let n = match all {
            true => len,
            false => len - ((self.end + len as u64) % DIRECT_ALIGN as u64) as usize,
        };
        let mut bytes = std::mem::replace(&mut self.buf, std::mem::take(&mut self.spare));
        self.buf.extend(&bytes.bytes()[n..]);
        bytes.truncate(n);
        self.pending = Some(write_durably(self.path.clone(), f, bytes, self.end));
        self.end += n as u64;
        Ok(())
    }
}

/// What opening a staging found.
enum Found {
    /// The staging, locked for this upload.
    File(StagingFile),
    /// No staging, and none expected.
    Nothing,
    /// Another upload holds it.
    Busy,
    /// It holds this many bytes, not those expected.
    Held(u64),
}

/// The staging `file` at `path`, as `lock` left it: with a handle for direct writes only under
/// this upload's own lock (see `open_direct`).
fn locked_staging(file: std::fs::File, locked: Lock, path: &Path) -> StagingFile {
    let direct = match locked {
        Lock::Held => open_direct(&file, path),
        _ => None,
    };
    StagingFile {
        file,
        direct,
        direct_bytes: 0,
    }
}

fn changed(hex: &str, on_disk: u64, held: u64) -> BlobError {
    BlobError::Io(std::io::Error::other(format!(
        "staging for {hex} changed size under us ({on_disk}, expected {held})"
    )))
}

/// A staging opened and locked for an upload (or not there yet, for an upload from the
/// start), before what it holds is hashed.
pub(super) struct OpenFile {
    path: PathBuf,
    file: Option<StagingFile>,
    held: u64,
    hex: String,
}

impl std::fmt::Debug for OpenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OpenFile({})", self.path.display())
    }
}

impl OpenFile {
    /// Makes the staging if it was not there (locked for this upload), stamps it for expiry,
    /// and hashes what it holds (a resumed upload's digest covers it all), which must be the
    /// `held` bytes the upload resumes from.
    pub(super) async fn resume(self) -> Result<FileStaging, BlobError> {
        let OpenFile {
            path,
            file,
            held,
            hex,
        } = self;
        let made = path.clone();
        let (file, on_disk, ctx) = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut file = match file {
                Some(f) => f,
                None => {
                    let file = std::fs::OpenOptions::new()
                        .create(true)
                        .read(true)
                        .append(true)
                        .open(&made)?;
                    let locked = lock(&file);
                    if locked == Lock::Busy {
                        // Made and locked by another node's upload since it was looked for.
                        return Ok(None);
                    }
                    locked_staging(file, locked, &made)
                }
            };
            // Fresh for `expire_staging` from the moment it is resumed.
            stamp(&file.file);
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            let mut n_held = 0u64;
            if file.file.metadata()?.len() > 0 {
                let mut chunk = vec![0u8; 256 * 1024];
                loop {
                    let n = file.file.read(&mut chunk)?;
                    if n == 0 {
                        break;
                    }
                    ctx.update(&chunk[..n]);
                    n_held += n as u64;
                }
                // Read once, for the hash: not worth the cache.
                drop_cached(&file.file);
            }
            std::io::Result::Ok(Some((file, n_held, ctx)))
        })
        .await
        .map_err(|e| BlobError::Io(std::io::Error::other(e)))??
        .ok_or_else(|| BlobError::Busy(hex.clone()))?;
        if on_disk != held {
            return Err(changed(&hex, on_disk, held));
        }
        Ok(FileStaging {
            path,
            file: Some(file),
            buf: Aligned::with_capacity(SYNC_EVERY as usize + 64 * 1024),
            spare: Aligned::with_capacity(SYNC_EVERY as usize + 64 * 1024),
            ctx: Box::new(ctx),
            pending: None,
            unsynced: 0,
            hashed: on_disk,
            end: on_disk,
        })
    }
}

impl FsBlobs {
    /// Under `photos.path`, else `data_dir/blobs`; creates the staging directory.
    pub(super) fn open(photos: &Photos, data_dir: &Path) -> Result<FsBlobs, BlobError> {
        let root = photos
            .path
            .clone()
            .unwrap_or_else(|| data_dir.join("blobs"));
        std::fs::create_dir_all(root.join("staging"))?;
        // Every photo's directory (its hash's first byte) exists before any upload, made
        // durable once here: an upload's rename then needs only its own directory synced.
        let mut created = false;
        for b in 0..=255u8 {
            let dir = root.join(hex::encode([b]));
            if !dir.exists() {
                std::fs::create_dir(&dir)?;
                created = true;
            }
        }
        if created {
            sync_dir(&root)?;
        }
        Ok(FsBlobs { root })
    }

    pub(super) fn describe(&self) -> String {
        format!("filesystem {}", self.root.display())
    }

    fn final_path(&self, sha: &[u8; 32]) -> PathBuf {
        let h = hex::encode(sha);
        self.root.join(&h[..2]).join(h)
    }

    /// `owner` is a device id (UUID text), so it cannot leave the staging directory.
    fn staging_path(&self, sha: &[u8; 32], owner: &str) -> PathBuf {
        self.root
            .join("staging")
            .join(format!("{}.{owner}", hex::encode(sha)))
    }

    pub(super) async fn stored(&self, sha: &[u8; 32]) -> Result<Option<u64>, BlobError> {
        match tokio::fs::metadata(self.final_path(sha)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn staged(&self, sha: &[u8; 32], owner: &str) -> Result<u64, BlobError> {
        match tokio::fs::metadata(self.staging_path(sha, owner)).await {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens and locks `owner`'s staging of `sha` for an upload resuming from `held` (see
    /// [`super::Blobs::open_staging`]): Busy if another upload holds it; an error if it does
    /// not hold `held` bytes (it changed since they were counted). Creates nothing and stamps
    /// nothing: an upload refused before it resumes leaves the directory as it was.
    pub(super) async fn open_staging(
        &self,
        sha: &[u8; 32],
        owner: &str,
        held: u64,
    ) -> Result<OpenFile, BlobError> {
        let path = self.staging_path(sha, owner);
        let opened = path.clone();
        let hex = hex::encode(sha);
        let found = tokio::task::spawn_blocking(move || {
            let file = match std::fs::OpenOptions::new()
                .read(true)
                .append(true)
                .open(&opened)
            {
                Ok(f) => f,
                // Nothing staged, so no upload holds it: made (and locked) as this one resumes.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && held == 0 => {
                    return Ok(Found::Nothing);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Held(0)),
                Err(e) => return Err(e),
            };
            let locked = lock(&file);
            if locked == Lock::Busy {
                return Ok(Found::Busy);
            }
            let on_disk = file.metadata()?.len();
            if on_disk != held {
                return Ok(Found::Held(on_disk));
            }
            std::io::Result::Ok(Found::File(locked_staging(file, locked, &opened)))
        })
        .await
        .map_err(|e| BlobError::Io(std::io::Error::other(e)))??;
        let file = match found {
            Found::File(f) => Some(f),
            Found::Nothing => None,
            // Locked by an upload still running elsewhere (another node, on shared storage).
            Found::Busy => return Err(BlobError::Busy(hex)),
            Found::Held(on_disk) => return Err(changed(&hex, on_disk, held)),
        };
        Ok(OpenFile {
            path,
            file,
            held,
            hex,
        })
    }

    /// Opens, locks and resumes a staging in one step.
    #[cfg(test)]
    pub(super) async fn staging(
        &self,
        sha: &[u8; 32],
        owner: &str,
        held: u64,
    ) -> Result<FileStaging, BlobError> {
        self.open_staging(sha, owner, held).await?.resume().await
    }

    /// Finishes a staging (see [`super::Blobs::finish`]): the write in flight lands, then one
    /// task in the blocking pool writes and syncs the rest, checks the hash, and moves the photo
    /// into place (or discards it), so an upload's last step waits for the disk once, not for a
    /// round trip to the pool per file operation.
    pub(super) async fn finish(
        &self,
        sha: &[u8; 32],
        owner: &str,
        mut staging: FileStaging,
    ) -> Result<u64, BlobError> {
        settle(&mut staging.pending, &mut staging.file, &mut staging.spare).await?;
        // A write that failed took the file with it: the hash covers bytes the disk may not
        // hold, so such a staging never finishes.
        let file = staging.file.take().ok_or_else(lost)?;
        let verified = &digest_bytes(*staging.ctx) == sha;
        let (path, dest, hex) = (
            self.staging_path(sha, owner),
            self.final_path(sha),
            hex::encode(sha),
        );
        let (rest, hashed, end) = (staging.buf, staging.hashed, staging.end);
        tokio::task::spawn_blocking(move || {
            seal(file, &rest, end, &path, &dest, verified, hashed, hex)
        })
        .await
        .map_err(|e| BlobError::Io(std::io::Error::other(e)))?
    }

    pub(super) async fn read(&self, sha: &[u8; 32], offset: u64) -> Result<BlobReader, BlobError> {
        let mut f = tokio::fs::File::open(self.final_path(sha)).await?;
        f.seek(std::io::SeekFrom::Start(offset)).await?;
        Ok(Box::pin(f))
    }

    pub(super) async fn expire_staging(&self, max_age: Duration) -> Result<usize, BlobError> {
        let mut n = 0;
        let mut dir = tokio::fs::read_dir(self.root.join("staging")).await?;
        while let Some(e) = dir.next_entry().await? {
            let old = e
                .metadata()
                .await?
                .modified()?
                .elapsed()
                .map(|a| a > max_age)
                .unwrap_or(false);
            if !old {
                continue;
            }
            // Not one an upload is writing (it holds the lock).
            let path = e.path();
            let removed = tokio::task::spawn_blocking(move || {
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .is_ok_and(|f| lock(&f) != Lock::Busy && std::fs::remove_file(&path).is_ok())
            });
            if removed.await.unwrap_or(false) {
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn sha(bytes: &[u8]) -> [u8; 32] {
        patrolsync_proto::digest::sha256(bytes)
    }

    fn blobs(dir: &Path) -> FsBlobs {
        FsBlobs::open(&Photos::default(), dir).expect("open")
    }

    /// "dev"'s staging of `sha` opened read-only, directly or not: every write fails.
    fn read_only(b: &FsBlobs, sha: &[u8; 32]) -> StagingFile {
        let open = || std::fs::File::open(b.staging_path(sha, "dev")).expect("staging file");
        StagingFile {
            file: open(),
            direct: Some(open()),
            direct_bytes: 0,
        }
    }

    /// `bytes` staged by "dev" from the start, made durable.
    async fn staged(b: &FsBlobs, sha: &[u8; 32], bytes: &[u8]) -> FileStaging {
        let mut s = b.staging(sha, "dev", 0).await.expect("staging");
        s.write(bytes).await.expect("write");
        s.persist().await.expect("persist");
        s
    }

    #[tokio::test]
    async fn bytes_sent_in_pieces_across_mib_boundaries_are_stored_whole_and_verified() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = blobs(dir.path());
        // Two MiB and a half, in pieces that straddle every MiB boundary; the upload breaks
        // off after the first piece and resumes from what the disk holds.
        let bytes = photo(5 * (1 << 19) + 17);
        let sha = sha(&bytes);
        let mut s = b.staging(&sha, "dev", 0).await.expect("staging");
        let (first, rest) = bytes.split_at(1_000_003);
        s.write(first).await.expect("write");
        s.persist().await.expect("persist");
        drop(s);
        assert_eq!(
            b.staged(&sha, "dev").await.expect("staged"),
            first.len() as u64
        );
        let mut s = b
            .staging(&sha, "dev", first.len() as u64)
            .await
            .expect("staging");
        // No persist before finishing: the last half MiB and 17 bytes are written as it seals.
        for piece in rest.chunks(65_521) {
            s.write(piece).await.expect("write");
        }
        assert_eq!(
            b.finish(&sha, "dev", s).await.expect("finish"),
            bytes.len() as u64
        );
        assert_eq!(
            std::fs::read(b.final_path(&sha)).expect("stored photo"),
            bytes
        );
        assert_eq!(b.staged(&sha, "dev").await.expect("staged"), 0);
    }

    #[tokio::test]
    async fn bytes_that_do_not_hash_to_the_announced_sha_are_discarded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = blobs(dir.path());
        let mut bytes = photo(3 << 19);
        let sha = sha(&bytes);
        bytes[1 << 20] ^= 1;
        let mut s = b.staging(&sha, "dev", 0).await.expect("staging");
        s.write(&bytes).await.expect("write");
        let err = b.finish(&sha, "dev", s).await.expect_err("finish");
        assert!(matches!(err, BlobError::HashMismatch(h) if h == hex::encode(sha)));
        assert_eq!(b.stored(&sha).await.expect("stored"), None);
        assert_eq!(b.staged(&sha, "dev").await.expect("staged"), 0);
    }

    /// Whether this test's directory takes direct writes; if not, says so (and fails where
    /// nothing may be skipped).
    fn direct_here(b: &FsBlobs, what: &str) -> bool {
        let probe = b.root.join("staging").join("probe");
        let file = std::fs::File::create(&probe).expect("probe");
        let here = open_direct(&file, &probe).is_some();
        if !here {
            crate::testkit::skip(
                what,
                "the test directory is not on a local filesystem taking O_DIRECT (ext4, XFS, btrfs)",
            );
        }
        here
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn writes_after_the_first_end_on_block_boundaries_and_go_direct() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = blobs(dir.path());
        if !direct_here(&b, "direct staging writes") {
            return;
        }
        // A resumed upload held 1,000,003 bytes (not a block boundary); it sends the rest in
        // pieces of 1,000.
        let bytes = photo(3 << 20);
        let sha = sha(&bytes);
        let (held, rest) = bytes.split_at(1_000_003);
        drop(staged(&b, &sha, held).await);
        let mut s = b
            .staging(&sha, "dev", held.len() as u64)
            .await
            .expect("staging");
        let mut mib_ends = Vec::new();
        for piece in rest.chunks(1000) {
            let before = s.end;
            s.write(piece).await.expect("write");
            if s.end != before {
                mib_ends.push(s.end);
            }
            // What was handed to the disk and what waits for the next write are the bytes
            // hashed, always.
            assert_eq!(s.end + s.buf.len() as u64, s.hashed);
        }
        // Each write ends on a block boundary, the first by keeping what lay past one.
        assert_eq!(mib_ends.len(), 2, "{mib_ends:?}");
        assert!(
            mib_ends
                .iter()
                .all(|e| e.is_multiple_of(DIRECT_ALIGN as u64)),
            "{mib_ends:?}"
        );
        s.persist().await.expect("persist");
        // Every byte after the first write went direct: the second MiB, and the end, which
        // persist wrote (3 MiB ends on a block boundary).
        let f = s.file.as_ref().expect("file");
        assert_eq!(f.direct_bytes, (3 << 20) - mib_ends[0]);
        let direct = f.direct.as_ref().expect("the direct handle");
        let flags = rustix::fs::fcntl_getfl(direct).expect("flags");
        assert!(flags.contains(rustix::fs::OFlags::DIRECT), "{flags:?}");
        assert_eq!(b.finish(&sha, "dev", s).await.expect("finish"), 3 << 20);
        assert_eq!(std::fs::read(b.final_path(&sha)).expect("photo"), bytes);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_direct_write_the_filesystem_refuses_goes_through_the_page_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = blobs(dir.path());
        if !direct_here(&b, "a refused direct write") {
            return;
        }
        let path = b.root.join("staging").join("refused");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .expect("staging");
        let direct = open_direct(&file, &path);
        assert!(direct.is_some());
        let mut f = StagingFile {
            file,
            direct,
            direct_bytes: 0,
        };
        // Whole blocks at a block boundary, but one byte off an aligned address: the kernel
        // refuses the direct write (EINVAL) before writing anything.
        let mut buf = Aligned::with_capacity(2 * DIRECT_ALIGN + 1);
        buf.extend(&photo(2 * DIRECT_ALIGN + 1));
        let off = &buf.bytes()[1..DIRECT_ALIGN + 1];
        f.append(off, 0, true).expect("append");
        if f.direct.is_some() {
            // btrfs, for one, takes it (through its own cache).
            crate::testkit::skip(
                "a refused direct write",
                "this filesystem takes direct writes from unaligned memory",
            );
            return;
        }
        assert_eq!(f.direct_bytes, 0);
        let aligned = &buf.bytes()[..DIRECT_ALIGN];
        f.append(aligned, DIRECT_ALIGN as u64, true)
            .expect("append");
        let want = [off, aligned].concat();
        assert_eq!(std::fs::read(&path).expect("staging"), want);
    }

    #[tokio::test]
    async fn a_staging_whose_write_failed_never_finishes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = blobs(dir.path());
        let bytes = photo(3 << 19);
        let sha = sha(&bytes);
        let mut s = b.staging(&sha, "dev", 0).await.expect("staging");
        // The disk refuses the writes: the file is swapped for one opened read-only.
        s.file = Some(read_only(&b, &sha));
        // The first MiB's write fails in the background and is reported by the next step;
        // the staging it may have left half written is gone, so a resume starts over.
        s.write(&bytes).await.expect("write");
        let err = s.persist().await.expect_err("persist");
        assert!(matches!(err, BlobError::Io(_)), "{err:?}");
        assert!(!b.staging_path(&sha, "dev").exists());
        // Every byte was hashed, so the hash matches, but none is on disk: finishing must
        // refuse.
        let err = b.finish(&sha, "dev", s).await.expect_err("finish");
        assert!(
            err.to_string()
                .contains("staging file lost by an earlier error"),
            "{err}"
        );
        assert_eq!(b.stored(&sha).await.expect("stored"), None);
    }

    #[tokio::test]
    async fn a_photo_stored_already_is_kept_and_the_second_staging_discarded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = blobs(dir.path());
        let bytes = photo(70_000);
        let sha = sha(&bytes);
        let mut first = b.staging(&sha, "one", 0).await.expect("staging");
        let mut second = b.staging(&sha, "two", 0).await.expect("staging");
        first.write(&bytes).await.expect("write");
        second.write(&bytes).await.expect("write");
        assert_eq!(b.finish(&sha, "one", first).await.expect("finish"), 70_000);
        assert_eq!(b.finish(&sha, "two", second).await.expect("finish"), 70_000);
        assert_eq!(std::fs::read(b.final_path(&sha)).expect("photo"), bytes);
        assert_eq!(b.staged(&sha, "two").await.expect("staged"), 0);
    }

    #[tokio::test]
    async fn a_failed_last_write_stores_nothing_and_leaves_no_staging() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = blobs(dir.path());
        let bytes = photo(1000);
        let sha = sha(&bytes);
        let mut s = b.staging(&sha, "dev", 0).await.expect("staging");
        s.write(&bytes).await.expect("write");
        // Less than a MiB: nothing is written until the upload finishes, where the disk
        // refuses it (the file swapped for one opened read-only).
        s.file = Some(read_only(&b, &sha));
        let err = b.finish(&sha, "dev", s).await.expect_err("finish");
        assert!(matches!(err, BlobError::Io(_)), "{err:?}");
        assert!(!b.staging_path(&sha, "dev").exists());
        assert_eq!(b.stored(&sha).await.expect("stored"), None);
    }

    #[tokio::test]
    async fn a_staging_written_to_by_another_upload_is_discarded_not_stored() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("tempdir");
        let b = blobs(dir.path());
        let bytes = photo(3 << 19);
        let sha = sha(&bytes);
        let s = staged(&b, &sha, &bytes).await;
        // Another writer that ignores the lock (a node on storage without locks) appends.
        std::fs::OpenOptions::new()
            .append(true)
            .open(b.staging_path(&sha, "dev"))
            .and_then(|mut f| f.write_all(b"stray"))
            .expect("append");
        let err = b.finish(&sha, "dev", s).await.expect_err("finish");
        assert!(
            err.to_string()
                .contains("its staging holds 1572869 bytes, not the 1572864 this upload sent"),
            "{err}"
        );
        assert_eq!(b.stored(&sha).await.expect("stored"), None);
        assert!(!b.staging_path(&sha, "dev").exists());
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_staging_open_elsewhere_is_busy_until_that_upload_ends() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Two nodes on one photo directory.
        let (one, two) = (blobs(dir.path()), blobs(dir.path()));
        let bytes = photo(5000);
        let sha = sha(&bytes);
        let s = staged(&one, &sha, &bytes[..2000]).await;
        let err = two.staging(&sha, "dev", 2000).await.expect_err("busy");
        assert!(
            matches!(&err, BlobError::Busy(h) if *h == hex::encode(sha)),
            "{err:?}"
        );
        drop(s);
        let mut s = two.staging(&sha, "dev", 2000).await.expect("resumed");
        s.write(&bytes[2000..]).await.expect("write");
        assert_eq!(two.finish(&sha, "dev", s).await.expect("finish"), 5000);
        assert_eq!(std::fs::read(one.final_path(&sha)).expect("photo"), bytes);
    }

    #[tokio::test]
    async fn a_staging_replaced_under_its_upload_is_not_stored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = blobs(dir.path());
        let bytes = photo(3000);
        let sha = sha(&bytes);
        let mut s = staged(&b, &sha, &bytes[..1000]).await;
        // Deleted under the upload (as an expiry would), and another file of the same length
        // made at its path.
        let path = b.staging_path(&sha, "dev");
        std::fs::remove_file(&path).expect("delete");
        std::fs::write(&path, vec![0u8; 3000]).expect("another file");
        s.write(&bytes[1000..]).await.expect("write");
        let err = b.finish(&sha, "dev", s).await.expect_err("finish");
        assert!(
            err.to_string()
                .contains("its staging was replaced during this upload"),
            "{err}"
        );
        assert_eq!(b.stored(&sha).await.expect("stored"), None);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn expiry_keeps_a_staging_an_upload_holds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = blobs(dir.path());
        let bytes = photo(3000);
        let sha = sha(&bytes);
        let s = staged(&b, &sha, &bytes[..1000]).await;
        // Every staging is older than zero: only the lock keeps this one.
        assert_eq!(b.expire_staging(Duration::ZERO).await.expect("expire"), 0);
        assert_eq!(b.staged(&sha, "dev").await.expect("staged"), 1000);
        drop(s);
        assert_eq!(b.expire_staging(Duration::ZERO).await.expect("expire"), 1);
        assert_eq!(b.staged(&sha, "dev").await.expect("staged"), 0);
    }
}
