//! The mapped region: creating it race-free, attaching to it with full validation, and typed
//! access to its tables.
//!
//! Creation builds the whole region in an anonymous file (`O_TMPFILE` in `/dev/shm`), sizes and
//! initialises it, marks it ready and only then links it into place under its name with
//! `linkat`, which fails if the name exists. Two creators racing end with exactly one region, and
//! an attacher can never see a half-initialised one; a creator killed midway leaves nothing behind.
//!
//! Attaching checks the owner, the magic, the layout version, the geometry and every offset
//! against what this build derives from that geometry and against the file size. After that the
//! process uses its own validated [`Layout`] for every bound and never re-reads one from the mapping.

pub(crate) mod bus_file;
pub(crate) mod interest;
pub(crate) mod layout;
pub mod liveness;
pub(crate) mod message;
mod release;
pub(crate) mod stats;
pub(crate) mod table;
pub(crate) mod words;

pub(crate) use crate::blocks::atomics::saturating_dec;

use crate::blocks::atomics::{AtomicU32, Ordering};
use crate::blocks::group::GroupView;
use crate::blocks::holds::Holds;
use crate::blocks::ring::{RingView, Slot};
use crate::blocks::slab::FreeList;
use crate::{shm_path, validate_name, BusConfig, BusError};
use layout::{ClassHead, Consumer, Header, Layout, Row, RowStats, LAYOUT_VERSION, MAGIC};
use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::MetadataExt;

/// An attached region.
pub(crate) struct Region {
    name: String,
    map: memmap2::MmapRaw,
    layout: Layout,
    /// The description this process opened the file with. It never holds a lock: liveness
    /// tests (`F_OFD_GETLK`) go through it, and lock descriptions are reopened from it.
    file: File,
    /// Per row, the lock this process holds on it (a `liveness::Held` word; 0 for rows it does
    /// not hold). Process memory, not shared.
    row_locks: Box<[std::sync::atomic::AtomicU64]>,
}

// SAFETY: the region is shared memory that every process (and thread) accesses only through
// atomics or through the slot/block ownership protocol of the ring; the struct itself is immutable.
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

