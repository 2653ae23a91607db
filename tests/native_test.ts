/**
 * oneDNN native kernels (methods/nn/native) vs the original pure-JS tfjs cpu kernels: conv3d
 * forward and both gradients (through tf.grads of tf.conv3d), broadcasting element-wise ops,
 * reductions, Relu, Transpose and BatchMatMul; fallback of unsupported geometries; and the
 * missing-library path in a subprocess (one notice, correct results). Kernel tests are skipped,
 * with a message, when libdnnl.so.2 (Debian libdnnl2) is absent.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "../methods/nn/gradients.ts";
import "@tensorflow/tfjs-backend-cpu";
import {
  installNativeKernels,
  nativeCallCounts,
  uninstallNativeKernels,
} from "../methods/nn/native/install.ts";
import { collapse } from "../methods/nn/native/elementwise.ts";
import { convPrimitivesBuilt } from "../methods/nn/native/conv3d.ts";
import { simplifyTranspose } from "../methods/nn/native/linalg.ts";
import { Dnnl } from "../methods/nn/native/dnnl.ts";
import { ABI } from "../methods/nn/native/abi.ts";
import { layoutReader } from "../methods/nn/native/md_layout.ts";
import { Rng } from "../methods/nn/rng.ts";
import { dnnlMissing, relDiff } from "./native_util.ts";

tf.env().set("PROD", true);
await tf.setBackend("cpu");

const missing = dnnlMissing("native_test");
const ignore = missing !== null;

function rand(shape: number[], seed: number): tf.Tensor {
  const r = new Rng(seed);
  return tf.tensor(r.fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1))), shape);
}

/** Run `f` with the pure-JS kernels and with the native ones; return both results. */
function both(
  f: () => tf.Tensor[],
): { js: Float32Array[]; nat: Float32Array[]; shapes: number[][] } {
  uninstallNativeKernels();
  const js = tf.tidy(f);
  const jsv = js.map((t) => t.dataSync() as Float32Array);
  const shapes = js.map((t) => t.shape);
  tf.dispose(js);
  const st = installNativeKernels();
  assert.ok(st.active, st.reason);
  const nat = tf.tidy(f);
  const natv = nat.map((t) => t.dataSync() as Float32Array);
  nat.forEach((t, i) => assert.deepEqual(t.shape, shapes[i]));
  tf.dispose(nat);
  return { js: jsv, nat: natv, shapes };
}

function convAndGrads(
  xs: number[],
  ws: number[],
  stride: number,
  pad: "same" | "valid",
): () => tf.Tensor[] {
  return () => {
    const x = rand(xs, 1) as tf.Tensor5D, w = rand(ws, 2) as tf.Tensor5D;
    const y = tf.conv3d(x, w, stride, pad);
    const r = rand(y.shape, 3);
    const f = (a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(tf.conv3d(a as tf.Tensor5D, b as tf.Tensor5D, stride, pad), r));
    const [dx, dw] = tf.grads(f)([x, w]);
    return [y, dx!, dw!];
  };
}

const CONV_CASES: [string, number[], number[], number, "same" | "valid"][] = [
  ["3x3x3 s1 same, odd sizes, batch 2", [2, 5, 6, 7, 3], [3, 3, 3, 3, 4], 1, "same"],
  ["3x3x3 s1 same, 1 -> 16 channels", [2, 8, 8, 8, 1], [3, 3, 3, 1, 16], 1, "same"],
  ["3x3x3 s1 same, 16 -> 8 channels", [1, 6, 7, 5, 16], [3, 3, 3, 16, 8], 1, "same"],
  ["2x2x2 s2 valid, even", [2, 8, 8, 6, 4], [2, 2, 2, 4, 8], 2, "valid"],
  ["2x2x2 s2 valid, odd sizes", [2, 7, 5, 9, 4], [2, 2, 2, 4, 5], 2, "valid"],
  ["1x1x1 head", [2, 5, 5, 5, 16], [1, 1, 1, 16, 2], 1, "valid"],
  [
    "3x3x3 s1 same, 16 -> 16 channels (nCdhw16c is NDHWC)",
    [2, 6, 5, 7, 16],
    [3, 3, 3, 16, 16],
    1,
    "same",
  ],
  ["1x1x1 same", [1, 5, 3, 5, 3], [1, 1, 1, 3, 2], 1, "same"],
  ["3x3x3 s2 same, odd (asymmetric padding)", [2, 9, 8, 7, 2], [3, 3, 3, 2, 3], 2, "same"],
  ["3x3x3 s1 valid", [1, 6, 6, 6, 3], [3, 3, 3, 3, 3], 1, "valid"],
];

