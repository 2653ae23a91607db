/**
 * `deno task doctor [--data-dir DIR]`: what this machine can run, one line per capability (the
 * convention of `flutter doctor` / `brew doctor`): Deno, each compute backend (node-gpu, node,
 * webgpu's adapter, the cpu backend's native oneDNN kernels), PyTorch for perf and the
 * conformance tests, Chromium for the report test, sbatch for SLURM, xz and git, and the
 * dataset roots found. Each missing one says how to get it. A report: the exit code is 0
 * (2 only for a bad flag). Takes a few seconds (the slowest check imports torch).
 * @module
 */
import { dirname, join } from "node:path";
import { DATASETS } from "../datasets/mod.ts";
import { isDir } from "../datasets/common.ts";
import { Dnnl } from "../methods/nn/native/dnnl.ts";
import { dnnlLibraryPath, NATIVE_FIX, NATIVE_MISSING_COST } from "../methods/nn/native/install.ts";
import { describeAdapter } from "../methods/nn/webgpu/device.ts";
import { parseFlags } from "./harness/flags.ts";
import { cpuModel, loadedLibraryFile, probeCommand, which } from "./harness/machine.ts";

/** The Deno version this project is built and tested with. */
export const PINNED_DENO = "2.9.6";

/** One capability: found or not, what was found, and the fix when it is missing. */
export interface Check {
  name: string;
  state: "ok" | "missing" | "info";
  detail: string;
  fix?: string;
}

/** `[state] name: detail; fix: ...` on one line. */
export function formatCheck(c: Check): string {
  return `[${c.state}] ${c.name}: ${c.detail}${c.fix ? `; fix: ${c.fix}` : ""}`;
}

function envOr(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return (msg.split("\n")[0] ?? "").slice(0, 300);
}

function denoCheck(): Check {
  const v = Deno.version;
  const detail = `${v.deno} (v8 ${v.v8}, typescript ${v.typescript})`;
  if (v.deno.split(".").slice(0, 2).join(".") === PINNED_DENO.split(".").slice(0, 2).join(".")) {
    return { name: "deno", state: "ok", detail };
  }
  return {
    name: "deno",
    state: "info",
    detail: `${detail}; this project is tested with ${PINNED_DENO}`,
    fix: `npm install -g deno@${PINNED_DENO}`,
  };
}

function memoryLine(): string {
  const gb = (b: number) => `${(b / 2 ** 30).toFixed(1)} GB`;
  try {
    const m = Deno.systemMemoryInfo();
    return `memory ${gb(m.total)}, ${gb(m.available)} available`;
  } catch {
    return "memory unknown";
  }
}

function cpuCheck(): Check {
  const threads = navigator.hardwareConcurrency;
  const omp = envOr("OMP_NUM_THREADS");
  return {
    name: "cpu",
    state: "info",
    detail: `${cpuModel()}, ${threads} threads${
      omp === undefined ? "" : `, OMP_NUM_THREADS=${omp}`
    }; ${memoryLine()}; --jobs auto runs up to ${threads} worker(s), one per core, fewer when the memory a plan's workers need (measured by its estimate) does not fit`,
  };
}

/** Where a tfjs-node package's compiled binding would be, when the package is installed. */
function nodeBinding(pkg: string): { installed: boolean; binding: string | null } {
  let entry: string;
  try {
    entry = new URL(import.meta.resolve(pkg)).pathname;
  } catch {
    return { installed: false, binding: null };
  }
  const root = dirname(dirname(entry)); // .../<pkg>/dist/index.js -> .../<pkg>
  const lib = join(root, "lib");
  try {
    for (const d of Deno.readDirSync(lib)) {
      const f = join(lib, d.name, "tfjs_binding.node");
      try {
        if (Deno.statSync(f).isFile) return { installed: true, binding: f };
      } catch {
        // not in this folder
      }
    }
  } catch {
    // no lib/: never built
  }
  return { installed: isDir(root), binding: null };
}

function nodeCheck(gpu: boolean): Check {
  const pkg = gpu ? "@tensorflow/tfjs-node-gpu" : "@tensorflow/tfjs-node";
  const name = gpu ? "backend node-gpu" : "backend node";
  const needs = gpu
    ? "legacy route: NVIDIA <= Ampere with CUDA 11.2 + cuDNN 8.1"
    : "libtensorflow CPU";
  const fix = `deno install --allow-scripts=npm:${pkg}@4.22.0${
    gpu ? " (needs CUDA 11.2 + cuDNN 8.1)" : ""
  }`;
  const b = nodeBinding(pkg);
  if (b.binding) {
    return {
      name,
      state: "ok",
      detail: `${pkg} binding present (${b.binding}; ${needs}; loaded only by a run)`,
    };
  }
  return {
    name,
    state: "missing",
    detail: b.installed
      ? `${pkg} installed but its binding (tfjs_binding.node) was never built (${needs})`
      : `${pkg} is not installed here (${needs})`,
    fix,
  };
}

