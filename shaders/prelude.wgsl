// prelude: what every kernel shares. `src/pipeline.rs` puts this text in
// front of every shader in this folder before compiling it (WGSL lets a
// module use a declaration before or after it, so a kernel reads these as
// if it had declared them itself). Not a kernel: it has no entry point, no
// host module and no CPU twin.

// Invocations per workgroup of the 1-D kernels, set by the host
// (`kernels::WORKGROUP_SIZE`, or a kernel's own choice). 2-D kernels
// declare their own workgroup shape and ignore it.
override WORKGROUP_SIZE: u32 = 256u;

// The status word of a batch whose indices were all in range. A bad index
// writes its position instead (the smallest bad one wins), so the word reads
// as "first bad position, or none" when the host reads it back.
const STATUS_OK: u32 = 0xFFFFFFFFu;

// A dispatch of more than `max_compute_workgroups_per_dimension` workgroups
// is folded by the host into an x × y grid, x as wide as allowed
// (`pipeline::grid`); these undo the fold.
fn workgroup_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// This invocation's linear index in a 1-D dispatch of WORKGROUP_SIZE-wide workgroups.
fn invocation(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return workgroup_index(wid, nwg) * WORKGROUP_SIZE + lid;
}
