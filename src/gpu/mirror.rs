//! Texture mirrors: a storage buffer's bound range copied into an rgba32float texture just
//! before a dispatch reads it through `textureLoad` (the textured GEMM,
//! shaders/gemm_subgroup64_texture.wgsl).
//!
//! On a CPU adapter such as lavapipe on an AVX2 machine, a storage-buffer load is a loop over
//! the lanes while a texel fetch is one vector gather (~7× measured: ARCHITECTURE.md, "What this
//! adapter taught us"). The mirrors are bound as read-only storage textures
//! (`texture_storage_2d<rgba32float, read>`, which WebGPU guarantees for this format), not as
//! sampled ones: Mesa 22.3 compiles a sampled `textureLoad` into a call that looks up the mip
//! level's size and offsets per lane (~150 instructions per fetch for 8 lanes), and a storage
//! texture's load into the gather alone, inline (~40). An encoder copy into a texture moves
//! ~1.3 G floats/s there, far cheaper than what a GEMM saves. Producers keep writing storage
//! buffers (texture stores cost more), and a [`Dispatch`](super::shader::Dispatch) carries the
//! [`Mirror`]s it reads: recording it closes the compute pass, records the copies its textures
//! do not already hold ([`MirrorState`](super::shader::MirrorState)), and opens the next pass.
//!
//! Texel i holds floats 4i .. 4i+3 of the range, at (i mod [`WIDTH`], i / [`WIDTH`]). A
//! [`MirrorScratch`] is one growing texture shared by every dispatch built from it: each
//! dispatch's copies run right before it, in the same command encoder, so dispatches recorded
//! one after another may share it (wgpu orders the copy after the previous pass's reads).
//! Every family of a device shares the same [`SHARED`] scratches ([`shared`]): a dispatch's
//! k-th mirrored operand goes to the k-th, so the mirrors cost the device two textures rather
//! than two per family. A training or inference step reserves its largest operand's size in
//! both before building its dispatches ([`reserve_shared`]), so each is made once at that size
//! ([`shared_bytes_for`]; a dispatch built without a reservation grows them geometrically).

use std::sync::{Arc, Mutex, OnceLock};

use super::GpuContext;
use super::shader::{Bind, Dispatch, ShaderFamily};

/// Texels per row of a mirror (the shaders' `TW_LOG2` is its log2). WebGPU's default
/// `maxTextureDimension2D` is 8192, so a mirror holds up to 8192 rows of it: 256 Mi floats.
pub const WIDTH: u32 = 8192;
/// Bytes of one rgba32float texel, and of one row of a mirror.
pub(crate) const TEXEL_BYTES: u64 = 16;
pub(crate) const ROW_BYTES: u64 = WIDTH as u64 * TEXEL_BYTES;

/// The WGSL type of a mirror in [`texture_form`]'s rewrites (part of the tuner's cache key:
/// kernels::tune::cache, since it changes what the textured variants cost).
pub const MIRROR_TYPE: &str = "texture_storage_2d<rgba32float, read>";

/// Mirrored operands one dispatch may read (the GEMM's A and B; x and dy; x and the
/// residual), and so the scratches a device holds.
pub const SHARED: usize = 2;

/// The device's `k`-th shared mirror scratch (`k` < [`SHARED`]): the k-th mirrored operand
/// of any dispatch (see the module doc).
pub fn shared(ctx: &GpuContext, k: usize) -> &MirrorScratch {
    const LABELS: [&str; SHARED] = ["texture mirror 0", "texture mirror 1"];
    let all = ctx
        .mirrors
        .get_or_init(|| LABELS.map(|label| MirrorScratch::new(ctx, label)));
    &all[k]
}

/// Bytes of all the shared mirror textures `ctx` has made (0 before any mirrored dispatch).
pub fn shared_bytes(ctx: &GpuContext) -> u64 {
    ctx.mirrors
        .get()
        .map_or(0, |all| all.iter().map(MirrorScratch::made_bytes).sum())
}

/// Makes every shared scratch of `ctx` hold at least `bytes` ([`MirrorScratch::reserve`]).
pub fn reserve_shared(ctx: &GpuContext, bytes: u64) {
    for k in 0..SHARED {
        shared(ctx, k).reserve(ctx, bytes);
    }
}

