/**
 * 3D convolution forward and both gradients as tiled implicit GEMM in WGSL, for tfjs's
 * `webgpu` backend (replacing `Conv3D`, `Conv3DBackpropInputV2`, `Conv3DBackpropFilterV2`,
 * whose tfjs 4.22 versions run one invocation per output with no data reuse; the filter
 * gradient runs one invocation per weight looping over the whole batch volume).
 *
 * Layouts are tfjs's: activations NDHWC, filters [kd, kh, kw, Ci, Co]. Each op is a GEMM
 * `C[M, N] = sum_k A[m, k] B[k, n]` whose A operand is gathered on the fly (no im2col copy):
 *
 * | op      | M (rows)            | N  | K                    | A        | B      |
 * |---------|---------------------|----|----------------------|----------|--------|
 * | forward | output voxels       | Co | kd kh kw Ci          | x patch  | w      |
 * | dX      | input voxels        | Ci | kd kh kw Co          | dy patch | w^T    |
 * | dW      | kd kh kw Ci         | Co | output voxels        | x patch  | dy     |
 *
 * A workgroup computes a TM x TN tile of C (TM x TN = 32 x 32, or 64 x 16 when N <= 16, the
 * V-Net's first layers), staging TK = 16 slices of A and B in workgroup memory; each of its
 * 64 invocations accumulates a 4 x 4 register block with `fma`, in a fixed k order (results
 * are deterministic). dW splits K over `gridZ` workgroups (its M x N is tiny next to K: 27 x 16
 * against 2x32^3 for the first layer) into partial tiles that a second kernel sums in order.
 * The transposed convolution of tfjs (`conv3dTranspose`) is `Conv3DBackpropInputV2` and runs
 * through the dX kernel. Rows of the output tile are decoded into (sample, z, y, x) once per
 * workgroup (workgroup memory), so the K loop does no integer division; with Ci (forward) or
 * Co (dX) a multiple of 16 a K tile is one filter tap and 16 consecutive channels, read by
 * consecutive invocations (coalesced). dX of a conv whose taps do not overlap (kernel ==
 * stride, no padding: the V-Net's down convs) runs one GEMM per tap instead of multiplying
 * 7 of 8 taps by zero.
 *
 * Large tensors: dispatches are split over (sample, depth plane) ranges whose input and output
 * windows each fit the binding limit (`gpu.ts`); dW accumulates the ranges in order.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import {
  bindingLimit,
  type Bound,
  dispatch,
  disposeScratch,
  type GpuImpl,
  type GpuKernelArgs,
  grid,
  kernel,
  newOutput,
  packUniforms,
  planChunks,
  type Range,
  scratch,
  sizeOf,
  storedAsF32,
  type UniformValue,
  type WebgpuBackendLike,
  wholeOf,
  windowOf,
} from "./gpu.ts";

/**
 * The GEMM forms of a convolution: forward, dX, dX of a non-overlapping conv done one filter
 * tap at a time (`dxt`: kernel == stride, no padding, as the V-Net's 2x2x2 stride-2 down
 * convs; the generic dX would multiply 7 of 8 taps by zero there), and dW.
 */
export type ConvOp = "fwd" | "dx" | "dxt" | "dw";

/** Geometry of one 3D convolution (stride, front padding; dilation 1). */
export interface ConvGeometry {
  n: number;
  d: number;
  h: number;
  w: number;
  ci: number;
  od: number;
  oh: number;
  ow: number;
  co: number;
  kd: number;
  kh: number;
  kw: number;
  sd: number;
  sh: number;
  sw: number;
  pd: number;
  ph: number;
  pw: number;
}

const TK = 16;

const UNIFORM_FIELDS = [
  "n",
  "d",
  "h",
  "w",
  "ci",
  "od",
  "oh",
  "ow",
  "co",
  "kd",
  "kh",
  "kw",
  "sd",
  "sh",
  "sw",
  "pd",
  "ph",
  "pw",
  "M",
  "N",
  "K",
  "kPer",
  "row0",
  "baseA",
  "baseB",
  "baseO",
  "part0",
  "tilesM",
  "tilesN",
  "tapZ",
  "tapY",
  "tapX",
] as const;

