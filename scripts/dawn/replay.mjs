// Replays gpucnn's exported test vectors (`gpucnn selftest --export-vectors DIR`, format 1,
// described in src/vectors.rs) in Dawn, Chrome's WebGPU engine (the npm package `webgpu`), on a
// device with WebGPU's DEFAULT limits (the browser's baseline), and compares every output with
// the Rust CPU reference using the check's own tolerance |dawn - cpu| <= atol + rtol*|cpu|.
//
// Usage: node replay.mjs DIR [--json FILE] [--subgroups]
// With --subgroups, the checks of subgroup shaders run too, in the shaders' browser form, on a
// device with the `subgroups` feature where the adapter offers it and its subgroup sizes fit
// (else "not run"). Without it they are "not run" (CI: gemm_subgroup64's browser form alone
// takes minutes to compile on lavapipe, and conv2d_subgroup's is known to fail in Dawn; see
// README, "Browser-ready shaders").
// Prints one row per check and a summary per shader; exits 1 if any check fails (a
// compilation, pipeline, bind-group or validation error is a failure too), 2 on bad input.
// Everything a dispatch needs comes from the vectors and the WGSL: nothing from Rust's tables.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { create, globals } from 'webgpu';

Object.assign(globalThis, globals);

const FORMAT = 1;

function usage(msg) {
    console.error(`replay.mjs: ${msg}\nusage: node replay.mjs DIR [--json FILE] [--subgroups]`);
    process.exit(2);
}

const args = process.argv.slice(2);
let dir = null;
let jsonOut = null;
let subgroups = false;
for (let i = 0; i < args.length; i++) {
    if (args[i] === '--json') jsonOut = args[++i] ?? usage('--json needs a file');
    else if (args[i] === '--subgroups') subgroups = true;
    else if (dir === null) dir = args[i];
    else usage(`unexpected argument '${args[i]}'`);
}
if (dir === null) usage('no vector folder given');

let manifest;
try {
    manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
} catch (e) {
    usage(`cannot read ${join(dir, 'manifest.json')} (write it with gpucnn selftest --export-vectors DIR): ${e.message}`);
}
if (manifest.format !== FORMAT) usage(`vector format ${manifest.format}, this script reads ${FORMAT}`);

const gpu = create(['backend=vulkan']);
const adapter = await gpu.requestAdapter();
if (!adapter) {
    console.error('replay.mjs: Dawn found no adapter. On Mesa, Dawn needs lavapipe from Mesa 25 or newer '
        + '(VK_ICD_FILENAMES=/opt/mesa25/lvp.json; scripts/dawn-check.sh installs it).');
    process.exit(1);
}
// No required limits or features: WebGPU's defaults, what every browser offers.
const device = await adapter.requestDevice();
// For the known exceptions only (see KNOWN_OVER_LIMITS): the adapter's compute limits.
let bigDevice = null;
async function deviceWithAdapterLimits() {
    if (!bigDevice) {
        const requiredLimits = {};
        for (const k of ['maxStorageBuffersPerShaderStage', 'maxComputeWorkgroupStorageSize',
            'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupSizeY',
            'maxComputeWorkgroupSizeZ', 'maxStorageBufferBindingSize', 'maxBufferSize']) {
            requiredLimits[k] = adapter.limits[k];
        }
        // A WebGPU adapter gives one device: ask for a second adapter.
        bigDevice = await (await gpu.requestAdapter()).requestDevice({ requiredLimits });
        bigDevice.addEventListener('uncapturederror', (e) => uncaptured.push(e.error.message));
    }
    return bigDevice;
}
// For the checks of subgroup shaders: the `subgroups` feature, default limits otherwise.
let subgroupDevice = null;
async function deviceWithSubgroups() {
    if (!subgroupDevice) {
        subgroupDevice = await (await gpu.requestAdapter()).requestDevice({ requiredFeatures: ['subgroups'] });
        subgroupDevice.addEventListener('uncapturederror', (e) => uncaptured.push(e.error.message));
    }
    return subgroupDevice;
}
// Why a subgroup check cannot run on this adapter (WebGPU cannot request a subgroup size), or
// null. The rules are the shader headers': conv2d_subgroup needs a fixed size equal to its SG
// constant; gemm_subgroup and gemm_subgroup64 need subgroups of at least 8 lanes.
function subgroupBlocker(check) {
    if (!subgroups) return 'a subgroup shader (run with --subgroups)';
    if (!adapter.features.has('subgroups')) return 'the adapter has no subgroups';
    const { subgroupMinSize: lo, subgroupMaxSize: hi } = adapter.info;
    for (const s of check.steps.filter((s) => s.kind === 'dispatch' && !manifest.shaders[s.shader].portable)) {
        if ('SG' in s.constants && !(lo === hi && hi === s.constants.SG)) {
            return `${s.shader} was built for subgroups of ${s.constants.SG} lanes; this adapter's are ${lo}..${hi}`;
        }
        if (!('SG' in s.constants) && lo < 8) return `${s.shader} needs subgroups of at least 8 lanes; this adapter's may have ${lo}`;
    }
    return null;
}
const lim = device.limits;
const adapterName = [adapter.info.vendor, adapter.info.architecture, adapter.info.device, adapter.info.description]
    .filter(Boolean).join(' ');
