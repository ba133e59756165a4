//! The NCCL engine (cudarc's bindings, `libnccl.so.2` loaded at run time): collectives in place
//! on the CUDA buffers that Burn's CUDA backend owns, on a stream of our own. The 128-byte
//! NCCL id is handed from rank 0 to the others over TCP at `MASTER_ADDR:MASTER_PORT` (the
//! torchrun convention; set them yourself under Slurm or mpirun).

use std::any::Any;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::cuda::CudaRuntime;
use cudarc::driver::{CudaContext, CudaStream};
use cudarc::nccl::{result as nccl, sys};

use super::Placement;
use crate::error::CliError;

/// How long a rank waits for rank 0 at `MASTER_ADDR:MASTER_PORT`.
const RENDEZVOUS_TIMEOUT: Duration = Duration::from_secs(300);

/// An NCCL communicator over one CUDA device per process.
pub struct Nccl {
    /// This process's rank.
    pub rank: usize,
    /// Number of processes.
    pub world_size: usize,
    comm: sys::ncclComm_t,
    stream: std::sync::Arc<CudaStream>,
}

impl Nccl {
    /// Exchanges the NCCL id and joins the communicator on CUDA device `local_rank`.
    pub fn connect(placement: &Placement) -> Result<Self, CliError> {
        let failed = |what: &str, e: &dyn std::fmt::Debug| {
            CliError::Internal(format!("distributed.backend = \"nccl\": {what}: {e:?}"))
        };
        let context = CudaContext::new(placement.local_rank)
            .map_err(|e| failed(&format!("CUDA device {}", placement.local_rank), &e))?;
        context
            .bind_to_thread()
            .map_err(|e| failed("binding the CUDA context", &e))?;
        let stream = context
            .new_stream()
            .map_err(|e| failed("creating a stream", &e))?;
        let id = rendezvous(placement)?;
        let mut comm = std::ptr::null_mut();
        // SAFETY: `comm` is a valid out-pointer; every rank passes the same id and world size.
        unsafe {
            nccl::comm_init_rank(
                &mut comm,
                placement.world_size as i32,
                id,
                placement.rank as i32,
            )
        }
        .map_err(|e| failed("ncclCommInitRank (is libnccl.so.2 on LD_LIBRARY_PATH?)", &e))?;
        Ok(Self {
            rank: placement.rank,
            world_size: placement.world_size,
            comm,
            stream,
        })
    }

    /// In-place element-wise sum over all ranks, through a device buffer in f64.
    pub fn sum_f64(&self, values: &mut [f64]) -> Result<(), CliError> {
        let mut device = self
            .stream
            .clone_htod(values)
            .map_err(|e| CliError::Internal(format!("NCCL: copying to the device: {e:?}")))?;
        {
            use cudarc::driver::DevicePtrMut;
            let (ptr, _sync) = device.device_ptr_mut(&self.stream);
            self.collective(ptr, values.len(), sys::ncclDataType_t::ncclFloat64, None)?;
        }
        self.stream
            .memcpy_dtoh(&device, values)
            .map_err(|e| CliError::Internal(format!("NCCL: copying to the host: {e:?}")))?;
        self.wait()
    }

    /// Element-wise sum of a flat CUDA tensor over all ranks.
    pub fn sum_tensor<B: Backend>(&self, tensor: Tensor<B, 1>) -> Result<Tensor<B, 1>, CliError> {
        self.in_place(tensor, None)
    }

    /// Rank 0's values of a flat CUDA tensor.
    pub fn broadcast_tensor<B: Backend>(
        &self,
        tensor: Tensor<B, 1>,
    ) -> Result<Tensor<B, 1>, CliError> {
        self.in_place(tensor, Some(0))
    }

