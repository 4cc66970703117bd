//! The collectives data parallelism needs, and the in-process backend.

use std::sync::{Condvar, Mutex};

use tapir_tensor::Float;

use crate::error::{Error, Result};

/// The element types a [`Communicator`] moves: f32 and f64.
#[cfg(feature = "mpi")]
pub trait CommFloat: Float + mpi::traits::Equivalence {}
/// The element types a [`Communicator`] moves: f32 and f64.
#[cfg(not(feature = "mpi"))]
pub trait CommFloat: Float {}
impl CommFloat for f32 {}
impl CommFloat for f64 {}

/// A group of ranks (processes, or threads for [`LocalGroup`]) and the
/// collectives between them. Every rank calls the same collectives in the
/// same order with buffers of the same lengths, as in MPI.
pub trait Communicator {
    /// This rank, from 0.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// Every rank's `buf` becomes the element-wise sum over the ranks, the
    /// same bits on every rank.
    ///
    /// # Errors
    /// [`Error::PeerFailed`] (in-process backend; MPI aborts the job).
    fn all_reduce_sum<E: CommFloat>(&self, buf: &mut [E]) -> Result<()>;
    /// Every rank's `buf` becomes `root`'s.
    ///
    /// # Errors
    /// As [`Communicator::all_reduce_sum`].
    fn broadcast<E: CommFloat>(&self, buf: &mut [E], root: usize) -> Result<()>;
    /// `send` holds `size` equal blocks; rank r's `recv` becomes the sum
    /// over the ranks of their block r.
    ///
    /// # Errors
    /// [`Error::Buffer`] when `send` is not `size` blocks of `recv`'s
    /// length; otherwise as [`Communicator::all_reduce_sum`].
    fn reduce_scatter_sum<E: CommFloat>(&self, send: &[E], recv: &mut [E]) -> Result<()>;
    /// `recv` becomes every rank's `send`, in rank order.
    ///
    /// # Errors
    /// [`Error::Buffer`] when `recv` is not `size` times `send`'s length;
    /// otherwise as [`Communicator::all_reduce_sum`].
    fn all_gather<E: CommFloat>(&self, send: &[E], recv: &mut [E]) -> Result<()>;
    /// Stops the group because this rank failed with `why`: MPI aborts
    /// every process of the job (`MPI_Abort`, so none waits forever in a
    /// collective); the in-process backend makes every other rank's next
    /// or current collective return [`Error::PeerFailed`].
    fn abort(&self, why: &str);
}

pub(crate) fn check_blocks(op: &'static str, big: usize, small: usize, size: usize) -> Result<()> {
    if big == small * size {
        Ok(())
    } else {
        Err(Error::Buffer {
            op,
            msg: format!("{big} elements are not {size} blocks of {small}"),
        })
    }
}

/// `size` ranks as threads of one process, for tests and for trying data
/// parallelism without MPI. Sums run in rank order, so results are
/// deterministic.
///
/// ```
/// use tapir_distributed::{Communicator, LocalGroup};
/// let out = LocalGroup::run(2, |comm| {
///     let mut v = vec![comm.rank() as f64 + 1.0; 3];
///     comm.all_reduce_sum(&mut v)?;
///     Ok(v)
/// });
/// assert_eq!(out[0].as_ref().unwrap(), &vec![3.0; 3]);
/// ```
pub struct LocalGroup {
    size: usize,
    state: Mutex<State>,
    turn: Condvar,
}

struct State {
    /// Ranks arrived at the current barrier.
    arrived: usize,
    /// Barriers completed.
    generation: u64,
    /// Each rank's contribution to the collective under way.
    slots: Vec<Vec<f64>>,
    /// The first rank that failed.
    failed: Option<usize>,
}

/// One rank of a [`LocalGroup`].
pub struct LocalComm<'g> {
    group: &'g LocalGroup,
    rank: usize,
}

