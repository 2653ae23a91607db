/**
 * The results store: one JSON file per finished run under `results/<benchmark>/runs/`, one
 * binary checkpoint per unfinished run under `checkpoints/` (with the per-case results of an
 * evaluation in progress, `<run-id>.eval.json`), failures under `failed/`.
 * Every write is atomic (temp file in the same folder + rename), so a file is complete or
 * absent, concurrent writers (shards, SLURM tasks) never collide, and a failed run never
 * touches a finished one. Run files, evaluation files and checkpoints carry a SHA-256 of their
 * content, verified on read: a file changed after it was written (overwritten in place, edited)
 * is named and set aside as `<file>.bad`, never used. Files written before checksums existed
 * still read, unverified and without a warning.
 * @module
 */
import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import type { MethodState, StoredTensor } from "../../methods/types.ts";
import type { Provenance } from "../../methods/nn/backend.ts";
import type { RunWeights } from "./torch_weights.ts";
import type { ExternalCheckpoint } from "./rescore.ts";
import type { CodeHash } from "./code_hash.ts";

/** Metrics of one test case. */
export interface CaseMetrics {
  id: string;
  values: Record<string, number>;
}

/** One point of the loss-curve summary: means of each loss over a window of iterations. */
export interface CurvePoint {
  /** Last iteration (exclusive) of the window. */
  iteration: number;
  values: Record<string, number>;
}

/** What a finished run stores. */
export interface RunRecord {
  runId: string;
  benchmark: string;
  rowKey: string;
  method: string;
  labeled: number;
  seed: number;
  hyperParams: Record<string, unknown>;
  /** The full run spec the id hashes. */
  spec: Record<string, unknown>;
  split: { name: string; hash: string };
  provenance: Provenance & { gitCommit: string };
  timing: { trainSeconds: number; evalSeconds: number; iterationsPerSecond: number };
  curve: CurvePoint[];
  cases: CaseMetrics[];
  /** Mean over cases, by metric. */
  mean: Record<string, number>;
  /** Evaluation settings that change the numbers' meaning. */
  protocol: { units: string; emptyPolicy: string; selection: string; lcc: boolean };
  finishedAt: string;
  /** `.pth` files of the run's final and selected weights (`weights/`, paths relative to the benchmark folder). */
  weights?: RunWeights;
  /** Set on runs that re-scored an external checkpoint (`deno task evaluate`): no training. */
  checkpoint?: ExternalCheckpoint;
  /** The code the run used (absent in files written before code hashes: unknown code). */
  code?: CodeHash;
}

/**
 * The per-case results of a run's evaluation in progress (`checkpoints/<run-id>.eval.json`):
 * a resumed evaluation skips these cases. Valid only for the same trained state and code.
 */
export interface EvalProgressFile {
  runId: string;
  /** What was evaluated: training iterations done, the selected iteration, the code hash. */
  key: { iteration: number; selected: number | null; code: string };
  /** Finished cases, in evaluation order. */
  cases: CaseMetrics[];
  /** Seconds spent evaluating so far. */
  evalSeconds: number;
}

/** A failed run's one-line reason. */
export interface FailureRecord {
  runId: string;
  error: string;
  iteration: number | null;
  at: string;
}

/** A checkpoint file that does not decode (truncated, bad magic, bad header, bad checksum): names the file. */
export class CorruptCheckpointError extends Error {
  constructor(readonly path: string, why: string) {
    super(`${path}: corrupt checkpoint (${why})`);
  }
}

/** A JSON file (run or evaluation file) whose content does not match its stored SHA-256. */
export class ChecksumMismatchError extends Error {
  constructor(readonly path: string) {
    super(`${path}: checksum mismatch (its content changed after it was written)`);
  }
}

/** The field of a JSON file that holds the SHA-256 of the rest. */
const CHECKSUM = "checksum";

