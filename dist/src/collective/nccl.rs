//! The collective of real runs: NCCL through cudarc's bindings, loaded at run time, so
//! this crate builds and its tests run where there is no CUDA ([`available`] says why
//! not, and nothing here panics for a missing library).
//!
//! Memory is the device's buffers as raw addresses ([`DeviceBuffers`], which the CUDA
//! backend hands over); a bucket is one NCCL group of in-place `ncclAllReduce`s (f32,
//! sum), one per segment, which NCCL fuses. Operations run on a stream of their own,
//! after the work issued so far on the compute stream given at [`Nccl::new`] (the
//! runtime's: an event recorded there, waited for here), so the backward goes on while
//! a bucket is summed; [`Collective::join`] makes the compute stream wait for them.
//!
//! [`AbortHandle`] is what the watchdog calls when a rank fails: `ncclCommAbort`, so
//! that operations waiting for a dead peer return instead of hanging.

use std::ffi::{CStr, c_void};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::result as driver;
use cudarc::driver::sys::{CUdeviceptr, CUevent, CUstream};
use cudarc::nccl::result as nccl;
use cudarc::nccl::sys::{self, ncclComm_t, ncclDataType_t, ncclRedOp_t, ncclUniqueId};

use super::{Collective, Segment};
use crate::error::{Error, Result};

/// The size of NCCL's unique id, the bytes the rendezvous hands out.
pub const ID_BYTES: usize = 128;

/// Whether NCCL can run here: `Err` says what is missing (the CUDA driver, a GPU, NCCL).
pub fn available() -> std::result::Result<(), String> {
    // SAFETY: probing loads the libraries by name and calls nothing in them.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err("no CUDA driver here (libcuda does not load)".into());
    }
    if !unsafe { sys::is_culib_present() } {
        let hint = if unsafe { libloading::Library::new("libnccl.so.2") }.is_ok() {
            ": libnccl.so.2 is installed, but cudarc loads libnccl.so — link it (ln -s …/libnccl.so.2 libnccl.so) into a directory on LD_LIBRARY_PATH"
        } else {
            " (install NCCL: the libnccl2 package, or the nvidia-nccl wheel's lib directory on LD_LIBRARY_PATH)"
        };
        return Err(format!("NCCL does not load{hint}"));
    }
    driver::init().map_err(|e| format!("the CUDA driver does not start: {e:?}"))?;
    match driver::device::get_count() {
        Ok(n) if n > 0 => Ok(()),
        _ => Err("the CUDA driver finds no GPU".into()),
    }
}

/// A fresh NCCL unique id (rank 0 makes it; the rendezvous hands it out).
pub fn unique_id() -> Result<Vec<u8>> {
    available().map_err(Error::Collective)?;
    let id = nccl::get_uniqueid().map_err(|e| failed("ncclGetUniqueId", &e))?;
    Ok(id.internal.iter().map(|c| *c as u8).collect())
}

fn failed(call: &str, e: &nccl::NcclError) -> Error {
    // SAFETY: NCCL returns a static string for every result code.
    let text = unsafe { CStr::from_ptr(sys::ncclGetErrorString(e.0)) }.to_string_lossy().into_owned();
    Error::Collective(format!("{call} failed: {text}"))
}

/// NCCL's calls that take a reduction operator NCCL created (`ncclRedOpCreatePreMulSum`,
/// the weighted sum): such an operator is a handle of NCCL's choosing — recent versions
/// (2.2x on the H200 machine) return numbers like 1,886,220,842, not the next value of
/// the enum — which cudarc's enum cannot hold, so these three are bound here with the
/// operator as an integer, from the library cudarc loaded.
struct UserOps {
    _library: libloading::Library,
    create: unsafe extern "C" fn(*mut u32, *mut c_void, ncclDataType_t, ScalarResidence, ncclComm_t) -> i32,
    all_reduce: unsafe extern "C" fn(
        *const c_void,
        *mut c_void,
        usize,
        ncclDataType_t,
        u32,
        ncclComm_t,
        sys::cudaStream_t,
    ) -> i32,
    destroy: unsafe extern "C" fn(u32, ncclComm_t) -> i32,
}

type ScalarResidence = sys::ncclScalarResidence_t;

