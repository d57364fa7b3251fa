//! The one readback path: copy into a staging buffer, map it, copy out, unmap.
//! Every `to_vec` in the crate goes through here.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::memory::{GpuBuffer, Init};

/// A staging buffer (MAP_READ) for `bytes`, from the cache when one is there.
pub(crate) fn staging_buffer(gpu: &Gpu, bytes: u64) -> Result<GpuBuffer> {
    gpu.buffer(
        "wgpu-embed readback",
        bytes,
        wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        Init::Any,
    )
}

fn staging(
    gpu: &Gpu,
    src: &wgpu::Buffer,
    offset: u64,
    bytes: u64,
) -> Result<(GpuBuffer, wgpu::SubmissionIndex)> {
    let _scope = gpu.scope();
    let staging = staging_buffer(gpu, bytes)?;
    let mut encoder = gpu.encoder("readback");
    gpu.scoped("readback copy", || {
        encoder.copy_buffer_to_buffer(src, offset, staging.raw(), 0, bytes);
        Ok(())
    })?;
    let index = gpu.submit(encoder)?;
    Ok((staging, index))
}

/// The mapped bytes as `T`s, copied once into a fallible host allocation
/// (a table past the host's memory is `OutOfHostMemory`, not an abort).
fn finish<T: bytemuck::Pod>(
    gpu: &Gpu,
    staging: &wgpu::Buffer,
    bytes: u64,
    what: &'static str,
) -> Result<Vec<T>> {
    let _turn = gpu.gl_turn();
    let view = staging
        .slice(..bytes)
        .get_mapped_range()
        .map_err(|e| Error::Readback {
            what,
            reason: e.to_string(),
        })?;
    let n = view.len() / std::mem::size_of::<T>();
    let copied = crate::tensor::host_vec(what, n).map(|mut out: Vec<T>| {
        out.resize(n, T::zeroed());
        bytemuck::cast_slice_mut::<T, u8>(&mut out)
            .copy_from_slice(&view[..n * std::mem::size_of::<T>()]);
        out
    });
    drop(view);
    staging.unmap();
    copied
}

/// Asks wgpu to map `staging`'s first `bytes` for reading (in a GL turn);
/// `done` hears how it went.
fn map_read(
    gpu: &Gpu,
    staging: &GpuBuffer,
    bytes: u64,
    done: impl FnOnce(std::result::Result<(), wgpu::BufferAsyncError>) + wgpu::WasmNotSend + 'static,
) {
    let _turn = gpu.gl_turn();
    staging
        .mapped()
        .slice(..bytes)
        .map_async(wgpu::MapMode::Read, done);
}

/// What the map callback reported (`None`: it never ran), as the readback's result.
/// A staging buffer whose map did not finish stays out of the cache (as one
/// whose async wait was cancelled does: see [`map_after_async`]).
fn mapped<T: bytemuck::Pod>(
    gpu: &Gpu,
    staging: &GpuBuffer,
    bytes: u64,
    what: &'static str,
    outcome: Option<std::result::Result<(), wgpu::BufferAsyncError>>,
) -> Result<Vec<T>> {
    let read = match outcome {
        Some(Ok(())) => finish(gpu, staging.mapped(), bytes, what),
        // A lost device aborts the map too: said as such, as the blocking
        // path (which waits first) says it.
        Some(Err(e)) => Err(gpu.check_alive().err().unwrap_or(Error::Readback {
            what,
            reason: e.to_string(),
        })),
        None => Err(gpu.check_alive().err().unwrap_or(Error::Readback {
            what,
            reason: "the map callback never ran".into(),
        })),
    };
    if read.is_err() {
        staging.never_reuse();
    }
    read
}

thread_local! {
    /// Set while [`block`] runs an async call on this thread.
    static BLOCKING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is inside [`block`]: an async wait may then block.
pub(crate) fn blocking() -> bool {
    BLOCKING.with(|b| b.get())
}

/// Runs `call` to its end on this thread, its waits too (no helper
/// thread): the caller asked to block, and nothing else runs on it meanwhile.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn block_here<F: std::future::Future>(call: F) -> F::Output {
    // Restored by a guard: a panic in `call` that the caller catches must
    // not leave this thread marked as blocking.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            BLOCKING.with(|b| b.set(self.0));
        }
    }
    let _restore = Restore(BLOCKING.with(|b| b.replace(true)));
    pollster::block_on(call)
}

/// Runs an `_async` call to completion: the blocking form of every call that
/// waits on the GPU is this around its async form. A page cannot block, so
/// there it is an error that names the async form to use.
pub(crate) fn block<T>(
    what: &'static str,
    call: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = what;
        block_here(call)
    }
    // A page runs the call as far as it goes without waiting: calls that
    // only record and submit finish; one that must wait for the GPU is an error.
    #[cfg(target_arch = "wasm32")]
    {
        let mut call = std::pin::pin!(call);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match call.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => Err(Error::Readback {
                what,
                reason: "a web page cannot wait for the GPU: use the _async form of this call"
                    .into(),
            }),
        }
    }
}

/// Reads `bytes` bytes of `src` from `offset` as `T`s, blocking until they
/// arrive, copied once from the mapped range into the result. `offset` and
/// `bytes` must be multiples of 4 (the crate's buffers always are).
pub(crate) fn read<T: bytemuck::Pod>(
    gpu: &Gpu,
    src: &wgpu::Buffer,
    offset: u64,
    bytes: u64,
    what: &'static str,
) -> Result<Vec<T>> {
    block(what, read_async(gpu, src, offset, bytes, what))
}

