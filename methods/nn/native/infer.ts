/**
 * Fused inference forward of the UA-MT/DTC V-Net (`../vnet.ts`) on oneDNN, for the sliding
 * window evaluator: eval-mode BatchNorm folded into the preceding convolution
 * (`w' = w s`, `b' = (b - mean) s + beta`, `s = gamma / sqrt(var + eps)`), ReLU as an eltwise
 * post-op, activations kept from the first convolution to the 1x1x1 head in the layouts
 * oneDNN's implementations choose (`format_tag_any`: NDHWC for its brgemm convolutions on
 * AVX-512, blocked nCdhw8c/16c for its direct jit ones), the head's logits soft-maxed over
 * classes in JS (`layout.ts` softmaxRows, the native Softmax kernel's loop).
 *
 * Each decoder step `relu(bn(up(x))) + skip` (`ConvTranspose3d(k=2, s=2)`) runs as a 1x1x1
 * convolution ci -> 8 co with the folded BN and the ReLU post-op, then a depth-to-space reorder
 * whose `sum` post-op adds it into the skip tensor in place: oneDNN 2.6's deconvolution applies
 * post-ops in a reference loop (1.7 s for the LA top level, against ~20 ms this way). The
 * deconvolution with relu + binary-add post-ops remains the fallback.
 *
 * Primitives are built once per window-batch shape and cached; activation buffers live in a
 * grow-only arena shared by those plans (sized by liveness: a buffer is reused once the tensor
 * in it is dead), and the blocked weights are re-folded only when a parameter or BN statistic
 * of the network was re-assigned (tfjs gives every `assign` a new dataId). So repeated calls
 * allocate nothing large: memory stays flat over a whole evaluation.
 *
 * {@link fusedWindowPredictor} is the evaluator's hook: for a method whose `predict` is one
 * V-Net's head-0 softmax it returns a window predictor running this plan, checked once per
 * weights version against `method.predict` on the first batch.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { ABI } from "./abi.ts";
import {
  dimsOf,
  type Dnnl,
  type MemDesc,
  type PostOp,
  postOpSrc1Arg,
  type Primitive,
} from "./dnnl.ts";
import { softmaxRows } from "./layout.ts";
import { nativeLibrary } from "./install.ts";
import type { VNet } from "../vnet.ts";
import type { Method } from "../../types.ts";

/** The four layer kinds of the V-Net. */
type LayerKind = "conv" | "down" | "up" | "head";

/** One convolution of the network with the BatchNorm folded into it. */
interface Layer {
  /** Parameter prefix of the convolution, e.g. "block_two.conv1" (`.weight`, `.bias`). */
  conv: string;
  /** Parameter prefix of the BatchNorm after it; null for the head. */
  bn: string | null;
  kind: LayerKind;
  ci: number;
  co: number;
}

/** One layer applied to tensor `src` (ids: 0 is the input), writing tensor `dst`. */
interface Op {
  layer: Layer;
  src: number;
  dst: number;
  /** Tensor added after the ReLU (decoder skips), or null. */
  skip: number | null;
}

/** The V-Net as a list of fused layers in execution order. */
interface Graph {
  layers: Layer[];
  ops: Op[];
  /** Tensor id of the head logits. */
  logits: number;
  inChannels: number;
  classes: number;
}

/** Kernel edge and stride of each layer kind. */
const GEOMETRY: Record<LayerKind, { k: number; s: number; pad: number }> = {
  conv: { k: 3, s: 1, pad: 1 },
  down: { k: 2, s: 2, pad: 0 },
  up: { k: 2, s: 2, pad: 0 },
  head: { k: 1, s: 1, pad: 0 },
};

/**
 * The layer graph of `net`, mirroring `VNet.forward` (encoder stages 1,2,3,3,3 with 2x2x2
 * stride-2 downs, decoder ups added to x4..x1, stages 3,3,2,1, then head `head`). Throws one
 * line when a parameter is missing or has an unexpected shape.
 */
