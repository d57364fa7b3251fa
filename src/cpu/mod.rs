//! The CPU twins: one function per kernel, with the kernel's name, its
//! bindings as arguments in binding order, and loops shaped like the WGSL.
//! They are the specification the GPU kernels are tested against, bit for bit
//! wherever the arithmetic allows; read them first.

pub mod column_sum;
pub mod embedding_gather;
pub mod matmul;
pub mod one_hot;
pub mod sgd_step;
pub mod uniform_init;

pub use column_sum::column_sum;
pub use embedding_gather::embedding_gather;
pub use matmul::matmul;
pub use one_hot::one_hot;
pub use sgd_step::sgd_step;
pub use uniform_init::{bits_fill, normal_fill, philox4x32_10, soft_fma, uniform_fill};
