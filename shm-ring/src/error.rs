//! The error type of every fallible bus operation.

/// What went wrong in a bus operation; every variant names what was wrong so the user can act on it.
#[derive(thiserror::Error, Debug)]
pub enum BusError {
    /// The bus name is not acceptable (`[A-Za-z0-9_.-]`, no `..`, 1..=200 characters).
    #[error("invalid bus name {name:?}: {reason}")]
    BadName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A group name is not acceptable (1..=64 characters of `[A-Za-z0-9_.-]`).
    #[error("invalid group name {name:?}: {reason}")]
    BadGroup {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// No bus of that name exists.
    #[error("bus {name:?} does not exist")]
    NotFound {
        /// The bus name.
        name: String,
    },
    /// A bus of that name already exists (on `create`).
    #[error("bus {name:?} already exists")]
    Exists {
        /// The bus name.
        name: String,
    },
    /// The existing bus has a different layout version or geometry.
    #[error("bus {name:?}: {field} differs (expected {expected}, found {found})")]
    Mismatch {
        /// The bus name.
        name: String,
        /// Which header field differs.
        field: &'static str,
        /// The value the caller asked for (or this build supports).
        expected: u64,
        /// The value found in the region.
        found: u64,
    },
    /// The region holds something that cannot be valid (bad magic, out-of-range offset or count).
    #[error("bus {name:?} is corrupt: {what}")]
    Corrupt {
        /// The bus name.
        name: String,
        /// What was found to be wrong.
        what: String,
    },
    /// The region file belongs to another user and attaching to it was not allowed.
    /// (Rust callers may opt in with `BusConfig::allow_foreign_owner` or [`crate::Bus::open_with`].)
    #[error("bus {name:?} belongs to uid {uid}, not to this user: attach to it as that user, or use another bus name")]
    ForeignOwner {
        /// The bus name.
        name: String,
        /// The owner of the region file.
        uid: u32,
    },
    /// The payload is larger than the bus allows.
    #[error("payload of {size} bytes is larger than the bus allows ({max} bytes of payload per message); send less per message, or create the bus with a larger max_message")]
    PayloadTooLarge {
        /// The payload's size in bytes.
        size: usize,
        /// The largest payload allowed, in bytes.
        max: usize,
    },
    /// A loan made by [`crate::Publisher::loan_block`] was sent with
    /// [`crate::Publisher::send_loan`], which needs the topic and length given to
    /// [`crate::Publisher::loan`].
    #[error("this loan was made without a topic (loan_block): send it with send_loan_as, which takes the topic and length")]
    LoanNotLaidOut,
    /// A loan was sent twice (or after it was released).
    #[error("this loan was already published (or released): take a new loan for the next message")]
    LoanSpent,
    /// A loan was sent by a publisher of another attachment (another bus, or another process).
    #[error("this loan belongs to another bus attachment: send it with a publisher made from the bus handle it was loaned from")]
    ForeignLoan,
    /// A loan or hold needs a seat of the bus and every seat is taken (63 attachments hold or
    /// lend blocks at once).
    #[error("every hold seat of bus \"{bus}\" is taken (63 processes hold or lend blocks at once); release loans and views elsewhere, or publish by copy")]
    NoSeat {
        /// The bus.
        bus: String,
    },
    /// The topic is longer than any bus allows.
    #[error(
        "topic of {size} bytes is longer than a bus allows ({max} bytes); use a shorter topic"
    )]
    TopicTooLong {
        /// The topic's length in bytes.
        size: usize,
        /// The longest topic allowed, in bytes.
        max: usize,
    },
    /// This process was taken for dead while it wrote a message, and a survivor recovered the
    /// ring position it had claimed: that message was not published.
    #[error("the message at ring position {pos} was not published: another process took this one for dead while it wrote it and recovered the position; publish it again")]
    ClaimLost {
        /// The ring position that was recovered.
        pos: u64,
    },
    /// A topic pattern that does not parse.
    #[error("topic pattern {topic:?} is not valid: {reason}")]
    BadTopic {
        /// The pattern as given.
        topic: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The ring or the slab class is full and the call was non-blocking.
    #[error("the bus is full")]
    Full,
    /// A blocking call ran out of time.
    #[error("timed out")]
    Timeout,
    /// The ring or the slab class is full, and the messages holding the room this publish
    /// needs are held by a consumer the publisher was told never to wait for (see
    /// [`crate::Publisher::set_never_wait_for`]): typically its own process's consumer, whose
    /// receiving thread is the one publishing.
    #[error("the bus is full, and the room this message needs is held by consumer(s) {consumers:#x}, which this publish must not wait for")]
    WouldWaitFor {
        /// The mask of those consumers (one bit per consumer, as in `waiting_for`).
        consumers: u64,
    },
    /// The bus or handle was closed.
    #[error("the bus is closed")]
    Closed,
    /// A handle made from a subscriber (an interest handle) was used after the subscriber was
    /// dropped or reaped: its consumer entry is no longer its own.
    #[error("the subscriber this handle was made from is closed (dropped, or reaped as dead), so there is nothing left to change: make a new handle from a live subscriber")]
    SubscriberGone,
    /// A shared table has no free entry.
    #[error("no free {what} on the bus")]
    TableFull {
        /// Which table is full.
        what: &'static str,
    },
    /// The requested geometry is not acceptable (names the field and the allowed range).
    #[error("invalid bus configuration: {what}")]
    BadConfig {
        /// What is wrong with it.
        what: String,
    },
    /// The path of the bus is not a regular file (a symbolic link, a FIFO, a device, a
    /// directory...): it is never followed or opened for reading or writing.
    #[error("{path} is {kind}, not a bus file: refusing to use it (remove it with `event-engine rm --force {name}` or `rm -r {path}` if it should not be there)")]
    NotABusFile {
        /// The bus name.
        name: String,
        /// The path of the bus file.
        path: String,
        /// What is there instead ("a symbolic link", "a FIFO", ...).
        kind: &'static str,
    },
    /// The shared-memory file system has too little free space for the region.
    #[error("bus {name:?} needs {needed} bytes ({needed_mib:.1} MiB) in {dir} but only {free} bytes ({free_mib:.1} MiB) are free: remove unused buses (`event-engine ls`, `event-engine rm`), enlarge {dir} (e.g. `docker run --shm-size=256m`, or `mount -o remount,size=256M {dir}`), or choose a smaller geometry (less slab memory, a smaller max_message, fewer ring slots)", needed_mib = *needed as f64 / 1048576.0, free_mib = *free as f64 / 1048576.0)]
    NoSpace {
        /// The bus name.
        name: String,
        /// Bytes the region needs.
        needed: u64,
        /// Bytes free in the shared-memory file system when it was checked.
        free: u64,
        /// The shared-memory directory.
        dir: String,
    },
    /// The table lock (joining, leaving, reaping) stayed held by a live process for too long.
    #[error("bus {name:?}: the process table is locked by pid {pid}{state} and was not released within {waited_ms} ms: if that process is stopped (SIGSTOP, a debugger), resume it (`kill -CONT {pid}`) or end it, then retry")]
    LockHeld {
        /// The bus name.
        name: String,
        /// The pid named by the lock word.
        pid: u32,
        /// ", which is stopped" when the holder is known to be stopped, else empty.
        state: &'static str,
        /// How long this call waited.
        waited_ms: u64,
    },
    /// An operating-system error on the region file.
    #[error("bus {name:?}: {source}")]
    Io {
        /// The bus name.
        name: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The shared-memory directory itself could not be read (e.g. while listing buses).
    #[error("cannot read the shared-memory directory {path}: {source}")]
    ShmDir {
        /// The directory.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

#[cfg_attr(loom, allow(dead_code))]
impl BusError {
    pub(crate) fn corrupt(name: &str, what: impl Into<String>) -> Self {
        BusError::Corrupt {
            name: name.to_string(),
            what: what.into(),
        }
    }
    pub(crate) fn io(name: &str, source: std::io::Error) -> Self {
        BusError::Io {
            name: name.to_string(),
            source,
        }
    }
}
