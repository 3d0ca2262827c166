//! Recording what a piece of GPU work dispatches, so that another WebGPU engine can replay it.
//!
//! [`record`] runs a closure with a recorder active on the calling thread. While it is, every
//! [`super::shader::ShaderFamily::dispatch`] keeps a [`DispatchTrace`] (the WGSL source, entry
//! point, override constants, Params bytes and every bound buffer range) in the [`Dispatch`] it
//! returns, and [`super::shader::run_all`] runs through [`run_traced`]: it reads back every
//! buffer the dispatches bind before and after running them, and appends to the [`Trace`]
//!
//! - a [`Step::Write`] for each buffer whose contents the host set or changed since the last
//!   traced work (its first contents, or a `queue.write_buffer` between two runs), and
//! - a [`Step::Dispatch`] for each dispatch, in order.
//!
//! A replay that starts from empty buffers and applies the steps in order sees exactly the
//! inputs each dispatch saw on wgpu, while every value a dispatch computes flows from the
//! replaying engine's own earlier dispatches, never from wgpu's. [`Trace::contents`] holds each
//! buffer's contents after the last traced work (what a check read back), which is how
//! `crate::vectors` finds the buffer each compared output came from.
//!
//! Off (the default) it costs one thread-local lookup per dispatch built and per `run_all`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use super::shader::Dispatch;
use super::{GpuContext, GpuError};

