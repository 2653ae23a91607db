/**
 * Seeded randomness for everything the suite draws: weight init, patch sampling,
 * augmentation, input noise and dropout masks. `Math.random` is never used.
 *
 * The generator is sfc32 (Chris Doty-Humphrey's Small Fast Counter, as in PractRand),
 * seeded from a 32-bit integer through splitmix32 so that nearby seeds give unrelated streams.
 * Seeds for a purpose are derived with {@link deriveSeed} from the run identity, the way
 * benchopt's `get_seed` does, so a run's numbers never depend on the order runs execute in.
 * @module
 */
import { createHash } from "node:crypto";

/** What a derived seed is for; each purpose gets an independent stream. */
export type SeedPurpose = "init" | "sampler" | "augment" | "noise" | "dropout" | "data" | string;

/**
 * Stable 32-bit seed from a base seed and the parts that identify a run and a purpose:
 * the first 4 bytes (big-endian) of SHA-256 over the JSON of `[base, ...parts]`.
 */
export function deriveSeed(base: number, ...parts: (string | number)[]): number {
  const digest = createHash("sha256").update(JSON.stringify([base, ...parts])).digest();
  return digest.readUInt32BE(0);
}

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** Serializable generator state (four 32-bit words plus the cached Gaussian). */
export interface RngState {
  s: [number, number, number, number];
  spare: number | null;
}

/** A seeded pseudo-random generator (sfc32) with the distributions the suite needs. */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  #spare: number | null = null;

  /** Seed with any 32-bit integer. */
  constructor(seed: number) {
    const sm = splitmix32(seed);
    this.#a = sm();
    this.#b = sm();
    this.#c = sm();
    this.#d = sm();
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  /** Next raw 32-bit unsigned integer. */
  nextUint32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!(n >= 1) || !Number.isInteger(n)) {
      throw new RangeError(`Rng.int: n must be a positive integer, got ${n}`);
    }
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal draw (Box-Muller, the second value cached). */
  normal(): number {
    if (this.#spare !== null) {
      const v = this.#spare;
      this.#spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.#spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Fill `out` with N(mean, std^2) draws. */
  fillNormal(out: Float32Array, mean = 0, std = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.normal();
    return out;
  }

  /** Fill `out` with U(lo, hi) draws. */
  fillUniform(out: Float32Array, lo = 0, hi = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = lo + (hi - lo) * this.uniform();
    return out;
  }

  /** A uniformly random permutation of 0..n-1 (Fisher-Yates). */
  permutation(n: number): number[] {
    const p = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = p[i]!;
      p[i] = p[j]!;
      p[j] = t;
    }
    return p;
  }

  /** Snapshot for checkpoints. */
  state(): RngState {
    return { s: [this.#a, this.#b, this.#c, this.#d], spare: this.#spare };
  }

  /** Restore a snapshot taken with {@link Rng.state}. */
  restore(st: RngState): void {
    [this.#a, this.#b, this.#c, this.#d] = st.s;
    this.#spare = st.spare;
  }
}
