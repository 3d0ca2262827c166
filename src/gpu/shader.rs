//! Running WGSL compute shaders: the machinery every kernel family is built on.
//!
//! - [`ShaderFamily`] compiles one WGSL file once, builds a pipeline per entry point, and knows
//!   (from naga's analysis) which bindings each entry point uses, so a kernel file declares ONE
//!   binding table for all its entry points and every entry point binds just the slots it reads
//!   or writes. It also checks, on every bind, that a Params struct has exactly the byte size
//!   naga computes for the WGSL struct (convention 4 of DESIGN.md).
//! - [`Dispatch`] is one ready-to-record dispatch: pipeline, bind group, Params buffer and grid,
//!   built once and recorded as often as needed (the graph executor keeps them for every step).
//!
//! It lives beside the device, not in `kernels`, because the leaf harnesses (`crate::harness`,
//! `crate::bench`) need [`Dispatch`] and must not depend on any kernel family.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::mirror::Mirror;
use super::record::{self, Access, DispatchTrace, TracedBinding};
use super::{GpuContext, GpuError};

/// Something a kernel binds as a storage buffer: a whole buffer, or a [`BufferRange`] of one
/// (how the executor binds one layer's slice of the flat parameter and gradient buffers).
pub trait Bind {
    fn binding(&self) -> wgpu::BufferBinding<'_>;
    /// Bytes bound.
    fn size(&self) -> u64;
}

impl Bind for wgpu::Buffer {
    fn binding(&self) -> wgpu::BufferBinding<'_> {
        self.as_entire_buffer_binding()
    }
    fn size(&self) -> u64 {
        wgpu::Buffer::size(self)
    }
}

/// `size` bytes of `buffer` from `offset` (a multiple of the device's
/// `min_storage_buffer_offset_alignment`, 256 bytes at most).
#[derive(Debug, Clone, Copy)]
pub struct BufferRange<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub offset: u64,
    pub size: u64,
}

impl<'a> BufferRange<'a> {
    /// The first `size` bytes of what `b` binds.
    pub fn prefix(b: &'a dyn Bind, size: u64) -> Self {
        let binding = b.binding();
        Self {
            buffer: binding.buffer,
            offset: binding.offset,
            size,
        }
    }
}

impl Bind for BufferRange<'_> {
    fn binding(&self) -> wgpu::BufferBinding<'_> {
        wgpu::BufferBinding {
            buffer: self.buffer,
            offset: self.offset,
            size: std::num::NonZeroU64::new(self.size),
        }
    }
    fn size(&self) -> u64 {
        self.size
    }
}

/// Largest workgroup count per grid dimension that WebGPU guarantees.
pub const MAX_GROUPS_PER_DIM: u32 = 65535;

/// A 2-D grid with at least `groups` workgroups (x ≤ 65535). Shaders recover the linear
/// workgroup index as `wid.x + wid.y * nwg.x` and bounds-check it.
pub fn grid_1d(groups: u32) -> [u32; 3] {
    let groups = groups.max(1);
    if groups <= MAX_GROUPS_PER_DIM {
        [groups, 1, 1]
    } else {
        let y = groups.div_ceil(MAX_GROUPS_PER_DIM);
        [groups.div_ceil(y), y, 1]
    }
}

/// Workgroups of `wg` invocations needed to cover `n` items.
pub fn groups_for(n: usize, wg: u32) -> u32 {
    (n as u64).div_ceil(wg as u64).max(1) as u32
}

#[derive(Debug, Clone)]
struct BindingInfo {
    binding: u32,
    /// Byte size of a uniform's type (None for runtime-sized storage arrays).
    uniform_size: Option<u32>,
    /// A texture (the mirrors are `texture_storage_2d<rgba32float, read>`): bound to a
    /// [`Mirror`]'s view.
    texture: bool,
    access: Access,
    name: String,
}

