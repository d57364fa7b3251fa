//! Random calls of the public low-level kernels (`kernels::*::encode`) on a
//! pool of small buffers: any counts, sizes, modes and dtypes, row-blocks
//! whose spans may run past their buffer or start off the binding
//! alignment, and one buffer in several roles. Every call returns `Ok` or a
//! typed error and never panics; on `Err` the encoder holds none of the
//! call's work (submitted, it leaves every pool buffer's bits as they
//! were); on `Ok` it is valid wgpu work (a GPU error escaping the library's
//! scopes panics, as on a device a caller shares).
//!
//! The pool holds 0xFFFF_FFFF in every word: out of range as an index, an
//! empty bag or segment as offsets, `STATUS_OK` as a status word. So what
//! the GPU does with a call is short whatever it is told, and a clear or a
//! write that an `Err` left behind shows.
#![no_main]

#[path = "common.rs"]
mod common;

use std::sync::Once;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wgpu_embed::cpu::{AdamArgs, Round16};
use wgpu_embed::kernels::embedding_bag_backward::{BagLayout, ExpandArgs};
use wgpu_embed::kernels::segment_sum::{SegmentArgs, SegmentOutput};
use wgpu_embed::kernels::sgd_update::SgdGrad;
use wgpu_embed::kernels::{
    adam_step, buffer_copy, embedding_bag, embedding_bag_backward, embedding_gather,
    embedding_renorm, exclusive_scan, one_hot, radix_sort, row_histogram, scatter_add_atomic,
    segment_sum, sgd_update, uniform_init,
};
use wgpu_embed::{BagMode, DType, Distribution, Gpu, RowBlock, Span, Tensor};

const POOL: usize = 6;

/// A buffer of the pool, by number.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Buf(u8);

/// A row-block: rows of a buffer of the pool, the whole buffer or a span
/// at `offset` alignment units (sometimes one word off) of `words` words.
#[derive(Arbitrary, Debug)]
struct Block {
    buf: Buf,
    rows: (u8, u8),
    span: Option<(u8, bool, u16)>,
}

#[derive(Arbitrary, Debug)]
struct Layout {
    num_embeddings: u16,
    dim: u8,
    indices: Buf,
    n: u16,
    offsets: Buf,
    num_bags: u16,
    padding_idx: Option<u16>,
    grad_out: Buf,
}

#[derive(Arbitrary, Debug)]
enum Target {
    Dense(Block),
    Sparse(Buf, Buf, Buf),
    Sgd(Block, f32),
    Adagrad(Block, Buf, f32, f32),
    Adam(Block, Block, Block),
}

