//! The tile shapes of `matmul`: which register tile an invocation computes,
//! the workgroup around it, and the shape each kind of adapter gets.

use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// The register tile of one invocation: which entry point runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterTile {
    /// 8 × 8 outputs (`matmul_8x8`): GPUs, where 64 accumulators fit in registers.
    R8x8,
    /// 16 × 16 outputs (`matmul_16x16`): CPU rasterizers, where reads of
    /// workgroup memory cost far more than spilled accumulators.
    R16x16,
    /// 32 × 32 outputs (`matmul_texture`, after `matmul_pack_a/b`): CPU
    /// rasterizers, where a texel fetch is a vectorised gather and a storage
    /// or workgroup read a loop over the SIMD lanes. No workgroup memory; `bk`
    /// is unused.
    Texture32x32,
}

impl RegisterTile {
    /// Outputs per invocation along each axis.
    pub fn side(self) -> u32 {
        match self {
            RegisterTile::R8x8 => 8,
            RegisterTile::R16x16 => 16,
            RegisterTile::Texture32x32 => super::texture::SIDE,
        }
    }
}

/// Workgroup shape, register tile and K-slab depth. A workgroup computes a
/// `r·wg_y × r·wg_x` block of C (r the register tile's side) and holds
/// `(r·wg_y + r·wg_x) · bk` floats of workgroup memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiles {
    /// Invocations per workgroup along x, which walks the columns of C (N).
    pub wg_x: u32,
    /// Invocations per workgroup along y, which walks the rows of C (M).
    pub wg_y: u32,
    /// K-slab depth: elements of K each workgroup-memory slab holds per
    /// step (at least 1; unused by the texture path's product).
    pub bk: u32,
    /// The outputs each invocation computes, and so the entry point.
    pub register: RegisterTile,
}

impl Tiles {
    /// Rows of C per workgroup (u64: a caller's tile sizes may be anything).
    pub fn block_m(&self) -> u64 {
        self.wg_y as u64 * self.register.side() as u64
    }
    /// Columns of C per workgroup.
    pub fn block_n(&self) -> u64 {
        self.wg_x as u64 * self.register.side() as u64
    }
    /// Bytes of workgroup memory the two slabs take (none on the texture
    /// path), in u64 so that huge tiles cannot wrap past the check that
    /// guards a shader built without bounds checks.
    pub fn workgroup_bytes(&self) -> u64 {
        if self.register == RegisterTile::Texture32x32 {
            return 0;
        }
        (self.block_m() + self.block_n())
            .saturating_mul(self.bk as u64)
            .saturating_mul(4)
    }

    pub(super) fn check(&self, gpu: &Gpu) -> Result<()> {
        let l = gpu.limits();
        let invocations = self.wg_x as u64 * self.wg_y as u64;
        let bad = |reason: String| Error::InvalidArgument {
            name: "matmul tiles",
            reason,
        };
        if self.wg_x == 0 || self.wg_y == 0 || self.bk == 0 {
            return Err(bad(format!(
                "every tile dimension must be at least 1, got {self:?}"
            )));
        }
        if invocations > l.max_compute_invocations_per_workgroup as u64
            || self.wg_x > l.max_compute_workgroup_size_x
            || self.wg_y > l.max_compute_workgroup_size_y
        {
            return Err(bad(format!(
                "{self:?} is {} × {} invocations, past the adapter's workgroup limits ({} in all, {} × {})",
                self.wg_x,
                self.wg_y,
                l.max_compute_invocations_per_workgroup,
                l.max_compute_workgroup_size_x,
                l.max_compute_workgroup_size_y
            )));
        }
        if self.workgroup_bytes() > l.max_compute_workgroup_storage_size as u64 {
            return Err(bad(format!(
                "{self:?} needs {} bytes of workgroup memory, past the adapter's {} (max_compute_workgroup_storage_size)",
                self.workgroup_bytes(),
                l.max_compute_workgroup_storage_size
            )));
        }
        Ok(())
    }
}

/// Whether this adapter is a CPU rasterizer reached through Vulkan (or
/// another non-GL backend): the one that gets the CPU tiles.
fn cpu_rasterizer(gpu: &Gpu) -> bool {
    let info = gpu.adapter_info();
    // Not on GL: Mesa's GLSL compiler takes minutes over the big CPU entry
    // points (seconds through Vulkan), once per transpose/bias variant.
    info.device_type == wgpu::DeviceType::Cpu && info.backend != wgpu::Backend::Gl
}

/// The tiles for this adapter.
///
/// GPUs: 16 × 16 invocations with 8 × 8 register tiles (see
/// [`buffer_tiles_for`]). CPU rasterizers through Vulkan (lavapipe): the
/// texture path, rows of 8 invocations (one SIMD vector of lavapipe) each
/// owning 32 × 32 outputs. Measured on lavapipe at 1024³ beside the FMA peak
/// in the same run: 8 × 1 invocations 61 %, 8 × 2 49 %, 8 × 8 55 % (but
/// 25 % at 256³, too few workgroups for the threads); 16 × 16 register tiles
/// on the texture path 48 %, 8 × 8 34 %; the workgroup-memory kernel's best
/// 24 %. [`encode`](super::encode) falls back to [`buffer_tiles_for`] when a packed operand
/// would pass `max_texture_dimension_2d`.
pub fn tiles_for(gpu: &Gpu) -> Tiles {
    if cpu_rasterizer(gpu) {
        return Tiles {
            wg_x: 8,
            wg_y: 1,
            bk: 1,
            register: RegisterTile::Texture32x32,
        };
    }
    buffer_tiles_for(gpu)
}

/// The tiles of the workgroup-memory kernels for this adapter.
///
/// GPUs: 16 × 16 invocations with 8 × 8 register tiles, 128 × 128 blocks of
/// C, the classic shape of fast WGSL matmuls. CPU rasterizers (lavapipe):
/// 8 × 8 invocations with 16 × 16 register tiles, also 128 × 128 blocks;
/// measured on lavapipe at 1024³ this ran at about twice the speed of 8 × 8
/// register tiles (whatever their workgroup shape) and ahead of 16 × 16
/// invocations with 16 × 16 tiles. (Through wgpu's GL backend a CPU
/// rasterizer gets the GPU tiles: see below.) In both cases K slabs are the deepest of
/// 32, 16, 8, … whose two slabs fit `max_compute_workgroup_storage_size`
/// (16 KiB, the WebGPU default and DX12's, gives BK = 16).
pub fn buffer_tiles_for(gpu: &Gpu) -> Tiles {
    let l = gpu.limits();
    let mut t = if cpu_rasterizer(gpu) {
        Tiles {
            wg_x: 8,
            wg_y: 8,
            bk: 32,
            register: RegisterTile::R16x16,
        }
    } else if l.max_compute_invocations_per_workgroup >= 256 {
        Tiles {
            wg_x: 16,
            wg_y: 16,
            bk: 32,
            register: RegisterTile::R8x8,
        }
    } else {
        Tiles {
            wg_x: 8,
            wg_y: 8,
            bk: 32,
            register: RegisterTile::R8x8,
        }
    };
    while t.bk > 1 && t.workgroup_bytes() > l.max_compute_workgroup_storage_size as u64 {
        t.bk /= 2;
    }
    t
}
