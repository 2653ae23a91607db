/**
 * Fused normalisation + activation (`SemisegNormAct` / `SemisegNormActGrad`, the kernels of
 * `../native/norm.ts`) in WGSL for the `webgpu` backend: batch norm (statistics per channel
 * over N,D,H,W, `nn.BatchNorm3d` in training) or instance norm (per sample and channel,
 * `nn.InstanceNorm3d`), then ReLU / LeakyReLU / nothing. Same inputs, outputs and attributes
 * as the cpu kernels, so model code is unchanged.
 *
 * An NDHWC tensor is [n, s, c] (s = D*H*W). It is cut into BLOCKS of up to {@link BLOCK}
 * voxels of one sample; the statistics are computed in three kernels:
 * 1. per (block, channel) invocation: the block's mean and centred sum of squares (two passes
 *    over the block: no cancellation, unlike sum-of-squares minus squared mean);
 * 2. per statistics group (c groups for batch norm, n*c for instance norm) one workgroup of
 *    64 invocations combines its blocks with Chan et al.'s pairwise update (each invocation a
 *    strided subset in order, then a fixed tree in workgroup memory: deterministic);
 * 3. an element-wise pass applying `act(gamma (x - mean) / sqrt(var + eps) + beta)`.
 * The backward mirrors it: per-block sums of `u = dy act'(y)` and `u (x - mean)`, a per-group
 * tree sum giving the coefficients of `dx = A u + B (x - mean) + D` (as the cpu kernel), a
 * per-channel sum of dgamma/dbeta over samples, and an element-wise pass for dx.
 * Element-wise and per-block passes bind windows of at most the binding limit (`gpu.ts`).
 * @module
 */
import type * as tf from "@tensorflow/tfjs-core";
import {
  bindingLimit,
  dispatch,
  disposeScratch,
  type GpuKernelArgs,
  grid,
  kernel,
  newOutput,
  packUniforms,
  planChunks,
  scratch,
  type UniformValue,
  type WebgpuBackendLike,
  wholeOf,
  windowOf,
} from "./gpu.ts";
import { NORM_ACT, NORM_ACT_GRAD, type NormActAttrs } from "../native/norm.ts";

/** Voxels per statistics block. */
export const BLOCK = 256;

/** Layout of the normalised tensor and its blocks. */
interface NormPlan {
  n: number;
  s: number;
  c: number;
  perSample: boolean;
  /** Blocks per sample. */
  bps: number;
  /** Blocks in all. */
  nb: number;
  groups: number;
}

function planOf(shape: readonly number[], perSample: boolean): NormPlan {
  const n = shape[0]!, c = shape[shape.length - 1]!;
  let s = 1;
  for (let i = 1; i < shape.length - 1; i++) s *= shape[i]!;
  const bps = Math.ceil(s / BLOCK);
  return { n, s, c, perSample, bps, nb: n * bps, groups: perSample ? n * c : c };
}

/** Uniforms shared by the norm kernels (one struct for all, in this order). */
const FIELDS = [
  "n",
  "s",
  "c",
  "B",
  "bps",
  "nb",
  "perSample",
  "b0",
  "nBlk",
  "e0",
  "e1",
  "baseA",
  "baseB",
];

function uniforms(p: NormPlan, extra: Record<string, number>, floats: number[]): ArrayBuffer {
  const all = { ...p, perSample: p.perSample ? 1 : 0, B: BLOCK, ...extra } as Record<
    string,
    number
  >;
  const v: UniformValue[] = FIELDS.map((f) => ({ i: all[f] ?? 0 }));
  for (const f of floats) v.push({ f });
  return packUniforms(v);
}

const STRUCT = `struct U { ${FIELDS.map((f) => `${f}: i32`).join(", ")}, eps: f32, slope: f32 }`;

/** Index helpers: the first element of (block b, channel k) and the block's voxel count. */
const BLOCK_FNS = `
fn blockStart(b: i32, k: i32) -> i32 {
  return ((b / u.bps) * u.s + (b % u.bps) * u.B) * u.c + k;
}
fn blockCount(b: i32) -> i32 { return min(u.B, u.s - (b % u.bps) * u.B); }
/** The statistics group of tensor element e (channel, or sample x channel). */
fn groupOfElement(e: i32) -> i32 {
  if (u.perSample == 1) { return (e / (u.s * u.c)) * u.c + e % u.c; }
  return e % u.c;
}
fn groupOf(b: i32, k: i32) -> i32 {
  if (u.perSample == 1) { return (b / u.bps) * u.c + k; }
  return k;
}
/** The activation's slope at output y: 1 where y > 0, else the negative slope. */
fn gain(y: f32) -> f32 { return select(u.slope, 1.0, y > 0.0); }
fn linearId(wg: vec3<u32>, nw: vec3<u32>, li: u32) -> i32 {
  return i32((wg.x + wg.y * nw.x) * 64u + li);
}`;

