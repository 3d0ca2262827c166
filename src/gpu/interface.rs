//! The interface of a WGSL file as naga sees it: what a program needs to dispatch one of its
//! entry points without reading the Rust side. Bindings (slot, name, address space and access,
//! type, the least bytes a binding may have, and which entry points read or write it), each
//! uniform struct's fields with their byte offsets, the pipeline-overridable constants with their
//! defaults, and per entry point its workgroup size (a number, or the override that sets it), the
//! storage buffers and workgroup memory it needs (WebGPU's default limits are 8 storage buffers
//! per stage and 16 KiB of workgroup memory).
//!
//! `shaders/interface/<file>.json` is this, for every file of `shaders/`, generated from the WGSL
//! by [`ShaderInterface::of`] (`tests/shader_interface.rs` fails when a committed file is stale,
//! and checks each shader's handwritten binding table against it). What naga cannot know (what a
//! binding holds, the dispatch grid, tiles and divisibility rules, limits) is in each file's
//! header. The JSON form needs the `serde` feature (on by default).

use naga::common::wgsl::TypeContext;

/// One WGSL file's interface.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ShaderInterface {
    /// The file's name without `.wgsl`.
    pub shader: String,
    /// Group 0's bindings, by slot (the kernels use no other group).
    pub bindings: Vec<Binding>,
    /// The uniform structs bound (each kernel's `Params`).
    pub uniforms: Vec<UniformStruct>,
    pub overrides: Vec<OverrideConst>,
    pub entry_points: Vec<EntryPoint>,
}

/// One binding of group 0.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Binding {
    pub slot: u32,
    pub name: String,
    /// `storage`, `uniform` or `texture` (a texture read by `textureLoad`: the mirrors are
    /// read-only storage textures).
    pub space: String,
    /// `read`, `read_write` (storage) or `read` (uniform, texture).
    pub access: String,
    /// The WGSL type, e.g. `array<f32>`, `array<vec4<f32>>`, `Params`.
    pub ty: String,
    /// The least size in bytes a bound buffer range may have: one element of a runtime-sized
    /// array, the whole struct of a uniform (WebGPU's minBindingSize).
    pub min_bytes: u32,
    /// Entry points that read it.
    pub read_by: Vec<String>,
    /// Entry points that write it.
    pub written_by: Vec<String>,
}

/// A uniform struct and its layout.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct UniformStruct {
    /// The struct's WGSL name (`Params`).
    pub name: String,
    /// The slot it is bound at.
    pub slot: u32,
    /// Its size in bytes (the Rust mirror must have exactly this size).
    pub size: u32,
    pub fields: Vec<Field>,
}

/// One field of a uniform struct.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Field {
    pub name: String,
    pub offset: u32,
    pub ty: String,
}

/// A pipeline-overridable constant.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct OverrideConst {
    pub name: String,
    pub ty: String,
    /// Its default (as WGSL writes it), when it has a literal one.
    pub default: Option<String>,
}

/// One compute entry point.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct EntryPoint {
    pub name: String,
    /// Per dimension: a number, or the name of the override that sets it (its default is in
    /// `overrides`), or `expression` when WGSL computes it from overrides.
    pub workgroup_size: [String; 3],
    /// The slots it binds: every slot it reads or writes, the uniform included.
    pub slots: Vec<u32>,
    /// Storage buffers it binds (WebGPU's default limit: 8 per stage).
    pub storage_buffers: u32,
    /// Bytes of workgroup memory it declares (WebGPU's default limit: 16,384).
    pub workgroup_bytes: u32,
}

fn literal(e: &naga::Expression) -> Option<String> {
    match e {
        naga::Expression::Literal(l) => Some(match *l {
            naga::Literal::F64(v) => format!("{v}"),
            naga::Literal::F32(v) => format!("{v}"),
            naga::Literal::U32(v) => format!("{v}"),
            naga::Literal::I32(v) => format!("{v}"),
            naga::Literal::U64(v) => format!("{v}"),
            naga::Literal::I64(v) => format!("{v}"),
            naga::Literal::Bool(v) => format!("{v}"),
            naga::Literal::AbstractInt(v) => format!("{v}"),
            naga::Literal::AbstractFloat(v) => format!("{v}"),
            other => format!("{other:?}"),
        }),
        _ => None,
    }
}

