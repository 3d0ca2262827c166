//! Device and adapter setup, limits, upload and readback helpers.
//!
//! One [`GpuContext`] per process: it picks the adapter (discrete > integrated > virtual >
//! software, or the one the user names), requests the adapter's own limits rather than wgpu's
//! conservative defaults, and enables the optional features the kernels can use (subgroups,
//! timestamp queries). A program that already owns a device wraps it with
//! [`GpuContext::from_device`]: the features and limits are then the device's own.

use std::fmt;

use thiserror::Error;
use wgpu::util::DeviceExt;

#[cfg(any(target_os = "linux", windows))]
pub(crate) mod alias;
pub mod interface;
pub mod mirror;
pub mod record;
pub mod shader;

/// Errors raised while setting up or talking to the GPU.
#[derive(Debug, Error)]
pub enum GpuError {
    #[error(
        "no GPU adapter found{filter}.\n  gpucnn needs a GPU driver with Vulkan, Metal, DX12 or OpenGL ES compute support.\n  \
         On Linux without a GPU, install Mesa's software Vulkan driver (lavapipe):\n      \
         sudo apt-get install -y mesa-vulkan-drivers libvulkan1\n  \
         Choose one with --backend / WGPU_BACKEND (vulkan, metal, dx12, gl) and --adapter / GPUCNN_ADAPTER (part of its name); `gpucnn info` lists what is found."
    )]
    NoAdapter { filter: String },
    #[error("requesting a device from adapter '{adapter}' failed: {source}")]
    RequestDevice {
        adapter: String,
        #[source]
        source: wgpu::RequestDeviceError,
    },
    #[error("reading back a GPU buffer failed: {0}")]
    Readback(String),
    #[error("GPU validation error: {0}")]
    Validation(String),
}

/// How to choose the adapter. `Default` reads `WGPU_BACKEND` and `GPUCNN_ADAPTER`.
#[derive(Debug, Clone, Default)]
pub struct AdapterOptions {
    /// Backends to search; `None` means `WGPU_BACKEND` or all.
    pub backends: Option<wgpu::Backends>,
    /// Case-insensitive substring of the adapter name; `None` means `GPUCNN_ADAPTER` or any.
    pub name_filter: Option<String>,
}

/// What the user is told about the adapter in use (and what `selftest --json` prints).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub subgroups: bool,
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
    pub timestamps: bool,
    pub max_storage_binding_mib: u64,
    pub max_buffer_mib: u64,
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {}, driver {} {}), subgroups {}, max storage binding {} MiB",
            self.name,
            self.backend,
            self.device_type,
            self.driver,
            self.driver_info,
            if self.subgroups {
                format!("{}..{}", self.subgroup_min_size, self.subgroup_max_size)
            } else {
                "no".to_string()
            },
            self.max_storage_binding_mib
        )
    }
}

/// The device, its queue and what we know of the adapter they come from.
///
/// Every kernel variant is chosen from `features`, `limits` and `info`, which are the device's
/// own (`wgpu::Device::features`, `limits`, `adapter_info`): what the adapter could offer does
/// not count, only what the device was created with.
///
/// A clone shares the device, the queue and the compiled pipelines ([`shader::ShaderFamily`]
/// compiles a WGSL file with given constants once per device, however many kernels and
/// training steps ask for it).
#[derive(Clone)]
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    /// The adapter the device was created from (name, backend, driver, subgroup sizes).
    pub info: wgpu::AdapterInfo,
    /// The device's limits.
    pub limits: wgpu::Limits,
    /// The device's features (e.g. `SUBGROUP`, which the subgroup variants need).
    pub features: wgpu::Features,
    /// Pipelines compiled on this device, shared by its clones.
    pub(crate) pipelines: shader::PipelineCache,
    /// The texture mirrors every kernel family of this device shares ([`mirror::shared`]),
    /// made on first use.
    pub(crate) mirrors:
        std::sync::Arc<std::sync::OnceLock<[mirror::MirrorScratch; mirror::SHARED]>>,
    /// On lavapipe, the allocator of large storage buffers that texture mirrors alias instead
    /// of copying ([`alias`]); `None` elsewhere and with `GPUCNN_ZERO_COPY=0`.
    #[cfg(any(target_os = "linux", windows))]
    pub(crate) aliases: Option<alias::Aliases>,
}

fn type_rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn backend_rank(b: wgpu::Backend) -> u32 {
    // Vulkan/Metal/DX12 before GL: GL has no subgroups and weaker compute support.
    match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    }
}