/** The x-patch gather of forward and dW: a row is an output voxel, its patch starts at
 * (s, oz sd - pd, oy sh - ph, ox sw - pw). */
const X_PATCH = `
fn rowOf(r: i32) -> vec4<i32> {
  let ox = r % u.ow; let r1 = r / u.ow; let oy = r1 % u.oh; let r2 = r1 / u.oh;
  return vec4<i32>(r2 / u.od, (r2 % u.od) * u.sd - u.pd, oy * u.sh - u.ph, ox * u.sw - u.pw);
}
fn gather(p: vec4<i32>, kz: i32, ky: i32, kx: i32, c: i32) -> f32 {
  let z = p.y + kz; let y = p.z + ky; let x = p.w + kx;
  if (p.x < 0 || z < 0 || z >= u.d || y < 0 || y >= u.h || x < 0 || x >= u.w) { return 0.0; }
  return A[(((p.x * u.d + z) * u.h + y) * u.w + x) * u.ci + c - u.baseA];
}
fn chans() -> i32 { return u.ci; }`;

/**
 * Per-op WGSL: `rowOf(r)` decodes a GEMM row into the (sample, z, y, x) its gather starts from
 * (stored once per workgroup in `rows`, so the K loop does no division); `loadA` / `loadB`
 * read one element; `store` writes one result.
 *
 * - fwd: row = output voxel, start = (s, oz sd - pd, oy sh - ph, ox sw - pw); k = (tap, ci).
 * - dx:  row = input voxel, start = (s, z + pd, y + ph, x + pw); the tap's output voxel is
 *   (start - tap) / stride when divisible; k = (tap, co).
 * - dxt: row = output voxel; k = co; the store scatters to input voxel o * stride + tap.
 * - dw:  row (along K) = output voxel as in fwd; m = (tap, ci).
 */
const OPS: Record<ConvOp, string> = {
  fwd: `${X_PATCH}
fn loadB(tap: i32, c: i32, n: i32) -> f32 { return B[(tap * u.ci + c) * u.co + n]; }
fn store(m: i32, n: i32, z: i32, v: f32) { O[(u.row0 + m) * u.co + n - u.baseO] = v; }`,
  dx: `
fn rowOf(r: i32) -> vec4<i32> {
  let x = r % u.w; let r1 = r / u.w; let y = r1 % u.h; let r2 = r1 / u.h;
  return vec4<i32>(r2 / u.d, (r2 % u.d) + u.pd, y + u.ph, x + u.pw);
}
fn gather(p: vec4<i32>, kz: i32, ky: i32, kx: i32, c: i32) -> f32 {
  let tz = p.y - kz; let ty = p.z - ky; let tx = p.w - kx;
  if (p.x < 0 || tz < 0 || ty < 0 || tx < 0) { return 0.0; }
  if (tz % u.sd != 0 || ty % u.sh != 0 || tx % u.sw != 0) { return 0.0; }
  let oz = tz / u.sd; let oy = ty / u.sh; let ox = tx / u.sw;
  if (oz >= u.od || oy >= u.oh || ox >= u.ow) { return 0.0; }
  return A[(((p.x * u.od + oz) * u.oh + oy) * u.ow + ox) * u.co + c - u.baseA];
}
fn chans() -> i32 { return u.co; }
fn loadB(tap: i32, c: i32, n: i32) -> f32 { return B[(tap * u.ci + n) * u.co + c]; }
fn store(m: i32, n: i32, z: i32, v: f32) { O[(u.row0 + m) * u.ci + n - u.baseO] = v; }`,
  dxt: `
fn rowOf(r: i32) -> vec4<i32> {
  let ox = r % u.ow; let r1 = r / u.ow; let oy = r1 % u.oh; let r2 = r1 / u.oh;
  return vec4<i32>(r2 / u.od, (r2 % u.od) * u.sd + u.tapZ, oy * u.sh + u.tapY, ox * u.sw + u.tapX);
}
fn gather(p: vec4<i32>, kz: i32, ky: i32, kx: i32, c: i32) -> f32 { return 0.0; }
fn chans() -> i32 { return u.co; }
fn loadB(tap: i32, c: i32, n: i32) -> f32 {
  let t = (u.tapZ * u.kh + u.tapY) * u.kw + u.tapX;
  return B[(t * u.ci + n) * u.co + c];
}
fn store(m: i32, n: i32, z: i32, v: f32) {
  let p = rows[m - m0g];
  O[(((p.x * u.d + p.y) * u.h + p.z) * u.w + p.w) * u.ci + n - u.baseO] = v;
}`,
  dw: `${X_PATCH}
fn loadB(tap: i32, c: i32, n: i32) -> f32 { return 0.0; }
fn store(m: i32, n: i32, z: i32, v: f32) { O[((u.part0 + z) * u.M + m) * u.N + n] = v; }`,
};

