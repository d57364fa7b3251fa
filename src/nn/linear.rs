//! `Linear`: `y = x · Wᵀ + b`, as `torch.nn.Linear`, with its backward pass
//! and a plain SGD step, all from the `matmul`, `column_sum` and `sgd_update`
//! kernels (the last is the embedding tables' own: a parameter is a table of
//! one row per output).

use crate::binding::{self, RowBlock};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::column_sum;
use crate::kernels::matmul::{self, MatmulArgs, MatmulOptions};
use crate::kernels::sgd_update::{self, SgdArgs, SgdGrad};
use crate::kernels::uniform_init::{self, Distribution, FillArgs};
use crate::recorder::{self, Recorder};
use crate::tensor::{numel, Tensor};

/// Options of `torch.nn.Linear` beyond the sizes, plus the initialisation seed.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearOptions {
    /// Add a learnable bias of `out_features` values.
    pub bias: bool,
    /// Seed of the U(−1/√in, 1/√in) initial weight and bias (a bound of 0,
    /// so a +0 bias, without inputs: PyTorch's). The weight takes
    /// elements `0 .. out·in` of the Philox stream, the bias the elements
    /// after them, so the two never share random numbers. `None` (default):
    /// drawn from the `Gpu`, as an embedding's is
    /// ([`EmbeddingOptions::seed`](crate::nn::EmbeddingOptions::seed)), so
    /// two layers differ; [`Linear::seed`] says which was used.
    pub seed: Option<u64>,
}

impl Default for LinearOptions {
    fn default() -> Self {
        LinearOptions {
            bias: true,
            seed: None,
        }
    }
}

/// Gradients of one backward pass, shaped like what they differentiate.
pub struct LinearGrad {
    /// dL/dx, the shape of the input.
    pub input: Tensor,
    /// dL/dW, `[out_features, in_features]`.
    pub weight: Tensor,
    /// dL/db, `[out_features]`, when the layer has a bias.
    pub bias: Option<Tensor>,
}

/// A dense layer on the GPU: weight `[out_features, in_features]`, optional bias `[out_features]`.
pub struct Linear {
    gpu: Gpu,
    weight: Tensor,
    bias: Option<Tensor>,
    in_features: usize,
    out_features: usize,
    seed: u64,
}

impl Linear {
    /// A layer with PyTorch's default initialisation, U(−1/√in, 1/√in) for
    /// weight and bias, from a seed drawn from the `Gpu` (see
    /// [`LinearOptions::seed`]).
    pub fn new(gpu: &Gpu, in_features: usize, out_features: usize, bias: bool) -> Result<Linear> {
        Linear::with_options(
            gpu,
            in_features,
            out_features,
            LinearOptions {
                bias,
                ..LinearOptions::default()
            },
        )
    }

    /// A layer initialised U(−1/√in, 1/√in) from `options.seed` (or, where
    /// that is `None`, one drawn from the `Gpu`).
    pub fn with_options(
        gpu: &Gpu,
        in_features: usize,
        out_features: usize,
        options: LinearOptions,
    ) -> Result<Linear> {
        let _scope = gpu.scope();
        let weight_len = numel("Linear weight", &[out_features, in_features])?;
        gpu.check_size("Linear weight", (weight_len as u64).saturating_mul(4), true)?;
        let weight = Tensor::zeros(gpu, &[out_features, in_features])?;
        let bias = if options.bias {
            Some(Tensor::zeros(gpu, &[out_features])?)
        } else {
            None
        };
        // Drawn only once the sizes passed their checks.
        let seed = options.seed.unwrap_or_else(|| gpu.draw_seed());
        // PyTorch's bound, 0 without inputs (its bias is then zeros, and a
        // layer of no features is allowed, as nn.Linear(0, n) or (n, 0)).
        let bound = match in_features {
            0 => 0.0,
            n => 1.0 / (n as f32).sqrt(),
        };
        let distribution = Distribution::Uniform {
            // +0 without inputs, as PyTorch's integer bound 0 gives (−0.0
            // would fill −0s).
            lo: 0.0 - bound,
            hi: bound,
        };
        let mut encoder = gpu.encoder("Linear init");
        uniform_init::encode(
            gpu,
            &mut encoder,
            &FillArgs {
                out: weight.buffer(),
                begin: 0,
                end: weight_len,
                counter_base: 0,
                seed,
                distribution,
                workgroup_size: None,
            },
        )?;
        if let Some(b) = &bias {
            uniform_init::encode(
                gpu,
                &mut encoder,
                &FillArgs {
                    out: b.buffer(),
                    begin: 0,
                    end: out_features,
                    counter_base: weight_len as u64,
                    seed,
                    distribution,
                    workgroup_size: None,
                },
            )?;
        }
        gpu.submit_and_wait(encoder)?;
        Ok(Linear {
            gpu: gpu.clone(),
            weight,
            bias,
            in_features,
            out_features,
            seed,
        })
    }

