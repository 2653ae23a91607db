/**
 * The layers of the MASSL / MSSL network (methods/nn/massl_net.ts) as PyTorch defines them, in
 * NDHWC layout with raw tfjs ops, and the gradients they need that tfjs-core and `gradients.ts`
 * lack, written by hand:
 *
 * - `nn.InstanceNorm3d` without affine parameters, eps 1e-5 (per sample, per channel over
 *   D,H,W; biased variance), and LeakyReLU slope 0.01 after it (one fused native kernel when
 *   available).
 * - `nn.Conv3d` with PyTorch's symmetric zero padding (a stride-2 conv pads explicitly, so it
 *   needs the `PadV2` gradient).
 * - `nn.Upsample(scale_factor=2, mode='nearest')` by copies, its gradient 2x2x2 sum pooling.
 * - `tensor.detach()` as a gradient stop.
 *
 * The `PadV2` and `LeakyRelu` gradients are registered on import, guarded like those of
 * `gradients.ts` (an existing registration wins).
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import "./gradients.ts";
import { fusedNormAct, hasFusedNormAct } from "./native/norm.ts";

if (tf.getGradient("PadV2") === undefined) {
  tf.registerGradient({
    kernelName: "PadV2",
    inputsToSave: ["x"],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
      const x = saved[0]!;
      const pads = attrs.paddings as [number, number][];
      return { x: () => tf.slice(dy as tf.Tensor, pads.map((p) => p[0]), x.shape) };
    },
  });
}
if (tf.getGradient("LeakyRelu") === undefined) {
  tf.registerGradient({
    kernelName: "LeakyRelu",
    inputsToSave: ["x"],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
      const a = attrs.alpha as number;
      const pos = tf.cast(tf.greater(saved[0]!, 0), "float32");
      return { x: () => tf.mul(dy as tf.Tensor, tf.add(tf.mul(pos, 1 - a), a)) };
    },
  });
}

/** PyTorch `nn.LeakyReLU()` default slope. */
export const LRELU_SLOPE = 0.01;
/** PyTorch `nn.InstanceNorm3d` default eps. */
export const IN_EPS = 1e-5;

/**
 * `nn.InstanceNorm3d(c)` (affine=False, track_running_stats=False): for every sample and
 * channel, `(x - mean) / sqrt(var + eps)` with mean and biased variance over D,H,W.
 */
export function instanceNorm(x: tf.Tensor5D, eps = IN_EPS): tf.Tensor5D {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, [1, 2, 3], true);
    return tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))) as tf.Tensor5D;
  });
}

/**
 * `LeakyReLU(InstanceNorm3d(x))`, MASSL's block activation: one fused kernel (two passes each
 * way) on the native cpu path, the composite tfjs ops otherwise.
 */
export function instanceNormLeaky(x: tf.Tensor5D, slope = LRELU_SLOPE, eps = IN_EPS): tf.Tensor5D {
  if (!hasFusedNormAct()) return tf.leakyRelu(instanceNorm(x, eps), slope) as tf.Tensor5D;
  return tf.tidy(() => {
    const c = x.shape[4];
    const attrs = { perSample: true, eps, act: "leaky", slope } as const;
    return fusedNormAct(x, tf.ones([c]), tf.zeros([c]), attrs)[0] as tf.Tensor5D;
  });
}

/**
 * Nearest x2 upsampling of NDHWC `x` by copies only (any backend): each axis is doubled by
 * concatenating a [rows, inner] view with itself along the inner axis, W first (a voxel's
 * channel row repeated twice), then H, then D. Output voxel (z, y, x) holds input voxel
 * (z >> 1, y >> 1, x >> 1), exactly.
 */
