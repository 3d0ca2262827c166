//! [`Collective`] over MPI (Open MPI, through the `mpi` crate), for `mpirun -np N gpucnn ...`.

use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};

use super::Collective;

/// An MPI world: every process `mpirun` started, and those of this machine.
pub struct Mpi {
    world: SimpleCommunicator,
    local: SimpleCommunicator,
    /// Finalizes MPI when dropped (after every collective).
    _universe: Universe,
}

/// Whether this process was started by an MPI launcher (`mpirun`, `mpiexec`, `srun`): the
/// environment variables they set. A plain `gpucnn train` does not touch MPI at all.
pub fn launched_by_mpi() -> bool {
    [
        "OMPI_COMM_WORLD_SIZE",
        "PMI_SIZE",
        "PMIX_RANK",
        "MPI_LOCALNRANKS",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some())
}

impl Mpi {
    /// Initializes MPI when this process was started by an MPI launcher; `None` otherwise
    /// (or when MPI was initialized already).
    pub fn init() -> Option<Self> {
        if !launched_by_mpi() {
            return None;
        }
        let universe = mpi::initialize()?;
        let world = universe.world();
        let local = world.split_shared(world.rank());
        Some(Self {
            world,
            local,
            _universe: universe,
        })
    }
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }
    fn size(&self) -> usize {
        self.world.size() as usize
    }
    fn local_rank(&self) -> usize {
        self.local.rank() as usize
    }
    fn local_size(&self) -> usize {
        self.local.size() as usize
    }
    fn sum_f32(&self, x: &mut [f32]) {
        let send = x.to_vec();
        self.world
            .all_reduce_into(&send[..], x, SystemOperation::sum());
    }
    fn sum_f64(&self, x: &mut [f64]) {
        let send = x.to_vec();
        self.world
            .all_reduce_into(&send[..], x, SystemOperation::sum());
    }
    fn gather_u64(&self, x: u64) -> Vec<u64> {
        let mut all = vec![0u64; self.size()];
        self.world.all_gather_into(&x, &mut all[..]);
        all
    }
    fn broadcast(&self, root: usize, bytes: &mut Vec<u8>) {
        let root = self.world.process_at_rank(root as i32);
        let mut len = bytes.len() as u64;
        root.broadcast_into(&mut len);
        bytes.resize(len as usize, 0);
        if len > 0 {
            // (MPI refuses the dangling pointer of an empty Vec.)
            root.broadcast_into(&mut bytes[..]);
        }
    }
    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}
