//! Zero-copy texture mirrors on lavapipe: a storage buffer whose memory a linear
//! rgba32float image also views, so that a dispatch reads the buffer through `textureLoad`
//! without the copy a [`Mirror`](super::mirror::Mirror) otherwise records before it.
//!
//! On lavapipe a texel fetch is one vector gather where a storage-buffer load is a loop over
//! the lanes (gpu::mirror), but the copy into the mirror texture runs on the queue's thread
//! alone, at ~1.3 G floats/s, while the shader threads wait: about a tenth of a training step
//! at 64×64 (ARCHITECTURE.md, "Texture mirrors"). A Vulkan image with `VK_IMAGE_TILING_LINEAR`
//! bound to the buffer's own memory, at the range's offset, with a row pitch of exactly
//! [`WIDTH`](super::mirror::WIDTH) texels, holds texel i of the range at (i mod WIDTH,
//! i / WIDTH): the layout the copy would have produced, so the shaders are unchanged.
//!
//! Why this is sound on lavapipe, and only there: aliasing a buffer and an image is legal
//! Vulkan (both bound to one `VkDeviceMemory`), but what one writes is visible to the other
//! only after a barrier that orders the two, and wgpu, which sees two unrelated resources,
//! records none between them. Lavapipe runs a command buffer's commands one after another on
//! the CPU and waits for each dispatch's threads to finish before the next command starts;
//! its memory is host memory, its images in `LINEAR` tiling are plain row-major arrays (the
//! row pitch is checked, not assumed), and it ignores image layouts. So a dispatch that reads
//! the image sees everything the commands before it wrote to the buffer. A real GPU has
//! caches and queues that need the barrier, so [`Aliases::for_device`] enables this only for
//! lavapipe (`llvmpipe` on Vulkan, device type Cpu); everywhere else, and with
//! `GPUCNN_ZERO_COPY=0`, mirrors are copied as before.
//!
//! The buffers [`GpuContext::zeros`](super::GpuContext::zeros),
//! [`GpuContext::upload`](super::GpuContext::upload) and a step's pool allocate are made here
//! (memory from `vkAllocateMemory`, a `VkBuffer` at offset 0, wrapped for wgpu) where they
//! are at least [`MIN_BYTES`]; each allocation has a little more memory than the buffer, so
//! an image of whole rows starting anywhere inside it stays inside the allocation. A mirror
//! of such a buffer's range ([`Aliases::image`]) is an image bound at the range's offset; one
//! that cannot be (an offset the image alignment forbids, a buffer made elsewhere) is copied.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ash::vk;
use wgpu::hal;
use wgpu::hal::api::Vulkan;

use super::mirror::{ROW_BYTES, TEXEL_BYTES, WIDTH};

/// Buffers smaller than this are made by wgpu as usual (their mirror copies cost little).
pub const MIN_BYTES: u64 = 1 << 16;

/// The device's aliasing buffers: their memory, by buffer handle, while they live.
#[derive(Clone)]
pub(crate) struct Aliases {
    inner: Arc<Inner>,
}

struct Inner {
    device: ash::Device,
    memory_type: u32,
    /// Bytes beyond a buffer's size that its allocation holds (whole rows and more).
    pad: u64,
    /// What `vkAllocateMemory` gave each live buffer made here, and its size.
    memory: Mutex<HashMap<vk::Buffer, (vk::DeviceMemory, u64)>>,
}

impl std::fmt::Debug for Aliases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aliases")
            .field("memory_type", &self.inner.memory_type)
            .field("pad", &self.inner.pad)
            .finish()
    }
}

/// Whether zero-copy mirrors are wanted: not when `GPUCNN_ZERO_COPY` is `0` (or `false`,
/// `off`, `no`).
fn wanted() -> bool {
    !matches!(
        std::env::var("GPUCNN_ZERO_COPY").as_deref(),
        Ok("0" | "false" | "off" | "no")
    )
}

fn image_info(rows: u32) -> vk::ImageCreateInfo<'static> {
    vk::ImageCreateInfo::default()
        .image_type(vk::ImageType::TYPE_2D)
        .format(vk::Format::R32G32B32A32_SFLOAT)
        .extent(vk::Extent3D {
            width: WIDTH,
            height: rows,
            depth: 1,
        })
        .mip_levels(1)
        .array_layers(1)
        .samples(vk::SampleCountFlags::TYPE_1)
        .tiling(vk::ImageTiling::LINEAR)
        .usage(vk::ImageUsageFlags::STORAGE)
        .sharing_mode(vk::SharingMode::EXCLUSIVE)
        .initial_layout(vk::ImageLayout::UNDEFINED)
}