/** True when the channel-aligned loads apply: K tiles of one tap and TK channels. */
export function channelAligned(op: ConvOp, g: ConvGeometry): boolean {
  return ((op === "fwd" && g.ci % TK === 0) || (op === "dx" && g.co % TK === 0));
}

/**
 * The loads of one K tile into `As` [TK][TM] and `Bs` [TK][TN].
 * - aligned fwd/dx: the tile is one tap (decoded once) and TK consecutive channels; k is the
 *   fastest index of consecutive invocations, so they read consecutive channels (coalesced);
 * - generic fwd/dx: k = (tap, channel) decoded per element (first layer: Ci = 1; the 1x1x1
 *   heads: Co = 2);
 * - dxt: A is dy itself (row-major [M, Co]), B the tap's filter slice;
 * - dw: rows run along K: the tile's TK row starts are decoded into `krows` first; each
 *   invocation's m (tap, ci) is fixed and decoded once before the loop.
 */
function tileLoads(op: ConvOp, aligned: boolean): string {
  const bLoad = `
    for (var i = t; i < TK * TN; i = i + NT) {
      let kk = i % TK; let nn = i / TK;
      var v = 0.0;
      if (n0 + nn < u.N && k0 + kk < kEnd) { v = LOADB; }
      Bs[kk * TN + nn] = v;
    }`;
  if (op === "dw") {
    return `
    if (t < TK) {
      var p = vec4<i32>(-1, 0, 0, 0);
      if (k0 + t < kEnd) { p = rowOf(u.row0 + k0 + t); }
      krows[t] = p;
    }
    workgroupBarrier();
    for (var i = t; i < TK * TM; i = i + NT) {
      let kk = i / TM;
      var v = 0.0;
      if (mOk && k0 + kk < kEnd) { v = gather(krows[kk], mz, my, mx, mc); }
      As[i] = v;
    }
    for (var i = t; i < TK * TN; i = i + NT) {
      let nn = i % TN; let kk = i / TN;
      var v = 0.0;
      if (n0 + nn < u.N && k0 + kk < kEnd) { v = B[(u.row0 + k0 + kk) * u.co + n0 + nn - u.baseB]; }
      Bs[i] = v;
    }`;
  }
  if (op === "dxt") {
    return `
    for (var i = t; i < TK * TM; i = i + NT) {
      let kk = i % TK; let mm = i / TK;
      var v = 0.0;
      if (m0 + mm < u.M && k0 + kk < kEnd) { v = A[(u.row0 + m0 + mm) * u.co + k0 + kk - u.baseA]; }
      As[kk * TM + mm] = v;
    }${bLoad.replace("LOADB", "loadB(0, k0 + kk, n0 + nn)")}`;
  }
  if (aligned) {
    return `
    let tap = k0 / chans(); let c0 = k0 % chans();
    let kx = tap % u.kw; let kq = tap / u.kw; let ky = kq % u.kh; let kz = kq / u.kh;
    for (var i = t; i < TK * TM; i = i + NT) {
      let kk = i % TK; let mm = i / TK;
      As[kk * TM + mm] = gather(rows[mm], kz, ky, kx, c0 + kk);
    }${bLoad.replace("LOADB", "loadB(tap, c0 + kk, n0 + nn)")}`;
  }
  return `
    for (var i = t; i < TK * TM; i = i + NT) {
      let mm = i % TM; let k = k0 + i / TM;
      var v = 0.0;
      if (k < kEnd) {
        let c = k % chans(); let tap = k / chans();
        let kx = tap % u.kw; let kq = tap / u.kw;
        v = gather(rows[mm], kq / u.kh, kq % u.kh, kx, c);
      }
      As[i] = v;
    }
    for (var i = t; i < TK * TN; i = i + NT) {
      let nn = i % TN; let k = k0 + i / TN;
      var v = 0.0;
      if (n0 + nn < u.N && k < kEnd) { v = loadB(k / chans(), k % chans(), n0 + nn); }
      Bs[i] = v;
    }`;
}