/// How a dispatch sees one binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `var<uniform>`: the Params struct.
    Uniform,
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`.
    ReadWrite,
}

/// One storage binding of a traced dispatch, as built (before buffer ids are known).
#[derive(Debug, Clone)]
pub(crate) struct TracedBinding {
    pub binding: u32,
    pub access: Access,
    /// `None` for the uniform (its bytes are [`DispatchTrace::params`]).
    pub buffer: Option<wgpu::Buffer>,
    pub offset: u64,
    pub size: u64,
}

/// What a [`Dispatch`] built while recording remembers for the trace.
#[derive(Debug)]
pub(crate) struct DispatchTrace {
    pub shader: &'static str,
    pub source: Arc<str>,
    pub entry: String,
    pub constants: Vec<(String, f64)>,
    pub bindings: Vec<TracedBinding>,
    /// The Params bytes; `Dispatch::write_params` updates them.
    pub params: Mutex<Option<Vec<u8>>>,
}

/// One binding of a [`DispatchStep`]: slot, access and the range of a traced buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct StepBinding {
    pub binding: u32,
    pub access: Access,
    /// Index into [`Trace::sizes`]; `None` for the uniform.
    pub buffer: Option<usize>,
    pub offset: u64,
    pub size: u64,
}

/// One recorded dispatch.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchStep {
    /// The shader family's name (its WGSL is `Trace::shaders[shader]`).
    pub shader: &'static str,
    pub entry: String,
    /// Pipeline-overridable constants the module declares, as the pipeline was built with.
    pub constants: Vec<(String, f64)>,
    /// Params bytes (the uniform), if the entry point uses one.
    pub params: Option<Vec<u8>>,
    pub bindings: Vec<StepBinding>,
    pub workgroups: [u32; 3],
}

/// One step of a trace, in the order a replay applies them.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The host set buffer `buffer` to `bytes` (its whole size).
    Write {
        buffer: usize,
        bytes: Vec<u8>,
    },
    Dispatch(DispatchStep),
}

/// Everything dispatched while [`record`] ran.
#[derive(Debug, Default)]
pub struct Trace {
    /// Byte size of each traced buffer (the index is the buffer's id in the steps).
    pub sizes: Vec<u64>,
    pub steps: Vec<Step>,
    /// WGSL source of each shader family the steps use.
    pub shaders: BTreeMap<&'static str, Arc<str>>,
    /// Each buffer's contents after the last traced work.
    pub contents: Vec<Vec<u8>>,
    /// Why the trace cannot be replayed (a dispatch built before recording began, a buffer
    /// that cannot be read back), if so.
    pub error: Option<String>,
    ids: HashMap<wgpu::Buffer, usize>,
}

impl Trace {
    fn id(&mut self, buffer: &wgpu::Buffer) -> usize {
        if let Some(&id) = self.ids.get(buffer) {
            return id;
        }
        let id = self.sizes.len();
        self.ids.insert(buffer.clone(), id);
        self.sizes.push(buffer.size());
        self.contents.push(Vec::new());
        id
    }

    fn fail(&mut self, why: String) {
        self.error.get_or_insert(why);
    }
}

thread_local! {
    static RECORDER: RefCell<Option<Trace>> = const { RefCell::new(None) };
}

/// True while [`record`] runs on this thread.
pub(crate) fn active() -> bool {
    RECORDER.with(|r| r.borrow().is_some())
}

/// Runs `f` with a recorder active on this thread and returns its result with the [`Trace`].
/// Not reentrant: a `record` inside `f` panics.
pub fn record<R>(f: impl FnOnce() -> R) -> (R, Trace) {
    RECORDER.with(|r| {
        let mut r = r.borrow_mut();
        assert!(r.is_none(), "gpu::record::record is not reentrant");
        *r = Some(Trace::default());
    });
    // Take the trace back even if `f` panics, so the thread is left without a recorder.
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            RECORDER.with(|r| r.borrow_mut().take());
        }
    }
    let reset = Reset;
    let out = f();
    let trace = RECORDER.with(|r| r.borrow_mut().take()).unwrap_or_default();
    drop(reset);
    (out, trace)
}

/// Every distinct buffer the dispatches bind, in order of first use.
fn bound_buffers(dispatches: &[&Dispatch]) -> Vec<wgpu::Buffer> {
    let mut seen: Vec<wgpu::Buffer> = Vec::new();
    for d in dispatches {
        let Some(t) = &d.trace else { continue };
        for b in t.bindings.iter().filter_map(|b| b.buffer.as_ref()) {
            if !seen.contains(b) {
                seen.push(b.clone());
            }
        }
    }
    seen
}

/// [`super::shader::run_all`] while recording: snapshot, trace, run, snapshot.
pub(crate) fn run_traced(ctx: &GpuContext, dispatches: &[&Dispatch]) -> Result<(), GpuError> {
    let buffers = bound_buffers(dispatches);
    let mut before = Vec::with_capacity(buffers.len());
    for b in &buffers {
        before.push(ctx.read::<u8>(b));
    }
    with_trace(|t| {
        for (b, bytes) in buffers.iter().zip(before) {
            let id = t.id(b);
            match bytes {
                // A buffer seen for the first time has empty contents here: it gets its Write.
                Ok(bytes) if t.contents[id] != bytes => {
                    t.contents[id] = bytes.clone();
                    t.steps.push(Step::Write { buffer: id, bytes });
                }
                Ok(_) => {}
                Err(e) => t.fail(format!("reading back a bound buffer failed: {e}")),
            }
        }
        for d in dispatches {
            if d.has_mirrors() {
                t.fail(format!(
                    "{}: reads texture mirrors of its operands, which a trace does not carry \
                     (only storage buffers)",
                    d.label
                ));
            }
            let Some(dt) = &d.trace else {
                t.fail(format!(
                    "{}: dispatch built before recording began; its bindings are unknown",
                    d.label
                ));
                continue;
            };
            t.shaders
                .entry(dt.shader)
                .or_insert_with(|| dt.source.clone());
            let bindings = dt
                .bindings
                .iter()
                .map(|b| StepBinding {
                    binding: b.binding,
                    access: b.access,
                    buffer: b.buffer.as_ref().map(|buf| t.id(buf)),
                    offset: b.offset,
                    size: b.size,
                })
                .collect();
            t.steps.push(Step::Dispatch(DispatchStep {
                shader: dt.shader,
                entry: dt.entry.clone(),
                constants: dt.constants.clone(),
                params: dt.params.lock().expect("params lock").clone(),
                bindings,
                workgroups: d.workgroups,
            }));
        }
    });
    super::shader::run_all_untraced(ctx, dispatches)?;
    for b in &buffers {
        let after = ctx.read::<u8>(b);
        with_trace(|t| {
            let id = t.id(b);
            match after {
                Ok(bytes) => t.contents[id] = bytes,
                Err(e) => t.fail(format!("reading back a bound buffer failed: {e}")),
            }
        });
    }
    Ok(())
}

fn with_trace(f: impl FnOnce(&mut Trace)) {
    RECORDER.with(|r| {
        if let Some(t) = r.borrow_mut().as_mut() {
            f(t)
        }
    })
}
