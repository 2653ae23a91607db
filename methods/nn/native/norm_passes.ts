/**
 * The element-wise passes of the fused normalisation kernels (`norm.ts`) on oneDNN: one binary
 * primitive with post-ops per pass, multi-threaded and vectorised, with per-channel (batch norm)
 * or per-sample-and-channel (instance norm) vectors broadcast over the voxels. They hold no
 * reduction, so their results do not depend on the thread count; the statistics that feed them
 * stay in `norm.ts`'s fixed-order JS loops (oneDNN's own normalisation primitives reduce in an
 * order that depends on the thread count).
 * @module
 */
import { ABI } from "./abi.ts";
import { type Dnnl, type MemDesc, type PostOp, postOpSrc1Arg, type Primitive } from "./dnnl.ts";
import { DnnlError, PrimitiveCache } from "./dnnl.ts";
import type { NormGeometry } from "./norm.ts";

/** oneDNN passes of the fused normalisation: see {@link NormPasses.forward} / `backward`. */
export class NormPasses {
  readonly #d: Dnnl;
  readonly #cache = new PrimitiveCache<Primitive>(256);
  readonly #impls: string[] = [];

  /** The primitives built so far, as "pass rows x channels: oneDNN implementation". */
  get implementations(): readonly string[] {
    return this.#impls;
  }

  constructor(d: Dnnl) {
    this.#d = d;
  }

  /**
   * A binary primitive over `rows` x `c` data with [1, c] vectors (the per-channel broadcast
   * oneDNN has jit kernels for), or null where oneDNN would run its reference kernel: the
   * [N, S, C] + [N, 1, C] broadcast of instance norm did (96 ms against 3.5 ms in JS for
   * 2 x 32^3 x 16), so instance norm runs one primitive per sample instead.
   */
  #binary(key: string, rows: number, c: number, post: (v: MemDesc) => PostOp[]): Primitive | null {
    return this.#cache.get(`${key}|${rows}|${c}`, () => {
      const d = this.#d;
      const m = { x: d.mdDense([rows, c]), v: d.mdDense([1, c]) };
      const op = new Uint8Array(ABI.sizeof_dnnl_binary_desc_t);
      d.check(
        "binary_desc_init",
        d.sym.dnnl_binary_desc_init(op, ABI.dnnl_binary_sub, m.x, m.v, m.x),
      );
      const posts = post(m.v);
      const args: [number, MemDesc][] = [[ABI.DNNL_ARG_SRC, m.x], [ABI.DNNL_ARG_SRC_1, m.v]];
      posts.forEach((p, i) => {
        if (p.kind !== "relu" && p.kind !== "sum") args.push([postOpSrc1Arg(i), p.md]);
      });
      args.push([ABI.DNNL_ARG_DST, m.x]);
      const r = d.primitiveChosen(op, args, null, posts);
      this.#impls.push(`${key} ${rows}x${c}: ${r.impl}`);
      if (r.impl.startsWith("ref")) {
        r.prim.destroy();
        throw new DnnlError(`binary: only the reference kernel (${r.impl})`, 3);
      }
      return r.prim;
    });
  }

  /**
   * Run `prim` on [x, vectors..., out] once for batch norm, or per sample for instance norm
   * (the sample's slice of the data and of each group vector).
   */
  #run(
    g: NormGeometry,
    prim: Primitive,
    x: Float32Array,
    vectors: Float32Array[],
    out: Float32Array,
  ): void {
    if (!g.perSample) {
      prim.exec([x, ...vectors, out]);
      return;
    }
    const len = g.s * g.c;
    for (let i = 0; i < g.n; i++) {
      prim.exec([
        x.subarray(i * len, (i + 1) * len),
        ...vectors.map((v) => v.subarray(i * g.c, (i + 1) * g.c)),
        out.subarray(i * len, (i + 1) * len),
      ]);
    }
  }

  /**
   * `y = act((x - center) * scale + shift)` with the group vectors [G] (G = C, or N*C for
   * instance norm) and `slope` the activation's slope for negative values (0 ReLU, the leak of
   * LeakyReLU, null for no activation). Returns false when oneDNN has no primitive for it.
   */
  forward(
    x: Float32Array,
    y: Float32Array,
    g: NormGeometry,
    center: Float32Array,
    scale: Float32Array,
    shift: Float32Array,
    slope: number | null,
  ): boolean {
    const prim = this.#binary(`f${slope}`, g.perSample ? g.s : g.n * g.s, g.c, (v) => [
      { kind: "mul", md: v },
      { kind: "add", md: v },
      ...(slope === null ? [] : [{ kind: "relu", alpha: slope } as const]),
    ]);
    if (!prim) return false;
    this.#run(g, prim, x, [center, scale, shift], y);
    return true;
  }

  /**
   * `dx = (x - center) * coef + offset + dx` in place (`dx` holds the activation-gated upstream
   * gradient times `gamma / sigma` on entry). Returns false when oneDNN has no primitive for it.
   */
  backward(
    x: Float32Array,
    dx: Float32Array,
    g: NormGeometry,
    center: Float32Array,
    coef: Float32Array,
    offset: Float32Array,
  ): boolean {
    const prim = this.#binary("b", g.perSample ? g.s : g.n * g.s, g.c, (v) => [
      { kind: "mul", md: v },
      { kind: "add", md: v },
      { kind: "sum", scale: 1 },
    ]);
    if (!prim) return false;
    this.#run(g, prim, x, [center, coef, offset], dx);
    return true;
  }

  /** Free the primitives. */
  destroy(): void {
    this.#cache.clear();
  }
}
