/**
 * The MASSL / MSSL network (Chen et al., MICCAI 2019, arXiv 1907.12303, Sec. 2.1 and 3.0.2),
 * ported from the official code `network/ssl_3d_attention.py` class `MASSL_norm` (and
 * `network/ssl_3d_sep.py` `MSSL_norm` for the 1-channel reconstruction head) of
 * ShuaiChenBIGR/MASSL-segmentation-framework, in NDHWC layout with raw tfjs ops (PyTorch's
 * NCDHW moved to channels-last).
 *
 * - Shared encoder, 5 levels of `nf, 2nf, 4nf, 8nf, 16nf` channels (nf = 16 in the paper).
 *   Level 1: conv3x3x3 -> IN -> LReLU -> conv3x3x3 -> IN -> LReLU. Levels 2..5: the first conv
 *   has stride 2 (PyTorch `padding=1`, i.e. one zero voxel BEFORE each axis; the code's
 *   `AvgPool3d` is declared but unused).
 * - Segmentation decoder WITH skips: nearest upsample x2, 3x3x3 and 1x1x1 convs, concatenation
 *   `[decoder, encoder]` (torch.cat order), sigmoid head of `segChannels` (1 = foreground).
 * - Reconstruction decoder WITHOUT skips, sigmoid head of `recChannels` (MSSL: the image's
 *   channels; MASSL: 2 per image channel = background then foreground); 0 = no rec decoder
 *   (the CNN baseline).
 * - InstanceNorm3d without affine parameters, eps 1e-5 (per sample, per channel over D,H,W;
 *   biased variance); LeakyReLU slope 0.01; conv bias everywhere; no dropout (the code's
 *   `Dropout3d(p=0.6)` is declared but not used in `forward`).
 * - Init: PyTorch default (`kaiming_uniform_(a=sqrt(5))` = U(+-1/sqrt(fan_in)) for weights and
 *   biases), drawn from a seeded {@link Rng} in `__init__` order. The code's unused modules
 *   (`conv3d_c*`, `norm_lrelu_conv_c*`, `lrelu_conv_c1`, `ds*_1x1_conv3d`) are not built.
 *
 * Parameter names are the PyTorch state_dict keys (`e_conv3d_l2_1.weight`,
 * `norm_lrelu_upscale_conv_norm_lrelu_l1_seg.3.bias`, ...); weights are stored channels-last
 * `[kd, kh, kw, in, out]`.
 *
 * A conv on `cat([a, b])` is computed as `conv(a, W[.., :Ca, :]) + conv(b, W[.., Ca:, :])` (the
 * same sum, no Concat gradient needed). This module registers the two gradients it needs that
 * `gradients.ts` lacks (`PadV2`, `LeakyRelu`), guarded like the others.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import "./gradients.ts";
import type { Rng } from "./rng.ts";
import type { StoredTensor } from "../types.ts";
import type { LrSchedule } from "./training.ts";
import { restoreVariables, storeVariables } from "./state.ts";
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

/** Which part of the network a parameter belongs to (the code's `network_switch` groups). */
export type ParamGroup = "encoder" | "segDecoder" | "recDecoder";

/** Options of {@link MasslNet}. */
export interface MasslNetOptions {
  /** Image channels (1: FLAIR). */
  inChannels: number;
  /** `base_n_filter` (16 in the paper). */
  nFilters?: number;
  /** Segmentation head channels (1: sigmoid foreground). */
  segChannels?: number;
  /** Reconstruction head channels; 0 builds no reconstruction decoder. */
  recChannels: number;
}

/** Options of {@link MasslNet.forward}. */
export interface MasslForwardOptions {
  /** Compute the segmentation path (default true). */
  seg?: boolean;
  /** Compute the reconstruction path (default true when the net has one). */
  rec?: boolean;
  /**
   * Run the segmentation decoder with gradient-stopped weights: gradients still flow through
   * its activations into the encoder, but its own parameters receive none (the official code's
   * `trainU_decoder_seg: False`).
   */
  freezeSegDecoder?: boolean;
}

/** Outputs of {@link MasslNet.forward} (sigmoid probabilities, NDHWC). */
export interface MasslOutputs {
  seg: tf.Tensor5D | null;
  rec: tf.Tensor5D | null;
}

interface Conv {
  w: tf.Variable;
  b: tf.Variable;
  group: ParamGroup;
}

let instanceCounter = 0;

/** `MASSL_norm` with named parameters (see the module doc). */
export class MasslNet {
  /** Trainable parameters by PyTorch state_dict key. */
  readonly params: Map<string, tf.Variable> = new Map();
  readonly nFilters: number;
  readonly segChannels: number;
  readonly recChannels: number;
  readonly #uid: string;
  readonly #convs = new Map<string, Conv>();

