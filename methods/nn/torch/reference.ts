/**
 * The reference PyTorch names and layouts of this project's networks.
 *
 * V-Net ({@link VNet}, UA-MT `code/networks/vnet.py` with `normalization='batchnorm'`, DTC
 * `vnet_sdf.py`): each block is an `nn.Sequential` called `conv`, so
 * - `ConvBlock` stage i: `conv{i}` -> `conv.{3i}` (Conv3d), `bn{i}` -> `conv.{3i+1}`
 *   (BatchNorm3d; `conv.{3i+2}` is the ReLU);
 * - `DownsamplingConvBlock` (`*_dw`): `conv` -> `conv.0`, `bn` -> `conv.1`;
 * - `UpsamplingDeconvBlock` (`*_up`): `deconv` -> `conv.0` (ConvTranspose3d), `bn` -> `conv.1`;
 * - heads keep their names (`out_conv`; DTC: `out_conv` under tanh, `out_conv2`).
 * BatchNorm's `num_batches_tracked` has no counterpart here (momentum is fixed): ignored on
 * load, written as int64 on save.
 *
 * MASSL ({@link MasslNet}): the project's names are already the reference keys. The reference
 * declares modules its forward never uses (`conv3d_c*`, `norm_lrelu_conv_c*`, `lrelu_conv_c*`,
 * `ds*_1x1_conv3d`, per massl_net.ts); their keys are ignored on load and not written.
 *
 * Layouts: Conv3d weight [out, in, kd, kh, kw] <-> [kd, kh, kw, in, out] (tfjs NDHWC filters);
 * ConvTranspose3d weight [in, out, kd, kh, kw] <-> [in, kd, kh, kw, out] (what
 * `transposedConv2x` takes); biases and BatchNorm vectors are the same.
 * @module
 */
import type * as tf from "@tensorflow/tfjs-core";
import { VNet } from "../vnet.ts";
import { MasslNet } from "../massl_net.ts";
import type { TorchTensor } from "./tensor.ts";

/** How a tensor's layout differs between PyTorch and this project. */
export type SlotKind = "conv" | "deconv" | "same" | "counter";

/** One state_dict entry of the reference network. */
export interface TorchSlot {
  torchKey: string;
  /** The project's parameter or buffer name (null for `num_batches_tracked`). */
  projectKey: string | null;
  variable: tf.Variable | null;
  kind: SlotKind;
  /** Shape in PyTorch's layout. */
  torchShape: number[];
}

/** The reference state_dict layout of one network. */
export interface TorchLayout {
  /** In the reference module's state_dict order. */
  slots: TorchSlot[];
  /** E.g. `VNet(n_channels 1, n_filters 16, heads out_conv:2)`. */
  description: string;
  /** Reference keys that are expected in files but have no counterpart (ignored on load). */
  ignorable?: RegExp;
  /** What the checkpoint's architecture looks like, from its shapes (for error lines). */
  describeCheckpoint(tensors: Map<string, TorchTensor>): string | null;
}

/** Permutation from a project weight to the PyTorch layout (`out[j] = in[perm[j]]`). */
export const TO_TORCH: Readonly<Record<"conv" | "deconv", readonly number[]>> = {
  conv: [4, 3, 0, 1, 2],
  deconv: [0, 4, 1, 2, 3],
};
/** Permutation from a PyTorch weight to the project layout. */
export const FROM_TORCH: Readonly<Record<"conv" | "deconv", readonly number[]>> = {
  conv: [2, 3, 4, 1, 0],
  deconv: [0, 2, 3, 4, 1],
};