/** Pass 1 forward: per (block, channel) mean and centred sum of squares. */
const STATS_PARTIAL = `${STRUCT}
@group(0) @binding(0) var<storage, read_write> P: array<f32>;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<uniform> u: U;
${BLOCK_FNS}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let id = linearId(wg, nw, li);
  if (id >= u.nBlk * u.c) { return; }
  let b = u.b0 + id / u.c; let k = id % u.c;
  let start = blockStart(b, k) - u.baseA; let cnt = blockCount(b);
  var sum = 0.0;
  for (var v = 0; v < cnt; v = v + 1) { sum = sum + X[start + v * u.c]; }
  let m = sum / f32(cnt);
  var m2 = 0.0;
  for (var v = 0; v < cnt; v = v + 1) { let d = X[start + v * u.c] - m; m2 = fma(d, d, m2); }
  P[(b * u.c + k) * 2] = m;
  P[(b * u.c + k) * 2 + 1] = m2;
}`;

/** The blocks of group j: [lo, hi). */
const GROUP_BLOCKS = `
fn groupLo(j: i32) -> i32 { if (u.perSample == 1) { return (j / u.c) * u.bps; } return 0; }
fn groupHi(j: i32) -> i32 { if (u.perSample == 1) { return (j / u.c + 1) * u.bps; } return u.nb; }`;

/** Pass 2 forward: one workgroup per group combines the block statistics (Chan et al.). */
const STATS_COMBINE = `${STRUCT}
@group(0) @binding(0) var<storage, read_write> MEAN: array<f32>;
@group(0) @binding(1) var<storage, read_write> VAR: array<f32>;
@group(0) @binding(2) var<storage, read> P: array<f32>;
@group(0) @binding(3) var<uniform> u: U;
${BLOCK_FNS}
${GROUP_BLOCKS}
var<workgroup> sn: array<f32, 64>;
var<workgroup> sm: array<f32, 64>;
var<workgroup> sq: array<f32, 64>;
fn merge(na: f32, ma: f32, qa: f32, nb: f32, mb: f32, qb: f32) -> vec3<f32> {
  let n = na + nb;
  if (n == 0.0) { return vec3<f32>(0.0, 0.0, 0.0); }
  let d = mb - ma;
  return vec3<f32>(n, ma + d * (nb / n), qa + qb + d * d * (na * nb / n));
}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let j = i32(wg.x + wg.y * nw.x);
  if (j >= select(u.c, u.n * u.c, u.perSample == 1)) { return; }
  let t = i32(li);
  let k = j % u.c;
  var acc = vec3<f32>(0.0, 0.0, 0.0);
  for (var b = groupLo(j) + t; b < groupHi(j); b = b + 64) {
    let cnt = f32(blockCount(b));
    acc = merge(acc.x, acc.y, acc.z, cnt, P[(b * u.c + k) * 2], P[(b * u.c + k) * 2 + 1]);
  }
  sn[t] = acc.x; sm[t] = acc.y; sq[t] = acc.z;
  workgroupBarrier();
  for (var w = 32; w > 0; w = w / 2) {
    if (t < w) {
      let r = merge(sn[t], sm[t], sq[t], sn[t + w], sm[t + w], sq[t + w]);
      sn[t] = r.x; sm[t] = r.y; sq[t] = r.z;
    }
    workgroupBarrier();
  }
  if (t == 0) { MEAN[j] = sm[0]; VAR[j] = max(sq[0] / sn[0], 0.0); }
}`;

/** Pass 3 forward: y = act(gamma (x - mean) / sqrt(var + eps) + beta), element-wise. */
const APPLY = `${STRUCT}
@group(0) @binding(0) var<storage, read_write> Y: array<f32>;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> MEAN: array<f32>;
@group(0) @binding(3) var<storage, read> VAR: array<f32>;
@group(0) @binding(4) var<storage, read> GAMMA: array<f32>;
@group(0) @binding(5) var<storage, read> BETA: array<f32>;
@group(0) @binding(6) var<uniform> u: U;
${BLOCK_FNS}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let e = u.e0 + linearId(wg, nw, li);
  if (e >= u.e1) { return; }
  let k = e % u.c;
  let g = groupOfElement(e);
  let scale = GAMMA[k] / sqrt(VAR[g] + u.eps);
  let t = (X[e - u.baseA] - MEAN[g]) * scale + BETA[k];
  Y[e - u.baseB] = t * gain(t);
}`;

