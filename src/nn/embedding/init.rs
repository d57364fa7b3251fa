//! Building an [`Embedding`] and filling its table: the constructors, the
//! seeded refills, the padding row, and the checks on shapes and options.

use super::{Embedding, EmbeddingOptions};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::uniform_init::{self, Distribution, FillArgs};
use crate::nn::weight::{ChunkedTensor, DType, HalfTensor, Weight};
use crate::tensor::Tensor;

impl Embedding {
    /// A table with N(0, 1) weights from [`DEFAULT_SEED`](super::DEFAULT_SEED), as PyTorch initialises it.
    pub fn new(gpu: &Gpu, num_embeddings: usize, dim: usize) -> Result<Embedding> {
        Embedding::with_options(gpu, num_embeddings, dim, EmbeddingOptions::default())
    }

    /// A table with N(0, 1) weights from `options.seed`; the `padding_idx` row is zero.
    pub fn with_options(
        gpu: &Gpu,
        num_embeddings: usize,
        dim: usize,
        options: EmbeddingOptions,
    ) -> Result<Embedding> {
        if options.dtype == DType::F16 {
            // The CPU twin gives the GPU fill's exact bits; round them once.
            check_shape(num_embeddings, dim)?;
            // Refuse before the host copy is allocated, not after.
            let bytes = (num_embeddings as u64)
                .saturating_mul(dim as u64)
                .saturating_mul(2);
            gpu.check_size("f16 embedding table", bytes, true)?;
            let mut w = vec![0.0f32; num_embeddings.saturating_mul(dim)];
            crate::cpu::normal_fill(options.seed, 0, 0.0, 1.0, &mut w);
            if let Some(p) = options.padding_idx.filter(|&p| p < num_embeddings) {
                w[p * dim..(p + 1) * dim].fill(0.0);
            }
            return Embedding::from_pretrained_with_options(gpu, &w, num_embeddings, dim, options);
        }
        let mut emb = Embedding::empty(gpu, num_embeddings, dim, options)?;
        let seed = emb.options.seed;
        emb.normal_(0.0, 1.0, seed)?;
        emb.zero_padding_row()?;
        Ok(emb)
    }

    /// A table holding `weights` (row-major, `num_embeddings × dim`), as
    /// `Embedding.from_pretrained`. `freeze = true` refuses gradients and updates.
    pub fn from_pretrained(
        gpu: &Gpu,
        weights: &[f32],
        num_embeddings: usize,
        dim: usize,
        freeze: bool,
    ) -> Result<Embedding> {
        let options = EmbeddingOptions {
            freeze,
            ..EmbeddingOptions::default()
        };
        Embedding::from_pretrained_with_options(gpu, weights, num_embeddings, dim, options)
    }

    /// `from_pretrained` with all options. The weights are taken as given
    /// (PyTorch does not zero the padding row of a pretrained table either).
    pub fn from_pretrained_with_options(
        gpu: &Gpu,
        weights: &[f32],
        num_embeddings: usize,
        dim: usize,
        options: EmbeddingOptions,
    ) -> Result<Embedding> {
        check_shape(num_embeddings, dim)?;
        check_len(
            weights,
            num_embeddings,
            dim,
            "Embedding::from_pretrained weights",
        )?;
        check_options(&options, num_embeddings)?;
        let weight = match options.dtype {
            DType::F32 => {
                let weight = f32_table(gpu, num_embeddings, dim, &options)?;
                weight.write(weights)?;
                weight
            }
            DType::F16 => {
                let bytes = (num_embeddings as u64).saturating_mul(dim as u64) * 2;
                gpu.check_size(
                    "f16 embedding table (f16 tables are not chunked)",
                    bytes,
                    true,
                )?;
                Weight::F16(HalfTensor::from_f32(gpu, weights, &[num_embeddings, dim])?)
            }
        };
        Ok(Embedding {
            gpu: gpu.clone(),
            weight,
            num_embeddings,
            dim,
            options,
        })
    }

