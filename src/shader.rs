//! Shader composition and reflection.
//!
//! A kernel's WGSL is composed here, not copied: `shaders/prelude.wgsl`
//! (the invocation index, the status code, the workgroup size) goes in front
//! of every shader, and a shader's variants (vec4 or scalar words, f32 or f16
//! storage) come from one body through `#ifdef NAME` / `#ifndef NAME` /
//! `#else` / `#endif` lines resolved for the entry's `defs` ([`compose`]).
//! A long shader may be kept in parts (`shaders/<name>.wgsl`, then the
//! files in `shaders/<name>/`), which its host module `concat!`s: WGSL
//! declarations may come in any order, and line numbers in messages count
//! from the first part.
//! Why not naga_oil (which does fit wgpu 30): it hands back naga IR, not
//! WGSL, so wgpu would need its IR path and the browser backend would get
//! WGSL written back out by naga instead of our source; it renames what a
//! module imports, and our override constants are set by name; and all we
//! need of it is `#ifdef`.
//!
//! Each entry point's bind-group layout is reflected from the composed
//! module with naga (the WGSL front end wgpu itself uses): the `@binding`s
//! that entry point uses, with the access the shader declares, so a binding
//! is written once, in the WGSL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::{Error, Result};

/// What every kernel shares; see the file's own comment.
pub(crate) const PRELUDE: &str = include_str!("../shaders/prelude.wgsl");

/// How a kernel sees one binding (reflected from the shader).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Uniform,
    Read,
    ReadWrite,
    /// A sampled texture (read with `textureLoad`; no sampler, so not filterable).
    Texture {
        view_dimension: wgpu::TextureViewDimension,
    },
    /// A storage texture.
    StorageTexture {
        format: wgpu::TextureFormat,
        access: wgpu::StorageTextureAccess,
        view_dimension: wgpu::TextureViewDimension,
    },
}

/// A kernel entry point: the WGSL file (by kernel name) and the entry's name.
/// Its bindings come from the shader itself ([`reflect`]).
pub(crate) struct KernelSpec {
    /// The kernel's one name: `shaders/<name>.wgsl`, `src/kernels/<name>.rs`, `src/cpu/<name>.rs`.
    pub name: &'static str,
    pub source: &'static str,
    pub entry: &'static str,
    /// The names defined for the shader's `#ifdef` blocks: which variant of
    /// the body this entry point is.
    pub defs: &'static [&'static str],
}

/// One entry point's group-0 bindings, in binding order.
pub(crate) type Bindings = Arc<Vec<(u32, Access)>>;
/// Every entry point of one module, by name.
type Reflected = HashMap<String, Bindings>;
/// Reflected modules by [`ModuleKey`].
type ReflectionCache = Mutex<HashMap<ModuleKey, Arc<Reflected>>>;
/// One composed module: (kernel name, defs). A kernel's name is its file,
/// so the pair names one composed text.
pub(crate) type ModuleKey = (&'static str, &'static [&'static str]);

pub(crate) fn module_key(spec: &KernelSpec) -> ModuleKey {
    (spec.name, spec.defs)
}

/// The composed WGSL of one variant of a kernel: the prelude, then the
/// kernel's file with its `#ifdef` blocks resolved for `defs`. Lines left
/// out become empty lines, so a compiler's line numbers still point into
/// the file (after the prelude's lines).
pub(crate) fn compose(source: &str, defs: &[&str]) -> std::result::Result<String, String> {
    // One entry per open block: (the enclosing block is on, this branch is on).
    let mut open: Vec<(bool, bool)> = Vec::new();
    let mut out = String::with_capacity(PRELUDE.len() + source.len() + 1);
    out.push_str(PRELUDE);
    out.push('\n');
    for (i, line) in source.lines().enumerate() {
        let on = open.last().is_none_or(|&(outer, this)| outer && this);
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["#ifdef", name] => open.push((on, defs.contains(name))),
            ["#ifndef", name] => open.push((on, !defs.contains(name))),
            ["#else"] => match open.last_mut() {
                Some(block) => block.1 = !block.1,
                None => return Err(format!("line {}: #else without #ifdef", i + 1)),
            },
            ["#endif"] if open.pop().is_none() => {
                return Err(format!("line {}: #endif without #ifdef", i + 1));
            }
            ["#endif"] => {}
            [first, ..] if first.starts_with('#') => {
                return Err(format!("line {}: unknown directive {first}", i + 1));
            }
            _ if on => out.push_str(line),
            _ => {}
        }
        out.push('\n');
    }
    if !open.is_empty() {
        return Err(format!("{} #ifdef block(s) never closed", open.len()));
    }
    Ok(out)
}

/// A kernel's composed WGSL, or the composition error as `Error::Gpu`.
pub(crate) fn composed(spec: &KernelSpec) -> Result<String> {
    compose(spec.source, spec.defs).map_err(|message| Error::Gpu {
        during: "shader composition",
        message: format!("shaders/{}.wgsl with {:?}: {message}", spec.name, spec.defs),
    })
}

/// `(binding, access)` of every group-0 binding that `entry` of the composed
/// `source` uses, in binding order. Parsed and validated once per process and
/// kernel file (a few milliseconds), then cached.
pub(crate) fn reflect(spec: &KernelSpec) -> Result<Bindings> {
    let (name, entry) = (spec.name, spec.entry);
    static CACHE: OnceLock<ReflectionCache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = module_key(spec);
    let cached = cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
        .cloned();
    let module = match cached {
        Some(m) => m,
        None => {
            let m = Arc::new(reflect_module(name, &composed(spec)?)?);
            cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, m.clone());
            m
        }
    };
    module
        .get(entry)
        .cloned()
        .ok_or_else(|| Error::InvalidArgument {
            name: "kernel entry point",
            reason: format!(
                "shaders/{name}.wgsl with {:?} has no entry point {entry:?}",
                spec.defs
            ),
        })
}

