/**
 * Sliding-window inference over a 3-D (multi-channel) volume, tfjs-agnostic.
 *
 * Two window layouts (window positions pinned in tests/sliding_window_test.ts):
 * - `"ua-mt"`: UA-MT `code/test_util.py` `test_single_case` (also SSL4MIS, DTC, MC-Net,
 *   SegWithDistMap). A dimension strictly smaller than the patch is zero-padded by
 *   `patch - size`, `pad // 2` before and the rest after; per axis `n = ceil((S - P) / stride) + 1`
 *   windows start at `min(stride * i, S - P)` (the last one clamped to the end); the probability
 *   maps are summed and divided by the per-voxel window count; the padding is cropped off.
 * - `"massl"`: MASSL `module/eval_attention_BraTS_slidingwindow.py` `test_net_dice`: step
 *   `inter = int(P * (1 - overlap))` (overlap 0.5), `n = int((S - P) / inter + 1)`, leftover
 *   `free = S - (P + inter * (n - 1))`, windows start at `int(free / 2) + inter * i` (centred);
 *   summed probabilities divided by the count, voxels covered by no window keep 0
 *   (`imgMatrix == 0 → 1`). Deviation [INF]: a dimension smaller than the patch is zero-padded
 *   centrally as in UA-MT (MASSL's own formula gives no window there).
 *
 * Optional Gaussian importance weighting (nnU-Net v1 `_get_gaussian`, sigma = patch / 8):
 * each window's probabilities are multiplied by the weight map before summing and the sum is
 * divided by the summed weights instead of the count.
 *
 * Memory: the volume-sized accumulators (probability sum over K classes in float64, one
 * weight/count map) plus one batch of windows in and out; the image is never copied or padded
 * (windows are read with zeros outside the volume, and padded voxels are never accumulated:
 * they are cropped off anyway, and every voxel's window set is unchanged by that).
 * @module
 */

/** A (possibly async) batched predictor: NDHWC windows in, NDHWC probabilities out. */
export type PredictFn = (
  batch: Float32Array,
  batchShape: readonly [number, number, number, number, number],
) => Float32Array | Promise<Float32Array>;

/** The image the windows are cut from: C-order over (x, y, z, c), like `ImageVolume`. */
export interface VolumeInput {
  data: Float32Array;
  shape: readonly [number, number, number];
  channels: number;
}

/** How the label map is derived from the stitched probabilities. */
export type LabelRule =
  /** `argmax` over classes, ties to the lowest class (numpy `argmax`; UA-MT, SSL4MIS). */
  | { kind: "argmax" }
  /** `prob[channel] > threshold` (DTC `score_map[0] > 0.5`, MASSL `result > 0.5`). */
  | { kind: "threshold"; channel: number; threshold: number };

/** Options for {@link slidingWindowInference}. */
export interface SlidingWindowOptions {
  /** Window (patch) size [px, py, pz]. */
  patch: readonly [number, number, number];
  /** Number of probability channels K the predictor returns. */
  numClasses: number;
  /** Window layout (default "ua-mt"). */
  mode?: "ua-mt" | "massl";
  /** UA-MT strides [sx, sy, sz] (`stride_xy, stride_xy, stride_z`); required for "ua-mt". */
  stride?: readonly [number, number, number];
  /** MASSL overlap fraction per axis (default 0.5). */
  overlap?: number;
  /** "uniform" (reference code; default) or "gaussian" (nnU-Net importance weighting). */
  weighting?: "uniform" | "gaussian";
  /** Gaussian sigma as a fraction of the patch size (nnU-Net: 1/8). */
  sigmaScale?: number;
  /** Windows per predict call (default 1). */
  batchSize?: number;
  /** Label rule (default argmax). */
  label?: LabelRule;
  /** Called after each predict call with the windows done so far and the volume's total. */
  onProgress?: (windowsDone: number, windowsTotal: number) => void;
}

