//! The file behind a bus: opening it without trusting what is at its path, and reserving its
//! pages so that a full `/dev/shm` is an error at creation rather than a SIGBUS later.
//!
//! Anyone may create files in `/dev/shm`, so the path of a bus may hold a symbolic link (to
//! another bus, to a file elsewhere, to a device, or to nothing), a FIFO (whose open blocks until
//! a writer comes), a directory or a device. None of these is followed or opened for reading or
//! writing: the path is checked with `lstat`, opened with `O_NOFOLLOW | O_NONBLOCK`, and the open
//! file is checked again with `fstat` (the path may have changed between the two).

use crate::config::SHM_DIR;
use crate::{shm_path, BusError};
use std::fs::{File, Metadata};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};

/// What a file type is, in words, for an error; `None` for a regular file.
fn not_regular(ft: std::fs::FileType) -> Option<&'static str> {
    Some(if ft.is_file() {
        return None;
    } else if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    })
}

fn not_a_bus_file(name: &str, kind: &'static str) -> BusError {
    BusError::NotABusFile {
        name: name.to_string(),
        path: shm_path(name).display().to_string(),
        kind,
    }
}

/// What is at the path of bus `name` when it is not a regular file (`None`: a regular file, or
/// nothing at all).
pub(crate) fn foreign_kind(name: &str) -> Option<&'static str> {
    let meta = std::fs::symlink_metadata(shm_path(name)).ok()?;
    not_regular(meta.file_type())
}

/// Opens the file of bus `name` (read-write when `write`), refusing anything but a regular file
/// and never following a symbolic link or blocking on a FIFO.
pub(crate) fn open_regular(name: &str, write: bool) -> Result<(File, Metadata), BusError> {
    if let Some(kind) = foreign_kind(name) {
        return Err(not_a_bus_file(name, kind));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(shm_path(name))
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => BusError::NotFound {
                name: name.to_string(),
            },
            // O_NOFOLLOW on a link that appeared after the lstat.
            Some(libc::ELOOP) => not_a_bus_file(name, "a symbolic link"),
            Some(libc::ENXIO) => not_a_bus_file(name, "a FIFO or device"),
            _ => BusError::io(name, e),
        })?;
    let meta = file.metadata().map_err(|e| BusError::io(name, e))?;
    if let Some(kind) = not_regular(meta.file_type()) {
        return Err(not_a_bus_file(name, kind));
    }
    Ok((file, meta))
}

/// Bytes free for an unprivileged writer in the shared-memory file system.
// The field types are u64 on 64-bit Linux but narrower elsewhere.
#[allow(clippy::unnecessary_cast)]
fn free_bytes() -> u64 {
    nix::sys::statvfs::statvfs(SHM_DIR)
        .map(|s| s.blocks_available() as u64 * s.fragment_size() as u64)
        .unwrap_or(0)
}

/// Makes `file` `size` bytes long with every page allocated (`posix_fallocate`), so that writing
/// to the mapping can never fault for lack of space; [`BusError::NoSpace`] says how much was
/// needed and how much was free. A file already fully allocated is left as it is.
pub(crate) fn reserve(name: &str, file: &File, size: u64) -> Result<(), BusError> {
    let meta = file.metadata().map_err(|e| BusError::io(name, e))?;
    if meta.len() >= size && meta.blocks() * 512 >= size {
        return Ok(());
    }
    let free = free_bytes();
    let len = libc::off_t::try_from(size).map_err(|_| BusError::BadConfig {
        what: format!("a region of {size} bytes is too large for this system"),
    })?;
    // SAFETY: the descriptor is open and owned by `file` for the duration of the call.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    match rc {
        0 => Ok(()),
        libc::ENOSPC | libc::EFBIG => Err(BusError::NoSpace {
            name: name.to_string(),
            needed: size,
            free,
            dir: SHM_DIR.to_string(),
        }),
        // A file system without fallocate: size the file (sparse) as before.
        libc::EOPNOTSUPP | libc::EINVAL if meta.len() < size => {
            file.set_len(size).map_err(|e| BusError::io(name, e))
        }
        libc::EOPNOTSUPP | libc::EINVAL => Ok(()),
        e => Err(BusError::io(name, std::io::Error::from_raw_os_error(e))),
    }
}