/// What identifies a compiled [`ShaderFamily`] on a device: name, the WGSL itself (compared
/// in full: a hash collision must not hand out another shader's pipelines), the entry points
/// asked for and the override constants (as bits).
type FamilyKey = (&'static str, Arc<str>, Vec<String>, Vec<(String, u64)>);

/// The families compiled on one device ([`GpuContext`] holds one, shared by its clones):
/// building a family a second time with the same source, entries and constants clones the
/// first one's pipelines instead of compiling them again.
#[derive(Clone, Default)]
pub(crate) struct PipelineCache(Arc<Mutex<HashMap<FamilyKey, ShaderFamily>>>);

/// One WGSL file compiled once, with a pipeline per entry point.
#[derive(Clone)]
pub struct ShaderFamily {
    pub name: &'static str,
    pipelines: HashMap<String, wgpu::ComputePipeline>,
    /// Per entry point: the bindings of group 0 it uses, sorted by slot.
    uses: HashMap<String, Vec<BindingInfo>>,
    /// The WGSL and the override constants the pipelines were built with, for
    /// [`crate::gpu::record`].
    source: Arc<str>,
    constants: Vec<(String, f64)>,
}

/// The `lanes`-channel form of a WGSL file written for a lane of VW channels held in a `V`
/// (shaders/depthwise_conv2d.wgsl): the file declares `alias V = f32;` and
/// `const VW: u32 = 1u;` once each and its storage arrays as `array<V>`. Lanes 4 rewrites those
/// lines to `vec4<f32>` and `4u`; both forms spell the storage arrays out (`array<f32>` or
/// `array<vec4<f32>>`, which [`super::mirror::texture_form`] recognises). Local arrays
/// (`array<V, N>`) keep the alias. `Err` when the file lacks either line or `lanes` is not 1
/// or 4.
pub fn lane_form(source: &str, lanes: u32) -> Result<String, String> {
    let (ty, vw) = match lanes {
        1 => ("f32", "1u"),
        4 => ("vec4<f32>", "4u"),
        _ => return Err(format!("lane_form: {lanes} lanes (1 or 4)")),
    };
    let swaps = [
        ("alias V = f32;", format!("alias V = {ty};")),
        ("const VW: u32 = 1u;", format!("const VW: u32 = {vw};")),
    ];
    for (line, _) in &swaps {
        let found = source.lines().filter(|l| l.trim() == *line).count();
        if found != 1 {
            return Err(format!(
                "lane_form: `{line}` found {found} times, wants once"
            ));
        }
    }
    // Whole lines only: a comment that quotes either line stays as it is.
    let mut out = String::with_capacity(source.len() + 16);
    for l in source.lines() {
        match swaps.iter().find(|(line, _)| l.trim() == *line) {
            Some((_, with)) => out.push_str(with),
            None => out.push_str(l),
        }
        out.push('\n');
    }
    Ok(out.replace("array<V>", &format!("array<{ty}>")))
}

/// Parses and validates WGSL with naga, with every capability wgpu may grant (subgroups
/// included). Used by [`ShaderFamily`] and by the shader-validation test.
pub fn validate_wgsl(
    name: &str,
    source: &str,
) -> Result<(naga::Module, naga::valid::ModuleInfo), String> {
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| format!("{name}: parse error:\n{}", e.emit_to_string(source)))?;
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .map_err(|e| format!("{name}: validation error:\n{}", e.emit_to_string(source)))?;
    Ok((module, info))
}

/// The bindings of group 0 that one entry point uses (per naga's analysis), sorted by slot,
/// with each uniform's byte size.
fn bindings_used(
    name: &str,
    module: &naga::Module,
    fi: &naga::valid::FunctionInfo,
    layouter: &naga::proc::Layouter,
) -> Vec<BindingInfo> {
    let mut used: Vec<BindingInfo> = module
        .global_variables
        .iter()
        .filter(|(h, _)| !fi[*h].is_empty())
        .filter_map(|(_, g)| {
            let rb = g.binding.as_ref()?;
            assert_eq!(rb.group, 0, "{name}: only bind group 0 is used");
            let uniform_size =
                matches!(g.space, naga::AddressSpace::Uniform).then(|| layouter[g.ty].size);
            let texture = matches!(module.types[g.ty].inner, naga::TypeInner::Image { .. });
            let access = match g.space {
                naga::AddressSpace::Storage { access }
                    if access.contains(naga::StorageAccess::STORE) =>
                {
                    Access::ReadWrite
                }
                naga::AddressSpace::Storage { .. } => Access::Read,
                _ => Access::Uniform,
            };
            Some(BindingInfo {
                binding: rb.binding,
                uniform_size,
                texture,
                access,
                name: g.name.clone().unwrap_or_default(),
            })
        })
        .collect();
    used.sort_by_key(|b| b.binding);
    used
}

