//! Buffers past one storage binding: a [`Span`] is the byte range of a buffer
//! that one binding sees, and [`windows`] cuts a run of items (positions,
//! rows, bags) into ranges whose spans fit `max_storage_buffer_binding_size`
//! and start at offsets aligned to `min_storage_buffer_offset_alignment`.
//!
//! A buffer may be as large as `max_buffer_size` (2 GiB on lavapipe, which
//! binds only 128 MiB); kernels bind it one window at a time, one dispatch
//! per window. Outputs, index lists and gradients of any size up to that
//! limit work this way; tables go further, in row-blocks of their own
//! buffers ([`RowBlock`], `tensor::Table`).

use std::ops::Range;

use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// `size` bytes of `buffer` from `offset`, bound as one binding.
#[derive(Clone, Copy, Debug)]
pub struct Span<'a> {
    /// The buffer the binding is a window of.
    pub buffer: &'a wgpu::Buffer,
    /// Where the window starts, in bytes (a multiple of the adapter's
    /// `min_storage_buffer_offset_alignment` when it is bound).
    pub offset: u64,
    /// The window's length in bytes.
    pub size: u64,
}

impl<'a> Span<'a> {
    /// The whole buffer.
    pub fn whole(buffer: &'a wgpu::Buffer) -> Span<'a> {
        Span {
            buffer,
            offset: 0,
            size: buffer.size(),
        }
    }

    /// Items `range` of a buffer holding `item_bytes` per item from byte 0.
    /// An empty range binds the buffer's first word (wgpu rejects empty
    /// bindings, and one at the buffer's end would run past it): a kernel
    /// given no items reads none.
    pub fn items(buffer: &'a wgpu::Buffer, range: &Range<usize>, item_bytes: u64) -> Span<'a> {
        Span::whole(buffer).slice(range, item_bytes)
    }

    /// Items `range` of this span, `item_bytes` per item from its start,
    /// rounded up to whole words (an empty range: as [`items`](Self::items)).
    pub fn slice(&self, range: &Range<usize>, item_bytes: u64) -> Span<'a> {
        if range.is_empty() {
            return Span {
                buffer: self.buffer,
                offset: self.offset,
                size: self.size.min(4),
            };
        }
        // Whole words (a binding's size is a multiple of 4; f16 items of an
        // odd row width end mid-word), within the span.
        // Saturating: a range past any buffer makes a span the bind group
        // refuses with a typed error, never an overflow.
        let skip = (range.start as u64).saturating_mul(item_bytes);
        let size = (range.len() as u64)
            .saturating_mul(item_bytes)
            .saturating_add(3)
            / 4
            * 4;
        Span {
            buffer: self.buffer,
            offset: self.offset.saturating_add(skip),
            size: size.min(self.size.saturating_sub(skip)),
        }
    }

    /// The binding resource. An empty span binds one word (a zero size
    /// would mean "to the buffer's end" to wgpu): a kernel given no items
    /// reads none, and one at the buffer's end is refused, not widened.
    pub fn binding(&self) -> wgpu::BindingResource<'a> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.buffer,
            offset: self.offset,
            size: std::num::NonZeroU64::new(self.size.max(4)),
        })
    }
}

/// Table rows `rows`, stored from the start of `span`: one row-block of a
/// [`Table`](crate::Table) (the whole table when it fits one binding), or a
/// window of a buffer past one binding read as a table. Kernels that read
/// or write table rows take one of these (or a list), never a bare buffer.
#[derive(Clone, Debug)]
pub struct RowBlock<'a> {
    /// The table rows this block holds, `rows.start` at the span's first byte.
    pub rows: Range<usize>,
    /// The bytes that hold them.
    pub span: Span<'a>,
}

