/**
 * A method's predicting network as PyTorch weights, both ways, without any method exposing
 * its networks: the network is found in the method's state (`Method.state()`, the checkpoint
 * layout every method uses) and rebuilt from the stored shapes, then written or read with the
 * reference names of `methods/nn/torch/` (UA-MT/DTC V-Net, MASSL net).
 *
 * Which network predicts: the `student.` V-Net when the state has one (this project's
 * `snapshot` layout: the supervised family, MT, UA-MT, DTC, UG-MCL, AHU-MultiNet all predict
 * with the student; an EMA teacher never predicts), else the one network of the state (MASSL,
 * MSSL and their CNN/pre-training variants: `net.`). A state with several networks and no
 * student (UA co-training's `net1.` + `net2.`, whose prediction is their mean) has no single
 * reference network: such methods are skipped, with the reason, and no error.
 *
 * Used by the runner (every finished run writes `.pth` files of its final and selected
 * weights into `weights/`, beside `runs/`) and by `deno task evaluate` (a PyTorch checkpoint re-scored
 * under a benchmark's protocol).
 * @module
 */
import { VNet } from "../../methods/nn/vnet.ts";
import type { HeadSpec } from "../../methods/nn/vnet.ts";
import { MasslNet } from "../../methods/nn/massl_net.ts";
import { Rng } from "../../methods/nn/rng.ts";
import type { MethodState, StoredTensor } from "../../methods/types.ts";
import {
  applyTorchStateDict,
  saveTorchStateDict,
  torchLayout,
  type TorchMappable,
  type TorchTensor,
} from "../../methods/nn/torch/mod.ts";

/** The network a method predicts with, as found in its state. */
export interface PredictingNetwork {
  /** Prefix of its tensors in the method state (`student.`, `net.`). */
  prefix: string;
  family: "VNet" | "MasslNet";
}

const VNET_FIRST = "block_one.conv0.weight";
const MASSL_FIRST = "e_conv3d_l1_1.weight";

/**
 * The predicting network of a method state (see the module doc), or the reason there is no
 * single reference network.
 */
export function predictingNetwork(state: MethodState): PredictingNetwork | { skipped: string } {
  const nets: { prefix: string; family: PredictingNetwork["family"] }[] = [];
  for (const k of Object.keys(state.tensors)) {
    if (k.endsWith(`.${VNET_FIRST}`)) {
      nets.push({ prefix: k.slice(0, -VNET_FIRST.length), family: "VNet" });
    } else if (k.endsWith(`.${MASSL_FIRST}`)) {
      nets.push({ prefix: k.slice(0, -MASSL_FIRST.length), family: "MasslNet" });
    }
  }
  const pick = nets.find((n) => n.prefix === "student.") ?? (nets.length === 1 ? nets[0] : null);
  if (!pick) {
    return {
      skipped: nets.length === 0
        ? "no V-Net or MASSL network in the method state"
        : `the method predicts with ${nets.length} networks (${
          nets.map((n) => n.prefix.slice(0, -1)).join(", ")
        }), not one reference network`,
    };
  }
  return pick;
}

function stored(tensors: Record<string, StoredTensor>, key: string): StoredTensor {
  const t = tensors[key];
  if (t === undefined) throw new Error(`method state has no tensor '${key}'`);
  return t;
}

/**
 * A network of the architecture the state's tensors under `prefix` have, holding those
 * weights (the caller disposes it). Shapes give every size: input channels and width from the
 * first conv, V-Net heads from the 1x1x1 convs that are not blocks (in state order, which is
 * the network's head order), MASSL seg/rec channels from the last convs.
 */
export function buildNetwork(
  tensors: Record<string, StoredTensor>,
  prefix: string,
  family: PredictingNetwork["family"],
): TorchMappable {
  const rng = new Rng(0); // overwritten by the stored weights
  let net: TorchMappable;
  if (family === "VNet") {
    const first = stored(tensors, prefix + VNET_FIRST).shape;
    const heads: HeadSpec[] = [];
    for (const [k, t] of Object.entries(tensors)) {
      if (!k.startsWith(prefix)) continue;
      const m = /^(\w+)\.weight$/.exec(k.slice(prefix.length));
      if (m && !m[1]!.startsWith("block_") && t.shape.length === 5) {
        // the activation does not change the weights; the method keeps its own
        heads.push({ key: m[1]!, channels: t.shape[4]!, activation: "none" });
      }
    }
    net = new VNet({ inChannels: first[3]!, nFilters: first[4]!, heads }, rng);
  } else {
    const first = stored(tensors, prefix + MASSL_FIRST).shape;
    net = new MasslNet({
      inChannels: first[3]!,
      nFilters: first[4]!,
      segChannels: stored(tensors, `${prefix}conv3d_l4.weight`).shape[4]!,
      recChannels: tensors[`${prefix}conv3d_l4_ssl.weight`]?.shape[4] ?? 0,
    }, rng);
  }
  try {
    net.restore(tensors, prefix);
  } catch (e) {
    net.dispose();
    throw e;
  }
  return net;
}