/// Every adapter `opts` allows, best first (the order [`GpuContext::new`] picks from).
pub fn list_adapters(opts: &AdapterOptions) -> Vec<wgpu::AdapterInfo> {
    ranked_adapters(opts)
        .0
        .iter()
        .map(|a| a.get_info())
        .collect()
}

fn ranked_adapters(opts: &AdapterOptions) -> (Vec<wgpu::Adapter>, Option<String>) {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    if let Some(b) = opts.backends {
        desc.backends = b;
    }
    let backends = desc.backends;
    let instance = wgpu::Instance::new(desc);
    let filter = opts
        .name_filter
        .clone()
        .or_else(|| std::env::var("GPUCNN_ADAPTER").ok())
        .filter(|s| !s.is_empty());
    let mut adapters = pollster::block_on(instance.enumerate_adapters(backends));
    if let Some(f) = &filter {
        let f = f.to_lowercase();
        adapters.retain(|a| a.get_info().name.to_lowercase().contains(&f));
    }
    adapters.sort_by_key(|a| {
        let i = a.get_info();
        (type_rank(i.device_type), backend_rank(i.backend))
    });
    (adapters, filter)
}

impl GpuContext {
    /// Opens the best adapter according to `opts` (see [`AdapterOptions`]).
    pub fn new(opts: &AdapterOptions) -> Result<Self, GpuError> {
        let (adapters, filter) = ranked_adapters(opts);
        let adapter = adapters
            .into_iter()
            .next()
            .ok_or_else(|| GpuError::NoAdapter {
                filter: filter
                    .map(|f| format!(" whose name contains '{f}'"))
                    .unwrap_or_default(),
            })?;
        Self::from_adapter(adapter)
    }

    /// The adapter of process `local_rank` of `local_size` on this machine (data-parallel
    /// training): with a name filter (`--adapter`, `GPUCNN_ADAPTER`) the best match, as
    /// [`Self::new`]; otherwise the processes share the adapters of the best kind (type and
    /// backend, e.g. every discrete Vulkan GPU) in turn, one each while there are enough and
    /// several per adapter when there are fewer (a machine with one GPU, or lavapipe).
    /// Returns the context and which of those adapters it is (index, count).
    pub fn for_local_rank(
        opts: &AdapterOptions,
        local_rank: usize,
    ) -> Result<(Self, usize, usize), GpuError> {
        let (adapters, filter) = ranked_adapters(opts);
        let first = adapters.first().ok_or_else(|| GpuError::NoAdapter {
            filter: filter
                .as_ref()
                .map(|f| format!(" whose name contains '{f}'"))
                .unwrap_or_default(),
        })?;
        let best = first.get_info();
        let mut same: Vec<wgpu::Adapter> = if filter.is_some() {
            vec![first.clone()]
        } else {
            adapters
                .into_iter()
                .filter(|a| {
                    let i = a.get_info();
                    i.device_type == best.device_type && i.backend == best.backend
                })
                .collect()
        };
        let count = same.len();
        let index = local_rank % count;
        Ok((Self::from_adapter(same.swap_remove(index))?, index, count))
    }

    /// Opens a device on `adapter` with the adapter's own limits and the useful optional features.
    pub fn from_adapter(adapter: wgpu::Adapter) -> Result<Self, GpuError> {
        let info = adapter.get_info();
        let wanted = wgpu::Features::SUBGROUP
            | wgpu::Features::TIMESTAMP_QUERY
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES;
        let features = adapter.features() & wanted;
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("gpucnn"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|source| GpuError::RequestDevice {
            adapter: info.name.clone(),
            source,
        })?;
        Ok(Self::from_device(device, queue))
    }

