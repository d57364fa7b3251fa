//! Buffers the library allocates, the live/peak byte counters behind
//! `Gpu::memory_live` and `Gpu::memory_peak` (the benchmark's memory
//! column), and the cache that reuses them (`cache.rs`).

mod cache;

pub use cache::DEFAULT_CACHE_BYTES;
pub(crate) use cache::{take_clears, Pool, Scope};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use cache::{Clear, Returned};

use crate::error::{Error, Result};
use crate::gl::GlLock;
use crate::gpu::Gpu;

#[derive(Default)]
pub(crate) struct MemoryCounters {
    live: AtomicU64,
    peak: AtomicU64,
    /// Buffers asked of the driver (cache hits are not counted).
    created: AtomicU64,
}

impl MemoryCounters {
    fn add(&self, bytes: u64) {
        let now = self.live.fetch_add(bytes, Ordering::SeqCst) + bytes;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }
    fn sub(&self, bytes: u64) {
        self.live.fetch_sub(bytes, Ordering::SeqCst);
    }
    pub(crate) fn live(&self) -> u64 {
        self.live.load(Ordering::SeqCst)
    }
    pub(crate) fn peak(&self) -> u64 {
        self.peak.load(Ordering::SeqCst)
    }
    pub(crate) fn created(&self) -> u64 {
        self.created.load(Ordering::SeqCst)
    }
    pub(crate) fn reset_peak(&self) {
        self.peak.store(self.live(), Ordering::SeqCst);
    }
}

/// A `wgpu::Buffer` counted in its `Gpu`'s memory accounting for as long
/// as it lives; when it drops, its buffer goes back to the `Gpu`'s cache
/// (`cache.rs` says when that is safe).
pub struct GpuBuffer {
    buffer: Option<wgpu::Buffer>,
    bytes: u64,
    usage: wgpu::BufferUsages,
    counters: Arc<MemoryCounters>,
    pool: Arc<Pool>,
    /// Touched outside the library's own submits: not reused.
    escaped: AtomicBool,
}

impl GpuBuffer {
    /// The underlying wgpu buffer, to bind in the caller's own passes.
    /// Outside the library's own calls this marks the buffer as the
    /// caller's to order: it then goes back to wgpu, not to the cache.
    pub fn raw(&self) -> &wgpu::Buffer {
        if !cache::in_scope() {
            self.escaped.store(true, Ordering::Relaxed);
        }
        self.buffer.as_ref().expect("present until drop")
    }
    /// Allocated size in bytes (at least 4, a multiple of 4).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
    /// A staging buffer, to map and unmap: mapping is no use in an encoder,
    /// so this does not mark it as the caller's.
    pub(crate) fn mapped(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("present until drop")
    }
    /// Keeps this buffer out of the cache (a staging buffer whose map failed).
    pub(crate) fn never_reuse(&self) {
        self.escaped.store(true, Ordering::Relaxed);
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        self.counters.sub(self.bytes);
        let Some(buffer) = self.buffer.take() else {
            return;
        };
        if !self.escaped.load(Ordering::Relaxed) {
            cache::release(Returned {
                pool: self.pool.clone(),
                usage: self.usage,
                size: self.bytes,
                buffer,
            });
        } else {
            self.pool.gl().drop_in_turn(buffer);
        }
    }
}

/// What a new buffer must hold.
pub(crate) enum Init<'a> {
    /// Zeros.
    Zeroed,
    /// These bytes, then zeros.
    Data(&'a [u8]),
    /// Anything: the first kernel to use it writes every element.
    Any,
}

/// A 2-D rgba32float texture counted like [`GpuBuffer`] (16 bytes a texel);
/// the matmul's texture path packs its operands into these.
pub(crate) struct GpuTexture {
    /// `Some` until drop, which hands it to wgpu in a turn (`gl.rs`).
    texture: Option<wgpu::Texture>,
    bytes: u64,
    counters: Arc<MemoryCounters>,
    gl: GlLock,
}

impl GpuTexture {
    /// The underlying texture (a copy's destination).
    pub(crate) fn raw(&self) -> &wgpu::Texture {
        self.texture.as_ref().expect("present until drop")
    }
    /// A view of the whole texture, for a bind group.
    pub(crate) fn view(&self) -> wgpu::TextureView {
        self.raw()
            .create_view(&wgpu::TextureViewDescriptor::default())
    }
}

impl Drop for GpuTexture {
    fn drop(&mut self) {
        self.counters.sub(self.bytes);
        self.gl.drop_in_turn(self.texture.take());
    }
}

