/**
 * Finding the state_dict in what a checkpoint holds: a bare state_dict (an OrderedDict of
 * tensors), one nested under the usual keys of training scripts (`{'state_dict': ...,
 * 'epoch': ...}` and the like, up to three levels), or a whole pickled `nn.Module`
 * (`torch.save(model)`: its `_parameters`, `_buffers` and `_modules`, as `state_dict()` would
 * walk them). A DataParallel / DistributedDataParallel `module.` prefix is stripped.
 * @module
 */
import { isPlaceholder } from "./pickle.ts";
import { TorchTensor } from "./tensor.ts";

/** Keys under which training scripts nest the weights, tried in this order. */
export const STATE_DICT_KEYS: readonly string[] = [
  "state_dict",
  "model_state_dict",
  "model",
  "net",
  "network",
  "model_state",
  "state",
  "weights",
  "params",
  "module",
];

/** Options of {@link findStateDict}. */
export interface FindOptions {
  /** Prefix of errors (the file). */
  label?: string;
  /** Take the state_dict under this key (dotted for nesting, e.g. `"ema.state_dict"`). */
  key?: string;
}

/** What {@link findStateDict} found. */
export interface FoundStateDict {
  /** Tensors by key (the `module.` prefix removed), in the checkpoint's order. */
  tensors: Map<string, TorchTensor>;
  /** The keys followed to reach it (empty: the checkpoint is the state_dict). */
  path: string[];
  /** Whether a `module.` prefix was stripped. */
  strippedModulePrefix: boolean;
}

type Obj = Record<string, unknown>;

function isModuleObject(v: unknown): v is Obj {
  return isPlaceholder(v) && (v as unknown as Obj)["_parameters"] instanceof Map;
}

/** `state_dict()` of a pickled nn.Module: parameters, persistent buffers, then submodules. */
function moduleStateDict(m: Obj, prefix: string, out: Map<unknown, unknown>): void {
  const nonPersistent = (m["_non_persistent_buffers_set"] as Set<string> | undefined) ?? new Set();
  for (const [k, v] of m["_parameters"] as Map<string, unknown>) {
    if (v !== null) out.set(prefix + k, v);
  }
  const buffers = m["_buffers"];
  if (buffers instanceof Map) {
    for (const [k, v] of buffers) {
      if (v !== null && !(nonPersistent instanceof Set && nonPersistent.has(k))) {
        out.set(prefix + k, v);
      }
    }
  }
  const mods = m["_modules"];
  if (mods instanceof Map) {
    for (const [k, v] of mods) if (isModuleObject(v)) moduleStateDict(v, `${prefix}${k}.`, out);
  }
}

function describe(v: unknown): string {
  if (v instanceof TorchTensor) return `tensor [${v.shape.join(", ")}]`;
  if (v instanceof Map) return "dict";
  if (Array.isArray(v)) return "list";
  if (isPlaceholder(v)) return `${v.__module__}.${v.__name__}`;
  return v === null ? "None" : typeof v;
}

/** The tensors of `v` when it is a state_dict (or a pickled module), else a reason. */
function asStateDict(v: unknown): Map<string, TorchTensor> | string {
  let m: Map<unknown, unknown>;
  if (isModuleObject(v)) {
    m = new Map();
    moduleStateDict(v, "", m);
  } else if (v instanceof Map) m = v;
  else return `a ${describe(v)}`;
  if (m.size === 0) return "an empty dict";
  const out = new Map<string, TorchTensor>();
  for (const [k, t] of m) {
    if (typeof k !== "string") return `a dict with a ${typeof k} key`;
    if (!(t instanceof TorchTensor)) return `a dict whose '${k}' is a ${describe(t)}`;
    out.set(k, t);
  }
  return out;
}

function search(v: unknown, path: string[], depth: number): FoundStateDict | null {
  const sd = asStateDict(v);
  if (typeof sd !== "string") return { tensors: sd, path, strippedModulePrefix: false };
  if (!(v instanceof Map) || depth >= 3) return null;
  for (const k of STATE_DICT_KEYS) {
    if (!v.has(k)) continue;
    const r = search(v.get(k), [...path, k], depth + 1);
    if (r !== null) return r;
  }
  return null;
}

/**
 * The state_dict of a loaded checkpoint (see the module doc). Throws one line naming what the
 * checkpoint holds when none is found.
 */
export function findStateDict(value: unknown, opts: FindOptions = {}): FoundStateDict {
  const label = opts.label ?? "checkpoint";
  let found: FoundStateDict | null;
  if (opts.key !== undefined) {
    let v = value;
    const path: string[] = [];
    for (const k of opts.key.split(".")) {
      if (!(v instanceof Map) || !v.has(k)) {
        const keys = v instanceof Map ? [...v.keys()].map(String).join(", ") : describe(v);
        throw new Error(`${label}: no key '${[...path, k].join(".")}' (keys there: ${keys})`);
      }
      v = v.get(k);
      path.push(k);
    }
    const sd = asStateDict(v);
    if (typeof sd === "string") {
      throw new Error(`${label}: '${opts.key}' is ${sd}, not a state_dict of tensors`);
    }
    found = { tensors: sd, path, strippedModulePrefix: false };
  } else found = search(value, [], 0);
  if (found === null) {
    let what = `a ${describe(value)}`;
    if (value instanceof Map) {
      const keys = [...value.keys()];
      const shown = keys.slice(0, 12).map((k) => `${String(k)}: ${describe(value.get(k))}`);
      if (keys.length > 12) shown.push(`... ${keys.length - 12} more`);
      what = `a dict {${shown.join(", ")}}`;
    }
    throw new Error(
      `${label}: no state_dict found: the checkpoint is ${what}; expected tensors at the top or under ${
        STATE_DICT_KEYS.join("/")
      }`,
    );
  }
  const tensors = new Map<string, TorchTensor>();
  let stripped = false;
  for (const [k, t] of found.tensors) {
    const key = k.startsWith("module.") ? k.slice(7) : k;
    if (key !== k) stripped = true;
    if (tensors.has(key)) throw new Error(`${label}: key '${key}' appears twice`);
    tensors.set(key, t);
  }
  return { tensors, path: found.path, strippedModulePrefix: stripped };
}