fn reflect_module(name: &str, wgsl: &str) -> Result<Reflected> {
    let shader_error = |message: String| Error::Gpu {
        during: "shader reflection",
        message: format!("shaders/{name}.wgsl (after the prelude): {message}"),
    };
    let module =
        naga::front::wgsl::parse_str(wgsl).map_err(|e| shader_error(e.emit_to_string(wgsl)))?;
    // Validation computes which globals each entry point uses; every
    // capability is allowed because this only reads the module (wgpu checks
    // the adapter's capabilities when it builds the pipeline).
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .map_err(|e| shader_error(e.emit_to_string(wgsl)))?;
    let mut out = HashMap::new();
    for (i, ep) in module.entry_points.iter().enumerate() {
        let uses = info.get_entry_point(i);
        let mut bindings = Vec::new();
        for (handle, var) in module.global_variables.iter() {
            let Some(rb) = &var.binding else { continue };
            if uses[handle].is_empty() {
                continue;
            }
            if rb.group != 0 {
                return Err(shader_error(format!(
                    "{} uses group {}; the kernels bind group 0 only",
                    ep.name, rb.group
                )));
            }
            let access = access(&module, var).ok_or_else(|| {
                shader_error(format!(
                    "binding {} has a type the kernels do not bind",
                    rb.binding
                ))
            })?;
            bindings.push((rb.binding, access));
        }
        bindings.sort_by_key(|&(b, _)| b);
        out.insert(ep.name.clone(), Arc::new(bindings));
    }
    Ok(out)
}