impl UserOps {
    fn get() -> Result<&'static UserOps> {
        static OPS: OnceLock<std::result::Result<UserOps, String>> = OnceLock::new();
        OPS.get_or_init(|| {
            // SAFETY: NCCL's library (already loaded by cudarc: the same handle), and
            // symbols bound with NCCL's C signatures, the operator as its int.
            unsafe {
                let library = libloading::Library::new("libnccl.so")
                    .or_else(|_| libloading::Library::new("libnccl.so.2"))
                    .map_err(|e| format!("NCCL does not load: {e}"))?;
                let symbol = |name: &str| format!("NCCL has no {name}");
                let create =
                    *library.get(b"ncclRedOpCreatePreMulSum\0").map_err(|_| symbol("ncclRedOpCreatePreMulSum"))?;
                let all_reduce = *library.get(b"ncclAllReduce\0").map_err(|_| symbol("ncclAllReduce"))?;
                let destroy = *library.get(b"ncclRedOpDestroy\0").map_err(|_| symbol("ncclRedOpDestroy"))?;
                Ok(UserOps { _library: library, create, all_reduce, destroy })
            }
        })
        .as_ref()
        .map_err(|e| Error::Collective(e.clone()))
    }
}

/// An NCCL result code as an error of `call` (0, success, is none).
fn checked(call: &str, code: i32) -> Result<()> {
    if code == 0 {
        return Ok(());
    }
    let words = match code {
        1 => "unhandled CUDA error",
        2 => "system error",
        3 => "internal error",
        4 => "invalid argument",
        5 => "invalid usage",
        6 => "remote error",
        7 => "in progress",
        _ => "unknown result",
    };
    Err(Error::Collective(format!("{call} failed: {words} (code {code})")))
}

/// The device's buffers by index: each one's address and size in bytes.
pub struct DeviceBuffers {
    buffers: Vec<(CUdeviceptr, usize)>,
}

impl DeviceBuffers {
    /// # Safety
    /// Each `(address, bytes)` is a live allocation of the device the communicator
    /// uses, for as long as operations on it may run.
    pub unsafe fn new(buffers: Vec<(CUdeviceptr, usize)>) -> DeviceBuffers {
        DeviceBuffers { buffers }
    }

    /// A segment's address and f32 count, checked against its buffer.
    fn address(&self, s: &Segment) -> Result<(CUdeviceptr, usize)> {
        let (base, size) =
            *self.buffers.get(s.buffer).ok_or_else(|| Error::Collective(format!("no buffer {}", s.buffer)))?;
        if !s.offset.is_multiple_of(4) || !s.bytes.is_multiple_of(4) || s.offset + s.bytes > size {
            return Err(Error::Collective(format!("{s:?} is not f32 elements inside its buffer of {size} bytes")));
        }
        Ok((base + s.offset as CUdeviceptr, s.elements()))
    }
}

/// A communicator handle, sendable: NCCL allows its use from any thread.
#[derive(Clone, Copy)]
struct Comm(ncclComm_t);

// SAFETY: NCCL communicators are not tied to a thread; this crate serialises their
// calls per rank (`&mut self`, or the abort under its mutex).
unsafe impl Send for Comm {}

/// This rank's NCCL communicator.
pub struct Nccl {
    comm: Arc<Mutex<Option<Comm>>>,
    rank: usize,
    world: usize,
    /// Where the work the collectives follow is issued (the runtime's stream).
    compute: CUstream,
    /// Where the collectives run.
    stream: CUstream,
    /// Recorded on the compute stream before each operation, waited for on `stream`.
    issued: CUevent,
    /// Recorded on `stream` by [`Collective::join`], waited for on the compute stream.
    reduced: CUevent,
    /// One f32 on the device, what a barrier and an agreement all-reduce.
    scratch: CUdeviceptr,
}

// SAFETY: the stream is a handle CUDA allows on any thread; one rank uses its `Nccl`
// from one thread at a time (`&mut self`).
unsafe impl Send for Nccl {}

/// Aborts a communicator from another thread (the watchdog's hook).
#[derive(Clone)]
pub struct AbortHandle(Arc<Mutex<Option<Comm>>>);

impl AbortHandle {
    /// Aborts the communicator (once): its pending operations return with an error.
    pub fn abort(&self) {
        if let Some(comm) = self.0.lock().unwrap().take() {
            // SAFETY: a communicator `Nccl::new` created and no one has destroyed.
            unsafe {
                let _ = nccl::comm_abort(comm.0);
            }
        }
    }
}

