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
 *   `Dropout3d(p=0.6)` is declared but not used in `forward`). The layers and their
 *   hand-written gradients are methods/nn/massl_layers.ts.
 * - Init: PyTorch default (`kaiming_uniform_(a=sqrt(5))` = U(+-1/sqrt(fan_in)) for weights and
 *   biases), drawn from a seeded {@link Rng} in `__init__` order. The code's unused modules
 *   (`conv3d_c*`, `norm_lrelu_conv_c*`, `lrelu_conv_c1`, `ds*_1x1_conv3d`) are not built.
 *
 * Parameter names are the PyTorch state_dict keys (`e_conv3d_l2_1.weight`,
 * `norm_lrelu_upscale_conv_norm_lrelu_l1_seg.3.bias`, ...); weights are stored channels-last
 * `[kd, kh, kw, in, out]`.
 *
 * A conv on `cat([a, b])` is computed as `conv(a, W[.., :Ca, :]) + conv(b, W[.., Ca:, :])` (the
 * same sum, no Concat gradient needed). The losses, targets and learning-rate schedule of
 * MASSL training are methods/nn/massl_train.ts.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Rng } from "./rng.ts";
import type { StoredTensor } from "../types.ts";
import { restoreVariables, storeVariables } from "./state.ts";
import { conv3dTorch, instanceNormLeaky, stopGradient, upsampleNearest2x } from "./massl_layers.ts";

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

/** `[1 - p, p]` on the last axis: the two-class probabilities of a sigmoid foreground map. */
export function twoClass(p: tf.Tensor5D): tf.Tensor5D {
  return tf.concat([tf.sub(1, p), p], 4) as tf.Tensor5D;
}
