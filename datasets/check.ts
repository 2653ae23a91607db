/**
 * `deno task data <name> [--root DIR]`: verify a dataset root and print findings one per line,
 * or, when the root is missing, where to obtain the data and the expected layout.
 *
 * `deno task data la --download [--root DIR] [--from URL] [--ids A,B | --limit N]` fetches the
 * pinned UA-MT files (datasets/download.ts, manifest datasets/splits/la_files.json) into the root,
 * then runs the same check on it. `--ids` / `--limit N` (the first N case ids of the manifest,
 * sorted) fetch a subset, for trials and tests: the check then skips the split cases left out.
 * `--from URL` (or `SEMISEG_LA_URL`) replaces the GitHub raw base URL. BraTS, WMH and LiTS are
 * registration-gated: `--download` prints where and how to get them and the layout, exit 2.
 *
 * The check reads the data of every case on disk, one at a time, and runs the checks every run's
 * `load` runs (datasets/common.ts `caseProblems`), then prints what that cost:
 * `la: read and checked 100 cases (1.2 GB decoded) in 16.0 s`.
 *
 * Exit status: 0 healthy, 1 problems found, root missing or a file not downloaded, 2 usage error
 * (also `--download` of a dataset that cannot be downloaded).
 * @module
 */
import { DATASETS, getDataset } from "./mod.ts";
import { isDir, isFile } from "./common.ts";
import { parseFlags } from "../benchmarks/harness/flags.ts";
import type { DatasetDefinition } from "./types.ts";
import {
  caseIdOf,
  defaultBaseUrl,
  downloadLa,
  LA_MANIFEST,
  manifestCaseIds,
  type ProgressSink,
} from "./download.ts";

const USAGE = `usage: deno task data <name> [--root DIR]   (names: ${
  DATASETS.map((d) => d.id).join(", ")
}); deno task data la --download [--root DIR] [--from URL] [--ids A,B,... | --limit N]`;

/** Test hooks of {@link main}. */
export interface MainOptions {
  /** Download progress (default stderr). */
  progress?: ProgressSink;
  /** Environment lookup (default Deno.env.get). */
  env?: (name: string) => string | undefined;
  /** First retry delay of the download, ms (default 1000). */
  retryDelayMs?: number;
}

/**
 * The data check of `deno task data <name>` on `root`. With `subset`, split cases outside it that
 * are missing are left out of the findings (counted in one line instead).
 */