  /** Build and initialise from `rng` in the reference `__init__` order. */
  constructor(opts: MasslNetOptions, rng: Rng) {
    this.#uid = `massl${instanceCounter++}`;
    const nf = this.nFilters = opts.nFilters ?? 16;
    this.segChannels = opts.segChannels ?? 1;
    this.recChannels = opts.recChannels;
    const hasRec = this.recChannels > 0;
    const add = (key: string, k: number, ci: number, co: number, g: ParamGroup) =>
      this.#addConv(key, k, ci, co, g, rng);
    // Encoder
    add("e_conv3d_l1_1", 3, opts.inChannels, nf, "encoder");
    add("e_conv3d_l1_2", 3, nf, nf, "encoder");
    for (let l = 2; l <= 5; l++) {
      const c = nf * 2 ** (l - 1);
      add(`e_conv3d_l${l}_1`, 3, c / 2, c, "encoder");
      add(`e_conv3d_l${l}_2`, 3, c, c, "encoder");
    }
    // Level 0 (bottom) of both decoders
    add("upscale_conv_norm_lrelu_l0_seg.1", 3, 16 * nf, 8 * nf, "segDecoder");
    if (hasRec) add("upscale_conv_norm_lrelu_l0_rec.1", 3, 16 * nf, 8 * nf, "recDecoder");
    add("conv3d_l0_seg", 1, 8 * nf, 8 * nf, "segDecoder");
    if (hasRec) add("conv3d_l0_rec", 1, 8 * nf, 8 * nf, "recDecoder");
    // Levels 1..3
    for (let l = 1; l <= 3; l++) {
      const c = (16 * nf) / 2 ** (l - 1); // 16nf, 8nf, 4nf: concatenated width
      add(`conv_norm_lrelu_l${l}.0`, 3, c, c, "segDecoder");
      add(`conv3d_l${l}`, 1, c, c / 2, "segDecoder");
      if (hasRec && l <= 2) add(`conv3d_l${l}_ssl`, 1, c / 4, c / 4, "recDecoder");
      add(`norm_lrelu_upscale_conv_norm_lrelu_l${l}_seg.3`, 3, c / 2, c / 4, "segDecoder");
      if (hasRec) {
        add(`norm_lrelu_upscale_conv_norm_lrelu_l${l}_rec.3`, 3, c / 2, c / 4, "recDecoder");
      }
    }
    // Level 4 (top)
    add("conv_norm_lrelu_l4.0", 3, 2 * nf, 2 * nf, "segDecoder");
    if (hasRec) add("conv_norm_lrelu_l4_ssl.0", 3, nf, nf, "recDecoder");
    add("conv3d_l4", 1, 2 * nf, this.segChannels, "segDecoder");
    if (hasRec) add("conv3d_l4_ssl", 1, nf, this.recChannels, "recDecoder");
  }

