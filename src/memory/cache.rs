//! The caching allocator: buffers of dropped tensors and temporaries go back
//! to a per-`Gpu` pool and the next allocation of the same size and usage
//! takes one from there, as PyTorch's caching allocator does, instead of
//! asking the driver for a fresh buffer (and wgpu for its zero-fill) on
//! every call.
//!
//! Reuse is safe only once every command that used the old buffer is
//! ordered before every use of the new one. The queue orders submissions,
//! so a buffer whose uses were all *submitted* can go back at once; what
//! the pool cannot see is an encoder that is still open — the caller's,
//! handed to an `encode_*` call or holding a `Tensor::buffer()` of theirs.
//! Two rules keep that out:
//!
//! - Work the library records into an encoder it submits itself runs under
//!   a [`Scope`] (per thread). A buffer dropped inside a scope is held back
//!   until the scope ends, which is after its submit.
//! - Touching a buffer's `wgpu::Buffer` outside any scope (the caller's
//!   encoder, the caller's own passes) marks it *escaped*: when it drops it
//!   goes to wgpu, which frees it once nothing uses it, never to the pool.
//!
//! A missing scope can therefore only cost a reuse, never a wrong result.
//!
//! Sizes are matched exactly (after rounding to 4 bytes): kernels bind
//! whole buffers and some read `arrayLength`, so a larger buffer from a
//! rounder size class would change what they see. A loop's shapes repeat,
//! so exact matching is what it needs.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::gl::GlLock;

/// Default cap of a `Gpu`'s cache, in bytes ([`crate::GpuOptions::cache_bytes`]).
pub const DEFAULT_CACHE_BYTES: u64 = 1 << 30;

type Key = (u32, u64);

/// Buffers waiting for reuse, keyed by (usage bits, size).
pub(crate) struct Pool {
    free: Mutex<Free>,
    cached: AtomicU64,
    cap: u64,
    /// Whether its `Gpu` takes turns at wgpu (GL): dropping a buffer is a wgpu call.
    gl: GlLock,
}

#[derive(Default)]
struct Free {
    /// Oldest first; a size with none left has no entry (so the eviction's
    /// scan is over what the cache holds, not every size it ever saw).
    buffers: HashMap<Key, VecDeque<(u64, wgpu::Buffer)>>,
    tick: u64,
}

impl Pool {
    pub(crate) fn new(cap: u64, gl: GlLock) -> Pool {
        Pool {
            free: Mutex::new(Free::default()),
            cached: AtomicU64::new(0),
            cap,
            gl,
        }
    }

    pub(crate) fn gl(&self) -> GlLock {
        self.gl
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Free> {
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes held for reuse.
    pub(crate) fn cached(&self) -> u64 {
        self.cached.load(Ordering::SeqCst)
    }

    /// A cached buffer of exactly `size` bytes and `usage`, if there is one.
    pub(crate) fn take(&self, usage: wgpu::BufferUsages, size: u64) -> Option<wgpu::Buffer> {
        let mut free = self.lock();
        let key = (usage.bits(), size);
        let list = free.buffers.get_mut(&key)?;
        // The most recently returned first: the likeliest to be in cache.
        let (_, buffer) = list.pop_back()?;
        if list.is_empty() {
            free.buffers.remove(&key);
        }
        self.cached.fetch_sub(size, Ordering::SeqCst);
        Some(buffer)
    }

    /// Keeps `buffer` for reuse, first dropping the oldest cached buffers
    /// while the cache would pass its cap; one larger than the cap is dropped.
    pub(crate) fn give(&self, usage: wgpu::BufferUsages, size: u64, buffer: wgpu::Buffer) {
        if size > self.cap {
            return self.gl.drop_in_turn(buffer);
        }
        // The turn before the pool's own lock, always in that order.
        let _turn = self.gl.turn();
        let mut free = self.lock();
        while self.cached() + size > self.cap {
            let oldest = free
                .buffers
                .iter()
                .filter_map(|(key, list)| list.front().map(|(tick, _)| (*tick, *key)))
                .min();
            let Some((_, key)) = oldest else { break };
            if let Some(list) = free.buffers.get_mut(&key) {
                list.pop_front();
                if list.is_empty() {
                    free.buffers.remove(&key);
                }
                self.cached.fetch_sub(key.1, Ordering::SeqCst);
            }
        }
        free.tick += 1;
        let tick = free.tick;
        free.buffers
            .entry((usage.bits(), size))
            .or_default()
            .push_back((tick, buffer));
        self.cached.fetch_add(size, Ordering::SeqCst);
    }

    /// Drops every cached buffer (wgpu frees each once nothing uses it).
    pub(crate) fn clear(&self) {
        let _turn = self.gl.turn();
        let mut free = self.lock();
        free.buffers.clear();
        self.cached.store(0, Ordering::SeqCst);
    }
}

impl Drop for Pool {
    /// The cached buffers go back to wgpu in a turn (`gl.rs`).
    fn drop(&mut self) {
        let _turn = self.gl.turn();
        self.lock().buffers.clear();
    }
}

/// A buffer on its way back to a pool.
pub(crate) struct Returned {
    pub pool: Arc<Pool>,
    pub usage: wgpu::BufferUsages,
    pub size: u64,
    pub buffer: wgpu::Buffer,
}

impl Returned {
    fn give(self) {
        self.pool.give(self.usage, self.size, self.buffer);
    }
}

#[derive(Default)]
struct ScopeState {
    depth: u32,
    /// Buffers dropped inside the scope: they go back when it ends.
    held: Vec<Returned>,
    /// Reused buffers that must read as zeros: cleared in front of their
    /// `Gpu`'s next submit (or when the scope ends).
    clears: Vec<Clear>,
}

thread_local! {
    static SCOPE: RefCell<ScopeState> = RefCell::new(ScopeState::default());
}

/// Whether this thread is recording work the library submits itself.
pub(crate) fn in_scope() -> bool {
    // `try_with`: a tensor kept in another thread-local may be touched or
    // dropped after this one is gone, at thread exit; `with` would abort.
    SCOPE.try_with(|s| s.borrow().depth > 0).unwrap_or(false)
}

/// Hands `returned` to its pool now, or when this thread's scope ends.
pub(crate) fn release(returned: Returned) {
    let mut returned = Some(returned);
    // At thread exit (the state already gone) it goes straight back.
    let _ = SCOPE.try_with(|s| {
        let mut s = s.borrow_mut();
        if s.depth > 0 {
            s.held.extend(returned.take());
        }
    });
    if let Some(r) = returned {
        r.give();
    }
}

/// A reused buffer that must read as zeros before its next use.
pub(crate) struct Clear {
    pub gpu_id: u64,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub buffer: wgpu::Buffer,
    /// Whether the clear's submit takes a turn (GL).
    pub gl: GlLock,
}

impl Clear {
    /// Clears at once, in a submit of its own (queue order puts it before
    /// any work that is submitted later).
    pub(crate) fn submit_now(clears: Vec<Clear>) {
        let Some(first) = clears.first() else { return };
        let _turn = first.gl.turn();
        let mut encoder = first
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("cache clears"),
            });
        for c in &clears {
            encoder.clear_buffer(&c.buffer, 0, None);
        }
        first.queue.submit([encoder.finish()]);
        drop(clears);
    }
}

