/**
 * The shared 3^n neighbourhood (methods/nn/neighbours.ts): offsets of
 * `generate_binary_structure` in C order, and the surface mask with both border values
 * (0: medpy's surfaces, the array edge is surface; 1: skimage's inner boundary, it is not).
 */
import assert from "node:assert/strict";
import {
  cubeOffsets,
  nonZeroAxes,
  structureOffsets,
  surfaceMask,
} from "../methods/nn/neighbours.ts";
import { innerBoundary } from "../methods/nn/sdf.ts";
import { Rng } from "../methods/nn/rng.ts";

Deno.test("neighbours: the cube in C order, and the 6/18/26 structures of scipy", () => {
  assert.deepEqual(cubeOffsets(1), [[-1], [0], [1]]);
  const c2 = cubeOffsets(2);
  assert.equal(c2.length, 9);
  assert.deepEqual(c2.slice(0, 4), [[-1, -1], [-1, 0], [-1, 1], [0, -1]]);
  assert.deepEqual(c2[4], [0, 0]);
  assert.deepEqual(structureOffsets(2, 1), [[-1, 0], [0, -1], [0, 1], [1, 0]]);
  assert.deepEqual(
    [1, 2, 3, 4].map((c) => structureOffsets(3, c).length),
    [6, 18, 26, 26],
  );
  // C order of the cube, filtered: the first 3-D face neighbour is (-1, 0, 0), the last (1, 0, 0).
  const faces = structureOffsets(3, 1);
  assert.deepEqual(faces[0], [-1, 0, 0]);
  assert.deepEqual(faces.at(-1), [1, 0, 0]);
  assert.ok(structureOffsets(3, 2).every((o) => nonZeroAxes(o) >= 1 && nonZeroAxes(o) <= 2));
  assert.equal(nonZeroAxes([0, -1, 1]), 2);
  for (const bad of [0, 1.5, NaN]) {
    assert.throws(
      () => structureOffsets(3, bad),
      (e: Error) => e.message === `connectivity must be an integer >= 1, got ${bad}`,
    );
  }
});

Deno.test("neighbours: surface mask of a cube touching the edge, border value 0 vs 1", () => {
  // 4x4x4 array, foreground the 3x3x3 corner block [0, 3)^3.
  const shape = [4, 4, 4];
  const m = new Uint8Array(64);
  for (let z = 0; z < 3; z++) {
    for (let y = 0; y < 3; y++) {
      for (let x = 0; x < 3; x++) {
        m[(z * 4 + y) * 4 + x] = 1;
      }
    }
  }
  const count = (a: Uint8Array) => a.reduce((s, v) => s + v, 0);
  // Border 0: every block voxel but the centre (1, 1, 1) is surface (the edge counts).
  const s0 = surfaceMask(m, shape, 1, 0);
  assert.equal(count(s0), 26);
  assert.equal(s0[(1 * 4 + 1) * 4 + 1], 0);
  // Border 1: only voxels with a background neighbour inside the array, i.e. those on the
  // faces z = 2, y = 2 or x = 2: 27 - 8 (the [0, 2)^3 block).
  const s1 = surfaceMask(m, shape, 1, 1);
  assert.equal(count(s1), 19);
  assert.equal(s1[0], 0);
  assert.equal(s1[(2 * 4 + 2) * 4 + 2], 1);
  assert.equal(count(surfaceMask(new Uint8Array(0), [0, 4, 4])), 0);
});

/** Brute-force reference: a non-zero element with a zero neighbour (or, border 0, an outside one). */
function naiveSurface(m: Uint8Array, shape: number[], conn: number, border: 0 | 1): Uint8Array {
  const out = new Uint8Array(m.length);
  const strides = shape.map((_, a) => shape.slice(a + 1).reduce((x, y) => x * y, 1));
  for (let i = 0; i < m.length; i++) {
    if (m[i] === 0) continue;
    const coord = strides.map((s, a) => Math.floor(i / s) % shape[a]!);
    for (const off of structureOffsets(shape.length, conn)) {
      const c = coord.map((v, a) => v + off[a]!);
      const inside = c.every((v, a) => v >= 0 && v < shape[a]!);
      const j = c.reduce((s, v, a) => s + v * strides[a]!, 0);
      if (inside ? m[j] === 0 : border === 0) {
        out[i] = 1;
        break;
      }
    }
  }
  return out;
}

Deno.test("neighbours: surface mask and innerBoundary agree with a brute-force reference", () => {
  const rng = new Rng(7);
  for (const shape of [[5, 6, 7], [9, 4], [1, 8, 3]]) {
    const n = shape.reduce((a, b) => a * b, 1);
    for (const conn of [1, 2, 3]) {
      const m = new Uint8Array(n).map(() => (rng.uniform() < 0.6 ? 1 : 0));
      const what = `shape ${shape} connectivity ${conn}`;
      assert.deepEqual(surfaceMask(m, shape, conn, 0), naiveSurface(m, shape, conn, 0), what);
      // skimage find_boundaries(mode='inner'): the outside counts as foreground.
      assert.deepEqual(innerBoundary(m, shape, conn), naiveSurface(m, shape, conn, 1), what);
    }
  }
});
