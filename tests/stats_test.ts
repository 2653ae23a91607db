import assert from "node:assert/strict";
import { incompleteBeta, mean, pairedTTest, std, tTwoSidedP } from "../benchmarks/harness/stats.ts";
import { canonicalJson, hashOf } from "../methods/nn/canonical.ts";

const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

Deno.test("mean and sample std", () => {
  assert.equal(mean([1, 2, 3, 4]), 2.5);
  close(std([2, 4, 4, 4, 5, 5, 7, 9]), 2.138089935299395, 1e-12, "std");
  assert.equal(std([3]), 0);
});

Deno.test("Student t two-sided p-values match tables", () => {
  // t(0.975, 10) = 2.228138851986 -> p = 0.05; t(0.995, 4) = 4.604094871 -> p = 0.01
  close(tTwoSidedP(2.228138851986, 10), 0.05, 1e-9, "df=10");
  close(tTwoSidedP(4.604094871415, 4), 0.01, 1e-9, "df=4");
  close(tTwoSidedP(0, 7), 1, 1e-12, "t=0");
  close(incompleteBeta(0.5, 2, 2), 0.5, 1e-12, "I_0.5(2,2)");
});

Deno.test("paired t-test: textbook example (Student's sleep data, Cushny & Peebles)", () => {
  // R: t.test(extra ~ group, data = sleep, paired = TRUE): t = -4.0621, df = 9, p = 0.002833
  const g1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0];
  const g2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4];
  const r = pairedTTest(g1, g2);
  close(r.t, -4.062127683382, 1e-9, "t");
  assert.equal(r.df, 9);
  close(r.p, 0.002832890, 1e-8, "p");
  close(r.meanDiff, -1.58, 1e-12, "mean diff");
  assert.throws(() => pairedTTest([1], [1, 2]), /differ in length/);
  assert.ok(Number.isNaN(pairedTTest([1, 2], [1, 2]).p));
});

Deno.test("canonical JSON ignores key order but not array order", () => {
  assert.equal(canonicalJson({ b: 1, a: { d: 2, c: 3 } }), '{"a":{"c":3,"d":2},"b":1}');
  assert.equal(hashOf({ x: 1, y: [1, 2] }), hashOf({ y: [1, 2], x: 1 }));
  assert.notEqual(hashOf({ y: [1, 2] }), hashOf({ y: [2, 1] }));
});
