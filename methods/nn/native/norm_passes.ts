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
import { PrimitiveCache } from "./dnnl.ts";
import type { NormGeometry } from "./norm.ts";

/** oneDNN passes of the fused normalisation: see {@link NormPasses.forward} / `backward`. */
export class NormPasses {
  readonly #d: Dnnl;
  readonly #cache = new PrimitiveCache<Primitive>(256);

  constructor(d: Dnnl) {
    this.#d = d;
  }

  /** Descriptors of the data ([rows, C] or [N, S, C]) and of the group vectors. */
  #mds(g: NormGeometry): { x: MemDesc; v: MemDesc } {
    const d = this.#d;
    return g.perSample
      ? { x: d.mdDense([g.n, g.s, g.c]), v: d.mdDense([g.n, 1, g.c]) }
      : { x: d.mdDense([g.n * g.s, g.c]), v: d.mdDense([1, g.c]) };
  }

  #binary(key: string, g: NormGeometry, post: (v: MemDesc) => PostOp[]): Primitive | null {
    return this.#cache.get(`${key}|${g.n}|${g.s}|${g.c}|${g.perSample}`, () => {
      const d = this.#d;
      const m = this.#mds(g);
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
      return d.primitiveChosen(op, args, null, posts).prim;
    });
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
    const prim = this.#binary(`f${slope}`, g, (v) => [
      { kind: "mul", md: v },
      { kind: "add", md: v },
      ...(slope === null ? [] : [{ kind: "relu", alpha: slope } as const]),
    ]);
    if (!prim) return false;
    prim.exec([x, center, scale, shift, y]);
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
    const prim = this.#binary("b", g, (v) => [
      { kind: "mul", md: v },
      { kind: "add", md: v },
      { kind: "sum", scale: 1 },
    ]);
    if (!prim) return false;
    prim.exec([x, center, coef, offset, dx]);
    return true;
  }

  /** Free the primitives. */
  destroy(): void {
    this.#cache.clear();
  }
}