/** The tiled GEMM shader of `op` with a TM x TN output tile (channel-aligned loads or not). */
export function gemmShader(op: ConvOp, tm: number, tn: number, aligned = false): string {
  const tx = tn / 4, ty = tm / 4;
  // Rows of the output tile (fwd, dx, dxt) are decoded once per workgroup into `rows`;
  // dw's rows run along K and are decoded per K tile into `krows`.
  const prologue = op === "dw"
    ? `
  let mA = m0 + t % TM;
  let mOk = mA < u.M;
  let mc = mA % u.ci; let mt = mA / u.ci;
  let mx = mt % u.kw; let mq = mt / u.kw; let my = mq % u.kh; let mz = mq / u.kh;`
    : `
  for (var i = t; i < TM; i = i + NT) {
    var p = vec4<i32>(-1, 0, 0, 0);
    if (m0 + i < u.M) { p = rowOf(u.row0 + m0 + i); }
    rows[i] = p;
  }
  workgroupBarrier();`;
  return `
struct U { ${UNIFORM_FIELDS.map((f) => `${f}: i32`).join(", ")} }
@group(0) @binding(0) var<storage, read_write> O: array<f32>;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<uniform> u: U;
const TM = ${tm}; const TN = ${tn}; const TK = ${TK}; const NT = ${tx * ty};
var<workgroup> As: array<f32, ${TK * tm}>;
var<workgroup> Bs: array<f32, ${TK * tn}>;
var<workgroup> rows: array<vec4<i32>, ${tm}>;
var<workgroup> krows: array<vec4<i32>, ${TK}>;
var<private> m0g: i32;
${OPS[op]}
@compute @workgroup_size(${tx}, ${ty}, 1)
fn main(@builtin(local_invocation_index) li: u32, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let tile = i32(wg.x + wg.y * nw.x);
  if (tile >= u.tilesM * u.tilesN) { return; }
  let m0 = (tile / u.tilesN) * TM;
  m0g = m0;
  let n0 = (tile % u.tilesN) * TN;
  let kStart = i32(wg.z) * u.kPer;
  let kEnd = min(u.K, kStart + u.kPer);
  let t = i32(li); let tx = i32(lid.x); let ty = i32(lid.y);
  ${prologue}
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = kStart; k0 < kEnd; k0 = k0 + TK) {${tileLoads(op, aligned)}
    workgroupBarrier();
    for (var kk = 0; kk < TK; kk = kk + 1) {
      var a: array<f32, 4>; var b: array<f32, 4>;
      for (var r = 0; r < 4; r = r + 1) {
        a[r] = As[kk * TM + ty * 4 + r];
        b[r] = Bs[kk * TN + tx * 4 + r];
      }
      for (var r = 0; r < 4; r = r + 1) {
        for (var c = 0; c < 4; c = c + 1) { acc[r][c] = fma(a[r], b[c], acc[r][c]); }
      }
    }
    workgroupBarrier();
  }
  for (var r = 0; r < 4; r = r + 1) {
    for (var c = 0; c < 4; c = c + 1) {
      let m = m0 + ty * 4 + r; let n = n0 + tx * 4 + c;
      if (m < u.M && n < u.N) { store(m, n, i32(wg.z), acc[r][c]); }
    }
  }
}`;
}

