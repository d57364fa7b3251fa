//! `matmul`: `C[M, N] = op(A) · op(B) (+ bias) (+ C)`: on GPUs tiled in
//! workgroup memory with an 8 × 8 register tile per invocation; on CPU
//! rasterizers through Vulkan (lavapipe) with both operands packed into
//! textures and a 32 × 32 register tile (`texture.rs`).
//! Shader: `shaders/matmul.wgsl`; CPU twin: `cpu::matmul`.

mod texture;
mod tiles;

pub use tiles::{buffer_tiles_for, tiles_for, RegisterTile, Tiles};

use crate::binding;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::{loop_limited, to_u32, LOOP_BUDGET};
use crate::pipeline::{KernelSpec, RuntimeChecks};
use crate::recorder::{self, Recorder, Work};
use crate::tensor::Tensor;

/// The shader in two files: the workgroup-memory tiles and the epilogue,
/// then the texture path (`texture.rs`).
const SOURCE: &str = concat!(
    include_str!("../../shaders/matmul.wgsl"),
    include_str!("../../shaders/matmul/texture.wgsl"),
);
/// The product's entry point for a register tile.
fn product_spec(register: RegisterTile) -> KernelSpec {
    KernelSpec {
        name: "matmul",
        source: SOURCE,
        entry: match register {
            RegisterTile::R8x8 => "matmul_8x8",
            RegisterTile::R16x16 => "matmul_16x16",
            RegisterTile::Texture32x32 => return texture::PRODUCT,
        },
        defs: &[],
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    /// This dispatch's share of K (see [`k_chunks`]).
    k_begin: u32,
    k_end: u32,
    /// 0 or 1: uniform branches, not override constants (see the shader).
    trans_a: u32,
    trans_b: u32,
    /// `matmul_epilogue` only: add the bias, add the old C.
    has_bias: u32,
    accumulate: u32,
    /// The product only: its first row-block (rows past the per-dimension
    /// workgroup limit are cut into dispatches; see [`row_pieces`]).
    block_row0: u32,
    _pad: [u32; 2],
}

/// One dispatch of the product over a K range, with its override constants;
/// `epilogue`: the product goes to a scratch buffer and `matmul_epilogue`
/// adds the bias and the old C (see [`fused_extras`]).
pub(super) struct Dispatch {
    params: Params,
    constants: Vec<(&'static str, f64)>,
    epilogue: bool,
}

/// Whether the products add the bias and the old C themselves (override
/// constants: four pipelines per tile shape) or leave them to
/// `matmul_epilogue`. GPUs fuse: their compilers build a pipeline in
/// milliseconds and the second pass would cost a read and write of C. CPU
/// rasterizers do not: there every product pipeline takes tens of seconds
/// to compile (about 50 s for the texture product on lavapipe), and the
/// epilogue is cheap next to the product.
fn fused_extras(gpu: &Gpu) -> bool {
    gpu.adapter_info().device_type != wgpu::DeviceType::Cpu
}

const EPILOGUE: KernelSpec = KernelSpec {
    name: "matmul",
    source: SOURCE,
    entry: "matmul_epilogue",
    defs: &[],
};

/// Records `c = product (+ bias) (+ c)` as the dispatch's flags say.
pub(super) fn epilogue(
    rec: &mut Recorder,
    d: &Dispatch,
    bias: &wgpu::Buffer,
    product: &wgpu::Buffer,
    c: &wgpu::Buffer,
) -> Result<()> {
    rec.launch_checked(
        &EPILOGUE,
        &[],
        RuntimeChecks::Unchecked,
        &d.params,
        &[(3, bias.into()), (4, c.into()), (8, product.into())],
        Work::Invocations(d.params.m as u64 * d.params.n as u64),
    )
}

/// Products of K per dispatch on CPU rasterizers, which cut an invocation's
/// loops short (`kernels::LOOP_BUDGET`; a 1 × 1 × 40 000 product summed
/// 30 833 terms on the texture path before this split). At most 8 192, and
/// fewer where a workgroup-memory slab costs an invocation many loop steps
/// (see [`slab_loops`]).
const CPU_K_CHUNK: usize = 8192;

/// Loop iterations one invocation runs per K slab of the workgroup-memory
/// kernels: the slab loop's own, its share of the two slab copies (each
/// `bk · side/4 · wg` vec4s over `wg_x · wg_y` invocations) and the `bk`
/// steps of the product. One invocation per workgroup copying 32-deep slabs
/// of 16 × 16 tiles alone runs 289 a slab, so 256 slabs (8 192 of K) ran
/// past Mesa's limit and dropped a third of the sum.
fn slab_loops(tiles: &Tiles) -> usize {
    let q = tiles.register.side() as usize / 4;
    let (wg_x, wg_y, bk) = (tiles.wg_x as usize, tiles.wg_y as usize, tiles.bk as usize);
    let wg = (wg_x * wg_y).max(1);
    1 + bk + (bk * q * wg_y).div_ceil(wg) + (bk * q * wg_x).div_ceil(wg)
}

/// The K ranges of the dispatches: all of K at once on GPUs; on CPU
/// rasterizers ranges of at most [`CPU_K_CHUNK`], and of at most
/// `LOOP_BUDGET` loop steps an invocation, each a whole number of K slabs
/// (and of 4-wide texels), so no slab straddles two dispatches. The texture
/// path has no slabs: its step is one texel whatever `bk` says.
fn k_chunks(gpu: &Gpu, k: usize, tiles: &Tiles) -> Vec<std::ops::Range<usize>> {
    if !loop_limited(gpu) || k == 0 {
        return std::iter::once(0..k).collect();
    }
    let (step, chunk) = if tiles.register == RegisterTile::Texture32x32 {
        (4, CPU_K_CHUNK)
    } else {
        let bk = tiles.bk.max(1) as usize;
        // One slab's loops fit the budget at any tile shape workgroup memory
        // admits (2 561 for one invocation of 8 × 8 tiles 512 deep, in 32 KiB).
        let slabs = (LOOP_BUDGET / slab_loops(tiles)).max(1);
        (bk * 4, CPU_K_CHUNK.min(slabs * bk))
    };
    let chunk = (chunk / step * step).max(step);
    (0..k.div_ceil(chunk))
        .map(|i| i * chunk..((i + 1) * chunk).min(k))
        .collect()
}

/// `groups_y` row-blocks as dispatches of at most `max` each: (first
/// block, blocks). One piece within the limit, as before the cut.
fn row_pieces(groups_y: u32, max: u32) -> impl Iterator<Item = (u32, u32)> {
    let max = max.max(1);
    (0..groups_y.div_ceil(max)).map(move |i| (i * max, max.min(groups_y - i * max)))
}

/// The override constants of one dispatch: the tile shape, the bias and
/// accumulation (the transposes are in [`Params`]).
fn constants(tiles: &Tiles, bias: bool, accumulate: bool) -> Vec<(&'static str, f64)> {
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let quads = (tiles.register.side() / 4) as f64;
    vec![
        ("WG_X", tiles.wg_x as f64),
        ("QUADS_M", quads),
        ("QUADS_N", quads),
        ("WG_Y", tiles.wg_y as f64),
        ("BK", tiles.bk as f64),
        ("HAS_BIAS", flag(bias)),
        ("ACCUMULATE", flag(accumulate)),
    ]
}

/// Transposes and fused extras of one product.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MatmulOptions {
    /// A is stored `[K, M]` and used as Aᵀ.
    pub trans_a: bool,
    /// B is stored `[N, K]` and used as Bᵀ.
    pub trans_b: bool,
    /// Add the product to C's contents instead of overwriting them.
    pub accumulate: bool,
}

/// The buffers of one product. `bias`, when given, holds `n` floats added to every row.
pub struct MatmulArgs<'a> {
    /// Rows of op(A) and of C.
    pub m: usize,
    /// Columns of op(B) and of C.
    pub n: usize,
    /// The inner dimension: columns of op(A), rows of op(B).
    pub k: usize,
    /// f32, row-major: `[m, k]`, or `[k, m]` with `options.trans_a`.
    pub a: &'a wgpu::Buffer,
    /// f32, row-major: `[k, n]`, or `[n, k]` with `options.trans_b`.
    pub b: &'a wgpu::Buffer,
    /// `n` f32s added to every row of the product, or `None`.
    pub bias: Option<&'a wgpu::Buffer>,
    /// `[m, n]` f32, row-major: written, or added to with
    /// `options.accumulate`. Must not alias `a`, `b` or `bias`.
    pub c: &'a wgpu::Buffer,
    /// Transposes and accumulation.
    pub options: MatmulOptions,
    /// `None` picks [`tiles_for`].
    pub tiles: Option<Tiles>,
    /// Whether the product adds the bias and the old C itself (`Some(true)`)
    /// or leaves them to `matmul_epilogue` (`Some(false)`); the bits are the
    /// same. `None`: fused on GPUs, not on CPU adapters (see `fused_extras`).
    pub fuse_extras: Option<bool>,
}

