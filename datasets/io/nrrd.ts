/**
 * NRRD reader (attached data; encodings raw, gzip and ascii; both byte orders) and a small
 * writer used for fixtures.
 *
 * Axis order: NRRD lists `sizes` fast-to-slow (the first axis varies fastest in the file), which
 * is the order pynrrd's default `index_order='F'` indexes with; UA-MT's LA script therefore sees
 * `(x, y, z)` = (576|640, 576|640, 88). We keep that axis meaning and convert memory to our C
 * order, so `data[(x*ny + y)*nz + z]` is the file sample at fast index x, middle y, slow z:
 * x is the slowest axis of our flat array. `shape` is `sizes` as written.
 *
 * Spacing: the Euclidean norm of each `space directions` vector (axes with `none` skipped), else
 * `spacings`, else 1.
 * @module
 */
import {
  cToFortran,
  decodeElements,
  ELEMENT,
  type ElementType,
  elementTypeOf,
  encodeElements,
  fileError,
  fortranToC,
  gunzipOrThrow,
  gzip,
  type NumericArray,
  prod,
  readBytes,
} from "./util.ts";

/** A volume read from an NRRD file. */
export interface NrrdVolume {
  /** Samples in C order over `shape` (first NRRD axis slowest). */
  data: NumericArray;
  /** `sizes`, in file (fast-to-slow) order. */
  shape: number[];
  /** Per-axis spacing for the first three axes (1 where unknown). */
  spacing: [number, number, number];
  /** Element type. */
  type: ElementType;
  /** Header fields (lower-cased names) and key/value pairs as written. */
  fields: Record<string, string>;
  keyValues: Record<string, string>;
}

const TYPE_NAMES: Record<string, ElementType> = {
  "signed char": "int8",
  "int8": "int8",
  "int8_t": "int8",
  "uchar": "uint8",
  "unsigned char": "uint8",
  "uint8": "uint8",
  "uint8_t": "uint8",
  "short": "int16",
  "short int": "int16",
  "signed short": "int16",
  "signed short int": "int16",
  "int16": "int16",
  "int16_t": "int16",
  "ushort": "uint16",
  "unsigned short": "uint16",
  "unsigned short int": "uint16",
  "uint16": "uint16",
  "uint16_t": "uint16",
  "int": "int32",
  "signed int": "int32",
  "int32": "int32",
  "int32_t": "int32",
  "uint": "uint32",
  "unsigned int": "uint32",
  "uint32": "uint32",
  "uint32_t": "uint32",
  "float": "float32",
  "double": "float64",
};

/** Read an NRRD file. */
export async function readNrrd(path: string): Promise<NrrdVolume> {
  return parseNrrd(path, await readBytes(path));
}

function findHeaderEnd(b: Uint8Array): { end: number; dataStart: number } | null {
  // The header ends at the first empty line ("\n\n" or "\r\n\r\n").
  const limit = Math.min(b.length, 1 << 20);
  for (let i = 0; i + 1 < limit; i++) {
    if (b[i] === 0x0a) {
      if (b[i + 1] === 0x0a) return { end: i, dataStart: i + 2 };
      if (b[i + 1] === 0x0d && b[i + 2] === 0x0a) return { end: i, dataStart: i + 3 };
    }
  }
  return null;
}