    /// A table holding f16 `weights` as they are, stored as f16 whatever
    /// `options.dtype` says (the file loaders use it to skip a round trip).
    pub(in crate::nn) fn from_f16_with_options(
        gpu: &Gpu,
        weights: &[half::f16],
        num_embeddings: usize,
        dim: usize,
        options: EmbeddingOptions,
    ) -> Result<Embedding> {
        check_shape(num_embeddings, dim)?;
        check_options(&options, num_embeddings)?;
        let options = EmbeddingOptions {
            dtype: DType::F16,
            ..options
        };
        let weight = Weight::F16(HalfTensor::from_f16(gpu, weights, &[num_embeddings, dim])?);
        Ok(Embedding {
            gpu: gpu.clone(),
            weight,
            num_embeddings,
            dim,
            options,
        })
    }

    fn empty(
        gpu: &Gpu,
        num_embeddings: usize,
        dim: usize,
        options: EmbeddingOptions,
    ) -> Result<Embedding> {
        check_shape(num_embeddings, dim)?;
        check_options(&options, num_embeddings)?;
        let weight = f32_table(gpu, num_embeddings, dim, &options)?;
        Ok(Embedding {
            gpu: gpu.clone(),
            weight,
            num_embeddings,
            dim,
            options,
        })
    }

    /// Refills the table with U(lo, hi) from `seed`: `weight.data.uniform_(lo, hi)`.
    /// Like PyTorch's, this does not re-zero the padding row.
    pub fn uniform_(&mut self, lo: f32, hi: f32, seed: u64) -> Result<()> {
        self.fill(seed, Distribution::Uniform { lo, hi })
    }

    /// Refills the table with N(mean, std²) from `seed`: `weight.data.normal_(mean, std)`.
    pub fn normal_(&mut self, mean: f32, std: f32, seed: u64) -> Result<()> {
        self.fill(seed, Distribution::Normal { mean, std })
    }

    fn fill(&mut self, seed: u64, distribution: Distribution) -> Result<()> {
        match &self.weight {
            Weight::F32(_) | Weight::F32Chunked(_) => {
                let mut encoder = self.gpu.encoder("Embedding::fill");
                self.encode_init(&mut encoder, seed, distribution)?;
                self.gpu.submit_and_wait(encoder)
            }
            // An f16 table is filled by the CPU twin (bit-identical to the
            // kernel) and rounded once; the init kernel writes f32 only.
            Weight::F16(t) => {
                let mut w = vec![0.0f32; t.numel()];
                match distribution {
                    Distribution::Uniform { lo, hi }
                        if lo.is_finite()
                            && hi.is_finite()
                            && lo <= hi
                            && (hi - lo).is_finite() =>
                    {
                        crate::cpu::uniform_fill(seed, 0, lo, hi, &mut w)
                    }
                    Distribution::Normal { mean, std }
                        if mean.is_finite() && std.is_finite() && std >= 0.0 =>
                    {
                        crate::cpu::normal_fill(seed, 0, mean, std, &mut w)
                    }
                    _ => {
                        return Err(Error::InvalidArgument {
                            name: "distribution",
                            reason: format!(
                                "{distribution:?} cannot fill an f16 table: \
                                 need finite bounds lo <= hi, or a finite mean and std >= 0"
                            ),
                        });
                    }
                }
                t.write(&w)
            }
        }
    }

    /// Replaces the weights (row-major, `num_embeddings × dim`): PyTorch's
    /// `embedding.weight = nn.Parameter(...)`.
    pub fn set_weight(&mut self, rows: &[f32]) -> Result<()> {
        check_len(
            rows,
            self.num_embeddings,
            self.dim,
            "Embedding::set_weight rows",
        )?;
        self.weight.write(rows)
    }

