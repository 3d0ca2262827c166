//! Test vectors of the shaders for other WebGPU engines (`gpucnn selftest --export-vectors
//! DIR`; `scripts/dawn-check.sh` replays them in Dawn, Chrome's engine).
//!
//! Each parity check runs on wgpu with [`crate::gpu::record`] on, which yields every dispatch
//! it made (WGSL file, entry point, override constants, Params bytes, grid, bound buffer
//! ranges) and every buffer's contents as the host set them. Each [`Compared`] output is then
//! matched to the buffer (and offset) its GPU values were read from, and written with the CPU
//! reference's values and the check's tolerance. A replay needs nothing from Rust: it creates
//! the buffers, applies the steps in order (writes, then dispatches with `layout: 'auto'`
//! pipelines) and compares the outputs' buffers with the reference as
//! [`crate::harness::compare`] does.
//!
//! The files, in `DIR`:
//! - `manifest.json`: `{format, adapter, shaders: {name: {file, portable, browser_file}},
//!   checks: [...]}`;
//!   each check names its `data` file, its buffers' sizes, its steps and its outputs (see
//!   [`ExportedCheck`]); every byte array is a `[offset, length]` range of the data file.
//! - `wgsl/NAME.wgsl`: the source each family compiled (the file of `shaders/`, unchanged);
//!   for a subgroup shader also `wgsl/NAME.browser.wgsl`, its [`browser_form`].
//! - `checks/NNNN.bin`: one check's bytes: buffer contents, Params, expected values (f64 LE)
//!   and wgpu's own values (f32 LE).
//!
//! A check whose dispatches use a subgroup shader (one that does not validate without naga's
//! subgroup capabilities) is exported with `subgroups: true`: replaying it needs the
//! `subgroups` feature and the subgroup size its `SG` constant names.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::gpu::GpuContext;
use crate::gpu::record::{self, Access, Step, Trace};
use crate::harness::{Check, CheckResult, Compared, judge};

/// Version of the file layout; a replay refuses another.
pub const FORMAT: u32 = 1;

/// A byte range `[offset, length]` of a check's data file.
pub type Range = [u64; 2];

/// One binding of a [`StepOut::Dispatch`].
#[derive(Debug, Clone, Serialize)]
pub struct BindingOut {
    pub binding: u32,
    /// "uniform", "read" or "read_write".
    pub access: &'static str,
    /// Buffer index (none for the uniform, whose bytes are the step's `params`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffer: Option<usize>,
    pub offset: u64,
    pub size: u64,
}

/// One step of a check, in replay order.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepOut {
    /// Set a whole buffer: to `data`, or to zeros when `data` is absent.
    Write {
        buffer: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<Range>,
    },
    Dispatch {
        shader: String,
        entry: String,
        constants: BTreeMap<String, f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        params: Option<Range>,
        bindings: Vec<BindingOut>,
        workgroups: [u32; 3],
    },
}

/// One compared output: where it lies and what it must hold.
#[derive(Debug, Clone, Serialize)]
pub struct OutputOut {
    pub name: String,
    pub buffer: usize,
    /// Byte offset in the buffer; `len` f32 values from there.
    pub offset: u64,
    pub len: usize,
    pub atol: f64,
    pub rtol: f64,
    /// The CPU reference, f64 little-endian.
    pub expected: Range,
    /// What wgpu computed, f32 little-endian.
    pub wgpu: Range,
}

/// A compared output that is not a buffer's contents (derived on the host), left out.
#[derive(Debug, Clone, Serialize)]
pub struct Omitted {
    pub name: String,
    pub why: String,
}

/// One exported check.
#[derive(Debug, Clone, Serialize)]
pub struct ExportedCheck {
    pub op: String,
    pub pass: String,
    pub variant: String,
    pub class: crate::harness::ShapeClass,
    pub shape: String,
    /// The data file, relative to the manifest.
    pub data: String,
    /// Byte size of each buffer.
    pub buffers: Vec<u64>,
    pub steps: Vec<StepOut>,
    pub outputs: Vec<OutputOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub omitted: Vec<Omitted>,
    /// Whether the check passed on wgpu here.
    pub wgpu_ok: bool,
    /// Uses a subgroup shader (needs the `subgroups` feature).
    pub subgroups: bool,
}

