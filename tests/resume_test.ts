/**
 * Kill-and-resume: a bench process killed with SIGKILL mid-run leaves finished runs intact and
 * a checkpoint; the rerun skips finished runs, resumes the interrupted one, and ends with
 * results bitwise-equal to an uninterrupted run (cpu backend).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { RunRecord } from "../benchmarks/harness/store.ts";

const MAIN = new URL("../benchmarks/main.ts", import.meta.url).pathname;
const ARGS = [
  "--benchmark",
  "synthetic",
  "--methods",
  "supervised,mean-teacher",
  "--labeled",
  "2",
  "--seeds",
  "1",
  "--iterations",
  "30",
  "--backend",
  "cpu",
  "--jobs",
  "1",
];

function bench(out: string) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...ARGS, "--out", out],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  });
}

function files(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => !n.includes(".tmp-")).sort();
  } catch {
    return [];
  }
}

/** The parts of a record that must not depend on interruption (not timing, not dates). */
function comparable(r: RunRecord) {
  return { runId: r.runId, cases: r.cases, mean: r.mean, curve: r.curve, hp: r.hyperParams };
}

Deno.test({
  name: "bench: SIGKILL mid-run, rerun resumes from the checkpoint and equals an uninterrupted run",
  sanitizeResources: false,
  async fn() {
    const tmp = await Deno.makeTempDir();
    const [a, b] = [join(tmp, "a"), join(tmp, "b")];
    const full = await bench(a).output();
    assert.equal(full.code, 0, new TextDecoder().decode(full.stderr));
    const runsA = files(join(a, "synthetic", "runs"));
    assert.equal(runsA.length, 2);

    // Start the same plan, kill it once the first run is stored and the second has a checkpoint.
    const child = bench(b).spawn();
    const deadline = Date.now() + 900_000; // generous: CI machines may be loaded
    let killed = false;
    while (Date.now() < deadline) {
      const finished = files(join(b, "synthetic", "runs")).map((n) => n.replace(/\.json$/, ""));
      const done = finished.length;
      // A checkpoint of a run that has no result yet (the first run's own checkpoint is
      // removed just after its result is written, so it may still be seen for a moment).
      // (Only training checkpoints: not the per-case results of an evaluation in progress.)
      const open = files(join(b, "synthetic", "checkpoints"))
        .filter((n) => n.endsWith(".ckpt") && !n.endsWith(".best.ckpt"))
        .map((n) => n.replace(/\.ckpt$/, ""))
        .filter((id) => !finished.includes(id));
      if (done === 1 && open.length === 1) {
        child.kill("SIGKILL");
        killed = true;
        break;
      }
      if (done === 2) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await child.output();
    assert.ok(
      killed,
      "the process was killed between its checkpoint and the end of the second run",
    );
    const finishedBefore = files(join(b, "synthetic", "runs"));
    const firstBytes = await Deno.readFile(join(b, "synthetic", "runs", finishedBefore[0]!));

    const rerun = await bench(b).output();
    const err = new TextDecoder().decode(rerun.stderr);
    assert.equal(rerun.code, 0, err);
    assert.match(err, /finished earlier, skipped/);
    assert.match(err, /resuming at iteration 20/);
    // The finished run's file was not rewritten.
    assert.deepEqual(
      await Deno.readFile(join(b, "synthetic", "runs", finishedBefore[0]!)),
      firstBytes,
    );
    assert.deepEqual(files(join(b, "synthetic", "checkpoints")), []);
    for (const name of runsA) {
      const ra = JSON.parse(
        await Deno.readTextFile(join(a, "synthetic", "runs", name)),
      ) as RunRecord;
      const rb = JSON.parse(
        await Deno.readTextFile(join(b, "synthetic", "runs", name)),
      ) as RunRecord;
      assert.deepEqual(comparable(rb), comparable(ra), name);
    }
    // Tables rebuilt from the stored files equal what the run printed.
    const tablesOnly = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, ...ARGS, "--out", a, "--tables-only"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(tablesOnly.code, 0);
    const printed = new TextDecoder().decode(full.stdout);
    const rebuilt = new TextDecoder().decode(tablesOnly.stdout);
    assert.ok(printed.startsWith(rebuilt.trimEnd()), "tables-only output equals the first print");
    assert.equal(
      await Deno.readTextFile(join(a, "synthetic", "table.md")),
      rebuilt.replace(/\n$/, ""),
    );
    await Deno.remove(tmp, { recursive: true });
  },
});
