//! The texture path of `matmul` (entry points `matmul_pack_a`,
//! `matmul_pack_b`, `matmul_texture`; see the end of `shaders/matmul.wgsl`
//! for why CPU rasterizers want it): pack op(A) and op(B) into rgba32float
//! textures, then multiply reading only texels, 32 × 32 outputs per
//! invocation. Three dispatches, recorded into the caller's encoder.

use super::{Dispatch, SOURCE};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::memory::GpuTexture;
use crate::pipeline::{KernelSpec, RuntimeChecks};
use crate::recorder::{Recorder, Work};

/// Outputs per invocation along each axis (`TEX_ROWS`, `4 · TEX_QUADS` in the shader).
pub(super) const SIDE: u32 = 32;

const PACK_A: KernelSpec = KernelSpec {
    name: "matmul",
    source: SOURCE,
    entry: "matmul_pack_a",
    defs: &[],
};
const PACK_B: KernelSpec = KernelSpec {
    name: "matmul",
    source: SOURCE,
    entry: "matmul_pack_b",
    defs: &[],
};
const PACK_BT: KernelSpec = KernelSpec {
    name: "matmul",
    source: SOURCE,
    entry: "matmul_pack_bt",
    defs: &[],
};
pub(super) const PRODUCT: KernelSpec = KernelSpec {
    name: "matmul",
    source: SOURCE,
    entry: "matmul_texture",
    defs: &[],
};

/// Texture sizes for one product on a `groups_x × groups_y` grid of
/// `wg_x × wg_y` invocations: A is `ceil(K/4) × (rows of the grid)`, B is
/// `(column quads of the grid) × 4·ceil(K/4)`, or when B is transposed
/// `ceil(K/4) × (columns of the grid)` (packed along its own rows, like A),
/// so every fetch of the product is in range and reads zeros past the matrices.
pub(super) struct Packed {
    pub a: (u32, u32),
    pub b: (u32, u32),
}

pub(super) fn packed_sizes(k: usize, trans_b: bool, groups: (u32, u32), wg: (u32, u32)) -> Packed {
    let k4 = k.div_ceil(4).max(1) as u64;
    let clamp = |v: u64| v.min(u32::MAX as u64) as u32;
    let columns = groups.0 as u64 * wg.0 as u64 * SIDE as u64;
    Packed {
        a: (
            clamp(k4),
            clamp(groups.1 as u64 * wg.1 as u64 * SIDE as u64),
        ),
        b: match trans_b {
            false => (clamp(columns / 4), clamp(4 * k4)),
            true => (clamp(k4), clamp(columns)),
        },
    }
}

/// The largest dimension of the path's grids: the product's `groups`, and
/// the packing kernels', one invocation per `wg` block of texels.
pub(super) fn largest_grid(packed: &Packed, groups: (u32, u32), wg: (u32, u32)) -> u32 {
    let packing = |(x, y): (u32, u32)| x.div_ceil(wg.0.max(1)).max(y.div_ceil(wg.1.max(1)));
    groups
        .0
        .max(groups.1)
        .max(packing(packed.a))
        .max(packing(packed.b))
}

/// Whether both packed operands fit the adapter's texture limit.
pub(super) fn fits(gpu: &Gpu, packed: &Packed) -> bool {
    let max = gpu.limits().max_texture_dimension_2d;
    [packed.a.0, packed.a.1, packed.b.0, packed.b.1]
        .iter()
        .all(|&side| side <= max)
}

pub(super) struct TextureArgs<'a> {
    /// One product dispatch per entry (a K range; see `k_chunks`); the first
    /// one's uniform (its transposes) and workgroup shape also drive the
    /// packing kernels.
    pub dispatches: &'a [Dispatch],
    /// Where the products that leave the bias and the old C to the epilogue write.
    pub scratch: Option<&'a wgpu::Buffer>,
    pub a: &'a wgpu::Buffer,
    pub b: &'a wgpu::Buffer,
    pub bias: &'a wgpu::Buffer,
    pub c: &'a wgpu::Buffer,
    pub groups: (u32, u32),
    pub wg: (u32, u32),
    pub packed: Packed,
}

/// One operand, stored row-major as `rows × cols` floats: where the texel
/// rows of its packed texture line up with its own rows (A not transposed;
/// B either way, see `matmul_pack_bt`), so packing it is a copy of `rows`
/// rows of `cols / 4` texels, when wgpu's copy alignment allows.
struct Operand<'a> {
    buffer: &'a wgpu::Buffer,
    binding: u32,
    /// `Some((rows, cols))` when the operand's layout is the packed layout.
    row_major: Option<(u32, u32)>,
}