impl ShaderInterface {
    /// The interface of the WGSL `source` (named `name`), from naga's parse and analysis.
    pub fn of(name: &str, source: &str) -> Result<Self, String> {
        let (module, info) = super::shader::validate_wgsl(name, source)?;
        let mut layouter = naga::proc::Layouter::default();
        layouter
            .update(module.to_ctx())
            .map_err(|e| format!("{name}: layout: {e}"))?;
        let gctx = module.to_ctx();
        let type_name = |h| gctx.type_to_string(h);

        let mut bindings = Vec::new();
        let mut uniforms = Vec::new();
        for (h, g) in module.global_variables.iter() {
            let Some(rb) = &g.binding else { continue };
            if rb.group != 0 {
                return Err(format!(
                    "{name}: binding group {} (only 0 is used)",
                    rb.group
                ));
            }
            let (space, access) = match g.space {
                naga::AddressSpace::Uniform => ("uniform", "read"),
                naga::AddressSpace::Storage { access } => (
                    "storage",
                    if access.contains(naga::StorageAccess::STORE) {
                        "read_write"
                    } else {
                        "read"
                    },
                ),
                naga::AddressSpace::Handle
                    if matches!(module.types[g.ty].inner, naga::TypeInner::Image { .. }) =>
                {
                    ("texture", "read")
                }
                other => return Err(format!("{name}: binding in address space {other:?}")),
            };
            let inner = &module.types[g.ty].inner;
            let min_bytes = match *inner {
                naga::TypeInner::Array {
                    size: naga::ArraySize::Dynamic,
                    stride,
                    ..
                } => stride,
                _ => layouter[g.ty].size,
            };
            let (mut read_by, mut written_by) = (Vec::new(), Vec::new());
            for (i, ep) in module.entry_points.iter().enumerate() {
                let used = info.get_entry_point(i)[h];
                if used.contains(naga::valid::GlobalUse::READ) {
                    read_by.push(ep.name.clone());
                }
                if used.contains(naga::valid::GlobalUse::WRITE) {
                    written_by.push(ep.name.clone());
                }
            }
            let var = g.name.clone().unwrap_or_default();
            if let (naga::AddressSpace::Uniform, naga::TypeInner::Struct { members, span }) =
                (g.space, inner)
            {
                uniforms.push(UniformStruct {
                    name: module.types[g.ty].name.clone().unwrap_or_default(),
                    slot: rb.binding,
                    size: *span,
                    fields: (members.iter())
                        .map(|m| Field {
                            name: m.name.clone().unwrap_or_default(),
                            offset: m.offset,
                            ty: type_name(m.ty),
                        })
                        .collect(),
                });
            }
            bindings.push(Binding {
                slot: rb.binding,
                name: var,
                space: space.into(),
                access: access.into(),
                ty: type_name(g.ty),
                min_bytes,
                read_by,
                written_by,
            });
        }
        bindings.sort_by_key(|b| b.slot);
        uniforms.sort_by_key(|u| u.slot);

        let overrides = (module.overrides.iter())
            .map(|(_, o)| OverrideConst {
                name: o.name.clone().unwrap_or_default(),
                ty: type_name(o.ty),
                default: o.init.and_then(|e| literal(&module.global_expressions[e])),
            })
            .collect();

        let mut entry_points = Vec::new();
        for (i, ep) in module.entry_points.iter().enumerate() {
            if ep.stage != naga::ShaderStage::Compute {
                continue;
            }
            let fi = info.get_entry_point(i);
            let size = |d: usize| -> String {
                match ep.workgroup_size_overrides.and_then(|o| o[d]) {
                    None => ep.workgroup_size[d].to_string(),
                    Some(e) => match &module.global_expressions[e] {
                        naga::Expression::Override(o) => {
                            module.overrides[*o].name.clone().unwrap_or_default()
                        }
                        other => literal(other).unwrap_or_else(|| "expression".into()),
                    },
                }
            };
            let used: Vec<(naga::Handle<naga::GlobalVariable>, &naga::GlobalVariable)> =
                (module.global_variables.iter())
                    .filter(|(h, _)| !fi[*h].is_empty())
                    .collect();
            let mut slots: Vec<u32> = (used.iter())
                .filter_map(|(_, g)| g.binding.as_ref().map(|b| b.binding))
                .collect();
            slots.sort_unstable();
            let storage_buffers = (used.iter())
                .filter(|(_, g)| {
                    g.binding.is_some() && matches!(g.space, naga::AddressSpace::Storage { .. })
                })
                .count() as u32;
            let workgroup_bytes = (used.iter())
                .filter(|(_, g)| g.space == naga::AddressSpace::WorkGroup)
                .map(|(_, g)| layouter[g.ty].size)
                .sum();
            entry_points.push(EntryPoint {
                name: ep.name.clone(),
                workgroup_size: [size(0), size(1), size(2)],
                slots,
                storage_buffers,
                workgroup_bytes,
            });
        }
        Ok(Self {
            shader: name.into(),
            bindings,
            uniforms,
            overrides,
            entry_points,
        })
    }

    /// The interface of every file of `shaders`, in its order: (file name, WGSL) pairs such as
    /// `gpucnn::SHADERS`; the interface's name is the file's without `.wgsl`.
    pub fn of_files(shaders: &[(&str, &str)]) -> Result<Vec<Self>, String> {
        (shaders.iter())
            .map(|(file, src)| Self::of(file.trim_end_matches(".wgsl"), src))
            .collect()
    }

    /// Pretty-printed JSON, as `shaders/interface/<file>.json` holds it (newline-terminated).
    #[cfg(feature = "serde")]
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("serialisable");
        s.push('\n');
        s
    }
}