fn at_least(what: &'static str, buffer: &wgpu::Buffer, elements: usize) -> Result<()> {
    let need = elements as u64 * 4;
    if buffer.size() < need {
        return Err(Error::LengthMismatch {
            what,
            expected: elements,
            found: (buffer.size() / 4) as usize,
        });
    }
    Ok(())
}

/// Records the product into `encoder`; submits nothing.
///
/// The shader is built without wgpu's injected bounds checks, so this checks
/// what they would have: every buffer holds at least the elements the shapes
/// say, and every element count fits the shader's u32 arithmetic.
pub fn encode(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, args: &MatmulArgs) -> Result<()> {
    recorder::record(gpu, encoder, |rec| record(rec, args))
}

/// [`encode`] into a recorder other kernels of the same call share.
pub(crate) fn record(rec: &mut Recorder, args: &MatmulArgs) -> Result<()> {
    let gpu = rec.gpu();
    let (m, n, k) = (args.m, args.n, args.k);
    if m == 0 || n == 0 {
        return Ok(());
    }
    for (what, rows, cols) in [("matmul A", m, k), ("matmul B", k, n), ("matmul C", m, n)] {
        to_u32(what, rows.saturating_mul(cols))?;
    }
    at_least("matmul A elements", args.a, m * k)?;
    at_least("matmul B elements", args.b, k * n)?;
    at_least("matmul C elements", args.c, m * n)?;
    if let Some(bias) = args.bias {
        at_least("matmul bias elements", bias, n)?;
    }
    // Here, not left to the bind group: the texture path binds C beside the
    // operands through bind_resources, where wgpu finds the conflict only
    // when the caller's encoder is finished, losing all of it.
    let reads: Vec<&wgpu::Buffer> = [args.a, args.b].into_iter().chain(args.bias).collect();
    binding::check_no_alias("matmul", &reads, &[args.c])?;
    let mut tiles = args.tiles.unwrap_or_else(|| tiles_for(gpu));
    tiles.check(gpu)?;
    let grid = |tiles: &Tiles| -> Result<(u32, u32)> {
        Ok((
            to_u32("matmul column blocks", n.div_ceil(tiles.block_n() as usize))?,
            to_u32("matmul row blocks", m.div_ceil(tiles.block_m() as usize))?,
        ))
    };
    let (mut groups_x, mut groups_y) = grid(&tiles)?;
    let packed = texture::packed_sizes(
        k,
        args.options.trans_b,
        (groups_x, groups_y),
        (tiles.wg_x, tiles.wg_y),
    );
    let max = gpu.limits().max_compute_workgroups_per_dimension;
    // The texture path packs its operands for one grid: a grid past the
    // per-dimension limit (its packing kernels' included) takes the buffer
    // tiles, which cut the rows.
    let texture_grid =
        texture::largest_grid(&packed, (groups_x, groups_y), (tiles.wg_x, tiles.wg_y));
    let fits = texture::fits(gpu, &packed);
    if tiles.register == RegisterTile::Texture32x32 && (!fits || texture_grid > max) {
        if args.tiles.is_some() && !fits {
            let side = [packed.a.0, packed.a.1, packed.b.0, packed.b.1];
            return Err(Error::TooMany {
                what: "matmul packed operand (texture side)",
                count: side.into_iter().max().unwrap_or(0) as u128,
                limit: gpu.limits().max_texture_dimension_2d as u64,
                limit_name: "max_texture_dimension_2d, in texels",
            });
        }
        if args.tiles.is_some() {
            return Err(Error::TooMany {
                what: "matmul grid on the texture path (one grid, its packing included)",
                count: texture_grid as u128,
                limit: max as u64,
                limit_name: "max_compute_workgroups_per_dimension, in workgroups",
            });
        }
        tiles = buffer_tiles_for(gpu);
        (groups_x, groups_y) = grid(&tiles)?;
    }
    // Columns are not cut: N past the limit's blocks (millions of output
    // features) is refused.
    if groups_x > max {
        return Err(Error::TooMany {
            what: "matmul column blocks",
            count: groups_x as u128,
            limit: max as u64,
            limit_name: "max_compute_workgroups_per_dimension, in workgroups",
        });
    }
    let o = args.options;
    let k32 = to_u32("matmul K", k)?;
    // One dispatch per K range: the first as asked, the rest adding to C
    // (and the bias already added once).
    let fused = args.fuse_extras.unwrap_or_else(|| fused_extras(gpu));
    let dispatches: Vec<Dispatch> = k_chunks(gpu, k, &tiles)
        .into_iter()
        .enumerate()
        .map(|(i, range)| {
            let first = i == 0;
            let (has_bias, accumulate) = (first && args.bias.is_some(), o.accumulate || !first);
            let epilogue = !fused && (has_bias || accumulate);
            let params = Params {
                m: m as u32,
                n: n as u32,
                k: k32,
                k_begin: range.start as u32,
                k_end: range.end as u32,
                trans_a: o.trans_a.into(),
                trans_b: o.trans_b.into(),
                has_bias: has_bias.into(),
                accumulate: accumulate.into(),
                block_row0: 0,
                _pad: [0; 2],
            };
            let constants = if epilogue {
                constants(&tiles, false, false)
            } else {
                constants(&tiles, has_bias, accumulate)
            };
            Dispatch {
                params,
                constants,
                epilogue,
            }
        })
        .collect();
    // Without a bias the shader never reads binding 3, but the layout has
    // it: a 4-byte buffer stands in (not A, which the texture path packs so
    // that it need not fit one binding).
    let unused_bias;
    let bias = match args.bias {
        Some(bias) => bias,
        None => {
            unused_bias = gpu.storage_uninit("matmul unused bias", 4)?;
            unused_bias.raw()
        }
    };
    // The products that leave the extras to the epilogue write here.
    let scratch = match dispatches.iter().any(|d| d.epilogue) {
        true => Some(gpu.storage_uninit("matmul product before the epilogue", (m * n) as u64 * 4)?),
        false => None,
    };
    if tiles.register == RegisterTile::Texture32x32 {
        return texture::record(
            rec,
            &texture::TextureArgs {
                dispatches: &dispatches,
                a: args.a,
                b: args.b,
                bias,
                c: args.c,
                scratch: scratch.as_ref().map(|s| s.raw()),
                groups: (groups_x, groups_y),
                wg: (tiles.wg_x, tiles.wg_y),
                packed,
            },
        );
    }
    for d in &dispatches {
        let out = match (&scratch, d.epilogue) {
            (Some(s), true) => s.raw(),
            _ => args.c,
        };
        for (block_row0, blocks) in row_pieces(groups_y, max) {
            rec.launch_checked(
                &product_spec(tiles.register),
                &d.constants,
                RuntimeChecks::Unchecked,
                &Params {
                    block_row0,
                    ..d.params
                },
                &[
                    (1, args.a.into()),
                    (2, args.b.into()),
                    (3, bias.into()),
                    (4, out.into()),
                ],
                Work::Grid(groups_x, blocks),
            )?;
        }
        if let (Some(s), true) = (&scratch, d.epilogue) {
            epilogue(rec, d, bias, s.raw(), args.c)?;
        }
    }
    Ok(())
}