/** A `.pth` file written by {@link writeStatePth}. */
export interface PthFile {
  /** Path relative to the benchmark's results folder (`weights/<run-id>.final.pth`). */
  path: string;
  sha256: string;
  bytes: number;
  /** The reference architecture, e.g. `VNet(n_channels 1, n_filters 16, heads out_conv:2, BatchNorm)`. */
  network: string;
}

/** Lower-case hex SHA-256 of `bytes`. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Write the predicting network of `state` as a zip-format `.pth` (reference names; PyTorch's
 * `torch.load(path, weights_only=True)` reads it) at `path` (atomically, via
 * `saveTorchStateDict`). Returns `{ skipped: reason }`, writing nothing, for methods without
 * one reference network.
 */
export async function writeStatePth(
  state: MethodState,
  path: string,
): Promise<{ file: Omit<PthFile, "path"> } | { skipped: string }> {
  const found = predictingNetwork(state);
  if ("skipped" in found) return found;
  const net = buildNetwork(state.tensors, found.prefix, found.family);
  let network: string;
  try {
    network = torchLayout(net).description;
    await saveTorchStateDict(net, path);
  } finally {
    net.dispose();
  }
  const bytes = await Deno.readFile(path);
  return { file: { sha256: await sha256Hex(bytes), bytes: bytes.length, network } };
}

/**
 * `state` with its predicting network's tensors replaced by the state_dict `tensors`
 * (reference names). Throws the bridge's one line (`<label>: does not fit VNet(...): ...; the
 * checkpoint looks like ...`) when the checkpoint is another architecture; `state` is
 * untouched. Returns the new state, the network's description and the checkpoint keys ignored.
 */
export function stateWithCheckpoint(
  state: MethodState,
  tensors: Map<string, TorchTensor>,
  label: string,
): { state: MethodState; network: string; ignored: string[] } {
  const found = predictingNetwork(state);
  if ("skipped" in found) throw new Error(`${label}: cannot be loaded: ${found.skipped}`);
  const net = buildNetwork(state.tensors, found.prefix, found.family);
  try {
    const { ignored } = applyTorchStateDict(net, tensors, { label });
    return {
      state: { ...state, tensors: { ...state.tensors, ...net.state(found.prefix) } },
      network: torchLayout(net).description,
      ignored,
    };
  } finally {
    net.dispose();
  }
}

/** The `.pth` files of a finished run (recorded in its run file). */
export interface RunWeights {
  /** The weights at the last iteration. */
  final?: PthFile;
  /** The weights the protocol selected and scored (best-val selection only). */
  selected?: PthFile & { iteration: number };
  /** Why none was written: no single reference network, or the write failed. */
  skipped?: string;
}

/**
 * Write `weights/<runId>.final.pth` and, with a best-val selection,
 * `weights/<runId>.selected.pth` under `benchDir` (the benchmark's results folder, beside
 * `runs/`, which holds only run files). Never throws: a method without one reference network
 * is skipped silently (the reason is recorded), and a failed write logs one line with `log` and
 * is recorded, so the run's results are never lost to it.
 */
export async function exportRunWeights(
  benchDir: string,
  runId: string,
  finalState: () => Promise<MethodState>,
  best: { iteration: number; state: MethodState } | null,
  log: (line: string) => void,
  where: string,
): Promise<RunWeights> {
  const out: RunWeights = {};
  try {
    await Deno.mkdir(`${benchDir}/weights`, { recursive: true });
    const entries: [string, MethodState, number | null][] = [
      [`weights/${runId}.final.pth`, await finalState(), null],
    ];
    if (best) entries.push([`weights/${runId}.selected.pth`, best.state, best.iteration]);
    for (const [name, state, iteration] of entries) {
      const r = await writeStatePth(state, `${benchDir}/${name}`);
      if ("skipped" in r) return { skipped: r.skipped };
      if (iteration === null) out.final = { path: name, ...r.file };
      else out.selected = { path: name, ...r.file, iteration };
    }
    return out;
  } catch (e) {
    const msg = ((e instanceof Error ? e.message : String(e)).split("\n")[0] ?? "").trim();
    log(`${where}: could not write its .pth weights (${msg}); the run's results are kept`);
    return { ...out, skipped: `write failed: ${msg}` };
  }
}