impl Nccl {
    /// Joins the communicator of `world` ranks as `rank`, with rank 0's `id`; the CUDA
    /// context of this rank's GPU must be current on this thread, and `compute` the
    /// handle of a stream of it, as an integer (the runtime's; 0: the legacy default
    /// stream).
    pub fn new(id: &[u8], rank: usize, world: usize, compute: usize) -> Result<Nccl> {
        let compute = compute as CUstream;
        available().map_err(Error::Collective)?;
        let mut unique = ncclUniqueId { internal: [0; ID_BYTES] };
        if id.len() != ID_BYTES {
            return Err(Error::Collective(format!("an NCCL id has {ID_BYTES} bytes, not {}", id.len())));
        }
        unique.internal.iter_mut().zip(id).for_each(|(c, b)| *c = *b as _);
        let mut comm: ncclComm_t = std::ptr::null_mut();
        // SAFETY: a valid out pointer, world and rank checked by the launch.
        unsafe { nccl::comm_init_rank(&mut comm, world as i32, unique, rank as i32) }
            .map_err(|e| failed("ncclCommInitRank", &e))?;
        // SAFETY: a context is current (the caller's contract).
        let scratch = unsafe { driver::malloc_sync(4) }
            .map_err(|e| Error::Collective(format!("cannot allocate the barrier's scratch: {e:?}")))?;
        fn cuda(what: &'static str) -> impl Fn(driver::DriverError) -> Error {
            move |e| Error::Collective(format!("{what}: {e:?}"))
        }
        let stream = driver::stream::create(driver::stream::StreamKind::NonBlocking).map_err(cuda("a stream"))?;
        let flags = cudarc::driver::sys::CUevent_flags::CU_EVENT_DISABLE_TIMING;
        let issued = driver::event::create(flags).map_err(cuda("an event"))?;
        let reduced = driver::event::create(flags).map_err(cuda("an event"))?;
        let comm = Arc::new(Mutex::new(Some(Comm(comm))));
        Ok(Nccl { comm, rank, world, compute, stream, issued, reduced, scratch })
    }

    /// Makes this communicator's stream wait for the work issued on the compute stream
    /// so far: what the next operation reads.
    fn follow(&self) -> Result<()> {
        self.order(self.issued, self.compute, self.stream, "ordering after the compute stream")
    }

    /// Makes stream `then` wait for the work issued on stream `first` so far, through
    /// `event`.
    fn order(&self, event: CUevent, first: CUstream, then: CUstream, what: &str) -> Result<()> {
        let wait = cudarc::driver::sys::CUevent_wait_flags::CU_EVENT_WAIT_DEFAULT;
        // SAFETY: an event and streams this value created or was given.
        unsafe { driver::event::record(event, first).and_then(|()| driver::stream::wait_event(then, event, wait)) }
            .map_err(|e| Error::Collective(format!("{what} failed: {e:?}")))
    }

    pub fn abort_handle(&self) -> AbortHandle {
        AbortHandle(self.comm.clone())
    }

    fn comm(&self) -> Result<ncclComm_t> {
        self.comm
            .lock()
            .unwrap()
            .map(|c| c.0)
            .ok_or_else(|| Error::Collective("the communicator was aborted after a rank failed".into()))
    }

    fn nccl_stream(&self) -> sys::cudaStream_t {
        self.stream as sys::cudaStream_t
    }

    /// In-place f32 sums over the ranks of `count` floats at each address, in one group.
    fn sum_in_place(&self, addresses: &[(CUdeviceptr, usize)]) -> Result<()> {
        self.follow()?;
        let stream = self.nccl_stream();
        self.grouped(
            |comm, address, count| {
                let p = address as *mut c_void;
                // SAFETY: in-place on device memory the caller vouches for (the buffers'
                // contract, or this communicator's own scratch float).
                unsafe {
                    nccl::all_reduce(p, p, count, ncclDataType_t::ncclFloat32, ncclRedOp_t::ncclSum, comm, stream)
                }
                .map(|_| ())
                .map_err(|e| failed("ncclAllReduce", &e))
            },
            addresses,
        )
    }

    /// Runs `each` for every segment inside one NCCL group.
    fn grouped(
        &self,
        each: impl Fn(ncclComm_t, CUdeviceptr, usize) -> Result<()>,
        addresses: &[(CUdeviceptr, usize)],
    ) -> Result<()> {
        let comm = self.comm()?;
        nccl::group_start().map_err(|e| failed("ncclGroupStart", &e))?;
        let outcome = addresses.iter().try_for_each(|&(address, count)| each(comm, address, count));
        let ended = nccl::group_end().map_err(|e| failed("ncclGroupEnd", &e));
        outcome.and(ended.map(|_| ()))
    }
}

