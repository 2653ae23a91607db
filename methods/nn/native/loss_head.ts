/**
 * Fused loss-head kernels for the tfjs `cpu` backend: softmax cross-entropy with mean reduction
 * (`F.cross_entropy(logits, labels)`, classes on the last axis) and softmax over the last axis
 * with a one-pass gradient. tfjs builds the first from logSoftmax (max, sub, exp, sum, log, sub),
 * oneHot, mul, sum and mean, and differentiates it through ~10 more full-size kernels; on the
 * 64x64x48 batch-2 V-Net step those took ~130 ms of ~940 (perf profile), against ~2 ms in
 * PyTorch's `log_softmax` + `nll_loss`.
 *
 * Exposed as the tfjs kernels {@link SOFTMAX_CE} / {@link SOFTMAX_CE_GRAD} and {@link SOFTMAX}
 * / {@link SOFTMAX_GRAD} with registered gradients, registered with the native kernel layer
 * (`install.ts`), so `--backend cpu-js` (and webgpu) keep tfjs's composite graph as the
 * reference; `losses.ts` asks {@link hasFusedLossHead} which path is live.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { inputF32, type KernelArgs } from "./kernel.ts";
import { softmaxRows } from "./layout.ts";
import { output } from "./pool.ts";

/** tfjs kernel name of the fused cross-entropy forward (outputs loss, per-row log-sum-exp). */
export const SOFTMAX_CE = "SemisegSoftmaxCE";
/** tfjs kernel name of its gradient with respect to the logits. */
export const SOFTMAX_CE_GRAD = "SemisegSoftmaxCEGrad";
/** tfjs kernel name of softmax over the last axis (its gradient: {@link SOFTMAX_GRAD}). */
export const SOFTMAX = "SemisegSoftmax";
/** tfjs kernel name of the softmax gradient `p * (dy - sum(dy p))`. */
export const SOFTMAX_GRAD = "SemisegSoftmaxGrad";

/** Any typed array holding class indices (int32, float32 or bool labels). */
type Labels = ArrayLike<number>;

/**
 * Mean softmax cross-entropy of `logits` viewed as [rows, c] against class indices `labels`
 * [rows] (truncated to integers as tfjs's cast to int32): per row `lse = m + log sum exp(x - m)`
 * (m the row maximum) and the term `lse - x[label]`, summed in float64 in row order. A label
 * outside [0, c) contributes 0 but counts in the mean, as tfjs's oneHot (an all-zero row) does
 * in the composite graph. Writes the per-row `lse` (for the backward) and returns the mean.
 */
export function softmaxCrossEntropy(
  logits: Float32Array,
  labels: Labels,
  c: number,
  lse: Float32Array,
): number {
  const rows = lse.length;
  let acc = 0;
  for (let r = 0, o = 0; r < rows; r++, o += c) {
    let m = -Infinity;
    for (let k = 0; k < c; k++) if (logits[o + k]! > m) m = logits[o + k]!;
    let s = 0;
    for (let k = 0; k < c; k++) s += Math.exp(logits[o + k]! - m);
    const l = m + Math.log(s);
    lse[r] = l;
    const lab = Math.trunc(labels[r]!);
    if (lab >= 0 && lab < c) acc += l - logits[o + lab]!;
  }
  return rows > 0 ? acc / rows : NaN;
}

/**
 * Gradient of {@link softmaxCrossEntropy} times the upstream scalar `dy`:
 * `dx[r, k] = dy / rows * (softmax(x)[r, k] - [k == label])` for a valid label, 0 otherwise.
 */
export function softmaxCrossEntropyGrad(
  dy: number,
  logits: Float32Array,
  labels: Labels,
  lse: Float32Array,
  c: number,
  dx: Float32Array,
): void {
  const rows = lse.length;
  const s = dy / rows;
  for (let r = 0, o = 0; r < rows; r++, o += c) {
    const lab = Math.trunc(labels[r]!);
    if (!(lab >= 0 && lab < c)) {
      for (let k = 0; k < c; k++) dx[o + k] = 0;
      continue;
    }
    const l = lse[r]!;
    for (let k = 0; k < c; k++) dx[o + k] = s * Math.exp(logits[o + k]! - l);
    dx[o + lab] = dx[o + lab]! - s;
  }
}

/** Softmax gradient over rows of `c`: `dx = p * (dy - sum_k dy p)` (float64 row sums). */
export function softmaxGrad(dy: Float32Array, p: Float32Array, c: number, dx: Float32Array): void {
  const rows = p.length / c;
  for (let r = 0, o = 0; r < rows; r++, o += c) {
    let s = 0;
    for (let k = 0; k < c; k++) s += dy[o + k]! * p[o + k]!;
    for (let k = 0; k < c; k++) dx[o + k] = p[o + k]! * (dy[o + k]! - s);
  }
}

function labelValues(args: KernelArgs, kernel: string): Labels {
  const t = args.inputs["labels"];
  const v = t ? args.backend.data.get(t.dataId).values : undefined;
  if (
    !(v instanceof Float32Array || v instanceof Int32Array || v instanceof Uint8Array)
  ) throw new Error(`${kernel}: input 'labels' is not a numeric tensor`);
  return v;
}

