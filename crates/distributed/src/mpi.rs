//! The MPI backend (feature `mpi`): rsmpi over the system's MPI.

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives, Root};

use crate::comm::{check_blocks, CommFloat, Communicator};
use crate::error::Result;

/// The processes of an MPI job (`MPI_COMM_WORLD`), started by `mpirun`.
/// MPI is initialised by [`MpiComm::init`] and finalised when this is
/// dropped; a process initialises it once.
pub struct MpiComm {
    world: SimpleCommunicator,
    _universe: Universe,
}

impl MpiComm {
    /// Initialises MPI and joins the job's world.
    ///
    /// # Errors
    /// [`crate::Error::Buffer`] naming `MPI_Init` when MPI was initialised
    /// already in this process.
    pub fn init() -> Result<Self> {
        let universe = mpi::initialize().ok_or_else(|| crate::Error::Buffer {
            op: "MPI_Init",
            msg: "MPI is already initialised in this process".into(),
        })?;
        Ok(MpiComm {
            world: universe.world(),
            _universe: universe,
        })
    }
}

impl Communicator for MpiComm {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn all_reduce_sum<E: CommFloat>(&self, buf: &mut [E]) -> Result<()> {
        let send = buf.to_vec();
        self.world
            .all_reduce_into(&send[..], buf, SystemOperation::sum());
        Ok(())
    }

    fn broadcast<E: CommFloat>(&self, buf: &mut [E], root: usize) -> Result<()> {
        self.world.process_at_rank(root as i32).broadcast_into(buf);
        Ok(())
    }

    fn reduce_scatter_sum<E: CommFloat>(&self, send: &[E], recv: &mut [E]) -> Result<()> {
        check_blocks("reduce_scatter", send.len(), recv.len(), self.size())?;
        self.world
            .reduce_scatter_block_into(send, recv, SystemOperation::sum());
        Ok(())
    }

    fn all_gather<E: CommFloat>(&self, send: &[E], recv: &mut [E]) -> Result<()> {
        check_blocks("all_gather", recv.len(), send.len(), self.size())?;
        self.world.all_gather_into(send, recv);
        Ok(())
    }

    fn abort(&self, why: &str) {
        eprintln!("rank {}: {why}; aborting the MPI job", self.rank());
        self.world.abort(1)
    }
}