/** Sums `parts` partial M x N tiles in order, adding to the output when `acc` is 1. */
const REDUCE_SHADER = `
struct U { size: i32, parts: i32, acc: i32, pad: i32 }
@group(0) @binding(0) var<storage, read_write> O: array<f32>;
@group(0) @binding(1) var<storage, read> P: array<f32>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = i32((wg.x + wg.y * nw.x) * 64u + li);
  if (i >= u.size) { return; }
  var s = 0.0;
  if (u.acc == 1) { s = O[i]; }
  for (var p = 0; p < u.parts; p = p + 1) { s = s + P[p * u.size + i]; }
  O[i] = s;
}`;

/** Tile shape for a GEMM with `n` columns: 64 x 16 for narrow outputs, else 32 x 32. */
export function tileFor(n: number): [number, number] {
  return n <= 16 ? [64, 16] : [32, 32];
}

/** Clip the input planes a range of output planes reads: [first, last] or null if padding. */
function inputPlanes(g: ConvGeometry, oz: number): [number, number] {
  const lo = Math.max(0, oz * g.sd - g.pd);
  const hi = Math.min(g.d - 1, oz * g.sd - g.pd + g.kd - 1);
  return hi < lo ? [lo, lo] : [lo, hi];
}

/** The output planes whose patches read input plane z (for dX): [first, last]. */
function outputPlanes(g: ConvGeometry, z: number): [number, number] {
  const lo = Math.max(0, Math.ceil((z + g.pd - g.kd + 1) / g.sd));
  const hi = Math.min(g.od - 1, Math.floor((z + g.pd) / g.sd));
  return hi < lo ? [Math.min(lo, g.od - 1), Math.min(lo, g.od - 1)] : [lo, hi];
}

function uniformsOf(g: ConvGeometry, extra: Record<string, number>): ArrayBuffer {
  const all = { ...g, ...extra } as Record<string, number>;
  return packUniforms(UNIFORM_FIELDS.map((f): UniformValue => ({ i: all[f] ?? 0 })));
}

/** Record one GEMM of `op` over `rows` rows starting at `row0`, with the given bindings. */
function runGemm(
  be: WebgpuBackendLike,
  op: ConvOp,
  g: ConvGeometry,
  mnk: { M: number; N: number; K: number; splits: number },
  bind: { out: Bound; a: Bound; b: Bound },
  extra: Record<string, number>,
  owned: tf.TensorInfo[],
): void {
  const [tm, tn] = tileFor(mnk.N);
  const aligned = channelAligned(op, g);
  const k = kernel(
    be.device,
    `semiseg-conv-${op}-${tm}x${tn}${aligned ? "-aligned" : ""}`,
    ["write", "read", "read", "uniform"],
    () => gemmShader(op, tm, tn, aligned),
  );
  const tilesM = Math.ceil(mnk.M / tm), tilesN = Math.ceil(mnk.N / tn);
  const kPer = Math.ceil(mnk.K / mnk.splits / TK) * TK;
  const u = uniformsOf(g, { M: mnk.M, N: mnk.N, K: mnk.K, kPer, tilesM, tilesN, ...extra });
  dispatch(
    be,
    k,
    [bind.out, bind.a, bind.b],
    u,
    grid(be.device, tilesM * tilesN, mnk.splits),
    owned,
  );
}

