//! `sgd_update`: `weight -= lr * grad` for a dense or a sparse gradient.
//! Shader: `shaders/sgd_update.wgsl`; CPU twin: `cpu::sgd_update`.

use crate::error::Result;
use crate::gpu::Gpu;
use crate::kernels::{to_u32, WORKGROUP_SIZE};
use crate::pipeline::{Access, KernelSpec};

const SOURCE: &str = include_str!("../../shaders/sgd_update.wgsl");

const DENSE: KernelSpec = KernelSpec {
    name: "sgd_update",
    source: SOURCE,
    entry: "sgd_dense",
    bindings: &[
        (0, Access::Uniform),
        (1, Access::Read),
        (2, Access::ReadWrite),
    ],
};
const SPARSE: KernelSpec = KernelSpec {
    name: "sgd_update",
    source: SOURCE,
    entry: "sgd_sparse",
    bindings: &[
        (0, Access::Uniform),
        (1, Access::Read),
        (2, Access::ReadWrite),
        (3, Access::Read),
    ],
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    dim: u32,
    num_embeddings: u32,
    lr: f32,
    row_begin: u32,
    row_end: u32,
    _pad: [u32; 2],
}

/// The gradient an update reads.
pub enum SgdGrad<'a> {
    /// `[num_embeddings, dim]`.
    Dense(&'a wgpu::Buffer),
    /// `count` unique rows and their `[count, dim]` values.
    Sparse {
        rows: &'a wgpu::Buffer,
        values: &'a wgpu::Buffer,
        count: usize,
    },
}

/// One update of `weight` (`[num_embeddings, dim]`).
pub struct SgdArgs<'a> {
    pub weight: &'a wgpu::Buffer,
    pub num_embeddings: usize,
    pub dim: usize,
    pub grad: SgdGrad<'a>,
    pub lr: f32,
    /// `weight` holds only table rows `row_begin .. row_end` (a row-chunk);
    /// `None`: the whole table.
    pub rows: Option<std::ops::Range<usize>>,
}

/// Records the update into `encoder`.
pub fn encode(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, args: &SgdArgs) -> Result<()> {
    let range = args.rows.clone().unwrap_or(0..args.num_embeddings);
    let range = range.start.min(args.num_embeddings)..range.end.min(args.num_embeddings);
    to_u32(
        "table elements",
        args.num_embeddings.saturating_mul(args.dim),
    )?;
    let table = to_u32("table chunk elements", range.len().saturating_mul(args.dim))?;
    let (spec, len, elements, grad, rows) = match args.grad {
        SgdGrad::Dense(grad) => (&DENSE, table, table as u64, grad, None),
        SgdGrad::Sparse {
            rows,
            values,
            count,
        } => {
            let elements = to_u32("sparse gradient elements", count.saturating_mul(args.dim))?;
            (
                &SPARSE,
                to_u32("sparse rows", count)?,
                elements as u64,
                values,
                Some(rows),
            )
        }
    };
    if elements == 0 {
        return Ok(());
    }
    let params = Params {
        len,
        dim: to_u32("embedding dim", args.dim)?,
        num_embeddings: to_u32("num_embeddings", args.num_embeddings)?,
        lr: args.lr,
        row_begin: to_u32("chunk first row", range.start)?,
        row_end: to_u32("chunk end row", range.end)?,
        _pad: [0; 2],
    };
    let kernel = gpu.kernel(spec, &[("WORKGROUP_SIZE", WORKGROUP_SIZE as f64)])?;
    let uniform = gpu.uniform("sgd_update params", &params)?;
    let mut buffers = vec![(0, uniform.raw()), (1, grad), (2, args.weight)];
    if let Some(rows) = rows {
        buffers.push((3, rows));
    }
    let bind = kernel.bind(gpu, &buffers);
    kernel.dispatch(
        gpu,
        encoder,
        &bind,
        elements.div_ceil(WORKGROUP_SIZE as u64),
    );
    Ok(())
}