for (const [name, xs, ws, s, pad] of CONV_CASES) {
  Deno.test({
    name: `native conv3d: ${name}: forward, dX, dW match tfjs JS (auto, plain, blocked layouts)`,
    ignore,
    fn() {
      for (const layout of ["auto", "plain", "blocked"]) {
        Deno.env.set("SEMISEG_CONV_LAYOUT", layout);
        try {
          convCase(xs, ws, s, pad, layout);
        } finally {
          Deno.env.delete("SEMISEG_CONV_LAYOUT");
        }
      }
    },
  });
}

Deno.test({
  name:
    "native conv3d: a oneDNN layout that is tfjs's own (16 channels in nCdhw16c) is not reordered",
  ignore,
  fn() {
    const d = Dnnl.open();
    try {
      const same = layoutReader(d);
      assert.ok(same, "the memory-descriptor reader failed its self-check on this oneDNN");
      const md = (dims: number[], tag: number) => d.mdTag(dims, tag);
      assert.ok(
        same(md([2, 16, 5, 6, 7], ABI.dnnl_nCdhw16c), md([2, 16, 5, 6, 7], ABI.dnnl_ndhwc)),
      );
      assert.ok(
        !same(md([2, 32, 5, 6, 7], ABI.dnnl_nCdhw16c), md([2, 32, 5, 6, 7], ABI.dnnl_ndhwc)),
      );
      assert.ok(!same(md([2, 8, 5, 6, 7], ABI.dnnl_nCdhw8c), md([2, 16, 5, 6, 7], ABI.dnnl_ndhwc)));
      assert.ok(same(md([2, 8, 5, 6, 7], ABI.dnnl_nCdhw8c), md([2, 8, 5, 6, 7], ABI.dnnl_ndhwc)));
      assert.ok(!same(md([2, 4, 5, 6, 7], ABI.dnnl_nCdhw8c), md([2, 4, 5, 6, 7], ABI.dnnl_ndhwc)));
      assert.ok(!same(md([2, 16, 5, 6, 7], ABI.dnnl_ncdhw), md([2, 16, 5, 6, 7], ABI.dnnl_ndhwc)));
    } finally {
      d.close();
    }
    assert.ok(installNativeKernels().active);
    tf.tidy(() => convAndGrads([2, 6, 5, 6, 16], [3, 3, 3, 16, 16], 1, "same")());
    const fwd = convPrimitivesBuilt().filter((b) =>
      b.kind === "f" && b.geometry.includes("[2,16,6,5,6]") && b.geometry.includes("[16,16,3,3,3]")
    ).pop();
    assert.ok(fwd, JSON.stringify(convPrimitivesBuilt().slice(-3)));
    // AVX-512 kernels block channels by 16: at 16 channels their src/dst layout is NDHWC.
    if (fwd.impl.includes("avx512")) {
      assert.deepEqual(fwd.reordered.filter((r) => r !== "wei"), [], JSON.stringify(fwd));
    }
  },
});

function convCase(
  xs: number[],
  ws: number[],
  s: number,
  pad: "same" | "valid",
  layout: string,
): void {
  {
    {
      const before = nativeCallCounts();
      const { js, nat } = both(convAndGrads(xs, ws, s, pad));
      const after = nativeCallCounts();
      for (const [i, what] of ["forward", "dX", "dW"].entries()) {
        const d = relDiff(nat[i]!, js[i]!);
        assert.ok(d <= 1e-4, `${layout}: ${what}: relative max abs diff ${d}`);
      }
      for (const k of ["Conv3D", "Conv3DBackpropInputV2", "Conv3DBackpropFilterV2"]) {
        assert.ok((after[k] ?? 0) > (before[k] ?? 0), `${layout}: ${k} did not run natively`);
      }
    }
  }
}

Deno.test({
  name: "native conv3d: a large volume never gets oneDNN's reference kernel (112x112x80 dX)",
  ignore,
  fn() {
    // With plain ndhwc buffers oneDNN 2.6 answers this backward-data with ref:any (118 s a
    // call, measured); the default layout policy must avoid it.
    uninstallNativeKernels();
    assert.ok(installNativeKernels().active);
    tf.tidy(() => {
      const x = tf.zeros([1, 112, 112, 80, 16]) as tf.Tensor5D;
      const w = tf.zeros([3, 3, 3, 16, 16]) as tf.Tensor5D;
      const dy = tf.ones([1, 112, 112, 80, 16]);
      const dx = tf.engine().runKernel("Conv3DBackpropInputV2", { dy, filter: w }, {
        strides: [1, 1, 1],
        pad: "same",
        inputShape: x.shape,
      }) as tf.Tensor;
      assert.equal(dx.dataSync()[0], 0);
    });
    const mine = convPrimitivesBuilt().filter((b) => b.geometry.includes("112"));
    assert.ok(mine.length > 0, "no primitive built for the 112x112x80 geometry");
    for (const b of mine) assert.ok(!b.impl.startsWith("ref"), `${b.kind}: ${b.impl}`);
  },
});

