/**
 * The V-Net of UA-MT / DTC (`code/networks/vnet.py` of yulequan/UA-MT, `vnet_sdf.py` of
 * HiLab-git/DTC; `VNet(n_channels=1, n_classes=2, n_filters=16, normalization='batchnorm',
 * has_dropout=True)`) in NDHWC layout with raw tfjs ops.
 *
 * - Encoder: ConvBlock(1, 2, 3, 3, 3 stages) of [conv3x3x3 pad 1 (bias) -> BN -> ReLU], each
 *   followed (except the last) by a 2x2x2 stride-2 conv -> BN -> ReLU doubling the channels.
 * - Decoder: 2x2x2 stride-2 transposed conv -> BN -> ReLU, ADDED to the encoder feature of
 *   the same level, then ConvBlock(3, 3, 2, 1 stages).
 * - Channel dropout (`nn.Dropout3d(p=0.5)`) on the bottleneck x5 and on x9 when training.
 * - 1x1x1 heads on x9 (with bias): a plain seg head, DTC's two heads (`tanh(out_conv)` SDF +
 *   `out_conv2` seg logits), or any list of {@link HeadSpec}s.
 *
 * The transposed conv is a matMul (Ci -> 8 Co) followed by a depth-to-space reshape/transpose,
 * because tfjs 4.22 registers no gradient for `Conv3DBackpropInputV2` (tfjs-core's gradient
 * registry has none, so `tf.conv3dTranspose` cannot be trained); it computes exactly
 * `ConvTranspose3d(k=2, s=2, p=0)` with the same FLOPs.
 *
 * BatchNorm has PyTorch semantics: batch statistics (biased variance) in training, running
 * statistics in eval; running = 0.9 running + 0.1 batch with the UNBIASED batch variance;
 * eps 1e-5. Init is PyTorch's default (`kaiming_uniform_(a=sqrt(5))` = U(+-1/sqrt(fan_in)) for
 * weights and biases; BN gamma 1, beta 0, running mean 0, var 1), drawn from a seeded {@link Rng}.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import "./gradients.ts";
import type { Rng } from "./rng.ts";
import type { StoredTensor } from "../types.ts";
import { restoreVariables, storeVariables } from "./state.ts";
import {
  fusedNormAct,
  fusedNormTakesBias,
  hasFusedNormAct,
  hasFusedRunningStats,
  RUNNING_STATS,
} from "./native/norm.ts";

/** Activation applied to a head's output. */
export type HeadActivation = "none" | "tanh" | "sigmoid";

/** One 1x1x1 output head on x9. */
export interface HeadSpec {
  /** Stable parameter-name prefix, e.g. "out_conv" (as the PyTorch module name). */
  key: string;
  /** Output channels. */
  channels: number;
  /** Activation applied in {@link VNet.forward}. */
  activation: HeadActivation;
}

/** UA-MT `VNet`: one seg head `out_conv` with `nClasses` logits. */
export function segHeads(nClasses: number): HeadSpec[] {
  return [{ key: "out_conv", channels: nClasses, activation: "none" }];
}

/**
 * DTC `vnet_sdf.VNet` heads in its return order: `tanh(out_conv(x9))` (SDF), then
 * `out_conv2(x9)` (seg logits).
 */
export function dtcHeads(nClasses: number): HeadSpec[] {
  return [
    { key: "out_conv", channels: nClasses, activation: "tanh" },
    { key: "out_conv2", channels: nClasses, activation: "none" },
  ];
}

/** Three heads (seg logits, tanh SDF, sigmoid contour) for the multi-task methods. */
export function threeHeads(nSeg: number): HeadSpec[] {
  return [
    { key: "out_seg", channels: nSeg, activation: "none" },
    { key: "out_sdf", channels: 1, activation: "tanh" },
    { key: "out_contour", channels: 1, activation: "sigmoid" },
  ];
}

/** Options of {@link VNet}. */
export interface VNetOptions {
  /** Image channels (`n_channels`). */
  inChannels: number;
  /** Base width (`n_filters`, 16 in the papers). */
  nFilters?: number;
  /** Output heads (default: {@link segHeads}(2)). */
  heads?: HeadSpec[];
  /** `has_dropout` (true in every training script of UA-MT/DTC). */
  hasDropout?: boolean;
  /** Dropout3d probability (0.5). */
  dropoutP?: number;
  /** BN momentum, PyTorch convention (0.1). */
  bnMomentum?: number;
  /** BN eps (1e-5). */
  bnEps?: number;
}

