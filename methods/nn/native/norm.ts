/**
 * Fused normalisation + activation for the tfjs `cpu` backend: batch norm (statistics per
 * channel over N,D,H,W, as `nn.BatchNorm3d` in training) or instance norm (per sample and
 * channel over D,H,W, as `nn.InstanceNorm3d`), then ReLU / LeakyReLU / nothing, in two passes
 * over the data forward and two backward. The composite tfjs graph of the same computation
 * (moments, sub, mul, add, relu and their gradients) costs ~25 element-wise passes, each
 * allocating a full-size tensor; on the V-Net step that was ~60 % of the time (perf profile).
 *
 * Exposed as the tfjs kernel {@link NORM_ACT} (outputs y, mean, biased variance) with a
 * registered gradient that calls {@link NORM_ACT_GRAD}. The kernels are registered with the
 * native kernel layer (`install.ts`), so `--backend cpu-js` keeps the pure tfjs composite
 * graph as the reference; {@link hasFusedNormAct} tells model code which path is live.
 * The statistics outputs are not differentiated (as PyTorch's running-stat buffers).
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { inputF32, type KernelArgs } from "./kernel.ts";
import type { NormPasses } from "./norm_passes.ts";
import { output } from "./pool.ts";

/** tfjs kernel name of the fused forward. */
export const NORM_ACT = "SemisegNormAct";
/**
 * tfjs kernel name of the fused forward that first adds the preceding convolution's bias
 * (inputs x, gamma, beta, bias; cpu only).
 */
export const NORM_ACT_BIAS = "SemisegBiasNormAct";
/** tfjs kernel name of the fused backward. */
export const NORM_ACT_GRAD = "SemisegNormActGrad";

/** Activation after the normalisation: none, ReLU, or LeakyReLU with `slope`. */
export type NormActivation = "none" | "relu" | "leaky";

/** Layout of an NDHWC tensor as [n, s, c] (s = D*H*W) and which statistics are used. */
export interface NormGeometry {
  n: number;
  s: number;
  c: number;
  /** Instance norm (statistics per sample and channel) instead of batch norm (per channel). */
  perSample: boolean;
}

/** Attributes of the fused kernels. */
export interface NormActAttrs {
  perSample: boolean;
  eps: number;
  act: NormActivation;
  /** LeakyReLU negative slope (used when act is "leaky"). */
  slope: number;
}

/** Number of statistics groups: c (batch norm) or n*c (instance norm). */
export function groupCount(g: NormGeometry): number {
  return g.perSample ? g.n * g.c : g.c;
}

/** Voxels per block of the statistics loops (block x channels floats stay in L1). */
const BLOCK = 512;

/**
 * Per-group `sum(x')` and `sum(x'^2)` of `x' = fround(x + bias)` in float64, into `sum`, `sq`.
 * Blocked: for each block of {@link BLOCK} voxels, each channel is summed in a local
 * accumulator (the channels-last data stays in L1 across the channels), then added to its
 * group's total: a fixed order, whatever the thread count. 2-4x faster than one pass that
 * updates C accumulator arrays per voxel.
 */
function normSums(
  x: Float32Array,
  bias: Float32Array,
  g: NormGeometry,
  sum: Float64Array,
  sq: Float64Array,
): void {
  const { n, s, c } = g;
  for (let i = 0; i < n; i++) {
    const off = g.perSample ? i * c : 0;
    for (let v0 = 0; v0 < s; v0 += BLOCK) {
      const start = (i * s + v0) * c, end = (i * s + Math.min(s, v0 + BLOCK)) * c;
      for (let k = 0; k < c; k++) {
        const bk = bias[k]!;
        let s1 = 0, s2 = 0;
        for (let p = start + k; p < end; p += c) {
          const a = Math.fround(x[p]! + bk);
          s1 += a;
          s2 += a * a;
        }
        sum[off + k]! += s1;
        sq[off + k]! += s2;
      }
    }
  }
}

