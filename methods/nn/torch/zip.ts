/**
 * The zip container of PyTorch >= 1.6 checkpoints: a reader (stored and deflated entries,
 * zip64 records, CRC-32 checked on every read) and a writer of stored entries whose data start
 * on 64-byte boundaries, as `torch.save` lays them out (its `PyTorchStreamWriter` pads each
 * local header's extra field with an `FB` record; readers do not need the alignment, mmap
 * loading in newer torch does).
 *
 * Only what checkpoints use: no encryption, no multi-disk archives, no compression on write.
 * Every error is one line starting with the archive's label.
 * @module
 */
import { crc32, inflateRawSync } from "node:zlib";

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
const METHOD_STORED = 0;
const METHOD_DEFLATE = 8;
const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;

/** One entry of the central directory. */
export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflate. */
  method: number;
  crc32: number;
  compressedSize: number;
  size: number;
  /** Offset of the entry's local header. */
  headerOffset: number;
}

/** True when `bytes` start like a zip archive (a local file header). */
export function looksLikeZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && view(bytes).getUint32(0, true) === SIG_LOCAL;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** A zip archive held in memory. */
export class ZipReader {
  readonly label: string;
  readonly #bytes: Uint8Array;
  readonly #dv: DataView;
  readonly #entries = new Map<string, ZipEntry>();

  /** Parse the central directory of `bytes`; `label` (e.g. the file path) prefixes errors. */
  constructor(bytes: Uint8Array, label = "zip") {
    this.label = label;
    this.#bytes = bytes;
    this.#dv = view(bytes);
    this.#parse();
  }

  #fail(msg: string): never {
    throw new Error(`${this.label}: ${msg}`);
  }

  #parse(): void {
    const b = this.#bytes, dv = this.#dv;
    // The end-of-central-directory record: 22 bytes plus a comment of up to 65535.
    let eocd = -1;
    for (let p = b.length - 22; p >= 0 && p >= b.length - 22 - U16_MAX; p--) {
      if (dv.getUint32(p, true) === SIG_EOCD) {
        eocd = p;
        break;
      }
    }
    if (eocd < 0) {
      this.#fail(
        `not a complete zip archive (no end-of-central-directory record in ${b.length} bytes): truncated or corrupt file`,
      );
    }
    let count = dv.getUint16(eocd + 10, true);
    let cdSize = dv.getUint32(eocd + 12, true);
    let cdOffset = dv.getUint32(eocd + 16, true);
    const loc = eocd - 20;
    if (loc >= 0 && dv.getUint32(loc, true) === SIG_EOCD64_LOCATOR) {
      const rec = this.#u64(loc + 8);
      if (rec + 56 > b.length || dv.getUint32(rec, true) !== SIG_EOCD64) {
        this.#fail("zip64 end-of-central-directory record missing: truncated or corrupt file");
      }
      count = this.#u64(rec + 32);
      cdSize = this.#u64(rec + 40);
      cdOffset = this.#u64(rec + 48);
    }
    if (cdOffset + cdSize > b.length) {
      this.#fail(
        `central directory at ${cdOffset} (+${cdSize} bytes) lies past the end (${b.length} bytes): truncated or corrupt file`,
      );
    }
    let p = cdOffset;
    for (let i = 0; i < count; i++) {
      if (p + 46 > b.length || dv.getUint32(p, true) !== SIG_CENTRAL) {
        this.#fail(`central directory entry ${i} is damaged: corrupt file`);
      }
      const flags = dv.getUint16(p + 8, true);
      const method = dv.getUint16(p + 10, true);
      const crc = dv.getUint32(p + 16, true);
      let compressedSize = dv.getUint32(p + 20, true);
      let size = dv.getUint32(p + 24, true);
      const nameLen = dv.getUint16(p + 28, true);
      const extraLen = dv.getUint16(p + 30, true);
      const commentLen = dv.getUint16(p + 32, true);
      let headerOffset = dv.getUint32(p + 42, true);
      const name = new TextDecoder().decode(b.subarray(p + 46, p + 46 + nameLen));
      if (flags & 1) this.#fail(`${name}: encrypted zip entries are not supported`);
      // zip64 extended information: the 0xFFFFFFFF fields, in this order.
      let e = p + 46 + nameLen;
      const extraEnd = e + extraLen;
      while (e + 4 <= extraEnd) {
        const id = dv.getUint16(e, true), len = dv.getUint16(e + 2, true);
        if (id === 0x0001) {
          let q = e + 4;
          if (size === U32_MAX) {
            size = this.#u64(q);
            q += 8;
          }
          if (compressedSize === U32_MAX) {
            compressedSize = this.#u64(q);
            q += 8;
          }
          if (headerOffset === U32_MAX) headerOffset = this.#u64(q);
        }
        e += 4 + len;
      }
      this.#entries.set(name, { name, method, crc32: crc, compressedSize, size, headerOffset });
      p = extraEnd + commentLen;
    }
  }

  #u64(p: number): number {
    if (p + 8 > this.#bytes.length) this.#fail(`zip64 field at ${p} past the end: truncated file`);
    const v = this.#dv.getBigUint64(p, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.#fail(`zip64 field at ${p} is out of range`);
    return Number(v);
  }

  /** Entry names in central-directory order. */
  names(): string[] {
    return [...this.#entries.keys()];
  }

  /** Whether the archive has an entry `name`. */
  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** The entry's bytes (a view into the archive when stored), CRC-32 checked. */
  read(name: string): Uint8Array {
    const en = this.#entries.get(name);
    if (en === undefined) this.#fail(`no entry '${name}'`);
    const b = this.#bytes, dv = this.#dv, h = en.headerOffset;
    if (h + 30 > b.length || dv.getUint32(h, true) !== SIG_LOCAL) {
      this.#fail(`${name}: local header at ${h} is missing: truncated or corrupt file`);
    }
    const start = h + 30 + dv.getUint16(h + 26, true) + dv.getUint16(h + 28, true);
    if (start + en.compressedSize > b.length) {
      this.#fail(
        `${name}: data end at ${
          start + en.compressedSize
        } past the end of the file (${b.length} bytes): truncated file`,
      );
    }
    const raw = b.subarray(start, start + en.compressedSize);
    let data: Uint8Array;
    if (en.method === METHOD_STORED) data = raw;
    else if (en.method === METHOD_DEFLATE) {
      try {
        data = new Uint8Array(inflateRawSync(raw));
      } catch (e) {
        this.#fail(`${name}: deflate data is corrupt (${e instanceof Error ? e.message : e})`);
      }
    } else {this.#fail(
        `${name}: compression method ${en.method} is not supported (stored, deflate)`,
      );}
    if (data.length !== en.size) {
      this.#fail(`${name}: ${data.length} bytes, the directory says ${en.size}: corrupt file`);
    }
    const c = crc32(data) >>> 0;
    if (c !== en.crc32) {
      this.#fail(
        `${name}: CRC-32 mismatch (stored ${hex(en.crc32)}, computed ${hex(c)}): corrupt file`,
      );
    }
    return data;
  }
}