/** Options of {@link VNet.forward}. */
export interface ForwardOptions {
  /** PyTorch `train()` mode: BN batch statistics (and running-stat updates), dropout on. */
  training: boolean;
  /** Dropout on/off; default = `training` and `hasDropout` (UA-MT's `turnoff_drop`). */
  dropout?: boolean;
  /** Where the dropout masks come from (required when dropout is on). */
  dropoutRng?: Rng;
  /** Update BN running statistics in training mode (default true, as PyTorch). */
  updateStats?: boolean;
}

interface Conv {
  w: tf.Variable;
  b: tf.Variable;
}

type Bn = BnParams;

let instanceCounter = 0;

/**
 * Depth-to-space 2x2x2 transposed convolution (`ConvTranspose3d(ci, co, 2, stride=2)`):
 * `x` [N,D,H,W,Ci], `w` [Ci, 2, 2, 2, Co] (PyTorch's [Ci, Co, kd, kh, kw] moved to
 * channels-last), `b` [Co] -> [N, 2D, 2H, 2W, Co]; out[2d+i, 2h+j, 2w+k] = x[d,h,w] . w[:, i,j,k].
 * Differentiable with standard ops (matMul, reshape, transpose).
 */
export function transposedConv2x(x: tf.Tensor5D, w: tf.Tensor, b?: tf.Tensor): tf.Tensor5D {
  return tf.tidy(() => {
    const [n, d, h, wd, ci] = x.shape;
    const co = w.shape[4]!;
    const y = tf.matMul(tf.reshape(x, [n * d * h * wd, ci]), tf.reshape(w, [ci, 8 * co]));
    // [n, d, h, w, 2, 2, 2, co] -> [n, d, 2, h, 2, w, 2, co]
    const y8 = tf.transpose(tf.reshape(y, [n, d, h, wd, 2, 2, 2, co]), [0, 1, 4, 2, 5, 3, 6, 7]);
    const out = tf.reshape(y8, [n, 2 * d, 2 * h, 2 * wd, co]) as tf.Tensor5D;
    return b === undefined ? out : tf.add(out, b) as tf.Tensor5D;
  });
}

/**
 * Channel dropout (`nn.Dropout3d`) mask of shape [N,1,1,1,C]: 0 with probability `p`, else
 * `1/(1-p)`, drawn sample-major then channel from `rng` (never tfjs's own random).
 */
export function channelDropoutMask(n: number, c: number, p: number, rng: Rng): tf.Tensor5D {
  const m = new Float32Array(n * c);
  const keep = 1 / (1 - p);
  for (let i = 0; i < m.length; i++) m[i] = rng.uniform() < p ? 0 : keep;
  return tf.tensor5d(m, [n, 1, 1, 1, c]);
}

/** Parameters and running statistics of one BatchNorm layer (channels-last). */
export interface BnParams {
  gamma: tf.Variable;
  beta: tf.Variable;
  mean: tf.Variable;
  variance: tf.Variable;
}

/** Options of {@link batchNorm}. */
export interface BnOptions {
  training: boolean;
  /** Update the running statistics (training only; default true). */
  updateStats?: boolean;
  /** PyTorch momentum (0.1). */
  momentum?: number;
  eps?: number;
  /** Apply ReLU after the normalisation (fused with it on the native cpu path). */
  relu?: boolean;
  /**
   * The preceding convolution's bias [C], added to `x` before the normalisation (inside the
   * fused kernel on the native cpu path: the same values without a full-size add).
   */
  bias?: tf.Tensor;
}

/**
 * `nn.BatchNorm3d` forward over the last axis of `x` [N,D,H,W,C]. Training: normalise with the
 * batch mean and BIASED variance over N,D,H,W, and set `running = (1-m) running + m batch`
 * with the UNBIASED variance (PyTorch `F.batch_norm`). Eval: normalise with running stats.
 */
