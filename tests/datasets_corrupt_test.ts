import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { encodeNifti, readNifti } from "../datasets/io/nifti.ts";
import { encodeNrrd, readNrrd } from "../datasets/io/nrrd.ts";
import { readHdf5, writeHdf5 } from "../datasets/io/hdf5.ts";

const shape = [4, 5, 6];
const data = Float32Array.from({ length: 120 }, (_, i) => i / 3);

type Reader = (p: string) => Promise<unknown>;
const nii: Reader = (p) => readNifti(p);
const nrrd: Reader = (p) => readNrrd(p);
const h5: Reader = (p) => readHdf5(p, ["image", "label"]);

async function expectOneLine(reader: Reader, path: string, why: RegExp, label: string) {
  let err: unknown = null;
  try {
    await reader(path);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof Error, `${label}: expected an Error, got ${String(err)}`);
  assert.equal(
    err.constructor,
    Error,
    `${label}: plain Error expected, got ${err.constructor.name}: ${err.message}`,
  );
  assert.ok(!err.message.includes("\n"), `${label}: message not one line: ${err.message}`);
  assert.ok(err.message.includes(path), `${label}: message does not name the file: ${err.message}`);
  assert.match(err.message, why, label);
}

Deno.test("corrupted NIfTI/NRRD/HDF5 files each give one plain one-line Error naming the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const good = encodeNifti({ data, shape });
    const goodGz = encodeNifti({ data, shape }, true);
    const goodNrrd = encodeNrrd({ data, shape, encoding: "gzip" });
    const rawNrrd = encodeNrrd({ data, shape, encoding: "raw" });
    await writeHdf5(`${dir}/good.h5`, {
      image: { data, shape },
      label: { data: new Uint8Array(120), shape },
    }, { gzip: 4 });
    const goodH5 = await Deno.readFile(`${dir}/good.h5`);
    const mut = (b: Uint8Array, f: (c: Uint8Array, dv: DataView) => void) => {
      const c = b.slice();
      f(c, new DataView(c.buffer));
      return c;
    };
    const cases: [string, Uint8Array | null, Reader, RegExp][] = [
      ["missing.nii", null, nii, /not found/],
      [
        "trunc.nii",
        good.subarray(0, good.length - 10),
        nii,
        /does not match the header.*truncated/,
      ],
      ["short.nii", good.subarray(0, 100), nii, /too short/],
      ["magic.nii", mut(good, (c) => c.set([0x78, 0x78, 0x78], 344)), nii, /magic/],
      ["sizeof.nii", mut(good, (c) => (c[0] = 0x11)), nii, /sizeof_hdr/],
      [
        "dtype.nii",
        mut(good, (_c, dv) => dv.setInt16(70, 32, true)),
        nii,
        /unsupported NIfTI datatype 32/,
      ],
      ["dims0.nii", mut(good, (_c, dv) => dv.setInt16(40, 0, true)), nii, /bad dims/],
      ["dimsneg.nii", mut(good, (_c, dv) => dv.setInt16(44, -3, true)), nii, /bad dims/],
      [
        "wrongdims.nii",
        mut(good, (_c, dv) => dv.setInt16(46, 7, true)),
        nii,
        /does not match the header/,
      ],
      ["trunc.nii.gz", goodGz.subarray(0, goodGz.length - 30), nii, /gzip/],
      ["crc.nii.gz", mut(goodGz, (c) => (c[c.length - 6] = c[c.length - 6]! ^ 0xff)), nii, /gzip/],
      ["notgz.nii.gz", good, nii, /not gzip/],
      ["garbage.nii.gz", new Uint8Array([0x1f, 0x8b, 1, 2, 3, 4, 5]), nii, /gzip/],
      ["missing.nrrd", null, nrrd, /not found/],
      ["magic.nrrd", mut(rawNrrd, (c) => (c[0] = 0x58)), nrrd, /magic/],
      [
        "trunc.nrrd",
        rawNrrd.subarray(0, rawNrrd.length - 1),
        nrrd,
        /does not match the header.*truncated/,
      ],
      ["gz.nrrd", goodNrrd.subarray(0, goodNrrd.length - 20), nrrd, /gzip/],
      [
        "type.nrrd",
        new Uint8Array([
          ...new TextEncoder().encode(
            "NRRD0004\ntype: block\ndimension: 1\nsizes: 3\nencoding: raw\n\n",
          ),
          1,
          2,
          3,
        ]),
        nrrd,
        /unsupported NRRD type/,
      ],
      [
        "sizes.nrrd",
        new Uint8Array([
          ...new TextEncoder().encode(
            "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 4 5 7\nencoding: raw\n\n",
          ),
          ...new Uint8Array(120),
        ]),
        nrrd,
        /does not match the header/,
      ],
      [
        "noend.nrrd",
        new TextEncoder().encode("NRRD0004\ntype: uint8\ndimension: 3\nsizes: 4 5 6\n"),
        nrrd,
        /blank line/,
      ],
      [
        "bz.nrrd",
        new Uint8Array([
          ...new TextEncoder().encode(
            "NRRD0004\ntype: uint8\ndimension: 1\nsizes: 3\nencoding: bzip2\n\n",
          ),
          1,
          2,
          3,
        ]),
        nrrd,
        /unsupported NRRD encoding/,
      ],
      ["missing.h5", null, h5, /not found/],
      ["magic.h5", mut(goodH5, (c) => (c[1] = 0x00)), h5, /signature/],
      ["trunc.h5", goodH5.subarray(0, Math.floor(goodH5.length * 0.7)), h5, /truncated HDF5/],
      ["empty.h5", new Uint8Array(0), h5, /signature/],
      ["gzip-as-h5.h5", gzipSync(goodH5), h5, /signature/],
    ];
    assert.ok(cases.length >= 10);
    for (const [name, bytes, reader, why] of cases) {
      const p = `${dir}/${name}`;
      if (bytes !== null) await Deno.writeFile(p, bytes);
      await expectOneLine(reader, p, why, name);
    }
    // Missing dataset names the file and lists what is there.
    await expectOneLine(
      (p) => readHdf5(p, ["nope"]),
      `${dir}/good.h5`,
      /no dataset 'nope' \(has: image, label\)/,
      "nokey",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("random byte flips in headers never crash with anything but a one-line Error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files: [string, Uint8Array, Reader, number][] = [
      ["f.nii", encodeNifti({ data, shape }), nii, 352],
      ["f.nrrd", encodeNrrd({ data, shape }), nrrd, 200],
    ];
    let seed = 12345;
    const rnd = (m: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % m;
    };
    for (const [name, good, reader, hdrLen] of files) {
      for (let t = 0; t < 60; t++) {
        const c = good.slice();
        for (let k = 0; k < 3; k++) c[rnd(hdrLen)] = rnd(256);
        const p = `${dir}/${t}_${name}`;
        await Deno.writeFile(p, c);
        try {
          await reader(p);
        } catch (e) {
          assert.ok(e instanceof Error, `${p}: non-Error thrown`);
          assert.ok(!e.message.includes("\n"), `${p}: ${e.message}`);
          assert.ok(e.message.includes(p), `${p}: ${e.message}`);
        }
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