/** Parse NRRD bytes; `path` is only used in error messages. */
export function parseNrrd(path: string, bytes: Uint8Array): NrrdVolume {
  const magic = new TextDecoder("latin1").decode(bytes.subarray(0, 8));
  if (!/^NRRD000[1-5]$/.test(magic)) {
    throw fileError(
      path,
      `bad NRRD magic ${JSON.stringify(magic)} (expected "NRRD0001".."NRRD0005")`,
    );
  }
  const he = findHeaderEnd(bytes);
  if (he === null) throw fileError(path, "NRRD header has no terminating blank line (truncated?)");
  const text = new TextDecoder("latin1").decode(bytes.subarray(0, he.end));
  const fields: Record<string, string> = {};
  const keyValues: Record<string, string> = {};
  const lines = text.split(/\r?\n/).slice(1);
  for (const line of lines) {
    if (line.startsWith("#") || line.trim() === "") continue;
    const kv = line.indexOf(":=");
    const fi = line.indexOf(": ");
    if (kv >= 0 && (fi < 0 || kv < fi)) {
      keyValues[line.slice(0, kv)] = line.slice(kv + 2);
    } else if (fi >= 0) {
      fields[line.slice(0, fi).trim().toLowerCase()] = line.slice(fi + 2).trim();
    } else {
      throw fileError(path, `bad NRRD header line ${JSON.stringify(line.slice(0, 60))}`);
    }
  }
  const need = (k: string): string => {
    const v = fields[k];
    if (v === undefined) throw fileError(path, `NRRD header lacks the required field '${k}'`);
    return v;
  };
  const typeName = need("type").toLowerCase();
  const type = TYPE_NAMES[typeName];
  if (type === undefined) {
    throw fileError(path, `unsupported NRRD type '${typeName}'`);
  }
  const dimension = Number(need("dimension"));
  if (!Number.isInteger(dimension) || dimension < 1 || dimension > 16) {
    throw fileError(path, `bad NRRD dimension '${fields["dimension"]}'`);
  }
  const shape = need("sizes").split(/\s+/).map(Number);
  if (shape.length !== dimension || shape.some((s) => !Number.isInteger(s) || s < 1)) {
    throw fileError(path, `bad NRRD sizes '${fields["sizes"]}' for dimension ${dimension}`);
  }
  const encoding = need("encoding").toLowerCase();
  if (fields["data file"] !== undefined || fields["datafile"] !== undefined) {
    throw fileError(path, "detached NRRD data ('data file') is not supported");
  }
  const elem = ELEMENT[type].bytes;
  const endianField = (fields["endian"] ?? "").toLowerCase();
  if (elem > 1 && encoding !== "ascii" && encoding !== "text" && encoding !== "txt") {
    if (endianField !== "little" && endianField !== "big") {
      throw fileError(path, `NRRD field 'endian' must be little or big, got '${endianField}'`);
    }
  }
  const le = endianField !== "big";
  const lineSkip = Number(fields["line skip"] ?? fields["lineskip"] ?? "0");
  if (lineSkip !== 0) throw fileError(path, "NRRD 'line skip' is not supported");
  const byteSkip = Number(fields["byte skip"] ?? fields["byteskip"] ?? "0");
  if (!Number.isInteger(byteSkip) || byteSkip < -1) {
    throw fileError(path, `bad NRRD byte skip '${fields["byte skip"]}'`);
  }
  const n = prod(shape);
  const nbytes = n * elem;
  let payload = bytes.subarray(he.dataStart);
  let fileOrder: NumericArray;
  if (encoding === "raw" || encoding === "gzip" || encoding === "gz") {
    if (encoding !== "raw") payload = gunzipOrThrow(path, payload);
    let off = byteSkip;
    if (byteSkip === -1) off = payload.length - nbytes;
    const have = payload.length - Math.max(off, 0);
    if (off < 0 || have !== nbytes) {
      throw fileError(
        path,
        `data size ${payload.length} bytes${
          encoding === "raw" ? "" : " (decompressed)"
        } does not match the header (${shape.join("x")} ${type} = ${nbytes} bytes${
          byteSkip ? ` after byte skip ${byteSkip}` : ""
        })${have < nbytes ? ": file truncated" : ""}`,
      );
    }
    fileOrder = decodeElements(payload, off, n, type, le);
  } else if (encoding === "ascii" || encoding === "text" || encoding === "txt") {
    const toks = new TextDecoder("latin1").decode(payload).trim().split(/[\s,]+/).filter((t) =>
      t !== ""
    );
    if (toks.length !== n) {
      throw fileError(path, `ascii data has ${toks.length} values, header says ${n}`);
    }
    fileOrder = new ELEMENT[type].ctor(n);
    for (let i = 0; i < n; i++) {
      const v = Number(toks[i]);
      if (Number.isNaN(v) && toks[i] !== "NaN" && toks[i] !== "nan") {
        throw fileError(path, `ascii value ${JSON.stringify(toks[i])} is not a number`);
      }
      fileOrder[i] = v;
    }
  } else {
    throw fileError(path, `unsupported NRRD encoding '${encoding}' (raw, gzip and ascii are read)`);
  }
  const data = fortranToC(fileOrder, shape);
  return { data, shape, spacing: nrrdSpacing(fields), type, fields, keyValues };
}

function nrrdSpacing(fields: Record<string, string>): [number, number, number] {
  const out: number[] = [];
  const dirs = fields["space directions"];
  if (dirs !== undefined) {
    for (const tok of dirs.match(/\([^)]*\)|none/g) ?? []) {
      if (tok === "none") continue;
      const v = tok.slice(1, -1).split(",").map(Number);
      const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
      out.push(Number.isFinite(norm) && norm > 0 ? norm : 1);
    }
  } else if (fields["spacings"] !== undefined) {
    for (const t of fields["spacings"].split(/\s+/)) {
      const v = Math.abs(Number(t));
      out.push(Number.isFinite(v) && v > 0 ? v : 1);
    }
  }
  return [out[0] ?? 1, out[1] ?? 1, out[2] ?? 1];
}

/** What {@link encodeNrrd} writes. */
export interface NrrdWriteInput {
  /** Samples in our C order over `shape`. */
  data: NumericArray;
  /** Sizes in NRRD (fast-to-slow) order. */
  shape: number[];
  spacing?: [number, number, number];
  encoding?: "raw" | "gzip";
  littleEndian?: boolean;
}

const NRRD_TYPE_OUT: Record<ElementType, string> = {
  uint8: "uint8",
  int8: "int8",
  uint16: "uint16",
  int16: "int16",
  uint32: "uint32",
  int32: "int32",
  float32: "float",
  float64: "double",
};

/** Encode an NRRD0004 file with attached data. */
export function encodeNrrd(v: NrrdWriteInput): Uint8Array {
  const type = elementTypeOf(v.data);
  const le = v.littleEndian ?? true;
  const enc = v.encoding ?? "raw";
  const sp = v.spacing ?? [1, 1, 1];
  const dirs = v.shape.map((_, a) =>
    a < 3 ? `(${[0, 1, 2].map((b) => (a === b ? sp[a] : 0)).join(",")})` : "none"
  );
  const header = [
    "NRRD0004",
    "# written by semiseg-bench",
    `type: ${NRRD_TYPE_OUT[type]}`,
    `dimension: ${v.shape.length}`,
    "space: left-posterior-superior",
    `sizes: ${v.shape.join(" ")}`,
    `space directions: ${dirs.join(" ")}`,
    `kinds: ${v.shape.map((_, a) => (a < 3 ? "domain" : "list")).join(" ")}`,
    `endian: ${le ? "little" : "big"}`,
    `encoding: ${enc}`,
    "space origin: (0,0,0)",
    "",
    "",
  ].join("\n");
  let payload = encodeElements(cToFortran(v.data, v.shape), le);
  if (enc === "gzip") payload = gzip(payload);
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(h.length + payload.length);
  out.set(h);
  out.set(payload, h.length);
  return out;
}
