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
         install the lavapipe software Vulkan driver: `apt-get update && apt-get install -y mesa-vulkan-drivers`"
    )]
    NoAdapter {
        /// The wgpu backends that were searched, as `wgpu::Backends`' `Debug`
        /// writes them.
        backends: String,
    },

    /// `WGPU_ADAPTER_NAME` / `--adapter` matched nothing.
    #[error("no adapter name contains {wanted:?}; adapters found: {available}")]
    AdapterNotFound {
        /// The substring asked for, lowercased (names match case-insensitively).
        wanted: String,
        /// Every adapter found, each with its backend.
        available: String,
    },

    /// The adapter refused to open a device.
    #[error("could not open a device on adapter {adapter:?}: {reason}")]
    RequestDevice {
        /// The adapter's name.
        adapter: String,
        /// wgpu's message.
        reason: String,
    },

    /// An index is not a row of the table.
    #[error(
        "index {index} at position {position} is out of range for a table of {num_embeddings} rows"
    )]
    IndexOutOfRange {
        /// The index's position in the list (for a GPU-resident list, the
        /// first bad position the kernel reported; for a sparse gradient's
        /// rows, the position among them).
        position: usize,
        /// The index's value.
        index: u64,
        /// The table's row count: valid indices are `0..num_embeddings`.
        num_embeddings: usize,
    },

    /// A range of rows (`rows_to_vec`) that runs past the tensor's or table's end.
    #[error("{count} rows from row {first} run past the end of {rows} rows")]
    RowsOutOfRange {
        /// The first row asked for.
        first: usize,
        /// How many rows were asked for.
        count: usize,
        /// How many rows there are.
        rows: usize,
    },

    /// A table with no rows or no columns.
    #[error(
        "an embedding table needs at least one row and one column, got {num_embeddings} × {dim}"
    )]
    EmptyTable {
        /// The rows asked for.
        num_embeddings: usize,
        /// The columns (embedding width) asked for.
        dim: usize,
    },

    /// A slice or buffer of the wrong length.
    #[error("{what}: expected {expected} elements, got {found}")]
    LengthMismatch {
        /// The argument or buffer, and how its length is counted.
        what: &'static str,
        /// The length it must have, in the unit `what` names: elements, u32
        /// words for a GPU buffer (two f16s a word), bytes for int8 row-wise data.
        expected: usize,
        /// The length it has, in the same unit.
        found: usize,
    },

    /// Two shapes that must agree do not.
    #[error("{what}: expected shape {expected:?}, got {found:?}")]
    ShapeMismatch {
        /// The tensor or argument.
        what: &'static str,
        /// The shape it must have.
        expected: Vec<usize>,
        /// The shape it has.
        found: Vec<usize>,
    },

    /// A buffer, binding or host allocation larger than the adapter (or
    /// the host) allows, in bytes.
    #[error("{what} needs {bytes} bytes, past the limit of {limit} bytes ({limit_name})")]
    TooLarge {
        /// The buffer, binding or allocation, and how its size is counted.
        what: &'static str,
        /// The bytes it needs.
        bytes: u64,
        /// The bytes the limit allows.
        limit: u64,
        /// Which limit: a `wgpu::Limits` field, or the host's.
        limit_name: &'static str,
    },

    /// A count, not bytes, past its limit: a length past the shaders' u32
    /// arithmetic or the host's `usize`, a texture side past the
    /// adapter's, workgroups past its dispatch size, loop iterations past
    /// a CPU adapter's budget. `limit_name` says which limit, and in what
    /// unit; `count` is exact (a u128 holds the product of two `usize`s).
    #[error("{what} is {count}, past the limit of {limit} ({limit_name})")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// The count asked for.
        count: u128,
        /// The largest count allowed.
        limit: u64,
        /// Which limit, and in what unit.
        limit_name: &'static str,
    },

    /// The host's allocator refused a buffer the call needs on the host (a
    /// readback of a very large tensor, a table loaded from a file, a 2-D
    /// bag batch's offsets), instead of aborting the process.
    #[error("{what} needs {bytes} bytes of host memory, which the allocator refused")]
    OutOfHostMemory {
        /// The host buffer.
        what: &'static str,
        /// The bytes it needed.
        bytes: u64,
    },

    /// `Table::buffer` (or a kernel called directly) on a table stored in
    /// several row-blocks: the one buffer asked for does not exist.
    #[error(
        "the table ({bytes} bytes) is stored as {chunks} row-blocks because it is larger than \
         one storage binding ({limit} bytes, max_storage_buffer_binding_size), so it has no \
         single buffer: use Table::blocks(); every Embedding and EmbeddingBag call handles blocks"
    )]
    ChunkedTable {
        /// How many row-blocks (buffers) hold the table.
        chunks: usize,
        /// The table's size in bytes.
        bytes: u64,
        /// The adapter's `max_storage_buffer_binding_size`, in bytes.
        limit: u64,
    },

    /// An argument outside its domain (a NaN bound, `lo > hi`, a negative std, …).
    #[error("invalid argument {name}: {reason}")]
    InvalidArgument {
        /// The argument's name, as the API spells it.
        name: &'static str,
        /// What is wrong with its value.
        reason: String,
    },

    /// A tensor made on one `Gpu` handed to a layer or kernel on another.
    #[error("{what} lives on a different Gpu (device) than the layer or kernel it was passed to")]
    DifferentGpu {
        /// The tensor or layer that came from another `Gpu`.
        what: &'static str,
    },

    /// The adapter lacks a feature this call needs.
    #[error("this call needs the adapter feature {feature}, which {adapter:?} does not have")]
    MissingFeature {
        /// The `wgpu::Features` flag (or capability) the call needs.
        feature: &'static str,
        /// The adapter's name.
        adapter: String,
    },

    /// Backward or an update on an embedding created with `freeze = true`.
    #[error("the embedding is frozen (freeze = true): it has no gradient and cannot be updated")]
    Frozen,

    /// wgpu reported a validation error (or another error of the device
    /// that is not a lack of memory).
    #[error("GPU error during {during}: {message}")]
    Gpu {
        /// The call or step that was recording or submitting.
        during: &'static str,
        /// wgpu's message.
        message: String,
    },

    /// The device ran out of memory (wgpu's out-of-memory error scope
    /// caught it): free tensors, or use smaller ones; nothing else is wrong.
    #[error("the GPU ran out of memory during {during}: {message}")]
    OutOfDeviceMemory {
        /// The call or step that was allocating, recording or submitting.
        during: &'static str,
        /// wgpu's message.
        message: String,
    },

    /// A submission did not finish within `GpuOptions::wait_timeout`: the
    /// GPU hangs, or the work is far longer than expected. The work may
    /// still finish later; what the call was to return is not returned.
    #[error("gave up on {during} after {seconds} s (GpuOptions::wait_timeout)")]
    Timeout {
        /// The wait that gave up.
        during: &'static str,
        /// How long it waited, in seconds.
        seconds: f64,
    },

    /// The device was lost (driver reset, unplugged, destroyed). Every later call returns this.
    #[error("the GPU device was lost ({reason}); create a new Gpu")]
    DeviceLost {
        /// wgpu's reason and message.
        reason: String,
    },

    /// `offsets` of an embedding bag that do not describe bags of the index list.
    #[error("offsets[{position}] = {offset}: {reason}")]
    InvalidOffsets {
        /// The position in `offsets` of the first bad entry.
        position: usize,
        /// Its value.
        offset: u64,
        /// Why it does not describe a bag (not starting at 0, decreasing, past
        /// the index list, a last offset that is not the list's length, …).
        reason: String,
    },

    /// A file could not be opened, read, written or parsed.
    #[error("{path}: {reason}")]
    File {
        /// The file's path, as given.
        path: String,
        /// What went wrong (the I/O error, or what the parser expected).
        reason: String,
    },

    /// A tensor in a file has an element type the table cannot hold.
    #[error("{path}: tensor {tensor:?} has dtype {found}, expected {expected}")]
    FileDType {
        /// The file's path, as given.
        path: String,
        /// The tensor's name in the file.
        tensor: String,
        /// The element types the table can take.
        expected: &'static str,
        /// The element type the file declares.
        found: String,
    },

    /// A tensor in a file is not a 2-D `[num_embeddings, dim]` table.
    #[error("{path}: tensor {tensor:?} has shape {found:?}, expected {expected}")]
    FileShape {
        /// The file's path, as given.
        path: String,
        /// The tensor's name in the file.
        tensor: String,
        /// The shape expected, in words.
        expected: &'static str,
        /// The shape the file declares.
        found: Vec<u64>,
    },

    /// A file holds fewer or more data bytes than its header declares.
    #[error("{path}: the header declares {expected} bytes of data, the file holds {found}")]
    FileSize {
        /// The file's path, as given.
        path: String,
        /// The data bytes the header declares.
        expected: u64,
        /// The data bytes the file holds.
        found: u64,
    },

    /// A safetensors file has no tensor of the requested name.
    #[error("{path}: no tensor named {name:?}; the file holds {available}")]
    TensorNotFound {
        /// The file's path, as given.
        path: String,
        /// The name asked for.
        name: String,
        /// The names the file holds.
        available: String,
    },

    /// Mapping a buffer for readback failed.
    #[error("reading {what} back from the GPU failed: {reason}")]
    Readback {
        /// What was being read.
        what: &'static str,
        /// wgpu's message.
        reason: String,
    },
}