function checkRows(logits: tf.TensorInfo, labels: tf.TensorInfo, kernel: string): number {
  const c = logits.shape[logits.shape.length - 1] ?? 0;
  const rows = tf.util.sizeFromShape(labels.shape);
  if (c < 1 || rows * c !== tf.util.sizeFromShape(logits.shape)) {
    throw new Error(
      `${kernel}: labels [${labels.shape}] do not match logits [${logits.shape}] (expected the logits' shape without its class axis)`,
    );
  }
  return c;
}

/** Kernel function of {@link SOFTMAX_CE}: inputs logits, labels; outputs loss [], lse [rows]. */
export function softmaxCEKernel(args: KernelArgs): tf.TensorInfo[] {
  const logits = args.inputs["logits"]!, labels = args.inputs["labels"]!;
  const c = checkRows(logits, labels, SOFTMAX_CE);
  const lse = output(args.backend, tf.util.sizeFromShape(labels.shape));
  const loss = softmaxCrossEntropy(
    inputF32(args, "logits", SOFTMAX_CE),
    labelValues(args, SOFTMAX_CE),
    c,
    lse,
  );
  return [
    args.backend.makeTensorInfo([], "float32", Float32Array.of(loss)),
    args.backend.makeTensorInfo([lse.length], "float32", lse),
  ];
}

/** Kernel function of {@link SOFTMAX_CE_GRAD}: inputs dy [], logits, labels, lse; output dlogits. */
export function softmaxCEGradKernel(args: KernelArgs): tf.TensorInfo {
  const logits = args.inputs["logits"]!, labels = args.inputs["labels"]!;
  const c = checkRows(logits, labels, SOFTMAX_CE_GRAD);
  const dx = output(args.backend, tf.util.sizeFromShape(logits.shape));
  softmaxCrossEntropyGrad(
    inputF32(args, "dy", SOFTMAX_CE_GRAD)[0]!,
    inputF32(args, "logits", SOFTMAX_CE_GRAD),
    labelValues(args, SOFTMAX_CE_GRAD),
    inputF32(args, "lse", SOFTMAX_CE_GRAD),
    c,
    dx,
  );
  return args.backend.makeTensorInfo([...logits.shape], "float32", dx);
}

/** Kernel function of {@link SOFTMAX}: input logits [..., c]; output probabilities. */
export function softmaxKernel(args: KernelArgs): tf.TensorInfo {
  const x = args.inputs["logits"]!;
  const out = output(args.backend, tf.util.sizeFromShape(x.shape));
  softmaxRows(inputF32(args, "logits", SOFTMAX), x.shape[x.shape.length - 1]!, out);
  return args.backend.makeTensorInfo([...x.shape], "float32", out);
}

/** Kernel function of {@link SOFTMAX_GRAD}: inputs dy, p; output dlogits. */
export function softmaxGradKernel(args: KernelArgs): tf.TensorInfo {
  const p = args.inputs["p"]!;
  const dx = output(args.backend, tf.util.sizeFromShape(p.shape));
  softmaxGrad(
    inputF32(args, "dy", SOFTMAX_GRAD),
    inputF32(args, "p", SOFTMAX_GRAD),
    p.shape[p.shape.length - 1]!,
    dx,
  );
  return args.backend.makeTensorInfo([...p.shape], "float32", dx);
}

if (tf.getGradient(SOFTMAX_CE) === undefined) {
  tf.registerGradient({
    kernelName: SOFTMAX_CE,
    inputsToSave: ["logits", "labels"],
    outputsToSave: [false, true],
    gradFunc: (dys: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const dy = Array.isArray(dys) ? dys[0]! : dys;
      const [logits, labels, lse] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
      return {
        logits: () =>
          tf.engine().runKernel(SOFTMAX_CE_GRAD, { dy, logits, labels, lse }, {}) as tf.Tensor,
      };
    },
  });
}

if (tf.getGradient(SOFTMAX) === undefined) {
  tf.registerGradient({
    kernelName: SOFTMAX,
    outputsToSave: [true],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const g = Array.isArray(dy) ? dy[0]! : dy;
      const [p] = saved as [tf.Tensor];
      return { logits: () => tf.engine().runKernel(SOFTMAX_GRAD, { dy: g, p }, {}) as tf.Tensor };
    },
  });
}

/** True when the fused loss-head kernels serve the current backend (cpu with the native layer). */
export function hasFusedLossHead(): boolean {
  return tf.getKernel(SOFTMAX_CE, tf.getBackend()) !== undefined;
}

/**
 * Mean softmax cross-entropy of `logits` [..., C] against `labels` [...] (class indices) in one
 * kernel. Only when {@link hasFusedLossHead}.
 */
export function fusedSoftmaxCrossEntropy(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  const [loss, lse] = tf.engine().runKernel(SOFTMAX_CE, { logits, labels }, {}) as tf.Tensor[];
  lse!.dispose();
  return loss as tf.Scalar;
}

/** Softmax over the last axis with a one-kernel gradient. Only when {@link hasFusedLossHead}. */
export function fusedSoftmax(logits: tf.Tensor): tf.Tensor {
  return tf.engine().runKernel(SOFTMAX, { logits }, {}) as tf.Tensor;
}