/// The async form of [`read`]: a helper thread drives the device until the
/// copy lands, so the caller's executor is never blocked.
pub(crate) async fn read_async<T: bytemuck::Pod>(
    gpu: &Gpu,
    src: &wgpu::Buffer,
    offset: u64,
    bytes: u64,
    what: &'static str,
) -> Result<Vec<T>> {
    if bytes == 0 {
        return Ok(Vec::new());
    }
    #[cfg(not(target_arch = "wasm32"))]
    let (staging, index) = staging(gpu, src, offset, bytes)?;
    // A page's calls run without error scopes (it cannot block on them): a
    // copy refused there would map the staging buffer's old bytes as Ok.
    #[cfg(target_arch = "wasm32")]
    let (staging, index) = gpu
        .scoped_async("readback copy", || staging(gpu, src, offset, bytes))
        .await?;
    map_after_async(gpu, &staging, bytes, what, index).await
}

/// The async form of [`map_after`]: maps `staging`, whose copy is in
/// submission `index`, and copies `bytes` out without blocking the caller.
pub(crate) async fn map_after_async<T: bytemuck::Pod>(
    gpu: &Gpu,
    staging: &GpuBuffer,
    bytes: u64,
    what: &'static str,
    index: wgpu::SubmissionIndex,
) -> Result<Vec<T>> {
    // Blocking for a caller holding a GL turn too: the helper thread below
    // would wait for it forever.
    if blocking() || gpu.gl_held_here() {
        return map_after(gpu, staging, bytes, what, index);
    }
    // A caller that drops this future mid-wait (a timeout, a page moving
    // on) leaves the map pending: the buffer must not go back to the cache,
    // where a later submit would find it mapped. Disarmed once it is read.
    let cancelled = Unmapped(staging);
    let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
    // Who settles the map first: its callback (the copy landed) or the
    // helper's failed wait below. Only the helper that wins unmaps, so a
    // late unmap never hits a buffer already read and back in the cache.
    let state = std::sync::Arc::new(std::sync::Mutex::new(MapState::Pending));
    let settled = state.clone();
    map_read(gpu, staging, bytes, move |r| {
        let mut s = settled.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*s, MapState::Pending) {
            *s = MapState::Settled;
        }
        drop(s);
        let _ = tx.send(r);
    });
    // A wait that fails (a timeout, a lost device) aborts the mapping, so
    // the callback runs and the caller gets the wait's error, not a hang.
    // In a browser the page's event loop drives the device instead (and
    // wgpu's objects there cannot cross threads).
    #[cfg(not(target_arch = "wasm32"))]
    {
        let (poller, slot, pending) = (gpu.clone(), state.clone(), staging.mapped().clone());
        std::thread::spawn(move || {
            let waited = poller.wait(index);
            // The unmap, and the drops of what may be the last handles, in a turn.
            let _turn = poller.inner.gl.turn();
            if let Err(e) = waited {
                let mut s = slot.lock().unwrap_or_else(|p| p.into_inner());
                let won = matches!(*s, MapState::Pending);
                if won {
                    *s = MapState::Failed(e);
                }
                // Unlocked first: the unmap runs the callback, which locks.
                drop(s);
                if won {
                    pending.unmap();
                }
            }
            drop((pending, poller));
        });
    }
    #[cfg(target_arch = "wasm32")]
    let _ = index;
    let outcome = rx.receive().await;
    std::mem::forget(cancelled);
    let failed = std::mem::replace(
        &mut *state.lock().unwrap_or_else(|p| p.into_inner()),
        MapState::Settled,
    );
    if let MapState::Failed(e) = failed {
        staging.never_reuse();
        return Err(e);
    }
    mapped(gpu, staging, bytes, what, outcome)
}

/// How an async map was settled: by its callback (whatever it heard), or
/// by a failed wait (whose error the caller gets).
enum MapState {
    Pending,
    Settled,
    // Natively only: a page has no helper thread whose wait can fail.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    Failed(Error),
}

/// Keeps a staging buffer out of the cache if dropped: held across the
/// await of a map, which a cancelled future leaves pending.
struct Unmapped<'a>(&'a GpuBuffer);

impl Drop for Unmapped<'_> {
    fn drop(&mut self) {
        self.0.never_reuse();
    }
}

/// Maps `staging` (MAP_READ), whose copy is in submission `index`, waits
/// for that submission and copies `bytes` out. Also how a copy that rode in
/// a call's own submit is read (`Status`).
pub(crate) fn map_after<T: bytemuck::Pod>(
    gpu: &Gpu,
    staging: &GpuBuffer,
    bytes: u64,
    what: &'static str,
    index: wgpu::SubmissionIndex,
) -> Result<Vec<T>> {
    // A page cannot block: its readbacks are the `_async` forms.
    if cfg!(target_arch = "wasm32") {
        staging.never_reuse();
        return Err(Error::Readback {
            what,
            reason: "a web page cannot wait for the GPU: use the _async form of this call".into(),
        });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    map_read(gpu, staging, bytes, move |r| {
        let _ = tx.send(r);
    });
    if let Err(e) = gpu.wait(index) {
        staging.never_reuse();
        return Err(e);
    }
    mapped(gpu, staging, bytes, what, rx.recv().ok())
}