/// Rows of [`WIDTH`] texels that hold `bytes` (at least one).
fn rows_for(bytes: u64) -> u64 {
    bytes.div_ceil(TEXEL_BYTES).div_ceil(WIDTH as u64).max(1)
}

/// The bytes of shared mirror textures a program whose mirrored operands have at most
/// `largest` bytes makes on a device where it is the first, having reserved `largest`
/// ([`reserve_shared`]) before building its dispatches: one texture of whole rows per scratch.
/// Programs that share a device share the textures; a later, larger one replaces them with
/// its own (the earlier ones stay bound to the earlier programs' dispatches).
pub fn shared_bytes_for(largest: u64) -> u64 {
    SHARED as u64 * rows_for(largest) * ROW_BYTES
}

/// A mirror texture of `rows` rows of [`WIDTH`] rgba32float texels.
pub(crate) fn texture_desc(
    label: &str,
    rows: u32,
    usage: wgpu::TextureUsages,
) -> wgpu::TextureDescriptor<'_> {
    wgpu::TextureDescriptor {
        label: Some(label),
        size: wgpu::Extent3d {
            width: WIDTH,
            height: rows,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba32Float,
        usage,
        view_formats: &[],
    }
}

/// One mirror texture and its view.
struct MirrorTexture {
    texture: wgpu::Texture,
    view: wgpu::TextureView,
    rows: u32,
}

/// A texture that mirrors one operand of every dispatch built from it, grown to the largest
/// (see the module doc), and the 16-byte buffer through which a range's last partial texel
/// goes.
pub struct MirrorScratch {
    label: &'static str,
    current: Mutex<Option<Arc<MirrorTexture>>>,
    tail: wgpu::Buffer,
    /// Bytes of every texture this scratch has made (earlier ones stay bound to the dispatches
    /// built before a larger one replaced them).
    made_bytes: std::sync::atomic::AtomicU64,
}

/// A planned copy of a buffer range into a mirror texture: [`Self::record`] it before the
/// dispatch that binds [`Self::view`].
#[derive(Clone)]
pub struct Mirror {
    texture: Arc<MirrorTexture>,
    src: wgpu::Buffer,
    offset: u64,
    bytes: u64,
    tail: wgpu::Buffer,
    /// The texture views the buffer's own memory (gpu::alias): nothing to copy, ever.
    aliased: bool,
}

impl MirrorScratch {
    pub fn new(ctx: &GpuContext, label: &'static str) -> Self {
        let tail = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: TEXEL_BYTES,
            usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Self {
            label,
            current: Mutex::new(None),
            tail,
            made_bytes: Default::default(),
        }
    }

