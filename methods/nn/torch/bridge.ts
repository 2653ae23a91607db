/**
 * Loading PyTorch checkpoints into this project's networks and writing their weights as
 * `.pth` files with the reference names (`reference.ts`), so weights go both ways between
 * this project and the papers' PyTorch code.
 *
 * A load is all-or-nothing: every key and shape is checked first, and any missing, unexpected
 * or mis-shaped key fails the load with ONE line naming the first such key, its shape and the
 * expected one, the count of the others, and what the checkpoint's architecture looks like;
 * the network is untouched then.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import {
  type EncodeOptions,
  encodePth,
  loadPth,
  parsePth,
  type PthContents,
  savePth,
} from "./pth.ts";
import { findStateDict } from "./statedict.ts";
import { isFloat, TorchTensor } from "./tensor.ts";
import {
  FROM_TORCH,
  permute,
  TO_TORCH,
  type TorchLayout,
  torchLayout,
  type TorchMappable,
} from "./reference.ts";

/** Options of {@link loadTorchStateDict}. */
export interface LoadOptions {
  /** Take the state_dict under this key (dotted), instead of looking under the usual ones. */
  key?: string;
  /** Fail on keys the network does not have (default true; false ignores and reports them). */
  strict?: boolean;
  /** Prefix of error lines (default: the path, or "checkpoint"). */
  label?: string;
}

/** What {@link loadTorchStateDict} did. */
export interface LoadResult {
  format: PthContents["format"];
  /** Keys followed to the state_dict (e.g. `["state_dict"]`). */
  path: string[];
  strippedModulePrefix: boolean;
  /** Tensors assigned. */
  loaded: number;
  /**
   * Checkpoint keys not used: `num_batches_tracked`, the reference's unused modules, and with
   * `strict: false` any unexpected key.
   */
  ignored: string[];
}

const shapeText = (s: readonly number[]) => `[${s.join(", ")}]`;

/**
 * Assign the state_dict `tensors` (reference names and layouts) to `net`. Returns the keys
 * ignored; throws one line (see the module doc) when the checkpoint does not fit.
 */
export function applyTorchStateDict(
  net: TorchMappable,
  tensors: Map<string, TorchTensor>,
  opts: { strict?: boolean; label?: string } = {},
): { loaded: number; ignored: string[] } {
  const label = opts.label ?? "checkpoint";
  const layout = torchLayout(net);
  const expected = new Set(layout.slots.filter((s) => s.kind !== "counter").map((s) => s.torchKey));
  const missing: string[] = [], misshaped: string[] = [], extra: string[] = [];
  const ignored: string[] = [];
  for (const s of layout.slots) {
    if (s.kind === "counter") continue;
    const t = tensors.get(s.torchKey);
    if (t === undefined) {
      missing.push(`missing key ${s.torchKey} (expected ${shapeText(s.torchShape)})`);
    } else if (
      t.shape.length !== s.torchShape.length || t.shape.some((d, i) => d !== s.torchShape[i])
    ) {
      misshaped.push(
        `${s.torchKey} is ${shapeText(t.shape)} in the checkpoint, expected ${
          shapeText(s.torchShape)
        }`,
      );
    } else if (!isFloat(t.dtype)) {
      misshaped.push(`${s.torchKey} is ${t.dtype}, expected a floating-point tensor`);
    }
  }
  for (const [k, t] of tensors) {
    if (expected.has(k)) continue;
    if (k.endsWith(".num_batches_tracked") || layout.ignorable?.test(k) || opts.strict === false) {
      ignored.push(k);
    } else extra.push(`unexpected key ${k} ${shapeText(t.shape)}`);
  }
  const problems = [...misshaped, ...missing, ...extra];
  if (problems.length > 0) {
    throw new Error(misfit(label, layout, tensors, problems, {
      missing: missing.length,
      misshaped: misshaped.length,
      extra: extra.length,
    }));
  }
  let loaded = 0;
  for (const s of layout.slots) {
    if (s.variable === null) continue;
    let v = tensors.get(s.torchKey)!.toFloat32();
    if (s.kind === "conv" || s.kind === "deconv") v = permute(v, s.torchShape, FROM_TORCH[s.kind]);
    const t = tf.tensor(v, s.variable.shape, "float32");
    s.variable.assign(t);
    t.dispose();
    loaded++;
  }
  return { loaded, ignored };
}