function upsampleValues(x: tf.Tensor5D): tf.Tensor5D {
  const [n, d, h, w, c] = x.shape;
  return tf.tidy(() => {
    const twice = (t: tf.Tensor, rowCount: number) => {
      const t2 = tf.reshape(t, [rowCount, t.size / rowCount]);
      return tf.concat([t2, t2], 1);
    };
    const xw = twice(x, n * d * h * w); // [n d h w, 2c]  = [n, d, h, 2w, c]
    const xh = twice(xw, n * d * h); // [n d h, 2 (2w c)] = [n, d, 2h, 2w, c]
    const xd = twice(xh, n * d); // [n d, 2 (2h 2w c)]    = [n, 2d, 2h, 2w, c]
    return tf.reshape(xd, [n, 2 * d, 2 * h, 2 * w, c]) as tf.Tensor5D;
  });
}

/**
 * Adjoint of {@link upsampleValues}: each voxel sums its 8 children (2x2x2 sum pooling), in
 * the order (dz, dy, dx) = (0,0,0), (0,0,1), ..., (1,1,1), one float32 add at a time onto a
 * zero (the summation order of an accumulating loop over `dy` in C order, so cpu values are
 * bitwise those of that loop). The children are strided slices of `dy` viewed as the rank-6
 * [n d, 2, h, 2, w, 2c].
 */
function sumPoolValues(dy: tf.Tensor, [n, d, h, w, c]: readonly number[]): tf.Tensor5D {
  return tf.tidy(() => {
    const v = tf.reshape(dy, [n! * d!, 2, h!, 2, w!, 2 * c!]);
    let s: tf.Tensor | null = null;
    for (let dz = 0; dz < 2; dz++) {
      for (let dyy = 0; dyy < 2; dyy++) {
        for (let dx = 0; dx < 2; dx++) {
          const child = tf.slice(v, [0, dz, 0, dyy, 0, dx * c!], [n! * d!, 1, h!, 1, w!, c!]);
          // 0 + first child, as the loop's zero-initialised accumulator (-0 becomes +0).
          s = tf.add(s ?? tf.scalar(0), child);
        }
      }
    }
    return tf.reshape(s!, [n!, d!, h!, w!, c!]) as tf.Tensor5D;
  });
}

const upsample2x = tf.customGrad((...inputs: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const x = inputs[0] as tf.Tensor5D;
  return {
    value: upsampleValues(x),
    gradFunc: (dy: tf.Tensor) => sumPoolValues(dy, x.shape),
  };
});

/**
 * `nn.Upsample(scale_factor=2, mode='nearest')` on NDHWC, differentiable: copies forward
 * (three self-concatenations) and 2x2x2 sum pooling backward (eight slices, seven adds), all
 * tensor ops, so it runs on any backend (an 8-D broadcast multiply costs ~100x more on cpu).
 */
export function upsampleNearest2x(x: tf.Tensor5D): tf.Tensor5D {
  return upsample2x(x) as tf.Tensor5D;
}

const stop = tf.customGrad((...inputs: (tf.Tensor | tf.GradSaveFunc)[]) => ({
  value: tf.clone(inputs[0] as tf.Tensor),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
}));

/** `tensor.detach()`: the value of `x`, through which no gradient flows. */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  return stop(x) as T;
}

/**
 * `nn.Conv3d(ci, co, k, stride, padding=(k-1)/2, bias=True)` with PyTorch's symmetric zero
 * padding: `w` [k,k,k,ci,co], `b` [co].
 */
export function conv3dTorch(
  x: tf.Tensor5D,
  w: tf.Tensor,
  b: tf.Tensor,
  stride: 1 | 2 = 1,
): tf.Tensor5D {
  return tf.tidy(() => {
    const k = w.shape[0]!;
    const w5 = w as tf.Tensor5D;
    let y: tf.Tensor5D;
    if (k === 1) y = tf.conv3d(x, w5, stride, "valid");
    else if (stride === 1) y = tf.conv3d(x, w5, 1, "same");
    else {
      const p = (k - 1) / 2;
      const xp = tf.pad(x, [[0, 0], [p, p], [p, p], [p, p], [0, 0]]) as tf.Tensor5D;
      y = tf.conv3d(xp, w5, stride, "valid");
    }
    return tf.add(y, b) as tf.Tensor5D;
  });
}
