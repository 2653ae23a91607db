/**
 * The add-a-method workflow: scaffolding into a copy of the repository, comparing a method
 * file that lives outside the repository, and one-line errors for bad method files.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { addRegistryLine, parseMethodName } from "../benchmarks/new_method.ts";

const REPO = new URL("..", import.meta.url).pathname;
const MAIN = join(REPO, "benchmarks", "main.ts");
const SMALL = [
  "--benchmark",
  "synthetic",
  "--labeled",
  "2",
  "--seeds",
  "1",
  "--iterations",
  "2",
  "--backend",
  "cpu",
  "--jobs",
  "1",
];
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

async function run(args: string[], cwd = REPO) {
  const o = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  })
    .output();
  return { code: o.code, out: dec(o.stdout), err: dec(o.stderr) };
}

Deno.test("new-method: names are validated; registry lines are inserted", () => {
  assert.deepEqual(parseMethodName("cross_pseudo"), {
    file: "cross_pseudo",
    id: "cross-pseudo",
    ident: "crossPseudo",
  });
  assert.throws(() => parseMethodName("Bad Name"), /new-method: invalid name 'Bad Name'/);
  assert.throws(() => parseMethodName("1abc"), /invalid name/);
  const reg = 'import { a } from "./a.ts";\nexport const METHODS = [\n  a,\n];\n';
  assert.equal(
    addRegistryLine(reg, "b_c", "bC"),
    'import { a } from "./a.ts";\nimport { bC } from "./b_c.ts";\nexport const METHODS = [\n  a,\n  bC,\n];\n',
  );
});

Deno.test({
  name:
    "new-method: scaffold in a copy of the repo, its test passes, a 2-iteration benchmark shows its row",
  sanitizeResources: false,
  async fn() {
    const tmp = await Deno.makeTempDir();
    const files = dec(
      (await new Deno.Command("git", {
        args: ["ls-files", "-co", "--exclude-standard"],
        cwd: REPO,
        stdout: "piped",
      }).output()).stdout,
    )
      .split("\n").filter(Boolean);
    for (const f of files) {
      await Deno.mkdir(join(tmp, f, ".."), { recursive: true });
      try {
        await Deno.copyFile(join(REPO, f), join(tmp, f));
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e; // deleted but still listed
      }
    }
    await Deno.symlink(join(REPO, "node_modules"), join(tmp, "node_modules"));
    const made = await run(["run", "-A", "benchmarks/new_method.ts", "my_pseudo"], tmp);
    assert.equal(made.code, 0, made.err);
    const again = await run(["run", "-A", "benchmarks/new_method.ts", "my_pseudo"], tmp);
    assert.equal(again.code, 2);
    assert.match(again.err, /^new-method: .*my_pseudo\.ts already exists/);
    const t = await run(["test", "-A", "tests/my_pseudo_test.ts"], tmp);
    assert.equal(t.code, 0, t.out + t.err);
    const b = await run([
      "run",
      "-A",
      "benchmarks/main.ts",
      ...SMALL,
      "--methods",
      "supervised,my-pseudo",
      "--out",
      join(tmp, "results"),
    ], tmp);
    assert.equal(b.code, 0, b.err);
    assert.match(b.out, /\| my-pseudo(?: \(n=1\))? \| 2 \| 14 \| \d+\.\d\d ± 0\.00/);
    await Deno.remove(tmp, { recursive: true });
  },
});

Deno.test({
  name: "--method-file: a method outside the repo runs under the same protocol, marked external",
  sanitizeResources: false,
  async fn() {
    const tmp = await Deno.makeTempDir();
    const file = join(tmp, "my_method.ts");
    await Deno.writeTextFile(
      file,
      `import { supervised } from "file://${REPO}methods/supervised.ts";
export default { ...supervised, id: "outside", meta: { ...supervised.meta, title: "Outside" } };
`,
    );
    const b = await run([
      "run",
      "-A",
      MAIN,
      ...SMALL,
      "--methods",
      "supervised",
      "--method-file",
      file,
      "--out",
      tmp,
      "--compare",
      "outside",
    ]);
    assert.equal(b.code, 0, b.err);
    assert.match(b.out, /outside vs every other row of synthetic/);
    assert.match(
      b.out,
      /vs supervised: dice [+-]\d+\.\d\d \(p=[^)]+\) (better|worse|not distinguishable)/,
    );
    const table = await Deno.readTextFile(join(tmp, "synthetic", "table.md"));
    assert.match(table, /\| Outside \(external\)(?: \(n=1\))? \| 2 \| 14 \|/);
    await Deno.remove(tmp, { recursive: true });
  },
});

Deno.test({
  name: "--method-file: bad files give one line naming the file and the problem",
  sanitizeResources: false,
  async fn() {
    const tmp = await Deno.makeTempDir();
    const write = async (name: string, body: string) => {
      const p = join(tmp, name);
      await Deno.writeTextFile(p, body);
      return p;
    };
    const sup = `import { supervised } from "file://${REPO}methods/supervised.ts";\n`;
    const cases: [string, string, RegExp][] = [
      ["none.ts", "export const x = 1;\n", /has no default export/],
      [
        "shape.ts",
        'export default { id: "shape", defaults: {}, meta: { title: "t", paper: "p" } };\n',
        /needs a create\(hp, ctx\) function/,
      ],
      ["types.ts", "const x: number = 'a';\nexport default x;\n", /type check failed: .*TS2322/],
      [
        "throws.ts",
        sup +
        `export default { ...supervised, id: "throws", create: (hp: never, ctx: never) => { const m = supervised.create(hp, ctx); return { ...m, predict: m.predict.bind(m), state: m.state.bind(m), restore: m.restore.bind(m), dispose: m.dispose.bind(m), trainStep: () => { throw new Error("boom in trainStep"); } }; } };\n`,
        /failed at iteration 0: boom in trainStep/,
      ],
      [
        "nan.ts",
        sup +
        `export default { ...supervised, id: "nanny", create: (hp: never, ctx: never) => { const m = supervised.create(hp, ctx); return { ...m, predict: m.predict.bind(m), state: m.state.bind(m), restore: m.restore.bind(m), dispose: m.dispose.bind(m), trainStep: () => ({ loss: NaN }) }; } };\n`,
        /loss diverged at iteration 0 \(loss is NaN\)/,
      ],
    ];
    for (const [name, body, re] of cases) {
      const p = await write(name, body);
      const r = await run([
        "run",
        "-A",
        MAIN,
        ...SMALL,
        "--methods",
        "supervised",
        "--method-file",
        p,
        "--out",
        tmp,
      ]);
      const lines = r.err.split("\n").filter((l) => l.includes(p));
      assert.equal(lines.length, 1, `${name}: ${r.err}`);
      assert.match(lines[0]!, re, name);
      assert.notEqual(r.code, 0, name);
    }
    // The supervised run of those invocations finished once and was reused: other runs are unaffected.
    const runs = [...Deno.readDirSync(join(tmp, "synthetic", "runs"))];
    assert.equal(runs.length, 1);
    await Deno.remove(tmp, { recursive: true });
  },
});
