/**
 * `deno task data la --download`: fetch the UA-MT preprocessed LA cases and the split lists from the
 * yulequan/UA-MT repository's raw files, every file pinned by size and SHA-256 in
 * `datasets/splits/la_files.json` (one commit for all of them).
 *
 * Each file is streamed into `<final>.part` while its SHA-256 is computed; a `.part` left by an
 * interrupted run is resumed with an HTTP Range request (a server that answers 200 instead restarts
 * the file); transient failures (network errors, a connection that stalls, HTTP 408/429/5xx, a body
 * cut short) are retried with a doubling delay; a complete file whose hash matches is synced and
 * renamed onto its final name, so a final name never holds a partial file. A file whose size or
 * hash does not match is named in one line and deleted. Files already on disk with the pinned hash
 * are kept as they are.
 *
 * The base URL defaults to `https://raw.githubusercontent.com/yulequan/UA-MT/<commit>`; `--from URL`
 * or `SEMISEG_LA_URL` replaces it (a mirror, or the tests' local server): each file is fetched from
 * `<base>/<path in the UA-MT repository>`, every path segment percent-encoded.
 * @module
 */
import { createHash } from "node:crypto";
import manifestJson from "./splits/la_files.json" with { type: "json" };
import { isDir } from "./common.ts";

/** One pinned file of the manifest. */
export interface ManifestFile {
  /** Path in the UA-MT repository at `commit`. */
  path: string;
  /** Path under the dataset root. */
  local: string;
  size: number;
  sha256: string;
}

/** The pinned file list: every file taken from the one commit. */
export interface Manifest {
  commit: string;
  files: ManifestFile[];
}

const MANIFEST_PATH = "datasets/splits/la_files.json";

/** Validate the manifest's shape; throws one line naming the file and the bad entry. */
export function validateManifest(where: string, raw: unknown): Manifest {
  const bad = (what: string): never => {
    throw new Error(`${where}: ${what}`);
  };
  if (typeof raw !== "object" || raw === null) bad("not a JSON object");
  const o = raw as Record<string, unknown>;
  if (typeof o.commit !== "string" || !/^[0-9a-f]{40}$/.test(o.commit)) {
    bad("'commit' must be 40 hex digits");
  }
  if (!Array.isArray(o.files) || o.files.length === 0) bad("'files' must be a non-empty array");
  const files: ManifestFile[] = [];
  const seen = new Set<string>();
  for (const [i, f] of (o.files as unknown[]).entries()) {
    const e = f as Record<string, unknown>;
    if (
      typeof e !== "object" || e === null || typeof e.path !== "string" ||
      typeof e.local !== "string" || !Number.isSafeInteger(e.size) || (e.size as number) < 0 ||
      typeof e.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(e.sha256)
    ) {
      bad(`files[${i}] needs path, local, size (bytes) and sha256 (64 hex digits)`);
    }
    if (e.local === "" || (e.local as string).split("/").some((s) => s === ".." || s === "")) {
      bad(`files[${i}].local '${e.local}' must be a relative path without '..'`);
    }
    if (seen.has(e.local as string)) bad(`files[${i}].local '${e.local}' is listed twice`);
    seen.add(e.local as string);
    files.push({
      path: e.path as string,
      local: e.local as string,
      size: e.size as number,
      sha256: e.sha256 as string,
    });
  }
  return { commit: o.commit as string, files };
}

/** The committed LA manifest. */
export const LA_MANIFEST: Manifest = validateManifest(MANIFEST_PATH, manifestJson);

/** Case id of a manifest entry (`<ID>/mri_norm2.h5`), or null for the lists. */
export function caseIdOf(f: ManifestFile): string | null {
  const m = /^([^/]+)\/mri_norm2\.h5$/.exec(f.local);
  return m ? m[1]! : null;
}

/** The case ids of the manifest, in its order (sorted). */
export function manifestCaseIds(m: Manifest = LA_MANIFEST): string[] {
  return m.files.map(caseIdOf).filter((id): id is string => id !== null);
}

/** Where the files come from when neither `--from` nor `SEMISEG_LA_URL` says otherwise. */
export function defaultBaseUrl(m: Manifest = LA_MANIFEST): string {
  return `https://raw.githubusercontent.com/yulequan/UA-MT/${m.commit}`;
}

