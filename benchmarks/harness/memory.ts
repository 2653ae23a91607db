/**
 * Bounded memory for long training and evaluation loops.
 *
 * On the cpu backends every tensor is a typed array, so a V-Net step or a sliding-window
 * forward allocates hundreds of MB of ArrayBuffers that are dead as soon as the step ends.
 * V8 frees them only when a garbage collection runs, and it schedules collections by the JS
 * heap (tens of MB here), not by ArrayBuffer memory: measured on real LA (112x112x80 windows,
 * 16-filter V-Net), a worker's ArrayBuffer memory reached 4.5 GB after the first test case
 * with 18 MB of JS heap, and the RSS of a training run swung between 3 and 10 GB. The
 * {@link MemoryGuard} collects when memory passes a bound, which keeps it flat.
 * A collection costs tens of ms against the seconds of a real-data step; tiny runs rarely
 * reach the bound and pay nothing.
 *
 * The collector is reached without a command-line flag: V8's `--expose-gc` is set at run
 * time through `node:v8` and `gc` is read from a fresh `node:vm` context. Where that is not
 * possible the guard does nothing (one notice).
 * @module
 */
import v8 from "node:v8";
import vm from "node:vm";
import { poolLimitBytes, poolStats } from "../../methods/nn/native/pool.ts";

/** Default bound on ArrayBuffer memory before a collection, MiB (`SEMISEG_GC_MB` overrides). */
export const DEFAULT_GC_MB = 1024;

let collector: (() => void) | null | undefined;
let warned = false;

/** V8's full collector, or null when it cannot be exposed in this runtime. */
export function garbageCollector(): (() => void) | null {
  if (collector !== undefined) return collector;
  try {
    const direct = (globalThis as { gc?: () => void }).gc;
    if (typeof direct === "function") return collector = direct;
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as unknown;
    collector = typeof gc === "function" ? gc as () => void : null;
  } catch {
    collector = null;
  }
  return collector;
}

/** The bound in bytes: `SEMISEG_GC_MB` when set to a positive number, else {@link DEFAULT_GC_MB}. */
export function gcLimitBytes(env: (k: string) => string | undefined = Deno.env.get): number {
  const raw = env("SEMISEG_GC_MB");
  const mb = raw === undefined ? NaN : Number(raw);
  if (raw !== undefined && raw !== "" && !(Number.isFinite(mb) && mb > 0) && !warned) {
    warned = true;
    Deno.stderr.writeSync(
      new TextEncoder().encode(
        `SEMISEG_GC_MB=${raw}: expected a positive number of MiB; using ${DEFAULT_GC_MB}\n`,
      ),
    );
  }
  return (Number.isFinite(mb) && mb > 0 ? mb : DEFAULT_GC_MB) * 2 ** 20;
}

/** glibc's `malloc_trim`, or null off glibc (the collection alone then frees what it can). */
export function mallocTrim(): ((pad: bigint) => number) | null {
  if (trim !== undefined) return trim;
  try {
    if (Deno.build.os !== "linux") return trim = null;
    const lib = Deno.dlopen("libc.so.6", {
      malloc_trim: { parameters: ["usize"], result: "i32" },
    });
    trim = (pad: bigint) => lib.symbols.malloc_trim(pad);
  } catch {
    trim = null;
  }
  return trim;
}
let trim: ((pad: bigint) => number) | null | undefined;

/** Resident and ArrayBuffer bytes of this process now. */
export interface MemorySample {
  rss: number;
  external: number;
}

/**
 * The process's resident and ArrayBuffer bytes less the native kernels' pooled free output
 * buffers (methods/nn/native/pool.ts): those are kept for reuse on purpose, bounded by their
 * own limit, and a collection would not free them.
 */
export function liveMemory(): MemorySample {
  const m = Deno.memoryUsage(), pooled = poolStats().freeBytes;
  return { rss: m.rss - pooled, external: m.external - pooled };
}

/**
 * Keeps a long loop's memory flat: when the resident size or ArrayBuffer memory has grown by
 * more than the bound since the last collection (what survived it, e.g. the loaded cases, is
 * the baseline), runs V8's collector and then glibc's `malloc_trim`, which hands the freed
 * buffers' pages back to the system (glibc keeps freed blocks below its mmap threshold, up to
 * 32 MB, in its arenas: measured on a real-LA V-Net step, 112x112x80 batch 2, the RSS grew
 * 1.5 -> 2.3 -> 2.9 GB over three steps without it and stayed at 255 MB with it). Call
 * {@link MemoryGuard.check} once per training step or predicted window batch.
 */
export class MemoryGuard {
  /** Collections run so far. */
  collections = 0;
  readonly #gc: (() => void) | null;
  readonly #trim: ((pad: bigint) => number) | null;
  readonly #sample: () => MemorySample;
  #baseline: MemorySample;
  constructor(
    readonly limitBytes: number = gcLimitBytes(),
    gc = garbageCollector(),
    trimFn = mallocTrim(),
    sample: () => MemorySample = liveMemory,
  ) {
    this.#gc = gc;
    this.#trim = trimFn;
    this.#sample = sample;
    this.#baseline = sample();
  }
  /** Whether a collector is available (else {@link check} never collects). */
  get active(): boolean {
    return this.#gc !== null;
  }
  /** Collect if memory grew past the bound; true when it collected. */
  check(): boolean {
    if (this.#gc === null) return false;
    const now = this.#sample();
    if (
      now.rss <= this.#baseline.rss + this.limitBytes &&
      now.external <= this.#baseline.external + this.limitBytes
    ) return false;
    this.collect();
    return true;
  }
  /** Collect now and take what survives as the new baseline. */
  collect(): void {
    this.#gc?.();
    this.#trim?.(0n);
    this.collections++;
    this.#baseline = this.#sample();
  }
}

let shared: MemoryGuard | undefined;

/** The process's guard (one bound for training and evaluation alike). */
export function memoryGuard(): MemoryGuard {
  return shared ??= new MemoryGuard();
}

/** Replace the process's guard, e.g. with another bound (tests); returns the new one. */
export function useMemoryGuard(guard: MemoryGuard): MemoryGuard {
  return shared = guard;
}

/** Reset this process's peak resident size (Linux `/proc/self/clear_refs`); false if unsupported. */
export function resetPeakRss(): boolean {
  try {
    Deno.writeTextFileSync("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}

/** This process's peak resident size since the last reset (Linux VmHWM), NaN if unknown. */
export function peakRssBytes(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/**
 * Resident bytes of a worker besides its cases and step: the Deno runtime, tfjs and one
 * method's weights and optimiser state (measured 250-600 MB for the V-Net methods).
 */
export const WORKER_BASE_BYTES = 0.5 * 2 ** 30;

/**
 * Peak bytes one bench worker is expected to hold: its base, the cases it loads and keeps
 * (a worker caches every case of the split it has read), the largest step working set of its
 * configurations, the guard's bound on dead buffers between collections and the native
 * kernels' bound on pooled free output buffers.
 */
export function workerPeakBytes(
  caseBytes: number,
  stepBytes: number,
  limit = gcLimitBytes(),
  pool = poolLimitBytes(),
) {
  return WORKER_BASE_BYTES + caseBytes + stepBytes + limit + pool;
}