/** Geometry of a tfjs conv3d call (NDHWC, dilation 1), or null when unsupported here. */
export function convGeometry(
  xShape: number[],
  filterShape: number[],
  strides: number | number[],
  pad: unknown,
  dilations: unknown,
): ConvGeometry | null {
  const dil = dilations === undefined
    ? [1, 1, 1]
    : typeof dilations === "number"
    ? [dilations, dilations, dilations]
    : dilations as number[];
  if (dil.some((v) => v !== 1)) return null;
  const info = tf.backend_util.computeConv3DInfo(
    xShape as [number, number, number, number, number],
    filterShape as [number, number, number, number, number],
    strides as [number, number, number],
    1,
    pad as "same" | "valid",
  );
  return {
    n: info.batchSize,
    d: info.inDepth,
    h: info.inHeight,
    w: info.inWidth,
    ci: info.inChannels,
    od: info.outDepth,
    oh: info.outHeight,
    ow: info.outWidth,
    co: info.outChannels,
    kd: info.filterDepth,
    kh: info.filterHeight,
    kw: info.filterWidth,
    sd: info.strideDepth,
    sh: info.strideHeight,
    sw: info.strideWidth,
    pd: info.padInfo.front,
    ph: info.padInfo.top,
    pw: info.padInfo.left,
  };
}

/** `y = conv3d(x, w)` on the GPU; output NDHWC [n, od, oh, ow, co]. */
export function conv3dForward(
  be: WebgpuBackendLike,
  x: tf.TensorInfo,
  w: tf.TensorInfo,
  g: ConvGeometry,
): tf.TensorInfo {
  const out = newOutput(be, [g.n, g.od, g.oh, g.ow, g.co]);
  const planeIn = g.h * g.w * g.ci, planeOut = g.oh * g.ow * g.co;
  const ranges = (p: number): Range[] => {
    const s = Math.floor(p / g.od), [lo, hi] = inputPlanes(g, p % g.od);
    return [[p * planeOut, (p + 1) * planeOut], [
      (s * g.d + lo) * planeIn,
      (s * g.d + hi + 1) * planeIn,
    ]];
  };
  const lim = bindingLimit(be.device), align = be.device.limits.minStorageBufferOffsetAlignment / 4;
  const wb = wholeOf(be, w);
  for (const [p0, p1] of planChunks(g.n * g.od, ranges, lim, align, "conv3d")) {
    const ro = ranges(p0), rl = ranges(p1 - 1);
    const ow = windowOf(be, out, ro[0]![0], rl[0]![1]);
    const xw = windowOf(be, x, ro[1]![0], rl[1]![1]);
    const rows = (p1 - p0) * g.oh * g.ow;
    runGemm(
      be,
      "fwd",
      g,
      { M: rows, N: g.co, K: g.kd * g.kh * g.kw * g.ci, splits: 1 },
      { out: ow.bound, a: xw.bound, b: wb.bound },
      { row0: p0 * g.oh * g.ow, baseA: xw.base, baseO: ow.base },
      [out, x, w],
    );
  }
  return out;
}

/** True when the conv's taps do not overlap and tile the input exactly (dX by tap). */
export function tapwise(g: ConvGeometry): boolean {
  return g.kd === g.sd && g.kh === g.sh && g.kw === g.sw && g.pd === 0 && g.ph === 0 &&
    g.pw === 0 && g.d === g.od * g.sd && g.h === g.oh * g.sh && g.w === g.ow * g.sw;
}