/// Queues `clear` in front of its `Gpu`'s next submit; outside a scope,
/// where there is no submit of ours to ride in, clears at once.
pub(crate) fn clear_before_use(clear: Clear) {
    let now = SCOPE.with(|s| {
        let mut s = s.borrow_mut();
        if s.depth == 0 {
            return Some(clear);
        }
        s.clears.push(clear);
        None
    });
    if let Some(c) = now {
        Clear::submit_now(vec![c]);
    }
}

/// Submits this thread's queued clears for `gpu_id` now: before a
/// `write_buffer`, which wgpu runs ahead of every command buffer of the
/// next submit, so a clear riding in that submit would wipe the write.
pub(crate) fn flush_clears(gpu_id: u64) {
    Clear::submit_now(take_mine(gpu_id));
}

/// The clears queued for `gpu_id`, taken (to record in front of its submit).
pub(crate) fn take_clears(gpu_id: u64) -> Vec<wgpu::Buffer> {
    take_mine(gpu_id).into_iter().map(|c| c.buffer).collect()
}

/// This thread's queued clears for `gpu_id`, taken; the others stay queued.
fn take_mine(gpu_id: u64) -> Vec<Clear> {
    SCOPE.with(|s| {
        let mut s = s.borrow_mut();
        let (mine, others): (Vec<Clear>, Vec<Clear>) = std::mem::take(&mut s.clears)
            .into_iter()
            .partition(|c| c.gpu_id == gpu_id);
        s.clears = others;
        mine
    })
}

/// Library-recorded work on this thread: see the module comment. Made by
/// `Gpu::scope`; scopes nest, and the outermost one's end (after its
/// submit) returns what was dropped inside to the pools. Not `Send`: it
/// belongs to the thread whose state it counts.
pub(crate) struct Scope {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Scope {
    pub(crate) fn enter() -> Scope {
        SCOPE.with(|s| s.borrow_mut().depth += 1);
        Scope {
            _not_send: std::marker::PhantomData,
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let (held, clears) = SCOPE.with(|s| {
            let mut s = s.borrow_mut();
            s.depth -= 1;
            if s.depth > 0 {
                return (Vec::new(), Vec::new());
            }
            (std::mem::take(&mut s.held), std::mem::take(&mut s.clears))
        });
        // Clears nobody submitted (a call that allocated zeros and then
        // recorded nothing), per device.
        let mut clears = clears;
        while let Some(first) = clears.first() {
            let id = first.gpu_id;
            let (mine, rest) = clears.into_iter().partition(|c| c.gpu_id == id);
            Clear::submit_now(mine);
            clears = rest;
        }
        for r in held {
            r.give();
        }
    }
}
