/**
 * UA-MT training augmentation, seeded from an {@link Rng}:
 * - {@link randomRotFlip}: `k = int(4)`; `np.rot90(x, k)` in the x-y plane (axes 0, 1); then
 *   `axis = int(2)` and a flip along that axis (always exactly one flip, never z).
 * - {@link randomCrop}: if ANY axis is <= the patch (`<=`, as UA-MT), pad every axis by
 *   `max(floor((patch - size) / 2) + 3, 0)` zeros on both sides (Python floor division, so an axis
 *   1..4 voxels larger than the patch still gets 1..2 voxels); then offsets `int(size - patch)` per
 *   axis (numpy's exclusive `randint(0, size - patch)`), drawn x, y, z.
 * - {@link augmentPatch}: both, fused into one gather that never materialises the rotated/padded
 *   volume (same draws, same result; tests pin the equality).
 * Volumes are C order over (x, y, z[, c]); the label gets the same transform as the image.
 * @module
 */
import type { Rng } from "../methods/nn/rng.ts";

/** A volume for augmentation: `data` in C order over (x, y, z, c). */
export interface AugVolume<T extends Float32Array | Uint8Array> {
  data: T;
  shape: [number, number, number];
  channels: number;
}

/** Source (x, y) in the input for output (i, j) of `np.rot90(m, k)` with input sizes n0 x n1. */
function rotSrc(k: number, i: number, j: number, n0: number, n1: number): [number, number] {
  switch (k & 3) {
    case 0:
      return [i, j];
    case 1:
      return [j, n1 - 1 - i];
    case 2:
      return [n0 - 1 - i, n1 - 1 - j];
    default:
      return [n0 - 1 - j, i];
  }
}

/** `np.rot90(v, k, axes=(0,1))`. */
export function rot90<T extends Float32Array | Uint8Array>(
  v: AugVolume<T>,
  k: number,
): AugVolume<T> {
  const [n0, n1, n2] = v.shape;
  const c = v.channels;
  const odd = (k & 1) === 1;
  const r0 = odd ? n1 : n0, r1 = odd ? n0 : n1;
  const ctor = v.data.constructor as new (n: number) => T;
  const out = new ctor(v.data.length);
  const row = n2 * c;
  for (let i = 0; i < r0; i++) {
    for (let j = 0; j < r1; j++) {
      const [a, b] = rotSrc(k, i, j, n0, n1);
      const s = (a * n1 + b) * row;
      out.set(v.data.subarray(s, s + row) as never, (i * r1 + j) * row);
    }
  }
  return { data: out, shape: [r0, r1, n2], channels: c };
}

/** `np.flip(v, axis)` for axis 0 or 1. */
export function flip<T extends Float32Array | Uint8Array>(
  v: AugVolume<T>,
  axis: 0 | 1,
): AugVolume<T> {
  const [n0, n1, n2] = v.shape;
  const row = n2 * v.channels;
  const ctor = v.data.constructor as new (n: number) => T;
  const out = new ctor(v.data.length);
  for (let i = 0; i < n0; i++) {
    for (let j = 0; j < n1; j++) {
      const a = axis === 0 ? n0 - 1 - i : i, b = axis === 1 ? n1 - 1 - j : j;
      const s = (a * n1 + b) * row;
      out.set(v.data.subarray(s, s + row) as never, (i * n1 + j) * row);
    }
  }
  return { data: out, shape: [n0, n1, n2], channels: v.channels };
}

/** Draw (k, axis) for RandomRotFlip. */
export function drawRotFlip(rng: Rng): { k: number; axis: 0 | 1 } {
  const k = rng.int(4);
  const axis = rng.int(2) as 0 | 1;
  return { k, axis };
}

/** UA-MT RandomRotFlip applied to an image and its label. */
export function randomRotFlip(
  image: AugVolume<Float32Array>,
  label: AugVolume<Uint8Array>,
  rng: Rng,
): { image: AugVolume<Float32Array>; label: AugVolume<Uint8Array> } {
  const { k, axis } = drawRotFlip(rng);
  return { image: flip(rot90(image, k), axis), label: flip(rot90(label, k), axis) };
}

/** UA-MT's padding per axis for a volume of `shape` and a patch of `patch`. */
export function cropPadding(shape: readonly number[], patch: readonly number[]): number[] {
  const any = shape.some((s, a) => s <= patch[a]!);
  return shape.map((s, a) => (any ? Math.max(Math.floor((patch[a]! - s) / 2) + 3, 0) : 0));
}

