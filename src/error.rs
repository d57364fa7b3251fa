//! The crate's one error type. Every message names what was wrong, the value,
//! and the limit it broke, so the caller can act without reading our source.

use thiserror::Error;

/// Shorthand for `Result<T, wgpu_embed::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `wgpu_embed`. Library code returns these
/// instead of panicking on anything a caller can cause.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// No adapter at all: on a machine without a GPU install a software one.
    #[error(
        "no GPU adapter found (backends searched: {backends}). On a machine without a GPU, \
         install the lavapipe software Vulkan driver: `apt-get install -y mesa-vulkan-drivers`"
    )]
    NoAdapter { backends: String },

    /// `WGPU_ADAPTER_NAME` / `--adapter` matched nothing.
    #[error("no adapter name contains {wanted:?}; adapters found: {available}")]
    AdapterNotFound { wanted: String, available: String },

    /// The adapter refused to open a device.
    #[error("could not open a device on adapter {adapter:?}: {reason}")]
    RequestDevice { adapter: String, reason: String },

    /// An index is not a row of the table.
    #[error(
        "index {index} at position {position} is out of range for a table of {num_embeddings} rows"
    )]
    IndexOutOfRange {
        position: usize,
        index: u64,
        num_embeddings: usize,
    },

    /// A range of rows (`rows_to_vec`) that runs past the tensor's or table's end.
    #[error("{count} rows from row {first} run past the end of {rows} rows")]
    RowsOutOfRange {
        first: usize,
        count: usize,
        rows: usize,
    },

    /// A table with no rows or no columns.
    #[error(
        "an embedding table needs at least one row and one column, got {num_embeddings} × {dim}"
    )]
    EmptyTable { num_embeddings: usize, dim: usize },

    /// A slice or buffer of the wrong length.
    #[error("{what}: expected {expected} elements, got {found}")]
    LengthMismatch {
        what: &'static str,
        expected: usize,
        found: usize,
    },

    /// Two shapes that must agree do not.
    #[error("{what}: expected shape {expected:?}, got {found:?}")]
    ShapeMismatch {
        what: &'static str,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    /// A buffer, binding or host allocation larger than the adapter (or
    /// the host) allows, in bytes.
    #[error("{what} needs {bytes} bytes, past the limit of {limit} bytes ({limit_name})")]
    TooLarge {
        what: &'static str,
        bytes: u64,
        limit: u64,
        limit_name: &'static str,
    },

    /// A count, not bytes, past its limit: a length past the shaders' u32
    /// arithmetic or the host's `usize`, a texture side past the
    /// adapter's, workgroups past its dispatch size, loop iterations past
    /// a CPU adapter's budget. `limit_name` says which limit, and in what
    /// unit; `count` is exact (a u128 holds the product of two `usize`s).
    #[error("{what} is {count}, past the limit of {limit} ({limit_name})")]
    TooMany {
        what: &'static str,
        count: u128,
        limit: u64,
        limit_name: &'static str,
    },

    /// The host's allocator refused a buffer the call needs on the host
    /// (a readback of a very large tensor), instead of aborting the process.
    #[error("{what} needs {bytes} bytes of host memory, which the allocator refused")]
    OutOfHostMemory { what: &'static str, bytes: u64 },

    /// `Table::buffer` (or a kernel called directly) on a table stored in
    /// several row-blocks: the one buffer asked for does not exist.
    #[error(
        "the table ({bytes} bytes) is stored as {chunks} row-blocks because it is larger than \
         one storage binding ({limit} bytes, max_storage_buffer_binding_size), so it has no \
         single buffer: use Table::blocks(); every Embedding and EmbeddingBag call handles blocks"
    )]
    ChunkedTable {
        chunks: usize,
        bytes: u64,
        limit: u64,
    },

    /// An argument outside its domain (a NaN bound, `lo > hi`, a negative std, …).
    #[error("invalid argument {name}: {reason}")]
    InvalidArgument { name: &'static str, reason: String },

    /// A tensor made on one `Gpu` handed to a layer or kernel on another.
    #[error("{what} lives on a different Gpu (device) than the layer or kernel it was passed to")]
    DifferentGpu { what: &'static str },

    /// The adapter lacks a feature this call needs.
    #[error("this call needs the adapter feature {feature}, which {adapter:?} does not have")]
    MissingFeature {
        feature: &'static str,
        adapter: String,
    },

    /// Backward or an update on an embedding created with `freeze = true`.
    #[error("the embedding is frozen (freeze = true): it has no gradient and cannot be updated")]
    Frozen,

    /// wgpu reported a validation error or ran out of memory.
    #[error("GPU error during {during}: {message}")]
    Gpu {
        during: &'static str,
        message: String,
    },

    /// A submission did not finish within `GpuOptions::wait_timeout`: the
    /// GPU hangs, or the work is far longer than expected. The work may
    /// still finish later; what the call was to return is not returned.
    #[error("gave up on {during} after {seconds} s (GpuOptions::wait_timeout)")]
    Timeout { during: &'static str, seconds: f64 },

    /// The device was lost (driver reset, unplugged, destroyed). Every later call returns this.
    #[error("the GPU device was lost ({reason}); create a new Gpu")]
    DeviceLost { reason: String },

    /// `offsets` of an embedding bag that do not describe bags of the index list.
    #[error("offsets[{position}] = {offset}: {reason}")]
    InvalidOffsets {
        position: usize,
        offset: u64,
        reason: String,
    },

    /// A file could not be opened, read, written or parsed.
    #[error("{path}: {reason}")]
    File { path: String, reason: String },

    /// A tensor in a file has an element type the table cannot hold.
    #[error("{path}: tensor {tensor:?} has dtype {found}, expected {expected}")]
    FileDType {
        path: String,
        tensor: String,
        expected: &'static str,
        found: String,
    },

    /// A tensor in a file is not a 2-D `[num_embeddings, dim]` table.
    #[error("{path}: tensor {tensor:?} has shape {found:?}, expected {expected}")]
    FileShape {
        path: String,
        tensor: String,
        expected: &'static str,
        found: Vec<u64>,
    },

    /// A file holds fewer or more data bytes than its header declares.
    #[error("{path}: the header declares {expected} bytes of data, the file holds {found}")]
    FileSize {
        path: String,
        expected: u64,
        found: u64,
    },

    /// A safetensors file has no tensor of the requested name.
    #[error("{path}: no tensor named {name:?}; the file holds {available}")]
    TensorNotFound {
        path: String,
        name: String,
        available: String,
    },

    /// Mapping a buffer for readback failed.
    #[error("reading {what} back from the GPU failed: {reason}")]
    Readback { what: &'static str, reason: String },
}