    /// Bytes of all the textures this scratch has made so far.
    pub fn made_bytes(&self) -> u64 {
        self.made_bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether `ctx`'s device can hold a mirror of `WIDTH` texels a row (`Err` says why not).
    pub fn supported(ctx: &GpuContext) -> Result<(), String> {
        let max = ctx.device.limits().max_texture_dimension_2d;
        if max < WIDTH {
            return Err(format!(
                "the device's maxTextureDimension2D is {max}, under the {WIDTH} texels a row of \
                 a texture mirror needs"
            ));
        }
        Ok(())
    }

    /// Makes the texture hold at least `bytes` (nothing where it already does, or where the
    /// device cannot hold a mirror that size: [`Self::mirror`] then says why at the dispatch
    /// that needs it). A program that knows its largest mirrored operand reserves it before
    /// building its dispatches, so the scratch makes one texture of that size instead of
    /// growing through smaller ones that stay bound to earlier dispatches.
    pub fn reserve(&self, ctx: &GpuContext, bytes: u64) {
        if Self::supported(ctx).is_err() || bytes == 0 {
            return;
        }
        let rows = rows_for(bytes);
        if rows <= ctx.device.limits().max_texture_dimension_2d as u64 {
            self.texture_of(ctx, rows, false);
        }
    }

    /// The current texture where it has at least `rows` rows (at most the device's limit),
    /// else a new one that replaces it: `rows` exactly, or, when `grow`, at least twice the
    /// old one's (so that a program built smallest-first makes few textures).
    fn texture_of(&self, ctx: &GpuContext, rows: u64, grow: bool) -> Arc<MirrorTexture> {
        let max_rows = ctx.device.limits().max_texture_dimension_2d as u64;
        let mut current = self.current.lock().expect("mirror lock");
        if let Some(t) = current.as_ref().filter(|t| t.rows as u64 >= rows) {
            return t.clone();
        }
        let grown = match current.as_ref() {
            Some(t) if grow => 2 * t.rows as u64,
            _ => 0,
        };
        let rows = rows.max(grown).min(max_rows) as u32;
        (self.made_bytes).fetch_add(
            rows as u64 * ROW_BYTES,
            std::sync::atomic::Ordering::Relaxed,
        );
        let usage = wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::COPY_DST;
        let texture = (ctx.device).create_texture(&texture_desc(self.label, rows, usage));
        let view = texture.create_view(&Default::default());
        let t = Arc::new(MirrorTexture {
            texture,
            view,
            rows,
        });
        *current = Some(t.clone());
        t
    }

    /// The copy that mirrors `src`'s bound range, growing the texture when the range is larger
    /// than any before; `Err` says why `src` cannot be mirrored (an offset that is not a
    /// multiple of 16 bytes, a buffer without COPY_SRC, more floats than a mirror holds).
    pub fn mirror(&self, ctx: &GpuContext, src: &dyn Bind) -> Result<Mirror, String> {
        Self::supported(ctx)?;
        let b = src.binding();
        let bytes = src.size();
        if !b.offset.is_multiple_of(TEXEL_BYTES) {
            return Err(format!(
                "bound at byte {}, not a multiple of {TEXEL_BYTES}",
                b.offset
            ));
        }
        if !b.buffer.usage().contains(wgpu::BufferUsages::COPY_SRC) {
            return Err("the buffer was made without COPY_SRC".into());
        }
        let rows = rows_for(bytes);
        let max_rows = ctx.device.limits().max_texture_dimension_2d as u64;
        if rows > max_rows {
            return Err(format!(
                "{bytes} bytes need {rows} rows of {WIDTH} texels, over the device's {max_rows}"
            ));
        }
        if let Some(texture) = ctx.aliased_texture(b.buffer, b.offset, rows as u32) {
            let view = texture.create_view(&Default::default());
            return Ok(Mirror {
                texture: Arc::new(MirrorTexture {
                    texture,
                    view,
                    rows: rows as u32,
                }),
                src: b.buffer.clone(),
                offset: b.offset,
                bytes,
                tail: self.tail.clone(),
                aliased: true,
            });
        }
        let texture = self.texture_of(ctx, rows, true);
        Ok(Mirror {
            texture,
            src: b.buffer.clone(),
            offset: b.offset,
            bytes,
            tail: self.tail.clone(),
            aliased: false,
        })
    }
}

impl Mirror {
    /// Whether `other` copies into the same texture.
    pub fn same_texture(&self, other: &Mirror) -> bool {
        Arc::ptr_eq(&self.texture, &other.texture)
    }

    /// Whether `other` copies the same range of the same buffer into the same texture, so
    /// that after either copy the texture holds what the other would have put there.
    pub fn same_copy(&self, other: &Mirror) -> bool {
        self.same_texture(other)
            && self.src == other.src
            && self.offset == other.offset
            && self.bytes == other.bytes
    }

    /// Whether it copies from any of the `size` bytes of `buffer` at `offset`.
    pub fn copies_from(&self, buffer: &wgpu::Buffer, offset: u64, size: u64) -> bool {
        self.src == *buffer && self.offset < offset + size && offset < self.offset + self.bytes
    }

    /// Whether the texture views the buffer's own memory (`gpu::alias`), so that it
    /// always holds what the buffer holds and is never copied.
    pub fn aliased(&self) -> bool {
        self.aliased
    }

    /// The texture view to bind.
    pub fn view(&self) -> &wgpu::TextureView {
        &self.texture.view
    }

    /// Floats mirrored.
    pub fn floats(&self) -> u64 {
        self.bytes / 4
    }