  #addConv(key: string, k: number, ci: number, co: number, group: ParamGroup, rng: Rng): void {
    const bound = 1 / Math.sqrt(ci * k * k * k);
    const shape = [k, k, k, ci, co];
    const wv = rng.fillUniform(new Float32Array(k * k * k * ci * co), -bound, bound);
    const bv = rng.fillUniform(new Float32Array(co), -bound, bound);
    const mk = (name: string, t: tf.Tensor) => {
      const v = tf.variable(t, true, `${this.#uid}/${name}`);
      t.dispose();
      this.params.set(name, v);
      return v;
    };
    this.#convs.set(key, {
      w: mk(`${key}.weight`, tf.tensor(wv, shape)),
      b: mk(`${key}.bias`, tf.tensor1d(bv)),
      group,
    });
  }

  /** The parameters of the given groups, by name (for an optimizer or a gradient tape). */
  paramsOf(...groups: ParamGroup[]): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const [key, c] of this.#convs) {
      if (!groups.includes(c.group)) continue;
      out.set(`${key}.weight`, c.w);
      out.set(`${key}.bias`, c.b);
    }
    return out;
  }

  /** Group of a parameter name. */
  groupOf(name: string): ParamGroup {
    const c = this.#convs.get(name.replace(/\.(weight|bias)$/, ""));
    if (c === undefined) throw new Error(`MasslNet: no parameter '${name}'`);
    return c.group;
  }

  #wb(key: string, frozen: boolean): [tf.Tensor, tf.Tensor] {
    const c = this.#convs.get(key);
    if (c === undefined) throw new Error(`MasslNet: no conv '${key}'`);
    return frozen ? [stopGradient(c.w), stopGradient(c.b)] : [c.w, c.b];
  }

  #conv(key: string, x: tf.Tensor5D, frozen = false, stride: 1 | 2 = 1): tf.Tensor5D {
    const [w, b] = this.#wb(key, frozen);
    return conv3dTorch(x, w, b, stride);
  }

  /** conv3x3x3 over `cat([a, b], channels)` as two convs on the split weight. */
  #convCat(key: string, a: tf.Tensor5D, b: tf.Tensor5D, frozen: boolean): tf.Tensor5D {
    const [w, bias] = this.#wb(key, frozen);
    const [k, , , ci, co] = w.shape as [number, number, number, number, number];
    const ca = a.shape[4];
    const wa = tf.slice(w, [0, 0, 0, 0, 0], [k, k, k, ca, co]);
    const wbb = tf.slice(w, [0, 0, 0, ca, 0], [k, k, k, ci - ca, co]);
    return tf.add(
      tf.add(
        tf.conv3d(a, wa as tf.Tensor5D, 1, "same"),
        tf.conv3d(b, wbb as tf.Tensor5D, 1, "same"),
      ),
      bias,
    ) as tf.Tensor5D;
  }

  /**
   * Forward pass: `x` [N,D,H,W,Cin] (D,H,W multiples of 16) -> sigmoid outputs of the
   * requested paths. Not wrapped in tidy (call it inside one or inside a gradient tape).
   */
  forward(x: tf.Tensor5D, opts: MasslForwardOptions = {}): MasslOutputs {
    for (const [i, d] of x.shape.slice(1, 4).entries()) {
      if (d % 16 !== 0) {
        throw new Error(`MasslNet.forward: spatial dim ${i} = ${d} is not a multiple of 16`);
      }
    }
    const wantSeg = opts.seg ?? true;
    const wantRec = (opts.rec ?? true) && this.recChannels > 0;
    const fz = opts.freezeSegDecoder ?? false;
    const act = (t: tf.Tensor5D) => instanceNormLeaky(t);
    // Encoder
    let out = act(this.#conv("e_conv3d_l1_1", x));
    const e: tf.Tensor5D[] = [act(this.#conv("e_conv3d_l1_2", out))];
    for (let l = 2; l <= 5; l++) {
      out = act(this.#conv(`e_conv3d_l${l}_1`, e[l - 2]!, false, 2));
      e.push(act(this.#conv(`e_conv3d_l${l}_2`, out)));
    }
    const enc = e[4]!;

    let seg: tf.Tensor5D | null = null;
    if (wantSeg) {
      let d = act(this.#conv("upscale_conv_norm_lrelu_l0_seg.1", upsampleNearest2x(enc), fz));
      d = act(this.#conv("conv3d_l0_seg", d, fz));
      for (let l = 1; l <= 3; l++) {
        d = act(this.#convCat(`conv_norm_lrelu_l${l}.0`, d, e[4 - l]!, fz));
        d = act(this.#conv(`conv3d_l${l}`, d, fz));
        d = act(this.#conv(
          `norm_lrelu_upscale_conv_norm_lrelu_l${l}_seg.3`,
          upsampleNearest2x(d),
          fz,
        ));
      }
      d = act(this.#convCat("conv_norm_lrelu_l4.0", d, e[0]!, fz));
      seg = tf.sigmoid(this.#conv("conv3d_l4", d, fz)) as tf.Tensor5D;
    }

    let rec: tf.Tensor5D | null = null;
    if (wantRec) {
      let d = act(this.#conv("upscale_conv_norm_lrelu_l0_rec.1", upsampleNearest2x(enc)));
      d = this.#conv("conv3d_l0_rec", d);
      for (let l = 1; l <= 3; l++) {
        d = act(this.#conv(
          `norm_lrelu_upscale_conv_norm_lrelu_l${l}_rec.3`,
          upsampleNearest2x(act(d)),
        ));
        if (l <= 2) d = this.#conv(`conv3d_l${l}_ssl`, d);
      }
      d = act(this.#conv("conv_norm_lrelu_l4_ssl.0", d));
      rec = tf.sigmoid(this.#conv("conv3d_l4_ssl", d)) as tf.Tensor5D;
    }
    return { seg, rec };
  }

  /** Number of trainable parameters. */
  parameterCount(): number {
    let n = 0;
    for (const v of this.params.values()) n += v.size;
    return n;
  }

  /** Parameters as stored tensors, names prefixed with `prefix`. */
  state(prefix = ""): Record<string, StoredTensor> {
    return storeVariables(prefix, this.params);
  }

  /** Restore what {@link MasslNet.state} wrote (same architecture). */
  restore(tensors: Record<string, StoredTensor>, prefix = ""): void {
    restoreVariables(tensors, prefix, this.params);
  }

  /** Free every variable. */
  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
    this.#convs.clear();
  }
}

/**
 * The MASSL attention targets and size weights (paper Eq. 1; official code
 * `Network_training_SSL_epoch_attention_BraTS18.py`, mode 'fuse', `loss_weighted=True`):
 * `T_b = (1 - P) x`, `T_f = P x`, `w_b = sum(1-P) / (sum(1-P) + sum(P))`,
 * `w_f = sum(P) / (sum(1-P) + sum(P))`, sums over the whole batch. `p` [B,D,H,W,1], `x`
 * [B,D,H,W,C] (P broadcasts over image channels).
 */
export function masslAttentionTargets(
  p: tf.Tensor,
  x: tf.Tensor,
): { back: tf.Tensor; fore: tf.Tensor; wBack: tf.Scalar; wFore: tf.Scalar } {
  const q = tf.sub(1, p);
  const back = tf.mul(q, x);
  const fore = tf.mul(p, x);
  const sb = tf.sum(q), sf = tf.sum(p);
  const total = tf.add(sb, sf);
  return { back, fore, wBack: tf.div(sb, total), wFore: tf.div(sf, total) };
}

/**
 * MASSL reconstruction loss `w_b * mean((R_b - T_b)^2) + w_f * mean((R_f - T_f)^2)` (paper
 * Eq. 1; `nn.MSELoss` mean reduction as the code). `rec` [B,D,H,W,2C]: channels [0, C) are the
 * background reconstruction, [C, 2C) the foreground. `weighted=false` uses w_b = w_f = 1.
 * Gradient flows through `p` unless the caller detaches it.
 */
export function masslAttentionLoss(
  rec: tf.Tensor5D,
  p: tf.Tensor5D,
  x: tf.Tensor5D,
  weighted = true,
): { loss: tf.Scalar; mseBack: tf.Scalar; mseFore: tf.Scalar; wFore: tf.Scalar } {
  const c = x.shape[4];
  if (rec.shape[4] !== 2 * c) {
    throw new Error(`masslAttentionLoss: rec has ${rec.shape[4]} channels, expected ${2 * c}`);
  }
  const { back, fore, wBack, wFore } = masslAttentionTargets(p, x);
  const [n, d, h, w] = x.shape;
  const rb = tf.slice(rec, [0, 0, 0, 0, 0], [n, d, h, w, c]);
  const rf = tf.slice(rec, [0, 0, 0, 0, c], [n, d, h, w, c]);
  const mseBack = tf.mean(tf.squaredDifference(rb, back)) as tf.Scalar;
  const mseFore = tf.mean(tf.squaredDifference(rf, fore)) as tf.Scalar;
  const loss = weighted
    ? tf.add(tf.mul(wBack, mseBack), tf.mul(wFore, mseFore)) as tf.Scalar
    : tf.add(mseBack, mseFore) as tf.Scalar;
  return { loss, mseBack, mseFore, wFore };
}

/**
 * The reference scripts' `StepLR(step_size, gamma)` with `scheduler.step()` called BEFORE
 * each optimizer step (`Network_training_SSL_epoch_attention_BraTS18.py`): the LR used at
 * 0-based iteration `i` is `base * gamma^floor((i + 1) / stepSize)`.
 */
export function masslLr(base: number, iteration: number, stepSize = 500, gamma = 0.5): number {
  return base * Math.pow(gamma, Math.floor((iteration + 1) / stepSize));
}

/**
 * {@link masslLr} of `base` as a schedule (for `MethodBase.optimizer`), counting iterations
 * from `start` (the first iteration of a training phase).
 */
export function masslSchedule(
  base: number,
  stepSize: number,
  gamma: number,
  start = 0,
): LrSchedule {
  return (iteration) => masslLr(base, iteration - start, stepSize, gamma);
}

/** `[1 - p, p]` on the last axis: the two-class probabilities of a sigmoid foreground map. */
export function twoClass(p: tf.Tensor5D): tf.Tensor5D {
  return tf.concat([tf.sub(1, p), p], 4) as tf.Tensor5D;
}

/** `labels == 1` as float32 [B,D,H,W,1] (binary whole-tumour / lesion target). */
export function foregroundTarget(labels: tf.Tensor4D): tf.Tensor5D {
  const [b, d, h, w] = labels.shape;
  return tf.reshape(tf.cast(tf.equal(labels, 1), "float32"), [b, d, h, w, 1]) as tf.Tensor5D;
}