/// A check that was not exported, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub title: String,
    pub why: String,
}

/// One shader of the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct ShaderOut {
    /// Relative to the manifest.
    pub file: String,
    /// Validates without naga's subgroup capabilities (WebGPU core).
    pub portable: bool,
    /// The [`browser_form`] of a subgroup shader, relative to the manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub browser_file: Option<String>,
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub format: u32,
    /// The adapter wgpu ran the checks on.
    pub adapter: String,
    pub shaders: BTreeMap<String, ShaderOut>,
    pub checks: Vec<ExportedCheck>,
    pub skipped: Vec<Skipped>,
}

/// True when `source` validates without subgroup operations (WebGPU core, no extension).
pub fn is_portable(source: &str) -> bool {
    let Ok(module) = naga::front::wgsl::parse_str(source) else {
        return false;
    };
    let caps = naga::valid::Capabilities::all()
        - naga::valid::Capabilities::SUBGROUP
        - naga::valid::Capabilities::SUBGROUP_BARRIER
        - naga::valid::Capabilities::SUBGROUP_VERTEX_STAGE;
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
        .validate(&module)
        .is_ok()
}

/// The form of a subgroup shader a browser (WebGPU, Tint) compiles: `enable subgroups;`, then
/// the directives its header lists on `// browser-directive: ` lines (conv2d_subgroup.wgsl's
/// `diagnostic(off, subgroup_uniformity);`, with the reason it is sound), then the source.
/// naga 30 rejects the `enable`, so the files of `shaders/` go without it and this is the one
/// source for both.
pub fn browser_form(source: &str) -> String {
    let mut out = String::from("enable subgroups;\n");
    for d in source
        .lines()
        .filter_map(|l| l.strip_prefix("// browser-directive: "))
    {
        out.push_str(d.trim());
        out.push('\n');
    }
    out.push_str(source);
    out
}

/// One check's data file, grown as ranges are added.
#[derive(Default)]
struct Blob(Vec<u8>);

impl Blob {
    fn add(&mut self, bytes: &[u8]) -> Range {
        // 8-byte aligned, so a reader may view f64 ranges in place.
        while !self.0.len().is_multiple_of(8) {
            self.0.push(0);
        }
        let at = self.0.len() as u64;
        self.0.extend_from_slice(bytes);
        [at, bytes.len() as u64]
    }
}

fn access_name(a: Access) -> &'static str {
    match a {
        Access::Uniform => "uniform",
        Access::Read => "read",
        Access::ReadWrite => "read_write",
    }
}

/// Where `c.gpu` lies among the buffers a dispatch wrote: `(buffer, byte offset)`, or why it
/// cannot be told. `taken` are the buffers earlier outputs of the check were located in.
///
/// Where the values occur in several places (two outputs that are bit-identical on wgpu, as
/// add's da and db), a whole buffer no earlier output took is chosen: the CPU values of both
/// outputs accept wgpu's identical values, so either assignment checks each buffer against a
/// reference its wgpu values passed.
fn locate(
    trace: &Trace,
    written: &[bool],
    taken: &[usize],
    c: &Compared,
) -> Result<(usize, u64), String> {
    let want: &[u8] = bytemuck::cast_slice(&c.gpu);
    if want.is_empty() {
        return Err("empty output".into());
    }
    let mut hits: Vec<(usize, u64)> = Vec::new();
    for (id, bytes) in trace.contents.iter().enumerate() {
        if !written[id] || bytes.len() < want.len() {
            continue;
        }
        for at in (0..=bytes.len() - want.len()).step_by(4) {
            if &bytes[at..at + want.len()] == want {
                hits.push((id, at as u64));
            }
        }
    }
    let whole: Vec<_> = hits
        .iter()
        .copied()
        .filter(|&(id, at)| at == 0 && trace.sizes[id] as usize == want.len())
        .collect();
    let free: Vec<_> = whole
        .iter()
        .copied()
        .filter(|(id, _)| !taken.contains(id))
        .collect();
    match (hits.as_slice(), whole.as_slice(), free.as_slice()) {
        ([], _, _) => {
            Err("its values are in no buffer a dispatch wrote (derived on the host)".into())
        }
        ([one], _, _) | (_, [one], _) | (_, _, [one, ..]) => Ok(*one),
        _ => Err(format!(
            "its values occur at {} places in the written buffers; which one was read is unknown",
            hits.len()
        )),
    }
}

