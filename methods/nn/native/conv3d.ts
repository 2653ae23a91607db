/**
 * oneDNN implementations of tfjs's Conv3D, Conv3DBackpropInputV2 and Conv3DBackpropFilterV2
 * for the cpu backend. tfjs's NDHWC activations and DHWIO filters map directly onto oneDNN's
 * `ndhwc` / `dhwio` tags (zero-copy). Dilated convolutions and anything oneDNN refuses return
 * `null` (JS fallback).
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { ABI } from "./abi.ts";
import { dimsOf, type Dnnl, type Primitive, PrimitiveCache } from "./dnnl.ts";
import { f32, type KernelArgs, type NativeImpl } from "./kernel.ts";
import { giveScratch, output, scratch } from "./pool.ts";
import { layoutReader } from "./md_layout.ts";

type Shape5 = [number, number, number, number, number];
type Conv3DInfo = ReturnType<typeof tf.backend_util.computeConv3DInfo>;

interface Geometry {
  src: number[];
  wei: number[];
  dst: number[];
  strides: BigInt64Array<ArrayBuffer>;
  padL: BigInt64Array<ArrayBuffer>;
  padR: BigInt64Array<ArrayBuffer>;
  key: string;
}

function geometry(info: Conv3DInfo): Geometry | null {
  if (info.dilationDepth !== 1 || info.dilationHeight !== 1 || info.dilationWidth !== 1) {
    return null;
  }
  const p = info.padInfo;
  const g = {
    src: [info.batchSize, info.inChannels, info.inDepth, info.inHeight, info.inWidth],
    wei: [info.outChannels, info.inChannels, info.filterDepth, info.filterHeight, info.filterWidth],
    dst: [info.batchSize, info.outChannels, info.outDepth, info.outHeight, info.outWidth],
    strides: [info.strideDepth, info.strideHeight, info.strideWidth],
    padL: [p.front, p.top, p.left],
    padR: [p.back, p.bottom, p.right],
  };
  return {
    src: g.src,
    wei: g.wei,
    dst: g.dst,
    strides: dimsOf(g.strides),
    padL: dimsOf(g.padL),
    padR: dimsOf(g.padR),
    key: JSON.stringify(g),
  };
}

/** Which layouts the convolutions use (`SEMISEG_CONV_LAYOUT`). */
export type ConvLayout = "plain" | "blocked" | "auto";

/**
 * A convolution primitive plus the reorders between tfjs's plain layouts (ndhwc, dhwio) and
 * the layouts its implementation chose. Inputs are reordered into fresh buffers, the output
 * out of one; with plain layouts nothing is copied.
 */
export class ConvExec {
  constructor(
    readonly prim: Primitive,
    /** oneDNN implementation name, e.g. "jit:avx2", "gemm:jit". */
    readonly impl: string,
    readonly pre: (Primitive | null)[],
    readonly post: Primitive | null,
    readonly floats: number[],
  ) {}

  /** Run on plain buffers [in0, in1, out]. */
  exec(bufs: Float32Array[]): void {
    const args = bufs.map((b, i) => {
      if (i === bufs.length - 1) return this.post ? scratch(this.floats[i]!) : b;
      const r = this.pre[i];
      if (!r) return b;
      const t = scratch(this.floats[i]!);
      r.exec([b, t]);
      return t;
    });
    this.prim.exec(args);
    if (this.post) this.post.exec([args[args.length - 1]!, bufs[bufs.length - 1]!]);
    args.forEach((t, i) => {
      if (t !== bufs[i]) giveScratch(t);
    });
  }

  /** Free the primitives. */
  destroy(): void {
    this.prim.destroy();
    for (const r of this.pre) r?.destroy();
    this.post?.destroy();
  }
}

/** Convolution kind: forward, backward-data, backward-weights. */
export type Kind = "f" | "d" | "w";
/** A convolution tensor: input, weights, output. */
export type Role = "src" | "wei" | "dst";

/** Execution arguments of each conv kind: id, the query for its chosen md, its tensor role. */
const ARGS: Record<Kind, [number, number, Role][]> = {
  f: [
    [ABI.DNNL_ARG_SRC, ABI.dnnl_query_src_md, "src"],
    [ABI.DNNL_ARG_WEIGHTS, ABI.dnnl_query_weights_md, "wei"],
    [ABI.DNNL_ARG_DST, ABI.dnnl_query_dst_md, "dst"],
  ],
  d: [
    [ABI.DNNL_ARG_DIFF_DST, ABI.dnnl_query_diff_dst_md, "dst"],
    [ABI.DNNL_ARG_WEIGHTS, ABI.dnnl_query_weights_md, "wei"],
    [ABI.DNNL_ARG_DIFF_SRC, ABI.dnnl_query_diff_src_md, "src"],
  ],
  w: [
    [ABI.DNNL_ARG_SRC, ABI.dnnl_query_src_md, "src"],
    [ABI.DNNL_ARG_DIFF_DST, ABI.dnnl_query_diff_dst_md, "dst"],
    [ABI.DNNL_ARG_DIFF_WEIGHTS, ABI.dnnl_query_diff_weights_md, "wei"],
  ],
};

