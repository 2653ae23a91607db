/**
 * Which code made a run: a SHA-256 over the source text of the files the run's code depends
 * on, recorded in every run file (`code`), so that a stored run made by other code (a method's
 * loss edited after it ran) is reported instead of silently reused. Run ids hash the spec, not
 * the code, and stay as they are.
 *
 * The rule ({@link CODE_RULE}): the static local imports (`import ... from "./x.ts"`,
 * `export ... from`, side-effect imports, literal `import("./x.ts")`; relative, absolute or
 * `file://` specifiers), followed transitively
 * from four roots: the method's module (`methods/<file>.ts`, or the `--method-file`), the
 * dataset's module (`datasets/<file>.ts`), `benchmarks/harness/runner.ts` (training loop,
 * evaluation, metrics, store) and `methods/nn/backend.ts` (the kernels). `import type` /
 * `export type` statements are not followed (they do not run), and neither are the registries
 * (`methods/mod.ts`, `datasets/mod.ts`, `benchmarks/mod.ts`), which import every method: so
 * editing `methods/ua_mt.ts` changes the code hash of UA-MT runs only. npm and jsr packages are
 * not hashed (their versions are in the provenance). Computed from file contents (no git, which
 * a tarball or the compiled executable lacks); inside a `deno compile` binary whose sources
 * cannot be read, the hash is that of the executable itself (rule `executable`).
 * @module
 */
import { createHash } from "node:crypto";
import { basename, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { getMethod, METHODS } from "../../methods/mod.ts";
import { DATASETS, getDataset } from "../../datasets/mod.ts";
import type { RunRecord } from "./store.ts";

/** The code a run used, as stored in its run file. */
export interface CodeHash {
  /** Hex SHA-256 over the sorted `path hash` lines of the files. */
  hash: string;
  /** Number of files hashed. */
  files: number;
  /** How the files were chosen ({@link CODE_RULE}, or the executable fallback). */
  rule: string;
  /** Per file (repository-relative path, or absolute outside it): first 16 hex digits of its SHA-256. */
  sources: Record<string, string>;
  /** Set when the run resumed a checkpoint written by other code: that code's hash (mixed code). */
  resumedFrom?: string;
}

/** The file-selection rule recorded with every code hash. */
export const CODE_RULE =
  "static local imports (not import type; registries not followed) from the method's module, the dataset's module, benchmarks/harness/runner.ts and methods/nn/backend.ts";

const REPO = new URL("../../", import.meta.url);
const REGISTRIES = ["methods/mod.ts", "datasets/mod.ts", "benchmarks/mod.ts"].map((p) =>
  new URL(p, REPO).href
);
const FIXED_ROOTS = ["benchmarks/harness/runner.ts", "methods/nn/backend.ts"];

const STATIC_IMPORT =
  /(?:^|[;}\n])[ \t]*(?:import|export)(\s+type\b)?\s*(?:[\w$*{}\s,]*?\s*from\s*)?["']([^"'\n]+)["']/g;
const DYNAMIC_IMPORT = /\bimport\(\s*["']([^"'\n]+)["']\s*\)/g;

/** A specifier of a local file: relative (`./`, `../`), absolute (`/`) or a `file://` URL. */
const LOCAL = /^(\.\.?\/|\/|file:\/\/)/;

/**
 * Local module specifiers (relative, absolute or `file://`; not npm:, jsr: or bare package
 * names) that `source` imports at run time: static imports and exports, side-effect imports,
 * literal dynamic imports. `import type` / `export type` statements are left out.
 */
export function localImports(source: string): string[] {
  const out = new Set<string>();
  for (const m of source.matchAll(STATIC_IMPORT)) {
    if (m[1] === undefined && LOCAL.test(m[2]!)) out.add(m[2]!);
  }
  for (const m of source.matchAll(DYNAMIC_IMPORT)) if (LOCAL.test(m[1]!)) out.add(m[1]!);
  return [...out];
}

function sha256(bytes: Uint8Array | string): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** `url` as the path a code hash lists: repository-relative inside it, absolute outside. */
function displayPath(url: URL): string {
  const p = decodeURIComponent(url.pathname);
  const rel = relative(decodeURIComponent(REPO.pathname), p);
  return rel.startsWith("..") ? p : rel;
}

/** The module file (under `registry`'s folder) whose exports include `value`, or null. */
async function moduleExporting(registry: URL, value: unknown): Promise<URL | null> {
  const text = await Deno.readTextFile(registry);
  for (const spec of localImports(text)) {
    const url = new URL(spec, registry);
    const mod = await import(url.href) as Record<string, unknown>;
    if (Object.values(mod).includes(value)) return url;
  }
  return null;
}