#[derive(Arbitrary, Debug)]
enum Call {
    Gather {
        table: Vec<Block>,
        dtype: u8,
        num_embeddings: u16,
        dim: u8,
        indices: Buf,
        n: u16,
        status: Buf,
        out: Buf,
        threads_per_row: Option<u16>,
        const_dim: bool,
    },
    Bag {
        mode: u8,
        table: Buf,
        dtype: u8,
        num_embeddings: u16,
        dim: u8,
        indices: Buf,
        n: u16,
        offsets: Buf,
        num_bags: u16,
        max_bag_len: u16,
        weights: Option<Buf>,
        padding_idx: Option<u16>,
        status: Buf,
        max_positions: Option<Buf>,
        out: Buf,
        threads_per_bag: Option<u16>,
    },
    Expand {
        layout: Layout,
        mode: u8,
        weights: Option<Buf>,
        max_positions: Option<Buf>,
        expanded: Buf,
    },
    PswGrad {
        layout: Layout,
        table: Vec<Block>,
        dtype: u8,
        out: Buf,
    },
    Histogram {
        indices: Buf,
        n: u16,
        num_embeddings: u16,
        status: Buf,
        counts: Option<Buf>,
    },
    Scan {
        input: Buf,
        len: u16,
        out: Buf,
        exclude: Option<u16>,
        mode: u8,
    },
    Sort {
        keys: Buf,
        n: u16,
        key_bound: u32,
        keys_out: Buf,
        positions_out: Buf,
    },
    Segment {
        n: u16,
        dim: u8,
        num_embeddings: u16,
        padding_idx: Option<u16>,
        scale_by_freq: bool,
        // bufs[1], the row offsets, only when `offsets`.
        bufs: [Buf; 5],
        offsets: bool,
        chunk: Option<u16>,
        half: Option<bool>,
        targets: Vec<Target>,
    },
    Sgd {
        weight: Block,
        num_embeddings: u16,
        dim: u8,
        dense: Option<Block>,
        sparse: (Buf, Buf, u16),
        lr: f32,
        half: Option<bool>,
    },
    Atomic {
        indices: Buf,
        n: u16,
        num_embeddings: u16,
        dim: u8,
        padding_idx: Option<u64>,
        counts: Buf,
        scale_by_freq: bool,
        status: Buf,
        grad_out: Buf,
        grad: Block,
    },
    Renorm {
        num_embeddings: u16,
        dim: u8,
        max_norm: f32,
        norm_type: f32,
        status: Buf,
        indices: Buf,
        n: u16,
        weights: Vec<Block>,
        claims: Option<(Buf, u32)>,
    },
    AdamStep {
        len: u16,
        bufs: [Buf; 4],
    },
    OneHot {
        indices: Buf,
        n: u16,
        num_classes: u16,
        status: Buf,
        out: Buf,
    },
    Fill {
        out: Buf,
        begin: u16,
        end: u16,
        normal: bool,
        a: f32,
        b: f32,
    },
    Copy {
        src: Buf,
        dst: Buf,
        bytes: u16,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    words: [u16; POOL],
    calls: Vec<Call>,
}

fn gpu() -> &'static Gpu {
    static HANDLER: Once = Once::new();
    let gpu = common::gpu();
    HANDLER.call_once(|| {
        gpu.device().on_uncaptured_error(std::sync::Arc::new(|e| {
            panic!("a GPU error escaped wgpu-embed's error scopes: {e}")
        }))
    });
    gpu
}

struct Pool(Vec<Tensor>);

impl Pool {
    fn new(gpu: &Gpu, words: &[u16; POOL]) -> Pool {
        Pool(
            words
                .iter()
                .map(|&w| {
                    let len = 1 + w as usize % 2048;
                    Tensor::from_slice(gpu, &vec![f32::from_bits(u32::MAX); len], &[len])
                        .expect("a pool buffer")
                })
                .collect(),
        )
    }
    fn get(&self, b: Buf) -> &wgpu::Buffer {
        self.0[b.0 as usize % POOL].buffer()
    }
    fn block(&self, gpu: &Gpu, b: &Block) -> RowBlock<'_> {
        let buffer = self.get(b.buf);
        let rows = b.rows.0 as usize..b.rows.0 as usize + b.rows.1 as usize;
        match b.span {
            None => RowBlock::new(buffer, rows),
            Some((units, off_by_a_word, words)) => RowBlock {
                rows,
                span: Span {
                    buffer,
                    offset: units as u64 % 4 * gpu.storage_offset_alignment()
                        + off_by_a_word as u64 * 4,
                    size: words as u64 % 4096 * 4,
                },
            },
        }
    }
    fn bits(&self) -> Vec<Vec<u32>> {
        self.0
            .iter()
            .map(|t| {
                let v = t.to_vec().expect("reading a pool buffer back");
                v.iter().map(|x| x.to_bits()).collect()
            })
            .collect()
    }
}

fn mode(m: u8) -> BagMode {
    [BagMode::Sum, BagMode::Mean, BagMode::Max][m as usize % 3]
}

fn dtype(d: u8) -> DType {
    [DType::F32, DType::F16, DType::Int8][d as usize % 3]
}