/** Pass 1 backward: per (block, channel) sums of u and u (x - mean). */
const GRAD_PARTIAL = `${STRUCT}
@group(0) @binding(0) var<storage, read_write> P: array<f32>;
@group(0) @binding(1) var<storage, read> DY: array<f32>;
@group(0) @binding(2) var<storage, read> X: array<f32>;
@group(0) @binding(3) var<storage, read> Y: array<f32>;
@group(0) @binding(4) var<storage, read> MEAN: array<f32>;
@group(0) @binding(5) var<uniform> u: U;
${BLOCK_FNS}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let id = linearId(wg, nw, li);
  if (id >= u.nBlk * u.c) { return; }
  let b = u.b0 + id / u.c; let k = id % u.c;
  let start = blockStart(b, k) - u.baseA; let cnt = blockCount(b);
  let m = MEAN[groupOf(b, k)];
  var su = 0.0; var sux = 0.0;
  for (var v = 0; v < cnt; v = v + 1) {
    let p = start + v * u.c;
    let g = DY[p] * gain(Y[p]);
    su = su + g;
    sux = fma(g, X[p] - m, sux);
  }
  P[(b * u.c + k) * 2] = su;
  P[(b * u.c + k) * 2 + 1] = sux;
}`;

/** Pass 2 backward: per group tree sums, then dx coefficients and dgamma/dbeta parts. */
const GRAD_COMBINE = `${STRUCT}
@group(0) @binding(0) var<storage, read_write> COEF: array<f32>;
@group(0) @binding(1) var<storage, read_write> GP: array<f32>;
@group(0) @binding(2) var<storage, read> P: array<f32>;
@group(0) @binding(3) var<storage, read> VAR: array<f32>;
@group(0) @binding(4) var<storage, read> GAMMA: array<f32>;
@group(0) @binding(5) var<uniform> u: U;
${BLOCK_FNS}
${GROUP_BLOCKS}
var<workgroup> s1: array<f32, 64>;
var<workgroup> s2: array<f32, 64>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let j = i32(wg.x + wg.y * nw.x);
  if (j >= select(u.c, u.n * u.c, u.perSample == 1)) { return; }
  let t = i32(li);
  let k = j % u.c;
  var a = 0.0; var b2 = 0.0;
  for (var b = groupLo(j) + t; b < groupHi(j); b = b + 64) {
    a = a + P[(b * u.c + k) * 2];
    b2 = b2 + P[(b * u.c + k) * 2 + 1];
  }
  s1[t] = a; s2[t] = b2;
  workgroupBarrier();
  for (var w = 32; w > 0; w = w / 2) {
    if (t < w) { s1[t] = s1[t] + s1[t + w]; s2[t] = s2[t] + s2[t + w]; }
    workgroupBarrier();
  }
  if (t == 0) {
    var count = f32(u.n * u.s);
    if (u.perSample == 1) { count = f32(u.s); }
    let su = s1[0]; let sux = s2[0];
    let inv = 1.0 / sqrt(VAR[j] + u.eps);
    let A = GAMMA[k] * inv;
    COEF[j * 3] = A;
    COEF[j * 3 + 1] = -GAMMA[k] * inv * inv * inv * sux / count;
    COEF[j * 3 + 2] = -A * su / count;
    GP[j * 2] = sux * inv;
    GP[j * 2 + 1] = su;
  }
}`;

/** Pass 3 backward: dgamma, dbeta per channel, summed over samples for instance norm. */
const PARAM_GRAD = `${STRUCT}
@group(0) @binding(0) var<storage, read_write> DG: array<f32>;
@group(0) @binding(1) var<storage, read_write> DB: array<f32>;
@group(0) @binding(2) var<storage, read> GP: array<f32>;
@group(0) @binding(3) var<uniform> u: U;
${BLOCK_FNS}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let k = linearId(wg, nw, li);
  if (k >= u.c) { return; }
  var dg = 0.0; var db = 0.0;
  var samples = 1;
  if (u.perSample == 1) { samples = u.n; }
  for (var i = 0; i < samples; i = i + 1) {
    dg = dg + GP[(i * u.c + k) * 2];
    db = db + GP[(i * u.c + k) * 2 + 1];
  }
  DG[k] = dg; DB[k] = db;
}`;

