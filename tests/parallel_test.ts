import assert from "node:assert/strict";
import { join } from "node:path";
import {
  claimedWallSeconds,
  jobsForMemory,
  longestFirst,
  resolveJobs,
  RunClaims,
} from "../benchmarks/harness/parallel.ts";

Deno.test("parallel: runs are claimed longest first, unknown costs first, ties in plan order", () => {
  const runs = [
    { id: "a", s: 5 },
    { id: "b", s: 50 },
    { id: "c", s: NaN },
    { id: "d", s: 5 },
    { id: "e", s: 20 },
  ];
  assert.deepEqual(longestFirst(runs, (r) => r.s).map((r) => r.id), ["c", "b", "e", "a", "d"]);
});

Deno.test("parallel: the claimed schedule's wall time is the list schedule's", () => {
  // Longest first onto the least loaded worker: [9] [7, 3] [6, 4] -> 10.
  assert.equal(claimedWallSeconds([3, 9, 4, 7, 6], 3), 10);
  // Two workers: 9+4+... = [9, 4, 3] vs [7, 6] -> 16 vs 13.
  assert.equal(claimedWallSeconds([3, 9, 4, 7, 6], 2), 16);
  assert.equal(claimedWallSeconds([3, 9, 4], 1), 16);
  // A static round-robin split of ids could put both long runs on one worker: never here.
  assert.equal(claimedWallSeconds([100, 100, 1, 1, 1, 1], 2), 102);
});

Deno.test("parallel: each run is claimed exactly once over concurrent claimers", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const claims = await RunClaims.fresh(join(dir, "claims"));
    const ids = Array.from({ length: 40 }, (_, i) => `run${i}`);
    const won: string[][] = [[], [], []];
    await Promise.all(won.map(async (mine) => {
      for (const id of ids) {
        await Promise.resolve();
        if (claims.tryClaim(id)) mine.push(id);
      }
    }));
    assert.deepEqual(won.flat().sort(), [...ids].sort());
    // A fresh folder forgets the claims of an interrupted plan.
    const again = await RunClaims.fresh(join(dir, "claims"));
    assert.equal(again.tryClaim("run0"), true);
    assert.equal(again.tryClaim("run0"), false);
    await again.remove();
    assert.throws(() => again.tryClaim("run1"), /claims\/run1: cannot claim the run/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parallel: --jobs resolves to at most the runs, auto to the cores", () => {
  assert.equal(resolveJobs("4", 2), 2);
  assert.equal(resolveJobs(null, 100), Math.max(1, navigator.hardwareConcurrency || 1));
  assert.throws(() => resolveJobs("0", 3), /--jobs: expected a positive integer or auto/);
});

Deno.test("parallel: --jobs auto takes no more workers than fit in memory", () => {
  const GB = 2 ** 30;
  const mem = (availableBytes: number, perWorkerBytes: number) => ({
    availableBytes,
    perWorkerBytes,
    source: "probe",
  });
  const cores = Math.max(1, navigator.hardwareConcurrency || 1);
  // Room for everyone: one per core (capped by the runs), with the figures in the notice.
  const roomy = jobsForMemory("auto", 100, mem(1000 * GB, 1 * GB));
  assert.equal(roomy.jobs, cores);
  assert.match(roomy.notice!, /1000\.0 GB available, about 1\.0 GB per worker \(probe\)/);
  // 0.85 x 10 GB / 6 GB = 1.4: one worker, said so.
  const tight = jobsForMemory("auto", 100, mem(10 * GB, 6 * GB));
  assert.equal(tight.jobs, 1);
  if (cores > 1) assert.match(tight.notice!, /--jobs auto: 1 worker, not \d+ \(one per core\)/);
  // Never fewer than one, even when one does not fit.
  assert.equal(jobsForMemory(null, 5, mem(1 * GB, 6 * GB)).jobs, 1);
  // An explicit count is kept, with a warning when it does not fit.
  const forced = jobsForMemory("3", 100, mem(10 * GB, 6 * GB));
  assert.equal(forced.jobs, 3);
  assert.match(forced.notice!, /--jobs 3: .*1 fit; expect swapping/);
  // Unknown memory figures: the cores decide, silently.
  assert.deepEqual(jobsForMemory("auto", 100, mem(NaN, 1 * GB)), { jobs: cores, notice: null });
});