console.log(`dawn adapter: ${adapterName || '(unnamed)'}; device limits: ${lim.maxStorageBuffersPerShaderStage} storage buffers/stage, `
    + `${lim.maxComputeWorkgroupStorageSize} B workgroup storage, ${lim.maxComputeInvocationsPerWorkgroup} invocations, `
    + `storage offset alignment ${lim.minStorageBufferOffsetAlignment}`);
console.log(`vectors from wgpu on: ${manifest.adapter}`);

// Entry points known to need more than WebGPU's default limits, with the limit their Dawn error
// names and why. Such a check runs again on a device with the adapter's limits and must pass
// there; it is reported as over the default limits. An entry that no longer needs its
// exception fails the run, so this list cannot go stale.
const KNOWN_OVER_LIMITS = {
    // None today: batch_norm_backward_input, the last one (9 storage buffers), binds 4 since its
    // per-channel factors come from backward_finalize through scratch. Form of an entry:
    // 'shader::entry_point': { limit: 'storage buffers', why: '…' },
};

let uncaptured = [];
device.addEventListener('uncapturederror', (e) => uncaptured.push(e.error.message));

const cache = new Map(); // device -> shader name -> {module, pipelines}
function shaderModule(device, name) {
    if (!cache.has(device)) cache.set(device, new Map());
    const modules = cache.get(device);
    if (!modules.has(name)) {
        const info = manifest.shaders[name];
        if (!info) throw new Error(`shader '${name}' is not in the manifest`);
        // A subgroup shader runs in its browser form (`enable subgroups;` first).
        const code = readFileSync(join(dir, info.browser_file ?? info.file), 'utf8');
        modules.set(name, { module: device.createShaderModule({ code, label: name }), pipelines: new Map() });
    }
    return modules.get(name);
}

async function compileMessages(module) {
    const info = await module.getCompilationInfo();
    return info.messages.filter((m) => m.type === 'error')
        .map((m) => `${m.lineNum}:${m.linePos} ${m.message}`);
}

class LimitError extends Error {
    constructor(key, message) {
        super(message);
        this.key = key;
    }
}

async function pipeline(device, step) {
    const sm = shaderModule(device, step.shader);
    const key = `${step.entry} ${JSON.stringify(step.constants)}`;
    if (!sm.pipelines.has(key)) {
        device.pushErrorScope('validation');
        const p = device.createComputePipeline({
            label: `${step.shader}::${step.entry}`,
            layout: 'auto',
            compute: { module: sm.module, entryPoint: step.entry, constants: step.constants },
        });
        const err = await device.popErrorScope();
        if (err) {
            const msgs = await compileMessages(sm.module);
            if (/exceeds the maximum|limit/i.test(err.message) && msgs.length === 0) {
                throw new LimitError(`${step.shader}::${step.entry}`, `pipeline ${step.shader}::${step.entry}: ${err.message}`);
            }
            throw new Error(`pipeline ${step.shader}::${step.entry}: ${err.message}${msgs.length ? ' ' + msgs.join('; ') : ''}`);
        }
        sm.pipelines.set(key, p);
    }
    return sm.pipelines.get(key);
}

function slice(data, [offset, len]) {
    return data.subarray(offset, offset + len);
}

async function readBuffer(device, buf, offset, size) {
    const staging = device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(buf, offset, staging, 0, size);
    device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const out = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    return out;
}

// The comparison of src/harness.rs `compare`: NaN or infinity fails unless both sides hold the
// same infinity; max_rel over elements with |cpu| > atol.
function compare(got, want, atol, rtol) {
    let maxAbs = 0, maxRel = 0, bad = 0, worst = null;
    for (let i = 0; i < want.length; i++) {
        const g = got[i], r = want[i];
        const sameInf = !Number.isFinite(g) && !Number.isNaN(g) && g === r;
        const err = sameInf ? 0 : (Number.isFinite(g) && Number.isFinite(r) ? Math.abs(g - r) : Infinity);
        maxAbs = Math.max(maxAbs, err);
        if (Number.isFinite(r) && Math.abs(r) > atol) maxRel = Math.max(maxRel, err / Math.abs(r));
        const within = sameInf || (Number.isFinite(g) && Number.isFinite(r) && err <= atol + rtol * Math.abs(r));
        if (!within) {
            bad++;
            if (worst === null || !(err <= worst.err)) worst = { i, g, r, err };
        }
    }
    return { maxAbs, maxRel, bad, worst };
}