/// Usage of every storage buffer we create: bound to kernels, copied in and out.
pub(crate) const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl Gpu {
    /// Checks `bytes` against the buffer and (for storage) binding limits and
    /// names both sizes when it does not fit.
    pub fn check_size(&self, what: &'static str, bytes: u64, storage: bool) -> Result<()> {
        let max_buffer = self.max_buffer_bytes();
        if bytes > max_buffer {
            return Err(Error::TooLarge {
                what,
                bytes,
                limit: max_buffer,
                limit_name: "max_buffer_size",
            });
        }
        let max_binding = self.max_binding_bytes();
        if storage && bytes > max_binding {
            return Err(Error::TooLarge {
                what,
                bytes,
                limit: max_binding,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
        Ok(())
    }

    /// A counted buffer of `bytes` (rounded up to a multiple of 4, at least
    /// 4) holding `init`: from the cache when one of that size and usage is
    /// there, else new. Only `max_buffer_size` caps it: a storage buffer
    /// past one binding is bound in windows (`binding.rs`), and a kernel that
    /// cannot split says `TooLarge` when it binds it.
    pub(crate) fn buffer(
        &self,
        what: &'static str,
        bytes: u64,
        usage: wgpu::BufferUsages,
        init: Init<'_>,
    ) -> Result<GpuBuffer> {
        // wgpu needs sizes in multiples of 4 and rejects empty bindings.
        let size = bytes.max(4).div_ceil(4).saturating_mul(4);
        self.check_size(what, size, false)?;
        // A cache hit makes no wgpu call that would notice a lost device.
        self.lost_flag()?;
        let buffer = match self.inner.pool.take(usage, size) {
            Some(buffer) => self.refill(buffer, size, init)?,
            None => {
                let buffer = self.create(what, size, usage, init)?;
                self.inner.memory.created.fetch_add(1, Ordering::SeqCst);
                buffer
            }
        };
        self.inner.memory.add(size);
        Ok(GpuBuffer {
            buffer: Some(buffer),
            bytes: size,
            usage,
            counters: self.inner.memory.clone(),
            pool: self.inner.pool.clone(),
            escaped: AtomicBool::new(false),
        })
    }

    /// A new buffer (wgpu zero-fills it), with `init`'s bytes copied in.
    fn create(
        &self,
        what: &'static str,
        size: u64,
        usage: wgpu::BufferUsages,
        init: Init<'_>,
    ) -> Result<wgpu::Buffer> {
        let contents = match init {
            Init::Data(data) => Some(data),
            Init::Zeroed | Init::Any => None,
        };
        self.scoped("buffer allocation", || {
            let buffer = self.inner.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(what),
                size,
                usage,
                mapped_at_creation: contents.is_some(),
            });
            if let Some(data) = contents {
                let mut view = buffer
                    .slice(..)
                    .get_mapped_range_mut()
                    .map_err(|e| Error::Gpu {
                        during: "upload",
                        message: e.to_string(),
                    })?;
                view.slice(..data.len()).copy_from_slice(data);
                drop(view);
                buffer.unmap();
            }
            Ok(buffer)
        })
    }

    /// A cached buffer made to hold `init`: the bytes written in queue order
    /// (before any later submit), zeros cleared in front of the next submit.
    fn refill(&self, buffer: wgpu::Buffer, size: u64, init: Init<'_>) -> Result<wgpu::Buffer> {
        let data = match init {
            Init::Any => return Ok(buffer),
            Init::Zeroed => {
                cache::clear_before_use(Clear {
                    gpu_id: self.inner.id,
                    device: self.device().clone(),
                    queue: self.queue().clone(),
                    buffer: buffer.clone(),
                    gl: self.inner.gl,
                });
                return Ok(buffer);
            }
            Init::Data(data) => data,
        };
        // write_buffer takes whole words; the rest of the buffer reads as
        // zeros, as a new one's would.
        let padded;
        let words = if data.len() as u64 == size {
            data
        } else {
            padded = [data, &vec![0; size as usize - data.len()]].concat();
            &padded
        };
        self.write_buffer("upload", &buffer, 0, words)?;
        Ok(buffer)
    }

    /// A host-visible buffer holding `bytes` (a multiple of 4), to copy from
    /// in an encoder: staging like `write_buffer`'s own, outside the memory
    /// counters and the cache (it lives until its copies have run).
    pub(crate) fn upload_staging(&self, what: &'static str, bytes: &[u8]) -> Result<wgpu::Buffer> {
        let size = (bytes.len() as u64).max(4).div_ceil(4) * 4;
        self.check_size(what, size, false)?;
        // Not from the cache (a staging buffer's usage is its own).
        let usage = wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::MAP_WRITE;
        self.create(what, size, usage, Init::Data(bytes))
    }

    /// `queue.write_buffer` of `bytes` at `offset`, after this thread's
    /// queued clears for this device are submitted (see `cache::flush_clears`):
    /// every write into a buffer of ours goes through here.
    pub(crate) fn write_buffer(
        &self,
        during: &'static str,
        buffer: &wgpu::Buffer,
        offset: u64,
        bytes: &[u8],
    ) -> Result<()> {
        self.scoped(during, || {
            cache::flush_clears(self.inner.id);
            self.inner.queue.write_buffer(buffer, offset, bytes);
            Ok(())
        })
    }

    /// A `width × height` rgba32float texture a kernel writes (storage) and
    /// then reads (`textureLoad`); both sides must be within
    /// `max_texture_dimension_2d`.
    pub(crate) fn texture_rgba32float(
        &self,
        what: &'static str,
        width: u32,
        height: u32,
    ) -> Result<GpuTexture> {
        let max = self.limits().max_texture_dimension_2d;
        if width > max || height > max || width == 0 || height == 0 {
            return Err(Error::TooMany {
                what,
                count: width.max(height) as u128,
                limit: max as u64,
                limit_name: "max_texture_dimension_2d, in texels; sides must also be at least 1",
            });
        }
        let texture = self.scoped("texture allocation", || {
            Ok(self.inner.device.create_texture(&wgpu::TextureDescriptor {
                label: Some(what),
                size: wgpu::Extent3d {
                    width,
                    height,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::Rgba32Float,
                usage: wgpu::TextureUsages::STORAGE_BINDING
                    | wgpu::TextureUsages::TEXTURE_BINDING
                    | wgpu::TextureUsages::COPY_DST,
                view_formats: &[],
            }))
        })?;
        let bytes = width as u64 * height as u64 * 16;
        self.inner.memory.add(bytes);
        Ok(GpuTexture {
            texture: Some(texture),
            bytes,
            counters: self.inner.memory.clone(),
            gl: self.inner.gl,
        })
    }

    /// A storage buffer holding `data`.
    pub(crate) fn storage_from<T: bytemuck::Pod>(
        &self,
        what: &'static str,
        data: &[T],
    ) -> Result<GpuBuffer> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        self.buffer(what, bytes.len() as u64, STORAGE, Init::Data(bytes))
    }

    /// A storage buffer of `bytes` zeros.
    pub(crate) fn storage(&self, what: &'static str, bytes: u64) -> Result<GpuBuffer> {
        self.buffer(what, bytes, STORAGE, Init::Zeroed)
    }

    /// A storage buffer of `bytes` zeros that work any thread submits later
    /// sees zeroed: a recycled buffer's clear is submitted now, not queued
    /// in front of this thread's next submit (for a buffer kept and shared).
    pub(crate) fn storage_zeroed_now(&self, what: &'static str, bytes: u64) -> Result<GpuBuffer> {
        let buffer = self.storage(what, bytes)?;
        cache::flush_clears(self.inner.id);
        Ok(buffer)
    }

    /// A storage buffer of `bytes` the first kernel to use it writes in
    /// full: a cached one is not cleared first.
    pub(crate) fn storage_uninit(&self, what: &'static str, bytes: u64) -> Result<GpuBuffer> {
        self.buffer(what, bytes, STORAGE, Init::Any)
    }

    /// The normal fill's log2 table (see `cpu::uniform_init::log2_table`), a
    /// uniform buffer made on first use and kept for the device's life: a
    /// constant of the kernel, not a tensor, so outside the memory counters.
    pub(crate) fn log2_table(&self) -> Result<&wgpu::Buffer> {
        let slot = &self.inner.log2_table;
        if let Some(table) = slot.get() {
            return Ok(table);
        }
        // Held to the end: a table another thread made first drops here.
        let _turn = self.gl_turn();
        let words = crate::cpu::uniform_init::log2_table_words();
        let bytes: &[u8] = bytemuck::cast_slice(&words);
        let usage = wgpu::BufferUsages::UNIFORM;
        let table = self.create("log2 table", bytes.len() as u64, usage, Init::Data(bytes))?;
        Ok(slot.get_or_init(|| table))
    }

    /// A small uniform buffer holding a kernel's parameters.
    pub(crate) fn uniform<T: bytemuck::Pod>(
        &self,
        what: &'static str,
        params: &T,
    ) -> Result<GpuBuffer> {
        self.buffer(
            what,
            std::mem::size_of::<T>() as u64,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            Init::Data(bytemuck::bytes_of(params)),
        )
    }
}