impl ShaderFamily {
    /// Compiles `source`, creating pipelines for `entries` (all entry points when empty) with
    /// the pipeline-overridable `constants` (e.g. `[("WG", 64.0)]`).
    pub fn new(
        ctx: &GpuContext,
        name: &'static str,
        source: &str,
        entries: &[&str],
        constants: &[(&str, f64)],
    ) -> Self {
        let source: Arc<str> = source.into();
        let key: FamilyKey = (
            name,
            source.clone(),
            entries.iter().map(|e| e.to_string()).collect(),
            constants
                .iter()
                .map(|&(k, v)| (k.to_string(), v.to_bits()))
                .collect(),
        );
        if let Some(f) = ctx.pipelines.0.lock().unwrap().get(&key) {
            return f.clone();
        }
        // Compiled outside the lock: another thread may compile the same family meanwhile
        // (both results are equal; the first stored is kept).
        let family = Self::compile(ctx, name, source, entries, constants);
        ctx.pipelines
            .0
            .lock()
            .unwrap()
            .entry(key)
            .or_insert(family)
            .clone()
    }

    fn compile(
        ctx: &GpuContext,
        name: &'static str,
        source: Arc<str>,
        entries: &[&str],
        constants: &[(&str, f64)],
    ) -> Self {
        let (module, info) = validate_wgsl(name, &source).unwrap_or_else(|e| panic!("{e}"));
        let mut layouter = naga::proc::Layouter::default();
        layouter
            .update(module.to_ctx())
            .expect("naga layout of a validated module");

        let shader = ctx
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(source.as_ref().into()),
            });

        // Only pass the constants this module declares: wgpu rejects unknown ones.
        let consts: Vec<(&str, f64)> = constants
            .iter()
            .copied()
            .filter(|(k, _)| {
                module
                    .overrides
                    .iter()
                    .any(|(_, o)| o.name.as_deref() == Some(*k))
            })
            .collect();
        let mut pipelines = HashMap::new();
        let mut uses = HashMap::new();
        for (i, ep) in module.entry_points.iter().enumerate() {
            if !entries.is_empty() && !entries.contains(&ep.name.as_str()) {
                continue;
            }
            let used = bindings_used(name, &module, info.get_entry_point(i), &layouter);
            let pipeline = ctx
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&format!("{name}::{}", ep.name)),
                    layout: None,
                    module: &shader,
                    entry_point: Some(&ep.name),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants: &consts,
                        zero_initialize_workgroup_memory: false,
                    },
                    cache: None,
                });
            pipelines.insert(ep.name.clone(), pipeline);
            uses.insert(ep.name.clone(), used);
        }
        for e in entries {
            assert!(
                pipelines.contains_key(*e),
                "{name}: no entry point '{e}' in the shader"
            );
        }
        Self {
            name,
            pipelines,
            uses,
            source,
            constants: consts.iter().map(|&(k, v)| (k.to_string(), v)).collect(),
        }
    }

    /// Builds a [`Dispatch`] of entry point `entry`. `slots[i]` is the buffer for binding `i`
    /// of the file's binding table (`None` for slots this entry point does not use); `params`,
    /// when given, is written into a fresh uniform buffer bound at the file's uniform slot.
    pub fn dispatch<P: bytemuck::Pod>(
        &self,
        ctx: &GpuContext,
        entry: &str,
        slots: &[Option<&dyn Bind>],
        params: Option<&P>,
        workgroups: [u32; 3],
    ) -> Dispatch {
        self.dispatch_mirrored(ctx, entry, slots, Vec::new(), params, workgroups)
    }

    /// [`Self::dispatch`] for an entry point that reads textures: `mirrors[i] = (slot,
    /// mirror)` binds the mirror's view at that slot, and the dispatch records each mirror's
    /// copy right before itself ([`record_all`]).
    pub fn dispatch_mirrored<P: bytemuck::Pod>(
        &self,
        ctx: &GpuContext,
        entry: &str,
        slots: &[Option<&dyn Bind>],
        mirrors: Vec<(u32, Mirror)>,
        params: Option<&P>,
        workgroups: [u32; 3],
    ) -> Dispatch {
        let pipeline = self
            .pipelines
            .get(entry)
            .unwrap_or_else(|| panic!("{}: no pipeline for entry point '{entry}'", self.name));
        let uses = &self.uses[entry];
        let params_buf = params.map(|p| ctx.uniform(&format!("{}::{entry} params", self.name), p));
        let entries: Vec<wgpu::BindGroupEntry> = uses
            .iter()
            .map(|b| {
                let resource = if let Some(size) = b.uniform_size {
                    let p = params_buf.as_ref().unwrap_or_else(|| {
                        panic!(
                            "{}::{entry} uses uniform '{}' but no params were given",
                            self.name, b.name
                        )
                    });
                    assert_eq!(
                        size as usize,
                        std::mem::size_of::<P>(),
                        "{}::{entry}: Rust Params struct is {} bytes but WGSL '{}' is {size}",
                        self.name,
                        std::mem::size_of::<P>(),
                        b.name
                    );
                    p.as_entire_binding()
                } else if b.texture {
                    let (_, m) = mirrors
                        .iter()
                        .find(|(s, _)| *s == b.binding)
                        .unwrap_or_else(|| {
                            panic!(
                                "{}::{entry} reads texture {} ('{}') but no mirror was given",
                                self.name, b.binding, b.name
                            )
                        });
                    wgpu::BindingResource::TextureView(m.view())
                } else {
                    let slot = slots
                        .get(b.binding as usize)
                        .copied()
                        .flatten()
                        .unwrap_or_else(|| {
                            panic!(
                                "{}::{entry} uses binding {} ('{}') but no buffer was given",
                                self.name, b.binding, b.name
                            )
                        });
                    wgpu::BindingResource::Buffer(slot.binding())
                };
                wgpu::BindGroupEntry {
                    binding: b.binding,
                    resource,
                }
            })
            .collect();
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&format!("{}::{entry}", self.name)),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let writes = uses
            .iter()
            .filter(|b| b.access == Access::ReadWrite && !b.texture)
            .filter_map(|b| slots.get(b.binding as usize).copied().flatten())
            .map(|s| {
                let bb = s.binding();
                (bb.buffer.clone(), bb.offset, s.size())
            })
            .collect();
        let trace = record::active().then(|| {
            Box::new(DispatchTrace {
                shader: self.name,
                source: self.source.clone(),
                entry: entry.to_string(),
                constants: self.constants.clone(),
                bindings: uses
                    .iter()
                    .map(|b| {
                        let slot = slots.get(b.binding as usize).copied().flatten();
                        let (buffer, offset, size) = match (b.access, slot) {
                            _ if b.texture => (None, 0, 0),
                            (Access::Uniform, _) | (_, None) => (None, 0, 0),
                            (_, Some(s)) => {
                                let bb = s.binding();
                                (Some(bb.buffer.clone()), bb.offset, s.size())
                            }
                        };
                        TracedBinding {
                            binding: b.binding,
                            access: b.access,
                            buffer,
                            offset,
                            size,
                        }
                    })
                    .collect(),
                params: Mutex::new(params.map(|p| bytemuck::bytes_of(p).to_vec())),
            })
        });
        Dispatch {
            label: format!("{}::{entry}", self.name),
            pipeline: pipeline.clone(),
            bind_group,
            workgroups,
            params: params_buf,
            trace,
            mirrors: mirrors.into_iter().map(|(_, m)| m).collect(),
            writes,
        }
    }

    /// The slots any of its entry points binds as textures.
    pub fn all_texture_slots(&self) -> Vec<u32> {
        let mut v: Vec<u32> = (self.uses.values().flatten())
            .filter(|b| b.texture)
            .map(|b| b.binding)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The slots `entry` binds as textures (texture mirrors, [`Self::dispatch_mirrored`]).
    pub fn texture_slots(&self, entry: &str) -> Vec<u32> {
        (self.uses.get(entry).into_iter().flatten())
            .filter(|b| b.texture)
            .map(|b| b.binding)
            .collect()
    }

    /// The byte size naga computes for the uniform used by `entry`, if any.
    pub fn uniform_size(&self, entry: &str) -> Option<u32> {
        self.uses.get(entry)?.iter().find_map(|b| b.uniform_size)
    }
}

