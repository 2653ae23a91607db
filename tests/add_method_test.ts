/**
 * The add-a-method workflow: name checks of new-method (every collision refused before
 * anything is written, in a copy of the repository), comparing a method file that lives
 * outside the repository, and one-line errors for bad method files. The README's commands
 * (scaffold, test, run, add to a paper table) are run by tests/readme_test.ts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  addRegistryLine,
  importBindings,
  nameConflict,
  parseMethodName,
  registryFacts,
} from "../benchmarks/new_method.ts";
import { copyRepo, deno, listFiles } from "./repo_copy.ts";

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
  assert.deepEqual(
    importBindings(
      'import * as tf from "x";\nimport { a, type B, c as d } from "y";\nimport e from "z";',
    ),
    ["tf", "a", "B", "d", "e"],
  );
});

Deno.test("new-method: a name whose id, file or export name exists is refused", async () => {
  // This checkout's registry, read (and loaded) only.
  const facts = await registryFacts(REPO);
  const conflict = (name: string) => nameConflict(parseMethodName(name), facts);
  const cases: [string, string][] = [
    ["ua_mt", "new-method: methods/ua_mt.ts already exists (choose another name)"],
    ["supervised", "new-method: methods/supervised.ts already exists (choose another name)"],
    // Export names that methods/mod.ts binds already, or that the generated code imports.
    [
      "get_method",
      "new-method: the name 'getMethod' (from 'get_method') is already used in methods/mod.ts; choose another name",
    ],
    [
      "external",
      "new-method: the name 'external' (from 'external') is already used in methods/mod.ts; choose another name",
    ],
    [
      "ce_dice_loss",
      "new-method: the name 'ceDiceLoss' (from 'ce_dice_loss') is one the generated code already uses; choose another name",
    ],
    [
      "check_method_conformance",
      "new-method: the name 'checkMethodConformance' (from 'check_method_conformance') is one the generated code already uses; choose another name",
    ],
    [
      "promise",
      "new-method: the name 'Promise' (from 'promise') is one the generated code already uses; choose another name",
    ],
    [
      "delete",
      "new-method: 'delete' gives the identifier 'delete', a reserved word in TypeScript (choose another name)",
    ],
  ];
  for (const [name, want] of cases) assert.equal(conflict(name), want, name);
  // massl_cnn and massl-cnn: the id of a registered method, or its file; either way refused.
  for (const name of ["massl_cnn", "massl-cnn"]) {
    assert.match(
      conflict(name) ?? "accepted",
      /^new-method: (methods\/massl_cnn\.ts already exists|method id 'massl-cnn' is already registered \(methods\/\w+\.ts\))/,
      name,
    );
  }
  assert.equal(conflict("cross_pseudo"), null);
  assert.equal(conflict("my_method"), null);
  // A registered id whose file has another name: the id collides, not the file name.
  const registered = {
    ...facts,
    ids: [...facts.ids, "cross-pseudo"],
    idFiles: { ...facts.idFiles, "cross-pseudo": "methods/pseudo_cross.ts" },
  };
  assert.equal(
    nameConflict(parseMethodName("cross_pseudo"), registered),
    "new-method: method id 'cross-pseudo' is already registered (methods/pseudo_cross.ts); choose another name",
  );
  // An id declared by a method file that the registry does not list is refused too.
  const declared = { ...facts, idFiles: { ...facts.idFiles, "cross-pseudo": "methods/wip.ts" } };
  assert.equal(
    nameConflict(parseMethodName("cross_pseudo"), declared),
    "new-method: method id 'cross-pseudo' is already declared (methods/wip.ts); choose another name",
  );
});

Deno.test({
  name: "new-method: in a copy of the repo, colliding names write nothing and the repo still loads",
  sanitizeResources: false,
  async fn() {
    const tmp = await copyRepo();
    if (tmp === null) {
      // deno-lint-ignore no-console
      console.log("SKIP new-method copy test: git cannot list the checkout's files");
      return;
    }
    try {
      // A file whose name is not its id: the id collides, not the file name.
      await Deno.writeTextFile(
        join(tmp, "methods", "wip_pseudo.ts"),
        'export const wip = { id: "cross-pseudo" };\n',
      );
      const before = listFiles(tmp).filter((f) => !f.startsWith("node_modules"));
      const registry = await Deno.readTextFile(join(tmp, "methods", "mod.ts"));
      for (
        const [name, want] of [
          [
            "cross_pseudo",
            /^new-method: method id 'cross-pseudo' is already declared \(methods\/wip_pseudo\.ts\)/,
          ],
          [
            "massl_cnn",
            /^new-method: (methods\/massl_cnn\.ts already exists|method id 'massl-cnn' is already registered)/,
          ],
          ["ua_mt", /^new-method: methods\/ua_mt\.ts already exists/],
          ["get_method", /^new-method: the name 'getMethod'/],
        ] as const
      ) {
        const r = await deno(["run", "-A", "benchmarks/new_method.ts", name], tmp);
        assert.equal(r.code, 2, name);
        assert.equal(r.out, "", name);
        assert.equal(r.err.trimEnd().split("\n").length, 1, r.err);
        assert.match(r.err, want, name);
      }
      assert.deepEqual(listFiles(tmp).filter((f) => !f.startsWith("node_modules")), before);
      assert.equal(await Deno.readTextFile(join(tmp, "methods", "mod.ts")), registry);
      // A new name is written, the registry loads with it; the same name again is refused.
      const made = await deno(["run", "-A", "benchmarks/new_method.ts", "my_pseudo"], tmp);
      assert.equal(made.code, 0, made.err);
      assert.match(made.out, /^method id: my-pseudo /m);
      const again = await deno(["run", "-A", "benchmarks/new_method.ts", "my-pseudo"], tmp);
      assert.equal(again.code, 2);
      assert.match(again.err, /^new-method: methods\/my_pseudo\.ts already exists/);
      const list = await deno(["run", "-A", "benchmarks/main.ts", "--list"], tmp);
      assert.equal(list.code, 0, list.err);
      assert.match(list.out, /^ {2}my-pseudo +my-pseudo \(TODO/m);
      assert.equal(list.out.match(/^ {2}massl-cnn /gm)?.length, 1);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
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
        "taken.ts",
        sup + 'export default { ...supervised, id: "ua-mt" };\n',
        /method id 'ua-mt' is already registered in methods\/mod\.ts by another definition; give this file's method its own id/,
      ],
      [
        "two.ts",
        sup +
        'export const a = { ...supervised, id: "a1" };\nexport const b = { ...supervised, id: "b1" };\n',
        /has no default export and 2 method definitions \(a, b\): export default the one to run/,
      ],
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