/** Result of {@link slidingWindowInference}. */
export interface SlidingWindowResult {
  /** Stitched probabilities, C-order over (x, y, z, K), padding removed. */
  probs: Float32Array;
  /** Label map over (x, y, z). */
  labels: Uint8Array;
  shape: [number, number, number];
  numClasses: number;
  /** The window layout that was used. */
  plan: WindowPlan;
}

/** Window layout of a volume: padding and per-axis window starts (in padded coordinates). */
export interface WindowPlan {
  /** [before, after] zero padding per axis. */
  pad: [[number, number], [number, number], [number, number]];
  /** Padded shape. */
  paddedShape: [number, number, number];
  /** Window starts per axis, in padded coordinates. */
  starts: [number[], number[], number[]];
  /** Total number of windows (product of the per-axis counts). */
  count: number;
}

/**
 * UA-MT window starts along one axis of (padded) size `size ≥ patch`: `min(stride * i,
 * size - patch)` for `i = 0 .. ceil((size - patch) / stride)` (test_util.py `sx = ceil((ww -
 * patch)/stride) + 1`, `xs = min(stride * x, ww - patch)`). Duplicates are kept, as in UA-MT.
 */
export function uaMtStarts(size: number, patch: number, stride: number): number[] {
  if (!(stride > 0)) throw new Error(`stride must be positive, got ${stride}`);
  if (size < patch) throw new Error(`size ${size} < patch ${patch}: pad first`);
  const n = Math.ceil((size - patch) / stride) + 1;
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(Math.min(stride * i, size - patch));
  return out;
}

/**
 * MASSL window starts along one axis (`size ≥ patch`): `inter = int(patch * (1 - overlap))`,
 * `n = int((size - patch) / inter + 1)`, `free = size - (patch + inter * (n - 1))`, starts
 * `int(free / 2) + inter * i` (eval_attention_BraTS_slidingwindow.py).
 */
export function masslStarts(size: number, patch: number, overlap = 0.5): number[] {
  if (size < patch) throw new Error(`size ${size} < patch ${patch}: pad first`);
  const inter = Math.trunc(patch * (1 - overlap));
  if (inter <= 0) throw new Error(`overlap ${overlap} gives a step of ${inter}`);
  const n = Math.trunc((size - patch) / inter + 1);
  const free = size - (patch + inter * (n - 1));
  const start = Math.trunc(free / 2);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(start + inter * i);
  return out;
}

/**
 * UA-MT central zero padding for one axis: `[pad // 2, pad - pad // 2]` with `pad = patch -
 * size` when `size < patch` (strictly), else `[0, 0]`.
 */
export function centralPad(size: number, patch: number): [number, number] {
  if (size >= patch) return [0, 0];
  const p = patch - size;
  return [Math.floor(p / 2), p - Math.floor(p / 2)];
}

/**
 * Window layout for a volume of `shape` (padding, starts per axis, count) under UA-MT
 * (`stride` required) or MASSL (`overlap`) semantics (e.g. LA 183x140x88, patch 112x112x80,
 * stride 18/4: x starts 0, 18, 36, 54, 71; 45 windows).
 */
export function planWindows(
  shape: readonly [number, number, number],
  patch: readonly [number, number, number],
  mode: "ua-mt" | "massl",
  stride?: readonly [number, number, number],
  overlap = 0.5,
): WindowPlan {
  const pad = [0, 1, 2].map((a) => centralPad(shape[a]!, patch[a]!)) as WindowPlan["pad"];
  const paddedShape = [0, 1, 2].map((a) => shape[a]! + pad[a]![0] + pad[a]![1]) as [
    number,
    number,
    number,
  ];
  let starts: WindowPlan["starts"];
  if (mode === "ua-mt") {
    if (!stride) throw new Error("ua-mt sliding window needs a stride");
    starts = [0, 1, 2].map((a) =>
      uaMtStarts(paddedShape[a]!, patch[a]!, stride[a]!)
    ) as WindowPlan["starts"];
  } else {
    starts = [0, 1, 2].map((a) =>
      masslStarts(paddedShape[a]!, patch[a]!, overlap)
    ) as WindowPlan["starts"];
  }
  return {
    pad,
    paddedShape,
    starts,
    count: starts[0].length * starts[1].length * starts[2].length,
  };
}

