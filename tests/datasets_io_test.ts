import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { encodeNifti, readNifti, writeNifti } from "../datasets/io/nifti.ts";
import { encodeNrrd, readNrrd } from "../datasets/io/nrrd.ts";
import { readHdf5, writeHdf5 } from "../datasets/io/hdf5.ts";
import { cToFortran, fortranToC } from "../datasets/io/util.ts";
import { readImageLabelPair } from "../datasets/common.ts";

const shape = [3, 4, 5];
const n = 60;
function ramp<T extends Uint8Array | Int16Array | Int32Array | Float32Array | Float64Array>(
  ctor: new (n: number) => T,
  f: (i: number) => number,
): T {
  const a = new ctor(n);
  for (let i = 0; i < n; i++) a[i] = f(i);
  return a;
}

Deno.test("fortranToC / cToFortran invert each other and match index formulas", () => {
  const f = ramp(Float32Array, (i) => i);
  const c = fortranToC(f, shape);
  // file (F) index x + 3*(y + 4*z) must land at C index (x*4 + y)*5 + z
  for (let x = 0; x < 3; x++) {
    for (let y = 0; y < 4; y++) {
      for (let z = 0; z < 5; z++) assert.equal(c[(x * 4 + y) * 5 + z], x + 3 * (y + 4 * z));
    }
  }
  assert.deepEqual(cToFortran(c, shape), f);
  const s4 = [2, 3, 2, 2];
  const g = Float64Array.from({ length: 24 }, (_, i) => i);
  assert.deepEqual(cToFortran(fortranToC(g, s4), s4), g);
});