/**
 * Computes {@link CodeHash}es for runs, reading each file once per process (so a file edited
 * while a plan runs does not change the hash of the code that was loaded). Methods added with
 * `--method-file` are hashed from their file: pass `externalMethods` (id -> path).
 */
export class CodeHasher {
  #files = new Map<string, { hash: string; imports: string[] } | null>();
  #roots = new Map<string, URL>();
  #executable: CodeHash | null = null;

  constructor(readonly externalMethods: Record<string, string> = {}) {}

  async #file(url: URL): Promise<{ hash: string; imports: string[] } | null> {
    if (this.#files.has(url.href)) return this.#files.get(url.href)!;
    let entry: { hash: string; imports: string[] } | null = null;
    try {
      const bytes = await Deno.readFile(url);
      const isCode = /\.[cm]?[jt]sx?$/.test(url.pathname);
      entry = {
        hash: sha256(bytes),
        imports: isCode ? localImports(new TextDecoder().decode(bytes)) : [],
      };
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    this.#files.set(url.href, entry);
    return entry;
  }

  async #methodRoot(id: string): Promise<URL> {
    const key = `method:${id}`;
    const known = this.#roots.get(key);
    if (known) return known;
    let url: URL | null;
    const external = this.externalMethods[id];
    if (external !== undefined) {
      url = pathToFileURL(resolve(external));
    } else {
      const def = getMethod(id);
      url = METHODS.includes(def)
        ? await moduleExporting(new URL("methods/mod.ts", REPO), def)
        : null;
    }
    if (!url) {
      throw new Error(`method '${id}': its module is not imported by methods/mod.ts`);
    }
    this.#roots.set(key, url);
    return url;
  }

  async #datasetRoot(id: string): Promise<URL> {
    const key = `dataset:${id}`;
    const known = this.#roots.get(key);
    if (known) return known;
    const def = getDataset(id);
    const url = DATASETS.includes(def)
      ? await moduleExporting(new URL("datasets/mod.ts", REPO), def)
      : null;
    if (!url) throw new Error(`dataset '${id}': its module is not imported by datasets/mod.ts`);
    this.#roots.set(key, url);
    return url;
  }

  /** The hash of the files reached from `roots` under {@link CODE_RULE}. */
  async ofRoots(roots: URL[]): Promise<CodeHash> {
    const sources: Record<string, string> = {};
    const seen = new Set<string>();
    const queue = [...roots];
    while (queue.length > 0) {
      const url = queue.shift()!;
      if (seen.has(url.href) || REGISTRIES.includes(url.href)) continue;
      seen.add(url.href);
      const f = await this.#file(url);
      if (f === null && roots.includes(url)) throw new Error(`${displayPath(url)}: not found`);
      sources[displayPath(url)] = f === null ? "missing" : f.hash.slice(0, 16);
      for (const spec of f?.imports ?? []) queue.push(new URL(spec, url));
    }
    const paths = Object.keys(sources).sort();
    const lines = paths.map((p) => `${p} ${sources[p]}\n`).join("");
    return {
      hash: sha256(lines),
      files: paths.length,
      rule: CODE_RULE,
      sources: Object.fromEntries(paths.map((p) => [p, sources[p]!])),
    };
  }

  /** The code of a run of `method` on `dataset` (ids); the executable's hash when sources are unreadable in a compiled binary. */
  async forRun(method: string, dataset: string): Promise<CodeHash> {
    try {
      return await this.ofRoots([
        await this.#methodRoot(method),
        await this.#datasetRoot(dataset),
        ...FIXED_ROOTS.map((p) => new URL(p, REPO)),
      ]);
    } catch (e) {
      if (!Deno.build.standalone) throw e;
      return await this.#executableHash();
    }
  }

  async #executableHash(): Promise<CodeHash> {
    if (this.#executable) return this.#executable;
    const exe = Deno.execPath();
    const hash = sha256(await Deno.readFile(exe));
    this.#executable = {
      hash,
      files: 1,
      rule: "executable: SHA-256 of the compiled binary (its embedded sources are not readable)",
      sources: { [basename(exe)]: hash.slice(0, 16) },
    };
    return this.#executable;
  }
}