/// Turns a check's outcome and trace into an [`ExportedCheck`] whose data file is `data` (the
/// bytes returned beside it), or says why it cannot be exported.
fn to_export(
    check: &Check,
    result: &CheckResult,
    outcome: Result<Vec<Compared>, crate::gpu::GpuError>,
    trace: &Trace,
    data: &str,
    portable: &mut BTreeMap<&'static str, bool>,
) -> Result<(ExportedCheck, Vec<u8>), String> {
    let outputs = outcome.map_err(|e| format!("the check failed on wgpu: {e}"))?;
    if let Some(e) = &trace.error {
        return Err(e.clone());
    }
    let subgroups = trace
        .shaders
        .iter()
        .any(|(name, src)| !*portable.entry(name).or_insert_with(|| is_portable(src)));
    let mut written = vec![false; trace.sizes.len()];
    for s in &trace.steps {
        if let Step::Dispatch(d) = s {
            for b in &d.bindings {
                if let (Access::ReadWrite, Some(id)) = (b.access, b.buffer) {
                    written[id] = true;
                }
            }
        }
    }
    let mut blob = Blob::default();
    let steps = trace
        .steps
        .iter()
        .map(|s| match s {
            Step::Write { buffer, bytes } => StepOut::Write {
                buffer: *buffer,
                data: bytes.iter().any(|&b| b != 0).then(|| blob.add(bytes)),
            },
            Step::Dispatch(d) => StepOut::Dispatch {
                shader: d.shader.to_string(),
                entry: d.entry.clone(),
                constants: d.constants.iter().cloned().collect(),
                params: d.params.as_ref().map(|p| blob.add(p)),
                bindings: d
                    .bindings
                    .iter()
                    .map(|b| BindingOut {
                        binding: b.binding,
                        access: access_name(b.access),
                        buffer: b.buffer,
                        offset: b.offset,
                        size: b.size,
                    })
                    .collect(),
                workgroups: d.workgroups,
            },
        })
        .collect();
    let mut out: Vec<OutputOut> = Vec::new();
    let mut omitted = Vec::new();
    for c in &outputs {
        let taken: Vec<usize> = out.iter().map(|o| o.buffer).collect();
        match locate(trace, &written, &taken, c) {
            Ok((buffer, offset)) => {
                let expected: Vec<u8> = c.cpu.iter().flat_map(|v| v.to_le_bytes()).collect();
                let wgpu: Vec<u8> = c.gpu.iter().flat_map(|v| v.to_le_bytes()).collect();
                out.push(OutputOut {
                    name: c.name.to_string(),
                    buffer,
                    offset,
                    len: c.gpu.len(),
                    atol: c.atol,
                    rtol: c.rtol,
                    expected: blob.add(&expected),
                    wgpu: blob.add(&wgpu),
                });
            }
            Err(why) => omitted.push(Omitted {
                name: c.name.to_string(),
                why,
            }),
        }
    }
    if out.is_empty() {
        return Err(format!(
            "no output could be located: {}",
            omitted
                .iter()
                .map(|o| format!("{}: {}", o.name, o.why))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    Ok((
        ExportedCheck {
            op: check.op.to_string(),
            pass: check.pass.to_string(),
            variant: check.variant.to_string(),
            class: check.class,
            shape: check.shape.clone(),
            data: data.to_string(),
            buffers: trace.sizes.clone(),
            steps,
            outputs: out,
            omitted,
            wgpu_ok: result.ok,
            subgroups,
        },
        blob.0,
    ))
}

/// What [`export`] did: each check's selftest row, and the manifest it wrote.
pub struct Export {
    pub results: Vec<CheckResult>,
    pub manifest: Manifest,
}

/// Runs `checks` on wgpu with recording on and writes their vectors into `dir` (created if
/// missing; an earlier export's files there are replaced). `on_result` sees each row as it
/// comes (for progress output).
pub fn export(
    ctx: &GpuContext,
    checks: &[Check],
    dir: &Path,
    mut on_result: impl FnMut(&CheckResult),
) -> std::io::Result<Export> {
    let checks_dir = dir.join("checks");
    let wgsl_dir = dir.join("wgsl");
    for d in [&checks_dir, &wgsl_dir] {
        if d.exists() {
            std::fs::remove_dir_all(d)?;
        }
        std::fs::create_dir_all(d)?;
    }
    let mut manifest = Manifest {
        format: FORMAT,
        adapter: ctx.summary().to_string(),
        shaders: BTreeMap::new(),
        checks: Vec::new(),
        skipped: Vec::new(),
    };
    let mut results = Vec::new();
    let mut sources: BTreeMap<&'static str, std::sync::Arc<str>> = BTreeMap::new();
    let mut portable = BTreeMap::new();
    for check in checks {
        let data = format!("checks/{:04}.bin", manifest.checks.len());
        let t = Instant::now();
        let (outcome, trace) = record::record(|| (check.run)(ctx));
        let result = judge(check, &outcome, t.elapsed().as_secs_f64());
        on_result(&result);
        match to_export(check, &result, outcome, &trace, &data, &mut portable) {
            Ok((exported, bytes)) => {
                for (name, src) in &trace.shaders {
                    if let Some(old) = sources.insert(name, src.clone())
                        && *old != **src
                    {
                        return Err(std::io::Error::other(format!(
                            "two different WGSL sources are both named '{name}'"
                        )));
                    }
                }
                std::fs::write(dir.join(&data), bytes)?;
                manifest.checks.push(exported);
            }
            Err(why) => manifest.skipped.push(Skipped {
                title: result.title(),
                why,
            }),
        }
        results.push(result);
    }
    for (name, src) in &sources {
        let file = format!("wgsl/{name}.wgsl");
        std::fs::write(dir.join(&file), src.as_bytes())?;
        let portable = portable
            .get(name)
            .copied()
            .unwrap_or_else(|| is_portable(src));
        let browser_file = (!portable).then(|| format!("wgsl/{name}.browser.wgsl"));
        if let Some(b) = &browser_file {
            std::fs::write(dir.join(b), browser_form(src))?;
        }
        manifest.shaders.insert(
            name.to_string(),
            ShaderOut {
                file,
                portable,
                browser_file,
            },
        );
    }
    let json = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("manifest.json"), json)?;
    Ok(Export { results, manifest })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shader(name: &str) -> &'static str {
        crate::SHADERS.iter().find(|(n, _)| *n == name).unwrap().1
    }

    #[test]
    fn the_browser_form_enables_subgroups_and_adds_the_header_directives() {
        let conv = browser_form(shader("conv2d_subgroup.wgsl"));
        let mut lines = conv.lines();
        assert_eq!(lines.next(), Some("enable subgroups;"));
        assert_eq!(lines.next(), Some("diagnostic(off, subgroup_uniformity);"));
        assert!(conv.ends_with(shader("conv2d_subgroup.wgsl")));
        let gemm = browser_form(shader("gemm_subgroup.wgsl"));
        assert_eq!(
            gemm,
            format!("enable subgroups;\n{}", shader("gemm_subgroup.wgsl"))
        );
    }

    #[test]
    fn exactly_the_subgroup_shaders_are_not_portable() {
        for (name, src) in crate::SHADERS {
            assert_eq!(is_portable(src), !name.contains("subgroup"), "{name}");
        }
    }
}
