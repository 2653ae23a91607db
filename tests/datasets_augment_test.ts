import assert from "node:assert/strict";
import {
  augmentPatch,
  type AugVolume,
  cropPadding,
  flip,
  randomCrop,
  randomRotFlip,
  rot90,
} from "../datasets/augment.ts";
import { Rng } from "../methods/nn/rng.ts";

function vol(shape: [number, number, number], channels = 1): AugVolume<Float32Array> {
  const n = shape[0] * shape[1] * shape[2] * channels;
  return { data: Float32Array.from({ length: n }, (_, i) => i + 1), shape, channels };
}
function lab(shape: [number, number, number]): AugVolume<Uint8Array> {
  const n = shape[0] * shape[1] * shape[2];
  return { data: Uint8Array.from({ length: n }, (_, i) => (i * 37) % 251), shape, channels: 1 };
}

Deno.test("rot90 matches numpy on a 2x3 plane and k=4 is the identity", () => {
  // np.rot90([[1,2,3],[4,5,6]]) = [[3,6],[2,5],[1,4]]
  const v: AugVolume<Float32Array> = {
    data: Float32Array.from([1, 2, 3, 4, 5, 6]),
    shape: [2, 3, 1],
    channels: 1,
  };
  const r1 = rot90(v, 1);
  assert.deepEqual(r1.shape, [3, 2, 1]);
  assert.deepEqual(Array.from(r1.data), [3, 6, 2, 5, 1, 4]);
  assert.deepEqual(Array.from(rot90(v, 2).data), [6, 5, 4, 3, 2, 1]);
  assert.deepEqual(Array.from(rot90(v, 3).data), [4, 1, 5, 2, 6, 3]);
  assert.deepEqual(rot90(rot90(r1, 2), 1).data, v.data);
  assert.deepEqual(Array.from(flip(v, 0).data), [4, 5, 6, 1, 2, 3]);
  assert.deepEqual(Array.from(flip(v, 1).data), [3, 2, 1, 6, 5, 4]);
});

Deno.test("RandomRotFlip is an exact permutation applied identically to image and label", () => {
  const rng = new Rng(3);
  const shape: [number, number, number] = [5, 7, 3];
  const im = vol(shape, 2), lb = lab(shape);
  const seenK = new Set<string>();
  for (let t = 0; t < 40; t++) {
    const st = rng.state();
    const k = rng.int(4), axis = rng.int(2);
    rng.restore(st);
    seenK.add(`${k}${axis}`);
    const out = randomRotFlip(im, lb, rng);
    assert.deepEqual(out.image.shape, k % 2 ? [7, 5, 3] : [5, 7, 3]);
    assert.deepEqual([...out.image.data].sort((a, b) => a - b), [...im.data]);
    // Each voxel's label follows its image value (image values are unique per voxel+channel).
    for (let i = 0; i < out.label.data.length; i++) {
      const src = (out.image.data[i * 2]! - 1) / 2;
      assert.equal(out.label.data[i], lb.data[src]);
      assert.equal(out.image.data[i * 2 + 1], out.image.data[i * 2]! + 1);
    }
    // z is untouched: consecutive z stay consecutive.
    assert.equal(out.image.data[2]! - out.image.data[0]!, 2);
  }
  assert.equal(seenK.size, 8);
});

Deno.test("RandomCrop pads by (patch - size)//2 + 3 when any axis <= patch (UA-MT rule)", () => {
  assert.deepEqual(cropPadding([10, 20, 30], [12, 12, 12]), [4, 0, 0]); // (12-10)//2+3=4, (12-20)//2+3=-1 -> 0
  assert.deepEqual(cropPadding([12, 13, 16], [12, 12, 12]), [3, 2, 1]); // equal -> 3; floor(-1/2)=-1 -> 2; -2+3=1
  assert.deepEqual(cropPadding([13, 13, 13], [12, 12, 12]), [0, 0, 0]); // no axis <= patch: no padding
  const shape: [number, number, number] = [4, 9, 6];
  const im = vol(shape), lb = lab(shape);
  const rng = new Rng(5);
  const out = randomCrop(im, lb, [6, 6, 6], rng);
  // padded shape: x (6-4)//2+3 = 4 -> 12; y (6-9)//2+3 = 1 -> 11; z 3 -> 12
  assert.deepEqual(out.image.shape, [6, 6, 6]);
  const r2 = new Rng(5);
  const off = [r2.int(12 - 6), r2.int(11 - 6), r2.int(12 - 6)];
  for (let x = 0; x < 6; x++) {
    for (let y = 0; y < 6; y++) {
      for (let z = 0; z < 6; z++) {
        const sx = x + off[0]! - 4, sy = y + off[1]! - 1, sz = z + off[2]! - 3;
        const inside = sx >= 0 && sx < 4 && sy >= 0 && sy < 9 && sz >= 0 && sz < 6;
        const want = inside ? im.data[(sx * 9 + sy) * 6 + sz] : 0;
        assert.equal(out.image.data[(x * 6 + y) * 6 + z], want);
        assert.equal(
          out.label.data[(x * 6 + y) * 6 + z],
          inside ? lb.data[(sx * 9 + sy) * 6 + sz] : 0,
        );
      }
    }
  }
});

Deno.test("fused augmentPatch equals RandomRotFlip then RandomCrop with the same draws", () => {
  for (
    const [shape, patch, c] of [
      [[9, 7, 8], [5, 5, 4], 1],
      [[5, 11, 6], [6, 6, 6], 2],
      [[6, 6, 6], [6, 6, 6], 1],
    ] as [[number, number, number], [number, number, number], number][]
  ) {
    const im = vol(shape, c), lb = lab(shape);
    for (let s = 0; s < 20; s++) {
      const a = new Rng(s), b = new Rng(s);
      const rf = randomRotFlip(im, lb, a);
      const want = randomCrop(rf.image, rf.label, patch, a);
      const vox = patch[0] * patch[1] * patch[2];
      const gotI = new Float32Array(vox * c), gotL = new Int32Array(vox);
      augmentPatch(im, lb, patch, b, true, gotI, 0, gotL, 0);
      assert.deepEqual(gotI, want.image.data);
      assert.deepEqual(Array.from(gotL), Array.from(want.label.data));
      assert.deepEqual(a.state(), b.state());
    }
  }
});