/// `(M, K)` of op(A) and `(K, N)` of op(B) from 2-D tensors, or a shape error naming both.
fn dims(a: &Tensor, b: &Tensor, options: MatmulOptions) -> Result<(usize, usize, usize)> {
    let two = |t: &Tensor, what: &'static str| -> Result<(usize, usize)> {
        match *t.shape() {
            [r, c] => Ok((r, c)),
            _ => Err(Error::ShapeMismatch {
                what,
                expected: vec![0, 0],
                found: t.shape().to_vec(),
            }),
        }
    };
    let (ar, ac) = two(a, "matmul A must be 2-D")?;
    let (br, bc) = two(b, "matmul B must be 2-D")?;
    let (m, ka) = if options.trans_a { (ac, ar) } else { (ar, ac) };
    let (kb, n) = if options.trans_b { (bc, br) } else { (br, bc) };
    if ka != kb {
        return Err(Error::ShapeMismatch {
            what: "matmul: inner dimensions of op(A) [M, K] and op(B) [K, N] differ; expected is op(A)'s shape, found op(B)'s",
            expected: vec![m, ka],
            found: vec![kb, n],
        });
    }
    Ok((m, n, ka))
}

/// `op(a) · op(b) (+ bias)` as a new `[M, N]` tensor; submits and waits.
pub fn matmul(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    options: MatmulOptions,
) -> Result<Tensor> {
    let (m, n, _) = dims(a, b, options)?;
    // Accumulating adds to c: zeros then; otherwise the kernel writes it all.
    let c = match options.accumulate {
        true => Tensor::zeros(a.gpu(), &[m, n])?,
        false => Tensor::uninit(a.gpu(), &[m, n])?,
    };
    matmul_into(a, b, bias, &c, options)?;
    Ok(c)
}