    /// Runs the all-reduce (`root` = `None`) or broadcast on a fresh contiguous copy of
    /// `tensor`, which must live on Burn's CUDA backend.
    fn in_place<B: Backend>(
        &self,
        tensor: Tensor<B, 1>,
        root: Option<i32>,
    ) -> Result<Tensor<B, 1>, CliError> {
        let device = tensor.device();
        let dtype = match tensor.dtype() {
            burn::tensor::DType::F32 => sys::ncclDataType_t::ncclFloat32,
            burn::tensor::DType::F16 => sys::ncclDataType_t::ncclFloat16,
            burn::tensor::DType::BF16 => sys::ncclDataType_t::ncclBfloat16,
            other => {
                return Err(CliError::Internal(format!(
                    "NCCL: tensors of {other:?} are not supported"
                )));
            }
        };
        // A fresh buffer that nobody else holds (the collective writes into it).
        let primitive: Box<dyn Any> = Box::new((tensor * 1.0).into_primitive().tensor());
        let cube = primitive
            .downcast::<CubeTensor<CudaRuntime>>()
            .map_err(|_| {
                CliError::Input(
                    "distributed.backend = \"nccl\" needs --device cuda (Burn's CUDA backend)"
                        .into(),
                )
            })?;
        let cube = into_contiguous(*cube);
        let n = cube.meta.shape().num_elements();
        <B as Backend>::sync(&device)
            .map_err(|e| CliError::Internal(format!("NCCL: waiting for the device: {e:?}")))?;
        let resource = cube
            .client
            .get_resource(cube.handle.clone())
            .map_err(|e| CliError::Internal(format!("NCCL: the tensor's buffer: {e:?}")))?;
        let ptr = resource.resource().ptr;
        self.collective(ptr, n, dtype, root)?;
        self.wait()?;
        drop(resource);
        let back: Box<dyn Any> = Box::new(cube);
        let primitive = back
            .downcast::<B::FloatTensorPrimitive>()
            .expect("the primitive it was made from");
        Ok(Tensor::from_primitive(TensorPrimitive::Float(*primitive)))
    }

    /// Queues the in-place collective on `ptr` (`count` elements) on our stream.
    fn collective(
        &self,
        ptr: u64,
        count: usize,
        dtype: sys::ncclDataType_t,
        root: Option<i32>,
    ) -> Result<(), CliError> {
        let buffer = ptr as *mut std::ffi::c_void;
        let stream = self.stream.cu_stream() as sys::cudaStream_t;
        // SAFETY: `buffer` holds `count` elements of `dtype` on this rank's device and stays
        // alive (and untouched by Burn) until `wait` returns.
        let result = unsafe {
            match root {
                None => nccl::all_reduce(
                    buffer,
                    buffer,
                    count,
                    dtype,
                    sys::ncclRedOp_t::ncclSum,
                    self.comm,
                    stream,
                ),
                Some(root) => {
                    nccl::broadcast(buffer, buffer, count, dtype, root, self.comm, stream)
                }
            }
        };
        result
            .map(|_| ())
            .map_err(|e| CliError::Internal(format!("NCCL collective failed: {e:?}")))
    }

    /// Waits for our stream.
    fn wait(&self) -> Result<(), CliError> {
        self.stream
            .synchronize()
            .map_err(|e| CliError::Internal(format!("NCCL: waiting for the stream: {e:?}")))
    }
}

impl Drop for Nccl {
    fn drop(&mut self) {
        // SAFETY: the communicator was initialised and is not used after this.
        let _ = unsafe { nccl::comm_destroy(self.comm) };
    }
}

/// Rank 0 creates the NCCL id and sends it to every other rank over TCP at
/// `MASTER_ADDR:MASTER_PORT`.
fn rendezvous(placement: &Placement) -> Result<sys::ncclUniqueId, CliError> {
    let var = |name: &str| {
        std::env::var(name).map_err(|_| {
            CliError::Input(format!(
                "distributed.backend = \"nccl\" needs {name} (MASTER_ADDR and MASTER_PORT: \
                 where rank 0 hands out the NCCL id; torchrun and `epgrpo launch` set them)"
            ))
        })
    };
    let address = format!("{}:{}", var("MASTER_ADDR")?, var("MASTER_PORT")?);
    let io = |e: std::io::Error| CliError::Internal(format!("NCCL rendezvous at {address}: {e}"));
    if placement.rank == 0 {
        let id = nccl::get_uniqueid()
            .map_err(|e| CliError::Internal(format!("ncclGetUniqueId: {e:?}")))?;
        let bytes: Vec<u8> = id.internal.iter().map(|&c| c as u8).collect();
        let listener = TcpListener::bind(&address).map_err(io)?;
        for _ in 1..placement.world_size {
            let (mut peer, _) = listener.accept().map_err(io)?;
            peer.write_all(&bytes).map_err(io)?;
        }
        return Ok(id);
    }
    let start = Instant::now();
    let mut peer = loop {
        match TcpStream::connect(&address) {
            Ok(peer) => break peer,
            Err(e) if start.elapsed() > RENDEZVOUS_TIMEOUT => return Err(io(e)),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let mut id = sys::ncclUniqueId { internal: [0; 128] };
    let mut bytes = [0u8; 128];
    peer.read_exact(&mut bytes).map_err(io)?;
    for (slot, byte) in id.internal.iter_mut().zip(bytes) {
        *slot = byte as std::ffi::c_char;
    }
    Ok(id)
}