/// One dispatch ready to record: built once, recorded any number of times.
pub struct Dispatch {
    pub label: String,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    pub workgroups: [u32; 3],
    params: Option<wgpu::Buffer>,
    /// What [`crate::gpu::record`] needs to replay it; built only while recording.
    pub(crate) trace: Option<Box<DispatchTrace>>,
    /// The texture mirrors it reads, copied right before it (outside its compute pass).
    pub(crate) mirrors: Vec<Mirror>,
    /// The buffer ranges it may write (its `read_write` storage bindings): a mirror of a range
    /// it overlaps is stale after it ([`copy_plan`]).
    writes: Vec<(wgpu::Buffer, u64, u64)>,
}

impl Dispatch {
    /// Rewrites this dispatch's Params uniform (a per-step seed, say) without rebuilding its
    /// bind group. The write lands before the next submission's commands run.
    pub fn write_params<P: bytemuck::Pod>(&self, ctx: &GpuContext, params: &P) {
        let buf = self
            .params
            .as_ref()
            .unwrap_or_else(|| panic!("{}: this dispatch has no Params uniform", self.label));
        assert_eq!(
            buf.size() as usize,
            std::mem::size_of::<P>(),
            "{}: Params size differs from the one it was built with",
            self.label
        );
        ctx.queue.write_buffer(buf, 0, bytemuck::bytes_of(params));
        if let Some(t) = &self.trace {
            *t.params.lock().expect("params lock") = Some(bytemuck::bytes_of(params).to_vec());
        }
    }