Deno.test("NIfTI: every datatype round-trips exactly, .nii and .nii.gz, both byte orders", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const arrays = [
      ramp(Uint8Array, (i) => (i * 7) % 256),
      ramp(Int16Array, (i) => i * 1000 - 30000),
      ramp(Int32Array, (i) => i * 100000 - 3000000),
      ramp(Float32Array, (i) => Math.fround(i * 0.37 - 5)),
      ramp(Float64Array, (i) => i * 1e-7 + Math.PI),
    ];
    for (const data of arrays) {
      for (const ext of [".nii", ".nii.gz"]) {
        for (const le of [true, false]) {
          const p = `${dir}/v_${data.constructor.name}_${le}${ext}`;
          await writeNifti(p, { data, shape, spacing: [0.5, 0.75, 2.5], littleEndian: le });
          const v = await readNifti(p);
          assert.deepEqual(v.shape, shape);
          assert.deepEqual(v.spacing, [0.5, 0.75, 2.5]);
          assert.equal(v.data.constructor, data.constructor);
          assert.deepEqual(Array.from(v.data), Array.from(data));
          assert.equal(v.scaled, false);
        }
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("NIfTI: scl_slope/scl_inter are applied, slope 0 means none", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = ramp(Int16Array, (i) => i - 10);
    await writeNifti(`${dir}/s.nii`, { data, shape, sclSlope: 2, sclInter: -3 });
    const v = await readNifti(`${dir}/s.nii`);
    assert.ok(v.data instanceof Float32Array && v.scaled);
    for (let i = 0; i < n; i++) assert.equal(v.data[i], 2 * data[i]! - 3);
    await writeNifti(`${dir}/z.nii`, { data, shape, sclSlope: 0, sclInter: 5 });
    const z = await readNifti(`${dir}/z.nii`);
    assert.ok(z.data instanceof Int16Array && !z.scaled);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("NIfTI: x-fastest file data is returned in C order (x slowest)", () => {
  // Hand-built file: voxel (x,y,z) stores 100x + 10y + z, written x-fastest.
  const bytes = encodeNifti({ data: new Uint8Array(n), shape });
  const dv = new DataView(bytes.buffer);
  for (let z = 0; z < 5; z++) {
    for (let y = 0; y < 4; y++) {
      for (let x = 0; x < 3; x++) dv.setUint8(352 + x + 3 * (y + 4 * z), 100 * x + 10 * y + z);
    }
  }
  return (async () => {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeFile(`${dir}/a.nii`, bytes);
      const v = await readNifti(`${dir}/a.nii`);
      for (let x = 0; x < 3; x++) {
        for (let y = 0; y < 4; y++) {
          for (let z = 0; z < 5; z++) {
            assert.equal(v.data[(x * 4 + y) * 5 + z], 100 * x + 10 * y + z);
          }
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  })();
});

Deno.test("NRRD: raw and gzip, little and big endian, types, spacing, fast-to-slow axis order", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const arrays = [
      ramp(Uint8Array, (i) => 255 - i),
      ramp(Int16Array, (i) => -i * 300),
      ramp(Int32Array, (i) => i * 77777),
      ramp(Float32Array, (i) => Math.fround(i / 7)),
      ramp(Float64Array, (i) => i / 3),
    ];
    for (const data of arrays) {
      for (const encoding of ["raw", "gzip"] as const) {
        for (const littleEndian of [true, false]) {
          const p = `${dir}/a.nrrd`;
          await Deno.writeFile(
            p,
            encodeNrrd({ data, shape, spacing: [0.625, 0.625, 1.25], encoding, littleEndian }),
          );
          const v = await readNrrd(p);
          assert.deepEqual(v.shape, shape);
          assert.deepEqual(v.spacing, [0.625, 0.625, 1.25]);
          assert.deepEqual(Array.from(v.data), Array.from(data));
        }
      }
    }
    // Hand-written header in pynrrd style: sizes fast->slow, first axis fastest on disk.
    const body = new Uint8Array(n);
    for (let z = 0; z < 5; z++) {
      for (let y = 0; y < 4; y++) {
        for (let x = 0; x < 3; x++) body[x + 3 * (y + 4 * z)] = 100 * x + 10 * y + z;
      }
    }
    const hdr = "NRRD0004\ntype: unsigned char\ndimension: 3\nspace: left-posterior-superior\n" +
      "sizes: 3 4 5\nspace directions: (0.625,0,0) (0,0.625,0) (0,0,0.625)\nkinds: domain domain domain\n" +
      "encoding: gzip\nspace origin: (0,0,0)\n\n";
    const file = new Uint8Array([...new TextEncoder().encode(hdr), ...gzipSync(body)]);
    await Deno.writeFile(`${dir}/h.nrrd`, file);
    const h = await readNrrd(`${dir}/h.nrrd`);
    assert.deepEqual(h.shape, [3, 4, 5]);
    assert.deepEqual(h.spacing, [0.625, 0.625, 0.625]);
    for (let x = 0; x < 3; x++) {
      for (let y = 0; y < 4; y++) {
        for (let z = 0; z < 5; z++) assert.equal(h.data[(x * 4 + y) * 5 + z], 100 * x + 10 * y + z);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("HDF5: h5wasm-written datasets read back exactly (plain and gzip-chunked)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const image = ramp(Float32Array, (i) => Math.fround(Math.sin(i)));
    const label = ramp(Uint8Array, (i) => i % 2);
    const i16 = ramp(Int16Array, (i) => -i);
    for (const gz of [undefined, 4]) {
      const p = `${dir}/t${gz ?? 0}.h5`;
      await writeHdf5(p, {
        image: { data: image, shape },
        label: { data: label, shape },
        i16: { data: i16, shape },
      }, gz === undefined ? {} : { gzip: gz });
      const r = await readHdf5(p, ["image", "label", "i16"]);
      assert.deepEqual(r.image!.shape, shape);
      assert.equal(r.image!.dtype, "float32");
      assert.equal(r.label!.dtype, "uint8");
      assert.equal(r.i16!.dtype, "int16");
      assert.deepEqual(r.image!.data, image);
      assert.deepEqual(r.label!.data, label);
      assert.deepEqual(r.i16!.data, i16);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("image/label pairs: shape and a 2D image are one-line errors naming the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const img = `${dir}/img.nii`,
      lab = `${dir}/lab.nii.gz`,
      bad = `${dir}/bad.nii`,
      flat = `${dir}/flat.nii`;
    await writeNifti(img, { data: new Float32Array(24).fill(1), shape: [2, 3, 4] });
    await writeNifti(lab, { data: new Uint8Array(24), shape: [2, 3, 4] }, true);
    await writeNifti(bad, { data: new Uint8Array(24), shape: [4, 3, 2] });
    await writeNifti(flat, { data: new Float32Array(6), shape: [2, 3] });
    const ok = await readImageLabelPair(img, lab, "FLAIR");
    assert.deepEqual(ok.shape, [2, 3, 4]);
    assert.equal(ok.image.data.length, 24);
    await assert.rejects(
      () => readImageLabelPair(img, bad, "volume"),
      { message: `${bad}: shape 4x3x2 differs from volume 2x3x4` },
    );
    await assert.rejects(
      () => readImageLabelPair(flat, lab, "FLAIR"),
      { message: `${flat}: expected 3 dims, got 2x3` },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