/** `dx` of conv3d (also tfjs's conv3dTranspose): dy [n, od, oh, ow, co] -> [n, d, h, w, ci]. */
export function conv3dBackpropInput(
  be: WebgpuBackendLike,
  dy: tf.TensorInfo,
  w: tf.TensorInfo,
  g: ConvGeometry,
): tf.TensorInfo {
  const out = newOutput(be, [g.n, g.d, g.h, g.w, g.ci]);
  const planeIn = g.h * g.w * g.ci, planeOut = g.oh * g.ow * g.co;
  const lim = bindingLimit(be.device), align = be.device.limits.minStorageBufferOffsetAlignment / 4;
  const wb = wholeOf(be, w);
  if (tapwise(g)) {
    // One GEMM per tap over the output grid: every input voxel gets exactly one tap.
    const ranges = (p: number): Range[] => {
      const s = Math.floor(p / g.od), oz = p % g.od;
      return [[p * planeOut, (p + 1) * planeOut], [
        (s * g.d + oz * g.sd) * planeIn,
        (s * g.d + oz * g.sd + g.sd) * planeIn,
      ]];
    };
    for (const [p0, p1] of planChunks(g.n * g.od, ranges, lim, align, "conv3d dx")) {
      const ro = ranges(p0), rl = ranges(p1 - 1);
      const dyw = windowOf(be, dy, ro[0]![0], rl[0]![1]);
      const ow = windowOf(be, out, ro[1]![0], rl[1]![1]);
      for (let tz = 0; tz < g.kd; tz++) {
        for (let ty = 0; ty < g.kh; ty++) {
          for (let tx = 0; tx < g.kw; tx++) {
            runGemm(
              be,
              "dxt",
              g,
              { M: (p1 - p0) * g.oh * g.ow, N: g.ci, K: g.co, splits: 1 },
              { out: ow.bound, a: dyw.bound, b: wb.bound },
              {
                row0: p0 * g.oh * g.ow,
                baseA: dyw.base,
                baseO: ow.base,
                tapZ: tz,
                tapY: ty,
                tapX: tx,
              },
              [out, dy, w],
            );
          }
        }
      }
    }
    return out;
  }
  const ranges = (p: number): Range[] => {
    const s = Math.floor(p / g.d), [lo, hi] = outputPlanes(g, p % g.d);
    return [[p * planeIn, (p + 1) * planeIn], [
      (s * g.od + lo) * planeOut,
      (s * g.od + hi + 1) * planeOut,
    ]];
  };
  for (const [p0, p1] of planChunks(g.n * g.d, ranges, lim, align, "conv3d dx")) {
    const ro = ranges(p0), rl = ranges(p1 - 1);
    const ow = windowOf(be, out, ro[0]![0], rl[0]![1]);
    const dw = windowOf(be, dy, ro[1]![0], rl[1]![1]);
    runGemm(
      be,
      "dx",
      g,
      { M: (p1 - p0) * g.h * g.w, N: g.ci, K: g.kd * g.kh * g.kw * g.co, splits: 1 },
      { out: ow.bound, a: dw.bound, b: wb.bound },
      { row0: p0 * g.h * g.w, baseA: dw.base, baseO: ow.base },
      [out, dy, w],
    );
  }
  return out;
}

/** Floats of dW partial tiles one range may hold (16 MiB). */
const PARTIAL_BUDGET = 4 * 2 ** 20;

/** K-splits of a dW range: enough workgroups for a GPU, partials within the budget. */
export function dwSplits(m: number, n: number, k: number): number {
  return Math.max(1, Math.min(256, Math.ceil(k / 1024), Math.floor(PARTIAL_BUDGET / (m * n))));
}