/** Pass 4 backward: dx = A u + B (x - mean) + D, element-wise. */
const DX_APPLY = `${STRUCT}
@group(0) @binding(0) var<storage, read_write> DX: array<f32>;
@group(0) @binding(1) var<storage, read> DY: array<f32>;
@group(0) @binding(2) var<storage, read> X: array<f32>;
@group(0) @binding(3) var<storage, read> Y: array<f32>;
@group(0) @binding(4) var<storage, read> MEAN: array<f32>;
@group(0) @binding(5) var<storage, read> COEF: array<f32>;
@group(0) @binding(6) var<uniform> u: U;
${BLOCK_FNS}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let e = u.e0 + linearId(wg, nw, li);
  if (e >= u.e1) { return; }
  let k = e % u.c;
  let g = groupOfElement(e);
  let p = e - u.baseA;
  let gu = DY[p] * gain(Y[p]);
  DX[e - u.baseB] = COEF[g * 3] * gu + COEF[g * 3 + 1] * (X[p] - MEAN[g]) + COEF[g * 3 + 2];
}`;

/** A run of whole blocks [b0, b1) covering elements [e0, e1), with windows that fit. */
interface Chunk {
  b0: number;
  b1: number;
  e0: number;
  e1: number;
}

/** Cut the blocks into runs whose element windows fit the binding limit (one run usually). */
function chunksOf(be: WebgpuBackendLike, p: NormPlan): Chunk[] {
  const range = (b: number): [number, number] => {
    const start = (Math.floor(b / p.bps) * p.s + (b % p.bps) * BLOCK) * p.c;
    return [start, start + Math.min(BLOCK, p.s - (b % p.bps) * BLOCK) * p.c];
  };
  const lim = bindingLimit(be.device);
  const align = be.device.limits.minStorageBufferOffsetAlignment / 4;
  return planChunks(p.nb, (b) => [range(b)], lim, align, "norm").map(([b0, b1]) => ({
    b0,
    b1,
    e0: range(b0)[0],
    e1: range(b1 - 1)[1],
  }));
}

function attrsOf(a: tf.NamedAttrMap): NormActAttrs {
  return {
    perSample: a["perSample"] === true,
    eps: a["eps"] as number,
    act: a["act"] as NormActAttrs["act"],
    slope: (a["slope"] as number | undefined) ?? 0,
  };
}

/** Slope of the activation for negative inputs: 0 (ReLU), the leak, or 1 (none). */
function slopeOf(a: NormActAttrs): number {
  return a.act === "relu" ? 0 : a.act === "leaky" ? a.slope : 1;
}

const k = (
  be: WebgpuBackendLike,
  name: string,
  kinds: ("read" | "write" | "uniform")[],
  code: string,
) => kernel(be.device, `semiseg-norm-${name}`, kinds, () => code);

/** Workgroups of 64 for `invocations` invocations. */
function groupsFor(be: WebgpuBackendLike, invocations: number): [number, number, number] {
  return grid(be.device, Math.ceil(invocations / 64));
}

/** Kernel function of `SemisegNormAct` on webgpu: outputs y, mean, variance. */
export function normActGpu(args: GpuKernelArgs): tf.TensorInfo[] {
  const be = args.backend;
  const x = args.inputs["x"]!, gamma = args.inputs["gamma"]!, beta = args.inputs["beta"]!;
  const at = attrsOf(args.attrs);
  const p = planOf(x.shape, at.perSample);
  const statShape = at.perSample ? [p.n, p.c] : [p.c];
  const y = newOutput(be, [...x.shape]);
  const mean = newOutput(be, statShape), variance = newOutput(be, statShape);
  const part = scratch(be, p.nb * p.c * 2);
  const partB = wholeOf(be, part).bound;
  const floats = [at.eps, slopeOf(at)];
  const chunks = chunksOf(be, p);
  const k1 = k(be, "stats", ["write", "read", "uniform"], STATS_PARTIAL);
  for (const c of chunks) {
    const xw = windowOf(be, x, c.e0, c.e1);
    const u = uniforms(p, { b0: c.b0, nBlk: c.b1 - c.b0, baseA: xw.base }, floats);
    dispatch(be, k1, [partB, xw.bound], u, groupsFor(be, (c.b1 - c.b0) * p.c), [part, x]);
  }
  const k2 = k(be, "combine", ["write", "write", "read", "uniform"], STATS_COMBINE);
  dispatch(
    be,
    k2,
    [wholeOf(be, mean).bound, wholeOf(be, variance).bound, partB],
    uniforms(
      p,
      {},
      floats,
    ),
    grid(be.device, p.groups),
    [mean, variance, part],
  );
  const k3 = k(be, "apply", ["write", "read", "read", "read", "read", "read", "uniform"], APPLY);
  for (const c of chunks) {
    const xw = windowOf(be, x, c.e0, c.e1), yw = windowOf(be, y, c.e0, c.e1);
    const u = uniforms(p, { e0: c.e0, e1: c.e1, baseA: xw.base, baseB: yw.base }, floats);
    dispatch(
      be,
      k3,
      [
        yw.bound,
        xw.bound,
        wholeOf(be, mean).bound,
        wholeOf(be, variance).bound,
        wholeOf(be, gamma).bound,
        wholeOf(be, beta).bound,
      ],
      u,
      groupsFor(be, c.e1 - c.e0),
      [y, x, mean, variance, gamma, beta],
    );
  }
  disposeScratch(be, part);
  return [y, mean, variance];
}