/**
 * Forward: per-group mean and biased variance of `x` (float64 accumulation), then
 * `y = act(gamma * (x - mean) / sqrt(var + eps) + beta)`. Writes `y`, `mean`, `variance`.
 * With `bias` (the preceding convolution's, per channel) `x` is first `fround(x + bias)`, as a
 * separate add would give, without its full-size pass and tensor. With `passes` the
 * element-wise pass runs on oneDNN (threaded), centred as `x - (mean - bias)`; else in JS.
 */
export function normActForward(
  x: Float32Array,
  gamma: Float32Array,
  beta: Float32Array,
  g: NormGeometry,
  attrs: NormActAttrs,
  y: Float32Array,
  mean: Float32Array,
  variance: Float32Array,
  bias: Float32Array | null = null,
  passes: NormPasses | null = null,
): void {
  const { n, s, c } = g;
  const groups = groupCount(g);
  const b = bias ?? new Float32Array(c);
  const sum = new Float64Array(groups), sq = new Float64Array(groups);
  normSums(x, b, g, sum, sq);
  const count = g.perSample ? s : n * s;
  // y = (x - mean) * scale + beta, centring first: folding the mean into the shift loses
  // every digit when the variance is tiny next to the mean (e.g. a 1-voxel instance norm).
  const scale = new Float32Array(groups), shift = new Float32Array(groups);
  const center = new Float32Array(groups);
  for (let j = 0; j < groups; j++) {
    const m = sum[j]! / count;
    const vr = Math.max(sq[j]! / count - m * m, 0);
    mean[j] = m;
    variance[j] = vr;
    const k = j % c;
    scale[j] = gamma[k]! / Math.sqrt(vr + attrs.eps);
    shift[j] = beta[k]!;
    center[j] = mean[j]! - b[k]!;
  }
  const lo = slopeOf(attrs), hi = 1 - lo;
  if (passes?.forward(x, y, g, center, scale, shift, attrs.act === "none" ? null : lo)) return;
  // Branch-free activation, t * (lo + hi [t > 0]): on data with random signs a branch or
  // Math.max costs 3x the whole pass (measured: 10 vs 3.3 ns per element).
  for (let i = 0; i < n; i++) {
    const off = g.perSample ? i * c : 0;
    let p = i * s * c;
    for (let v = 0; v < s; v++) {
      for (let k = 0; k < c; k++, p++) {
        const t = (Math.fround(x[p]! + b[k]!) - mean[off + k]!) * scale[off + k]! +
          shift[off + k]!;
        y[p] = t * (lo + hi * +(t > 0));
      }
    }
  }
}

/**
 * Backward of {@link normActForward} through the batch statistics: with `u = dy * act'(y)`
 * and `xhat = (x - mean) * inv`, `dbeta = sum u`, `dgamma = sum u xhat`,
 * `dx = gamma * inv * (u - mean_grp(u) - xhat * mean_grp(u xhat))` (sums per group; dgamma and
 * dbeta summed over samples for instance norm). Writes `dx`, `dgamma`, `dbeta`, and with
 * `bias` (see {@link normActForward}) `dbias`, the per-channel sum of `dx`, from the same group
 * sums in closed form: `sum dx = A su + B sum(x - mean) + count D` (zero up to rounding, as a
 * bias before a normalisation has no effect on the output). With `passes` the second
 * element-wise pass runs on oneDNN.
 */