function hex(v: number): string {
  return "0x" + v.toString(16).padStart(8, "0");
}

/** One file to write. */
export interface ZipFile {
  name: string;
  data: Uint8Array;
}

/**
 * A zip archive of stored (uncompressed) `files`, in order, each entry's data starting at a
 * multiple of `align` bytes (64, as torch). Fails on archives of 4 GiB or more (no zip64).
 */
export function writeZip(files: readonly ZipFile[], align = 64): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const f of files) {
    const name = enc.encode(f.name);
    const crc = crc32(f.data) >>> 0;
    // Pad the extra field so that the data begins on an `align` boundary.
    let pad = (align - ((offset + 30 + name.length) % align)) % align;
    if (pad > 0 && pad < 4) pad += align; // an extra record needs at least its 4-byte header
    const local = new Uint8Array(30 + name.length + pad);
    const lv = view(local);
    lv.setUint32(0, SIG_LOCAL, true);
    lv.setUint16(4, 20, true); // version needed: 2.0
    lv.setUint16(6, 0x0800, true); // UTF-8 names
    lv.setUint16(8, METHOD_STORED, true);
    lv.setUint16(10, 0, true); // time
    lv.setUint16(12, 0x21, true); // date 1980-01-01
    lv.setUint32(14, crc, true);
    lv.setUint32(18, f.data.length, true);
    lv.setUint32(22, f.data.length, true);
    lv.setUint16(26, name.length, true);
    lv.setUint16(28, pad, true);
    local.set(name, 30);
    if (pad > 0) {
      lv.setUint16(30 + name.length, 0x4246, true); // "FB", torch's padding record
      lv.setUint16(32 + name.length, pad - 4, true);
      local.fill(0x5a, 34 + name.length); // "Z"
    }
    const cd = new Uint8Array(46 + name.length);
    const cv = view(cd);
    cv.setUint32(0, SIG_CENTRAL, true);
    cv.setUint16(4, 20, true); // made by
    cv.setUint16(6, 20, true); // needed
    cv.setUint16(8, 0x0800, true);
    cv.setUint16(10, METHOD_STORED, true);
    cv.setUint16(12, 0, true);
    cv.setUint16(14, 0x21, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, f.data.length, true);
    cv.setUint32(24, f.data.length, true);
    cv.setUint16(28, name.length, true);
    cv.setUint32(42, offset, true);
    cd.set(name, 46);
    central.push(cd);
    parts.push(local, f.data);
    offset += local.length + f.data.length;
    if (offset >= U32_MAX) throw new Error("writeZip: archives of 4 GiB or more are not supported");
  }
  const cdSize = central.reduce((s, c) => s + c.length, 0);
  if (files.length >= U16_MAX) throw new Error("writeZip: too many entries");
  const eocd = new Uint8Array(22);
  const ev = view(eocd);
  ev.setUint32(0, SIG_EOCD, true);
  ev.setUint16(8, files.length, true);
  ev.setUint16(10, files.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  const out = new Uint8Array(offset + cdSize + 22);
  let p = 0;
  for (const part of [...parts, ...central, eocd]) {
    out.set(part, p);
    p += part.length;
  }
  return out;
}