function misfit(
  label: string,
  layout: TorchLayout,
  tensors: Map<string, TorchTensor>,
  problems: string[],
  n: { missing: number; misshaped: number; extra: number },
): string {
  let line = `${label}: does not fit ${layout.description}: ${problems[0]}`;
  if (problems.length > 1) {
    const parts = [];
    if (n.misshaped > 0) parts.push(`${n.misshaped} mis-shaped`);
    if (n.missing > 0) parts.push(`${n.missing} missing`);
    if (n.extra > 0) parts.push(`${n.extra} unexpected`);
    line += ` (${problems.length} problems: ${parts.join(", ")})`;
  }
  const theirs = layout.describeCheckpoint(tensors);
  if (theirs !== null) line += `; the checkpoint looks like ${theirs}`;
  return line;
}

/**
 * Load a PyTorch checkpoint (`.pth`/`.pt`/`.tar` of `torch.save`, zip or legacy format; a path
 * or the file's bytes) into `net` (see the module doc).
 */
export async function loadTorchStateDict(
  net: TorchMappable,
  file: string | Uint8Array,
  opts: LoadOptions = {},
): Promise<LoadResult> {
  const label = opts.label ?? (typeof file === "string" ? file : "checkpoint");
  const contents = typeof file === "string" ? await loadPth(file) : parsePth(file, label);
  const found = findStateDict(contents.value, {
    label,
    ...(opts.key !== undefined ? { key: opts.key } : {}),
  });
  const { loaded, ignored } = applyTorchStateDict(net, found.tensors, {
    label,
    ...(opts.strict !== undefined ? { strict: opts.strict } : {}),
  });
  return {
    format: contents.format,
    path: found.path,
    strippedModulePrefix: found.strippedModulePrefix,
    loaded,
    ignored,
  };
}

/** Options of {@link torchStateDict}. */
export interface StateDictOptions {
  /** Value written for every BatchNorm `num_batches_tracked` (default 0). */
  numBatchesTracked?: number;
}

/** `net`'s weights as the reference state_dict (PyTorch names, layouts and order). */
export function torchStateDict(
  net: TorchMappable,
  opts: StateDictOptions = {},
): Map<string, TorchTensor> {
  const out = new Map<string, TorchTensor>();
  for (const s of torchLayout(net).slots) {
    if (s.variable === null) {
      const n = BigInt(opts.numBatchesTracked ?? 0);
      out.set(s.torchKey, TorchTensor.of("int64", [], BigInt64Array.of(n)));
      continue;
    }
    let v = s.variable.dataSync() as Float32Array;
    v = s.kind === "conv" || s.kind === "deconv"
      ? permute(v, s.variable.shape, TO_TORCH[s.kind])
      : Float32Array.from(v);
    out.set(s.torchKey, TorchTensor.of("float32", s.torchShape, v));
  }
  return out;
}

/** A zip-format `.pth` of `net`'s weights (`torch.load(f, weights_only=True)` loads it). */
export function encodeTorchStateDict(
  net: TorchMappable,
  opts: StateDictOptions & EncodeOptions = {},
): Uint8Array {
  return encodePth(torchStateDict(net, opts), opts);
}

/** Write {@link encodeTorchStateDict} to `path` (through a temporary file, then a rename). */
export async function saveTorchStateDict(
  net: TorchMappable,
  path: string,
  opts: StateDictOptions & EncodeOptions = {},
): Promise<void> {
  await savePth(path, torchStateDict(net, opts), opts);
}
