//! What is timed: each family's candidates, the shapes as dispatches on scratch buffers, the parity gate and the timing loop.

use super::*;

/// The family's tiny and odd parity checks of `variant` on this adapter.
pub(super) fn passes_checks(ctx: &GpuContext, family: &str, variant: &str) -> Result<(), String> {
    let fam = (registry::FAMILIES.iter())
        .find(|f| f.name == family)
        .ok_or_else(|| format!("no family {family}"))?;
    for c in (fam.checks)(ctx) {
        if c.variant == variant && matches!(c.class, ShapeClass::Tiny | ShapeClass::Odd) {
            let r = run_check(ctx, &c);
            if !r.ok {
                return Err(format!("fails parity: {}", r.title()));
            }
        }
    }
    Ok(())
}

/// Seconds of one pass over `runs` (each recorded and waited for): an untimed warm-up
/// (compiles the pipelines, which for an unrolled kernel can take far longer than a run), then
/// the minimum of at least [`REPEATS`] runs, more while they add up to under [`MIN_TIMED`]
/// seconds (at most [`MAX_REPEATS`]): a pass of a few milliseconds varies by more than the
/// variants differ, and three of them once chose the slower GEMM. A variant whose first timed
/// run is over 4× `best` is not repeated (it cannot win).
pub(super) fn time_runs(ctx: &GpuContext, runs: &[Run], best: f64) -> f64 {
    let once = || -> f64 {
        let t = Instant::now();
        for r in runs {
            let refs: Vec<&Dispatch> = r.dispatches.iter().collect();
            if crate::kernels::run_all(ctx, &refs).is_err() {
                return f64::INFINITY;
            }
        }
        t.elapsed().as_secs_f64()
    };
    once();
    let first = once();
    if first > 4.0 * best {
        return first;
    }
    let (mut min, mut total, mut n) = (first, first, 1);
    while n < REPEATS || (total < MIN_TIMED && n < MAX_REPEATS) {
        let t = once();
        min = min.min(t);
        total += t;
        n += 1;
    }
    min
}

/// Dispatches of one timed shape and the buffers they bind.
pub(super) struct Run {
    pub(super) dispatches: Vec<Dispatch>,
    _buffers: Vec<wgpu::Buffer>,
}

/// A shape to time.
pub(super) enum Case {
    Gemm(GemmDims),
    Conv(Conv2dShape),
    Bn(BnShape),
}

impl Case {
    pub(super) fn label(&self) -> String {
        match self {
            Case::Gemm(d) => format!("M{} N{} K{}", d.m, d.n, d.k),
            Case::Conv(s) => format!(
                "{}x{}x{}x{}->{} k{} s{}",
                s.n, s.h, s.w, s.cin, s.cout, s.k, s.stride
            ),
            Case::Bn(s) => format!("{} rows x {} channels", s.rows, s.channels),
        }
    }
}

/// How to measure one family.
pub(super) struct FamilyTuner {
    /// As `GPUCNN_VARIANT`, the registry and the checks name it.
    pub(super) name: &'static str,
    /// Variant names that can run on the adapter, the default's usual choice first.
    pub(super) candidates: fn(&GpuContext) -> Vec<&'static str>,
    /// The shapes to time.
    pub(super) cases: fn(&ModelShapes) -> Vec<Case>,
    /// Dispatches of `variant` for each case.
    pub(super) build: fn(&GpuContext, &str, &[Case]) -> Vec<Run>,
}

pub(super) const FAMILIES: &[FamilyTuner] = &[
    FamilyTuner {
        name: "gemm",
        candidates: |ctx| {
            Gemm::new(ctx)
                .available()
                .iter()
                .map(|v| v.name())
                .collect()
        },
        cases: |s| s.gemm.iter().map(|&d| Case::Gemm(d)).collect(),
        build: build_gemm,
    },
    FamilyTuner {
        name: "conv2d",
        candidates: |ctx| {
            (conv2d::Variant::available(ctx).iter())
                .map(|v| v.name())
                .collect()
        },
        cases: |s| s.conv.iter().map(|&c| Case::Conv(c)).collect(),
        build: build_conv,
    },
    FamilyTuner {
        name: "batch_norm",
        candidates: |_| batch_norm::Variant::ALL.map(|v| v.name()).to_vec(),
        cases: |s| s.bn.iter().map(|&b| Case::Bn(b)).collect(),
        build: build_bn,
    },
];

