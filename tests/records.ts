/**
 * A well-formed run record for tests that write, read or tabulate results without training:
 * the fields every reader checks, with fixed provenance and timing; callers override what
 * their test is about (ids, rows, per-case values).
 * @module
 */
import type { RunRecord } from "../benchmarks/harness/store.ts";

/** The provenance of every fake record. */
export const FAKE_PROVENANCE: RunRecord["provenance"] = {
  backend: "cpu",
  tfjsVersion: "4.22.0",
  denoVersion: "2",
  v8Version: "x",
  os: "linux",
  device: "cpu",
  details: {},
  gitCommit: "abc",
};

/** A synthetic supervised L=2 seed-1 record of `runId`, with `over` replacing any field. */
export function fakeRecord(runId: string, over: Partial<RunRecord> = {}): RunRecord {
  return {
    runId,
    benchmark: "synthetic",
    rowKey: "supervised",
    method: "supervised",
    labeled: 2,
    seed: 1,
    hyperParams: {},
    spec: { unlabeledCount: 10 },
    split: { name: "s", hash: "h" },
    provenance: FAKE_PROVENANCE,
    timing: { trainSeconds: 1, evalSeconds: 1, iterationsPerSecond: 1 },
    curve: [],
    cases: [],
    mean: {},
    protocol: { units: "voxel", emptyPolicy: "reference-code", selection: "last", lcc: false },
    finishedAt: "2026-01-01T00:00:00Z",
    ...over,
  };
}