/// A new image of `rows` rows ([`image_info`]), not bound: its memory requirements, and
/// whether its rows lie as a mirror's must (a row pitch of exactly [`WIDTH`] texels, from
/// offset 0).
///
/// # Safety
/// `raw` is a live device; the caller destroys or binds the image.
unsafe fn new_image(
    raw: &ash::Device,
    rows: u32,
) -> Option<(vk::Image, vk::MemoryRequirements, bool)> {
    // SAFETY: as the function's contract says.
    unsafe {
        let image = raw.create_image(&image_info(rows), None).ok()?;
        let layout = raw.get_image_subresource_layout(
            image,
            vk::ImageSubresource {
                aspect_mask: vk::ImageAspectFlags::COLOR,
                mip_level: 0,
                array_layer: 0,
            },
        );
        let req = raw.get_image_memory_requirements(image);
        Some((
            image,
            req,
            layout.row_pitch == ROW_BYTES && layout.offset == 0,
        ))
    }
}

fn buffer_usage() -> vk::BufferUsageFlags {
    vk::BufferUsageFlags::STORAGE_BUFFER
        | vk::BufferUsageFlags::TRANSFER_SRC
        | vk::BufferUsageFlags::TRANSFER_DST
}

impl Aliases {
    /// The aliasing allocator of `device` when it is lavapipe (see the module doc), zero-copy
    /// mirrors are wanted (`GPUCNN_ZERO_COPY`) and a probe image shows the layout they need:
    /// linear storage images of rgba32float, a row pitch of exactly [`WIDTH`] texels from
    /// offset 0, memory a buffer can share.
    pub(crate) fn for_device(device: &wgpu::Device, info: &wgpu::AdapterInfo) -> Option<Self> {
        if !super::is_lavapipe(info) || !wanted() {
            return None;
        }
        // SAFETY: the hal device is only read (its handles), and released before returning.
        let hal_device = unsafe { device.as_hal::<Vulkan>() }?;
        let raw = hal_device.raw_device().clone();
        let instance = hal_device.shared_instance().raw_instance().clone();
        let physical = hal_device.raw_physical_device();
        drop(hal_device);
        // SAFETY: plain queries and a probe buffer and image that are destroyed here.
        unsafe {
            let format = instance.get_physical_device_image_format_properties(
                physical,
                vk::Format::R32G32B32A32_SFLOAT,
                vk::ImageType::TYPE_2D,
                vk::ImageTiling::LINEAR,
                vk::ImageUsageFlags::STORAGE,
                vk::ImageCreateFlags::empty(),
            );
            let format = format.ok()?;
            if format.max_extent.width < WIDTH || format.max_extent.height < WIDTH {
                return None;
            }
            // One row: what its memory asks beyond that row is the most any image asks
            // beyond its rows (lavapipe rounds the rows up to a multiple of 4).
            let rows = 1u32;
            let (image, image_req, rows_fit) = new_image(&raw, rows)?;
            raw.destroy_image(image, None);
            if !rows_fit {
                return None;
            }
            let buffer = vk::BufferCreateInfo::default()
                .size(ROW_BYTES)
                .usage(buffer_usage())
                .sharing_mode(vk::SharingMode::EXCLUSIVE);
            let buffer = raw.create_buffer(&buffer, None).ok()?;
            let buffer_req = raw.get_buffer_memory_requirements(buffer);
            raw.destroy_buffer(buffer, None);
            let props = instance.get_physical_device_memory_properties(physical);
            let host =
                vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT;
            let memory_type = (0..props.memory_type_count).find(|&i| {
                let bit = 1 << i;
                buffer_req.memory_type_bits & bit != 0
                    && image_req.memory_type_bits & bit != 0
                    && props.memory_types[i as usize].property_flags.contains(host)
            })?;
            // An image of r rows needs r · ROW_BYTES, or what this one asked beyond that: its
            // start may lie anywhere in the buffer, its last row past the buffer's end.
            let extra = image_req.size.saturating_sub(rows as u64 * ROW_BYTES);
            let pad = ROW_BYTES + extra + image_req.alignment.max(TEXEL_BYTES);
            Some(Self {
                inner: Arc::new(Inner {
                    device: raw,
                    memory_type,
                    pad,
                    memory: Default::default(),
                }),
            })
        }
    }

