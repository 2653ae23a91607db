/**
 * Committed split files (`datasets/splits/*.json`) and their hashing.
 *
 * A split file is data, not code: it is read, never regenerated at run time. Its schema:
 * `{ dataset, source, note?, idFormat?, splits: [{ name, train, val, test }] }`. Ids are case ids,
 * except where `idFormat` is `"group/#index"`: then `"HGG/#17"` means the 18th entry (0-based 17)
 * of the code-point-sorted case list of group `HGG`, resolved against the data on disk. That is
 * how Monte-Carlo folds over lists we cannot ship (BraTS 2018 HGG ids, WMH subject folders) are
 * pinned. {@link brats18FoldPositions} and {@link wmhFoldPositions} are the recipes the committed
 * fold files were generated with; tests check the files still equal them.
 * @module
 */
import { hashOf } from "../methods/nn/canonical.ts";
import { Rng } from "../methods/nn/rng.ts";
import type { Split } from "./types.ts";

/** One split as stored in a split file. */
export interface SplitEntry {
  name: string;
  train: string[];
  val: string[];
  test: string[];
}

/** A split file's content. */
export interface SplitFile {
  dataset: string;
  source: string;
  note?: string;
  idFormat?: string;
  splits: SplitEntry[];
}

/** SHA-256 (hex) of the canonical JSON of `{name, train, val, test, source}`. */
export function splitHash(s: Omit<Split, "hash">): string {
  const body = { name: s.name, train: s.train, val: s.val, test: s.test, source: s.source };
  return hashOf(body);
}

/** Build a {@link Split} with its hash. */
export function makeSplit(
  name: string,
  train: string[],
  val: string[],
  test: string[],
  source: string,
): Split {
  const s = { name, train, val, test, source };
  return { ...s, hash: splitHash(s) };
}

/** Check a parsed split file's shape; throws one line naming it. */
export function validateSplitFile(where: string, v: unknown): SplitFile {
  const bad = (why: string): never => {
    throw new Error(`${where}: bad split file (${why})`);
  };
  if (v === null || typeof v !== "object") bad("not an object");
  const f = v as Record<string, unknown>;
  if (typeof f.dataset !== "string") bad("missing 'dataset'");
  if (typeof f.source !== "string") bad("missing 'source'");
  if (!Array.isArray(f.splits) || f.splits.length === 0) bad("missing 'splits'");
  for (const s of f.splits as unknown[]) {
    const e = s as Record<string, unknown>;
    if (typeof e.name !== "string") bad("a split without 'name'");
    for (const k of ["train", "val", "test"]) {
      const a = e[k];
      if (!Array.isArray(a) || a.some((x) => typeof x !== "string")) {
        bad(`split '${e.name}': '${k}' must be an array of strings`);
      }
    }
    const all = [...(e.train as string[]), ...(e.val as string[]), ...(e.test as string[])];
    if (new Set(all).size !== all.length) bad(`split '${e.name}' repeats an id`);
  }
  return v as SplitFile;
}

/** Read and validate a split file from disk (for user-supplied split files). */
export async function readSplitFile(path: string): Promise<SplitFile> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    throw new Error(`${path}: split file not found or unreadable`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: split file is not JSON (${e instanceof Error ? e.message : e})`);
  }
  return validateSplitFile(path, v);
}

/**
 * Resolve `"group/#index"` references against the sorted case ids of each group
 * (`groups[g]` = sorted ids). Throws one line for an index past the end of a group.
 */
export function resolveRefs(
  refs: string[],
  groups: Record<string, string[]>,
  where: string,
): string[] {
  return refs.map((r) => {
    const m = /^(.*)\/#(\d+)$/.exec(r);
    if (!m) return r;
    const list = groups[m[1]!];
    const id = list?.[Number(m[2])];
    if (id === undefined) {
      throw new Error(
        `${where}: split refers to ${r} but group '${m[1]}' has ${list?.length ?? 0} cases on disk`,
      );
    }
    return id;
  });
}

/** Turn a split file into {@link Split}s (ids resolved with `groups` when given). */
export function splitsFromFile(
  file: SplitFile,
  where: string,
  groups?: Record<string, string[]>,
): Split[] {
  const res = (a: string[]): string[] => (groups ? resolveRefs(a, groups, where) : a);
  return file.splits.map((s) =>
    makeSplit(s.name, res(s.train), res(s.val), res(s.test), file.source)
  );
}

/**
 * MASSL BraTS 2018 fold recipe (reconstruction): data seed k gives `new Rng(k).permutation(210)`
 * over the code-point-sorted HGG case list; train = [0:120), val = [120:160), test = [160:210).
 */
export function brats18FoldPositions(
  k: number,
): { train: number[]; val: number[]; test: number[] } {
  const p = new Rng(k).permutation(210);
  return { train: p.slice(0, 120), val: p.slice(120, 160), test: p.slice(160, 210) };
}

/** WMH 2017 sites in the order the fold recipe draws them. */
export const WMH_SITES = ["GE3T", "Singapore", "Utrecht"] as const;

/**
 * MASSL-style site-balanced WMH fold recipe (reconstruction): data seed k, `rng = new Rng(k)`,
 * one `rng.permutation(20)` per site in {@link WMH_SITES} order. Per site: 10 train, 3 or 4 val
 * (site (k-1) mod 3 gets 4), the rest test; so 30/10/20 overall. Each list interleaves the
 * sites round-robin, so the first L training cases are site-balanced too.
 */
export function wmhFoldPositions(k: number): { train: string[]; val: string[]; test: string[] } {
  const rng = new Rng(k);
  const perSite = WMH_SITES.map((site, s) => {
    const p = rng.permutation(20);
    const nVal = s === (k - 1) % 3 ? 4 : 3;
    const ref = (i: number) => `${site}/#${i}`;
    return {
      train: p.slice(0, 10).map(ref),
      val: p.slice(10, 10 + nVal).map(ref),
      test: p.slice(10 + nVal).map(ref),
    };
  });
  const interleave = (lists: string[][]): string[] => {
    const out: string[] = [];
    const n = Math.max(...lists.map((l) => l.length));
    for (let i = 0; i < n; i++) for (const l of lists) if (i < l.length) out.push(l[i]!);
    return out;
  };
  return {
    train: interleave(perSite.map((x) => x.train)),
    val: interleave(perSite.map((x) => x.val)),
    test: interleave(perSite.map((x) => x.test)),
  };
}

/** LiTS default split recipe: `new Rng(2017).permutation(131)`, first 100 train, last 31 test. */
export function litsDefaultSplit(): { train: string[]; test: string[] } {
  const p = new Rng(2017).permutation(131).map(String);
  return { train: p.slice(0, 100), test: p.slice(100) };
}
