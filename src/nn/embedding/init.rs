//! Building an [`Embedding`] and filling its table: the constructors, the
//! seeded refills, the padding row, and the checks on shapes and options.

use super::{Embedding, EmbeddingOptions};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::uniform_init::{self, Distribution, FillArgs};
use crate::recorder;
use crate::tensor::{host_zeros, rows_per_block, DType, Table};

impl Embedding {
    /// A table with N(0, 1) weights, as PyTorch initialises it, from a seed
    /// drawn from the `Gpu` (see [`EmbeddingOptions::seed`]).
    pub fn new(gpu: &Gpu, num_embeddings: usize, dim: usize) -> Result<Embedding> {
        Embedding::with_options(gpu, num_embeddings, dim, EmbeddingOptions::default())
    }

    /// A table with N(0, 1) weights from `options.seed` (or, where that is
    /// `None`, one drawn from the `Gpu`); the `padding_idx` row is zero.
    pub fn with_options(
        gpu: &Gpu,
        num_embeddings: usize,
        dim: usize,
        options: EmbeddingOptions,
    ) -> Result<Embedding> {
        let mut emb = Embedding::empty(gpu, num_embeddings, dim, options)?;
        // Drawn only once the shape and options passed their checks.
        let seed = *emb.options.seed.get_or_insert_with(|| gpu.draw_seed());
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
        let shape = [num_embeddings, dim];
        Embedding::with_table(gpu, shape, options, |dtype, per_block| {
            Table::from_f32(gpu, weights, shape, dtype, per_block)
        })
    }