    /// True when it reads texture mirrors: their copies must be recorded outside a compute
    /// pass, right before it ([`record_all`] does).
    pub fn has_mirrors(&self) -> bool {
        !self.mirrors.is_empty()
    }

    /// Records the dispatch into an open compute pass. A dispatch that [`Self::has_mirrors`]
    /// needs its mirrors' copies first, outside the pass, where its textures do not already
    /// hold them: [`record_all`] does both.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
}

/// Records `dispatches` in order into compute passes of `enc`: one pass, or one more after
/// each dispatch's mirror copies (see [`record_all_timed`]).
pub fn record_all(enc: &mut wgpu::CommandEncoder, dispatches: &[&Dispatch]) {
    record_all_timed(enc, dispatches, None);
}

/// [`record_all`], with `timestamps = (set, begin, end)` writing query `begin` when the first
/// dispatch (or its mirror copies) starts and `end` when the last one ends.
pub fn record_all_timed(
    enc: &mut wgpu::CommandEncoder,
    dispatches: &[&Dispatch],
    timestamps: Option<(&wgpu::QuerySet, u32, u32)>,
) {
    record_all_continued(enc, dispatches, timestamps, &mut MirrorState::default());
}

/// [`record_all_timed`] for one of several lists recorded into the same encoder in turn:
/// `state` says what the mirror textures hold after the lists before (start each encoder with
/// a new one), so that a list's first dispatch skips a copy an earlier list already made.
pub fn record_all_continued<'d>(
    enc: &mut wgpu::CommandEncoder,
    dispatches: &[&'d Dispatch],
    timestamps: Option<(&wgpu::QuerySet, u32, u32)>,
    state: &mut MirrorState<'d>,
) {
    // WebGPU wants at least one index in a pass's timestamp writes.
    let writes = |begin: bool, end: bool| {
        let timestamps = timestamps.filter(|_| begin || end);
        timestamps.map(|(query_set, b, e)| wgpu::ComputePassTimestampWrites {
            query_set,
            beginning_of_pass_write_index: begin.then_some(b),
            end_of_pass_write_index: end.then_some(e),
        })
    };
    // Passes start at the first dispatch and at each one that has mirrors to copy first.
    let copies = state.plan(dispatches);
    let copying = |i: usize| copies[i].iter().any(|&c| c);
    let starts: Vec<usize> = (0..dispatches.len())
        .filter(|&i| i == 0 || copying(i))
        .collect();
    if starts.is_empty() || copying(0) {
        // An empty pass so that the begin timestamp precedes the first copies.
        drop(enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("gpucnn"),
            timestamp_writes: writes(true, starts.is_empty()),
        }));
    }
    for (j, &start) in starts.iter().enumerate() {
        let end = starts.get(j + 1).copied().unwrap_or(dispatches.len());
        for (m, &copy) in dispatches[start].mirrors.iter().zip(&copies[start]) {
            if copy {
                m.record(enc);
            }
        }
        let first = start == 0 && !copying(0);
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("gpucnn"),
            timestamp_writes: writes(first, end == dispatches.len()),
        });
        for d in &dispatches[start..end] {
            d.record(&mut pass);
        }
    }
}