    /// The seed the layer was initialised from (drawn, unless the options
    /// gave one): [`LinearOptions`] with it build the same layer again.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.in_features
    }
    /// Output features.
    pub fn out_features(&self) -> usize {
        self.out_features
    }
    /// The `Gpu` it lives on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }
    /// The weight `[out_features, in_features]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
    /// The bias `[out_features]`, if the layer has one.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Replaces the weight (row-major `[out_features, in_features]`).
    pub fn set_weight(&mut self, weight: &[f32]) -> Result<()> {
        let expected = self.out_features * self.in_features;
        if weight.len() != expected {
            return Err(Error::LengthMismatch {
                what: "Linear::set_weight values (out_features × in_features)",
                expected,
                found: weight.len(),
            });
        }
        self.weight.write(weight)
    }

    /// Replaces the bias (`out_features` values); an error on a layer without one.
    pub fn set_bias(&mut self, bias: &[f32]) -> Result<()> {
        let Some(b) = &self.bias else {
            return Err(Error::InvalidArgument {
                name: "Linear::set_bias",
                reason: "the layer was built with bias = false".into(),
            });
        };
        if bias.len() != self.out_features {
            return Err(Error::LengthMismatch {
                what: "Linear::set_bias values (out_features)",
                expected: self.out_features,
                found: bias.len(),
            });
        }
        b.write(bias)
    }

    /// Rows of `x` (`[*, in_features]`, every leading dimension a batch
    /// dimension), or a shape error naming the expected and the given shape.
    fn batch_of(&self, x: &Tensor, what: &'static str) -> Result<usize> {
        x.check_gpu(&self.gpu, what)?;
        match x.shape().split_last() {
            // Checked: a tensor of no elements may have huge other dimensions.
            Some((&last, lead)) if last == self.in_features => numel(what, lead),
            _ => {
                let mut expected = x.shape().to_vec();
                match expected.last_mut() {
                    Some(l) => *l = self.in_features,
                    None => expected.push(self.in_features),
                }
                Err(Error::ShapeMismatch {
                    what,
                    expected,
                    found: x.shape().to_vec(),
                })
            }
        }
    }

    fn with_last(shape: &[usize], last: usize) -> Vec<usize> {
        let mut s = shape.to_vec();
        if let Some(l) = s.last_mut() {
            *l = last;
        }
        s
    }

    /// `y = x · Wᵀ + b` for `x` of shape `[*, in_features]`: `[*, out_features]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let _scope = self.gpu.scope();
        let batch = self.batch_of(x, "Linear::forward input [*, in_features]")?;
        // The matmul writes every element.
        let y = Tensor::uninit(&self.gpu, &Linear::with_last(x.shape(), self.out_features))?;
        let mut encoder = self.gpu.encoder("Linear::forward");
        recorder::record(&self.gpu, &mut encoder, |rec| {
            self.record_forward(rec, x, &y, batch)
        })?;
        self.gpu.submit_and_wait(encoder)?;
        Ok(y)
    }

    /// Records `y = x · Wᵀ + b` into the caller's encoder; `y` must be `[*, out_features]`
    /// with the same leading dimensions as `x`.
    pub fn encode_forward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        x: &Tensor,
        y: &Tensor,
    ) -> Result<()> {
        recorder::record(&self.gpu, encoder, |rec| {
            let batch = self.batch_of(x, "Linear::forward input [*, in_features]")?;
            self.check_like(
                y,
                &Linear::with_last(x.shape(), self.out_features),
                "Linear::forward output",
            )?;
            self.record_forward(rec, x, y, batch)
        })
    }

    fn record_forward(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        y: &Tensor,
        batch: usize,
    ) -> Result<()> {
        matmul::record(
            rec,
            &MatmulArgs {
                m: batch,
                n: self.out_features,
                k: self.in_features,
                a: x.buffer(),
                b: self.weight.buffer(),
                bias: self.bias.as_ref().map(|b| b.buffer()),
                c: y.buffer(),
                options: MatmulOptions {
                    trans_b: true,
                    ..MatmulOptions::default()
                },
                tiles: None,
                fuse_extras: None,
            },
        )
    }

    fn check_like(&self, t: &Tensor, expected: &[usize], what: &'static str) -> Result<()> {
        t.check_gpu(&self.gpu, what)?;
        if t.shape() != expected {
            return Err(Error::ShapeMismatch {
                what,
                expected: expected.to_vec(),
                found: t.shape().to_vec(),
            });
        }
        Ok(())
    }

    /// Gradients of a loss L with respect to input, weight and bias, given the
    /// forward input `x` and `grad_y` = dL/dy:
    /// dx = dy · W, dW = dyᵀ · x, db = Σ_batch dy.
    pub fn backward(&self, x: &Tensor, grad_y: &Tensor) -> Result<LinearGrad> {
        let _scope = self.gpu.scope();
        let batch = self.check_backward(x, grad_y)?;
        let grad = LinearGrad {
            input: Tensor::zeros(&self.gpu, x.shape())?,
            weight: Tensor::zeros(&self.gpu, &[self.out_features, self.in_features])?,
            bias: match self.bias {
                Some(_) => Some(Tensor::zeros(&self.gpu, &[self.out_features])?),
                None => None,
            },
        };
        let mut encoder = self.gpu.encoder("Linear::backward");
        recorder::record(&self.gpu, &mut encoder, |rec| {
            self.record_backward(rec, x, grad_y, &grad, false, batch)
        })?;
        self.gpu.submit_and_wait(encoder)?;
        Ok(grad)
    }

    /// Records the backward pass into the caller's encoder, writing `grad`'s
    /// tensors. With `accumulate`, the weight and bias gradients are added to
    /// what `grad` holds (gradient accumulation over micro-batches); the
    /// input gradient is always overwritten.
    pub fn encode_backward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        x: &Tensor,
        grad_y: &Tensor,
        grad: &LinearGrad,
        accumulate: bool,
    ) -> Result<()> {
        recorder::record(&self.gpu, encoder, |rec| {
            let batch = self.check_backward(x, grad_y)?;
            self.check_like(&grad.input, x.shape(), "Linear::backward input gradient")?;
            self.check_params_grad(grad, "Linear::backward weight or bias gradient")?;
            // Each product is checked alone, but dx is written before dW
            // reads x: a gradient sharing an input's buffer would change it.
            // (The bias is not read: left out, so its buffer is not marked
            // as the caller's.)
            let reads = [x.buffer(), grad_y.buffer(), self.weight.buffer()];
            let mut writes = vec![grad.input.buffer(), grad.weight.buffer()];
            writes.extend(grad.bias.as_ref().map(|b| b.buffer()));
            binding::check_no_alias("Linear::encode_backward", &reads, &writes)?;
            self.record_backward(rec, x, grad_y, grad, accumulate, batch)
        })
    }

    /// The batch of `x`, after checking `x` and `grad_y` (the output's shape).
    fn check_backward(&self, x: &Tensor, grad_y: &Tensor) -> Result<usize> {
        let batch = self.batch_of(x, "Linear::backward input [*, in_features]")?;
        self.check_like(
            grad_y,
            &Linear::with_last(x.shape(), self.out_features),
            "Linear::backward grad_y (the shape of the output)",
        )?;
        Ok(batch)
    }

    /// The weight and bias gradients match the layer's parameters.
    fn check_params_grad(&self, grad: &LinearGrad, what: &'static str) -> Result<()> {
        let weight = [self.out_features, self.in_features];
        self.check_like(&grad.weight, &weight, what)?;
        match (&self.bias, &grad.bias) {
            (Some(_), Some(gb)) => self.check_like(gb, &[self.out_features], what),
            (None, None) => Ok(()),
            _ => Err(Error::InvalidArgument {
                name: "LinearGrad::bias",
                reason: "must be Some exactly when the layer has a bias".into(),
            }),
        }
    }

    /// The three gradients, after the checks.
    fn record_backward(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        grad_y: &Tensor,
        grad: &LinearGrad,
        accumulate: bool,
        batch: usize,
    ) -> Result<()> {
        // dx [batch, in] = dy [batch, out] · W [out, in]
        matmul::record(
            rec,
            &MatmulArgs {
                m: batch,
                n: self.in_features,
                k: self.out_features,
                a: grad_y.buffer(),
                b: self.weight.buffer(),
                bias: None,
                c: grad.input.buffer(),
                options: MatmulOptions::default(),
                tiles: None,
                fuse_extras: None,
            },
        )?;
        // dW [out, in] = dyᵀ (dy stored [batch, out]) · x [batch, in]
        matmul::record(
            rec,
            &MatmulArgs {
                m: self.out_features,
                n: self.in_features,
                k: batch,
                a: grad_y.buffer(),
                b: x.buffer(),
                bias: None,
                c: grad.weight.buffer(),
                options: MatmulOptions {
                    trans_a: true,
                    accumulate,
                    ..MatmulOptions::default()
                },
                tiles: None,
                fuse_extras: None,
            },
        )?;
        if let Some(gb) = &grad.bias {
            column_sum::record(
                rec,
                batch,
                self.out_features,
                accumulate,
                grad_y.buffer(),
                gb.buffer(),
            )?;
        }
        Ok(())
    }

    /// `W -= lr · dW`, `b -= lr · db`: one plain SGD step.
    pub fn sgd_step(&mut self, grad: &LinearGrad, lr: f32) -> Result<()> {
        let _scope = self.gpu.scope();
        let mut encoder = self.gpu.encoder("Linear::sgd_step");
        self.encode_sgd_step(&mut encoder, grad, lr)?;
        self.gpu.submit_and_wait(encoder)
    }

    /// Records the SGD step into the caller's encoder. Every input is
    /// checked before anything is recorded.
    pub fn encode_sgd_step(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        grad: &LinearGrad,
        lr: f32,
    ) -> Result<()> {
        recorder::record(&self.gpu, encoder, |rec| {
            self.check_params_grad(grad, "Linear::sgd_step weight or bias gradient")?;
            super::check_rate("lr", lr)?;
            let params = std::iter::once((&grad.weight, &self.weight))
                .chain(grad.bias.iter().zip(&self.bias));
            // A parameter of no elements (a layer of no features) has nothing to step.
            for (g, w) in params.filter(|(_, w)| w.numel() > 0) {
                // W [out, in] and b [out] as tables of `out` rows.
                let rows = 0..self.out_features;
                let args = SgdArgs {
                    weight: RowBlock::new(w.buffer(), rows.clone()),
                    num_embeddings: self.out_features,
                    dim: w.numel() / self.out_features,
                    grad: SgdGrad::Dense(RowBlock::new(g.buffer(), rows)),
                    lr,
                    half: None,
                };
                sgd_update::record(rec, &args)?;
            }
            Ok(())
        })
    }
}

impl std::fmt::Debug for Linear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Linear(in_features={}, out_features={}, bias={} on {})",
            self.in_features,
            self.out_features,
            self.bias.is_some(),
            self.gpu.describe()
        )
    }
}