export function normActBackward(
  dy: Float32Array,
  x: Float32Array,
  y: Float32Array,
  gamma: Float32Array,
  mean: Float32Array,
  variance: Float32Array,
  g: NormGeometry,
  attrs: NormActAttrs,
  dx: Float32Array,
  dgamma: Float32Array,
  dbeta: Float32Array,
  bias: Float32Array | null = null,
  dbias: Float32Array | null = null,
  passes: NormPasses | null = null,
): void {
  const { n, s, c } = g;
  const groups = groupCount(g);
  const bv = bias ?? new Float32Array(c);
  const lo = slopeOf(attrs), hi = 1 - lo;
  const inv = new Float64Array(groups), a = new Float32Array(groups);
  for (let j = 0; j < groups; j++) {
    inv[j] = 1 / Math.sqrt(variance[j]! + attrs.eps);
    a[j] = gamma[j % c]! * inv[j]!;
  }
  // Pass 1 (blocked as normSums): the group sums, and A u into dx for pass 2.
  const su = new Float64Array(groups), sux = new Float64Array(groups);
  const sx = new Float64Array(groups);
  for (let i = 0; i < n; i++) {
    const off = g.perSample ? i * c : 0;
    for (let v0 = 0; v0 < s; v0 += BLOCK) {
      const start = (i * s + v0) * c, end = (i * s + Math.min(s, v0 + BLOCK)) * c;
      for (let k = 0; k < c; k++) {
        const bk = bv[k]!, mk = mean[off + k]!, ak = a[off + k]!;
        let s1 = 0, s2 = 0, s3 = 0;
        for (let p = start + k; p < end; p += c) {
          const u = dy[p]! * (lo + hi * +(y[p]! > 0));
          const xc = Math.fround(x[p]! + bk) - mk;
          s1 += u;
          s2 += u * xc;
          s3 += xc;
          dx[p] = ak * u;
        }
        su[off + k]! += s1;
        sux[off + k]! += s2;
        sx[off + k]! += s3;
      }
    }
  }
  const count = g.perSample ? s : n * s;
  dgamma.fill(0);
  dbeta.fill(0);
  dbias?.fill(0);
  const b = new Float32Array(groups), d = new Float32Array(groups);
  const center = new Float32Array(groups);
  for (let j = 0; j < groups; j++) {
    const k = j % c;
    const iv = inv[j]!;
    dbeta[k]! += su[j]!;
    dgamma[k]! += sux[j]! * iv;
    // dx = A u + B (x - mean) + D with A = gamma inv, B = -gamma inv^3 sux / count,
    // D = -A su / count.
    b[j] = -gamma[k]! * iv * iv * iv * sux[j]! / count;
    d[j] = -a[j]! * su[j]! / count;
    center[j] = mean[j]! - bv[k]!;
    if (dbias) dbias[k]! += a[j]! * su[j]! + b[j]! * sx[j]! + count * d[j]!;
  }
  if (passes?.backward(x, dx, g, center, b, d)) return;
  // Pass 2: dx = A u + B (x - mean) + D.
  for (let i = 0; i < n; i++) {
    const off = g.perSample ? i * c : 0;
    let p = i * s * c;
    for (let v = 0; v < s; v++) {
      for (let k = 0; k < c; k++, p++) {
        dx[p] = dx[p]! + b[off + k]! * (Math.fround(x[p]! + bv[k]!) - mean[off + k]!) +
          d[off + k]!;
      }
    }
  }
}

/** Slope of the activation for negative inputs: 0 (ReLU), the leak, or 1 (none). */
function slopeOf(a: NormActAttrs): number {
  return a.act === "relu" ? 0 : a.act === "leaky" ? a.slope : 1;
}

function geometryOf(shape: readonly number[], perSample: boolean): NormGeometry {
  const c = shape[shape.length - 1]!;
  const n = shape[0]!;
  let s = 1;
  for (let i = 1; i < shape.length - 1; i++) s *= shape[i]!;
  return { n, s, c, perSample };
}

function attrsOf(a: tf.NamedAttrMap): NormActAttrs {
  return {
    perSample: a["perSample"] === true,
    eps: a["eps"] as number,
    act: a["act"] as NormActivation,
    slope: (a["slope"] as number | undefined) ?? 0,
  };
}

function values(args: KernelArgs, name: string): Float32Array {
  return inputF32(args, name, NORM_ACT);
}

/**
 * The kernel functions of {@link NORM_ACT} (inputs x, gamma, beta; outputs y, mean, variance),
 * {@link NORM_ACT_BIAS} (the same plus the input bias, added to x first) and
 * {@link NORM_ACT_GRAD} (inputs dy, x, y, gamma, mean, variance and the forward's bias if any;
 * outputs dx, dgamma, dbeta and dbias), with their element-wise passes on `passes` (oneDNN)
 * when given, else in JS.
 */