function sha256Hex(bytes: Uint8Array | string): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** `value` as pretty JSON with a `checksum` field: the SHA-256 of its compact JSON without it. */
function withChecksum(value: object): Uint8Array {
  const sum = `sha256:${sha256Hex(JSON.stringify(value))}`;
  return new TextEncoder().encode(JSON.stringify({ ...value, [CHECKSUM]: sum }, null, 1));
}

/**
 * Verify and drop the `checksum` field of parsed JSON `raw` read from `path` (absent: an older
 * file, accepted as it is). JSON.stringify of the parsed object reproduces the text that was
 * hashed (same key order, numbers round-trip), so any change of a value is detected.
 */
function verifyChecksum(raw: unknown, path: string): unknown {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw) || !(CHECKSUM in raw)) {
    return raw;
  }
  const { [CHECKSUM]: sum, ...rest } = raw as Record<string, unknown>;
  if (sum !== `sha256:${sha256Hex(JSON.stringify(rest))}`) throw new ChecksumMismatchError(path);
  return rest;
}

/** Decode the checkpoint file at `p`, or null when it does not exist (corrupt: an error). */
async function readCheckpointFile(p: string): Promise<Checkpoint | null> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(p);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  return decodeCheckpoint(bytes, p);
}

/** Paths of a benchmark's result folder. */
export class ResultStore {
  constructor(readonly root: string, readonly benchmark: string) {}

  get dir(): string {
    return join(this.root, this.benchmark);
  }
  runPath(runId: string): string {
    return join(this.dir, "runs", `${runId}.json`);
  }
  checkpointPath(runId: string): string {
    return join(this.dir, "checkpoints", `${runId}.ckpt`);
  }
  failurePath(runId: string): string {
    return join(this.dir, "failed", `${runId}.json`);
  }
  /** Per-case results of the run's evaluation in progress. */
  evalPath(runId: string): string {
    return join(this.dir, "checkpoints", `${runId}.eval.json`);
  }

  /**
   * Where a bad file's line goes ({@link readAllRuns} sets aside run files whose checksum
   * does not match): stderr unless replaced.
   */
  notice: (line: string) => void = (line) =>
    Deno.stderr.writeSync(new TextEncoder().encode(line + "\n"));

  /** The folders a run writes into: the benchmark folder, runs/, checkpoints/, failed/, weights/. */
  writableDirs(): string[] {
    return [
      this.dir,
      ...["runs", "checkpoints", "failed", "weights"].map((d) => join(this.dir, d)),
    ];
  }

  /**
   * The finished run, or null when absent. A file that is not JSON, or JSON that is not a run
   * record ({@link checkRunRecord}), is a one-line error naming it; one whose checksum does not
   * match is a {@link ChecksumMismatchError} (see {@link setAsideRun}).
   */
  async readRun(runId: string): Promise<RunRecord | null> {
    return await readRunFile(this.runPath(runId));
  }

  /**
   * Rename the run file of `runId` to `<file>.bad` (its checksum did not match: kept for
   * inspection, never read), so that the run is planned again. Returns the new name.
   */
  async setAsideRun(runId: string): Promise<string> {
    const p = this.runPath(runId);
    await Deno.rename(p, `${p}.bad`);
    return `${p}.bad`;
  }

