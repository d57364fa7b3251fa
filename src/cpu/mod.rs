//! The CPU twins: one function per kernel, with the kernel's name, its
//! bindings as arguments in binding order, and loops shaped like the WGSL.
//! They are the specification the GPU kernels are tested against, bit for bit
//! wherever the arithmetic allows; read them first. They assert their
//! length preconditions instead of returning errors: they are the
//! specification, not the checked API (the layers in `nn` validate input).

pub mod adam_step;
pub mod buffer_copy;
pub mod column_sum;
pub mod embedding_backward;
pub mod embedding_bag;
pub mod embedding_bag_backward;
pub mod embedding_gather;
pub mod embedding_renorm;
pub mod exact_arith;
pub mod exclusive_scan;
pub mod int8_rowwise;
pub mod matmul;
pub mod one_hot;
pub mod radix_sort;
pub mod row_histogram;
pub mod scatter_add_atomic;
pub mod segment_sum;
pub mod sgd_update;
pub mod uniform_init;

pub use adam_step::{adam_step, AdamArgs};
pub use buffer_copy::buffer_copy;
pub use column_sum::column_sum;
pub use embedding_backward::{
    embedding_backward_adagrad, embedding_backward_adam, embedding_backward_dense,
    embedding_backward_sgd, embedding_backward_sparse, BackwardOptions,
};
pub use embedding_bag::{embedding_bag, BagMode};
pub use embedding_bag_backward::{
    embedding_bag_backward_dense, embedding_bag_backward_sgd, embedding_bag_backward_sparse,
    BagBatch,
};
pub use embedding_gather::embedding_gather;
pub use embedding_renorm::embedding_renorm;
pub use exact_arith::exact_arith;
pub use exclusive_scan::{exclusive_scan, ScanMode};
pub use matmul::matmul;
pub use one_hot::one_hot;
pub use radix_sort::radix_sort;
pub use row_histogram::row_histogram;
pub use scatter_add_atomic::scatter_add_atomic;
pub use sgd_update::{f16_bits, sgd_dense, sgd_sparse, Half, Round16, Weights};
pub use uniform_init::{bits_fill, normal_fill, philox4x32_10, soft_fma, uniform_fill};

/// A table the lookup twins read: rows of `dim` values, each as f32 (f32
/// and f16 slices element by element, an int8 table through its row's
/// scale and bias).
pub trait Rows {
    /// Rows of `dim` values.
    fn rows(&self, dim: usize) -> usize;
    /// Column `col` of row `row`, as the shaders load it.
    fn value(&self, row: usize, col: usize, dim: usize) -> f32;
}

impl<T: Element> Rows for [T] {
    fn rows(&self, dim: usize) -> usize {
        self.len().checked_div(dim).unwrap_or(0)
    }
    fn value(&self, row: usize, col: usize, dim: usize) -> f32 {
        self[row * dim + col].widen()
    }
}

impl<T: Element> Rows for Vec<T> {
    fn rows(&self, dim: usize) -> usize {
        self.as_slice().rows(dim)
    }
    fn value(&self, row: usize, col: usize, dim: usize) -> f32 {
        self.as_slice().value(row, col, dim)
    }
}

/// An element of a stored table: f32, or f16 that the kernels widen to f32
/// on load (exactly). The twins of kernels that read either take `&[T]`.
pub trait Element: Copy {
    /// The value as f32.
    fn widen(self) -> f32;
}

impl Element for f32 {
    fn widen(self) -> f32 {
        self
    }
}

impl Element for half::f16 {
    fn widen(self) -> f32 {
        self.to_f32()
    }
}