export function normActKernels(
  passes: NormPasses | null,
): Record<string, (args: KernelArgs) => tf.TensorInfo[]> {
  const forward = (args: KernelArgs): tf.TensorInfo[] => {
    const x = args.inputs["x"]!;
    const at = attrsOf(args.attrs);
    const g = geometryOf(x.shape, at.perSample);
    const groups = groupCount(g);
    const y = output(args.backend, g.n * g.s * g.c);
    const mean = new Float32Array(groups), variance = new Float32Array(groups);
    normActForward(
      values(args, "x"),
      values(args, "gamma"),
      values(args, "beta"),
      g,
      at,
      y,
      mean,
      variance,
      args.inputs["bias"] ? values(args, "bias") : null,
      passes,
    );
    const statShape = at.perSample ? [g.n, g.c] : [g.c];
    return [
      args.backend.makeTensorInfo([...x.shape], "float32", y),
      args.backend.makeTensorInfo(statShape, "float32", mean),
      args.backend.makeTensorInfo(statShape, "float32", variance),
    ];
  };
  const backward = (args: KernelArgs): tf.TensorInfo[] => {
    const x = args.inputs["x"]!;
    const at = attrsOf(args.attrs);
    const g = geometryOf(x.shape, at.perSample);
    const dx = output(args.backend, g.n * g.s * g.c);
    const dgamma = new Float32Array(g.c), dbeta = new Float32Array(g.c);
    const withBias = args.inputs["bias"] !== undefined;
    const dbias = withBias ? new Float32Array(g.c) : null;
    normActBackward(
      values(args, "dy"),
      values(args, "x"),
      values(args, "y"),
      values(args, "gamma"),
      values(args, "mean"),
      values(args, "variance"),
      g,
      at,
      dx,
      dgamma,
      dbeta,
      withBias ? values(args, "bias") : null,
      dbias,
      passes,
    );
    return [
      args.backend.makeTensorInfo([...x.shape], "float32", dx),
      args.backend.makeTensorInfo([g.c], "float32", dgamma),
      args.backend.makeTensorInfo([g.c], "float32", dbeta),
      ...(dbias ? [args.backend.makeTensorInfo([g.c], "float32", dbias)] : []),
    ];
  };
  return { [NORM_ACT]: forward, [NORM_ACT_BIAS]: forward, [NORM_ACT_GRAD]: backward };
}

/**
 * The gradient of {@link NORM_ACT} / {@link NORM_ACT_BIAS}: one backward kernel call for all the
 * gradients, made here in the engine's 'backward' scope (not inside the per-input closures,
 * which each run in their own tidy): a gradient nobody asks for is disposed with that scope, and
 * no value has to be read back to the CPU (there is no synchronous readback on webgpu).
 */
function normActGrad(
  dy: tf.Tensor,
  saved: { x: tf.Tensor; gamma: tf.Tensor; bias?: tf.Tensor; outs: tf.Tensor[] },
  attrs: tf.NamedAttrMap,
): Record<string, () => tf.Tensor> {
  const [y, mean, variance] = saved.outs as [tf.Tensor, tf.Tensor, tf.Tensor];
  const { x, gamma, bias } = saved;
  const inputs: tf.NamedTensorMap = { dy, x, y, gamma, mean, variance };
  if (bias) inputs["bias"] = bias;
  const [dx, dg, db, dbias] = tf.engine().runKernel(NORM_ACT_GRAD, inputs, attrs) as tf.Tensor[];
  const grads: Record<string, () => tf.Tensor> = {
    x: () => dx!,
    gamma: () => dg!,
    beta: () => db!,
  };
  if (bias) grads["bias"] = () => dbias!;
  return grads;
}

const first = (dys: tf.Tensor | tf.Tensor[]): tf.Tensor => Array.isArray(dys) ? dys[0]! : dys;

if (tf.getGradient(NORM_ACT) === undefined) {
  tf.registerGradient({
    kernelName: NORM_ACT,
    inputsToSave: ["x", "gamma"],
    outputsToSave: [true, true, true],
    gradFunc: (dys, saved, attrs) =>
      normActGrad(first(dys), { x: saved[0]!, gamma: saved[1]!, outs: saved.slice(2) }, attrs),
  });
}