impl LocalGroup {
    /// Runs `f` on `size` threads, one per rank, and returns each rank's
    /// result. A rank that returns an error or panics stops the group: the
    /// others get [`Error::PeerFailed`] from their next collective instead
    /// of waiting for it.
    ///
    /// # Panics
    /// If `size` is 0.
    pub fn run<T: Send>(
        size: usize,
        f: impl Fn(&LocalComm<'_>) -> Result<T> + Sync,
    ) -> Vec<Result<T>> {
        assert!(size > 0, "LocalGroup: size must be positive");
        let group = LocalGroup {
            size,
            state: Mutex::new(State {
                arrived: 0,
                generation: 0,
                slots: vec![Vec::new(); size],
                failed: None,
            }),
            turn: Condvar::new(),
        };
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..size)
                .map(|rank| {
                    let (group, f) = (&group, &f);
                    s.spawn(move || {
                        let comm = LocalComm { group, rank };
                        let out =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&comm)));
                        match out {
                            Ok(Ok(v)) => Ok(v),
                            Ok(Err(e)) => {
                                comm.abort(&e.to_string());
                                Err(e)
                            }
                            Err(p) => {
                                comm.abort("panicked");
                                std::panic::resume_unwind(p)
                            }
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .enumerate()
                .map(|(rank, h)| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::PeerFailed { rank, failed: rank }))
                })
                .collect()
        })
    }
}

impl LocalComm<'_> {
    fn failed(&self, st: &State) -> Result<()> {
        match st.failed {
            Some(failed) => Err(Error::PeerFailed {
                rank: self.rank,
                failed,
            }),
            None => Ok(()),
        }
    }

    /// Waits until every rank has arrived (or one has failed).
    fn barrier<'a>(
        &self,
        mut st: std::sync::MutexGuard<'a, State>,
    ) -> Result<std::sync::MutexGuard<'a, State>> {
        self.failed(&st)?;
        let gen = st.generation;
        st.arrived += 1;
        if st.arrived == self.group.size {
            st.arrived = 0;
            st.generation += 1;
            self.group.turn.notify_all();
            return Ok(st);
        }
        loop {
            st = self.group.turn.wait(st).unwrap_or_else(|e| e.into_inner());
            // A barrier that completed counts even if a rank failed right
            // after it.
            if st.generation != gen {
                return Ok(st);
            }
            self.failed(&st)?;
        }
    }

    /// Deposits `mine`, waits for everyone's, returns them all in rank
    /// order, and waits again so that no slot is overwritten while read.
    fn exchange<E: CommFloat>(&self, mine: &[E]) -> Result<Vec<Vec<E>>> {
        let mut st = self.lock();
        self.failed(&st)?;
        st.slots[self.rank] = mine.iter().map(|v| v.to_f64()).collect();
        let st = self.barrier(st)?;
        // f64 holds f32 and f64 values exactly.
        let all = st
            .slots
            .iter()
            .map(|s| s.iter().map(|&v| E::from_f64(v)).collect())
            .collect();
        drop(self.barrier(st)?);
        Ok(all)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.group.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Communicator for LocalComm<'_> {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.group.size
    }

    fn all_reduce_sum<E: CommFloat>(&self, buf: &mut [E]) -> Result<()> {
        let all = self.exchange(buf)?;
        sum_in_rank_order(&all, 0, buf);
        Ok(())
    }

    fn broadcast<E: CommFloat>(&self, buf: &mut [E], root: usize) -> Result<()> {
        let all = self.exchange(buf)?;
        buf.copy_from_slice(&all[root]);
        Ok(())
    }

    fn reduce_scatter_sum<E: CommFloat>(&self, send: &[E], recv: &mut [E]) -> Result<()> {
        check_blocks("reduce_scatter", send.len(), recv.len(), self.size())?;
        let all = self.exchange(send)?;
        sum_in_rank_order(&all, self.rank * recv.len(), recv);
        Ok(())
    }

    fn all_gather<E: CommFloat>(&self, send: &[E], recv: &mut [E]) -> Result<()> {
        check_blocks("all_gather", recv.len(), send.len(), self.size())?;
        let all = self.exchange(send)?;
        for (chunk, s) in recv.chunks_mut(send.len().max(1)).zip(&all) {
            chunk.copy_from_slice(&s[..chunk.len()]);
        }
        Ok(())
    }

    fn abort(&self, _why: &str) {
        let mut st = self.lock();
        if st.failed.is_none() {
            st.failed = Some(self.rank);
        }
        self.group.turn.notify_all();
    }
}

/// `out[i]` = Σ over ranks, in rank order, of `all[rank][at + i]`.
fn sum_in_rank_order<E: CommFloat>(all: &[Vec<E>], at: usize, out: &mut [E]) {
    for (i, o) in out.iter_mut().enumerate() {
        let mut acc = all[0][at + i];
        for other in &all[1..] {
            acc += other[at + i];
        }
        *o = acc;
    }
}