/**
 * nnU-Net v1 `_get_gaussian(patch, sigma_scale=1/8)` as a flat C-order Float32Array over the
 * patch: centre `patch // 2`, sigma `patch * sigmaScale` per axis, scipy `gaussian_filter` of a
 * delta (truncate 4.0, i.e. zero beyond radius `int(4 * sigma + 0.5)`), scaled to max 1, zeros
 * replaced by the smallest non-zero value. Separable: w = Π_a exp(-(i_a - c_a)² / (2 σ_a²)).
 */
export function gaussianImportanceMap(
  patch: readonly [number, number, number],
  sigmaScale = 1 / 8,
): Float32Array {
  const axes = [0, 1, 2].map((a) => {
    const p = patch[a]!;
    const c = Math.floor(p / 2);
    const sigma = p * sigmaScale;
    const radius = Math.floor(4 * sigma + 0.5);
    const w = new Float64Array(p);
    for (let i = 0; i < p; i++) {
      const d = i - c;
      w[i] = Math.abs(d) > radius ? 0 : Math.exp(-(d * d) / (2 * sigma * sigma));
    }
    return w;
  });
  const [wx, wy, wz] = axes as [Float64Array, Float64Array, Float64Array];
  const out = new Float32Array(patch[0] * patch[1] * patch[2]);
  let minNz = Infinity;
  let k = 0;
  for (let i = 0; i < patch[0]; i++) {
    for (let j = 0; j < patch[1]; j++) {
      for (let l = 0; l < patch[2]; l++, k++) {
        const v = Math.fround(wx[i]! * wy[j]! * wz[l]!);
        out[k] = v;
        if (v > 0 && v < minNz) minNz = v;
      }
    }
  }
  for (let i = 0; i < out.length; i++) if (out[i] === 0) out[i] = minNz;
  return out;
}

/**
 * Sliding-window inference: cuts windows (zeros outside the volume), calls `predict` on
 * batches of up to `batchSize` windows (NDHWC `[B, px, py, pz, C]` in, `[B, px, py, pz, K]`
 * probabilities out), accumulates (optionally Gaussian-weighted) probabilities, normalises by
 * the per-voxel count/weight (UA-MT `score_map / cnt`; uncovered voxels stay 0 as in MASSL) and
 * derives the label map (argmax by default). Windows run in UA-MT loop order (x, then y, then z
 * innermost).
 */