export function batchNorm(x: tf.Tensor5D, p: BnParams, opts: BnOptions): tf.Tensor5D {
  const eps = opts.eps ?? 1e-5;
  const act = (t: tf.Tensor): tf.Tensor5D => (opts.relu ? tf.relu(t) : t) as tf.Tensor5D;
  const fuseBias = opts.training && opts.bias !== undefined && fusedNormTakesBias();
  if (opts.bias !== undefined && !fuseBias) x = tf.add(x, opts.bias) as tf.Tensor5D;
  if (!opts.training) {
    const inv = tf.mul(tf.rsqrt(tf.add(p.variance, eps)), p.gamma);
    return act(tf.add(tf.mul(tf.sub(x, p.mean), inv), p.beta));
  }
  let y: tf.Tensor5D, mean: tf.Tensor, variance: tf.Tensor;
  if (hasFusedNormAct()) {
    const attrs = { perSample: false, eps, act: opts.relu ? "relu" : "none", slope: 0 } as const;
    [y, mean, variance] = fusedNormAct(
      x,
      p.gamma,
      p.beta,
      attrs,
      fuseBias ? opts.bias : undefined,
    ) as [
      tf.Tensor5D,
      tf.Tensor,
      tf.Tensor,
    ];
  } else {
    ({ mean, variance } = tf.moments(x, [0, 1, 2, 3]));
    const inv = tf.mul(tf.rsqrt(tf.add(variance, eps)), p.gamma);
    y = act(tf.add(tf.mul(tf.sub(x, mean), inv), p.beta));
  }
  if (opts.updateStats ?? true) {
    const [n, d, h, w] = x.shape;
    const count = n * d * h * w;
    const m = opts.momentum ?? 0.1;
    tf.tidy(() => {
      if (hasFusedRunningStats()) {
        const [mu, vr] = tf.engine().runKernel(
          RUNNING_STATS,
          { mean: p.mean, variance: p.variance, batchMean: mean, batchVar: variance },
          { momentum: m, count },
        ) as tf.Tensor[];
        p.mean.assign(mu!);
        p.variance.assign(vr!);
        return;
      }
      const unbiased = count > 1 ? tf.mul(variance, count / (count - 1)) : variance;
      p.mean.assign(tf.add(tf.mul(1 - m, p.mean), tf.mul(m, mean)));
      p.variance.assign(tf.add(tf.mul(1 - m, p.variance), tf.mul(m, unbiased)));
    });
  }
  return y;
}

/** The UA-MT/DTC V-Net with named parameters and BN buffers. */
export class VNet {
  /** Trainable parameters by stable name (PyTorch-like, e.g. `block_one.conv0.weight`). */
  readonly params: Map<string, tf.Variable> = new Map();
  /** BN running statistics by stable name (`*.running_mean`, `*.running_var`). */
  readonly buffers: Map<string, tf.Variable> = new Map();
  /** The heads, in the order {@link VNet.forward} returns them. */
  readonly heads: readonly HeadSpec[];
  readonly nFilters: number;
  readonly hasDropout: boolean;
  readonly dropoutP: number;
  readonly #momentum: number;
  readonly #eps: number;
  readonly #uid: string;
  readonly #convs = new Map<string, Conv>();
  readonly #bns = new Map<string, Bn>();