/** One conv primitive built: kind (f, d, w), geometry key, layout and implementation. */
export interface BuiltConv {
  kind: Kind;
  geometry: string;
  blocked: boolean;
  impl: string;
  /** The tensors (src, wei, dst) reordered around each call (none: oneDNN's layout is tfjs's). */
  reordered: Role[];
}
const built: BuiltConv[] = [];

/** The conv primitives built so far in this process (most recent last; at most 256). */
export function convPrimitivesBuilt(): readonly BuiltConv[] {
  return built;
}

function layoutFromEnv(): ConvLayout {
  let v: string | undefined;
  try {
    v = Deno.env.get("SEMISEG_CONV_LAYOUT");
  } catch { /* no --allow-env */ }
  if (v === undefined || v === "" || v === "plain" || v === "blocked" || v === "auto") {
    return v === "plain" || v === "blocked" ? v : "auto";
  }
  Deno.stderr.writeSync(
    new TextEncoder().encode(
      `SEMISEG_CONV_LAYOUT=${v}: expected plain, blocked or auto; using auto\n`,
    ),
  );
  return "auto";
}

/**
 * Whether "auto" keeps the blocked backward-weights primitive whose implementation is `impl`:
 * yes for oneDNN's AVX-512 direct kernels (nCdhw16c), no otherwise (gemm on the plain buffers).
 * Measured with `deno task perf` on a 2-core AMD EPYC with AVX-512 (`jit:avx512_core`): the
 * blocked kernel with its reorders took 39 ms against gemm's 58 ms per 32^3 batch-2 step and 134
 * against 234 ms at 64x64x48; on the AVX2 machine this layer was developed on gemm was faster.
 * A fixed rule, not a timing race, so a machine always runs the same kernels (same bits).
 */
export function blockedWeightsWins(impl: string): boolean {
  return impl.startsWith("jit:avx512");
}

/**
 * Build the three conv3d kernels on library `d`. Layouts: "plain" runs oneDNN on tfjs's
 * ndhwc/dhwio buffers (zero-copy; it then picks gemm-based kernels, and for large volumes its
 * reference kernel: backward-data at 112x112x80 took 118 s a call); "blocked" lets it choose
 * (format_tag_any: blocked nCdhw8c layouts for its direct jit kernels) with reorders around
 * each call; "auto" (default) is blocked for forward and backward-data (3-4x faster than gemm
 * even with the reorders), and for backward-weights blocked where that is an AVX-512 kernel
 * ({@link blockedWeightsWins}), else plain (gemm was faster there) unless that would be the
 * reference kernel. Measured with `deno task perf` (see the issue notes).
 */