/** Kernel function of `SemisegNormActGrad` on webgpu: outputs dx, dgamma, dbeta. */
export function normActGradGpu(args: GpuKernelArgs): tf.TensorInfo[] {
  const be = args.backend;
  const { dy, x, y, gamma, mean, variance } = args.inputs as Record<string, tf.TensorInfo>;
  const at = attrsOf(args.attrs);
  const p = planOf(x!.shape, at.perSample);
  const dx = newOutput(be, [...x!.shape]);
  const dgamma = newOutput(be, [p.c]), dbeta = newOutput(be, [p.c]);
  const part = scratch(be, p.nb * p.c * 2);
  const coef = scratch(be, p.groups * 3), gp = scratch(be, p.groups * 2);
  const partB = wholeOf(be, part).bound;
  const floats = [at.eps, slopeOf(at)];
  const chunks = chunksOf(be, p);
  const meanB = wholeOf(be, mean!).bound;
  const k1 = k(
    be,
    "grad-partial",
    ["write", "read", "read", "read", "read", "uniform"],
    GRAD_PARTIAL,
  );
  for (const c of chunks) {
    const dyw = windowOf(be, dy!, c.e0, c.e1);
    const xw = windowOf(be, x!, c.e0, c.e1), yw = windowOf(be, y!, c.e0, c.e1);
    // The three windows cover the same elements of same-shaped tensors: one base for all.
    const u = uniforms(p, { b0: c.b0, nBlk: c.b1 - c.b0, baseA: xw.base }, floats);
    dispatch(
      be,
      k1,
      [partB, dyw.bound, xw.bound, yw.bound, meanB],
      u,
      groupsFor(
        be,
        (c.b1 - c.b0) * p.c,
      ),
      [part, dy!, x!, y!, mean!],
    );
  }
  const k2 = k(
    be,
    "grad-combine",
    ["write", "write", "read", "read", "read", "uniform"],
    GRAD_COMBINE,
  );
  dispatch(
    be,
    k2,
    [
      wholeOf(be, coef).bound,
      wholeOf(be, gp).bound,
      partB,
      wholeOf(be, variance!).bound,
      wholeOf(be, gamma!).bound,
    ],
    uniforms(p, {}, floats),
    grid(be.device, p.groups),
    [coef, gp, part, variance!, gamma!],
  );
  const k3 = k(be, "param-grad", ["write", "write", "read", "uniform"], PARAM_GRAD);
  dispatch(
    be,
    k3,
    [wholeOf(be, dgamma).bound, wholeOf(be, dbeta).bound, wholeOf(be, gp).bound],
    uniforms(
      p,
      {},
      floats,
    ),
    groupsFor(be, p.c),
    [dgamma, dbeta, gp],
  );
  const k4 = k(be, "dx", ["write", "read", "read", "read", "read", "read", "uniform"], DX_APPLY);
  for (const c of chunks) {
    const dyw = windowOf(be, dy!, c.e0, c.e1);
    const xw = windowOf(be, x!, c.e0, c.e1), yw = windowOf(be, y!, c.e0, c.e1);
    const dxw = windowOf(be, dx, c.e0, c.e1);
    const u = uniforms(p, { e0: c.e0, e1: c.e1, baseA: xw.base, baseB: dxw.base }, floats);
    dispatch(
      be,
      k4,
      [dxw.bound, dyw.bound, xw.bound, yw.bound, meanB, wholeOf(be, coef).bound],
      u,
      groupsFor(
        be,
        c.e1 - c.e0,
      ),
      [dx, dy!, x!, y!, mean!, coef],
    );
  }
  for (const t of [part, coef, gp]) disposeScratch(be, t);
  return [dx, dgamma, dbeta];
}

/** The fused kernels by name, for `install.ts`. */
export function normKernels(): Record<string, (args: GpuKernelArgs) => tf.TensorInfo[]> {
  return { [NORM_ACT]: normActGpu, [NORM_ACT_GRAD]: normActGradGpu };
}