function vnetGraph(net: VNet, head: number): Graph {
  const layers: Layer[] = [];
  const ops: Op[] = [];
  let next = 1;
  const weight = (key: string, rank: number): number[] => {
    const w = net.params.get(`${key}.weight`);
    if (w === undefined || w.shape.length !== rank) {
      throw new Error(`fused V-Net inference: no ${rank}-D parameter '${key}.weight'`);
    }
    return w.shape;
  };
  const emit = (
    conv: string,
    bn: string | null,
    kind: LayerKind,
    src: number,
    skip = null as number | null,
  ) => {
    const s = weight(conv, 5);
    // conv weights [k, k, k, ci, co] (DHWIO); deconv weights [ci, 2, 2, 2, co]
    const ci = kind === "up" ? s[0]! : s[3]!, co = s[4]!;
    const k = GEOMETRY[kind].k;
    const spatial = kind === "up" ? s.slice(1, 4) : s.slice(0, 3);
    if (spatial.some((e) => e !== k)) {
      throw new Error(`fused V-Net inference: '${conv}.weight' has shape [${s}], expected ${k}^3`);
    }
    const layer: Layer = { conv, bn, kind, ci, co };
    layers.push(layer);
    const dst = next++;
    ops.push({ layer, src, dst, skip });
    return dst;
  };
  const block = (name: string, stages: number, x: number) => {
    for (let i = 0; i < stages; i++) x = emit(`${name}.conv${i}`, `${name}.bn${i}`, "conv", x);
    return x;
  };
  const down = (name: string, x: number) => emit(`${name}.conv`, `${name}.bn`, "down", x);
  const up = (name: string, x: number, skip: number) =>
    emit(`${name}.deconv`, `${name}.bn`, "up", x, skip);
  const x1 = block("block_one", 1, 0);
  const x2 = block("block_two", 2, down("block_one_dw", x1));
  const x3 = block("block_three", 3, down("block_two_dw", x2));
  const x4 = block("block_four", 3, down("block_three_dw", x3));
  const x5 = block("block_five", 3, down("block_four_dw", x4));
  const x6 = block("block_six", 3, up("block_five_up", x5, x4));
  const x7 = block("block_seven", 3, up("block_six_up", x6, x3));
  const x8 = block("block_eight", 2, up("block_seven_up", x7, x2));
  const x9 = block("block_nine", 1, up("block_eight_up", x8, x1));
  const h = net.heads[head];
  if (h === undefined) throw new Error(`fused V-Net inference: the network has no head ${head}`);
  if (h.activation !== "none") {
    throw new Error(`fused V-Net inference: head '${h.key}' has activation ${h.activation}`);
  }
  const logits = emit(h.key, null, "head", x9);
  return { layers, ops, logits, inChannels: layers[0]!.ci, classes: h.channels };
}

/** One timed primitive of a fused forward ({@link InferenceRunner.run} with a profile). */
export interface InferStepTime {
  /** Layer (parameter prefix, e.g. "block_two.conv1"), or "output". */
  label: string;
  /** e.g. "conv3x3x3+bn+relu", "up: depth-to-space+skip add", "reorder", "softmax (JS)". */
  kind: string;
  /** oneDNN implementation, e.g. "brgconv:avx512_core", "jit:avx2", or "reorder", "js". */
  impl: string;
  /** Wall time of the primitive (milliseconds). */
  ms: number;
}

/** A buffer a step reads or writes, resolved at run time. */
type Buf =
  | { t: "input" }
  | { t: "slot"; slot: number; floats: number }
  | { t: "weights"; entry: WeightEntry }
  | { t: "bias"; layer: Layer; wide: boolean }
  | { t: "out"; floats: number };

interface Step {
  label: string;
  kind: string;
  impl: string;
  prim: Primitive | null;
  bufs: Buf[];
  /** Instead of a primitive: JS softmax over `classes` on the output buffer. */
  softmax?: { floats: number; classes: number };
}

/** Blocked weights of one layer in one chosen layout, refreshed per weights version. */
interface WeightEntry {
  layer: Layer;
  md: MemDesc;
  buf: Float32Array;
  reorder: Primitive;
  version: number;
}

interface Plan {
  steps: Step[];
  outFloats: number;
}

const KIND_LABEL: Record<LayerKind, string> = {
  conv: "conv3x3x3+bn+relu",
  down: "conv2x2x2s2+bn+relu",
  up: "deconv2x2x2s2+bn+relu",
  head: "conv1x1x1 head",
};

/** Options of {@link InferenceRunner}. */
export interface InferenceOptions {
  /** Which head's softmax is returned (default 0, the seg head of {@link VNet}'s defaults). */
  head?: number;
  /** BatchNorm eps (VNet's default 1e-5; every method builds its V-Net with the default). */
  eps?: number;
  /** Most window-batch shapes whose primitives are kept (default 4). */
  maxPlans?: number;
  /**
   * Diagnostics and tests: force the convolutions' outputs into oneDNN's blocked nCdhw8c or
   * nCdhw16c layout (what AVX2 machines get) instead of letting oneDNN choose.
   */
  blocked?: 8 | 16;
  /** Diagnostics and tests: run the up layers as oneDNN deconvolutions (the fallback path). */
  deconv?: boolean;
}

/**
 * The fused eval-mode forward of one {@link VNet}: `run` maps NDHWC windows to NDHWC class
 * probabilities (softmax of head `head`), equal to `softmax(net.forward(x, {training:
 * false})[head])` up to float rounding.
 */
export class InferenceRunner {
  readonly #d: Dnnl;
  readonly #net: VNet;
  readonly #graph: Graph;
  readonly #eps: number;
  readonly #maxPlans: number;
  readonly #blocked: 8 | 16 | null;
  readonly #deconv: boolean;
  readonly #plans = new Map<string, Plan>();
  /** Activation buffers shared by every plan (plans run one at a time). */
  readonly #slots: Float32Array[] = [];
  #out = new Float32Array(0);
  readonly #weights = new Map<Layer, WeightEntry[]>();
  /** Folded weights in the network's own layout (DHWIO / [ci,2,2,2,co]) and biases. */
  readonly #folded = new Map<Layer, { w: Float32Array; b: Float32Array; b8?: Float32Array }>();
  /** The dataIds the folded weights were computed from. */
  #ids: object[] = [];
  #version = 0;
  /** Weights version last checked against the unfused forward by {@link fusedWindowPredictor}. */
  verifiedVersion = -1;