  /**
   * Every finished run of the benchmark, sorted by run id. A run file whose checksum does not
   * match is set aside ({@link setAsideRun}) with one {@link notice} line, and left out.
   */
  async readAllRuns(): Promise<RunRecord[]> {
    const dir = join(this.dir, "runs");
    const out: RunRecord[] = [];
    try {
      for await (const e of Deno.readDir(dir)) {
        if (!e.isFile || !e.name.endsWith(".json")) continue;
        try {
          const r = await readRunFile(join(dir, e.name));
          if (r) out.push(r);
        } catch (err) {
          if (!(err instanceof ChecksumMismatchError)) throw err;
          const aside = await this.setAsideRun(e.name.replace(/\.json$/, ""));
          this.notice(`${err.message}; set aside as ${aside}, its run will be planned again`);
        }
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return out.sort((a, b) => a.runId.localeCompare(b.runId));
  }

  /**
   * Store a finished run (atomically, with its checksum) and drop its checkpoints, its
   * evaluation progress and any failure record.
   */
  async writeRun(rec: RunRecord): Promise<void> {
    await writeAtomic(this.runPath(rec.runId), withChecksum(rec));
    await removeIfPresent(this.checkpointPath(rec.runId));
    await removeIfPresent(this.bestPath(rec.runId));
    await removeIfPresent(this.evalPath(rec.runId));
    await removeIfPresent(this.failurePath(rec.runId));
  }

  /** Store the per-case results of an evaluation in progress (atomically, checksummed). */
  async writeEvalProgress(e: EvalProgressFile): Promise<void> {
    await writeAtomic(this.evalPath(e.runId), withChecksum(e));
  }

  /**
   * The evaluation progress of `runId`, or null when absent. One that does not parse, is not
   * such a file or fails its checksum is set aside as `<file>.bad` (returned as `aside`): its
   * cases are evaluated again.
   */
  async readEvalProgress(
    runId: string,
  ): Promise<{ progress: EvalProgressFile | null; aside: string | null; why: string }> {
    const p = this.evalPath(runId);
    try {
      const raw = await readJsonOrNull<{ json: unknown }>(p, (json) => ({ json }));
      if (raw === null) return { progress: null, aside: null, why: "" };
      const v = verifyChecksum(raw.json, p) as EvalProgressFile;
      const ok = typeof v === "object" && v !== null && v.runId === runId &&
        Array.isArray(v.cases) && typeof v.key === "object" && v.key !== null &&
        typeof v.evalSeconds === "number";
      if (!ok) throw new Error(`${p}: not an evaluation progress file`);
      return { progress: v, aside: null, why: "" };
    } catch (e) {
      await Deno.rename(p, `${p}.bad`);
      return { progress: null, aside: `${p}.bad`, why: (e as Error).message.split("\n")[0]! };
    }
  }

  /** Drop the evaluation progress of `runId` (its trained state is abandoned). */
  async removeEvalProgress(runId: string): Promise<void> {
    await removeIfPresent(this.evalPath(runId));
  }

  /** Record a failure; never touches a finished run. */
  async writeFailure(f: FailureRecord): Promise<void> {
    await writeAtomic(
      this.failurePath(f.runId),
      new TextEncoder().encode(JSON.stringify(f, null, 1)),
    );
  }

  async readFailure(runId: string): Promise<FailureRecord | null> {
    return await readJsonOrNull<FailureRecord>(this.failurePath(runId));
  }

  bestPath(runId: string): string {
    return join(this.dir, "checkpoints", `${runId}.best.ckpt`);
  }

  /** Persist the best-on-validation state so a resumed run keeps its selection. */
  async writeBest(runId: string, b: BestState): Promise<void> {
    await writeAtomic(
      this.bestPath(runId),
      encodeCheckpoint({ iteration: b.iteration, method: b.state, harness: { score: b.score } }),
    );
  }

  async readBest(runId: string): Promise<BestState | null> {
    const c = await readCheckpointFile(this.bestPath(runId));
    return c && { iteration: c.iteration, score: c.harness["score"] as number, state: c.method };
  }

  async writeCheckpoint(runId: string, ckpt: Checkpoint): Promise<void> {
    await writeAtomic(this.checkpointPath(runId), encodeCheckpoint(ckpt));
  }

  /** The run's checkpoint, or null. A corrupt checkpoint is an error naming the file. */
  async readCheckpoint(runId: string): Promise<Checkpoint | null> {
    return await readCheckpointFile(this.checkpointPath(runId));
  }

  /**
   * Clear the way for a restart from iteration 0 after `corrupt` (the run's checkpoint or its
   * best-val state) failed to decode: rename it to `<file>.bad` (kept for inspection, never
   * read) and remove the run's other checkpoint file and its evaluation progress, whose state
   * belongs to the abandoned training. Returns the new name of the corrupt file.
   */
  async setAsideCheckpoints(runId: string, corrupt: string): Promise<string> {
    const aside = `${corrupt}.bad`;
    await Deno.rename(corrupt, aside);
    for (const p of [this.checkpointPath(runId), this.bestPath(runId), this.evalPath(runId)]) {
      if (p !== corrupt) await removeIfPresent(p);
    }
    return aside;
  }

  /** Write a text artefact (table, report) atomically into the benchmark folder. */
  async writeText(name: string, text: string): Promise<string> {
    const p = join(this.dir, name);
    await writeAtomic(p, new TextEncoder().encode(text));
    return p;
  }
}

/** A resumable training snapshot: method state plus the harness's own state. */
export interface Checkpoint {
  /** Next iteration to run. */
  iteration: number;
  method: MethodState;
  /** Harness state: sampler and RNG states, loss-curve accumulators, elapsed time. */
  harness: Record<string, unknown>;
}

/** The state that scored best on the validation split so far (best-val selection). */
export interface BestState {
  iteration: number;
  score: number;
  state: MethodState;
}

/** Magic of checkpoints written before checksums (still read, unverified). */
const MAGIC_V1 = "SSBCKPT1";
const MAGIC = "SSBCKPT2";
/** Bytes of the SHA-256 that follows the magic in a version-2 checkpoint. */
const DIGEST = 32;

/**
 * Binary checkpoint: magic, the SHA-256 of everything after it (32 bytes), u32 header length,
 * JSON header (tensor shapes/offsets and the JSON state), then the float32 tensor data
 * (little-endian, 4-byte aligned). Version 1 (magic `SSBCKPT1`) had no SHA-256.
 */
export function encodeCheckpoint(c: Checkpoint): Uint8Array {
  const names = Object.keys(c.method.tensors).sort();
  const layout: Record<string, { shape: number[]; offset: number; length: number }> = {};
  let offset = 0;
  for (const n of names) {
    const t = c.method.tensors[n]!;
    layout[n] = { shape: t.shape, offset, length: t.values.length };
    offset += t.values.length;
  }
  const header = new TextEncoder().encode(JSON.stringify({
    iteration: c.iteration,
    extra: c.method.extra,
    rng: c.method.rng ?? null,
    harness: c.harness,
    layout,
  }));
  const base = MAGIC.length + DIGEST;
  const headerPadded = Math.ceil((base + 4 + header.length) / 4) * 4;
  const out = new Uint8Array(headerPadded + offset * 4);
  out.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(out.buffer).setUint32(base, header.length, true);
  out.set(header, base + 4);
  const f32 = new Float32Array(out.buffer, headerPadded, offset);
  for (const n of names) f32.set(c.method.tensors[n]!.values, layout[n]!.offset);
  out.set(createHash("sha256").update(out.subarray(base)).digest(), MAGIC.length);
  return out;
}

/** Inverse of {@link encodeCheckpoint}; one-line error naming `path` when corrupt. */
export function decodeCheckpoint(bytes: Uint8Array, path: string): Checkpoint {
  const bad = (why: string) => new CorruptCheckpointError(path, why);
  if (bytes.length < MAGIC.length) throw bad("too short");
  const magic = new TextDecoder().decode(bytes.subarray(0, MAGIC.length));
  if (magic !== MAGIC && magic !== MAGIC_V1) throw bad("bad magic");
  const base = MAGIC.length + (magic === MAGIC ? DIGEST : 0);
  if (bytes.length < base + 4) throw bad("too short");
  const hlen = new DataView(bytes.buffer, bytes.byteOffset).getUint32(base, true);
  if (base + 4 + hlen > bytes.length) throw bad("header length beyond end of file");
  let head: {
    iteration: number;
    extra: Record<string, unknown>;
    rng: MethodState["rng"] | null;
    harness: Record<string, unknown>;
    layout: Record<string, { shape: number[]; offset: number; length: number }>;
  };
  try {
    head = JSON.parse(new TextDecoder().decode(bytes.subarray(base + 4, base + 4 + hlen)));
  } catch {
    throw bad("header is not JSON");
  }
  if (typeof head !== "object" || head === null || typeof head.layout !== "object") {
    throw bad("header has no tensor layout");
  }
  const start = Math.ceil((base + 4 + hlen) / 4) * 4;
  const total = Object.values(head.layout).reduce((s, l) => s + l.length, 0);
  if (start + total * 4 !== bytes.length) {
    throw bad(`expected ${start + total * 4} bytes, found ${bytes.length}`);
  }
  if (magic === MAGIC) {
    const sum = createHash("sha256").update(bytes.subarray(base)).digest();
    const stored = bytes.subarray(MAGIC.length, base);
    if (sum.length !== DIGEST || sum.some((b, i) => b !== stored[i])) {
      throw bad("checksum mismatch: its content changed after it was written");
    }
  }
  const copy = bytes.slice(start).buffer;
  const tensors: Record<string, StoredTensor> = {};
  for (const [n, l] of Object.entries(head.layout)) {
    try {
      tensors[n] = { shape: l.shape, values: new Float32Array(copy, l.offset * 4, l.length) };
    } catch {
      throw bad(`tensor ${n} lies outside the data`);
    }
  }
  const method: MethodState = { tensors, extra: head.extra };
  if (head.rng) method.rng = head.rng;
  return { iteration: head.iteration, method, harness: head.harness };
}

/** Write `bytes` to `path` atomically: temp file in the same folder, fsync, rename. */
export async function writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    const f = await Deno.open(tmp, { write: true, create: true, truncate: true });
    try {
      let off = 0;
      while (off < bytes.length) off += await f.write(bytes.subarray(off));
      await f.sync();
    } finally {
      f.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await removeIfPresent(tmp);
    throw e;
  }
}

async function removeIfPresent(p: string): Promise<void> {
  try {
    await Deno.remove(p);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/**
 * The run file at `p` checked against its checksum (when it has one) and the run-record
 * schema, or null when absent.
 */
async function readRunFile(p: string): Promise<RunRecord | null> {
  const raw = await readJsonOrNull<{ json: unknown }>(p, (json) => ({ json }));
  return raw === null ? null : checkRunRecord(verifyChecksum(raw.json, p), p);
}

/**
 * Check, before any training, that a run can write every folder in `dirs` (created when
 * missing): a probe file is written and removed in each. The first that fails is a one-line
 * error naming it, so a read-only results folder is found before hours of training, not after.
 */
export async function checkWritable(
  dirs: string[],
  what = "results, checkpoints and failure records",
): Promise<void> {
  for (const dir of dirs) {
    const probe = join(dir, `.write-probe-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`);
    try {
      await Deno.mkdir(dir, { recursive: true });
      await Deno.writeFile(probe, new Uint8Array([1]));
      await Deno.remove(probe);
    } catch (e) {
      const why = (e instanceof Error ? e.message : String(e)).split("\n")[0]!
        .replace(/: (mkdir|open|writefile|remove) '.*'$/, "");
      throw new Error(
        `${dir}: not writable (${why}): ${what} could not be stored; pass --out DIR on a writable disk or fix the folder's permissions`,
      );
    }
  }
}

const FIX = "delete it to recompute that run";

function kind(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

/**
 * `raw` (the parsed JSON of run file `path`) as a {@link RunRecord}, or a one-line error
 * naming the file, the first field that is missing or of the wrong type, and the fix.
 * Metric values may be null (JSON's spelling of NaN and infinities).
 */
export function checkRunRecord(raw: unknown, path: string): RunRecord {
  const bad = (why: string) => new Error(`${path}: not a run record (${why}; ${FIX})`);
  const isObj = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  if (!isObj(raw)) throw bad(`the file holds ${kind(raw)}, expected an object`);
  type Want = "string" | "number" | "object" | "array" | "metric";
  const check: Record<Want, (v: unknown) => boolean> = {
    string: (v) => typeof v === "string",
    number: (v) => typeof v === "number",
    object: isObj,
    array: Array.isArray,
    metric: (v) => typeof v === "number" || v === null,
  };
  const field = (obj: Record<string, unknown>, name: string, want: Want, at: string) => {
    const v = obj[name];
    const ok = check[want](v);
    if (ok) return v;
    const where = at === "" ? `'${name}'` : `'${at}.${name}'`;
    const expected = want === "metric"
      ? "a number"
      : want === "array" || want === "object"
      ? `an ${want}`
      : `a ${want}`;
    throw bad(
      v === undefined ? `missing ${where}` : `${where} is ${kind(v)}, expected ${expected}`,
    );
  };
  const fields: [string, Want][] = [
    ["runId", "string"],
    ["benchmark", "string"],
    ["rowKey", "string"],
    ["method", "string"],
    ["labeled", "number"],
    ["seed", "number"],
    ["hyperParams", "object"],
    ["spec", "object"],
    ["split", "object"],
    ["provenance", "object"],
    ["timing", "object"],
    ["curve", "array"],
    ["cases", "array"],
    ["mean", "object"],
    ["protocol", "object"],
    ["finishedAt", "string"],
  ];
  for (const [name, want] of fields) field(raw, name, want, "");
  const split = raw["split"] as Record<string, unknown>;
  field(split, "name", "string", "split");
  field(split, "hash", "string", "split");
  const timing = raw["timing"] as Record<string, unknown>;
  for (const k of ["trainSeconds", "evalSeconds", "iterationsPerSecond"]) {
    field(timing, k, "metric", "timing");
  }
  const values = (obj: Record<string, unknown>, at: string) => {
    for (const k of Object.keys(obj)) field(obj, k, "metric", at);
  };
  (raw["cases"] as unknown[]).forEach((c, i) => {
    const at = `cases[${i}]`;
    if (!isObj(c)) throw bad(`'${at}' is ${kind(c)}, expected an object`);
    field(c, "id", "string", at);
    values(field(c, "values", "object", at) as Record<string, unknown>, `${at}.values`);
  });
  (raw["curve"] as unknown[]).forEach((c, i) => {
    const at = `curve[${i}]`;
    if (!isObj(c)) throw bad(`'${at}' is ${kind(c)}, expected an object`);
    field(c, "iteration", "number", at);
    values(field(c, "values", "object", at) as Record<string, unknown>, `${at}.values`);
  });
  values(raw["mean"] as Record<string, unknown>, "mean");
  if (raw["code"] !== undefined) {
    const code = field(raw, "code", "object", "") as Record<string, unknown>;
    field(code, "hash", "string", "code");
    field(code, "files", "number", "code");
    field(code, "rule", "string", "code");
    field(code, "sources", "object", "code");
  }
  const stem = basename(path).replace(/\.json$/, "");
  if (raw["runId"] !== stem) {
    throw bad(`its runId '${raw["runId"]}' is not its file name's '${stem}'`);
  }
  return raw as unknown as RunRecord;
}

/** The parsed file at `p` (through `wrap`, so that a file holding `null` is not absent), or null when absent. */
async function readJsonOrNull<T>(
  p: string,
  wrap: (json: unknown) => T = (json) => json as T,
): Promise<T | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(p);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  try {
    return wrap(JSON.parse(text));
  } catch {
    throw new Error(`${p}: not valid JSON (delete it to recompute that run)`);
  }
}
