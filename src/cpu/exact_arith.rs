//! CPU twin of `shaders/exact_arith.wgsl`: Rust's own f32 operations, which
//! are IEEE 754's, rounded once to nearest even. The shader builds the same
//! results from integers; a NaN there is always `0x7FC00000`.

use crate::kernels::exact_arith::ExactOp;

/// `out[i] = a[i] op b[i]` (or `√a[i]`).
pub fn exact_arith(op: ExactOp, a: &[f32], b: &[f32], out: &mut [f32]) {
    assert!(
        a.len() == b.len() && b.len() == out.len(),
        "operands and output have the same length"
    );
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = match op {
            ExactOp::Mul => x * y,
            ExactOp::Div => x / y,
            ExactOp::Sqrt => x.sqrt(),
            ExactOp::Count => x.to_bits() as f32,
        };
    }
}