/// What the texture mirrors hold at some point of an encoder's recording, as far as the
/// dispatches recorded into it so far say: for each texture, the buffer range its last copy
/// came from, while no dispatch since has written that range. Empty at the start of an encoder
/// (a texture's content from an earlier submission is never relied on).
#[derive(Default)]
pub struct MirrorState<'d> {
    held: Vec<&'d Mirror>,
}

impl<'d> MirrorState<'d> {
    /// For each of `dispatches`, recorded next in this order, which of its mirrors must be
    /// copied before it: not one that already holds its range (an earlier dispatch copied it
    /// there and nothing since wrote it: batch norm's second pass over x and dy, the weight
    /// gradient's bias sums over the dy its GEMM mirrored as B, the input gradient's GEMM
    /// over that dy again). A store costs lavapipe several texel fetches, and a copy both
    /// loads and stores every float (ARCHITECTURE.md, "What this adapter taught us").
    pub fn plan(&mut self, dispatches: &[&'d Dispatch]) -> Vec<Vec<bool>> {
        dispatches
            .iter()
            .map(|d| {
                let copies: Vec<bool> = (d.mirrors.iter())
                    .map(|m| !m.aliased() && !self.held.iter().any(|h| h.same_copy(m)))
                    .collect();
                for (m, _) in d.mirrors.iter().zip(&copies).filter(|(_, c)| **c) {
                    self.held.retain(|h| !h.same_texture(m));
                    self.held.push(m);
                }
                // What it writes, no mirror holds any longer.
                self.held.retain(|h| {
                    !(d.writes.iter()).any(|(buf, off, size)| h.copies_from(buf, *off, *size))
                });
                copies
            })
            .collect()
    }
}

/// [`MirrorState::plan`] from an empty state: the copies [`record_all`] makes for
/// `dispatches`, per dispatch and mirror.
pub fn copy_plan(dispatches: &[&Dispatch]) -> Vec<Vec<bool>> {
    MirrorState::default().plan(dispatches)
}

/// Records and runs `dispatches` in one submission, blocking until done. While
/// [`crate::gpu::record::record`] runs on this thread, it also traces them.
pub fn run_all(ctx: &GpuContext, dispatches: &[&Dispatch]) -> Result<(), GpuError> {
    if record::active() {
        return record::run_traced(ctx, dispatches);
    }
    run_all_untraced(ctx, dispatches)
}

pub(crate) fn run_all_untraced(ctx: &GpuContext, dispatches: &[&Dispatch]) -> Result<(), GpuError> {
    ctx.run(|enc| record_all(enc, dispatches))
}