    /// Wraps a device (and its queue) that the calling program created and keeps using, so
    /// gpucnn's kernels run on the program's own buffers and inside its own command encoders.
    /// The features, limits and adapter info are read from the device itself, so every kernel
    /// variant chosen follows what the device really has: without `wgpu::Features::SUBGROUP`
    /// the portable variants are chosen, and asking for a subgroup one (`GPUCNN_VARIANT`, or a
    /// family built with it) is an error that names the missing feature.
    ///
    /// `wgpu::Device` and `wgpu::Queue` are handles: pass clones and keep using the originals.
    ///
    /// ```no_run
    /// use gpucnn::gpu::GpuContext;
    /// use gpucnn::kernels::relu::Relu;
    ///
    /// # fn app() -> Option<()> {
    /// // The program's own device, with wgpu's default (WebGPU) limits and no extra features.
    /// let instance = wgpu::Instance::default();
    /// let adapter =
    ///     pollster::block_on(instance.request_adapter(&Default::default())).ok()?;
    /// let (device, queue) =
    ///     pollster::block_on(adapter.request_device(&Default::default())).ok()?;
    ///
    /// let ctx = GpuContext::from_device(device.clone(), queue.clone());
    /// let relu = Relu::new(&ctx); // pipelines compiled once, on the program's device
    /// let x = ctx.upload("x", &[-1.0f32, 2.0, -3.0, 4.0]);
    /// let y = ctx.zeros("y", 4);
    /// let forward = relu.forward(&ctx, &y, &x, 4); // bind group made once, recorded many times
    /// let mut encoder = device.create_command_encoder(&Default::default());
    /// {
    ///     let mut pass = encoder.begin_compute_pass(&Default::default());
    ///     forward.record(&mut pass); // among the program's own dispatches
    /// }
    /// queue.submit([encoder.finish()]);
    /// assert_eq!(ctx.read::<f32>(&y).ok()?, [0.0, 2.0, 0.0, 4.0]);
    /// # Some(())
    /// # }
    /// ```
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        let info = device.adapter_info();
        Self {
            #[cfg(any(target_os = "linux", windows))]
            aliases: alias::Aliases::for_device(&device, &info),
            info,
            limits: device.limits(),
            features: device.features(),
            device,
            queue,
            pipelines: Default::default(),
            mirrors: Default::default(),
        }
    }

    /// True when the device has `wgpu::Features::SUBGROUP` (subgroup kernel variants may run).
    pub fn has_subgroups(&self) -> bool {
        self.features.contains(wgpu::Features::SUBGROUP)
    }

    /// True when the adapter executes on the CPU (lavapipe, WARP, SwiftShader).
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// A short description of the adapter for logs and `selftest --json`.
    pub fn summary(&self) -> AdapterSummary {
        let l = &self.limits;
        AdapterSummary {
            name: self.info.name.clone(),
            backend: format!("{:?}", self.info.backend),
            device_type: format!("{:?}", self.info.device_type),
            driver: self.info.driver.clone(),
            driver_info: self.info.driver_info.clone(),
            subgroups: self.has_subgroups(),
            subgroup_min_size: self.info.subgroup_min_size,
            subgroup_max_size: self.info.subgroup_max_size,
            timestamps: self.features.contains(wgpu::Features::TIMESTAMP_QUERY),
            max_storage_binding_mib: l.max_storage_buffer_binding_size >> 20,
            max_buffer_mib: l.max_buffer_size >> 20,
        }
    }

    /// True when texture mirrors of large buffers alias their memory instead of copying it
    /// (lavapipe, unless `GPUCNN_ZERO_COPY=0`: `gpu::alias`).
    pub fn zero_copy_mirrors(&self) -> bool {
        #[cfg(any(target_os = "linux", windows))]
        return self.aliases.is_some();
        #[cfg(not(any(target_os = "linux", windows)))]
        return false;
    }

    /// A storage buffer of `size` bytes: zeros where `data` is empty, else `data` padded with
    /// zeros to the next multiple of 4 bytes, which `size` must be; where
    /// [`Self::zero_copy_mirrors`] and it is large, one that mirrors may alias.
    pub(crate) fn storage_buffer(&self, label: &str, size: u64, data: &[u8]) -> wgpu::Buffer {
        debug_assert!(data.is_empty() || size == (data.len() as u64).div_ceil(4) * 4);
        #[cfg(any(target_os = "linux", windows))]
        if let Some(a) = self.aliases.as_ref().filter(|_| size >= alias::MIN_BYTES)
            && let Some(b) = a.buffer(&self.device, label, size, data)
        {
            return b;
        }
        if data.is_empty() {
            return self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: storage_usage(),
                mapped_at_creation: false,
            });
        }
        // Pads to 4 bytes with zeros itself.
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: data,
                usage: storage_usage(),
            })
    }

    /// A read-only rgba32float storage texture of `rows` rows of [`mirror::WIDTH`] texels
    /// that views `buffer`'s memory from byte `offset` (see [`alias`]); `None` where mirrors
    /// are copied on this device or this range cannot be aliased.
    pub(crate) fn aliased_texture(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        rows: u32,
    ) -> Option<wgpu::Texture> {
        #[cfg(any(target_os = "linux", windows))]
        return (self.aliases.as_ref()).and_then(|a| a.image(&self.device, buffer, offset, rows));
        #[cfg(not(any(target_os = "linux", windows)))]
        return {
            let _ = (buffer, offset, rows);
            None
        };
    }

    /// A storage buffer holding `data` (usable as copy source and destination).
    pub fn upload<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> wgpu::Buffer {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        if bytes.is_empty() {
            return self.zeros_bytes(label, 4);
        }
        self.storage_buffer(label, (bytes.len() as u64).div_ceil(4) * 4, bytes)
    }

    /// A zero-filled storage buffer of `len` f32/u32 elements.
    pub fn zeros(&self, label: &str, len: usize) -> wgpu::Buffer {
        self.zeros_bytes(label, (len.max(1) * 4) as u64)
    }

    fn zeros_bytes(&self, label: &str, size: u64) -> wgpu::Buffer {
        self.storage_buffer(label, size.div_ceil(4) * 4, &[])
    }

    /// A uniform buffer holding one Params struct.
    pub fn uniform<T: bytemuck::Pod>(&self, label: &str, params: &T) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::bytes_of(params),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// Records work with `f`, submits it and blocks until the GPU has finished.
    pub fn run<R>(&self, f: impl FnOnce(&mut wgpu::CommandEncoder) -> R) -> Result<R, GpuError> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("run") });
        let r = f(&mut enc);
        self.queue.submit([enc.finish()]);
        self.wait()?;
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Validation(e.to_string()));
        }
        Ok(r)
    }

    /// Blocks until all submitted work is done.
    pub fn wait(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| GpuError::Readback(e.to_string()))
    }

    /// Copies `buf` back to the host as `T`s (blocking). Never call inside a training step.
    pub fn read<T: bytemuck::Pod>(&self, buf: &wgpu::Buffer) -> Result<Vec<T>, GpuError> {
        self.read_range(buf, 0, buf.size())
    }

    /// Copies `size` bytes of `buf` from `offset` back to the host as `T`s (blocking).
    pub fn read_range<T: bytemuck::Pod>(
        &self,
        buf: &wgpu::Buffer,
        offset: u64,
        size: u64,
    ) -> Result<Vec<T>, GpuError> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.run(|enc| enc.copy_buffer_to_buffer(buf, offset, &staging, 0, size))?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|e| GpuError::Readback(e.to_string()))?
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let out = bytemuck::cast_slice::<u8, T>(&view).to_vec();
        drop(view);
        staging.unmap();
        Ok(out)
    }
}

