/**
 * Compute-backend selection for TensorFlow.js under Deno, and the provenance record that
 * every stored result carries.
 *
 * `auto` tries node-gpu, node, webgpu (only on a real hardware adapter), then cpu, printing
 * one line to stderr per fallback with the reason and the install hint. `wasm` is refused
 * for training: tfjs-backend-wasm 4.22 computes wrong Conv3DBackpropInputV2 (in its
 * `NDHWCConv3DBackpropInputV2Impl` the depth loop bound `min(out_depth, DivFloor(filter_depth,
 * stride_depth))` omits `+ xf_corner`), so every conv gradient but the first layer's would be
 * wrong. `cpu` is tfjs cpu plus the oneDNN kernels of
 * `native/install.ts` when `libdnnl.so.2` loads (one notice line when not); `cpu-js` is pure
 * tfjs cpu (as is `cpu` with `SEMISEG_NATIVE=0`).
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { installNativeKernels, uninstallNativeKernels } from "./native/install.ts";
import { openWebgpu } from "./webgpu/device.ts";
import { installWebgpuKernels } from "./webgpu/install.ts";

// Production mode: no "install tfjs-node" banner and no per-kernel debug warnings; our own
// notices (one line per fallback) say what matters.
tf.env().set("PROD", true);

/** Backends a user can ask for. */
export const BACKEND_CHOICES = [
  "auto",
  "node-gpu",
  "node",
  "webgpu",
  "wasm",
  "cpu",
  "cpu-js",
] as const;
/** One of {@link BACKEND_CHOICES}. */
export type BackendChoice = typeof BACKEND_CHOICES[number];

/** What the program ran on, attached to every result. */
export interface Provenance {
  backend: string;
  tfjsVersion: string;
  denoVersion: string;
  v8Version: string;
  os: string;
  device: string;
  /** Extra facts (e.g. GPU adapter, native kernel library) by name. */
  details: Record<string, string>;
}

/** Options for {@link initBackend}. */
export interface InitOptions {
  /** Allow backends whose training gradients are known to be wrong (wasm). Inference only. */
  inferenceOnly?: boolean;
  /** Where fallback notices go (default: stderr). */
  notice?: (line: string) => void;
  /**
   * Accept a software WebGPU adapter for an explicit `webgpu` choice, as
   * SEMISEG_WEBGPU_SOFTWARE=1 does (tests: an option, not a process-wide variable that
   * would reach other tests' `auto`).
   */
  allowSoftwareWebgpu?: boolean;
}

const INSTALL_NODE_GPU =
  "install with: deno install --allow-scripts=npm:@tensorflow/tfjs-node-gpu@4.22.0 (needs CUDA 11.2 + cuDNN 8.1)";
const INSTALL_NODE = "install with: deno install --allow-scripts=npm:@tensorflow/tfjs-node@4.22.0";

let current: Provenance | null = null;
/** Native kernel library in use on `cpu` ("none (...)" when pure JS), for the provenance. */
let nativeDetail: string | null = null;
/** Adapter and kernel facts of `webgpu`, for the provenance. */
let webgpuDetail: Record<string, string> = {};

function envOr(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env
  }
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return (msg.split("\n")[0] ?? "").slice(0, 400);
}

function defaultNotice(line: string): void {
  // Progress and notices go to stderr; results go to files/stdout. SEMISEG_NOTICES=0 silences
  // them (--jobs workers after the first: same machine, same fallbacks, printed once).
  if (envOr("SEMISEG_NOTICES") === "0") return;
  Deno.stderr.writeSync(new TextEncoder().encode(line + "\n"));
}

async function tryNode(gpu: boolean): Promise<string> {
  const pkg = gpu ? "@tensorflow/tfjs-node-gpu" : "@tensorflow/tfjs-node";
  // A dynamic import: when the native binding was never built, this throws a catchable Error
  // naming the missing tfjs_binding.node, which is our fallback trigger.
  // tfjs-node registers its kernels before loading the binding; when node-gpu failed first,
  // node re-registers them and tfjs warns once per kernel. Those warnings are noise here.
  // deno-lint-ignore no-console
  const warn = console.warn;
  // deno-lint-ignore no-console
  console.warn = () => {};
  try {
    await import(pkg);
  } catch (e) {
    // The package itself absent (e.g. the offline executable leaves it out): say so plainly
    // instead of Deno's resolver message about node_modules and auto-install.
    if (/Could not find a matching package|Cannot find module|not a dependency/.test(String(e))) {
      throw new Error(`${pkg} is not installed here`);
    }
    throw e;
  } finally {
    // deno-lint-ignore no-console
    console.warn = warn;
  }
  const ok = await tf.setBackend("tensorflow");
  if (!ok) throw new Error(`${pkg} loaded but the 'tensorflow' backend did not initialise`);
  return gpu ? "node-gpu" : "node";
}