/// Packs one operand: a buffer-to-texture copy when its rows are already
/// whole texel rows 256-byte aligned (wgpu's `COPY_BYTES_PER_ROW_ALIGNMENT`)
/// and the buffer allows copies, otherwise the packing kernel. The texture
/// starts zeroed (wgpu clears what was never written), which supplies the
/// padding either way.
#[allow(clippy::too_many_arguments)]
fn pack(
    gpu: &Gpu,
    rec: &mut Recorder,
    spec: &KernelSpec,
    args: &TextureArgs,
    source: Operand,
    uniform: &wgpu::Buffer,
    size: (u32, u32),
    what: &'static str,
) -> Result<GpuTexture> {
    let texture = gpu.texture_rgba32float(what, size.0, size.1)?;
    if let Some((rows, cols)) = source.row_major {
        let bytes_per_row = cols as u64 * 4;
        if bytes_per_row.is_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT as u64)
            && source.buffer.usage().contains(wgpu::BufferUsages::COPY_SRC)
        {
            rec.copy_buffer_to_texture(
                source.buffer,
                wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(bytes_per_row as u32),
                    rows_per_image: Some(rows),
                },
                texture.raw(),
                wgpu::Extent3d {
                    width: cols / 4,
                    height: rows,
                    depth_or_array_layers: 1,
                },
            );
            return Ok(texture);
        }
    }
    // The packing kernel binds the whole operand (a copy above does not).
    if source.buffer.size() > gpu.max_binding_bytes() {
        return Err(Error::TooLarge {
            what: "matmul operand on the texture path (packed by one dispatch)",
            bytes: source.buffer.size(),
            limit: gpu.max_binding_bytes(),
            limit_name: "max_storage_buffer_binding_size (one binding)",
        });
    }
    let kernel = gpu.kernel_with_checks(
        spec,
        &only(&args.dispatches[0].constants, &["WG_X", "WG_Y"]),
        RuntimeChecks::Unchecked,
    )?;
    let view = texture.view();
    let bind = kernel.bind_resources(
        gpu,
        &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: uniform.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: source.binding,
                resource: source.buffer.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 5,
                resource: wgpu::BindingResource::TextureView(&view),
            },
        ],
    )?;
    rec.dispatch(
        &kernel,
        &bind,
        Work::Grid(size.0.div_ceil(args.wg.0), size.1.div_ceil(args.wg.1)),
    )?;
    Ok(texture)
}

/// The constants an entry point reads, so that pipelines are built (and
/// cached) once per variant that matters to it.
fn only(constants: &[(&'static str, f64)], names: &[&str]) -> Vec<(&'static str, f64)> {
    constants
        .iter()
        .filter(|(name, _)| names.contains(name))
        .copied()
        .collect()
}

/// Records the two packing passes and the product (one dispatch per K range).
pub(super) fn record(rec: &mut Recorder, args: &TextureArgs) -> Result<()> {
    let gpu = rec.gpu();
    let Some(first) = args.dispatches.first().map(|d| &d.params) else {
        return Ok(());
    };
    let uniform = gpu.uniform("matmul params", first)?;
    let p = first;
    let a = Operand {
        buffer: args.a,
        binding: 1,
        row_major: (p.trans_a == 0).then_some((p.m, p.k)),
    };
    // B transposed ([N, K], a Linear layer's weight) packs along its own
    // rows, which the product reads back as 4 × 4 blocks: a copy of W, not
    // the transposing kernel (Linear::forward was 0.87 of the plain product).
    let b = Operand {
        buffer: args.b,
        binding: 2,
        row_major: Some(match p.trans_b {
            0 => (p.k, p.n),
            _ => (p.n, p.k),
        }),
    };
    let a = pack(
        gpu,
        rec,
        &PACK_A,
        args,
        a,
        uniform.raw(),
        args.packed.a,
        "matmul packed A",
    )?;
    let b = pack(
        gpu,
        rec,
        if p.trans_b == 0 { &PACK_B } else { &PACK_BT },
        args,
        b,
        uniform.raw(),
        args.packed.b,
        "matmul packed B",
    )?;
    let (a_view, b_view) = (a.view(), b.view());
    for d in args.dispatches {
        let kernel = gpu.kernel_with_checks(
            &PRODUCT,
            &only(&d.constants, &["WG_X", "WG_Y", "HAS_BIAS", "ACCUMULATE"]),
            RuntimeChecks::Unchecked,
        )?;
        let out = match (args.scratch, d.epilogue) {
            (Some(s), true) => s,
            _ => args.c,
        };
        let uniform = gpu.uniform("matmul params", &d.params)?;
        let bind = kernel.bind_resources(
            gpu,
            &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: uniform.raw().as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: args.bias.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: out.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 6,
                    resource: wgpu::BindingResource::TextureView(&a_view),
                },
                wgpu::BindGroupEntry {
                    binding: 7,
                    resource: wgpu::BindingResource::TextureView(&b_view),
                },
            ],
        )?;
        rec.dispatch(&kernel, &bind, Work::Grid(args.groups.0, args.groups.1))?;
        if let (Some(scratch), true) = (args.scratch, d.epilogue) {
            super::epilogue(rec, d, args.bias, scratch, args.c)?;
        }
    }
    Ok(())
}