    /// Records the copies (outside any pass): whole rows of texels, the last partial row, and
    /// a last partial texel through the tail buffer.
    pub fn record(&self, enc: &mut wgpu::CommandEncoder) {
        let texels = self.bytes / TEXEL_BYTES;
        let w = WIDTH as u64;
        let (full_rows, last) = (texels / w, (texels % w) as u32);
        let tex = &self.texture.texture;
        let to = |x: u32, y: u64| wgpu::TexelCopyTextureInfo {
            texture: tex,
            mip_level: 0,
            origin: wgpu::Origin3d {
                x,
                y: y as u32,
                z: 0,
            },
            aspect: wgpu::TextureAspect::All,
        };
        fn from(buffer: &wgpu::Buffer, offset: u64) -> wgpu::TexelCopyBufferInfo<'_> {
            wgpu::TexelCopyBufferInfo {
                buffer,
                layout: wgpu::TexelCopyBufferLayout {
                    offset,
                    bytes_per_row: Some(ROW_BYTES as u32),
                    rows_per_image: None,
                },
            }
        }
        let extent = |width: u32, height: u64| wgpu::Extent3d {
            width,
            height: height as u32,
            depth_or_array_layers: 1,
        };
        if full_rows > 0 {
            enc.copy_buffer_to_texture(
                from(&self.src, self.offset),
                to(0, 0),
                extent(WIDTH, full_rows),
            );
        }
        if last > 0 {
            enc.copy_buffer_to_texture(
                from(&self.src, self.offset + full_rows * ROW_BYTES),
                to(0, full_rows),
                extent(last, 1),
            );
        }
        let rest = self.bytes % TEXEL_BYTES;
        if rest > 0 {
            // The floats past the range in the tail texel are stale: no index reads them.
            let at = texels * TEXEL_BYTES;
            enc.copy_buffer_to_buffer(&self.src, self.offset + at, &self.tail, 0, rest);
            enc.copy_buffer_to_texture(
                from(&self.tail, 0),
                to((texels % w) as u32, texels / w),
                extent(1, 1),
            );
        }
    }
}