/** How a stored run's code compares with the current code. */
export interface CodeCheck {
  /** current: same hash; other: made (or partly made) by other code; unknown: no code hash stored. */
  state: "current" | "other" | "unknown";
  /** Files whose hash differs, or that only one side has (sorted). */
  changed: string[];
}

/** Compare a stored run's code with the code that would run it now. */
export function compareCode(stored: CodeHash | undefined, now: CodeHash): CodeCheck {
  if (!stored || typeof stored.hash !== "string") return { state: "unknown", changed: [] };
  if (stored.hash === now.hash && stored.resumedFrom === undefined) {
    return { state: "current", changed: [] };
  }
  const old = stored.sources ?? {};
  const paths = new Set([...Object.keys(old), ...Object.keys(now.sources)]);
  const changed = [...paths].filter((p) => old[p] !== now.sources[p]).sort();
  return { state: "other", changed };
}

/** "a changed", "a, b changed", "a, b, c and 4 more files changed" (or why else it differs). */
export function describeChanged(changed: string[], mixed = false): string {
  if (changed.length === 0) {
    return mixed ? "resumed from a checkpoint of other code" : "code hash differs";
  }
  const head = changed.slice(0, 3).join(", ");
  return changed.length > 3
    ? `${head} and ${changed.length - 3} more files changed`
    : `${head} changed`;
}

/**
 * Check stored `records` against the current code: by run id, for the records whose method and
 * dataset resolve now (a run of an unregistered `--method-file` method, or a re-scored external
 * checkpoint, which trained nothing here, is left out).
 */
export async function checkRecords(
  records: RunRecord[],
  hasher: CodeHasher,
): Promise<Map<string, CodeCheck>> {
  const out = new Map<string, CodeCheck>();
  for (const r of records) {
    if (r.checkpoint) continue;
    const ds = (r.spec["dataset"] as { id?: unknown } | undefined)?.id;
    if (typeof ds !== "string") continue;
    let now: CodeHash;
    try {
      now = await hasher.forRun(r.method, ds);
    } catch {
      continue;
    }
    out.set(r.runId, compareCode(r.code, now));
  }
  return out;
}

/**
 * One line for a benchmark's stored runs that were made by other code or have no code hash
 * (null when there are none): `12 of 48 stored runs were made by other code (methods/ua_mt.ts
 * changed): kept; --rerun-stale reruns them`.
 */
export function staleSummary(checks: Map<string, CodeCheck>, stored: number): string | null {
  const all = [...checks.values()];
  const other = all.filter((c) => c.state === "other");
  const unknown = all.filter((c) => c.state === "unknown").length;
  if (other.length === 0 && unknown === 0) return null;
  const changed = [...new Set(other.flatMap((c) => c.changed))].sort();
  const parts: string[] = [];
  if (other.length > 0) {
    parts.push(
      `${other.length} of ${stored} stored runs ${
        other.length === 1 ? "was" : "were"
      } made by other code (${describeChanged(changed, changed.length === 0)})`,
    );
  }
  if (unknown > 0) {
    parts.push(
      `${other.length > 0 ? `${unknown}` : `${unknown} of ${stored} stored runs`} ${
        unknown === 1 ? "has" : "have"
      } no code hash (written before code hashes were recorded: unknown code)`,
    );
  }
  return `${parts.join(" and ")}: kept; --rerun-stale reruns them`;
}

/** The mark a table row gets when some of its runs are stale. */
export const STALE_MARK = " (stale code)";

/**
 * Mark the rows of a built table (`rows` with key, labeled, label; `footer`) that include a run
 * made by other code or without a code hash, and add a footer note saying so: a table never
 * silently mixes numbers of two codes. Returns the number of rows marked.
 */
export function markStaleRows(
  table: { rows: { key: string; labeled: number; label: string }[]; footer: string[] },
  records: RunRecord[],
  checks: Map<string, CodeCheck>,
): number {
  const stale = records.filter((r) => {
    const s = checks.get(r.runId)?.state;
    return s === "other" || s === "unknown";
  });
  if (stale.length === 0) return 0;
  let marked = 0;
  for (const row of table.rows) {
    if (stale.some((r) => r.rowKey === row.key && r.labeled === row.labeled)) {
      row.label += STALE_MARK;
      marked++;
    }
  }
  const sub = new Map([...checks].filter(([id]) => stale.some((r) => r.runId === id)));
  table.footer.push(
    `Rows marked${STALE_MARK} include stored runs made by other code than this checkout, or with no code hash: ${
      staleSummary(sub, records.length)
    } (\`deno task bench\` with the plan's flags).`,
  );
  return marked;
}