/** Zero-pad symmetrically by `pad[a]` per axis. */
export function pad3<T extends Float32Array | Uint8Array>(
  v: AugVolume<T>,
  pad: readonly number[],
): AugVolume<T> {
  const [n0, n1, n2] = v.shape;
  const [p0, p1, p2] = pad as [number, number, number];
  const s: [number, number, number] = [n0 + 2 * p0, n1 + 2 * p1, n2 + 2 * p2];
  const c = v.channels;
  const ctor = v.data.constructor as new (n: number) => T;
  const out = new ctor(s[0] * s[1] * s[2] * c);
  for (let x = 0; x < n0; x++) {
    for (let y = 0; y < n1; y++) {
      const src = (x * n1 + y) * n2 * c;
      const dst = (((x + p0) * s[1] + y + p1) * s[2] + p2) * c;
      out.set(v.data.subarray(src, src + n2 * c) as never, dst);
    }
  }
  return { data: out, shape: s, channels: c };
}

/** UA-MT RandomCrop applied to an image and its label. */
export function randomCrop(
  image: AugVolume<Float32Array>,
  label: AugVolume<Uint8Array>,
  patch: readonly [number, number, number],
  rng: Rng,
): { image: AugVolume<Float32Array>; label: AugVolume<Uint8Array> } {
  const pad = cropPadding(image.shape, patch);
  const im = pad3(image, pad), lb = pad3(label, pad);
  const off = im.shape.map((s, a) => rng.int(s - patch[a]!));
  const cut = <T extends Float32Array | Uint8Array>(v: AugVolume<T>): AugVolume<T> => {
    const c = v.channels;
    const [, n1, n2] = v.shape;
    const ctor = v.data.constructor as new (n: number) => T;
    const out = new ctor(patch[0] * patch[1] * patch[2] * c);
    let o = 0;
    for (let x = 0; x < patch[0]; x++) {
      for (let y = 0; y < patch[1]; y++) {
        const s = (((x + off[0]!) * n1 + y + off[1]!) * n2 + off[2]!) * c;
        out.set(v.data.subarray(s, s + patch[2] * c) as never, o);
        o += patch[2] * c;
      }
    }
    return { data: out, shape: [patch[0], patch[1], patch[2]], channels: c };
  };
  return { image: cut(im), label: cut(lb) };
}

/**
 * RandomRotFlip (when `rotFlip`) then RandomCrop, fused: writes the patch into
 * `outImage[outImageOffset..]` (C order over (x, y, z, c)) and `outLabel[outLabelOffset..]`.
 */
export function augmentPatch(
  image: AugVolume<Float32Array>,
  label: AugVolume<Uint8Array>,
  patch: readonly [number, number, number],
  rng: Rng,
  rotFlip: boolean,
  outImage: Float32Array,
  outImageOffset: number,
  outLabel: Int32Array | Uint8Array,
  outLabelOffset: number,
): void {
  const [n0, n1, n2] = image.shape;
  const c = image.channels;
  let k = 0, axis: 0 | 1 | -1 = -1;
  if (rotFlip) ({ k, axis } = drawRotFlip(rng));
  const odd = (k & 1) === 1;
  const r: [number, number, number] = [odd ? n1 : n0, odd ? n0 : n1, n2];
  const pad = cropPadding(r, patch);
  const off = r.map((s, a) => rng.int(s + 2 * pad[a]! - patch[a]!));
  const [P0, P1, P2] = patch;
  let oi = outImageOffset, ol = outLabelOffset;
  for (let u = 0; u < P0; u++) {
    const i = u + off[0]! - pad[0]!;
    for (let v = 0; v < P1; v++) {
      const j = v + off[1]! - pad[1]!;
      const inXY = i >= 0 && i < r[0] && j >= 0 && j < r[1];
      let rowBase = -1;
      if (inXY) {
        const fi = axis === 0 ? r[0] - 1 - i : i;
        const fj = axis === 1 ? r[1] - 1 - j : j;
        const [a, b] = rotSrc(k, fi, fj, n0, n1);
        rowBase = (a * n1 + b) * n2;
      }
      for (let w = 0; w < P2; w++) {
        const z = w + off[2]! - pad[2]!;
        if (rowBase >= 0 && z >= 0 && z < n2) {
          const s = rowBase + z;
          for (let ch = 0; ch < c; ch++) outImage[oi++] = image.data[s * c + ch]!;
          outLabel[ol++] = label.data[s]!;
        } else {
          for (let ch = 0; ch < c; ch++) outImage[oi++] = 0;
          outLabel[ol++] = 0;
        }
      }
    }
  }
}
