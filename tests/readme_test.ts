/**
 * README.md's "Adding a method" commands, run as written (the `sh` block of that section, in
 * order) in a copy of the repository: scaffold a method, run its test, a 2-iteration synthetic
 * run compared against supervised, then the LA paper table's plan with the method added (by
 * `--methods` and by `--method-file`), whose other runs keep their ids. Nothing is written in
 * this checkout.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { copyRepo, deno, REPO } from "./repo_copy.ts";

/** The command lines of the first `sh` block of README's "## Adding a method" section. */
export function addMethodCommands(readme: string): string[] {
  const at = readme.indexOf("\n## Adding a method");
  assert.ok(at >= 0, "README.md has a '## Adding a method' section");
  const end = readme.indexOf("\n## ", at + 1);
  const section = readme.slice(at, end < 0 ? undefined : end);
  const block = /```sh\n([\s\S]*?)```/.exec(section);
  assert.ok(block, "the section has a ```sh block");
  return block[1]!.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
}

/** The words of a README command (plain words only: no quotes, pipes or substitutions). */
function words(line: string): string[] {
  assert.ok(!/["'`$|&;<>()\\]/.test(line), `a plain command: ${line}`);
  const w = line.split(/\s+/);
  assert.equal(w[0], "deno", line);
  return w.slice(1);
}

/** Dry-run plan lines of one row key: `<run id>  <key> labeled=... seed=... iterations=...`. */
function planLines(out: string, key?: string): string[] {
  return out.split("\n").filter((l) =>
    /^[0-9a-f]{16} {2}/.test(l) && (key === undefined || l.split(/\s+/)[1] === key)
  );
}

Deno.test({
  name: "README: the add-a-method commands run as written, in a copy of the repository",
  sanitizeResources: false,
  async fn() {
    const commands = addMethodCommands(await Deno.readTextFile(join(REPO, "README.md")));
    assert.equal(commands.length, 5, commands.join("\n"));
    const tmp = await copyRepo();
    if (tmp === null) {
      // deno-lint-ignore no-console
      console.log("SKIP README add-a-method test: git cannot list the checkout's files");
      return;
    }
    try {
      const results = [];
      for (const line of commands) {
        const r = await deno(words(line), tmp);
        assert.equal(r.code, 0, `${line}\n${r.out}\n${r.err}`);
        results.push(r);
      }
      const [made, tested, small, laAdded, laFile] = results as [
        (typeof results)[0],
        (typeof results)[0],
        (typeof results)[0],
        (typeof results)[0],
        (typeof results)[0],
      ];
      // 1. scaffold: the id to use; 2. its conformance test passed (exit 0 above)
      assert.match(made.out, /^method id: my-method \(deno task bench --methods my-method;/m);
      assert.match(tested.out + tested.err, /my-method: registered and conformant \.\.\. .*ok/);
      // 3. the 2-iteration synthetic run: its row, the compare verdicts, what ran, what did not
      assert.match(small.out, /my-method vs every other row of synthetic/);
      assert.match(
        small.out,
        /vs supervised: dice [+-]\d+\.\d\d \(p=[^)]+\) (better|worse|not distinguishable)/,
      );
      const table = await Deno.readTextFile(join(tmp, "results", "synthetic", "table.md"));
      assert.match(table, /\| my-method \| 2 \| 14 \| \d+\.\d\d ± 0\.00\** \|/);
      assert.ok(!table.includes("missing"), table);
      assert.match(
        table,
        /- Training: 2 iterations \(the benchmark: \d+\), batch 2\+2, patch 32x32x32/,
      );
      assert.match(
        table,
        /- Ours: mean ± std over seeds 1 \(runs per cell: 1 of \d+ planned(?:: seeds [\d, ]+)?;/,
      );
      assert.match(table, /- Not run: \d+ rows \(.*\): no run files; select them with --methods\./);
      // 4. LA with the method added: 2 settings x 3 seeds of 6000 iterations after the
      // baselines' plan lines, which are those of the plan without it.
      const added = planLines(laAdded.out, "my-method");
      assert.equal(added.length, 6, laAdded.out);
      assert.ok(added.every((l) => l.endsWith("iterations=6000")));
      const base = await deno(
        [
          "task",
          "bench",
          "--benchmark",
          "la_baselines",
          "--methods",
          "supervised,ua-mt",
          "--dry-run",
          "--no-estimate",
        ],
        tmp,
      );
      assert.equal(base.code, 0, base.err);
      assert.deepEqual(
        planLines(laAdded.out).filter((l) => !added.includes(l)),
        planLines(base.out),
      );
      assert.equal(planLines(base.out).length, 12);
      // 5. --method-file on the scaffolded file: the same rows, the same run ids.
      assert.deepEqual(planLines(laFile.out), planLines(laAdded.out));
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