fn access(module: &naga::Module, var: &naga::GlobalVariable) -> Option<Access> {
    let view_dimension = |dim: naga::ImageDimension, arrayed: bool| match (dim, arrayed) {
        (naga::ImageDimension::D1, _) => wgpu::TextureViewDimension::D1,
        (naga::ImageDimension::D2, false) => wgpu::TextureViewDimension::D2,
        (naga::ImageDimension::D2, true) => wgpu::TextureViewDimension::D2Array,
        (naga::ImageDimension::D3, _) => wgpu::TextureViewDimension::D3,
        (naga::ImageDimension::Cube, false) => wgpu::TextureViewDimension::Cube,
        (naga::ImageDimension::Cube, true) => wgpu::TextureViewDimension::CubeArray,
    };
    match var.space {
        naga::AddressSpace::Uniform => Some(Access::Uniform),
        naga::AddressSpace::Storage { access } => {
            Some(if access.contains(naga::StorageAccess::STORE) {
                Access::ReadWrite
            } else {
                Access::Read
            })
        }
        naga::AddressSpace::Handle => match module.types[var.ty].inner {
            naga::TypeInner::Image {
                dim,
                arrayed,
                class:
                    naga::ImageClass::Sampled {
                        kind: naga::ScalarKind::Float,
                        multi: false,
                    },
            } => Some(Access::Texture {
                view_dimension: view_dimension(dim, arrayed),
            }),
            naga::TypeInner::Image {
                dim,
                arrayed,
                class: naga::ImageClass::Storage { format, access },
            } => Some(Access::StorageTexture {
                format: wgpu_naga_bridge::map_storage_format_from_naga(format),
                access: if access.contains(naga::StorageAccess::LOAD | naga::StorageAccess::STORE) {
                    wgpu::StorageTextureAccess::ReadWrite
                } else if access.contains(naga::StorageAccess::STORE) {
                    wgpu::StorageTextureAccess::WriteOnly
                } else {
                    wgpu::StorageTextureAccess::ReadOnly
                },
                view_dimension: view_dimension(dim, arrayed),
            }),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shader, composed with the prelude, parses and validates in naga
    /// and every entry point reflects to a non-empty layout: a composition
    /// error shows up here, on any machine, before any adapter compiles it.
    #[test]
    fn every_shader_composes_and_reflects() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("shaders/ is readable") {
            let path = entry.expect("a directory entry").path();
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            if path.extension().is_none_or(|e| e != "wgsl") || name == "prelude" {
                continue;
            }
            let mut source = std::fs::read_to_string(&path).expect("a shader is readable");
            // A shader in several files: shaders/<name>.wgsl, then the
            // parts in shaders/<name>/, in name order, then the files its
            // `// with: <path>` lines name, relative to shaders/ (as its
            // host module `concat!`s them).
            if let Ok(parts) = std::fs::read_dir(dir.join(name)) {
                let mut parts: Vec<_> = parts.map(|p| p.expect("a part").path()).collect();
                parts.sort();
                for part in parts {
                    source += &std::fs::read_to_string(&part).expect("a part is readable");
                }
            }
            let shared: Vec<String> = source
                .lines()
                .filter_map(|l| l.strip_prefix("// with: "))
                .map(|p| p.trim().to_string())
                .collect();
            for part in shared {
                source += &std::fs::read_to_string(dir.join(&part))
                    .unwrap_or_else(|e| panic!("{name}: its part {part}: {e}"));
            }
            let defs = variants(&source);
            for d in &defs {
                let d: Vec<&str> = d.iter().map(|s| s.as_str()).collect();
                let wgsl = compose(&source, &d).unwrap_or_else(|e| panic!("{name} {d:?}: {e}"));
                reflect_module(name, &wgsl).unwrap_or_else(|e| panic!("{name} {d:?}: {e}"));
            }
            let entries = reflect_module(name, &compose(&source, &[]).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!entries.is_empty(), "{name} has no entry point");
            for (entry, bindings) in &entries {
                assert!(!bindings.is_empty(), "{name}::{entry} binds nothing");
            }
            checked += 1;
        }
        assert!(
            checked >= 10,
            "only {checked} shaders found in {}",
            dir.display()
        );
    }

    /// Every combination of the names a shader's `#ifdef`s test (at most 2^4).
    fn variants(source: &str) -> Vec<Vec<String>> {
        let mut names: Vec<String> = source
            .lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                match w.as_slice() {
                    ["#ifdef" | "#ifndef", n] => Some(n.to_string()),
                    _ => None,
                }
            })
            .collect();
        names.sort();
        names.dedup();
        assert!(names.len() <= 4, "too many #ifdef names to try: {names:?}");
        (0..1u32 << names.len())
            .map(|bits| {
                (0..names.len())
                    .filter(|i| bits & (1 << i) != 0)
                    .map(|i| names[i].clone())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn compose_resolves_ifdef_blocks_and_keeps_line_numbers() {
        let src = "a\n#ifdef X\nb\n#ifndef Y\nc\n#else\nd\n#endif\n#else\ne\n#endif\nf";
        let body = |defs: &[&str]| compose(src, defs).unwrap()[PRELUDE.len() + 1..].to_string();
        assert_eq!(body(&[]), "a\n\n\n\n\n\n\n\n\ne\n\nf\n");
        assert_eq!(body(&["X"]), "a\n\nb\n\nc\n\n\n\n\n\n\nf\n");
        assert_eq!(body(&["X", "Y"]), "a\n\nb\n\n\n\nd\n\n\n\n\nf\n");
        assert!(compose("#ifdef X\n", &[]).is_err());
        assert!(compose("#endif\n", &[]).is_err());
        assert!(compose("#else\n", &[]).is_err());
        assert!(compose("#include x\n", &[]).is_err());
    }

    /// The reflected layout is what the WGSL declares: access modes, textures,
    /// and only the bindings the entry point uses.
    #[test]
    fn reflection_reads_access_and_use() {
        let wgsl = "
            @group(0) @binding(0) var<uniform> u: vec4<u32>;
            @group(0) @binding(1) var<storage, read> r: array<f32>;
            @group(0) @binding(2) var<storage, read_write> w: array<f32>;
            @group(0) @binding(3) var<storage, read_write> unused: array<f32>;
            @group(0) @binding(4) var t: texture_2d<f32>;
            @group(0) @binding(5) var s: texture_storage_2d<rgba32float, write>;
            @compute @workgroup_size(1) fn main() {
                w[0] = r[u.x] + textureLoad(t, vec2<u32>(0u), 0).x;
                textureStore(s, vec2<u32>(0u), vec4<f32>(0.0));
            }";
        let entries = reflect_module("test", &compose(wgsl, &[]).unwrap()).unwrap();
        let d2 = wgpu::TextureViewDimension::D2;
        assert_eq!(
            *entries["main"],
            vec![
                (0, Access::Uniform),
                (1, Access::Read),
                (2, Access::ReadWrite),
                (4, Access::Texture { view_dimension: d2 }),
                (
                    5,
                    Access::StorageTexture {
                        format: wgpu::TextureFormat::Rgba32Float,
                        access: wgpu::StorageTextureAccess::WriteOnly,
                        view_dimension: d2,
                    }
                ),
            ]
        );
    }
}