Deno.test({
  name: "native conv3d: unsupported geometry (dilation 2) falls back to the JS kernel",
  ignore,
  fn() {
    const f = () => [
      tf.conv3d(
        rand([1, 7, 7, 7, 2], 4) as tf.Tensor5D,
        rand([3, 3, 3, 2, 3], 5) as tf.Tensor5D,
        1,
        "same",
        "NDHWC",
        2,
      ),
    ];
    const before = nativeCallCounts()["Conv3D"] ?? 0;
    const { js, nat } = both(f);
    assert.equal(nativeCallCounts()["Conv3D"] ?? 0, before);
    assert.ok(relDiff(nat[0]!, js[0]!) <= 1e-6);
  },
});

const EW_CASES: [string, () => tf.Tensor[]][] = [
  ["add same shape", () => [tf.add(rand([2, 9, 8, 7, 5], 1), rand([2, 9, 8, 7, 5], 2))]],
  ["mul per-channel [C]", () => [tf.mul(rand([2, 9, 8, 7, 16], 1), rand([16], 2))]],
  ["sub [1,1,1,1,C]", () => [tf.sub(rand([2, 9, 8, 7, 16], 1), rand([1, 1, 1, 1, 16], 2))]],
  [
    "div by [N,1,1,1,C]",
    () => [tf.div(rand([2, 9, 8, 7, 5], 1), tf.add(tf.abs(rand([2, 1, 1, 1, 5], 2)), 1))],
  ],
  ["mul scalar first", () => [tf.mul(tf.scalar(0.3), rand([3, 40, 50], 1))]],
  ["sub scalar first", () => [tf.sub(1, rand([3, 40, 50], 1))]],
  ["div scalar first", () => [tf.div(2, tf.add(tf.abs(rand([3, 40, 50], 1)), 1))]],
  ["add middle broadcast [A,1,C]", () => [tf.add(rand([6, 100, 7], 1), rand([6, 1, 7], 2))]],
  ["sum over N,D,H,W", () => [tf.sum(rand([2, 9, 8, 7, 5], 1), [0, 1, 2, 3])]],
  ["mean over N,D,H,W keepDims", () => [tf.mean(rand([2, 9, 8, 7, 5], 1), [0, 1, 2, 3], true)]],
  ["sum all", () => [tf.sum(rand([2, 9, 8, 7, 5], 1))]],
  ["sum last axis", () => [tf.sum(rand([2, 9, 8, 7, 5], 1), -1)]],
  ["mean middle axes", () => [tf.mean(rand([2, 9, 8, 7, 5], 1), [1, 2])]],
  [
    "sum axes 0 and 4 ([R, A, R]: strided float64 loop)",
    () => [tf.sum(rand([2, 9, 8, 7, 5], 1), [0, 4])],
  ],
  ["relu", () => [tf.relu(rand([2, 9, 8, 7, 5], 1))]],
  ["neg", () => [tf.neg(rand([2, 9, 8, 7, 5], 1))]],
  [
    "greater than scalar (bool)",
    () => [tf.cast(tf.greater(rand([2, 9, 8, 7, 5], 1), 0), "float32")],
  ],
  ["greater same shape (bool)", () => [
    tf.cast(tf.greater(rand([2, 9, 8, 7, 5], 1), rand([2, 9, 8, 7, 5], 2)), "float32"),
  ]],
  ["transpose depth-to-space", () => [
    tf.transpose(rand([2, 3, 4, 5, 2, 2, 2, 6], 1), [0, 1, 4, 2, 5, 3, 6, 7]),
  ]],
  ["transpose 2D", () => [tf.transpose(rand([70, 90], 1))]],
  ["matMul 2D", () => [tf.matMul(rand([300, 16], 1), rand([16, 64], 2))]],
  ["matMul transposeA", () => [tf.matMul(rand([16, 300], 1), rand([16, 64], 2), true, false)]],
  ["matMul transposeB", () => [tf.matMul(rand([300, 16], 1), rand([64, 16], 2), false, true)]],
  ["matMul both transposed", () => [tf.matMul(rand([16, 300], 1), rand([64, 16], 2), true, true)]],
  ["batched matMul", () => [tf.matMul(rand([3, 100, 16], 1), rand([3, 16, 40], 2))]],
  ["batched matMul, b broadcast", () => [tf.matMul(rand([3, 100, 16], 1), rand([1, 16, 40], 2))]],
];