export function conv3dKernels(
  d: Dnnl,
  layout: ConvLayout = layoutFromEnv(),
): Record<string, NativeImpl> {
  const cache = new PrimitiveCache<ConvExec>();
  // A chosen layout that puts every element where tfjs's plain one does (e.g. nCdhw16c at 16
  // channels) needs no reorder: the plain buffer is handed to the primitive as it is.
  const reader = layoutReader(d);
  const same = (a: ReturnType<typeof d.mdTag>, b: ReturnType<typeof d.mdTag>): boolean =>
    d.mdEqual(a, b) || (reader?.(a, b) ?? false);
  type Mds = Record<Role, ReturnType<typeof d.mdTag>>;
  const plainMds = (g: Geometry): Mds => ({
    src: d.mdTag(g.src, ABI.dnnl_ndhwc),
    wei: d.mdTag(g.wei, ABI.dnnl_dhwio),
    dst: d.mdTag(g.dst, ABI.dnnl_ndhwc),
  });
  const anyMds = (g: Geometry): Mds => ({
    src: d.mdTag(g.src, ABI.dnnl_format_tag_any),
    wei: d.mdTag(g.wei, ABI.dnnl_format_tag_any),
    dst: d.mdTag(g.dst, ABI.dnnl_format_tag_any),
  });
  const opDesc = (kind: Kind, g: Geometry, m: Mds): Uint8Array<ArrayBuffer> => {
    const op = new Uint8Array(ABI.sizeof_dnnl_convolution_desc_t);
    const alg = ABI.dnnl_convolution_direct;
    if (kind === "f") {
      d.check(
        "convolution_forward_desc_init",
        d.sym.dnnl_convolution_forward_desc_init(
          op,
          ABI.dnnl_forward_training,
          alg,
          m.src,
          m.wei,
          null,
          m.dst,
          g.strides,
          g.padL,
          g.padR,
        ),
      );
    } else if (kind === "d") {
      d.check(
        "convolution_backward_data_desc_init",
        d.sym.dnnl_convolution_backward_data_desc_init(
          op,
          alg,
          m.src,
          m.wei,
          m.dst,
          g.strides,
          g.padL,
          g.padR,
        ),
      );
    } else {
      d.check(
        "convolution_backward_weights_desc_init",
        d.sym.dnnl_convolution_backward_weights_desc_init(
          op,
          alg,
          m.src,
          m.wei,
          null,
          m.dst,
          g.strides,
          g.padL,
          g.padR,
        ),
      );
    }
    return op;
  };
  const build = (kind: Kind, g: Geometry, blocked: boolean): ConvExec => {
    const plain = plainMds(g);
    const m = blocked ? anyMds(g) : plain;
    const op = opDesc(kind, g, m);
    // A backward primitive needs the forward primitive descriptor as a hint (kept alive by it).
    const hint = kind === "f" ? null : d.primitiveDesc(opDesc("f", g, m));
    let r: ReturnType<typeof d.primitiveChosen>;
    try {
      r = d.primitiveChosen(op, ARGS[kind].map(([a, q]) => [a, q] as const), hint);
    } catch (e) {
      if (hint) d.destroyDesc(hint);
      throw e;
    }
    const roles = ARGS[kind].map(([, , role]) => role);
    const last = roles.length - 1;
    const pre = roles.map((role, i) =>
      i === last || same(plain[role], r.mds[i]!) ? null : d.reorder(plain[role], r.mds[i]!)
    );
    const post = same(r.mds[last]!, plain[roles[last]!])
      ? null
      : d.reorder(r.mds[last]!, plain[roles[last]!]);
    const reordered = roles.filter((_, i) => (i === last ? post : pre[i]) !== null);
    built.push({ kind, geometry: g.key, blocked, impl: r.impl, reordered });
    if (built.length > 256) built.shift();
    return new ConvExec(r.prim, r.impl, pre, post, r.mds.map((md) => d.mdBytes(md) / 4));
  };
  const get = (kind: Kind, g: Geometry): ConvExec | null =>
    cache.get(kind + g.key, () => {
      if (layout === "blocked" || (layout === "auto" && kind !== "w")) {
        return build(kind, g, true);
      }
      if (layout === "auto") {
        const b = build(kind, g, true);
        if (blockedWeightsWins(b.impl)) return b;
        b.destroy();
      }
      const p = build(kind, g, false);
      if (layout === "plain" || !p.impl.startsWith("ref")) return p;
      p.destroy();
      return build(kind, g, true);
    });
  /**
   * One tfjs conv kernel of `kind`: its two input tensors (in exec order) and, from the inputs
   * and attributes, the forward geometry (x and filter shapes, dilations) and the output shape
   * (null: the forward output).
   */
  const kernel = (
    kind: Kind,
    names: [string, string],
    shapes: (
      ins: tf.NamedTensorInfoMap,
      attrs: tf.NamedAttrMap,
    ) => [Shape5, Shape5, number | [number, number, number], Shape5 | null],
  ): NativeImpl =>
  ({ inputs, backend, attrs }: KernelArgs) => {
    const a = inputs[names[0]], b = inputs[names[1]];
    const av = f32(backend, a), bv = f32(backend, b);
    if (!a || !b || !av || !bv) return null;
    const [xs, ws, dilations, out] = shapes(inputs, attrs);
    const info = tf.backend_util.computeConv3DInfo(
      xs,
      ws,
      attrs["strides"] as [number, number, number],
      dilations,
      attrs["pad"] as "valid" | "same",
    );
    const g = geometry(info);
    const exec = g && get(kind, g);
    if (!exec) return null;
    const outShape: number[] = out ? [...out] : info.outShape;
    const y = output(backend, tf.util.sizeFromShape(outShape));
    exec.exec([av, bv, y]);
    return backend.makeTensorInfo(outShape, "float32", y);
  };
  const shape5 = (t: tf.TensorInfo | undefined) => t!.shape as Shape5;

  return {
    Conv3D: kernel("f", ["x", "filter"], (ins, at) => [
      shape5(ins["x"]),
      shape5(ins["filter"]),
      at["dilations"] as [number, number, number],
      null,
    ]),
    Conv3DBackpropInputV2: kernel("d", ["dy", "filter"], (ins, at) => [
      at["inputShape"] as Shape5,
      shape5(ins["filter"]),
      1,
      at["inputShape"] as Shape5,
    ]),
    Conv3DBackpropFilterV2: kernel("w", ["x", "dy"], (ins, at) => [
      shape5(ins["x"]),
      at["filterShape"] as Shape5,
      1,
      at["filterShape"] as Shape5,
    ]),
  };
}