if (tf.getGradient(NORM_ACT_BIAS) === undefined) {
  tf.registerGradient({
    kernelName: NORM_ACT_BIAS,
    inputsToSave: ["x", "gamma", "bias"],
    outputsToSave: [true, true, true],
    gradFunc: (dys, saved, attrs) =>
      normActGrad(
        first(dys),
        { x: saved[0]!, gamma: saved[1]!, bias: saved[2]!, outs: saved.slice(3) },
        attrs,
      ),
  });
}

/** True when the fused kernels serve the current backend (cpu with the native layer on). */
export function hasFusedNormAct(): boolean {
  return tf.getKernel(NORM_ACT, tf.getBackend()) !== undefined;
}

/**
 * Fused `act(norm(x) * gamma + beta)` on an NDHWC tensor; returns [y, mean, biased variance]
 * (statistics [C], or [N, C] for instance norm). Only when {@link hasFusedNormAct}; `bias`
 * (added to `x` first) only when {@link fusedNormTakesBias}.
 */
export function fusedNormAct(
  x: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  attrs: NormActAttrs,
  bias?: tf.Tensor,
): [tf.Tensor, tf.Tensor, tf.Tensor] {
  return tf.engine().runKernel(
    bias ? NORM_ACT_BIAS : NORM_ACT,
    bias ? { x, gamma, beta, bias } : { x, gamma, beta },
    attrs as unknown as tf.NamedAttrMap,
  ) as [tf.Tensor, tf.Tensor, tf.Tensor];
}

/**
 * True when the current backend has {@link NORM_ACT_BIAS} (cpu; on webgpu the bias is a
 * separate add).
 */
export function fusedNormTakesBias(): boolean {
  return tf.getKernel(NORM_ACT_BIAS, tf.getBackend()) !== undefined;
}

/** tfjs kernel name of the BatchNorm running-statistics update (one kernel for both buffers). */
export const RUNNING_STATS = "SemisegRunningStats";

/**
 * PyTorch's running-statistics update of `nn.BatchNorm3d` in training:
 * `mean' = (1 - m) mean + m batchMean`, `var' = (1 - m) var + m batchVar * count / (count - 1)`
 * (the unbiased batch variance; `count` 1 keeps the biased one), each element computed in
 * float64 and rounded once. Writes `meanOut`, `varOut`.
 */
export function runningStatsUpdate(
  mean: Float32Array,
  variance: Float32Array,
  batchMean: Float32Array,
  batchVar: Float32Array,
  momentum: number,
  count: number,
  meanOut: Float32Array,
  varOut: Float32Array,
): void {
  const k = count > 1 ? count / (count - 1) : 1;
  for (let i = 0; i < mean.length; i++) {
    meanOut[i] = (1 - momentum) * mean[i]! + momentum * batchMean[i]!;
    varOut[i] = (1 - momentum) * variance[i]! + momentum * batchVar[i]! * k;
  }
}

/**
 * Kernel function of {@link RUNNING_STATS}: inputs mean, variance (the running buffers),
 * batchMean, batchVar; attrs momentum, count; outputs the new mean and variance. It replaces
 * seven tiny tfjs kernels (and their engine overhead) per BatchNorm layer and step.
 */
export function runningStatsKernel(args: KernelArgs): tf.TensorInfo[] {
  const m = args.inputs["mean"]!;
  const meanOut = new Float32Array(tf.util.sizeFromShape(m.shape));
  const varOut = new Float32Array(meanOut.length);
  runningStatsUpdate(
    values(args, "mean"),
    values(args, "variance"),
    values(args, "batchMean"),
    values(args, "batchVar"),
    args.attrs["momentum"] as number,
    args.attrs["count"] as number,
    meanOut,
    varOut,
  );
  return [
    args.backend.makeTensorInfo([...m.shape], "float32", meanOut),
    args.backend.makeTensorInfo([...m.shape], "float32", varOut),
  ];
}

/** True when the current backend has {@link RUNNING_STATS} (cpu with the native layer). */
export function hasFusedRunningStats(): boolean {
  return tf.getKernel(RUNNING_STATS, tf.getBackend()) !== undefined;
}