    fn zero_padding_row(&mut self) -> Result<()> {
        if let Some(p) = self.options.padding_idx {
            let zeros = vec![0.0f32; self.dim];
            if let Weight::F16(t) = &self.weight {
                // Row offsets of an f16 table need not be 4-byte aligned: rewrite it whole.
                let mut w = t.to_vec()?;
                w[p * self.dim..(p + 1) * self.dim].fill(0.0);
                return t.write(&w);
            }
            let chunks = self.weight.chunks();
            let Some(chunk) = chunks
                .iter()
                .find(|c| (c.row_begin..c.row_begin + c.rows).contains(&p))
            else {
                return Err(Error::InvalidArgument {
                    name: "padding_idx",
                    reason: format!(
                        "{p} is not a row of a table of {} rows",
                        self.num_embeddings
                    ),
                });
            };
            self.gpu.scoped("zero padding row", || {
                let offset = ((p - chunk.row_begin) * self.dim * 4) as u64;
                self.gpu
                    .queue()
                    .write_buffer(chunk.buffer, offset, bytemuck::cast_slice(&zeros));
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Records a fill of the whole table into the caller's encoder.
    pub fn encode_init(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        seed: u64,
        distribution: Distribution,
    ) -> Result<()> {
        if self.weight.dtype() != DType::F32 {
            return Err(Error::InvalidArgument {
                name: "encode_init",
                reason: "the init kernel writes f32; fill an f16 table with uniform_ or normal_"
                    .into(),
            });
        }
        // Chunk by chunk: element e of the table is random element e of the
        // stream wherever it is stored (counter_base = the chunk's first
        // element), so a chunked table equals one filled at once.
        for chunk in self.weight.chunks() {
            uniform_init::encode(
                &self.gpu,
                encoder,
                &FillArgs {
                    out: chunk.buffer,
                    begin: 0,
                    end: chunk.rows * self.dim,
                    counter_base: (chunk.row_begin * self.dim) as u64,
                    seed,
                    distribution,
                    workgroup_size: None,
                },
            )?;
        }
        Ok(())
    }
}

/// A zeroed f32 table: one buffer when it fits one storage binding (and
/// `options.chunk_bytes`), else row-chunks of as many whole rows as fit.
fn f32_table(
    gpu: &Gpu,
    num_embeddings: usize,
    dim: usize,
    options: &EmbeddingOptions,
) -> Result<Weight> {
    let row_bytes = (dim as u64).saturating_mul(4);
    let limit = options
        .chunk_bytes
        .unwrap_or(u64::MAX)
        .min(gpu.max_binding_bytes())
        .min(gpu.max_buffer_bytes());
    if row_bytes > limit {
        return Err(Error::TooLarge {
            what: "one embedding row (a chunk holds whole rows)",
            bytes: row_bytes,
            limit,
            limit_name: "max_storage_buffer_binding_size (or chunk_bytes)",
        });
    }
    // Rows are addressed with u32 in the kernels.
    crate::kernels::to_u32("num_embeddings", num_embeddings)?;
    let rows_per_chunk = (limit / row_bytes) as usize;
    if num_embeddings <= rows_per_chunk {
        return Ok(Weight::F32(Tensor::zeros(gpu, &[num_embeddings, dim])?));
    }
    Ok(Weight::F32Chunked(ChunkedTensor::zeros(
        gpu,
        num_embeddings,
        dim,
        rows_per_chunk,
    )?))
}

fn check_shape(num_embeddings: usize, dim: usize) -> Result<()> {
    if num_embeddings == 0 || dim == 0 {
        return Err(Error::EmptyTable {
            num_embeddings,
            dim,
        });
    }
    Ok(())
}

fn check_len(data: &[f32], num_embeddings: usize, dim: usize, what: &'static str) -> Result<()> {
    let expected = num_embeddings.saturating_mul(dim);
    if data.len() != expected {
        return Err(Error::LengthMismatch {
            what,
            expected,
            found: data.len(),
        });
    }
    Ok(())
}

fn check_options(options: &EmbeddingOptions, num_embeddings: usize) -> Result<()> {
    if options.max_norm.is_some() && options.dtype != DType::F32 {
        return Err(Error::InvalidArgument {
            name: "max_norm",
            reason: "renormalising rows in place needs an f32 table; this one is f16".into(),
        });
    }
    if let Some(p) = options.padding_idx {
        if p >= num_embeddings {
            return Err(Error::InvalidArgument {
                name: "padding_idx",
                reason: format!("{p} is not a row of a table of {num_embeddings} rows"),
            });
        }
    }
    if let Some(m) = options.max_norm {
        if !(m.is_finite() && m > 0.0) {
            return Err(Error::InvalidArgument {
                name: "max_norm",
                reason: format!("must be finite and positive, got {m}"),
            });
        }
    }
    if !(options.norm_type.is_finite() && options.norm_type > 0.0) {
        return Err(Error::InvalidArgument {
            name: "norm_type",
            reason: format!("must be finite and positive, got {}", options.norm_type),
        });
    }
    Ok(())
}