fn half(h: Option<bool>) -> Option<Round16> {
    h.map(|stochastic| {
        if stochastic {
            Round16::Stochastic { seed: 7, step: 3 }
        } else {
            Round16::Nearest
        }
    })
}

fn layout<'a>(pool: &'a Pool, l: &Layout) -> BagLayout<'a> {
    BagLayout {
        num_embeddings: l.num_embeddings as usize,
        dim: l.dim as usize,
        indices: pool.get(l.indices),
        n: l.n as usize,
        offsets: pool.get(l.offsets),
        num_bags: l.num_bags as usize,
        padding_idx: l.padding_idx.map(usize::from),
        grad_out: pool.get(l.grad_out),
    }
}

fn call(gpu: &Gpu, pool: &Pool, enc: &mut wgpu::CommandEncoder, c: &Call) -> wgpu_embed::Result<()> {
    let adam = AdamArgs::for_step(1, 1e-3, (0.9, 0.999), 1e-8, 0.0, true);
    match c {
        Call::Gather {
            table,
            dtype: d,
            num_embeddings,
            dim,
            indices,
            n,
            status,
            out,
            threads_per_row,
            const_dim,
        } => {
            let blocks: Vec<RowBlock> = table.iter().take(6).map(|b| pool.block(gpu, b)).collect();
            embedding_gather::encode(
                gpu,
                enc,
                &embedding_gather::GatherArgs {
                    table: &blocks,
                    dtype: dtype(*d),
                    num_embeddings: *num_embeddings as usize,
                    dim: *dim as usize,
                    indices: pool.get(*indices),
                    n: *n as usize,
                    status: pool.get(*status),
                    out: pool.get(*out),
                    threads_per_row: threads_per_row.map(u32::from),
                    workgroup_size: None,
                    const_dim: *const_dim,
                },
            )
        }
        Call::Bag {
            mode: m,
            table,
            dtype: d,
            num_embeddings,
            dim,
            indices,
            n,
            offsets,
            num_bags,
            max_bag_len,
            weights,
            padding_idx,
            status,
            max_positions,
            out,
            threads_per_bag,
        } => embedding_bag::encode(
            gpu,
            enc,
            &embedding_bag::BagArgs {
                mode: mode(*m),
                table: pool.get(*table),
                dtype: dtype(*d),
                num_embeddings: *num_embeddings as usize,
                dim: *dim as usize,
                indices: pool.get(*indices),
                n: *n as usize,
                offsets: pool.get(*offsets),
                num_bags: *num_bags as usize,
                max_bag_len: *max_bag_len as usize,
                per_sample_weights: weights.map(|w| pool.get(w)),
                padding_idx: padding_idx.map(usize::from),
                status: pool.get(*status),
                max_positions: max_positions.map(|p| pool.get(p)),
                out: pool.get(*out),
                threads_per_bag: threads_per_bag.map(u32::from),
            },
        ),
        Call::Expand {
            layout: l,
            mode: m,
            weights,
            max_positions,
            expanded,
        } => embedding_bag_backward::encode_expand(
            gpu,
            enc,
            &layout(pool, l),
            &ExpandArgs {
                mode: mode(*m),
                per_sample_weights: weights.map(|w| pool.get(w)),
                max_positions: max_positions.map(|p| pool.get(p)),
                expanded: pool.get(*expanded),
            },
        ),
        Call::PswGrad {
            layout: l,
            table,
            dtype: d,
            out,
        } => {
            let blocks: Vec<RowBlock> = table.iter().take(6).map(|b| pool.block(gpu, b)).collect();
            embedding_bag_backward::encode_psw_grad(
                gpu,
                enc,
                &layout(pool, l),
                &blocks,
                dtype(*d),
                pool.get(*out),
            )
        }
        Call::Histogram {
            indices,
            n,
            num_embeddings,
            status,
            counts,
        } => row_histogram::encode(
            gpu,
            enc,
            &row_histogram::HistogramArgs {
                indices: pool.get(*indices),
                n: *n as usize,
                num_embeddings: *num_embeddings as usize,
                status: pool.get(*status),
                counts: counts.map(|c| pool.get(c)),
            },
        ),
        Call::Scan {
            input,
            len,
            out,
            exclude,
            mode,
        } => exclusive_scan::encode(
            gpu,
            enc,
            &exclusive_scan::ScanArgs {
                input: pool.get(*input),
                len: *len as usize,
                out: pool.get(*out),
                exclude: exclude.map(usize::from),
                mode: match mode % 3 {
                    0 => exclusive_scan::ScanMode::Sum,
                    1 => exclusive_scan::ScanMode::Nonzero,
                    _ => exclusive_scan::ScanMode::RunStarts,
                },
            },
        ),
        Call::Sort {
            keys,
            n,
            key_bound,
            keys_out,
            positions_out,
        } => radix_sort::encode(
            gpu,
            enc,
            &radix_sort::SortArgs {
                keys: pool.get(*keys),
                n: *n as usize,
                key_bound: *key_bound as usize,
                keys_out: pool.get(*keys_out),
                positions_out: pool.get(*positions_out),
            },
        ),
        Call::Segment {
            n,
            dim,
            num_embeddings,
            padding_idx,
            scale_by_freq,
            bufs,
            offsets,
            chunk,
            half: h,
            targets,
        } => {
            let targets: Vec<SegmentOutput> = targets
                .iter()
                .take(4)
                .map(|t| match t {
                    Target::Dense(b) => SegmentOutput::Dense {
                        grad: pool.block(gpu, b),
                    },
                    Target::Sparse(ranks, rows, values) => SegmentOutput::Sparse {
                        ranks: pool.get(*ranks),
                        rows: pool.get(*rows),
                        values: pool.get(*values),
                    },
                    Target::Sgd(b, lr) => SegmentOutput::Sgd {
                        weight: pool.block(gpu, b),
                        lr: *lr,
                    },
                    Target::Adagrad(b, state, lr, eps) => SegmentOutput::Adagrad {
                        weight: pool.block(gpu, b),
                        state: pool.get(*state),
                        lr: *lr,
                        eps: *eps,
                    },
                    Target::Adam(w, m, v) => SegmentOutput::Adam {
                        weight: pool.block(gpu, w),
                        exp_avg: pool.block(gpu, m),
                        exp_avg_sq: pool.block(gpu, v),
                        adam,
                    },
                })
                .collect();
            segment_sum::encode(
                gpu,
                enc,
                &SegmentArgs {
                    n: *n as usize,
                    dim: *dim as usize,
                    num_embeddings: *num_embeddings as usize,
                    padding_idx: padding_idx.map(usize::from),
                    scale_by_freq: *scale_by_freq,
                    status: pool.get(bufs[0]),
                    offsets: offsets.then(|| pool.get(bufs[1])),
                    sorted_keys: pool.get(bufs[2]),
                    sorted_positions: pool.get(bufs[3]),
                    grad_out: pool.get(bufs[4]),
                    chunk: chunk.map(usize::from),
                    half: half(*h),
                },
                &targets,
            )
        }
        Call::Sgd {
            weight,
            num_embeddings,
            dim,
            dense,
            sparse,
            lr,
            half: h,
        } => {
            let grad = match dense {
                Some(b) => SgdGrad::Dense(pool.block(gpu, b)),
                None => SgdGrad::Sparse {
                    rows: pool.get(sparse.0),
                    values: pool.get(sparse.1),
                    count: sparse.2 as usize,
                },
            };
            sgd_update::encode(
                gpu,
                enc,
                &sgd_update::SgdArgs {
                    weight: pool.block(gpu, weight),
                    num_embeddings: *num_embeddings as usize,
                    dim: *dim as usize,
                    grad,
                    lr: *lr,
                    half: half(*h),
                },
            )
        }
        Call::Atomic {
            indices,
            n,
            num_embeddings,
            dim,
            padding_idx,
            counts,
            scale_by_freq,
            status,
            grad_out,
            grad,
        } => scatter_add_atomic::encode(
            gpu,
            enc,
            &scatter_add_atomic::AtomicArgs {
                indices: pool.get(*indices),
                n: *n as usize,
                num_embeddings: *num_embeddings as usize,
                dim: *dim as usize,
                padding_idx: padding_idx.map(|p| p as usize),
                counts: pool.get(*counts),
                scale_by_freq: *scale_by_freq,
                status: pool.get(*status),
                grad_out: pool.get(*grad_out),
                grad: pool.block(gpu, grad),
            },
        ),
        Call::Renorm {
            num_embeddings,
            dim,
            max_norm,
            norm_type,
            status,
            indices,
            n,
            weights,
            claims,
        } => {
            let blocks: Vec<RowBlock> = weights.iter().take(4).map(|w| pool.block(gpu, w)).collect();
            embedding_renorm::encode(
                gpu,
                enc,
                &embedding_renorm::RenormArgs {
                    num_embeddings: *num_embeddings as usize,
                    dim: *dim as usize,
                    max_norm: *max_norm,
                    norm_type: *norm_type,
                    status: pool.get(*status),
                    indices: pool.get(*indices),
                    n: *n as usize,
                    blocks: &blocks,
                    claims: claims.map(|(b, epoch)| embedding_renorm::RenormClaims {
                        buffer: pool.get(b),
                        epoch,
                    }),
                },
            )
        }
        Call::AdamStep { len, bufs } => adam_step::encode(
            gpu,
            enc,
            &adam_step::AdamStepArgs {
                len: *len as usize,
                grad: pool.get(bufs[0]),
                weight: pool.get(bufs[1]),
                exp_avg: pool.get(bufs[2]),
                exp_avg_sq: pool.get(bufs[3]),
                adam: AdamArgs::for_step(1, 1e-3, (0.9, 0.999), 1e-8, 0.0, false),
            },
        ),
        Call::OneHot {
            indices,
            n,
            num_classes,
            status,
            out,
        } => one_hot::encode(
            gpu,
            enc,
            &one_hot::OneHotArgs {
                indices: pool.get(*indices),
                n: *n as usize,
                num_classes: *num_classes as usize,
                status: pool.get(*status),
                out: pool.get(*out),
            },
        ),
        Call::Fill {
            out,
            begin,
            end,
            normal,
            a,
            b,
        } => uniform_init::encode(
            gpu,
            enc,
            &uniform_init::FillArgs {
                out: pool.get(*out),
                begin: *begin as usize,
                end: *end as usize,
                counter_base: 0,
                seed: 1,
                distribution: if *normal {
                    Distribution::Normal { mean: *a, std: *b }
                } else {
                    Distribution::Uniform { lo: *a, hi: *b }
                },
                workgroup_size: None,
            },
        ),
        Call::Copy { src, dst, bytes } => {
            buffer_copy::encode(gpu, enc, pool.get(*src), pool.get(*dst), *bytes as u64)
        }
    }
}

fuzz_target!(|input: Input| {
    let gpu = gpu();
    let pool = Pool::new(gpu, &input.words);
    for c in input.calls.iter().take(4) {
        let before = pool.bits();
        let mut enc = gpu.encoder("fuzz kernels");
        let r = call(gpu, &pool, &mut enc, c);
        gpu.submit_and_wait(enc)
            .unwrap_or_else(|e| panic!("{c:?} -> {r:?}, then its encoder failed: {e}"));
        if let Err(e) = &r {
            let after = pool.bits();
            let changed: Vec<usize> = (0..POOL).filter(|&k| after[k] != before[k]).collect();
            assert!(
                changed.is_empty(),
                "{c:?} failed ({e}) but its encoder changed pool buffers {changed:?}"
            );
        }
    }
});
