/**
 * Entry point of the native (oneDNN via Deno FFI) kernels for the tfjs `cpu` backend.
 *
 * {@link installNativeKernels} opens `libdnnl.so.2` (or the file `SEMISEG_DNNL_PATH` names;
 * `SEMISEG_DNNL_LIB` is an older alias), checks its major version, and replaces selected cpu
 * kernels with wrappers that run oneDNN and fall back to the original JS kernel (kept by
 * reference) for anything unsupported. When the library is missing it prints ONE notice line
 * per process (how much slower pure JS is, and the command that fixes it) and leaves tfjs pure
 * JS. `SEMISEG_NATIVE=0` forces pure JS without a notice. Needs `--allow-ffi` (and
 * `--allow-env` for the variables).
 * The same layer also carries tight-loop JS kernels where tfjs's generic ones dominate the
 * profile (`layout.ts`: Slice, Softmax) and the fused normalisation + activation kernels of
 * `norm.ts`, the one-pass SGD update of `sgd.ts` and the loss-head kernels of `loss_head.ts`
 * (softmax cross-entropy, softmax), so `--backend cpu-js` stays the pure-tfjs reference for all of them.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { DEFAULT_DNNL_LIB, Dnnl } from "./dnnl.ts";
import { conv3dKernels } from "./conv3d.ts";
import { elementwiseKernels } from "./elementwise.ts";
import { linalgKernels } from "./linalg.ts";
import { layoutKernels } from "./layout.ts";
import { normActKernels, RUNNING_STATS, runningStatsKernel } from "./norm.ts";
import { NormPasses } from "./norm_passes.ts";
import { poolLimitBytes } from "./pool.ts";
import { SGD_STEP, sgdStepKernel } from "./sgd.ts";
import {
  SOFTMAX,
  SOFTMAX_CE,
  SOFTMAX_CE_GRAD,
  SOFTMAX_GRAD,
  softmaxCEGradKernel,
  softmaxCEKernel,
  softmaxGradKernel,
  softmaxKernel,
} from "./loss_head.ts";
import type { KernelArgs, NativeImpl } from "./kernel.ts";

/** Outcome of {@link installNativeKernels}. */
export interface NativeStatus {
  /** True when oneDNN kernels are registered on the tfjs cpu backend. */
  active: boolean;
  /** Why (not) active, one line. */
  reason: string;
  /** oneDNN version (`major.minor.patch`) when active. */
  version?: string;
  /** Names of the tfjs kernels replaced. */
  kernels?: string[];
}

/** Options of {@link installNativeKernels}. */
export interface InstallOptions {
  /** Where the one "unavailable" notice goes (default: stderr). */
  notice?: (line: string) => void;
}

let dnnl: Dnnl | null = null;
let status: NativeStatus | null = null;
let noticed = false;
const originals = new Map<string, tf.KernelConfig>();
/** Kernels with no tfjs counterpart (fused ops), registered while the native layer is on. */
const FUSED: Record<string, (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[]> = {
  [SGD_STEP]: sgdStepKernel,
  [RUNNING_STATS]: runningStatsKernel,
  [SOFTMAX_CE]: softmaxCEKernel,
  [SOFTMAX_CE_GRAD]: softmaxCEGradKernel,
  [SOFTMAX]: softmaxKernel,
  [SOFTMAX_GRAD]: softmaxGradKernel,
};
const counts = new Map<string, number>();
/** The oneDNN element-wise passes of the fused normalisation kernels (made once). */
let passes: NormPasses | null = null;
/** The fused kernels this layer registered (unregistered again by uninstall). */
const fusedNames = new Set<string>();

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env: behave as if unset
  }
}

/**
 * Where the oneDNN library is looked for: `SEMISEG_DNNL_PATH` (a conda or Homebrew oneDNN 2.x,
 * a copy on a cluster), else its alias `SEMISEG_DNNL_LIB`, else the soname `libdnnl.so.2` on
 * the loader's search path.
 */
export function dnnlLibraryPath(): string {
  return env("SEMISEG_DNNL_PATH") || env("SEMISEG_DNNL_LIB") || DEFAULT_DNNL_LIB;
}

/**
 * The cost of running without the library and the one command that fixes it (measured in
 * README's CPU-speed table: a 32^3 batch-2 V-Net training step, 2 threads).
 */
export const NATIVE_MISSING_COST =
  "pure-JS tfjs cpu kernels are ~60x slower per V-Net training step (24.3 s vs 0.39 s at 32^3)";
