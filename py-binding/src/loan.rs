//! `EventEngine.loan(nbytes)`: a writable `event_engine.Loan` over a slab block of the bus,
//! filled in place by the producer and published by `put` without a copy (`docs/delivery.md`,
//! "Loans").
//!
//! The block is laid out as a message with out-of-band buffers (docs/wire-format.md): the
//! producer's bytes start at [`LOAN_FRONT`], leaving the front of the block for the topic and
//! the call's pickle, which `put` writes there. A put whose one out-of-band buffer lies inside
//! a live loan of its engine publishes the loan's block; the loan is then spent. Its seat keeps
//! the block until the `Loan` object and every view of it are gone, so a view the producer
//! kept is never under a reused block (writing through it after the put changes what readers
//! see: the memory is theirs).

use std::sync::{Arc, Mutex, PoisonError, Weak};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::shmbuf::{loan_keeper, shared_buffer, Kind};

/// Bytes reserved at the front of a loaned block for the topic and the call's pickle.
pub(crate) const LOAN_FRONT: usize = 4096;

/// A live loan, shared by its `Loan` object (the keeper) and the engine's list of loans.
pub(crate) struct LoanCell {
    pub(crate) loan: Mutex<shm_ring::Loan>,
    /// Address and size of the whole block.
    block: (usize, usize),
}

impl LoanCell {
    /// Whether `ptr..ptr + len` lies inside the loaned bytes (after the front).
    fn contains(&self, ptr: usize, len: usize) -> bool {
        let (start, size) = self.block;
        ptr >= start + LOAN_FRONT && ptr.checked_add(len).is_some_and(|e| e <= start + size)
    }

    /// Where the block starts.
    pub(crate) fn start(&self) -> usize {
        self.block.0
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, shm_ring::Loan> {
        self.loan.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An engine's live loans, found by address when a put's buffer may be one of them.
#[derive(Default)]
pub(crate) struct Loans {
    live: Mutex<Vec<Weak<LoanCell>>>,
}

impl Loans {
    /// The live loan whose bytes hold `ptr..ptr + len`, if any.
    pub(crate) fn find(&self, ptr: usize, len: usize) -> Option<Arc<LoanCell>> {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.retain(|w| w.strong_count() > 0);
        live.iter()
            .filter_map(Weak::upgrade)
            .find(|c| c.contains(ptr, len))
    }

    /// The `Loan` object for `loan`, a block of at least `LOAN_FRONT + nbytes` bytes.
    pub(crate) fn object<'py>(
        &self,
        py: Python<'py>,
        mut loan: shm_ring::Loan,
        nbytes: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (ptr, size) = loan.as_mut_ptr();
        if size < LOAN_FRONT + nbytes {
            return Err(PyValueError::new_err(
                "a loaned block is smaller than asked for",
            ));
        }
        let cell = Arc::new(LoanCell {
            loan: Mutex::new(loan),
            block: (ptr as usize, size),
        });
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::downgrade(&cell));
        // SAFETY: `ptr + LOAN_FRONT .. + nbytes` lies in the loaned block, which the cell (the
        // keeper) keeps lent to this process, mapped, and written by nobody else until the
        // object and its views are gone.
        unsafe { shared_buffer(py, cell, ptr.add(LOAN_FRONT), nbytes, Kind::Loan) }
    }
}

/// `Loan.release()` (and leaving its `with` block): spends a loan that was not published, so
/// that no put publishes it; its block goes back to the bus once the object and every view of
/// it are gone.
#[pyfunction]
pub(crate) fn release_loan(loan: &Bound<'_, PyAny>) -> PyResult<()> {
    let keeper = loan_keeper(loan).ok_or_else(|| {
        PyValueError::new_err("release_loan() takes an event_engine.Loan made by engine.loan()")
    })?;
    if let Ok(cell) = keeper.downcast::<LoanCell>() {
        cell.lock().spend();
    }
    Ok(())
}