async function runCheck(device, check) {
    const data = readFileSync(join(dir, check.data));
    const buffers = check.buffers.map((size, i) => device.createBuffer({
        label: `buffer ${i}`,
        size,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    }));
    const temps = [];
    try {
        device.pushErrorScope('validation');
        let enc = null;
        const flush = () => {
            if (enc) device.queue.submit([enc.finish()]);
            enc = null;
        };
        for (const step of check.steps) {
            if (step.kind === 'write') {
                // Ordered after the dispatches recorded so far, as on wgpu (a write between
                // two runs).
                flush();
                const buf = buffers[step.buffer];
                if (step.data) device.queue.writeBuffer(buf, 0, slice(data, step.data));
                else {
                    const e = device.createCommandEncoder();
                    e.clearBuffer(buf);
                    device.queue.submit([e.finish()]);
                }
            } else if (step.kind === 'dispatch') {
                const p = await pipeline(device, step);
                const entries = [];
                for (const b of step.bindings) {
                    if (b.access === 'uniform') {
                        if (!step.params) throw new Error(`${step.shader}::${step.entry}: a uniform binding but no params`);
                        const bytes = slice(data, step.params);
                        const u = device.createBuffer({ size: bytes.length, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
                        device.queue.writeBuffer(u, 0, bytes);
                        temps.push(u);
                        entries.push({ binding: b.binding, resource: { buffer: u } });
                    } else {
                        entries.push({ binding: b.binding, resource: { buffer: buffers[b.buffer], offset: b.offset, size: b.size } });
                    }
                }
                const bg = device.createBindGroup({ layout: p.getBindGroupLayout(0), entries });
                enc ??= device.createCommandEncoder();
                const pass = enc.beginComputePass();
                pass.setPipeline(p);
                pass.setBindGroup(0, bg);
                pass.dispatchWorkgroups(...step.workgroups);
                pass.end();
            } else {
                throw new Error(`unknown step kind '${step.kind}'`);
            }
        }
        flush();
        const err = await device.popErrorScope();
        if (err) throw new Error(err.message);
        const outputs = [];
        for (const o of check.outputs) {
            const got = await readBuffer(device, buffers[o.buffer], o.offset, o.len * 4);
            const exp = slice(data, o.expected);
            const want = new Float64Array(exp.buffer.slice(exp.byteOffset, exp.byteOffset + exp.byteLength));
            const w = slice(data, o.wgpu);
            const wgpu = new Float32Array(w.buffer.slice(w.byteOffset, w.byteOffset + w.byteLength));
            let maxVsWgpu = 0;
            for (let i = 0; i < got.length; i++) maxVsWgpu = Math.max(maxVsWgpu, Math.abs(got[i] - wgpu[i]) || 0);
            outputs.push({ name: o.name, ...compare(got, want, o.atol, o.rtol), atol: o.atol, rtol: o.rtol, maxVsWgpu });
        }
        return { outputs };
    } finally {
        for (const b of buffers) b.destroy();
        for (const b of temps) b.destroy();
    }
}

const rows = [];
const overLimitKeys = new Set();
const t0 = performance.now();
const pad = (s, n) => String(s).padEnd(n);
console.log(`${pad('op', 18)} ${pad('pass', 22)} ${pad('variant', 9)} ${pad('shape', 44)} ${'max_abs_err'.padStart(11)} ${'vs_wgpu'.padStart(9)}  ok`);
for (const check of manifest.checks) {
    const row = { op: check.op, pass: check.pass, variant: check.variant, class: check.class, shape: check.shape,
        shaders: [...new Set(check.steps.filter((s) => s.kind === 'dispatch').map((s) => s.shader))],
        ok: false, maxAbs: Infinity, maxRel: Infinity, maxVsWgpu: Infinity, detail: '' };
    uncaptured = [];
    try {
        let r;
        const blocker = check.subgroups ? subgroupBlocker(check) : null;
        try {
            if (blocker) throw new Error(`not run: ${blocker}`);
            r = await runCheck(check.subgroups ? await deviceWithSubgroups() : device, check);
        } catch (e) {
            if (blocker) {
                row.notRun = blocker;
                throw e;
            }
            if (!(e instanceof LimitError)) throw e;
            const known = KNOWN_OVER_LIMITS[e.key];
            if (!known || !e.message.includes(known.limit)) throw e;
            row.overLimits = `${e.key}: ${known.why}`;
            overLimitKeys.add(e.key);
            r = await runCheck(await deviceWithAdapterLimits(), check);
        }
        row.maxAbs = Math.max(...r.outputs.map((o) => o.maxAbs));
        row.maxRel = Math.max(...r.outputs.map((o) => o.maxRel));
        row.maxVsWgpu = Math.max(...r.outputs.map((o) => o.maxVsWgpu));
        const bad = r.outputs.filter((o) => o.bad > 0);
        row.ok = bad.length === 0 && uncaptured.length === 0;
        row.detail = bad.map((o) => `${o.name}: ${o.bad} elements outside atol ${o.atol} + rtol ${o.rtol}|cpu|; worst [${o.worst.i}] dawn ${o.worst.g} cpu ${o.worst.r}`).join('; ');
        if (uncaptured.length) row.detail += ` uncaptured errors: ${uncaptured.join('; ')}`;
    } catch (e) {
        row.detail = `error: ${e.message}`;
    }
    rows.push(row);
    const status = row.notRun ? 'not run' : !row.ok ? 'FAIL' : row.overLimits ? 'ok (over default limits)' : 'ok';
    console.log(`${pad(row.op, 18)} ${pad(row.pass, 22)} ${pad(row.variant, 9)} ${pad(row.shape, 44)} ${row.maxAbs.toExponential(3).padStart(11)} ${row.maxVsWgpu.toExponential(2).padStart(9)}  ${status}`);
    if (!row.ok && !row.notRun) console.log(`    ${row.detail}`);
}

// Per shader: the checks that used it, how many passed, and how many of those needed more
// than the default limits.
const perShader = {};
for (const name of Object.keys(manifest.shaders)) perShader[name] = { checks: 0, passed: 0, overLimits: 0, notRun: 0, entries: new Set() };
for (const [i, check] of manifest.checks.entries()) {
    for (const s of check.steps.filter((s) => s.kind === 'dispatch')) perShader[s.shader].entries.add(s.entry);
    for (const name of rows[i].shaders) {
        perShader[name].checks++;
        if (rows[i].ok) perShader[name].passed++;
        if (rows[i].ok && rows[i].overLimits) perShader[name].overLimits++;
        if (rows[i].notRun) perShader[name].notRun++;
    }
}
console.log(`\n${pad('shader', 36)}entry points  checks  passed  over default limits  not run`);
for (const [name, s] of Object.entries(perShader)) {
    const form = manifest.shaders[name].portable ? '' : ' (browser form)';
    console.log(`${pad(name + '.wgsl' + form, 36)}${String(s.entries.size).padStart(12)}${String(s.checks).padStart(8)}${String(s.passed).padStart(8)}${String(s.overLimits).padStart(21)}${String(s.notRun).padStart(9)}`);
}
for (const key of overLimitKeys) console.log(`over WebGPU's default limits: ${key}: ${KNOWN_OVER_LIMITS[key].why}`);
// A known exception whose entry point ran in some check without needing it is stale.
const usedEntries = new Set(manifest.checks.flatMap((c) => c.steps.filter((s) => s.kind === 'dispatch').map((s) => `${s.shader}::${s.entry}`)));
const stale = Object.keys(KNOWN_OVER_LIMITS).filter((k) => usedEntries.has(k) && !overLimitKeys.has(k));
for (const k of stale) console.log(`FAIL: ${k} is listed in KNOWN_OVER_LIMITS but ran within the default limits: remove it from replay.mjs`);
const notRun = rows.filter((r) => r.notRun).length;
const failed = rows.filter((r) => !r.ok && !r.notRun).length + stale.length;
const secs = ((performance.now() - t0) / 1000).toFixed(1);
console.log(`dawn: ${rows.length - failed - notRun} passed, ${failed} failed, ${notRun} not run `
    + `(${Object.keys(perShader).length} shaders, ${secs} s); ${manifest.skipped.length} checks not exported`);
for (const s of manifest.skipped) console.log(`  not exported: ${s.title}: ${s.why}`);
for (const why of new Set(rows.filter((r) => r.notRun).map((r) => r.notRun))) {
    console.log(`  not run: ${rows.filter((r) => r.notRun === why).length} checks: ${why}`);
}
if (jsonOut) {
    const shaders = Object.fromEntries(Object.entries(perShader).map(([k, v]) => [k, { ...v, entries: [...v.entries] }]));
    writeFileSync(jsonOut, JSON.stringify({ adapter: adapterName, rows, shaders }, null, 1));
}
process.exit(failed === 0 && rows.length > notRun ? 0 : 1);