/// `c = op(a) · op(b) (+ bias) (+ c when accumulating)`; submits and waits.
pub fn matmul_into(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    c: &Tensor,
    options: MatmulOptions,
) -> Result<()> {
    let _scope = crate::memory::Scope::enter();
    let gpu = a.gpu();
    let mut encoder = gpu.encoder("matmul");
    encode_tensors(gpu, &mut encoder, a, b, bias, c, options)?;
    gpu.submit_and_wait(encoder)
}

/// Records `c = op(a) · op(b) (+ bias) (+ c)` after checking every shape and device.
pub fn encode_tensors(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    c: &Tensor,
    options: MatmulOptions,
) -> Result<()> {
    a.check_gpu(gpu, "matmul A")?;
    b.check_gpu(gpu, "matmul B")?;
    c.check_gpu(gpu, "matmul C")?;
    let (m, n, k) = dims(a, b, options)?;
    if c.shape() != [m, n] {
        return Err(Error::ShapeMismatch {
            what: "matmul C",
            expected: vec![m, n],
            found: c.shape().to_vec(),
        });
    }
    if let Some(bias) = bias {
        bias.check_gpu(gpu, "matmul bias")?;
        if bias.shape() != [n] {
            return Err(Error::ShapeMismatch {
                what: "matmul bias",
                expected: vec![n],
                found: bias.shape().to_vec(),
            });
        }
    }
    encode(
        gpu,
        encoder,
        &MatmulArgs {
            m,
            n,
            k,
            a: a.buffer(),
            b: b.buffer(),
            bias: bias.map(|t| t.buffer()),
            c: c.buffer(),
            options,
            tiles: None,
            fuse_extras: None,
        },
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn row_pieces_cover_the_rows_once_within_the_limit() {
        let pieces = |g, max| super::row_pieces(g, max).collect::<Vec<_>>();
        assert_eq!(pieces(5, 16), [(0, 5)]);
        assert_eq!(pieces(16, 16), [(0, 16)]);
        assert_eq!(pieces(33, 16), [(0, 16), (16, 16), (32, 1)]);
        assert_eq!(pieces(0, 16), []);
        assert_eq!(pieces(u32::MAX, u32::MAX), [(0, u32::MAX)]);
    }
}
