//! What wgpu's GL backend needs of us: one thread at a time, and waits
//! longer than one poll.
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
//! caller's encoder. (A call that fails partway records nothing: its
//! recorder drops the commands it held, in a turn.)
//!
//! A wait on GL is also capped: wgpu-hal waits at most i32::MAX ns (2.1 s)
//! per poll, whatever the timeout asked, and then reports a timeout, so
//! [`poll_until`] polls again until the caller's own deadline.

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

    /// Drops `value` in a turn: the drop of a wgpu handle's last copy is a
    /// wgpu call.
    pub(crate) fn drop_in_turn<T>(self, value: T) {
        let _turn = self.turn();
        drop(value);
    }
}

/// Calls `poll` with the time left until it stops timing out or `limit` has
/// passed. wgpu's GL backend waits at most i32::MAX ns (2.1 s) per poll,
/// whatever the timeout asked, and then reports a timeout: one poll is not
/// the whole wait.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn poll_until<T>(
    limit: std::time::Duration,
    mut poll: impl FnMut(std::time::Duration) -> std::result::Result<T, wgpu::PollError>,
) -> std::result::Result<T, wgpu::PollError> {
    // A limit past what an Instant holds (`Duration::MAX`, "no limit") has
    // no deadline: each poll is given the whole limit.
    let deadline = std::time::Instant::now().checked_add(limit);
    loop {
        let left = deadline.map_or(limit, |d| {
            d.saturating_duration_since(std::time::Instant::now())
        });
        match poll(left) {
            Err(wgpu::PollError::Timeout) if !left.is_zero() => continue,
            done => return done,
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::poll_until;
    use std::time::Duration;
    use wgpu::PollError;

    #[test]
    fn a_poll_that_times_out_early_is_retried_until_done() {
        let mut polls = 0;
        let out = poll_until(Duration::from_secs(60), |left| {
            polls += 1;
            assert!(
                left > Duration::from_secs(50),
                "{left:?} left on poll {polls}"
            );
            if polls < 3 {
                Err(PollError::Timeout)
            } else {
                Ok(polls)
            }
        });
        assert!(matches!(out, Ok(3)), "{out:?}");
    }

    #[test]
    fn a_limit_past_any_instant_waits_without_a_deadline() {
        let mut polls = 0;
        let out = poll_until(Duration::MAX, |left| {
            polls += 1;
            assert_eq!(left, Duration::MAX);
            if polls < 2 {
                Err(PollError::Timeout)
            } else {
                Ok(polls)
            }
        });
        assert!(matches!(out, Ok(2)), "{out:?}");
    }

    #[test]
    fn the_deadline_ends_the_retries_with_a_timeout() {
        let mut polls = 0;
        let start = std::time::Instant::now();
        let out: Result<(), _> = poll_until(Duration::from_millis(50), |left| {
            polls += 1;
            std::thread::sleep(left.min(Duration::from_millis(20)));
            Err(PollError::Timeout)
        });
        assert!(matches!(out, Err(PollError::Timeout)), "{out:?}");
        assert!(start.elapsed() >= Duration::from_millis(50));
        // 20 + 20 + 10 ms, then one poll with nothing left (fewer if a sleep overran).
        assert!((2..=4).contains(&polls), "{polls} polls");
    }

    #[test]
    fn other_errors_end_the_wait_at_once() {
        let mut polls = 0;
        let out: Result<(), _> = poll_until(Duration::from_secs(60), |_| {
            polls += 1;
            Err(PollError::WrongSubmissionIndex(1, 0))
        });
        assert!(matches!(out, Err(PollError::WrongSubmissionIndex(..))));
        assert_eq!(polls, 1);
    }
}