    /// A storage buffer of `size` bytes (a multiple of 4, at least [`MIN_BYTES`]) holding
    /// `data` (zeros where it is shorter), whose memory mirrors may alias; `None` where Vulkan
    /// refuses one (the caller then makes an ordinary buffer).
    pub(crate) fn buffer(
        &self,
        device: &wgpu::Device,
        label: &str,
        size: u64,
        data: &[u8],
    ) -> Option<wgpu::Buffer> {
        debug_assert!(size >= MIN_BYTES && size.is_multiple_of(4) && data.len() as u64 <= size);
        let raw = &self.inner.device;
        let total = size + self.inner.pad;
        // SAFETY: a new buffer and memory, bound once, filled while no one else sees them;
        // on failure everything made is released.
        unsafe {
            let info = vk::BufferCreateInfo::default()
                .size(size)
                .usage(buffer_usage())
                .sharing_mode(vk::SharingMode::EXCLUSIVE);
            let buffer = raw.create_buffer(&info, None).ok()?;
            let alloc = vk::MemoryAllocateInfo::default()
                .allocation_size(total)
                .memory_type_index(self.inner.memory_type);
            let Ok(memory) = raw.allocate_memory(&alloc, None) else {
                raw.destroy_buffer(buffer, None);
                return None;
            };
            let fill = || -> Result<(), vk::Result> {
                raw.bind_buffer_memory(buffer, memory, 0)?;
                let ptr = raw.map_memory(memory, 0, size, vk::MemoryMapFlags::empty())?;
                let dst = std::slice::from_raw_parts_mut(ptr.cast::<u8>(), size as usize);
                dst[..data.len()].copy_from_slice(data);
                dst[data.len()..].fill(0);
                raw.unmap_memory(memory);
                Ok(())
            };
            if fill().is_err() {
                raw.destroy_buffer(buffer, None);
                raw.free_memory(memory, None);
                return None;
            }
            self.inner
                .memory
                .lock()
                .expect("alias registry")
                .insert(buffer, (memory, total));
            let inner = Arc::downgrade(&self.inner);
            let device_raw = raw.clone();
            let release: hal::DropCallback = Box::new(move || {
                if let Some(inner) = inner.upgrade() {
                    inner.memory.lock().expect("alias registry").remove(&buffer);
                }
                device_raw.destroy_buffer(buffer, None);
                device_raw.free_memory(memory, None);
            });
            let hal_buffer = hal::vulkan::Buffer::from_raw_externally_owned(buffer, release);
            Some(device.create_buffer_from_hal::<Vulkan>(
                hal_buffer,
                &wgpu::BufferDescriptor {
                    label: Some(label),
                    size,
                    usage: super::storage_usage(),
                    mapped_at_creation: false,
                },
            ))
        }
    }

    /// A read-only storage texture of `rows` rows of [`WIDTH`] texels whose texel 0 is byte
    /// `offset` of `buffer`, sharing its memory; `None` where `buffer` was not made by
    /// [`Self::buffer`] or such an image cannot start at `offset` (alignment, room).
    pub(crate) fn image(
        &self,
        device: &wgpu::Device,
        buffer: &wgpu::Buffer,
        offset: u64,
        rows: u32,
    ) -> Option<wgpu::Texture> {
        // SAFETY: only the handle is read.
        let handle = unsafe { buffer.as_hal::<Vulkan>().map(|b| b.raw_handle()) }?;
        let (memory, total) = *self
            .inner
            .memory
            .lock()
            .expect("alias registry")
            .get(&handle)?;
        let raw = &self.inner.device;
        // SAFETY: a new image bound to live memory (the buffer, which the mirror keeps alive,
        // owns it), inside its allocation; wgpu-hal destroys the image, never the memory.
        unsafe {
            let (image, req, rows_fit) = new_image(raw, rows)?;
            let fits = rows_fit
                && offset.is_multiple_of(req.alignment.max(1))
                && offset + req.size <= total
                && req.memory_type_bits & (1 << self.inner.memory_type) != 0;
            if !fits || raw.bind_image_memory(image, memory, offset).is_err() {
                raw.destroy_image(image, None);
                return None;
            }
            let usage = wgpu::TextureUsages::STORAGE_BINDING;
            let desc = super::mirror::texture_desc("texture mirror (aliased)", rows, usage);
            // The same texture as wgpu-hal describes it: read-only storage, no view formats.
            let hal_desc = hal::TextureDescriptor {
                label: desc.label,
                size: desc.size,
                mip_level_count: desc.mip_level_count,
                sample_count: desc.sample_count,
                dimension: desc.dimension,
                format: desc.format,
                usage: wgpu::TextureUses::STORAGE_READ_ONLY,
                memory_flags: hal::MemoryFlags::empty(),
                view_formats: Vec::new(),
            };
            let Some(hal_device) = device.as_hal::<Vulkan>() else {
                raw.destroy_image(image, None);
                return None;
            };
            let memory = hal::vulkan::TextureMemory::External;
            let texture = hal_device.texture_from_raw(image, &hal_desc, None, memory);
            drop(hal_device);
            Some(device.create_texture_from_hal::<Vulkan>(
                texture,
                &desc,
                wgpu::TextureUses::STORAGE_READ_ONLY,
            ))
        }
    }
}
