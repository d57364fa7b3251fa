//! One thread at a time in wgpu on a GL adapter.
//!
//! wgpu's GL backend keeps one GL context per adapter behind a lock, and a
//! thread that waits 6 s for it panics ("Could not lock adapter context.
//! This is most-likely a deadlock."). Mesa's llvmpipe compiles a pipeline
//! inside its creation and runs a dispatch inside the submit, both under
//! that lock, so one thread's long call used to make another thread's next
//! wgpu call panic, even a buffer's drop.
//!
//! So on GL every wgpu call the library makes (creating, writing, submitting,
//! waiting, mapping, dropping) first takes this lock, which waits as long as
//! it takes; the context lock behind it is then free whenever the holder
//! asks. Reentrant, because the library's calls nest (a readback submits
//! inside its own call). The other backends have no such lock and get none.
//!
//! The caller's own wgpu calls on a GL device they share with the library
//! ([`crate::Gpu::from_wgpu`]) are outside it: see [`crate::Gpu::gl_turn`].

use parking_lot::{ReentrantMutex, ReentrantMutexGuard};

/// The lock, or nothing off GL.
pub(crate) struct GlLock(Option<ReentrantMutex<()>>);

/// This thread's turn at a GL `Gpu`'s wgpu calls, from [`crate::Gpu::gl_turn`]:
/// held until dropped. Empty (holding nothing) on the other backends.
#[must_use = "the turn ends when this is dropped"]
pub struct GlTurn<'a>(#[allow(dead_code)] Option<ReentrantMutexGuard<'a, ()>>);

impl GlLock {
    pub(crate) fn new(backend: wgpu::Backend) -> GlLock {
        GlLock((backend == wgpu::Backend::Gl).then(|| ReentrantMutex::new(())))
    }

    /// Waits for this thread's turn (at once if it already holds one).
    pub(crate) fn turn(&self) -> GlTurn<'_> {
        GlTurn(self.0.as_ref().map(|m| m.lock()))
    }
}