/// A WGSL file compiled in its [`texture_form`] for some read-only arrays: each dispatch copies
/// the buffers bound at those slots into texture mirrors (one [`MirrorScratch`] per slot, shared
/// by the family's dispatches) and reads them with `textureLoad`. A dispatch whose buffers
/// cannot be mirrored runs the storage form instead, compiled on first need. With no arrays
/// named, the texture form is the file itself and every dispatch is a plain one: kernels with
/// a storage and a texture variant hold one of these either way.
pub struct MirroredFamily {
    textured: ShaderFamily,
    storage: OnceLock<ShaderFamily>,
    name: &'static str,
    source: String,
    entries: Vec<&'static str>,
    constants: Vec<(&'static str, f64)>,
    /// The texture slots, in order: slot `slots[k]` is mirrored through [`shared`] scratch k
    /// (rotated by [`Self::dispatch_rotated`]).
    slots: Vec<u32>,
}

impl MirroredFamily {
    /// [`ShaderFamily::new`] (`entries` empty: all) of the texture form of `source` in which
    /// `names` are mirrored; panics if the form cannot be made (a programming error, caught by the family's tests).
    pub fn new(
        ctx: &GpuContext,
        name: &'static str,
        source: &str,
        names: &[&str],
        entries: &[&'static str],
        constants: &[(&'static str, f64)],
    ) -> Self {
        let form = texture_form(source, names).unwrap_or_else(|e| panic!("{name}: {e}"));
        let textured = ShaderFamily::new(ctx, name, &form, entries, constants);
        let mut slots = textured.all_texture_slots();
        slots.sort_unstable();
        assert!(
            slots.len() <= SHARED,
            "{name}: {} mirrored arrays, over the {SHARED} shared mirrors",
            slots.len()
        );
        Self {
            textured,
            storage: OnceLock::new(),
            name,
            source: source.to_string(),
            entries: entries.to_vec(),
            constants: constants.to_vec(),
            slots,
        }
    }

    /// [`ShaderFamily::dispatch`]: the textured pipeline with the buffers at its texture slots
    /// mirrored, or the storage one where any of them cannot be.
    pub fn dispatch<P: bytemuck::Pod>(
        &self,
        ctx: &GpuContext,
        entry: &str,
        slots: &[Option<&dyn Bind>],
        params: Option<&P>,
        workgroups: [u32; 3],
    ) -> Dispatch {
        self.dispatch_rotated(ctx, entry, slots, params, workgroups, 0)
    }

    /// [`Self::dispatch`] with its k-th mirrored array in shared scratch (k + rotate) mod
    /// [`SHARED`]: a dispatch that reads what another dispatch mirrored at another position
    /// then finds it where that one left it ([`MirrorState`](super::shader::MirrorState)):
    /// the depthwise input gradient reads dy at `src` and x at `grad`, its weight gradient
    /// the reverse; the weight gradient's bias sums read dy, which its GEMM mirrored as B.
    pub fn dispatch_rotated<P: bytemuck::Pod>(
        &self,
        ctx: &GpuContext,
        entry: &str,
        slots: &[Option<&dyn Bind>],
        params: Option<&P>,
        workgroups: [u32; 3],
        rotate: usize,
    ) -> Dispatch {
        let mut mirrors = Vec::new();
        for slot in self.textured.texture_slots(entry) {
            let buffer = slots.get(slot as usize).copied().flatten();
            let scratch = self.slots.iter().position(|&s| s == slot);
            let mirror = buffer
                .zip(scratch)
                .and_then(|(b, k)| shared(ctx, (k + rotate) % SHARED).mirror(ctx, b).ok());
            match mirror {
                Some(m) => mirrors.push((slot, m)),
                None => {
                    let storage = self.storage.get_or_init(|| {
                        ShaderFamily::new(
                            ctx,
                            self.name,
                            &self.source,
                            &self.entries,
                            &self.constants,
                        )
                    });
                    return storage.dispatch(ctx, entry, slots, params, workgroups);
                }
            }
        }
        (self.textured).dispatch_mirrored(ctx, entry, slots, mirrors, params, workgroups)
    }
}

/// Channels per lane for a tensor of `c` channels: 4 (a vec4, one texel of a mirror) when C
/// is divisible by 4, else 1.
pub fn lanes_for(c: usize) -> usize {
    if c.is_multiple_of(4) { 4 } else { 1 }
}

/// A WGSL file written for a lane of VW channels ([`super::shader::lane_form`]) as the
/// [`MirroredFamily`] of its one- and its four-channel form, each compiled on first use and
/// each under its own name (`names[0]`, `names[1]`): traces for other engines key the WGSL by
/// the family's name.
pub struct LaneFamilies {
    names: [&'static str; 2],
    source: &'static str,
    mirrored: &'static [&'static str],
    entries: &'static [&'static str],
    constants: Vec<(&'static str, f64)>,
    forms: [OnceLock<MirroredFamily>; 2],
}

impl LaneFamilies {
    /// Nothing is compiled until [`Self::get`]; arguments as [`MirroredFamily::new`].
    pub fn new(
        names: [&'static str; 2],
        source: &'static str,
        mirrored: &'static [&'static str],
        entries: &'static [&'static str],
        constants: Vec<(&'static str, f64)>,
    ) -> Self {
        Self {
            names,
            source,
            mirrored,
            entries,
            constants,
            forms: [OnceLock::new(), OnceLock::new()],
        }
    }

    /// The family of the `lanes`-channel form (1 or 4, [`lanes_for`]).
    pub fn get(&self, ctx: &GpuContext, lanes: usize) -> &MirroredFamily {
        let i = (lanes == 4) as usize;
        self.forms[i].get_or_init(|| {
            let source = super::shader::lane_form(self.source, lanes as u32)
                .unwrap_or_else(|e| panic!("{}: {e}", self.names[i]));
            let (m, e, c) = (self.mirrored, self.entries, &self.constants);
            MirroredFamily::new(ctx, self.names[i], &source, m, e, c)
        })
    }
}

/// The texture form of `source`: each read-only storage array named in `names` (`array<f32>`
/// or `array<vec4<f32>>`, at its own binding slot) becomes a read-only rgba32float storage
/// texture (`texture_storage_2d<rgba32float, read>`) mirror at the
/// same slot, and every `NAME[i]` in the code (comments are left alone) a fetch of element i
/// from it (`mirror_NAME(i)`: the texel's component for f32, the texel for vec4). Everything else
/// is unchanged, so the form computes what the storage form computes; `Err` names what cannot
/// be rewritten (a name that is not such an array, or one used other than by indexing within
/// a line, as `arrayLength(&NAME)` is).
pub fn texture_form(source: &str, names: &[&str]) -> Result<String, String> {
    let mut s = source.to_string();
    for name in names {
        let found = [false, true].into_iter().find_map(|vec4| {
            let ty = if vec4 {
                "array<vec4<f32>>"
            } else {
                "array<f32>"
            };
            let tail = format!(" var<storage, read> {name}: {ty};");
            let line = s
                .lines()
                .find(|l| l.starts_with("@group(0) @binding(") && l.ends_with(&tail))?;
            let slot = line["@group(0) @binding(".len()..].split(')').next()?;
            Some((line.to_string(), slot.to_string(), vec4))
        });
        let (decl, slot, vec4) = found.ok_or_else(|| {
            format!("no read-only storage array<f32> or array<vec4<f32>> named `{name}` in group 0")
        })?;
        let tex = format!("{name}_mirror");
        let fetch = if vec4 {
            format!(
                "fn mirror_{name}(i: u32) -> vec4<f32> {{\n    \
                 return textureLoad({tex}, vec2<u32>(i % {WIDTH}u, i / {WIDTH}u));\n}}"
            )
        } else {
            format!(
                "fn mirror_{name}(i: u32) -> f32 {{\n    let t = i >> 2u;\n    \
                 return textureLoad({tex}, vec2<u32>(t % {WIDTH}u, t / {WIDTH}u))[i & 3u];\n}}"
            )
        };
        let header = format!(
            "@group(0) @binding({slot}) var {tex}: {MIRROR_TYPE};\n\
             // `{name}` read from its texture mirror (gpu::mirror::texture_form).\n{fetch}"
        );
        let mut out = String::with_capacity(s.len() + header.len());
        for (n, line) in s.lines().enumerate() {
            if line == decl {
                out.push_str(&header);
            } else {
                let (code, comment) = line.split_at(line.find("//").unwrap_or(line.len()));
                let code =
                    rewrite_indexing(code, name).map_err(|e| format!("line {}: {e}", n + 1))?;
                out.push_str(&code);
                out.push_str(comment);
            }
            out.push('\n');
        }
        s = out;
    }
    Ok(s)
}

/// `code` (one line, no comment) with every `name[expr]` (`name` a whole identifier) turned
/// into `mirror_name(expr)`; `Err` if `name` also appears other than indexed.
fn rewrite_indexing(code: &str, name: &str) -> Result<String, String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(i) = rest.find(name) {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        let after = &tail[name.len()..];
        let whole = !head
            .chars()
            .next_back()
            .is_some_and(|c| ident(c) || c == '.')
            && !after.chars().next().is_some_and(ident);
        if !whole {
            out.push_str(name);
            rest = after;
            continue;
        }
        if !after.starts_with('[') {
            return Err(format!("`{name}` is used other than as `{name}[…]`"));
        }
        let mut depth = 0usize;
        let end = after.char_indices().find_map(|(j, c)| {
            match c {
                '[' => depth += 1,
                ']' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(j);
                    }
                }
                _ => {}
            }
            None
        });
        let end = end.ok_or_else(|| format!("`{name}[` without its `]` on the same line"))?;
        out.push_str("mirror_");
        out.push_str(name);
        out.push('(');
        out.push_str(&rewrite_indexing(&after[1..end], name)?);
        out.push(')');
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::shader::{BufferRange, copy_plan, run_all};

    /// `fill` writes a range of `dst` (a function of the index and `k`), `double` reads `src`
    /// through a mirror: recorded one after the other, the mirror must see what `fill` wrote.
    const FILL_DOUBLE: &str = "\
struct Params { n: u32, k: f32 }
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@compute @workgroup_size(64)
fn fill(@builtin(global_invocation_id) g: vec3<u32>) {
    if g.x < p.n { dst[g.x] = f32(g.x) * 0.5 + p.k; }
}
@compute @workgroup_size(64)
fn double(@builtin(global_invocation_id) g: vec3<u32>) {
    if g.x < p.n { out[g.x] = 2.0 * src[g.x]; }
}
";

    #[repr(C)]
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    struct Params {
        n: u32,
        k: f32,
    }

    /// A mirror of a large buffer's range is a view of its memory where the device allows it
    /// (lavapipe: gpu::alias): no copy is planned, and a read through it sees what the
    /// dispatch just before wrote to the buffer, in the same pass, at an offset into the
    /// buffer, with a partial last row and texel. A buffer the device made itself (here a
    /// plain wgpu buffer) is copied, as on every other adapter, and reads the same.
    #[test]
    fn a_mirror_reads_what_was_just_written_whether_aliased_or_copied() {
        let Some(ctx) = crate::gpu::test_context() else {
            return;
        };
        let family = MirroredFamily::new(&ctx, "fill_double", FILL_DOUBLE, &["src"], &[], &[]);
        // Over two rows of a mirror, not a whole number of texels.
        let n = 2 * WIDTH as usize * 4 + 4 * 100 + 3;
        let offset = 256u64;
        let bytes = (n * 4) as u64;
        let size = (offset + bytes)
            .max(crate::gpu::alias_min_bytes().min(1 << 20))
            .div_ceil(256)
            * 256;
        let ours = ctx.zeros("mirror test: ours", size as usize / 4);
        let plain = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("mirror test: plain"),
            size,
            usage: crate::gpu::storage_usage(),
            mapped_at_creation: false,
        });
        for (buffer, k, can_alias) in [(&ours, 3.0f32, true), (&plain, -7.0, false)] {
            let range = BufferRange {
                buffer,
                offset,
                size: bytes,
            };
            let out = ctx.zeros("mirror test: out", n);
            let params = Params { n: n as u32, k };
            let groups = [(n as u32).div_ceil(64), 1, 1];
            let fill = family.dispatch(
                &ctx,
                "fill",
                &[None, None, Some(&range)],
                Some(&params),
                groups,
            );
            let double = family.dispatch(
                &ctx,
                "double",
                &[Some(&out), Some(&range)],
                Some(&params),
                groups,
            );
            assert_eq!(double.mirrors.len(), 1);
            let aliased = double.mirrors[0].aliased();
            assert_eq!(aliased, can_alias && ctx.zero_copy_mirrors());
            assert_eq!(copy_plan(&[&fill, &double]), [vec![], vec![!aliased]]);
            run_all(&ctx, &[&fill, &double]).unwrap();
            let got: Vec<f32> = ctx.read(&out).unwrap();
            for (i, g) in got.iter().enumerate() {
                assert_eq!(
                    *g,
                    2.0 * (i as f32 * 0.5 + k),
                    "element {i}, aliased {aliased}"
                );
            }
        }
    }

    #[test]
    fn the_texture_form_rewrites_indexing_and_nothing_else() {
        let src = "@group(0) @binding(1) var<storage, read> src: array<f32>;\n\
                   @group(0) @binding(0) var<storage, read_write> out: array<f32>;\n\
                   // src[i] in a comment stays\n\
                   fn f(i: u32) -> f32 { let src_n = 2u; return src[src[i] + u32(out[i])] + f32(src_n); }\n";
        let t = texture_form(src, &["src"]).unwrap();
        assert!(
            t.contains(
                "@group(0) @binding(1) var src_mirror: texture_storage_2d<rgba32float, read>;"
            ),
            "{t}"
        );
        assert!(t.contains("// src[i] in a comment stays"), "{t}");
        assert!(
            t.contains("return mirror_src(mirror_src(i) + u32(out[i])) + f32(src_n);"),
            "{t}"
        );
        assert!(!t.contains("var<storage, read> src"), "{t}");
        let e = texture_form(
            "@group(0) @binding(1) var<storage, read> src: array<f32>;\nfn g() -> u32 { return arrayLength(&src); }\n",
            &["src"],
        );
        assert!(e.unwrap_err().contains("other than"));
        assert!(texture_form(src, &["nope"]).is_err());
    }
}