/** The fix printed with {@link NATIVE_MISSING_COST}. */
export const NATIVE_FIX =
  "fix: sudo apt-get install libdnnl2 (Debian/Ubuntu), or SEMISEG_DNNL_PATH=/path/to/libdnnl.so.2 (a conda/Homebrew oneDNN 2.x)";

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return (msg.split("\n")[0] ?? "").slice(0, 300);
}

function stderrLine(line: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(line + "\n"));
}

/** Every native kernel, by tfjs kernel name. */
function allKernels(d: Dnnl): Record<string, NativeImpl> {
  return {
    ...conv3dKernels(d),
    ...elementwiseKernels(d),
    ...linalgKernels(d),
    ...layoutKernels(),
  };
}

/**
 * Register the oneDNN kernels on the tfjs `cpu` backend (idempotent). Returns whether they are
 * active, with a one-line reason and the library version.
 */
export function installNativeKernels(opts: InstallOptions = {}): NativeStatus {
  if (status?.active) return status;
  if (env("SEMISEG_NATIVE") === "0") {
    return status = { active: false, reason: "disabled by SEMISEG_NATIVE=0" };
  }
  const path = dnnlLibraryPath();
  try {
    dnnl ??= Dnnl.open(path);
  } catch (e) {
    // Deno's dlopen error repeats "Could not open library: " and usually starts with the path.
    const msg = firstLine(e).replaceAll("Could not open library: ", "");
    status = { active: false, reason: msg.startsWith(path) ? msg : `${path}: ${msg}` };
    if (!noticed) {
      noticed = true;
      (opts.notice ?? stderrLine)(
        `native kernels unavailable (${status.reason}): ${NATIVE_MISSING_COST}; ${NATIVE_FIX}`,
      );
    }
    return status;
  }
  const names: string[] = [];
  for (const [name, impl] of Object.entries(allKernels(dnnl))) {
    const orig = originals.get(name) ?? tf.getKernel(name, "cpu");
    if (!orig) continue;
    originals.set(name, orig);
    const js = orig.kernelFunc;
    tf.unregisterKernel(name, "cpu");
    tf.registerKernel({
      kernelName: name,
      backendName: "cpu",
      kernelFunc: (args) => {
        const out = impl(args as unknown as KernelArgs);
        if (out === null) return js(args);
        counts.set(name, (counts.get(name) ?? 0) + 1);
        return out;
      },
    });
    names.push(name);
  }
  poolLimitBytes(); // read SEMISEG_POOL_MB now: a junk value is named at start-up
  passes ??= new NormPasses(dnnl);
  for (const [name, fn] of Object.entries({ ...normActKernels(passes), ...FUSED })) {
    if (tf.getKernel(name, "cpu")) continue;
    fusedNames.add(name);
    tf.registerKernel({
      kernelName: name,
      backendName: "cpu",
      kernelFunc: (args) => {
        counts.set(name, (counts.get(name) ?? 0) + 1);
        return fn(args as unknown as KernelArgs);
      },
    });
    names.push(name);
  }
  return status = {
    active: true,
    reason: `oneDNN ${dnnl.version} (${path})`,
    version: dnnl.version,
    kernels: names,
  };
}

/** Restore the original JS kernels (pure tfjs cpu). The library stays open for a re-install. */
export function uninstallNativeKernels(): void {
  for (const [name, cfg] of originals) {
    tf.unregisterKernel(name, "cpu");
    tf.registerKernel(cfg);
  }
  originals.clear();
  for (const name of fusedNames) {
    if (tf.getKernel(name, "cpu")) tf.unregisterKernel(name, "cpu");
  }
  fusedNames.clear();
  status = null;
}

/** Status of the last {@link installNativeKernels} call, or null if none is in effect. */
export function nativeStatus(): NativeStatus | null {
  return status;
}

/**
 * The opened oneDNN library while the native kernels are installed (for whole-network plans
 * such as the fused inference forward of `infer.ts`), else null.
 */
export function nativeLibrary(): Dnnl | null {
  return status?.active ? dnnl : null;
}

/** The original JS kernel that a native kernel replaced (for tests and comparisons). */
export function jsKernel(name: string): tf.KernelConfig | undefined {
  return originals.get(name);
}

/** How many calls each native kernel served (not counting JS fallbacks), since start-up. */
export function nativeCallCounts(): Record<string, number> {
  return Object.fromEntries(counts);
}
