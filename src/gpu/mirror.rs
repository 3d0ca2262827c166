//! Texture mirrors: a storage buffer's bound range copied into an rgba32float texture just
//! before a dispatch reads it through `textureLoad` (the textured GEMM,
//! shaders/gemm_subgroup64_texture.wgsl).
//!
//! On a CPU adapter such as lavapipe on an AVX2 machine, a storage-buffer load is a loop over
//! the lanes while a texel fetch is one vector gather (~7× measured: ARCHITECTURE.md, "What this
//! adapter taught us"); an encoder copy into a texture moves ~1.3 G floats/s there, far cheaper
//! than what a GEMM saves. Producers keep writing storage buffers (texture stores cost more), and
//! a [`Dispatch`](super::shader::Dispatch) carries the [`Mirror`]s it reads: recording it closes
//! the compute pass, records the copies, and opens the next pass.
//!
//! Texel i holds floats 4i .. 4i+3 of the range, at (i mod [`WIDTH`], i / [`WIDTH`]). A
//! [`MirrorScratch`] is one growing texture shared by every dispatch built from it: each
//! dispatch's copies run right before it, in the same command encoder, so dispatches recorded
//! one after another may share it (wgpu orders the copy after the previous pass's reads).

use std::sync::{Arc, Mutex};

use super::GpuContext;
use super::shader::Bind;

/// Texels per row of a mirror (the shaders' `TW_LOG2` is its log2). WebGPU's default
/// `maxTextureDimension2D` is 8192, so a mirror holds up to 8192 rows of it: 256 Mi floats.
pub const WIDTH: u32 = 8192;
const TEXEL_BYTES: u64 = 16;

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
        }
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
        let rows = bytes.div_ceil(TEXEL_BYTES).div_ceil(WIDTH as u64).max(1);
        let max_rows = ctx.device.limits().max_texture_dimension_2d as u64;
        if rows > max_rows {
            return Err(format!(
                "{bytes} bytes need {rows} rows of {WIDTH} texels, over the device's {max_rows}"
            ));
        }
        let mut current = self.current.lock().expect("mirror lock");
        let texture = match current.as_ref() {
            Some(t) if t.rows as u64 >= rows => t.clone(),
            old => {
                // Grow geometrically so that a program built smallest-first makes few textures.
                let grown = old.map_or(0, |t| 2 * t.rows as u64);
                let rows = rows.max(grown).min(max_rows) as u32;
                let texture = ctx.device.create_texture(&wgpu::TextureDescriptor {
                    label: Some(self.label),
                    size: wgpu::Extent3d {
                        width: WIDTH,
                        height: rows,
                        depth_or_array_layers: 1,
                    },
                    mip_level_count: 1,
                    sample_count: 1,
                    dimension: wgpu::TextureDimension::D2,
                    format: wgpu::TextureFormat::Rgba32Float,
                    usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
                    view_formats: &[],
                });
                let view = texture.create_view(&Default::default());
                let t = Arc::new(MirrorTexture {
                    texture,
                    view,
                    rows,
                });
                *current = Some(t.clone());
                t
            }
        };
        Ok(Mirror {
            texture,
            src: b.buffer.clone(),
            offset: b.offset,
            bytes,
            tail: self.tail.clone(),
        })
    }
}

impl Mirror {
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
                    bytes_per_row: Some(WIDTH * TEXEL_BYTES as u32),
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
                from(&self.src, self.offset + full_rows * w * TEXEL_BYTES),
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