for (const [name, f] of EW_CASES) {
  Deno.test({
    name: `native element-wise: ${name} matches tfjs JS`,
    ignore,
    fn() {
      const total = () => Object.values(nativeCallCounts()).reduce((x, y) => x + y, 0);
      const before = total();
      const { js, nat } = both(f);
      assert.ok(total() > before, "no native kernel ran");
      const d = relDiff(nat[0]!, js[0]!);
      assert.ok(d <= 1e-5, `relative max abs diff ${d}`);
    },
  });
}

Deno.test({
  name: "native element-wise: large ops run natively, tiny ones stay in JS",
  ignore,
  fn() {
    installNativeKernels();
    const before = nativeCallCounts();
    tf.tidy(() => {
      tf.mul(rand([2, 9, 8, 7, 16], 1), rand([16], 2)).dataSync();
      tf.add(rand([3, 4], 1), rand([4], 2)).dataSync();
    });
    const after = nativeCallCounts();
    assert.equal((after["Multiply"] ?? 0) - (before["Multiply"] ?? 0), 1);
    assert.equal((after["Add"] ?? 0) - (before["Add"] ?? 0), 0);
  },
});

Deno.test("native helpers: collapse and simplifyTranspose", () => {
  assert.deepEqual(collapse([2, 4, 4, 4, 16], [true, true, true, true, false]), {
    dims: [128, 16],
    role: [true, false],
  });
  assert.deepEqual(collapse([1, 1], [true, false]), { dims: [1], role: [false] });
  // [n,d,h,w,2,2,2,c] -> [n,d,2,h,2,w,2,c]; n,d merge; c stays last
  assert.deepEqual(simplifyTranspose([2, 3, 4, 5, 2, 2, 2, 6], [0, 1, 4, 2, 5, 3, 6, 7]), {
    shape: [6, 4, 5, 2, 2, 12],
    perm: [0, 3, 1, 4, 2, 5],
  });
  assert.deepEqual(simplifyTranspose([3, 1, 4], [2, 1, 0]), { shape: [3, 4], perm: [1, 0] });
});

Deno.test("native fallback: missing library -> one notice, pure JS, correct results", async () => {
  const script = new URL("./native_fallback_script.ts", import.meta.url).pathname;
  const run = async (env: Record<string, string>) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script],
      env,
      cwd: new URL("..", import.meta.url).pathname,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.ok(out.success, stderr);
    return {
      stderr,
      result: JSON.parse(new TextDecoder().decode(out.stdout)) as {
        status: { active: boolean; reason: string };
        details: Record<string, string>;
        y: number[];
        dx: number[];
        dw: number[];
      },
    };
  };
  // reference: pure JS in this process
  uninstallNativeKernels();
  const ref = tf.tidy(() => convAndGrads([2, 5, 6, 7, 3], [3, 3, 3, 3, 4], 1, "same")())
    .map((t) => {
      const v = Array.from(t.dataSync());
      t.dispose();
      return v;
    });

  const hidden = await run({ SEMISEG_DNNL_LIB: "/nonexistent/libdnnl.so.2" });
  const notices = hidden.stderr.split("\n").filter((l) => l.includes("native kernels unavailable"));
  assert.equal(notices.length, 1, hidden.stderr);
  assert.match(notices[0]!, /\/nonexistent\/libdnnl\.so\.2/);
  assert.equal(hidden.result.status.active, false);
  assert.match(hidden.result.details["nativeKernels"] ?? "", /^none/);
  for (const [i, k] of (["y", "dx", "dw"] as const).entries()) {
    assert.ok(relDiff(hidden.result[k], ref[i]!) <= 1e-6, k);
  }

  const off = await run({ SEMISEG_NATIVE: "0" });
  assert.ok(!off.stderr.includes("native kernels unavailable"), off.stderr);
  assert.equal(off.result.status.active, false);
  assert.match(off.result.status.reason, /SEMISEG_NATIVE=0/);
});

Deno.test({
  name: "native binary ops take float32 tensors that tfjs's Cast left on int32 / bool arrays",
  ignore,
  fn() {
    const f = () => {
      const x = rand([2, 16, 16, 16], 4);
      const mask = tf.cast(tf.greater(x, 0.3), "float32"); // bool data under a float32 tensor
      const lab = tf.cast(tf.cast(tf.greater(x, -0.2), "int32"), "float32"); // int32 data
      return [tf.mul(x, mask), tf.add(lab, x), tf.sub(mask, lab)];
    };
    const before = nativeCallCounts();
    const { js, nat } = both(f);
    const after = nativeCallCounts();
    for (const k of ["Multiply", "Add", "Sub"]) {
      assert.ok((after[k] ?? 0) > (before[k] ?? 0), `${k} did not run natively`);
    }
    js.forEach((v, i) => assert.deepEqual(Array.from(nat[i]!), Array.from(v), `output ${i}`));
  },
});