    /// The one way a table is made: the shape and options checked, the
    /// row-block size for `options.dtype`, then `make(dtype, per_block)`.
    fn with_table(
        gpu: &Gpu,
        [num_embeddings, dim]: [usize; 2],
        options: EmbeddingOptions,
        make: impl FnOnce(DType, usize) -> Result<Table>,
    ) -> Result<Embedding> {
        check_shape(num_embeddings, dim)?;
        check_options(gpu, &options, num_embeddings, dim)?;
        let per_block =
            rows_per_block(gpu, options.dtype, num_embeddings, dim, options.chunk_bytes)?;
        let weight = make(options.dtype, per_block)?;
        Ok(Embedding {
            gpu: gpu.clone(),
            weight,
            num_embeddings,
            dim,
            options,
            updates: Default::default(),
            renorm: Default::default(),
            id: {
                static TABLES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                TABLES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            },
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
        let options = EmbeddingOptions {
            dtype: DType::F16,
            ..options
        };
        let shape = [num_embeddings, dim];
        Embedding::with_table(gpu, shape, options, |_, per_block| {
            Table::from_f16(gpu, weights, shape, per_block)
        })
    }

    /// An int8 row-wise table (FBGEMM's fused 8-bit row-wise format:
    /// `num_embeddings × (dim + 8)` bytes, each row its `dim` codes then
    /// its f32 scale and bias, little endian) as it is, frozen: lookups and
    /// bags dequantize on the fly; gradients and updates are a typed error.
    pub fn from_int8_rowwise(
        gpu: &Gpu,
        fused: &[u8],
        num_embeddings: usize,
        dim: usize,
    ) -> Result<Embedding> {
        let options = EmbeddingOptions {
            freeze: true,
            dtype: DType::Int8,
            ..EmbeddingOptions::default()
        };
        Embedding::from_int8_with_options(gpu, fused, num_embeddings, dim, options)
    }

    /// [`from_int8_rowwise`](Self::from_int8_rowwise) with options (stored
    /// as int8 whatever `options.dtype` says).
    pub fn from_int8_with_options(
        gpu: &Gpu,
        fused: &[u8],
        num_embeddings: usize,
        dim: usize,
        options: EmbeddingOptions,
    ) -> Result<Embedding> {
        let options = EmbeddingOptions {
            dtype: DType::Int8,
            ..options
        };
        let shape = [num_embeddings, dim];
        Embedding::with_table(gpu, shape, options, |_, per_block| {
            Table::from_int8(gpu, fused, shape, per_block)
        })
    }

    /// This table quantized to int8 row-wise (FBGEMM's reference quantizer,
    /// row by row: scale = (max − min) / 255, bias = min), as a frozen table
    /// for inference with the same rows, padding row and row-block size.
    /// The rows are quantized as stored: an int8 table takes no `max_norm`,
    /// so a `max_norm` table's rows that no lookup has renormalized yet keep
    /// their norms (look them up first to quantize them renormalized).
    pub fn quantize_int8(&self) -> Result<Embedding> {
        crate::readback::block("quantize_int8", self.quantize_int8_async())
    }

    /// [`quantize_int8`](Self::quantize_int8) without blocking (a web
    /// page's way: the table is read back, then quantized on the host).
    pub async fn quantize_int8_async(&self) -> Result<Embedding> {
        let weights = self.weight.to_vec_async().await?;
        let fused = crate::tensor::quantize(&weights, self.dim, 0)?;
        let options = EmbeddingOptions {
            freeze: true,
            max_norm: None,
            ..self.options.clone()
        };
        Embedding::from_int8_with_options(&self.gpu, &fused, self.num_embeddings, self.dim, options)
    }

    fn empty(
        gpu: &Gpu,
        num_embeddings: usize,
        dim: usize,
        options: EmbeddingOptions,
    ) -> Result<Embedding> {
        let shape = [num_embeddings, dim];
        Embedding::with_table(gpu, shape, options, |dtype, per_block| {
            Table::zeros(gpu, dtype, shape, per_block)
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
        let _scope = self.gpu.scope();
        if self.weight.dtype() == DType::F32 {
            let mut encoder = self.gpu.encoder("Embedding::fill");
            self.encode_init(&mut encoder, seed, distribution)?;
            return self.gpu.submit_and_wait(encoder);
        }
        // An f16 table is filled by the CPU twin (bit-identical to the
        // kernel, which writes f32 only) and rounded once, a block at a time
        // so the host holds one block's floats, not the table's; every
        // block changes or none.
        let dim = self.dim;
        self.weight.write_blocks(|_, rows| {
            let mut w = host_zeros("host copy of one f16 table block", rows.len() * dim)?;
            distribution.fill_cpu(seed, (rows.start * dim) as u64, &mut w)?;
            Ok(w.into())
        })
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
        match self.options.padding_idx {
            Some(p) => self.weight.write_row(p, &vec![0.0; self.dim]),
            None => Ok(()),
        }
    }

    /// Records a fill of the whole table into the caller's encoder.
    pub fn encode_init(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        seed: u64,
        distribution: Distribution,
    ) -> Result<()> {
        recorder::record(&self.gpu, encoder, |rec| {
            if self.weight.dtype() != DType::F32 {
                return Err(Error::InvalidArgument {
                    name: "encode_init",
                    reason:
                        "the init kernel writes f32; fill an f16 table with uniform_ or normal_"
                            .into(),
                });
            }
            // Block by block: element e of the table is random element e of the
            // stream wherever it is stored (counter_base = the block's first
            // element), so a table in blocks equals one filled at once.
            for block in self.weight.blocks() {
                uniform_init::record(
                    rec,
                    &FillArgs {
                        out: block.span.buffer,
                        begin: 0,
                        end: block.rows.len() * self.dim,
                        counter_base: (block.rows.start * self.dim) as u64,
                        seed,
                        distribution,
                        workgroup_size: None,
                    },
                )?;
            }
            Ok(())
        })
    }
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

fn check_options(
    gpu: &Gpu,
    options: &EmbeddingOptions,
    num_embeddings: usize,
    dim: usize,
) -> Result<()> {
    if options.max_norm.is_some() && options.dtype != DType::F32 {
        return Err(Error::InvalidArgument {
            name: "max_norm",
            reason: format!(
                "renormalising rows in place needs an f32 table; this one is {:?}",
                options.dtype
            ),
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
    // As PyTorch, norm_type matters (and is checked) only with a max_norm.
    if let Some(m) = options.max_norm {
        crate::kernels::embedding_renorm::check_norms(m, options.norm_type)?;
        // Here, not at the first lookup: a table whose every forward
        // would fail is refused when it is made.
        crate::kernels::embedding_renorm::check_dim(gpu, dim)?;
    }
    Ok(())
}