export async function slidingWindowInference(
  image: VolumeInput,
  predict: PredictFn,
  options: SlidingWindowOptions,
): Promise<SlidingWindowResult> {
  const [X, Y, Z] = image.shape;
  const C = image.channels;
  const K = options.numClasses;
  const patch = options.patch;
  const [px, py, pz] = patch;
  if (image.data.length !== X * Y * Z * C) {
    throw new Error(`image has ${image.data.length} values, shape needs ${X * Y * Z * C}`);
  }
  const mode = options.mode ?? "ua-mt";
  const plan = planWindows(image.shape, patch, mode, options.stride, options.overlap ?? 0.5);
  const batchSize = Math.max(1, Math.floor(options.batchSize ?? 1));
  const weights = options.weighting === "gaussian"
    ? gaussianImportanceMap(patch, options.sigmaScale ?? 1 / 8)
    : null;

  const nVox = X * Y * Z;
  const acc = new Float64Array(nVox * K);
  const wsum = new Float64Array(nVox);
  const patchVox = px * py * pz;
  const inBuf = new Float32Array(batchSize * patchVox * C);

  const windows: [number, number, number][] = [];
  for (const sx of plan.starts[0]) {
    for (const sy of plan.starts[1]) for (const sz of plan.starts[2]) windows.push([sx, sy, sz]);
  }
  const [padX, padY, padZ] = [plan.pad[0][0], plan.pad[1][0], plan.pad[2][0]];

  for (let w0 = 0; w0 < windows.length; w0 += batchSize) {
    const nb = Math.min(batchSize, windows.length - w0);
    const input = inBuf.subarray(0, nb * patchVox * C);
    input.fill(0);
    // cut the windows
    for (let b = 0; b < nb; b++) {
      const [sx, sy, sz] = windows[w0 + b]!;
      const ox0 = sx - padX, oy0 = sy - padY, oz0 = sz - padZ; // origin in volume coords
      const zLo = Math.max(0, -oz0), zHi = Math.min(pz, Z - oz0);
      if (zHi <= zLo) continue;
      for (let i = 0; i < px; i++) {
        const x = ox0 + i;
        if (x < 0 || x >= X) continue;
        for (let j = 0; j < py; j++) {
          const y = oy0 + j;
          if (y < 0 || y >= Y) continue;
          const src = ((x * Y + y) * Z + oz0 + zLo) * C;
          const dst = (((b * px + i) * py + j) * pz + zLo) * C;
          input.set(image.data.subarray(src, src + (zHi - zLo) * C), dst);
        }
      }
    }
    const out = await predict(input, [nb, px, py, pz, C]);
    if (out.length !== nb * patchVox * K) {
      throw new Error(
        `predict returned ${out.length} values, expected ${nb}x${px}x${py}x${pz}x${K}`,
      );
    }
    // accumulate
    for (let b = 0; b < nb; b++) {
      const [sx, sy, sz] = windows[w0 + b]!;
      const ox0 = sx - padX, oy0 = sy - padY, oz0 = sz - padZ;
      const zLo = Math.max(0, -oz0), zHi = Math.min(pz, Z - oz0);
      for (let i = 0; i < px; i++) {
        const x = ox0 + i;
        if (x < 0 || x >= X) continue;
        for (let j = 0; j < py; j++) {
          const y = oy0 + j;
          if (y < 0 || y >= Y) continue;
          const pBase = (i * py + j) * pz;
          for (let l = zLo; l < zHi; l++) {
            const v = (x * Y + y) * Z + oz0 + l;
            const p = pBase + l;
            const o = (b * patchVox + p) * K;
            const wt = weights ? weights[p]! : 1;
            wsum[v]! += wt;
            const a = v * K;
            if (weights) { for (let k = 0; k < K; k++) acc[a + k]! += wt * out[o + k]!; }
            else for (let k = 0; k < K; k++) acc[a + k]! += out[o + k]!;
          }
        }
      }
    }
    options.onProgress?.(w0 + nb, windows.length);
  }

  const probs = new Float32Array(nVox * K);
  const labels = new Uint8Array(nVox);
  const rule: LabelRule = options.label ?? { kind: "argmax" };
  if (rule.kind === "threshold" && (rule.channel < 0 || rule.channel >= K)) {
    throw new Error(`threshold channel ${rule.channel} out of range for K=${K}`);
  }
  for (let v = 0; v < nVox; v++) {
    const c = wsum[v]! === 0 ? 1 : wsum[v]!; // MASSL: imgMatrix == 0 → 1
    const a = v * K;
    let best = 0;
    let bestVal = -Infinity;
    for (let k = 0; k < K; k++) {
      const pv = Math.fround(acc[a + k]! / c); // float32 score map, as UA-MT's
      probs[a + k] = pv;
      if (pv > bestVal) {
        bestVal = pv;
        best = k;
      }
    }
    labels[v] = rule.kind === "argmax" ? best : (probs[a + rule.channel]! > rule.threshold ? 1 : 0);
  }
  return { probs, labels, shape: [X, Y, Z], numClasses: K, plan };
}