/** `data` of `shape` transposed: output axis j is input axis `perm[j]`. */
export function permute(
  data: Float32Array,
  shape: readonly number[],
  perm: readonly number[],
): Float32Array {
  const r = shape.length;
  const inStride = new Array<number>(r);
  for (let i = r - 1, s = 1; i >= 0; i--) {
    inStride[i] = s;
    s *= shape[i]!;
  }
  const outShape = perm.map((p) => shape[p]!);
  const step = perm.map((p) => inStride[p]!);
  const out = new Float32Array(data.length);
  const idx = new Array<number>(r).fill(0);
  for (let k = 0, p = 0; k < out.length; k++) {
    out[k] = data[p]!;
    for (let d = r - 1; d >= 0; d--) {
      p += step[d]!;
      if (++idx[d]! < outShape[d]!) break;
      p -= step[d]! * outShape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

function torchShape(kind: SlotKind, shape: readonly number[]): number[] {
  return kind === "conv" || kind === "deconv" ? TO_TORCH[kind].map((p) => shape[p]!) : [...shape];
}

/** The reference key and layout of a VNet parameter or buffer name. */
export function vnetTorchKey(
  key: string,
  heads: readonly string[],
): { torchKey: string; kind: SlotKind } {
  const weightKind = (p: string, k: "conv" | "deconv"): SlotKind => p === "weight" ? k : "same";
  let m = /^(block_[a-z]+)\.conv(\d+)\.(weight|bias)$/.exec(key);
  if (m) return { torchKey: `${m[1]}.conv.${3 * +m[2]!}.${m[3]}`, kind: weightKind(m[3]!, "conv") };
  m = /^(block_[a-z]+)\.bn(\d+)\.(\w+)$/.exec(key);
  if (m) return { torchKey: `${m[1]}.conv.${3 * +m[2]! + 1}.${m[3]}`, kind: "same" };
  m = /^(block_[a-z]+_dw)\.conv\.(weight|bias)$/.exec(key);
  if (m) return { torchKey: `${m[1]}.conv.0.${m[2]}`, kind: weightKind(m[2]!, "conv") };
  m = /^(block_[a-z]+_up)\.deconv\.(weight|bias)$/.exec(key);
  if (m) return { torchKey: `${m[1]}.conv.0.${m[2]}`, kind: weightKind(m[2]!, "deconv") };
  m = /^(block_[a-z]+_(?:dw|up))\.bn\.(\w+)$/.exec(key);
  if (m) return { torchKey: `${m[1]}.conv.1.${m[2]}`, kind: "same" };
  m = /^(\w+)\.(weight|bias)$/.exec(key);
  if (m && heads.includes(m[1]!)) return { torchKey: key, kind: weightKind(m[2]!, "conv") };
  throw new Error(`VNet: no reference name for parameter '${key}'`);
}

function shapeOf(t: TorchTensor | undefined): readonly number[] | undefined {
  return t?.shape;
}

function vnetLayout(net: VNet): TorchLayout {
  const heads = net.heads.map((h) => h.key);
  const slots: TorchSlot[] = [];
  const add = (projectKey: string, v: tf.Variable) => {
    const { torchKey, kind } = vnetTorchKey(projectKey, heads);
    slots.push({ torchKey, projectKey, variable: v, kind, torchShape: torchShape(kind, v.shape) });
    return torchKey;
  };
  for (const [k, v] of net.params) {
    const torchKey = add(k, v);
    if (/\.bn\d*\.bias$/.test(k)) {
      const base = k.slice(0, -".bias".length);
      for (const b of ["running_mean", "running_var"]) {
        const buf = net.buffers.get(`${base}.${b}`);
        if (buf === undefined) throw new Error(`VNet: no buffer '${base}.${b}'`);
        add(`${base}.${b}`, buf);
      }
      slots.push({
        torchKey: torchKey.replace(/bias$/, "num_batches_tracked"),
        projectKey: null,
        variable: null,
        kind: "counter",
        torchShape: [],
      });
    }
  }
  const inCh = net.params.get("block_one.conv0.weight")?.shape[3];
  const headText = (list: [string, number][]) => list.map(([k, c]) => `${k}:${c}`).join(", ");
  return {
    slots,
    description: `VNet(n_channels ${inCh}, n_filters ${net.nFilters}, heads ${
      headText(net.heads.map((h) => [h.key, h.channels]))
    }, BatchNorm)`,
    describeCheckpoint(t) {
      const first = shapeOf(t.get("block_one.conv.0.weight"));
      if (first === undefined) return null;
      const parts = [`n_channels ${first[1]}`, `n_filters ${first[0]}`];
      const hs: [string, number][] = [];
      for (const [k, v] of t) {
        const m = /^([a-z_0-9]+)\.weight$/.exec(k);
        if (m && !k.startsWith("block_") && v.shape.length === 5) hs.push([m[1]!, v.shape[0]!]);
      }
      if (hs.length > 0) parts.push(`heads ${headText(hs)}`);
      const n1 = shapeOf(t.get("block_one.conv.1.weight"));
      if (n1?.length === 5) parts.push("no BatchNorm (normalization='none')");
      else if (n1 !== undefined && !t.has("block_one.conv.1.running_mean")) {
        parts.push("a norm without running stats (normalization != 'batchnorm')");
      }
      return `VNet(${parts.join(", ")})`;
    },
  };
}

function masslLayout(net: MasslNet): TorchLayout {
  const slots: TorchSlot[] = [];
  for (const [k, v] of net.params) {
    const kind: SlotKind = v.shape.length === 5 ? "conv" : "same";
    slots.push({
      torchKey: k,
      projectKey: k,
      variable: v,
      kind,
      torchShape: torchShape(kind, v.shape),
    });
  }
  const inCh = net.params.get("e_conv3d_l1_1.weight")?.shape[3];
  return {
    slots,
    description:
      `MasslNet(in_channels ${inCh}, base_n_filter ${net.nFilters}, seg ${net.segChannels}, rec ${net.recChannels})`,
    ignorable: /^(conv3d_c\d+|norm_lrelu_conv_c\d+|lrelu_conv_c\d+|ds\d+_1x1_conv3d)\./,
    describeCheckpoint(t) {
      const first = shapeOf(t.get("e_conv3d_l1_1.weight"));
      if (first === undefined) return null;
      const seg = shapeOf(t.get("conv3d_l4.weight"))?.[0];
      const rec = shapeOf(t.get("conv3d_l4_ssl.weight"))?.[0] ?? 0;
      return `MasslNet(in_channels ${first[1]}, base_n_filter ${first[0]}, seg ${seg}, rec ${rec})`;
    },
  };
}

/** Networks with a reference PyTorch layout. */
export type TorchMappable = VNet | MasslNet;

/** The reference state_dict layout of `net`. */
export function torchLayout(net: TorchMappable): TorchLayout {
  if (net instanceof VNet) return vnetLayout(net);
  if (net instanceof MasslNet) return masslLayout(net);
  throw new Error("torchLayout: only VNet and MasslNet have a reference PyTorch layout");
}