  /** Build and initialise (PyTorch default init) from `rng`, in module order. */
  constructor(opts: VNetOptions, rng: Rng) {
    this.#uid = `vnet${instanceCounter++}`;
    const nf = this.nFilters = opts.nFilters ?? 16;
    this.heads = opts.heads ?? segHeads(2);
    this.hasDropout = opts.hasDropout ?? true;
    this.dropoutP = opts.dropoutP ?? 0.5;
    this.#momentum = opts.bnMomentum ?? 0.1;
    this.#eps = opts.bnEps ?? 1e-5;
    const block = (name: string, stages: number, ci: number, co: number) => {
      for (let i = 0; i < stages; i++) {
        this.#addConv(
          `${name}.conv${i}`,
          [3, 3, 3, i === 0 ? ci : co, co],
          27 * (i === 0 ? ci : co),
          rng,
        );
        this.#addBn(`${name}.bn${i}`, co);
      }
    };
    const down = (name: string, ci: number, co: number) => {
      this.#addConv(`${name}.conv`, [2, 2, 2, ci, co], 8 * ci, rng);
      this.#addBn(`${name}.bn`, co);
    };
    const up = (name: string, ci: number, co: number) => {
      // PyTorch ConvTranspose3d weight is [ci, co, 2,2,2]: fan_in = size(1) * 8 = 8 co.
      this.#addConv(`${name}.deconv`, [ci, 2, 2, 2, co], 8 * co, rng);
      this.#addBn(`${name}.bn`, co);
    };
    block("block_one", 1, opts.inChannels, nf);
    down("block_one_dw", nf, 2 * nf);
    block("block_two", 2, 2 * nf, 2 * nf);
    down("block_two_dw", 2 * nf, 4 * nf);
    block("block_three", 3, 4 * nf, 4 * nf);
    down("block_three_dw", 4 * nf, 8 * nf);
    block("block_four", 3, 8 * nf, 8 * nf);
    down("block_four_dw", 8 * nf, 16 * nf);
    block("block_five", 3, 16 * nf, 16 * nf);
    up("block_five_up", 16 * nf, 8 * nf);
    block("block_six", 3, 8 * nf, 8 * nf);
    up("block_six_up", 8 * nf, 4 * nf);
    block("block_seven", 3, 4 * nf, 4 * nf);
    up("block_seven_up", 4 * nf, 2 * nf);
    block("block_eight", 2, 2 * nf, 2 * nf);
    up("block_eight_up", 2 * nf, nf);
    block("block_nine", 1, nf, nf);
    for (const h of this.heads) this.#addConv(h.key, [1, 1, 1, nf, h.channels], nf, rng);
  }

  #var(key: string, init: tf.Tensor, trainable: boolean): tf.Variable {
    const v = tf.variable(init, trainable, `${this.#uid}/${key}`);
    init.dispose();
    (trainable ? this.params : this.buffers).set(key, v);
    return v;
  }

  #addConv(key: string, shape: number[], fanIn: number, rng: Rng): void {
    const bound = 1 / Math.sqrt(fanIn);
    const co = shape[shape.length - 1]!;
    const wv = rng.fillUniform(new Float32Array(shape.reduce((a, b) => a * b, 1)), -bound, bound);
    const bv = rng.fillUniform(new Float32Array(co), -bound, bound);
    this.#convs.set(key, {
      w: this.#var(`${key}.weight`, tf.tensor(wv, shape), true),
      b: this.#var(`${key}.bias`, tf.tensor1d(bv), true),
    });
  }

  #addBn(key: string, c: number): void {
    this.#bns.set(key, {
      gamma: this.#var(`${key}.weight`, tf.ones([c]), true),
      beta: this.#var(`${key}.bias`, tf.zeros([c]), true),
      mean: this.#var(`${key}.running_mean`, tf.zeros([c]), false),
      variance: this.#var(`${key}.running_var`, tf.ones([c]), false),
    });
  }

  #conv(key: string): Conv {
    const c = this.#convs.get(key);
    if (c === undefined) throw new Error(`VNet: no conv '${key}'`);
    return c;
  }

  /** BatchNorm then ReLU (one fused kernel on the native cpu path). */
  /** The conv output `x` plus its bias `b`, then BatchNorm and ReLU (one fused kernel on cpu). */
  #bnRelu(
    key: string,
    x: tf.Tensor5D,
    b: tf.Tensor | undefined,
    training: boolean,
    update: boolean,
  ): tf.Tensor5D {
    return batchNorm(x, this.#bns.get(key)!, {
      training,
      updateStats: update,
      momentum: this.#momentum,
      eps: this.#eps,
      relu: true,
      ...(b ? { bias: b } : {}),
    });
  }

  #convBlock(name: string, stages: number, x: tf.Tensor5D, tr: boolean, up: boolean): tf.Tensor5D {
    for (let i = 0; i < stages; i++) {
      const c = this.#conv(`${name}.conv${i}`);
      const y = tf.conv3d(x, c.w as tf.Tensor5D, 1, "same");
      x = this.#bnRelu(`${name}.bn${i}`, y, c.b, tr, up);
    }
    return x;
  }

  #down(name: string, x: tf.Tensor5D, tr: boolean, up: boolean): tf.Tensor5D {
    const c = this.#conv(`${name}.conv`);
    return this.#bnRelu(`${name}.bn`, tf.conv3d(x, c.w as tf.Tensor5D, 2, "valid"), c.b, tr, up);
  }

  #up(name: string, x: tf.Tensor5D, tr: boolean, up: boolean): tf.Tensor5D {
    const c = this.#conv(`${name}.deconv`);
    return this.#bnRelu(`${name}.bn`, transposedConv2x(x, c.w), c.b, tr, up);
  }

  /**
   * Forward pass: `x` [N,D,H,W,Cin] (D,H,W divisible by 16) -> one tensor per head
   * [N,D,H,W,channels], activations applied. Not wrapped in tidy (call it inside one).
   */
  forward(x: tf.Tensor5D, opts: ForwardOptions): tf.Tensor5D[] {
    const tr = opts.training;
    const up = tr && (opts.updateStats ?? true);
    const drop = (opts.dropout ?? tr) && this.hasDropout && this.dropoutP > 0;
    const dropout = (t: tf.Tensor5D): tf.Tensor5D => {
      if (!drop) return t;
      if (opts.dropoutRng === undefined) throw new Error("VNet.forward: dropout needs dropoutRng");
      const mask = channelDropoutMask(t.shape[0], t.shape[4], this.dropoutP, opts.dropoutRng);
      return tf.mul(t, mask) as tf.Tensor5D;
    };
    for (const [i, d] of x.shape.slice(1, 4).entries()) {
      if (d % 16 !== 0) {
        throw new Error(`VNet.forward: spatial dim ${i} = ${d} is not a multiple of 16`);
      }
    }
    const x1 = this.#convBlock("block_one", 1, x, tr, up);
    const x2 = this.#convBlock("block_two", 2, this.#down("block_one_dw", x1, tr, up), tr, up);
    const x3 = this.#convBlock("block_three", 3, this.#down("block_two_dw", x2, tr, up), tr, up);
    const x4 = this.#convBlock("block_four", 3, this.#down("block_three_dw", x3, tr, up), tr, up);
    const x5 = dropout(
      this.#convBlock("block_five", 3, this.#down("block_four_dw", x4, tr, up), tr, up),
    );
    const x6 = this.#convBlock(
      "block_six",
      3,
      tf.add(this.#up("block_five_up", x5, tr, up), x4),
      tr,
      up,
    );
    const x7 = this.#convBlock(
      "block_seven",
      3,
      tf.add(this.#up("block_six_up", x6, tr, up), x3),
      tr,
      up,
    );
    const x8 = this.#convBlock(
      "block_eight",
      2,
      tf.add(this.#up("block_seven_up", x7, tr, up), x2),
      tr,
      up,
    );
    const x9 = dropout(
      this.#convBlock("block_nine", 1, tf.add(this.#up("block_eight_up", x8, tr, up), x1), tr, up),
    );
    return this.heads.map((h) => {
      const c = this.#conv(h.key);
      const y = tf.add(tf.conv3d(x9, c.w as tf.Tensor5D, 1, "valid"), c.b) as tf.Tensor5D;
      return h.activation === "tanh" ? tf.tanh(y) : h.activation === "sigmoid" ? tf.sigmoid(y) : y;
    });
  }

  /** Number of trainable parameters (PyTorch `sum(p.numel() for p in model.parameters())`). */
  parameterCount(): number {
    let n = 0;
    for (const v of this.params.values()) n += v.size;
    return n;
  }

  /** Parameters and BN buffers as stored tensors, names prefixed with `prefix`. */
  state(prefix = ""): Record<string, StoredTensor> {
    return storeVariables(prefix, this.params, this.buffers);
  }

  /** Restore what {@link VNet.state} wrote (same architecture). */
  restore(tensors: Record<string, StoredTensor>, prefix = ""): void {
    restoreVariables(tensors, prefix, this.params, this.buffers);
  }

  /** Free every variable. */
  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    for (const v of this.buffers.values()) v.dispose();
    this.params.clear();
    this.buffers.clear();
  }
}