export async function checkRoot(
  def: DatasetDefinition,
  root: string,
  print: (line: string) => void,
  subset?: ReadonlySet<string>,
): Promise<number> {
  if (def.id !== "synthetic" && isFile(root)) {
    print(`${root}: a file, not a folder (pass the folder that holds the ${def.id} cases)`);
    return 1;
  }
  if (def.id !== "synthetic" && !isDir(root)) {
    print(`${root}: not found. ${def.title}: where to get it and the layout expected:`);
    for (const l of def.obtain.split("\n")) print(l);
    if (def.id === "la") print("Or fetch it: deno task data la --download [--root DIR]");
    return 1;
  }
  let problems: string[];
  let found = 0;
  try {
    const ds = def.open(root);
    const ids = await ds.caseIds();
    found = ids.length;
    print(`${def.id}: ${ids.length} cases under ${root}`);
    // Every case's data is read (one at a time) and checked as a run's load checks it.
    let cases = 0, bytes = 0;
    const t0 = performance.now();
    problems = await ds.check((_id, b) => {
      cases++;
      bytes += b;
    });
    print(
      `${def.id}: read and checked ${cases} case${cases === 1 ? "" : "s"} (${
        formatBytes(bytes)
      } decoded) in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  } catch (e) {
    print(e instanceof Error ? e.message.split("\n")[0]! : String(e));
    return 1;
  }
  if (subset) {
    const skipped = problems.filter((p) => {
      const m = /^([^:]+): missing \(/.exec(p);
      return m !== null && !subset.has(m[1]!);
    });
    if (skipped.length > 0) {
      problems = problems.filter((p) => !skipped.includes(p));
      print(
        `${def.id}: ${skipped.length} split cases not downloaded (--ids/--limit subset): not checked`,
      );
    }
  }
  // No case at all (another dataset's layout, an empty folder): one line, not one per case.
  if (found === 0 && problems.length > 1 && problems.every((p) => /: missing \(/.test(p))) {
    problems = [
      `${root}: no ${def.id} case found there (all ${problems.length} split cases missing; the first: ${
        problems[0]
      })`,
    ];
  }
  for (const p of problems) print(p);
  print(problems.length === 0 ? `${def.id}: OK` : `${def.id}: ${problems.length} problem(s)`);
  return problems.length === 0 ? 0 : 1;
}

/** Bytes as "1.2 GB", "340 MB", "12 kB" (powers of 1000). */
export function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

/** Run the check; returns the exit code and writes lines through `print`. */
export async function main(
  args: string[],
  print: (line: string) => void,
  opts: MainOptions = {},
): Promise<number> {
  let parsed;
  try {
    parsed = parseFlags(args, {
      root: { type: "string" },
      download: { type: "boolean" },
      from: { type: "string" },
      ids: { type: "string" },
      limit: { type: "string" },
      help: { type: "boolean", short: "h" },
    }, true);
  } catch (e) {
    // The shared one-line message, with this task's usage instead of "see --help".
    print(`${(e as Error).message.replace(/ \(see --help for the flags\)$/, "")} (${USAGE})`);
    return 2;
  }
  if (parsed.values.help) {
    print(USAGE);
    return 0;
  }
  const [name, ...extra] = parsed.positionals;
  if (name === undefined || extra.length > 0) {
    print(USAGE);
    return 2;
  }
  let def;
  try {
    def = getDataset(name);
  } catch (e) {
    print(e instanceof Error ? e.message : String(e));
    return 2;
  }
  const root = parsed.values.root ?? `data/${def.id}`;
  const v = parsed.values;
  if (!v.download) {
    const only = (["from", "ids", "limit"] as const).filter((k) => v[k] !== undefined);
    if (only.length > 0) {
      print(`flag --${only[0]} needs --download (${USAGE})`);
      return 2;
    }
    return await checkRoot(def, root, print);
  }
  if (def.id === "synthetic") {
    print("synthetic: generated in memory, nothing to download");
    return 0;
  }
  if (def.id !== "la") {
    print(
      `${def.id}: no automatic download: ${def.title} is registration-gated. Where and how to get it, and the layout expected:`,
    );
    for (const l of def.obtain.split("\n")) print(l);
    print(`Then check it: deno task data ${def.id} --root DIR`);
    return 2;
  }
  const all = manifestCaseIds();
  let ids: string[] | undefined;
  if (v.ids !== undefined && v.limit !== undefined) {
    print(`flags --ids and --limit exclude each other (${USAGE})`);
    return 2;
  }
  if (v.ids !== undefined) {
    ids = [...new Set(v.ids.split(",").map((s) => s.trim()).filter((s) => s !== ""))];
    const known = new Set(all);
    const bad = ids.filter((id) => !known.has(id));
    if (ids.length === 0 || bad.length > 0) {
      print(
        `flag --ids: ${
          ids.length === 0 ? "no case id given" : `unknown LA case id '${bad[0]}'`
        } (the ids of datasets/splits/la_files.json, e.g. ${all[0]})`,
      );
      return 2;
    }
  }
  if (v.limit !== undefined) {
    const n = Number(v.limit);
    if (!/^\d+$/.test(v.limit) || n < 1 || n > all.length) {
      print(`flag --limit: expected an integer 1..${all.length}, got '${v.limit}'`);
      return 2;
    }
    ids = all.slice(0, n);
  }
  const env = opts.env ?? ((k: string) => Deno.env.get(k));
  const base = v.from ?? env("SEMISEG_LA_URL") ?? defaultBaseUrl();
  let proto = "";
  try {
    proto = new URL(base).protocol;
  } catch {
    // reported below
  }
  if (proto !== "http:" && proto !== "https:") {
    print(
      `${
        v.from !== undefined ? "flag --from" : "SEMISEG_LA_URL"
      }: expected an http(s) URL, got '${base}'`,
    );
    return 2;
  }
  const want = ids ? new Set(ids) : null;
  const files = LA_MANIFEST.files.filter((f) => {
    const id = caseIdOf(f);
    return id === null || want === null || want.has(id);
  });
  const nCases = want ? want.size : all.length;
  print(
    `la: fetching ${nCases} of ${all.length} cases and the 2 lists (${files.length} files, ${
      (files.reduce((s, f) => s + f.size, 0) / 1e6).toFixed(1)
    } MB, SHA-256 pinned in datasets/splits/la_files.json) from ${base} into ${root}`,
  );
  const r = await downloadLa({
    root,
    baseUrl: base,
    ...(ids ? { ids } : {}),
    ...(opts.progress ? { progress: opts.progress } : {}),
    ...(opts.retryDelayMs !== undefined ? { retryDelayMs: opts.retryDelayMs } : {}),
    print,
  });
  print(
    `la: ${r.downloaded} downloaded (${(r.bytes / 1e6).toFixed(1)} MB in ${
      r.seconds.toFixed(1)
    } s), ${r.present} already present, ${r.failed.length} failed`,
  );
  const code = await checkRoot(def, root, print, want ?? undefined);
  return r.failed.length > 0 ? 1 : code;
}

if (import.meta.main) {
  try {
    // deno-lint-ignore no-console
    Deno.exit(await main(Deno.args, (l) => console.log(l)));
  } catch (e) {
    // Anything unforeseen is still one line, not a stack trace.
    Deno.stderr.writeSync(
      new TextEncoder().encode(
        `data: ${(e instanceof Error ? e.message : String(e)).split("\n")[0]}\n`,
      ),
    );
    Deno.exit(2);
  }
}