impl Region {
    /// Creates bus `name`; `Exists` if it is already there.
    pub(crate) fn create(name: &str, cfg: &BusConfig) -> Result<Region, BusError> {
        validate_name(name)?;
        let layout = Layout::compute(name, cfg)?;
        if cfg.mode & !0o777 != 0 {
            return Err(BusError::BadConfig {
                what: format!("mode {:o} has bits beyond 0o777", cfg.mode),
            });
        }
        let dir = CString::new(crate::config::SHM_DIR).expect("no NUL in a constant");
        // SAFETY: `dir` is a valid C string; the flags and mode are plain integers.
        let fd = unsafe {
            libc::open(
                dir.as_ptr(),
                libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
                cfg.mode,
            )
        };
        if fd < 0 {
            return Err(BusError::io(name, std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` was just opened by us and is owned by nothing else.
        let file = unsafe { File::from_raw_fd(fd) };
        let io = |e| BusError::io(name, e);
        // The umask may have narrowed the mode; an explicit mode is what the caller asked for.
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(cfg.mode))
            .map_err(io)?;
        // Reserve every page now: a sparse region on a full /dev/shm faults with SIGBUS at the
        // first write to a page that cannot be allocated, long after creation.
        bus_file::reserve(name, &file, layout.total_size)?;
        let map = memmap2::MmapOptions::new()
            .len(layout.total_size as usize)
            .map_raw(&file)
            .map_err(io)?;
        let region = Region::new(name, map, layout, file);
        region.initialise();
        region
            .header()
            .group_retention_ms
            .store(cfg.group_retention_ms, Ordering::Relaxed);
        let src =
            CString::new(format!("/proc/self/fd/{}", region.file().as_raw_fd())).expect("no NUL");
        let dst =
            CString::new(shm_path(name).into_os_string().into_encoded_bytes()).map_err(|_| {
                BusError::BadName {
                    name: name.to_string(),
                    reason: "the name contains a NUL byte",
                }
            })?;
        // SAFETY: both paths are valid C strings.
        let rc = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                src.as_ptr(),
                libc::AT_FDCWD,
                dst.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            return Err(if e.kind() == std::io::ErrorKind::AlreadyExists {
                BusError::Exists {
                    name: name.to_string(),
                }
            } else {
                io(e)
            });
        }
        Ok(region)
    }

    /// Attaches to bus `name` (read-write unless `read_only`).
    pub(crate) fn open(
        name: &str,
        allow_foreign_owner: bool,
        read_only: bool,
    ) -> Result<Region, BusError> {
        validate_name(name)?;
        let (file, meta) = bus_file::open_regular(name, !read_only)?;
        let me = nix::unistd::geteuid().as_raw();
        if meta.uid() != me && !allow_foreign_owner {
            return Err(BusError::ForeignOwner {
                name: name.to_string(),
                uid: meta.uid(),
            });
        }
        let size = meta.len();
        if size < Layout::HEADER_SIZE as u64 {
            return Err(BusError::corrupt(
                name,
                format!("file is {size} bytes, shorter than a header"),
            ));
        }
        let io = |e| BusError::io(name, e);
        if !read_only {
            // A sparse file (made by an older build, or extended by hand) would fault with SIGBUS
            // on a full /dev/shm at the first write to a hole: reserve its pages now or say why not.
            bus_file::reserve(name, &file, size)?;
        }
        let map = if read_only {
            memmap2::MmapOptions::new()
                .len(Layout::HEADER_SIZE)
                .map_raw_read_only(&file)
                .map_err(io)?
        } else {
            memmap2::MmapOptions::new()
                .len(Layout::HEADER_SIZE)
                .map_raw(&file)
                .map_err(io)?
        };
        // SAFETY: the mapping is HEADER_SIZE bytes, page-aligned, and Header fits in it (const assert).
        let header = unsafe { &*(map.as_ptr() as *const Header) };
        let layout = validate_header(name, header, size)?;
        drop(map);
        let len = layout.total_size as usize;
        let map = if read_only {
            memmap2::MmapOptions::new()
                .len(len)
                .map_raw_read_only(&file)
                .map_err(io)?
        } else {
            memmap2::MmapOptions::new()
                .len(len)
                .map_raw(&file)
                .map_err(io)?
        };
        let region = Region::new(name, map, layout, file);
        // The header may have changed between the two mappings (it should not, but a foreign
        // writer could do anything): validate again against the mapping we keep.
        let again = validate_header(name, region.header(), size)?;
        if again != region.layout {
            return Err(BusError::corrupt(
                name,
                "the header changed while attaching",
            ));
        }
        Ok(region)
    }

    /// A new attachment of this process to the same file (a mapping and a description of its
    /// own), for a child made by `fork` that must not use its parent's (`liveness`).
    pub(crate) fn reattach(&self) -> Result<Region, BusError> {
        let io = |e| BusError::io(&self.name, e);
        let file = self.lock_description()?;
        let size = file.metadata().map_err(io)?.len();
        if size != self.layout.total_size {
            return Err(BusError::corrupt(
                &self.name,
                format!("file size is {size}, expected {}", self.layout.total_size),
            ));
        }
        let map = memmap2::MmapOptions::new()
            .len(self.layout.total_size as usize)
            .map_raw(&file)
            .map_err(io)?;
        Ok(Region::new(&self.name, map, self.layout.clone(), file))
    }

    fn new(name: &str, map: memmap2::MmapRaw, layout: Layout, file: File) -> Region {
        let row_locks = (0..layout.max_processes)
            .map(|_| std::sync::atomic::AtomicU64::new(0))
            .collect();
        Region {
            name: name.to_string(),
            map,
            layout,
            file,
            row_locks,
        }
    }

    fn initialise(&self) {
        let l = &self.layout;
        let h = self.header();
        h.version.store(LAYOUT_VERSION, Ordering::Relaxed);
        h.total_size.store(l.total_size, Ordering::Relaxed);
        h.created_ns
            .store(crate::region::liveness::now_ns(), Ordering::Relaxed);
        h.ring_capacity.store(l.ring_capacity, Ordering::Relaxed);
        h.max_message.store(l.max_message, Ordering::Relaxed);
        h.slab_blocks.store(l.slab_blocks, Ordering::Relaxed);
        h.slab_memory.store(l.slab_memory, Ordering::Relaxed);
        h.max_processes.store(l.max_processes, Ordering::Relaxed);
        h.max_subscribers
            .store(l.max_subscribers, Ordering::Relaxed);
        h.num_classes
            .store(l.classes.len() as u32, Ordering::Relaxed);
        h.rows_off.store(l.rows_off, Ordering::Relaxed);
        h.row_stats_off.store(l.row_stats_off, Ordering::Relaxed);
        h.consumers_off.store(l.consumers_off, Ordering::Relaxed);
        h.slots_off.store(l.slots_off, Ordering::Relaxed);
        h.classes_off.store(l.classes_off, Ordering::Relaxed);
        h.links_off.store(l.links_off, Ordering::Relaxed);
        h.holds_off.store(l.holds_off, Ordering::Relaxed);
        h.blocks_off.store(l.blocks_off, Ordering::Relaxed);
        for (i, slot) in self.slots().iter().enumerate() {
            slot.seq.store(i as u64, Ordering::Relaxed);
        }
        for start in &h.starts {
            start.store(crate::blocks::ring::UNSET, Ordering::Relaxed);
        }
        for (i, c) in l.classes.iter().enumerate() {
            let head = self.class(i);
            head.block_size.store(c.block_size, Ordering::Relaxed);
            head.first.store(c.first, Ordering::Relaxed);
            head.count.store(c.count, Ordering::Relaxed);
            self.free_list(i).reset();
        }
        h.magic.store(MAGIC, Ordering::Relaxed);
        h.ready.store(1, Ordering::Release);
    }

    /// The bus name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The description this process attached with (holds no lock; see the field).
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// The word naming the lock this process holds on row `i` (a `liveness::Held`), if `i` is
    /// in range.
    pub(crate) fn row_lock_word(&self, i: u32) -> Option<&std::sync::atomic::AtomicU64> {
        self.row_locks.get(i as usize)
    }

    /// The validated layout.
    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// # Safety
    /// `off + size_of::<T>()` must lie inside the mapping and `off` must be aligned for `T`; `T`
    /// must be valid for any bit pattern (atomics and plain integers).
    unsafe fn at<T>(&self, off: u64) -> &T {
        debug_assert!(off as usize + std::mem::size_of::<T>() <= self.map.len());
        // SAFETY: guaranteed by the caller.
        unsafe { &*(self.map.as_ptr().add(off as usize) as *const T) }
    }

    /// # Safety
    /// As for [`Region::at`], for `n` consecutive values.
    unsafe fn slice_at<T>(&self, off: u64, n: usize) -> &[T] {
        debug_assert!(off as usize + std::mem::size_of::<T>() * n <= self.map.len());
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(off as usize) as *const T, n) }
    }

    /// The header.
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: every mapping is at least HEADER_SIZE bytes and page-aligned.
        unsafe { self.at(0) }
    }

    /// The process table.
    pub(crate) fn rows(&self) -> &[Row] {
        // SAFETY: the layout (validated against the file size) puts max_processes rows at rows_off,
        // 128-byte aligned.
        unsafe { self.slice_at(self.layout.rows_off, self.layout.max_processes as usize) }
    }

    /// Row `i`, if `i` is in range.
    pub(crate) fn row(&self, i: u32) -> Option<&Row> {
        self.rows().get(i as usize)
    }

    /// The stats of row `i` (`i` < `max_processes`), or with `i == max_processes` the totals of
    /// the rows that have left; `None` beyond.
    pub(crate) fn row_stats(&self, i: u32) -> Option<&RowStats> {
        // SAFETY: the layout puts max_processes + 1 row stats at row_stats_off, 128-byte aligned.
        let all: &[RowStats] = unsafe {
            self.slice_at(
                self.layout.row_stats_off,
                self.layout.max_processes as usize + 1,
            )
        };
        all.get(i as usize)
    }

    /// The totals of the rows that have left (written under the table lock only).
    pub(crate) fn departed_stats(&self) -> &RowStats {
        self.row_stats(self.layout.max_processes)
            .expect("the departed entry is in the layout")
    }

    /// The consumer table (always 64 entries; only `max_subscribers` are handed out).
    pub(crate) fn consumers(&self) -> &[Consumer] {
        // SAFETY: the layout reserves 64 consumer entries at consumers_off, 64-byte aligned.
        unsafe { self.slice_at(self.layout.consumers_off, 64) }
    }

    /// The ring slots.
    pub(crate) fn slots(&self) -> &[Slot] {
        // SAFETY: the layout puts ring_capacity slots at slots_off, 128-byte aligned.
        unsafe { self.slice_at(self.layout.slots_off, self.layout.ring_capacity as usize) }
    }

    /// The ring.
    pub(crate) fn ring(&self) -> RingView<'_> {
        let h = self.header();
        RingView {
            head: &h.head,
            active: &h.active_mask,
            starts: &h.starts,
            slots: self.slots(),
        }
    }

    /// Group (or any consumer) `idx` as its members and reapers see it.
    pub(crate) fn group(&self, idx: u32) -> Option<GroupView<'_>> {
        let c = self.consumers().get(idx as usize)?;
        Some(GroupView {
            ring: self.ring(),
            bit: 1u64.checked_shl(idx)?,
            cursor: &c.cursor,
            redeliver: &c.redeliver,
            redeliver_count: &c.redeliver_count,
        })
    }

    /// Head of slab class `i` (`i` < number of classes).
    pub(crate) fn class(&self, i: usize) -> &ClassHead {
        assert!(i < self.layout.classes.len());
        // SAFETY: the layout reserves MAX_CLASSES class heads at classes_off, 64-byte aligned.
        unsafe { self.at(self.layout.classes_off + (i * Layout::CLASS_SIZE) as u64) }
    }

    fn links(&self) -> &[AtomicU32] {
        // SAFETY: the layout puts slab_blocks u32 links at links_off, 64-byte aligned.
        unsafe { self.slice_at(self.layout.links_off, self.layout.slab_blocks as usize) }
    }

    /// The hold words of every block (`blocks/holds.rs`).
    pub(crate) fn holds(&self) -> Holds<'_> {
        // SAFETY: the layout puts slab_blocks u64 hold words at holds_off, 8-byte aligned.
        let words =
            unsafe { self.slice_at(self.layout.holds_off, self.layout.slab_blocks as usize) };
        Holds { words }
    }

    /// The free list of class `i`, bounded by this process's layout.
    pub(crate) fn free_list(&self, i: usize) -> FreeList<'_> {
        let c = self.layout.classes[i];
        FreeList {
            head: &self.class(i).free,
            links: self.links(),
            first: c.first,
            count: c.count,
        }
    }

    /// Class index and bytes of block `idx`, or `None` if out of range.
    pub(crate) fn block(&self, idx: u32) -> Option<(usize, *mut u8, usize)> {
        let (i, c) = self
            .layout
            .classes
            .iter()
            .enumerate()
            .find(|(_, c)| idx.wrapping_sub(c.first) < c.count)?;
        let off = c.data_off + (idx - c.first) as u64 * c.block_size as u64;
        // SAFETY: off + block_size is inside the mapping by construction of the layout.
        let ptr = unsafe { self.map.as_mut_ptr().add(off as usize) };
        Some((i, ptr, c.block_size as usize))
    }
}

/// What `event-engine ls` shows of a bus: read with `pread` into this process's memory, never
/// mapped, so a file that shrinks or has holes on a full `/dev/shm` cannot fault the reader
/// (SIGBUS); refused when another user owns it, as [`Region::open`] refuses it.
pub(crate) struct Peek {
    /// When the bus was created (ns since the Unix epoch).
    pub created_ns: u64,
    /// Each live row's pid, start time and whether its owner is alive (`Region::row_alive`).
    pub rows: Vec<(u32, u64, bool)>,
}

/// Reads [`Peek`] of bus `name` (see there).
pub(crate) fn peek(name: &str) -> Result<Peek, BusError> {
    use std::os::unix::fs::FileExt;
    validate_name(name)?;
    let (file, meta) = bus_file::open_regular(name, false)?;
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(BusError::ForeignOwner {
            name: name.to_string(),
            uid: meta.uid(),
        });
    }
    let io = |e| BusError::io(name, e);
    // Word-aligned buffers, so that the header and the rows can be read as their structs.
    let read = |off: u64, len: usize| -> Result<Vec<u64>, BusError> {
        let mut words = vec![0u64; len.div_ceil(8)];
        // SAFETY: the byte view covers exactly the words' memory, which lives as long as it.
        let bytes = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr() as *mut u8, len) };
        file.read_exact_at(bytes, off).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                BusError::corrupt(name, "the file shrank while it was being read")
            } else {
                io(e)
            }
        })?;
        Ok(words)
    };
    if meta.len() < Layout::HEADER_SIZE as u64 {
        return Err(BusError::corrupt(
            name,
            format!("file is {} bytes, shorter than a header", meta.len()),
        ));
    }
    let head = read(0, Layout::HEADER_SIZE)?;
    // SAFETY: `head` holds HEADER_SIZE bytes, 8-byte aligned, and Header (atomics and integers,
    // valid for any bits, at most HEADER_SIZE bytes) needs no more alignment than that.
    let header = unsafe { &*(head.as_ptr() as *const Header) };
    let layout = validate_header(name, header, meta.len())?;
    let n = layout.max_processes as usize;
    let words = read(layout.rows_off, n * std::mem::size_of::<Row>())?;
    // SAFETY: `words` holds `n` rows' bytes, 8-byte aligned; Row is atomics, valid for any bits.
    let rows: &[Row] = unsafe { std::slice::from_raw_parts(words.as_ptr() as *const Row, n) };
    let size = std::mem::size_of::<Row>() as u64;
    let rows = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.state.load(Ordering::Relaxed) == layout::ROW_LIVE)
        .map(|(i, r)| {
            let start = layout.rows_off + i as u64 * size;
            let alive = liveness::range_locked(file.as_raw_fd(), start, size) != Some(false);
            (
                r.pid.load(Ordering::Relaxed),
                r.start_time.load(Ordering::Relaxed),
                alive,
            )
        })
        .collect();
    Ok(Peek {
        created_ns: header.created_ns.load(Ordering::Relaxed),
        rows,
    })
}

/// Checks a header against this build and the file size, returning the layout it implies.
fn validate_header(name: &str, h: &Header, file_size: u64) -> Result<Layout, BusError> {
    let magic = h.magic.load(Ordering::Acquire);
    if magic != MAGIC {
        return Err(BusError::corrupt(
            name,
            format!("bad magic {magic:#018x} (not an event-engine bus)"),
        ));
    }
    let version = h.version.load(Ordering::Relaxed);
    if version != LAYOUT_VERSION {
        return Err(BusError::Mismatch {
            name: name.to_string(),
            field: "layout version",
            expected: LAYOUT_VERSION as u64,
            found: version as u64,
        });
    }
    if h.ready.load(Ordering::Acquire) != 1 {
        return Err(BusError::corrupt(name, "the region was never marked ready"));
    }
    let cfg = BusConfig {
        ring_capacity: h.ring_capacity.load(Ordering::Relaxed),
        max_message: h.max_message.load(Ordering::Relaxed),
        slab_memory: Some(h.slab_memory.load(Ordering::Relaxed)),
        max_processes: h.max_processes.load(Ordering::Relaxed),
        max_subscribers: h.max_subscribers.load(Ordering::Relaxed),
        ..BusConfig::default()
    };
    let layout = Layout::compute(name, &cfg).map_err(|e| match e {
        BusError::BadConfig { what } => BusError::corrupt(name, format!("header geometry: {what}")),
        e => e,
    })?;
    let checks: [(&str, u64, u64); 12] = [
        (
            "number of slab blocks",
            layout.slab_blocks as u64,
            h.slab_blocks.load(Ordering::Relaxed) as u64,
        ),
        (
            "number of size classes",
            layout.classes.len() as u64,
            h.num_classes.load(Ordering::Relaxed) as u64,
        ),
        (
            "total size",
            layout.total_size,
            h.total_size.load(Ordering::Relaxed),
        ),
        (
            "process table offset",
            layout.rows_off,
            h.rows_off.load(Ordering::Relaxed),
        ),
        (
            "row stats offset",
            layout.row_stats_off,
            h.row_stats_off.load(Ordering::Relaxed),
        ),
        (
            "consumer table offset",
            layout.consumers_off,
            h.consumers_off.load(Ordering::Relaxed),
        ),
        (
            "ring offset",
            layout.slots_off,
            h.slots_off.load(Ordering::Relaxed),
        ),
        (
            "slab class offset",
            layout.classes_off,
            h.classes_off.load(Ordering::Relaxed),
        ),
        (
            "free-list offset",
            layout.links_off,
            h.links_off.load(Ordering::Relaxed),
        ),
        (
            "hold table offset",
            layout.holds_off,
            h.holds_off.load(Ordering::Relaxed),
        ),
        (
            "block offset",
            layout.blocks_off,
            h.blocks_off.load(Ordering::Relaxed),
        ),
        ("file size", layout.total_size, file_size),
    ];
    for (what, expected, found) in checks {
        if expected != found {
            return Err(BusError::corrupt(
                name,
                format!("{what} is {found}, expected {expected}"),
            ));
        }
    }
    Ok(layout)
}

/// Compares a wanted geometry (and group retention, also fixed by the creator) with that of an
/// attached region, naming the first field that differs.
pub(crate) fn check_geometry(
    name: &str,
    want: &BusConfig,
    region: &Region,
) -> Result<(), BusError> {
    let have = region.layout();
    let retention = region.header().group_retention_ms.load(Ordering::Relaxed);
    // What `want` asks for once resolved (a slab memory of `None` is derived from max_message).
    let want_memory = want
        .slab_memory
        .unwrap_or_else(|| layout::default_slab_memory(want.max_message));
    let fields = [
        (
            "ring_capacity",
            want.ring_capacity as u64,
            have.ring_capacity as u64,
        ),
        (
            "max_message",
            want.max_message as u64,
            have.max_message as u64,
        ),
        ("slab_memory", want_memory, have.slab_memory),
        (
            "max_processes",
            want.max_processes as u64,
            have.max_processes as u64,
        ),
        (
            "max_subscribers",
            want.max_subscribers as u64,
            have.max_subscribers as u64,
        ),
        ("group_retention_ms", want.group_retention_ms, retention),
    ];
    for (field, expected, found) in fields {
        if expected != found {
            return Err(BusError::Mismatch {
                name: name.to_string(),
                field,
                expected,
                found,
            });
        }
    }
    Ok(())
}