async function webgpuCheck(): Promise<Check> {
  const name = "backend webgpu";
  const gpu = (navigator as unknown as { gpu?: GPU }).gpu;
  if (!gpu) {
    return {
      name,
      state: "missing",
      detail: "navigator.gpu is absent (this Deno has no WebGPU)",
      fix: `use the official Deno ${PINNED_DENO} build`,
    };
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((r) => {
    timer = setTimeout(() => r("timeout"), 6000);
  });
  let adapter: GPUAdapter | null | "timeout";
  try {
    adapter = await Promise.race([
      gpu.requestAdapter({ powerPreference: "high-performance" }),
      timeout,
    ]);
  } catch (e) {
    adapter = null;
    clearTimeout(timer);
    return {
      name,
      state: "missing",
      detail: `requestAdapter failed: ${firstLine(e)}`,
      fix: "a GPU with a Vulkan (Linux), Metal (macOS) or D3D12 (Windows) driver",
    };
  }
  clearTimeout(timer);
  if (adapter === "timeout" || adapter === null) {
    return {
      name,
      state: "missing",
      detail: adapter === null ? "no WebGPU adapter" : "no WebGPU adapter within 6 s",
      fix: "a GPU with a Vulkan (Linux), Metal (macOS) or D3D12 (Windows) driver",
    };
  }
  const { text, software } = describeAdapter(adapter.info as unknown as Record<string, string>);
  if (software) {
    const allowed = envOr("SEMISEG_WEBGPU_SOFTWARE") === "1";
    return {
      name,
      state: "missing",
      detail:
        `only a software adapter (${text}): runs the WGSL kernels on the CPU, slower than cpu; ${
          allowed ? "used because SEMISEG_WEBGPU_SOFTWARE=1" : "auto skips it"
        } (the webgpu tests use it)`,
      fix: "a hardware GPU with a Vulkan/Metal/D3D12 driver (Linux: the vendor's Vulkan ICD)",
    };
  }
  const lim = adapter.limits;
  return {
    name,
    state: "ok",
    detail: `hardware adapter ${text} (maxStorageBufferBindingSize ${
      (lim.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)
    } MiB)`,
  };
}

function nativeCheck(): Check {
  const name = "backend cpu";
  const path = dnnlLibraryPath();
  const via = envOr("SEMISEG_DNNL_PATH")
    ? " (SEMISEG_DNNL_PATH)"
    : envOr("SEMISEG_DNNL_LIB")
    ? " (SEMISEG_DNNL_LIB)"
    : "";
  const disabled = envOr("SEMISEG_NATIVE") === "0"
    ? "; disabled in this shell by SEMISEG_NATIVE=0"
    : "";
  try {
    const d = Dnnl.open(path);
    const file = loadedLibraryFile("libdnnl") ?? path;
    return {
      name,
      state: "ok",
      detail: `native kernels: oneDNN ${d.version} (${path}${via}${
        file === path ? "" : ` -> ${file}`
      })${disabled}`,
    };
  } catch (e) {
    const msg = firstLine(e).replaceAll("Could not open library: ", "");
    return {
      name,
      state: "missing",
      detail: `native kernels unavailable (${
        msg.startsWith(path) ? msg : `${path}${via}: ${msg}`
      }): ${NATIVE_MISSING_COST}`,
      fix: NATIVE_FIX.replace(/^fix: /, ""),
    };
  }
}

const TORCH_PROBE =
  "import torch; print(torch.__version__); c = torch.cuda.is_available(); print(c); print(torch.cuda.get_device_name(0) if c else '')";

async function torchCheck(): Promise<Check> {
  const name = "pytorch";
  const env = envOr("SEMISEG_PYTHON");
  const python = env ?? (which("/usr/bin/python3") ?? which("python3") ?? "/usr/bin/python3");
  const fix = "sudo apt-get install python3-torch (or SEMISEG_PYTHON=/path/to/python with torch)";
  const r = await probeCommand(python, ["-c", TORCH_PROBE], 9000);
  if (!r.ok) {
    return {
      name,
      state: "missing",
      detail: `${python}${env ? " ($SEMISEG_PYTHON)" : ""} cannot import torch (${
        r.text.slice(0, 160)
      }): perf's PyTorch comparison and the PyTorch conformance tests skip`,
      fix,
    };
  }
  const [version, cuda, device] = r.text.split("\n").map((s) => s.trim());
  return {
    name,
    state: "ok",
    detail: `${python}${env ? " ($SEMISEG_PYTHON)" : ""}: torch ${version}, CUDA ${
      cuda === "True" ? `available (${device})` : "not available (CPU only)"
    } (deno task perf, tests/torch_interop_test.ts${
      python === "/usr/bin/python3" ? "" : "; the test itself uses /usr/bin/python3"
    })`,
  };
}

async function chromiumCheck(): Promise<Check> {
  const name = "chromium";
  const path = "/usr/bin/chromium";
  if (which(path) === null) {
    return {
      name,
      state: "missing",
      detail: `${path} is absent: the report's browser test skips`,
      fix: "sudo apt-get install chromium fonts-dejavu-core",
    };
  }
  const r = await probeCommand(path, ["--version"], 5000);
  return {
    name,
    state: "ok",
    detail: `${path}${
      r.ok ? ` (${r.text.split("\n").at(-1)!.replace(/ built on .*/, "")})` : ""
    } (tests/report_test.ts)`,
  };
}

async function toolCheck(
  name: string,
  args: string[],
  use: string,
  fix: string,
): Promise<Check> {
  const path = which(name);
  if (path === null) return { name, state: "missing", detail: `not on PATH: ${use}`, fix };
  const r = await probeCommand(path, args, 5000);
  const v = r.ok ? r.text.split("\n")[0]! : "";
  return { name, state: "ok", detail: `${path}${v ? ` (${v})` : ""}: ${use}` };
}

async function datasetChecks(dataDir: string | null): Promise<Check[]> {
  const out: Check[] = [];
  for (const def of DATASETS) {
    const name = `dataset ${def.id}`;
    if (def.id === "synthetic") {
      out.push({ name, state: "ok", detail: "generated on the fly (the default benchmark)" });
      continue;
    }
    const roots = [join("data", def.id), ...(dataDir ? [dataDir] : [])];
    let found: Check | null = null;
    const problems: string[] = [];
    for (const root of roots) {
      if (!isDir(root)) continue;
      try {
        const ds = def.open(root);
        const ids = new Set(await ds.caseIds());
        if (ids.size === 0) {
          if (root === roots[0]) problems.push(`${root}: no cases`);
          continue;
        }
        const [split] = await ds.splits();
        const parts = split
          ? (["train", "val", "test"] as const).filter((k) => split[k].length > 0).map((k) =>
            `${k} ${split[k].filter((id) => ids.has(id)).length}/${split[k].length}`
          ).join(", ")
          : "";
        found = {
          name,
          state: "ok",
          detail: `${root}: ${ids.size} cases${
            split ? ` (split ${split.name}: ${parts})` : ""
          }; deno task data ${def.id}${root === roots[0] ? "" : ` --root ${root}`} checks them`,
        };
        break;
      } catch (e) {
        if (root !== roots[0]) continue; // --data-dir is some other dataset's root
        problems.push(firstLine(e));
      }
    }
    out.push(
      found ?? {
        name,
        state: "missing",
        detail: problems.length > 0
          ? problems.join("; ")
          : `no ${roots[0]}/${dataDir ? ` (and ${dataDir} is not a ${def.id} root)` : ""}`,
        fix:
          `deno task data ${def.id} (where to get it and the layout; then data/${def.id}/ or --data-dir DIR)`,
      },
    );
  }
  return out;
}

/** Every check, in print order. */
export async function runDoctor(opts: { dataDir: string | null }): Promise<Check[]> {
  // The slow ones (a subprocess, the adapter request) run concurrently.
  const [webgpu, torch, chromium, sbatch, xz, git, datasets] = await Promise.all([
    webgpuCheck(),
    torchCheck(),
    chromiumCheck(),
    toolCheck(
      "sbatch",
      ["--version"],
      "deno task bench --slurm submits job arrays",
      "sudo apt-get install slurm-wlm munge (a cluster's login node has it)",
    ),
    toolCheck(
      "xz",
      ["--version"],
      "deno task compile",
      "sudo apt-get install xz-utils",
    ),
    toolCheck(
      "git",
      ["--version"],
      "the commit recorded in each result's provenance",
      "sudo apt-get install git",
    ),
    datasetChecks(opts.dataDir),
  ]);
  return [
    denoCheck(),
    cpuCheck(),
    nodeCheck(true),
    nodeCheck(false),
    webgpu,
    nativeCheck(),
    torch,
    chromium,
    sbatch,
    xz,
    git,
    ...datasets,
  ];
}

const HELP = [
  "deno task doctor [--data-dir DIR]",
  "",
  "Prints what this machine can run, one line per capability: [ok], [missing] (with its fix)",
  "or [info]. Dataset roots are looked for under data/<name>/ and at --data-dir DIR.",
  "Exit code 0: it is a report.",
].join("\n");

/** Entry point; returns the exit code. */
export async function main(argv: string[], print: (line: string) => void): Promise<number> {
  const { values } = parseFlags(argv, {
    "data-dir": { type: "string" },
    help: { type: "boolean" },
  });
  if (values.help) {
    print(HELP);
    return 0;
  }
  for (const c of await runDoctor({ dataDir: values["data-dir"] ?? null })) print(formatCheck(c));
  return 0;
}

if (import.meta.main) {
  const enc = new TextEncoder();
  try {
    const code = await main(Deno.args, (l) => Deno.stdout.writeSync(enc.encode(l + "\n")));
    Deno.exit(code);
  } catch (e) {
    Deno.stderr.writeSync(enc.encode(`doctor: ${firstLine(e)}\n`));
    Deno.exit(2);
  }
}
