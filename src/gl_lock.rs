//! One thread at a time in wgpu on GL.
//!
//! wgpu's GL backend keeps one GL context per adapter behind a lock, shared
//! by every device opened on that adapter, and a thread that waits 6 s for
//! it panics ("Could not lock adapter context. This is most-likely a
//! deadlock."). Mesa's llvmpipe compiles a pipeline inside its creation and
//! runs a dispatch inside the submit, both under that lock, so one thread's
//! long call used to make another thread's next wgpu call panic, even a
//! buffer's drop.
//!
//! So on GL the library's wgpu calls (creating, writing, submitting,
//! waiting, mapping, and dropping what it owns) first take a turn at this
//! lock, which waits as long as it takes. It is one lock for every GL `Gpu`
//! in the process, because two `Gpu`s can share an adapter's context
//! (`Gpu::from_adapter` twice, or `from_wgpu` on clones of one device);
//! there is normally one GL adapter, so this costs no parallelism. Reentrant,
//! because the library's calls nest (a caller's turn around library calls,
//! `scoped` checking the device inside its turn). The other backends have no
//! such lock and take no turn.
//!
//! What stays outside: the caller's own wgpu calls on a device it shares
//! with the library ([`crate::Gpu::gl_turn`] is there for them), including
//! the poll or drop that retires work the library recorded into the
//! caller's encoder; and an encoder the library drops unsubmitted when a
//! call fails partway, if it holds the last handle to a temporary (the
//! matmul's packed textures on CPU adapters).

use parking_lot::{ReentrantMutex, ReentrantMutexGuard};

static GL: ReentrantMutex<()> = parking_lot::const_reentrant_mutex(());

/// Whether a `Gpu` takes turns: on GL only.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GlLock {
    gl: bool,
}

/// A thread's turn at wgpu on GL, from [`crate::Gpu::gl_turn`]: held until
/// dropped. Empty (holding nothing) on the other backends.
#[must_use = "the turn ends when this is dropped"]
pub struct GlTurn<'a>(#[allow(dead_code)] Option<ReentrantMutexGuard<'a, ()>>);

impl GlLock {
    pub(crate) fn new(backend: wgpu::Backend) -> GlLock {
        GlLock {
            gl: backend == wgpu::Backend::Gl,
        }
    }

    /// Waits for this thread's turn (at once if it already holds one).
    pub(crate) fn turn(self) -> GlTurn<'static> {
        GlTurn(self.gl.then(|| GL.lock()))
    }

    /// Whether this thread holds a turn. It must then not wait on another
    /// thread that needs one (the `_async` waits' helper threads): that
    /// thread would wait for the turn forever.
    pub(crate) fn held_here(self) -> bool {
        self.gl && GL.is_owned_by_current_thread()
    }
}