impl<'a> RowBlock<'a> {
    /// Rows `rows` held from the start of the whole `buffer`.
    pub fn new(buffer: &'a wgpu::Buffer, rows: Range<usize>) -> RowBlock<'a> {
        RowBlock {
            rows,
            span: Span::whole(buffer),
        }
    }
}

impl<'a> From<&'a wgpu::Buffer> for Span<'a> {
    fn from(buffer: &'a wgpu::Buffer) -> Span<'a> {
        Span::whole(buffer)
    }
}

/// The rows `blocks` hold together, when each block starts where the one
/// before it ends; `None` at a gap or an overlap (no blocks: `0..0`).
pub(crate) fn consecutive_rows(blocks: &[RowBlock]) -> Option<Range<usize>> {
    let start = blocks.first().map_or(0, |b| b.rows.start);
    let mut end = start;
    for block in blocks {
        if block.rows.start != end {
            return None;
        }
        end = block.rows.end;
    }
    Some(start..end)
}

/// `InvalidArgument` ("table blocks") unless `blocks` hold consecutive rows
/// ending within `num_embeddings` (a caller may pass some of a table's
/// blocks, or one; none is `0..0`).
pub(crate) fn check_consecutive_rows(blocks: &[RowBlock], num_embeddings: usize) -> Result<()> {
    match consecutive_rows(blocks) {
        Some(rows) if rows.end <= num_embeddings => Ok(()),
        _ => Err(Error::InvalidArgument {
            name: "table blocks",
            reason: format!(
                "blocks must hold consecutive rows within {num_embeddings} rows; they hold {:?}",
                blocks.iter().map(|b| b.rows.clone()).collect::<Vec<_>>()
            ),
        }),
    }
}

/// `LengthMismatch` naming `what` unless a binding of `size` bytes holds
/// `words` u32 or f32 words: the check a public `encode` makes on each buffer
/// a caller passes, so that a short buffer is an error, not a kernel that
/// reads zeros or drops writes.
pub(crate) fn check_holds(what: &'static str, size: u64, words: u64) -> Result<()> {
    let found = (size / 4) as usize;
    if found < words as usize || words > usize::MAX as u64 {
        return Err(Error::LengthMismatch {
            what,
            expected: words as usize,
            found,
        });
    }
    Ok(())
}

/// `InvalidArgument` naming `what` unless `span` (a caller's `RowBlock`)
/// can be bound: inside its buffer, at an offset the adapter binds at
/// (`min_storage_buffer_offset_alignment`), one or more whole words long. Checked before
/// anything is recorded; the bind group would refuse it only later, after
/// the call's earlier dispatches.
pub(crate) fn check_span(gpu: &Gpu, what: &'static str, span: &Span) -> Result<()> {
    let align = gpu.storage_offset_alignment();
    let inside = span
        .offset
        .checked_add(span.size)
        .is_some_and(|end| end <= span.buffer.size());
    // Empty is refused too: wgpu binds a zero size as "to the buffer's end".
    let words = span.size > 0 && span.size.is_multiple_of(4);
    if !inside || !span.offset.is_multiple_of(align) || !words {
        return Err(Error::InvalidArgument {
            name: "buffer span",
            reason: format!(
                "{what}: bytes {}..+{} of a buffer of {} bytes: a span must lie inside its \
                 buffer, start at a multiple of {align} (min_storage_buffer_offset_alignment) \
                 and be one or more whole u32 words",
                span.offset,
                span.size,
                span.buffer.size()
            ),
        });
    }
    Ok(())
}

/// `InvalidArgument` naming `kernel` when a buffer it reads is also one it
/// writes (wgpu refuses that in one dispatch, and a kernel that records a
/// clear or an earlier dispatch first must refuse it before them), or when
/// one buffer is passed for two outputs: wgpu allows two read-write bindings
/// of one buffer, and the kernel would race on it where the twin, with a
/// slice per output, cannot. For outputs that are whole buffers, or a
/// status word bound whole beside them, where two roles always overlap.
pub(crate) fn check_no_alias(
    kernel: &'static str,
    reads: &[&wgpu::Buffer],
    writes: &[&wgpu::Buffer],
) -> Result<()> {
    check_inputs_apart(kernel, reads, writes)?;
    let twice = writes
        .iter()
        .enumerate()
        .any(|(i, w)| writes[i + 1..].contains(w));
    if twice {
        return Err(Error::InvalidArgument {
            name: "buffers",
            reason: format!(
                "{kernel}: one buffer is passed for two outputs; pass a buffer per output"
            ),
        });
    }
    Ok(())
}

/// The first half of [`check_no_alias`], for a kernel whose outputs may be
/// disjoint spans of one buffer (`segment_sum`'s row-block targets), which
/// checks them with [`check_spans_apart`].
pub(crate) fn check_inputs_apart(
    kernel: &'static str,
    reads: &[&wgpu::Buffer],
    writes: &[&wgpu::Buffer],
) -> Result<()> {
    if reads.iter().any(|r| writes.contains(r)) {
        return Err(Error::InvalidArgument {
            name: "buffers",
            reason: format!(
                "{kernel}: one buffer is passed both as an input and as an output; pass \
                 distinct buffers"
            ),
        });
    }
    Ok(())
}

/// `InvalidArgument` naming `kernel` when two output spans of one buffer
/// share a byte: the rest of [`check_no_alias`] for a kernel whose outputs
/// may be disjoint spans of one buffer. Overlapping outputs would race in a
/// dispatch (or one target would overwrite another's rows) where the twin,
/// with a slice per output, cannot.
pub(crate) fn check_spans_apart(kernel: &'static str, spans: &[Span]) -> Result<()> {
    // Sorted by buffer, then offset: only neighbours can overlap first
    // (a table of many row-blocks makes many spans).
    let mut sorted: Vec<&Span> = spans.iter().collect();
    sorted.sort_by(|a, b| a.buffer.cmp(b.buffer).then(a.offset.cmp(&b.offset)));
    let clash = sorted
        .windows(2)
        .any(|w| w[0].buffer == w[1].buffer && w[1].offset < w[0].offset.saturating_add(w[0].size));
    if clash {
        return Err(Error::InvalidArgument {
            name: "buffers",
            reason: format!(
                "{kernel}: two outputs share bytes of one buffer; pass disjoint spans or \
                 a buffer per output"
            ),
        });
    }
    Ok(())
}

/// `TooLarge` naming `what` unless `size` bytes fit one storage binding:
/// for a buffer a kernel binds whole, checked before anything is recorded
/// (the bind group would refuse it later, after earlier work).
pub(crate) fn check_fits(gpu: &Gpu, what: &'static str, size: u64) -> Result<()> {
    let limit = gpu.max_binding_bytes();
    if size > limit {
        return Err(Error::TooLarge {
            what,
            bytes: size,
            limit,
            limit_name: "max_storage_buffer_binding_size (one binding)",
        });
    }
    Ok(())
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Items per alignment step: the smallest `g` such that `g · b` is a multiple
/// of the offset alignment for every `b` in `item_bytes`.
pub(crate) fn granularity(align: u64, item_bytes: &[u64]) -> u64 {
    item_bytes.iter().fold(1u64, |g, &b| {
        let need = align / gcd(align, b.max(1));
        g / gcd(g, need) * need
    })
}

/// Cuts items `0 .. count` into windows for arrays indexed by the same item,
/// `item_bytes[k]` bytes per item in array `k`: every window's span fits one
/// binding in every array, and every window but the first starts at a
/// multiple of the alignment granularity, so each array can be bound at the
/// window's byte offset. One window when everything fits; none when `count`
/// is 0. `TooLarge` names `what` when even one alignment step of items is
/// past a binding (an item of megabytes).
pub(crate) fn windows(
    gpu: &Gpu,
    count: usize,
    item_bytes: &[u64],
    what: &'static str,
) -> Result<Vec<Range<usize>>> {
    windows_within(gpu, count, item_bytes, gpu.max_binding_bytes(), what)
}

/// [`windows`] with spans of at most `limit` bytes (a binding less the room
/// a caller needs to bind from an aligned offset before the window).
pub(crate) fn windows_within(
    gpu: &Gpu,
    count: usize,
    item_bytes: &[u64],
    limit: u64,
    what: &'static str,
) -> Result<Vec<Range<usize>>> {
    let widest = item_bytes.iter().copied().max().unwrap_or(4).max(1);
    if count == 0 {
        return Ok(Vec::new());
    }
    if (count as u64).saturating_mul(widest) <= limit {
        return Ok(std::iter::once(0..count).collect());
    }
    let step = granularity(gpu.storage_offset_alignment(), item_bytes);
    let fit = limit / widest / step * step;
    if fit == 0 {
        return Err(Error::TooLarge {
            what,
            bytes: step.saturating_mul(widest),
            limit,
            limit_name: "max_storage_buffer_binding_size (one offset-alignment step of items)",
        });
    }
    let fit = fit as usize;
    Ok((0..count)
        .step_by(fit)
        .map(|a| a..(a + fit).min(count))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::granularity;

    #[test]
    fn granularity_is_the_smallest_aligned_step() {
        assert_eq!(granularity(32, &[4]), 8);
        assert_eq!(granularity(32, &[4, 48]), 8);
        assert_eq!(granularity(32, &[64]), 1);
        assert_eq!(granularity(256, &[4, 12]), 64);
        assert_eq!(granularity(4, &[4, 28]), 1);
        assert_eq!(granularity(32, &[28]), 8);
    }
}