  /** Plan the fused forward of `net` on library `d` (no primitive is built before `run`). */
  constructor(d: Dnnl, net: VNet, opts: InferenceOptions = {}) {
    this.#d = d;
    this.#net = net;
    this.#graph = vnetGraph(net, opts.head ?? 0);
    this.#eps = opts.eps ?? 1e-5;
    this.#maxPlans = opts.maxPlans ?? 4;
    this.#blocked = opts.blocked ?? null;
    this.#deconv = opts.deconv ?? false;
  }

  /** The network this runner evaluates. */
  get network(): VNet {
    return this.#net;
  }

  /** Number of classes (channels of the probabilities). */
  get classes(): number {
    return this.#graph.classes;
  }

  /** Incremented each time the weights are re-folded (a parameter or statistic changed). */
  get version(): number {
    this.#refresh();
    return this.#version;
  }

  /** Bytes held in activation buffers, blocked weights and folded weights. */
  get bytes(): number {
    let n = this.#out.byteLength;
    for (const s of this.#slots) n += s.byteLength;
    for (const es of this.#weights.values()) for (const e of es) n += e.buf.byteLength;
    for (const f of this.#folded.values()) {
      n += f.w.byteLength + f.b.byteLength + (f.b8?.byteLength ?? 0);
    }
    return n;
  }

  /** Every variable the forward reads, in a fixed order. */
  #variables(): tf.Variable[] {
    const out: tf.Variable[] = [];
    const p = this.#net.params, b = this.#net.buffers;
    for (const l of this.#graph.layers) {
      out.push(p.get(`${l.conv}.weight`)!, p.get(`${l.conv}.bias`)!);
      if (l.bn !== null) {
        out.push(p.get(`${l.bn}.weight`)!, p.get(`${l.bn}.bias`)!);
        out.push(b.get(`${l.bn}.running_mean`)!, b.get(`${l.bn}.running_var`)!);
      }
    }
    return out;
  }

  /** Re-fold the weights when any variable was re-assigned since the last fold. */
  #refresh(): void {
    const vars = this.#variables();
    if (vars.some((v) => v === undefined || v.isDisposed)) {
      throw new Error("fused V-Net inference: the network's variables are missing or disposed");
    }
    const ids = vars.map((v) => v.dataId as object);
    if (ids.length === this.#ids.length && ids.every((id, i) => id === this.#ids[i])) return;
    const p = this.#net.params, b = this.#net.buffers;
    const values = (v: tf.Variable) => v.dataSync() as Float32Array;
    for (const l of this.#graph.layers) {
      const w = values(p.get(`${l.conv}.weight`)!), bias = values(p.get(`${l.conv}.bias`)!);
      const f = this.#folded.get(l) ?? { w: new Float32Array(w.length), b: new Float32Array(l.co) };
      if (l.bn === null) {
        f.w.set(w);
        f.b.set(bias);
      } else {
        const gamma = values(p.get(`${l.bn}.weight`)!), beta = values(p.get(`${l.bn}.bias`)!);
        const mean = values(b.get(`${l.bn}.running_mean`)!);
        const variance = values(b.get(`${l.bn}.running_var`)!);
        const s = new Float64Array(l.co);
        for (let c = 0; c < l.co; c++) {
          s[c] = gamma[c]! / Math.sqrt(variance[c]! + this.#eps);
          f.b[c] = (bias[c]! - mean[c]!) * s[c]! + beta[c]!;
        }
        // Output channels are the innermost axis of both weight layouts.
        for (let i = 0, c = 0; i < w.length; i++) {
          f.w[i] = w[i]! * s[c]!;
          if (++c === l.co) c = 0;
        }
      }
      // An up layer run as a 1x1x1 conv to 8 co channels repeats its bias per tap.
      if (l.kind === "up") {
        f.b8 ??= new Float32Array(8 * l.co);
        for (let q = 0; q < 8 * l.co; q++) f.b8[q] = f.b[q % l.co]!;
      }
      this.#folded.set(l, f);
    }
    this.#ids = ids;
    this.#version++;
  }

  /**
   * Plain (tfjs-layout) descriptor of a layer's weights: oneDNN dims [co, ci, k, k, k] over
   * DHWIO memory; for an up layer, the deconvolution view of its [ci, 2, 2, 2, co] memory
   * (`out[2d+i, ..] = sum_ci x[d, .., ci] w[ci, i, j, k, co]`), or with `asMatrix` the same
   * memory as a 1x1x1 convolution ci -> 8 co (output channel `((i*2+j)*2+k)*co + c`).
   */
  #plainWeights(l: Layer, asMatrix = false): MemDesc {
    const k = GEOMETRY[l.kind].k;
    if (asMatrix) return this.#d.mdTag([8 * l.co, l.ci, 1, 1, 1], ABI.dnnl_dhwio);
    const dims = [l.co, l.ci, k, k, k];
    if (l.kind !== "up") return this.#d.mdTag(dims, ABI.dnnl_dhwio);
    return this.#d.mdStrides(dims, [1, 8 * l.co, 4 * l.co, 2 * l.co, l.co]);
  }

  #weightEntry(l: Layer, md: MemDesc, asMatrix = false): WeightEntry {
    const list = this.#weights.get(l) ?? [];
    this.#weights.set(l, list);
    const hit = list.find((e) => this.#d.mdEqual(e.md, md));
    if (hit) return hit;
    const e: WeightEntry = {
      layer: l,
      md,
      buf: new Float32Array(this.#d.mdBytes(md) / 4),
      reorder: this.#d.reorder(this.#plainWeights(l, asMatrix), md),
      version: -1,
    };
    list.push(e);
    return e;
  }

  /** Build the primitives of one window-batch shape. */
  #plan(n: number, spatial: readonly [number, number, number]): Plan {
    const d = this.#d;
    const g = this.#graph;
    const built: Primitive[] = [];
    const steps: Step[] = [];
    const any = (x: number[]) => d.mdTag(x, ABI.dnnl_format_tag_any);
    const ndhwc = (x: number[]) => d.mdTag(x, ABI.dnnl_ndhwc);
    const floatsOf = (md: MemDesc) => d.mdBytes(md) / 4;
    // Tensors (0 = the input, negative = reordered copies): dims [n, c, d, h, w], layout,
    // buffer.
    const dims = new Map<number, number[]>();
    const mds = new Map<number, MemDesc>();
    const where = new Map<number, Buf>();
    // Input: NDHWC; with one channel that is the same memory as ncdhw, so the first
    // convolution reads it in place when it asks for either.
    const inDims = [n, g.inChannels, ...spatial];
    dims.set(0, inDims);
    mds.set(0, ndhwc(inDims));
    where.set(0, { t: "input" });
    const inAlias = g.inChannels === 1 ? d.mdTag(inDims, ABI.dnnl_ncdhw) : null;
    // Last op reading each tensor, for buffer reuse.
    const lastUse = new Map<number, number>();
    g.ops.forEach((op, i) => {
      lastUse.set(op.src, i);
      if (op.skip !== null) lastUse.set(op.skip, i);
    });
    // Buffer slots: the floats each needs (over this plan), and the free ones.
    const need: number[] = [];
    const free: number[] = [];
    const alloc = (floats: number): Buf => {
      // Best fit among free slots, else the largest free one (grown), else a new slot.
      let best = -1;
      for (const s of free) {
        const fits = need[s]! >= floats;
        if (best < 0) best = s;
        else if (fits && (need[best]! < floats || need[s]! < need[best]!)) best = s;
        else if (!fits && need[best]! < floats && need[s]! > need[best]!) best = s;
      }
      let slot: number;
      if (best >= 0) {
        free.splice(free.indexOf(best), 1);
        slot = best;
      } else {
        slot = need.length;
        need.push(0);
      }
      need[slot] = Math.max(need[slot]!, floats);
      return { t: "slot", slot, floats };
    };
    const release = (b: Buf | undefined) => {
      if (b?.t === "slot") free.push(b.slot);
    };
    const step = (s: Step) => {
      if (s.prim) built.push(s.prim);
      steps.push(s);
    };
    let tmp = -1;
    /** Tensor `id` in layout `want`: itself, or a reorder of it into a fresh buffer. */
    const inLayout = (id: number, want: MemDesc, label: string): number => {
      if (d.mdEqual(mds.get(id)!, want)) return id;
      if (id === 0 && inAlias !== null && d.mdEqual(inAlias, want)) return id;
      const b = alloc(floatsOf(want));
      const prim = d.reorder(mds.get(id)!, want);
      step({ label, kind: "reorder", impl: "reorder", prim, bufs: [where.get(id)!, b] });
      const t = tmp--;
      mds.set(t, want);
      where.set(t, b);
      return t;
    };
    /**
     * One convolution (or deconvolution) primitive of layer `l` on tensor `src`: candidate
     * (source layout, destination, post-ops) triples in order of preference; the first whose
     * implementation is not oneDNN's reference kernel wins (else the first that builds).
     * Returns it with its chosen descriptors.
     */
    const convPrim = (
      l: Layer,
      src: number,
      o: {
        deconv: boolean;
        k: number;
        s: number;
        pad: number;
        co: number;
        candidates: { dst: MemDesc; post: PostOp[] }[];
      },
    ) => {
      const sd = dims.get(src)!;
      const biasMd = d.mdTag([o.co], ABI.dnnl_a);
      // The source first in the layout its producer chose (no reorder), then as `any`.
      const srcMds = src === 0 ? [any(sd)] : [mds.get(src)!, any(sd)];
      let best: { r: ReturnType<Dnnl["primitiveChosen"]>; post: PostOp[] } | null = null;
      let firstError: unknown = null;
      search: for (const srcMd of srcMds) {
        for (const c of o.candidates) {
          const desc = new Uint8Array(ABI.sizeof_dnnl_convolution_desc_t);
          const args = [
            desc,
            ABI.dnnl_forward_inference,
            o.deconv ? ABI.dnnl_deconvolution_direct : ABI.dnnl_convolution_direct,
            srcMd,
            any([o.co, l.ci, o.k, o.k, o.k]),
            biasMd,
            c.dst,
            dimsOf([o.s, o.s, o.s]),
            dimsOf([o.pad, o.pad, o.pad]),
            dimsOf([o.pad, o.pad, o.pad]),
          ] as const;
          const qs: [number, number | MemDesc][] = [
            [ABI.DNNL_ARG_SRC, ABI.dnnl_query_src_md],
            [ABI.DNNL_ARG_WEIGHTS, ABI.dnnl_query_weights_md],
            [ABI.DNNL_ARG_BIAS, biasMd],
            [ABI.DNNL_ARG_DST, ABI.dnnl_query_dst_md],
          ];
          c.post.forEach((p, i) => {
            if (p.kind === "add") qs.push([postOpSrc1Arg(i), p.md]);
          });
          let r: ReturnType<Dnnl["primitiveChosen"]>;
          try {
            d.check(
              "(de)convolution_forward_desc_init",
              o.deconv
                ? d.sym.dnnl_deconvolution_forward_desc_init(...args)
                : d.sym.dnnl_convolution_forward_desc_init(...args),
            );
            r = d.primitiveChosen(desc, qs, null, c.post);
          } catch (e) {
            firstError ??= e;
            continue;
          }
          if (best === null) best = { r, post: c.post };
          else if (best.r.impl.startsWith("ref") && !r.impl.startsWith("ref")) {
            best.r.prim.destroy();
            best = { r, post: c.post };
          } else r.prim.destroy();
          if (!best.r.impl.startsWith("ref")) break search;
        }
      }
      if (best === null) throw firstError;
      return best;
    };
    /** Free the tensors `ts` whose last reader is op `i` (reordered copies always). */
    const releaseDead = (i: number, ts: (number | null)[]) => {
      for (const t of ts) {
        if (t === null || t === 0 || !where.has(t)) continue;
        if (t < 0 || lastUse.get(t) === i) {
          release(where.get(t));
          where.delete(t);
        }
      }
    };

    const forced = this.#blocked === null
      ? null
      : this.#blocked === 8
      ? ABI.dnnl_nCdhw8c
      : ABI.dnnl_nCdhw16c;
    const actDst = (l: Layer, dd: number[]) =>
      forced === null || l.kind === "head" ? any(dd) : d.mdTag(dd, forced);

    /** Conv/down/head layers: one primitive, ReLU post-op after the folded BN. */
    const plainLayer = (i: number, op: Op) => {
      const l = op.layer;
      const geo = GEOMETRY[l.kind];
      const sp = dims.get(op.src)!.slice(2);
      const dd = [n, l.co, ...(l.kind === "down" ? sp.map((e) => e / 2) : sp)];
      const { r } = convPrim(l, op.src, {
        deconv: false,
        ...geo,
        co: l.co,
        candidates: [{ dst: actDst(l, dd), post: l.bn === null ? [] : [{ kind: "relu" }] }],
      });
      built.push(r.prim);
      const [srcMd, weiMd, , dstMd] = r.mds as [MemDesc, MemDesc, MemDesc, MemDesc];
      const src = inLayout(op.src, srcMd, `${l.conv} input`);
      // The head writes straight into the output buffer when it chose NDHWC.
      const direct = l.kind === "head" && d.mdEqual(dstMd, ndhwc(dd));
      const out: Buf = direct ? { t: "out", floats: floatsOf(dstMd) } : alloc(floatsOf(dstMd));
      steps.push({
        label: l.conv,
        kind: KIND_LABEL[l.kind],
        impl: r.impl,
        prim: r.prim,
        bufs: [where.get(src)!, { t: "weights", entry: this.#weightEntry(l, weiMd) }, {
          t: "bias",
          layer: l,
          wide: false,
        }, out],
      });
      dims.set(op.dst, dd);
      mds.set(op.dst, dstMd);
      where.set(op.dst, out);
      releaseDead(i, [op.src, src]);
    };

    /**
     * Up layer as a 1x1x1 convolution ci -> 8 co (folded BN, ReLU post-op) into NDHWC, then a
     * depth-to-space reorder that accumulates into the skip tensor's buffer (reorder `sum`
     * post-op; the skip is dead afterwards, so the result takes its buffer). On AVX-512 this
     * is ~20 ms at the LA top level where oneDNN's deconvolution with post-ops was ~1.7 s
     * (its post-ops run in a reference loop). When the skip is not NDHWC the depth-to-space
     * goes through an NDHWC buffer and a second reorder does the add.
     */
    const upAsMatrix = (i: number, op: Op): boolean => {
      const l = op.layer;
      const sp = dims.get(op.src)!.slice(2);
      const dd = [n, l.co, ...sp.map((e) => e * 2)];
      const skipMd = mds.get(op.skip!)!;
      const md8 = ndhwc([n, 8 * l.co, ...sp]);
      let r: ReturnType<Dnnl["primitiveChosen"]>;
      try {
        ({ r } = convPrim(l, op.src, {
          deconv: false,
          k: 1,
          s: 1,
          pad: 0,
          co: 8 * l.co,
          candidates: [{ dst: md8, post: [{ kind: "relu" }] }],
        }));
      } catch {
        return false;
      }
      if (r.impl.startsWith("ref")) {
        r.prim.destroy();
        return false;
      }
      // [n, d, i, h, j, w, k, c] views of the 8co-channel NDHWC result and the NDHWC output.
      const [D, H, W] = sp as [number, number, number];
      const co = l.co;
      const view = [n, D, 2, H, 2, W, 2, co];
      const from = d.mdStrides(view, [
        D * H * W * 8 * co,
        H * W * 8 * co,
        4 * co,
        W * 8 * co,
        2 * co,
        8 * co,
        co,
        1,
      ]);
      const to = d.mdStrides(view, [
        8 * D * H * W * co,
        8 * H * W * co,
        4 * H * W * co,
        4 * W * co,
        2 * W * co,
        2 * co,
        co,
        1,
      ]);
      const direct = d.mdEqual(skipMd, ndhwc(dd));
      const made: Primitive[] = [r.prim];
      try {
        const d2s = d.reorder(from, to, direct ? [{ kind: "sum" }] : []);
        made.push(d2s);
        const add = direct ? null : d.reorder(ndhwc(dd), skipMd, [{ kind: "sum" }]);
        if (add) made.push(add);
        const [srcMd, weiMd] = r.mds as [MemDesc, MemDesc];
        const src = inLayout(op.src, srcMd, `${l.conv} input`);
        const t8 = alloc(floatsOf(md8));
        const skipBuf = where.get(op.skip!)!;
        steps.push({
          label: l.conv,
          kind: "up: conv1x1x1 to 8Co+bn+relu",
          impl: r.impl,
          prim: r.prim,
          bufs: [where.get(src)!, { t: "weights", entry: this.#weightEntry(l, weiMd, true) }, {
            t: "bias",
            layer: l,
            wide: true,
          }, t8],
        });
        if (add === null) {
          steps.push({
            label: l.conv,
            kind: "up: depth-to-space+skip add",
            impl: "reorder+sum",
            prim: d2s,
            bufs: [t8, skipBuf],
          });
        } else {
          const t1 = alloc(floatsOf(ndhwc(dd)));
          steps.push({
            label: l.conv,
            kind: "up: depth-to-space",
            impl: "reorder",
            prim: d2s,
            bufs: [t8, t1],
          });
          steps.push({
            label: l.conv,
            kind: "up: skip add",
            impl: "reorder+sum",
            prim: add,
            bufs: [t1, skipBuf],
          });
          release(t1);
        }
        built.push(...made);
        release(t8);
        // The result takes over the skip's buffer.
        dims.set(op.dst, dd);
        mds.set(op.dst, skipMd);
        where.set(op.dst, skipBuf);
        where.delete(op.skip!);
        releaseDead(i, [op.src, src]);
        return true;
      } catch (e) {
        for (const p of made) p.destroy();
        throw e;
      }
    };

    /** Up layer as oneDNN's deconvolution (fallback: its post-ops are slow, see above). */
    const upAsDeconv = (i: number, op: Op) => {
      const l = op.layer;
      const sp = dims.get(op.src)!.slice(2);
      const dd = [n, l.co, ...sp.map((e) => e * 2)];
      const skipMd = mds.get(op.skip!)!;
      const { r, post } = convPrim(l, op.src, {
        deconv: true,
        ...GEOMETRY.up,
        co: l.co,
        candidates: [
          { dst: skipMd, post: [{ kind: "relu" }, { kind: "add", md: skipMd }] },
          { dst: skipMd, post: [{ kind: "relu" }] },
        ],
      });
      built.push(r.prim);
      const [srcMd, weiMd, , dstMd] = r.mds as [MemDesc, MemDesc, MemDesc, MemDesc];
      const src = inLayout(op.src, srcMd, `${l.conv} input`);
      const out = alloc(floatsOf(dstMd));
      const fusedAdd = post.length === 2;
      const bufs: Buf[] = [where.get(src)!, { t: "weights", entry: this.#weightEntry(l, weiMd) }, {
        t: "bias",
        layer: l,
        wide: false,
      }, out];
      if (fusedAdd) bufs.push(where.get(op.skip!)!);
      steps.push({
        label: l.conv,
        kind: KIND_LABEL.up + (fusedAdd ? "+add" : ""),
        impl: r.impl,
        prim: r.prim,
        bufs,
      });
      if (!fusedAdd) {
        const bin = new Uint8Array(ABI.sizeof_dnnl_binary_desc_t);
        d.check(
          "binary_desc_init",
          d.sym.dnnl_binary_desc_init(bin, ABI.dnnl_binary_add, dstMd, skipMd, dstMd),
        );
        const add = d.primitive(bin, [[ABI.DNNL_ARG_SRC, dstMd], [ABI.DNNL_ARG_SRC_1, skipMd], [
          ABI.DNNL_ARG_DST,
          dstMd,
        ]]);
        step({
          label: l.conv,
          kind: "skip add",
          impl: "binary",
          prim: add,
          bufs: [out, where.get(op.skip!)!, out],
        });
      }
      dims.set(op.dst, dd);
      mds.set(op.dst, dstMd);
      where.set(op.dst, out);
      releaseDead(i, [op.src, src, op.skip]);
    };

    try {
      for (const [i, op] of g.ops.entries()) {
        if (op.layer.kind !== "up") plainLayer(i, op);
        else if (this.#deconv || !upAsMatrix(i, op)) upAsDeconv(i, op);
      }
      // Logits to NDHWC in the output buffer, then the softmax there.
      const ld = dims.get(g.logits)!;
      const outFloats = ld.reduce((a, b) => a * b, 1);
      if (where.get(g.logits)!.t !== "out") {
        step({
          label: "output",
          kind: "reorder",
          impl: "reorder",
          prim: d.reorder(mds.get(g.logits)!, ndhwc(ld)),
          bufs: [where.get(g.logits)!, { t: "out", floats: outFloats }],
        });
      }
      steps.push({
        label: "output",
        kind: "softmax (JS)",
        impl: "js",
        prim: null,
        bufs: [],
        softmax: { floats: outFloats, classes: g.classes },
      });
      need.forEach((f, s) => {
        if ((this.#slots[s]?.length ?? 0) < f) this.#slots[s] = new Float32Array(f);
      });
      if (this.#out.length < outFloats) this.#out = new Float32Array(outFloats);
      return { steps, outFloats };
    } catch (e) {
      for (const p of built) p.destroy();
      throw e;
    }
  }

  /** Check a window batch and return its plan (built on first use). */
  #planFor(x: Float32Array, shape: readonly number[]): Plan {
    if (shape.length !== 5) {
      throw new Error(`fused V-Net inference: input shape [${shape}] is not [N, D, H, W, C]`);
    }
    const [n, dd, hh, ww, c] = shape as [number, number, number, number, number];
    if (c !== this.#graph.inChannels) {
      throw new Error(
        `fused V-Net inference: input has ${c} channels, the network expects ${this.#graph.inChannels}`,
      );
    }
    for (const e of [dd, hh, ww]) {
      if (!(e > 0 && e % 16 === 0)) {
        throw new Error(
          `fused V-Net inference: spatial size ${e} is not a positive multiple of 16`,
        );
      }
    }
    if (!(n >= 1) || x.length !== n * dd * hh * ww * c) {
      throw new Error(`fused V-Net inference: ${x.length} input values for shape [${shape}]`);
    }
    const key = shape.join("x");
    let plan = this.#plans.get(key);
    if (plan === undefined) {
      plan = this.#plan(n, [dd, hh, ww]);
      this.#plans.set(key, plan);
      if (this.#plans.size > this.#maxPlans) {
        const [oldKey, old] = this.#plans.entries().next().value!;
        this.#plans.delete(oldKey);
        destroyPlan(old);
      }
    } else {
      this.#plans.delete(key);
      this.#plans.set(key, plan);
    }
    return plan;
  }

  /**
   * Class probabilities of the windows `x` (NDHWC `shape` = [N, D, H, W, C], D/H/W multiples of
   * 16) as NDHWC [N, D, H, W, classes]. The returned array is this runner's output buffer:
   * valid until the next `run`. With `profile`, each primitive's wall time is appended to it.
   */
  run(x: Float32Array, shape: readonly number[], profile?: InferStepTime[]): Float32Array {
    this.#refresh();
    const plan = this.#planFor(x, shape);
    const out = this.#out.subarray(0, plan.outFloats);
    const resolve = (b: Buf): Float32Array => {
      switch (b.t) {
        case "input":
          return x;
        case "slot":
          return this.#slots[b.slot]!.subarray(0, b.floats);
        case "weights": {
          const e = b.entry;
          if (e.version !== this.#version) {
            e.reorder.exec([this.#folded.get(e.layer)!.w, e.buf]);
            e.version = this.#version;
          }
          return e.buf;
        }
        case "bias": {
          const f = this.#folded.get(b.layer)!;
          return b.wide ? f.b8! : f.b;
        }
        case "out":
          return out;
      }
    };
    for (const s of plan.steps) {
      const t0 = profile ? performance.now() : 0;
      if (s.softmax) softmaxRows(out, s.softmax.classes, out);
      else {
        const bufs = s.bufs.map(resolve);
        // Weight reorders (first call of a version) are not part of the step's time.
        const t1 = profile ? performance.now() : 0;
        s.prim!.exec(bufs);
        if (profile) {
          profile.push({ label: s.label, kind: s.kind, impl: s.impl, ms: performance.now() - t1 });
        }
        continue;
      }
      if (profile) {
        profile.push({ label: s.label, kind: s.kind, impl: s.impl, ms: performance.now() - t0 });
      }
    }
    return out;
  }

  /** Each step of the plan for `shape` (building it if needed): label, kind, implementation. */
  describe(shape: readonly number[]): { label: string; kind: string; impl: string }[] {
    const n = shape.reduce((a, b) => a * b, 1);
    return this.#planFor(new Float32Array(n), shape).steps.map((s) => ({
      label: s.label,
      kind: s.kind,
      impl: s.impl,
    }));
  }

  /** Free every primitive and buffer. */
  dispose(): void {
    for (const p of this.#plans.values()) destroyPlan(p);
    this.#plans.clear();
    for (const es of this.#weights.values()) for (const e of es) e.reorder.destroy();
    this.#weights.clear();
    this.#folded.clear();
    this.#slots.length = 0;
    this.#out = new Float32Array(0);
    this.#ids = [];
  }
}

function destroyPlan(p: Plan): void {
  for (const s of p.steps) s.prim?.destroy();
}

// ---------------------------------------------------------------------------------------------
// The evaluator's hook.

/** A window predictor as the sliding-window evaluator calls it (NDHWC in, NDHWC out). */
export type WindowPredict = (
  batch: Float32Array,
  shape: readonly [number, number, number, number, number],
) => Float32Array | Promise<Float32Array>;

/** Largest |fused - unfused| probability accepted by the first-batch check. */
export const FUSED_CHECK_TOLERANCE = 1e-3;

const runners: InferenceRunner[] = [];
/** Runners kept at once (one per network; the evaluator scores one method at a time). */
const MAX_RUNNERS = 2;
let noticed = false;
const counts = { fused: 0, checked: 0, fellBack: 0 };

/**
 * Window batches the fused predictors served (`fused`), first batches checked against the
 * unfused path (`checked`), and predictors that fell back to it (`fellBack`), since start-up.
 */
export function fusedInferenceCounts(): Readonly<typeof counts> {
  return { ...counts };
}

function notice(line: string): void {
  if (noticed) return;
  noticed = true;
  Deno.stderr.writeSync(new TextEncoder().encode(line + "\n"));
}

let forced: boolean | null = null;

/**
 * Turn the fused forward on or off for this module instance (tests: the environment is shared
 * by every test file of a `deno test --parallel` process); null: `SEMISEG_FUSED_INFER` decides.
 */
export function setFusedInference(on: boolean | null): void {
  forced = on;
}

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/**
 * The V-Net whose head-0 softmax is `method.predict`, as the method declares it with the
 * optional `inferenceNetwork()` (`methods/types.ts`); null when it declares none.
 */
export function predictingNetwork(method: Method): VNet | null {
  return typeof method.inferenceNetwork === "function" ? method.inferenceNetwork() ?? null : null;
}

/** The cached runner for `net` (a new one when none, evicting the least recent). */
export function inferenceRunner(d: Dnnl, net: VNet): InferenceRunner {
  const i = runners.findIndex((r) => r.network === net);
  if (i >= 0) {
    const [r] = runners.splice(i, 1);
    runners.push(r!);
    return r!;
  }
  const r = new InferenceRunner(d, net);
  runners.push(r);
  while (runners.length > MAX_RUNNERS) runners.shift()!.dispose();
  return r;
}

/** Free every cached runner (tests; a finished evaluation may call it to return memory). */
export function disposeInferenceRunners(): void {
  while (runners.length > 0) runners.pop()!.dispose();
}

/**
 * The fused window predictor for `method`, or null when it does not apply: tfjs not on the
 * cpu backend with the native kernels, no recognisable V-Net, or `SEMISEG_FUSED_INFER=0`. The
 * first batch after each weights change is also run through `unfused` (the `method.predict`
 * path) and the fused result is used only if they agree within {@link FUSED_CHECK_TOLERANCE};
 * on a mismatch or a oneDNN failure it prints one notice line (per process) and stays on
 * `unfused` for this predictor.
 */
export function fusedWindowPredictor(
  method: Method,
  unfused: WindowPredict,
): WindowPredict | null {
  const disabled = forced === null ? env("SEMISEG_FUSED_INFER") === "0" : !forced;
  if (disabled || tf.getBackend() !== "cpu") return null;
  const d = nativeLibrary();
  if (d === null) return null;
  const net = predictingNetwork(method);
  if (net === null) return null;
  try {
    inferenceRunner(d, net);
  } catch (e) {
    notice(`fused inference off (${firstLine(e)}); evaluating with method.predict`);
    return null;
  }
  let off = false;
  return async (batch, shape) => {
    if (off) return unfused(batch, shape);
    // Looked up per batch: another network's predictor may have evicted it meanwhile.
    const runner = inferenceRunner(d, net);
    let probs: Float32Array;
    try {
      probs = runner.run(batch, shape);
    } catch (e) {
      off = true;
      counts.fellBack++;
      notice(`fused inference off (${firstLine(e)}); evaluating with method.predict`);
      return unfused(batch, shape);
    }
    const version = runner.version;
    if (runner.verifiedVersion === version) {
      counts.fused++;
      return probs;
    }
    counts.checked++;
    const ref = await unfused(batch, shape);
    let diff = probs.length === ref.length ? 0 : Infinity;
    for (let i = 0; i < ref.length && diff <= FUSED_CHECK_TOLERANCE; i++) {
      diff = Math.max(diff, Math.abs(probs[i]! - ref[i]!));
    }
    if (!(diff <= FUSED_CHECK_TOLERANCE)) {
      off = true;
      counts.fellBack++;
      notice(
        `fused inference off (differs from method.predict by ${
          diff.toExponential(2)
        } > ${FUSED_CHECK_TOLERANCE}); evaluating with method.predict`,
      );
    } else runner.verifiedVersion = version;
    return ref;
  };
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0]!.slice(0, 200);
}