pub(super) fn zeros(ctx: &GpuContext, len: usize) -> wgpu::Buffer {
    ctx.zeros("tune", len)
}

pub(super) fn build_gemm(ctx: &GpuContext, variant: &str, cases: &[Case]) -> Vec<Run> {
    let g = Gemm::new(ctx);
    let Some(v) = gemm::Variant::from_name(variant) else {
        return Vec::new();
    };
    let mut runs = Vec::new();
    for c in cases {
        if let Case::Gemm(d) = c {
            let (a, b, out) = (
                zeros(ctx, d.m * d.k),
                zeros(ctx, d.k * d.n),
                zeros(ctx, d.m * d.n),
            );
            runs.push(Run {
                dispatches: vec![g.forward(ctx, v, &out, &a, &b, d)],
                _buffers: vec![a, b, out],
            });
        }
    }
    runs
}

pub(super) fn build_conv(ctx: &GpuContext, variant: &str, cases: &[Case]) -> Vec<Run> {
    let Some(v) =
        conv2d::Variant::from_name(variant).filter(|v| conv2d::Variant::available(ctx).contains(v))
    else {
        return Vec::new();
    };
    let k = Conv2d::with_variant(ctx, v).expect("an available variant");
    let mut runs = Vec::new();
    for c in cases {
        if let Case::Conv(s) = c {
            let [x, w, b, y, dy, dw, db] = [
                s.x_len(),
                s.w_len(),
                s.cout,
                s.y_len(),
                s.y_len(),
                s.w_len(),
                s.cout,
            ]
            .map(|n| zeros(ctx, n));
            let scratch = zeros(ctx, k.backward_weight_scratch_len(s));
            // Training runs the forward and the weight gradient (the stem's input takes none).
            let mut dispatches = vec![k.forward(ctx, &y, &x, &w, &b, s)];
            let grads = WeightGrads {
                dw: &dw,
                db: &db,
                scratch: Some(&scratch),
            };
            dispatches.extend(k.backward_weight(ctx, grads, &dy, &x, s));
            runs.push(Run {
                dispatches,
                _buffers: vec![x, w, b, y, dy, dw, db, scratch],
            });
        }
    }
    runs
}

pub(super) fn build_bn(ctx: &GpuContext, variant: &str, cases: &[Case]) -> Vec<Run> {
    let Some(v) = batch_norm::Variant::from_name(variant) else {
        return Vec::new();
    };
    let k = BatchNorm::with_variant(ctx, v);
    let mut runs = Vec::new();
    for c in cases {
        if let Case::Bn(s) = c {
            let (m, ch) = (s.rows, s.channels);
            let [x, y, dy, dx] = [0; 4].map(|_| zeros(ctx, m * ch));
            // Ones: a finite inverse std and moving variance.
            let vecs: Vec<wgpu::Buffer> = (0..8)
                .map(|_| ctx.upload("vec", &vec![1.0f32; ch]))
                .collect();
            let scratch = zeros(ctx, BatchNorm::scratch_len(s));
            let [g, b, mean, istd, mm, mv, dg, db] = [0, 1, 2, 3, 4, 5, 6, 7].map(|i| &vecs[i]);
            let mut dispatches = k.forward_train(
                ctx,
                &TrainBuffers {
                    y: &y,
                    mean,
                    inv_std: istd,
                    moving_mean: mm,
                    moving_var: mv,
                    x: &x,
                    gamma: g,
                    beta: b,
                    scratch: &scratch,
                },
                s,
            );
            dispatches.extend(k.backward(
                ctx,
                &BackwardBuffers {
                    dx: &dx,
                    dgamma: dg,
                    dbeta: db,
                    dy: &dy,
                    x: &x,
                    gamma: g,
                    beta: b,
                    mean,
                    inv_std: istd,
                    scratch: &scratch,
                },
                s,
            ));
            runs.push(Run {
                dispatches,
                _buffers: [x, y, dy, dx, scratch].into_iter().chain(vecs).collect(),
            });
        }
    }
    runs
}