impl Collective for Nccl {
    type Memory = DeviceBuffers;

    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.world
    }

    fn all_reduce_sum(&mut self, memory: &mut DeviceBuffers, bucket: &[Segment]) -> Result<()> {
        let addresses = bucket.iter().map(|s| memory.address(s)).collect::<Result<Vec<_>>>()?;
        self.sum_in_place(&addresses)
    }

    fn all_reduce_weighted_sum(&mut self, memory: &mut DeviceBuffers, bucket: &[Segment], weight: f32) -> Result<()> {
        let addresses = bucket.iter().map(|s| memory.address(s)).collect::<Result<Vec<_>>>()?;
        let (comm, ops) = (self.comm()?, UserOps::get()?);
        self.follow()?;
        let (mut op, mut scalar) = (u32::MAX, weight);
        let residence = ScalarResidence::ncclScalarHostImmediate;
        // SAFETY: an out pointer, and a host scalar NCCL reads during the call
        // (immediate residence), on this communicator.
        let code = unsafe {
            (ops.create)(&mut op, (&mut scalar as *mut f32).cast(), ncclDataType_t::ncclFloat32, residence, comm)
        };
        checked("ncclRedOpCreatePreMulSum", code)?;
        let stream = self.nccl_stream();
        let outcome = self.grouped(
            |comm, address, count| {
                let p = address as *mut c_void;
                // SAFETY: as for the plain sum, with the operator just created.
                let code = unsafe { (ops.all_reduce)(p, p, count, ncclDataType_t::ncclFloat32, op, comm, stream) };
                checked("ncclAllReduce", code)
            },
            &addresses,
        );
        // SAFETY: the operator of this communicator; the calls using it have been issued
        // (NCCL allows destroying it then).
        let destroyed = checked("ncclRedOpDestroy", unsafe { (ops.destroy)(op, comm) });
        outcome.and(destroyed)
    }

    fn broadcast(&mut self, memory: &mut DeviceBuffers, segments: &[Segment], root: usize) -> Result<()> {
        let addresses = segments.iter().map(|s| memory.address(s)).collect::<Result<Vec<_>>>()?;
        self.follow()?;
        let stream = self.nccl_stream();
        self.grouped(
            |comm, address, count| {
                let p = address as *mut c_void;
                // SAFETY: as for the all-reduce.
                unsafe { nccl::broadcast(p, p, count, ncclDataType_t::ncclFloat32, root as i32, comm, stream) }
                    .map(|_| ())
                    .map_err(|e| failed("ncclBroadcast", &e))
            },
            &addresses,
        )?;
        self.join()
    }

    fn join(&mut self) -> Result<()> {
        self.order(self.reduced, self.stream, self.compute, "ordering the compute stream after the sums")
    }

    fn any(&mut self, flag: bool) -> Result<bool> {
        let value = [f32::from(u8::from(flag))];
        // SAFETY: this communicator's own float; nothing else uses it.
        unsafe { driver::memcpy_htod_sync(self.scratch, &value) }
            .map_err(|e| Error::Collective(format!("writing the agreement's flag failed: {e:?}")))?;
        self.barrier()?;
        let mut sum = [0f32];
        // SAFETY: as above; the barrier waited for the sum.
        unsafe { driver::memcpy_dtoh_sync(&mut sum, self.scratch) }
            .map_err(|e| Error::Collective(format!("reading the agreement failed: {e:?}")))?;
        Ok(sum[0] > 0.0)
    }

    fn barrier(&mut self) -> Result<()> {
        self.sum_in_place(&[(self.scratch, 1)])?;
        // SAFETY: the stream this value created.
        unsafe { driver::stream::synchronize(self.stream) }
            .map_err(|e| Error::Collective(format!("waiting for the barrier failed: {e:?}")))
    }
}

impl Drop for Nccl {
    fn drop(&mut self) {
        // SAFETY: handles this value created; an aborted communicator is already gone.
        unsafe {
            if let Some(comm) = self.comm.lock().unwrap().take() {
                let _ = nccl::comm_destroy(comm.0);
            }
            let _ = driver::stream::synchronize(self.stream);
            let _ = driver::event::destroy(self.issued);
            let _ = driver::event::destroy(self.reduced);
            let _ = driver::stream::destroy(self.stream);
            let _ = driver::free_sync(self.scratch);
        }
    }
}