/** `<base>/<path>` with each path segment percent-encoded (the space becomes %20). */
export function fileUrl(base: string, path: string): string {
  return `${base.replace(/\/+$/, "")}/${path.split("/").map(encodeURIComponent).join("/")}`;
}

/** Where progress goes: stderr by default. */
export interface ProgressSink {
  isTerminal: boolean;
  write(text: string): void;
}

const enc = new TextEncoder();

/** Progress on stderr: a redrawn line on a terminal, else a plain line every few seconds. */
export function stderrSink(): ProgressSink {
  return {
    isTerminal: Deno.stderr.isTerminal(),
    write: (t) => {
      Deno.stderr.writeSync(enc.encode(t));
    },
  };
}

/** Options of {@link downloadLa}. */
export interface DownloadOptions {
  /** Dataset root (the layout datasets/la.ts reads). */
  root: string;
  /** Base URL; default {@link defaultBaseUrl}. */
  baseUrl?: string;
  /** Only these case ids (the lists are always fetched); default every case of the manifest. */
  ids?: readonly string[];
  /** Retries after the first attempt of each file (default 4). */
  retries?: number;
  /** First retry delay in ms, doubled after each retry (default 1000). */
  retryDelayMs?: number;
  /** A connection that delivers no byte for this long is dropped and retried (default 60 s). */
  stallMs?: number;
  /** Files fetched at once (default 4). */
  concurrency?: number;
  /** Result lines (mismatches, failures, the summary). */
  print: (line: string) => void;
  /** Progress; default stderr. */
  progress?: ProgressSink;
  /** Period of the plain progress lines off a terminal (default 5000 ms). */
  progressIntervalMs?: number;
  manifest?: Manifest;
}

/** What {@link downloadLa} did. */
export interface DownloadResult {
  /** Files fetched in this run. */
  downloaded: number;
  /** Files already on disk with the pinned hash. */
  present: number;
  /** One line per file that is not on disk at the end. */
  failed: string[];
  /** Bytes transferred in this run. */
  bytes: number;
  seconds: number;
}