/// Whether `info` is Mesa's lavapipe (Vulkan on the CPU through llvmpipe), where texture
/// mirrors can be zero-copy views ([`GpuContext::zero_copy_mirrors`]).
pub fn is_lavapipe(info: &wgpu::AdapterInfo) -> bool {
    info.backend == wgpu::Backend::Vulkan
        && info.device_type == wgpu::DeviceType::Cpu
        && (info.driver.to_lowercase().contains("llvmpipe")
            || info.name.to_lowercase().starts_with("llvmpipe"))
}

/// The smallest buffer [`GpuContext::zeros`] and [`GpuContext::upload`] make so that texture
/// mirrors may alias it where [`GpuContext::zero_copy_mirrors`] (smaller ones are copied).
pub fn alias_min_bytes() -> u64 {
    #[cfg(any(target_os = "linux", windows))]
    return alias::MIN_BYTES;
    #[cfg(not(any(target_os = "linux", windows)))]
    return u64::MAX;
}

/// Usage flags of every tensor buffer.
pub fn storage_usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST
}

/// The default adapter for tests and benches: one device per process, shared by every caller
/// (a clone), so that a kernel's pipelines compile once per test binary, not once per test
/// (seconds each on a CPU adapter). Error scopes are per thread, so tests running in parallel
/// do not see each other's errors.
///
/// Returns `None` (after printing why) when no adapter exists and we are not in CI; in CI
/// (`CI` set to anything but `false`/`0`) a missing adapter panics, so a test can never pass by
/// skipping silently.
pub fn test_context() -> Option<GpuContext> {
    static SHARED: std::sync::OnceLock<Result<GpuContext, String>> = std::sync::OnceLock::new();
    let opened = SHARED
        .get_or_init(|| GpuContext::new(&AdapterOptions::default()).map_err(|e| e.to_string()));
    match opened {
        Ok(ctx) => Some(ctx.clone()),
        Err(e) => {
            let ci = std::env::var("CI")
                .map(|v| !v.is_empty() && v != "false" && v != "0")
                .unwrap_or(false);
            if ci {
                panic!("CI is set and no GPU adapter is available: {e}");
            }
            eprintln!("SKIPPED: no GPU adapter ({e})");
            None
        }
    }
}