async function tryWebgpu(allowSoftware = false): Promise<string> {
  const info = await openWebgpu({ allowSoftware });
  if (!(await tf.setBackend("webgpu"))) throw new Error("tfjs webgpu backend did not initialise");
  const kernels = installWebgpuKernels();
  webgpuDetail = {
    adapter: info.adapter,
    wgslKernels: kernels.length > 0 ? kernels.join(",") : "none (SEMISEG_WEBGPU_KERNELS=0)",
    maxStorageBufferBindingSize: String(info.maxStorageBufferBindingSize),
  };
  return "webgpu";
}

async function tryWasm(): Promise<string> {
  const wasm = await import("@tensorflow/tfjs-backend-wasm");
  const dir = new URL(
    "../../node_modules/@tensorflow/tfjs-backend-wasm/dist/",
    import.meta.url,
  );
  wasm.setWasmPaths(dir.pathname);
  if (!(await tf.setBackend("wasm"))) throw new Error("tfjs wasm backend did not initialise");
  return "wasm";
}

async function tryCpu(notice: (line: string) => void = defaultNotice): Promise<string> {
  if (!(await tf.setBackend("cpu"))) throw new Error("tfjs cpu backend did not initialise");
  const st = installNativeKernels({ notice });
  nativeDetail = st.active ? `oneDNN ${st.version}` : `none (${st.reason})`;
  return "cpu";
}

async function tryCpuJs(): Promise<string> {
  uninstallNativeKernels();
  if (!(await tf.setBackend("cpu"))) throw new Error("tfjs cpu backend did not initialise");
  nativeDetail = "none (pure-JS tfjs cpu)";
  return "cpu-js";
}

/**
 * Initialise tfjs for `choice` and return the provenance of what was selected.
 * An explicit choice that fails throws a one-line error; `auto` falls back with notices.
 */
export async function initBackend(
  choice: BackendChoice = "auto",
  opts: InitOptions = {},
): Promise<Provenance> {
  const notice = opts.notice ?? defaultNotice;
  if (!(BACKEND_CHOICES as readonly string[]).includes(choice)) {
    throw new Error(
      `--backend: unknown backend '${choice}' (expected one of ${BACKEND_CHOICES.join(", ")})`,
    );
  }
  if (choice === "wasm" && !opts.inferenceOnly) {
    throw new Error(
      "--backend wasm: refused for training: tfjs-backend-wasm 4.22 computes wrong Conv3D input gradients (use cpu, node or node-gpu)",
    );
  }
  const attempts: Record<Exclude<BackendChoice, "auto">, () => Promise<string>> = {
    "node-gpu": () => tryNode(true),
    node: () => tryNode(false),
    webgpu: () => tryWebgpu(choice === "webgpu" && opts.allowSoftwareWebgpu === true),
    wasm: tryWasm,
    cpu: () => tryCpu(notice),
    "cpu-js": tryCpuJs,
  };
  let name: string;
  if (choice === "auto") {
    const order = ["node-gpu", "node", "webgpu", "cpu"] as const;
    const hints: Record<string, string> = {
      "node-gpu": INSTALL_NODE_GPU,
      node: INSTALL_NODE,
      webgpu: "needs a hardware GPU adapter (Vulkan, Metal or D3D12 driver)",
      cpu: "",
    };
    name = "";
    for (const b of order) {
      try {
        name = await attempts[b]();
        break;
      } catch (e) {
        if (b === "cpu") {
          throw new Error(`--backend auto: no backend initialised (${firstLine(e)})`);
        }
        notice(`backend ${b} unavailable: ${firstLine(e)}; ${hints[b]}; falling back`);
      }
    }
  } else {
    try {
      name = await attempts[choice]();
    } catch (e) {
      const hint = choice === "node-gpu"
        ? `; ${INSTALL_NODE_GPU}`
        : choice === "node"
        ? `; ${INSTALL_NODE}`
        : "";
      throw new Error(`--backend ${choice}: ${firstLine(e)}${hint}`);
    }
  }
  current = makeProvenance(name);
  return current;
}

function makeProvenance(backend: string): Provenance {
  return {
    backend,
    tfjsVersion: tf.version_core,
    denoVersion: Deno.version.deno,
    v8Version: Deno.version.v8,
    os: `${Deno.build.os}-${Deno.build.arch}`,
    device: backend === "cpu" || backend === "cpu-js" || backend === "wasm"
      ? `${navigator.hardwareConcurrency} CPU threads`
      : backend === "webgpu"
      ? `WebGPU ${webgpuDetail["adapter"] ?? "adapter"}`
      : backend,
    details: backend === "cpu" && nativeDetail !== null
      ? { nativeKernels: nativeDetail, ompThreads: Deno.env.get("OMP_NUM_THREADS") ?? "default" }
      : backend === "webgpu"
      ? { ...webgpuDetail }
      : {},
  };
}

/** Provenance of the active backend (initialising `cpu` if nothing was selected yet). */
export async function provenance(): Promise<Provenance> {
  if (current === null) current = makeProvenance(await tryCpu());
  return current;
}

/** Add a fact (e.g. the native kernel library in use) to the active provenance. */
export function addProvenanceDetail(key: string, value: string): void {
  if (current) current.details[key] = value;
}