function fmtMB(b: number): string {
  return `${(b / 1e6).toFixed(1)} MB`;
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const t = Math.max(0, Math.round(s));
  const h = Math.floor(t / 3600), m = Math.floor(t / 60) % 60, ss = t % 60;
  const p = (n: number) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${p(m)}:${p(ss)}` : `${m}:${p(ss)}`;
}

class Progress {
  readonly #sink: ProgressSink;
  readonly #interval: number;
  readonly #t0 = performance.now();
  #last = -Infinity;
  #shown = false;
  total: number;
  done = 0;
  transferred = 0;
  files = 0;
  readonly nFiles: number;

  constructor(sink: ProgressSink, interval: number, total: number, nFiles: number) {
    this.#sink = sink;
    this.#interval = interval;
    this.total = total;
    this.nFiles = nFiles;
    // Off a terminal the first line comes after one period (then the last one at the end).
    if (!sink.isTerminal) this.#last = this.#t0;
  }

  line(): string {
    const s = (performance.now() - this.#t0) / 1000;
    const rate = s > 0 ? this.transferred / s : 0;
    const eta = rate > 0 ? (this.total - this.done) / rate : Infinity;
    return `la download: ${fmtMB(this.done)} / ${
      fmtMB(this.total)
    }, ${this.files}/${this.nFiles} files, ${fmtMB(rate)}/s, ETA ${fmtTime(eta)}`;
  }

  add(bytes: number, transferred: boolean): void {
    this.done += bytes;
    if (transferred) this.transferred += bytes;
    this.tick(false);
  }

  tick(force: boolean): void {
    const now = performance.now();
    if (this.#sink.isTerminal) {
      if (!force && now - this.#last < 100) return;
      this.#sink.write(`\r\x1b[K${this.line()}`);
      this.#shown = true;
    } else {
      if (!force && now - this.#last < this.#interval) return;
      this.#sink.write(`${this.line()}\n`);
    }
    this.#last = now;
  }

  /** Print a result line without tearing the redrawn bar. */
  log(print: (l: string) => void, l: string): void {
    if (this.#shown) this.#sink.write("\r\x1b[K");
    print(l);
    if (this.#shown) this.#sink.write(this.line());
  }

  end(): void {
    this.tick(true);
    if (this.#sink.isTerminal) this.#sink.write("\n");
  }
}

function statSize(path: string): number | null {
  try {
    const s = Deno.statSync(path);
    return s.isFile ? s.size : null;
  } catch {
    return null;
  }
}

async function hashFile(path: string, hasher: ReturnType<typeof createHash>): Promise<void> {
  using f = await Deno.open(path, { read: true });
  for await (const chunk of f.readable) hasher.update(chunk);
}

async function writeAll(f: Deno.FsFile, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await f.write(data.subarray(off));
}

function removeQuiet(path: string): void {
  try {
    Deno.removeSync(path);
  } catch {
    // already gone
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** An error worth a retry (the part file is kept). */
class Transient extends Error {}

/** An error inside the body loop that no retry fixes. */
class Permanent extends Error {}

interface Ctx {
  base: string;
  retries: number;
  delay: number;
  stallMs: number;
  progress: Progress;
  print: (l: string) => void;
}

/**
 * One attempt: resume or start `part`, stream the body into it. Returns the part's hash when the
 * body is complete; throws Transient for a retry, Error for a permanent failure.
 */
async function attempt(f: ManifestFile, part: string, ctx: Ctx): Promise<string> {
  let offset = statSize(part) ?? 0;
  if (offset > f.size) {
    removeQuiet(part);
    offset = 0;
  }
  let hasher = createHash("sha256");
  if (offset > 0) await hashFile(part, hasher);
  if (offset === f.size) return hasher.digest("hex"); // complete before the rename: verify it
  const url = fileUrl(ctx.base, f.path);
  const ac = new AbortController();
  let timer = setTimeout(() => ac.abort(), ctx.stallMs);
  const counted = { n: offset }; // bytes of this file counted in the progress
  ctx.progress.add(offset, false);
  let file: Deno.FsFile | null = null;
  try {
    let res: Response;
    try {
      res = await fetch(url, {
        headers: offset > 0 ? { Range: `bytes=${offset}-` } : {},
        signal: ac.signal,
      });
    } catch (e) {
      throw new Transient(ac.signal.aborted ? `no answer in ${ctx.stallMs} ms` : errMsg(e));
    }
    const status = `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ""}`;
    if (res.status === 416) {
      await res.body?.cancel();
      removeQuiet(part);
      throw new Transient(`${status} for a resume at byte ${offset}: restarting the file`);
    }
    if (res.status === 408 || res.status === 429 || res.status >= 500) {
      await res.body?.cancel();
      throw new Transient(`${status} from ${url}`);
    }
    if (res.status !== 200 && res.status !== 206) {
      await res.body?.cancel();
      throw new Error(`${status} from ${url}`);
    }
    let append = offset > 0;
    if (res.status === 206) {
      const cr = res.headers.get("content-range") ?? "";
      if (!new RegExp(`^bytes ${offset}-`).test(cr)) {
        await res.body?.cancel();
        removeQuiet(part);
        throw new Transient(`a resume at byte ${offset} got Content-Range '${cr}': restarting`);
      }
    } else if (append) {
      // The server ignored the Range header: start the file over.
      append = false;
      hasher = createHash("sha256");
      ctx.progress.add(-counted.n, false);
      counted.n = 0;
      offset = 0;
    }
    file = await Deno.open(part, { write: true, create: true, append, truncate: !append });
    let got = offset;
    if (res.body === null) throw new Transient(`empty body from ${url}`);
    try {
      for await (const chunk of res.body) {
        clearTimeout(timer);
        timer = setTimeout(() => ac.abort(), ctx.stallMs);
        if (got + chunk.length > f.size) {
          throw new Permanent(
            `${url} sent more than the ${f.size} bytes pinned in ${MANIFEST_PATH}`,
          );
        }
        try {
          await writeAll(file, chunk);
        } catch (e) {
          throw new Permanent(`cannot write ${part}: ${errMsg(e)}`);
        }
        hasher.update(chunk);
        got += chunk.length;
        counted.n += chunk.length;
        ctx.progress.add(chunk.length, true);
      }
    } catch (e) {
      if (e instanceof Permanent) throw e;
      throw new Transient(
        `${
          ac.signal.aborted ? `stalled for ${ctx.stallMs} ms` : errMsg(e)
        } after ${got} of ${f.size} bytes`,
      );
    }
    if (got < f.size) throw new Transient(`connection closed after ${got} of ${f.size} bytes`);
    await file.syncData();
    return hasher.digest("hex");
  } catch (e) {
    // Whatever this attempt counted comes off the bar; the next attempt recounts the part.
    ctx.progress.add(-counted.n, false);
    throw e;
  } finally {
    clearTimeout(timer);
    file?.close();
  }
}

function errMsg(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0]!;
}

/** Fetch one file; returns "present", "downloaded" or the one-line reason it is not on disk. */
async function fetchOne(f: ManifestFile, dest: string, ctx: Ctx): Promise<string> {
  const size = statSize(dest);
  if (size !== null) {
    if (size === f.size) {
      const h = createHash("sha256");
      await hashFile(dest, h);
      if (h.digest("hex") === f.sha256) {
        ctx.progress.add(f.size, false);
        return "present";
      }
    }
    ctx.progress.log(
      ctx.print,
      `${dest}: on disk but not the pinned file (size or SHA-256 differs): downloading it again`,
    );
  }
  await Deno.mkdir(dest.slice(0, dest.lastIndexOf("/")), { recursive: true });
  const part = `${dest}.part`;
  let delay = ctx.delay;
  let last = "";
  let restartedAfterMismatch = false;
  for (let i = 0; i <= ctx.retries; i++) {
    if (i > 0) {
      await sleep(delay);
      delay *= 2;
    }
    const resumed = (statSize(part) ?? 0) > 0;
    let digest: string;
    try {
      digest = await attempt(f, part, ctx);
    } catch (e) {
      if (e instanceof Transient) {
        last = e.message;
        continue;
      }
      removeQuiet(part);
      return `${dest}: not downloaded: ${errMsg(e)}`;
    }
    if (digest !== f.sha256) {
      removeQuiet(part);
      ctx.progress.add(-f.size, false);
      if (resumed && !restartedAfterMismatch) {
        // The kept part may be what was wrong: one fresh download before giving up.
        restartedAfterMismatch = true;
        i--;
        continue;
      }
      return `${dest}: SHA-256 mismatch (got ${digest}, pinned ${f.sha256} in ${MANIFEST_PATH}); not kept`;
    }
    await Deno.rename(part, dest);
    return "downloaded";
  }
  const kept = statSize(part);
  return `${dest}: failed after ${ctx.retries + 1} attempt${
    ctx.retries === 0 ? "" : "s"
  } (${last})${kept ? `; ${kept} bytes kept in ${part} for a resume` : ""}`;
}

/** Where a manifest file goes under `root`: cases into UA-MT's folder when the root has one. */
export function localPath(root: string, f: ManifestFile): string {
  const inner = `${root}/2018LA_Seg_Training Set`;
  return caseIdOf(f) !== null && isDir(inner) ? `${inner}/${f.local}` : `${root}/${f.local}`;
}

/** Download the pinned LA files (or the cases `ids` and the lists) into `root`. */
export async function downloadLa(o: DownloadOptions): Promise<DownloadResult> {
  const m = o.manifest ?? LA_MANIFEST;
  const want = o.ids ? new Set(o.ids) : null;
  const files = m.files.filter((f) => {
    const id = caseIdOf(f);
    return id === null || want === null || want.has(id);
  });
  const t0 = performance.now();
  const progress = new Progress(
    o.progress ?? stderrSink(),
    o.progressIntervalMs ?? 5000,
    files.reduce((s, f) => s + f.size, 0),
    files.length,
  );
  const ctx: Ctx = {
    base: o.baseUrl ?? defaultBaseUrl(m),
    retries: o.retries ?? 4,
    delay: o.retryDelayMs ?? 1000,
    stallMs: o.stallMs ?? 60_000,
    progress,
    print: o.print,
  };
  await Deno.mkdir(o.root, { recursive: true });
  const result: DownloadResult = { downloaded: 0, present: 0, failed: [], bytes: 0, seconds: 0 };
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const f = files[next++]!;
      const r = await fetchOne(f, localPath(o.root, f), ctx);
      if (r === "present") result.present++;
      else if (r === "downloaded") result.downloaded++;
      else {
        result.failed.push(r);
        progress.log(o.print, r);
        continue;
      }
      progress.files++;
      progress.tick(false);
    }
  };
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(o.concurrency ?? 4, files.length)) }, worker),
  );
  progress.end();
  result.bytes = progress.transferred;
  result.seconds = (performance.now() - t0) / 1000;
  return result;
}
