/**
 * Entry point of the project's WGSL kernels for tfjs's `webgpu` backend, in the pattern of the
 * native cpu layer (`../native/install.ts`): tfjs kernels are replaced by wrappers that run our
 * kernel and hand anything unsupported back to tfjs's own kernel (kept by reference); fused
 * kernels with no tfjs counterpart (normalisation + activation, SGD) are registered under the
 * names the model code already looks for (`hasFusedNormAct`, `hasFusedSgd`), so model code is
 * unchanged. `SEMISEG_WEBGPU_KERNELS=0` keeps tfjs's stock webgpu kernels (for comparison).
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { GpuImpl, GpuKernelArgs } from "./gpu.ts";
import { conv3dKernels } from "./conv3d.ts";
import { layoutKernels } from "./layout.ts";
import { normKernels } from "./norm.ts";
import { reduceKernels } from "./reduce.ts";
import { sgdKernels } from "./sgd.ts";

/** Kernel groups: replacements of tfjs kernels, and fused kernels of our own. */
export interface KernelSet {
  replace: Record<string, GpuImpl>;
  fused: Record<string, (args: GpuKernelArgs) => tf.TensorInfo | tf.TensorInfo[]>;
}

const originals = new Map<string, tf.KernelConfig>();
const fusedNames = new Set<string>();
const counts = new Map<string, number>();
let installed = false;

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** Register our WGSL kernels on the `webgpu` backend (idempotent); returns their names. */
export function installWebgpuKernels(): string[] {
  if (installed) return [...originals.keys(), ...fusedNames];
  if (env("SEMISEG_WEBGPU_KERNELS") === "0") return [];
  const sets: KernelSet[] = [
    {
      replace: { ...conv3dKernels(), ...layoutKernels(), ...reduceKernels() },
      fused: { ...normKernels(), ...sgdKernels() },
    },
  ];
  for (const set of sets) {
    for (const [name, impl] of Object.entries(set.replace)) {
      const orig = originals.get(name) ?? tf.getKernel(name, "webgpu");
      if (!orig) continue;
      originals.set(name, orig);
      tf.unregisterKernel(name, "webgpu");
      tf.registerKernel({
        kernelName: name,
        backendName: "webgpu",
        kernelFunc: (args) => {
          const out = impl(args as unknown as GpuKernelArgs);
          if (out === null) return orig.kernelFunc(args);
          counts.set(name, (counts.get(name) ?? 0) + 1);
          return out;
        },
      });
    }
    for (const [name, fn] of Object.entries(set.fused)) {
      if (tf.getKernel(name, "webgpu")) continue;
      tf.registerKernel({
        kernelName: name,
        backendName: "webgpu",
        kernelFunc: (args) => {
          counts.set(name, (counts.get(name) ?? 0) + 1);
          return fn(args as unknown as GpuKernelArgs);
        },
      });
      fusedNames.add(name);
    }
  }
  installed = true;
  return [...originals.keys(), ...fusedNames];
}

/** Restore tfjs's stock webgpu kernels and drop the fused ones. */
export function uninstallWebgpuKernels(): void {
  for (const [name, cfg] of originals) {
    tf.unregisterKernel(name, "webgpu");
    tf.registerKernel(cfg);
  }
  originals.clear();
  for (const name of fusedNames) tf.unregisterKernel(name, "webgpu");
  fusedNames.clear();
  installed = false;
}

/** Calls each of our kernels served (not counting fall-backs to tfjs), since start-up. */
export function webgpuCallCounts(): Record<string, number> {
  return Object.fromEntries(counts);
}
