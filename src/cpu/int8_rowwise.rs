//! The int8 row-wise table format (FBGEMM's fused 8-bit row-wise): each
//! row is `dim` u8 codes followed by an f32 scale and an f32 bias (little
//! endian), value = scale · q + bias. [`quantize`] is FBGEMM's reference
//! quantizer (`FloatToFused8BitRowwiseQuantizedSBFloat`); [`value`] is the
//! twin of the shaders' int8 load (`q · scale + bias`: a product and a sum,
//! each rounded, as FBGEMM's reference dequantizer writes it).
//!
//! On the GPU a row is padded to whole u32 words: `dim.div_ceil(4)` words
//! of codes (code `c` in byte `c % 4` of word `c / 4`), then the scale's
//! and the bias's bits ([`words_per_row`]).

/// Bytes of one row in FBGEMM's layout: the codes, scale and bias.
pub fn fused_row_bytes(dim: usize) -> usize {
    // Saturating: a caller's huge dim is refused by a length check, not a wrap.
    dim.saturating_add(8)
}

/// u32 words of one row on the GPU: the codes padded to a word, scale, bias.
pub fn words_per_row(dim: usize) -> usize {
    dim.div_ceil(4) + 2
}

/// FBGEMM's reference quantizer, row by row: `scale = (max − min) / 255`,
/// `bias = min`, `q = round_half_even((x − min) · 255 / (max − min + 1e-8))`.
/// `data` is `rows × dim` f32; the result is `rows × (dim + 8)` bytes.
/// A row with a NaN or an infinity, or whose max − min overflows f32, gets
/// meaningless codes or a NaN scale, as FBGEMM's does: the library's
/// quantizing calls refuse such rows before they come here.
pub fn quantize(data: &[f32], dim: usize) -> Vec<u8> {
    let rows = data.len().checked_div(dim).unwrap_or(0);
    let mut out = Vec::with_capacity(rows * fused_row_bytes(dim));
    for row in data.chunks_exact(dim.max(1)).take(rows) {
        let min = row.iter().copied().fold(f32::INFINITY, f32::min);
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let range = max - min;
        let scale = range / 255.0;
        let inverse = 255.0 / (range + 1e-8);
        for &x in row {
            // lrintf in the default rounding mode: to nearest, ties to even.
            out.push(((x - min) * inverse).round_ties_even().clamp(0.0, 255.0) as u8);
        }
        out.extend_from_slice(&scale.to_le_bytes());
        out.extend_from_slice(&min.to_le_bytes());
    }
    out
}

/// Element `col` of row `row` of a table in FBGEMM's layout: `q · scale + bias`.
pub fn value(fused: &[u8], dim: usize, row: usize, col: usize) -> f32 {
    let base = row * fused_row_bytes(dim);
    let q = fused[base + col] as f32;
    let f = |at: usize| f32::from_le_bytes(fused[at..at + 4].try_into().expect("4 bytes"));
    q * f(base + dim) + f(base + dim + 4)
}

/// The whole table as f32 (`rows × dim`).
pub fn dequantize(fused: &[u8], dim: usize) -> Vec<f32> {
    dequantized(fused, dim).collect()
}

/// [`dequantize`]'s values in order, for a caller that allocates them
/// itself (the library, fallibly).
pub fn dequantized(fused: &[u8], dim: usize) -> impl Iterator<Item = f32> + '_ {
    let rows = fused.len() / fused_row_bytes(dim);
    (0..rows)
        .flat_map(move |r| (0..dim).map(move |c| (r, c)))
        .map(move |(r, c)| value(fused, dim, r, c))
}

/// FBGEMM rows as the GPU holds them: codes padded to whole words, then
/// scale and bias, each row [`words_per_row`] words.
pub fn to_words(fused: &[u8], dim: usize) -> Vec<u32> {
    let (stride, rows) = (fused_row_bytes(dim), fused.len() / fused_row_bytes(dim));
    let mut out = Vec::with_capacity(rows * words_per_row(dim));
    for row in fused.chunks_exact(stride) {
        for codes in row[..dim].chunks(4) {
            let mut w = [0u8; 4];
            w[..codes.len()].copy_from_slice(codes);
            out.push(u32::from_le_bytes(w));
        }
        out.push(u32::from_le_bytes(
            row[dim..dim + 4].try_into().expect("4 bytes"),
        ));
        out.push(u32::from_le_bytes(
            row[dim + 4..dim + 8].try_into().expect("4 bytes"),
        ));
    }
    out
}

/// The inverse of [`to_words`].
pub fn from_words(words: &[u32], dim: usize) -> Vec<u8> {
    let stride = words_per_row(dim);
    let rows = words.len() / stride.max(1);
    let mut out = Vec::with_capacity(rows * fused_row_bytes(dim));
    for row in words.chunks_exact(stride).take(rows) {
        let codes: Vec<u8> = row[..stride - 2]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        out.extend_from_slice(&codes[..dim]);
        out.extend_from_slice(&row[stride - 2].to_le_bytes());
        out.extend_from_slice(&row[stride - 1].to_le_bytes());
    }
    out
}

/// A table in FBGEMM's layout, for the twins that take any [`Rows`](super::Rows).
#[derive(Clone, Copy, Debug)]
pub struct Int8Rows<'a> {
    /// The rows as [`quantize`] writes them: `rows × (dim + 8)` bytes.
    pub fused: &'a [u8],
}

impl super::Rows for Int8Rows<'_> {
    fn rows(&self, dim: usize) -> usize {
        self.fused.len() / fused_row_bytes(dim)
    }
    fn value(&self, row: usize, col: usize, dim: usize) -> f32 {
        value(self.fused, dim, row, col)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FBGEMM rounds codes with lrintf: to nearest, ties to even. A range
    /// of 255 makes the inverse exactly 1, so 0.5 and 2.5 are ties (ties
    /// away from zero would give 1 and 3).
    #[test]
    fn codes_round_ties_to_even() {
        let fused = quantize(&[0.0, 0.5, 2.5, 255.0], 4);
        assert_eq!(&fused[..4], [0, 0, 2, 255]);
        assert_eq!(f32::from_le_bytes(fused[4..8].try_into().unwrap()), 1.0);
        assert_eq!(f32::from_le_bytes(fused[8..12].try_into().unwrap()), 0.0);
    }

    #[test]
    fn quantize_keeps_each_value_within_half_a_step() {
        let dim = 7;
        let data: Vec<f32> = (0..dim * 5)
            .map(|i| ((i * 37) % 23) as f32 * 0.37 - 3.0)
            .collect();
        let fused = quantize(&data, dim);
        assert_eq!(fused.len(), 5 * (dim + 8));
        let back = dequantize(&fused, dim);
        for (r, (row, got)) in data.chunks(dim).zip(back.chunks(dim)).enumerate() {
            let scale =
                f32::from_le_bytes(fused[r * 15 + dim..r * 15 + dim + 4].try_into().unwrap());
            for (x, y) in row.iter().zip(got) {
                assert!((x - y).abs() <= scale * 0.5 + 1e-6, "row {r}: {x} vs {y}");
            }
        }
        assert_eq!(from_words(&to_words(&fused, dim), dim), fused);
    }

    #[test]
    fn a_constant_row_is_exact() {
        let fused = quantize(&[2.5; 6], 6);
        assert_eq!(dequantize(&fused, 6), vec![2.5; 6]);
    }
}