/** `dw` of conv3d: x [n, d, h, w, ci], dy [n, od, oh, ow, co] -> [kd, kh, kw, ci, co]. */
export function conv3dBackpropFilter(
  be: WebgpuBackendLike,
  x: tf.TensorInfo,
  dy: tf.TensorInfo,
  g: ConvGeometry,
): tf.TensorInfo {
  const M = g.kd * g.kh * g.kw * g.ci, N = g.co;
  const out = newOutput(be, [g.kd, g.kh, g.kw, g.ci, g.co]);
  const planeIn = g.h * g.w * g.ci, planeOut = g.oh * g.ow * g.co;
  const ranges = (p: number): Range[] => {
    const s = Math.floor(p / g.od), [lo, hi] = inputPlanes(g, p % g.od);
    return [[p * planeOut, (p + 1) * planeOut], [
      (s * g.d + lo) * planeIn,
      (s * g.d + hi + 1) * planeIn,
    ]];
  };
  const lim = bindingLimit(be.device), align = be.device.limits.minStorageBufferOffsetAlignment / 4;
  const chunks = planChunks(g.n * g.od, ranges, lim, align, "conv3d dw");
  const maxRows = Math.max(...chunks.map(([a, b]) => (b - a) * g.oh * g.ow));
  const splitsMax = Math.min(dwSplits(M, N, maxRows), Math.max(1, Math.floor(lim / 4 / (M * N))));
  const part = scratch(be, splitsMax * M * N);
  const partB = wholeOf(be, part).bound;
  const outB = wholeOf(be, out).bound;
  const red = kernel(
    be.device,
    "semiseg-conv-dw-reduce",
    ["write", "read", "uniform"],
    () => REDUCE_SHADER,
  );
  chunks.forEach(([p0, p1], ci) => {
    const ro = ranges(p0), rl = ranges(p1 - 1);
    const dyw = windowOf(be, dy, ro[0]![0], rl[0]![1]);
    const xw = windowOf(be, x, ro[1]![0], rl[1]![1]);
    const rows = (p1 - p0) * g.oh * g.ow;
    const splits = Math.min(splitsMax, dwSplits(M, N, rows));
    runGemm(
      be,
      "dw",
      g,
      { M, N, K: rows, splits },
      { out: partB, a: xw.bound, b: dyw.bound },
      { row0: p0 * g.oh * g.ow, baseA: xw.base, baseB: dyw.base, part0: 0 },
      [part, x, dy],
    );
    const u = packUniforms([{ i: M * N }, { i: splits }, { i: ci === 0 ? 0 : 1 }, { i: 0 }]);
    dispatch(be, red, [outB, partB], u, grid(be.device, Math.ceil((M * N) / 64)), [out, part]);
  });
  disposeScratch(be, part);
  return out;
}

function attrsOf(args: GpuKernelArgs): { strides: number[]; pad: unknown; dilations: unknown } {
  const a = args.attrs as Record<string, unknown>;
  if (a["dataFormat"] !== undefined && a["dataFormat"] !== "NDHWC") {
    return { strides: [0], pad: a["pad"], dilations: [2] }; // unsupported: fall back
  }
  return { strides: a["strides"] as number[], pad: a["pad"], dilations: a["dilations"] };
}

const isF32 = (be: WebgpuBackendLike, ...ts: (tf.TensorInfo | undefined)[]): boolean =>
  ts.every((t) => storedAsF32(be, t) && sizeOf(t!.shape) > 0);

/** The three conv kernels by tfjs kernel name (null result: use tfjs's kernel). */
export function conv3dKernels(): Record<string, GpuImpl> {
  return {
    Conv3D: (args) => {
      const { x, filter } = args.inputs;
      if (!isF32(args.backend, x, filter)) return null;
      const a = attrsOf(args);
      const g = convGeometry(x!.shape, filter!.shape, a.strides, a.pad, a.dilations);
      return g && conv3dForward(args.backend, x!, filter!, g);
    },
    Conv3DBackpropInputV2: (args) => {
      const { dy, filter } = args.inputs;
      if (!isF32(args.backend, dy, filter)) return null;
      const a = attrsOf(args);
      const inShape = (args.attrs as Record<string, unknown>)["inputShape"] as number[];
      const g = convGeometry(inShape, filter!.shape, a.strides, a.pad, a.dilations);
      return g && conv3dBackpropInput(args.backend, dy!, filter!, g);
    },
    Conv3DBackpropFilterV2: (args) => {
      const { x, dy } = args.inputs;
      if (!isF32(args.backend, x, dy)) return null;
      const a = attrsOf(args);
      const fShape = (args.attrs as Record<string, unknown>)["filterShape"] as number[];
      const g = convGeometry(x!.shape, fShape, a.strides, a.pad, a.dilations);
      return g && conv3dBackpropFilter(args.backend, x!, dy!, g);
    },
  };
}
