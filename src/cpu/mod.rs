//! The CPU twins: one function per kernel, with the kernel's name, its
//! bindings as arguments in binding order, and loops shaped like the WGSL.
//! They are the specification the GPU kernels are tested against, bit for bit
//! wherever the arithmetic allows; read them first.

pub mod buffer_copy;
pub mod embedding_bag;
pub mod embedding_gather;
pub mod one_hot;
pub mod uniform_init;

pub use buffer_copy::buffer_copy;
pub use embedding_bag::{embedding_bag, embedding_bag_f16, BagMode};
pub use embedding_gather::{embedding_gather, embedding_gather_f16};
pub use one_hot::one_hot;
pub use uniform_init::{bits_fill, normal_fill, philox4x32_10, soft_fma, uniform_fill};
