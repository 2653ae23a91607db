/**
 * Gradient registrations for the tfjs kernels the suite differentiates through.
 *
 * The split package `@tensorflow/tfjs-core` 4.22 registers NO gradients by itself (the union
 * package `@tensorflow/tfjs` does it through `dist/register_all_gradients`, whose extensionless
 * ESM imports Deno cannot load, and which is not a dependency here). Importing this module
 * registers our own gradient functions for exactly the kernels used by the V-Net and the
 * losses; a kernel that already has a gradient (e.g. when `@tensorflow/tfjs` is loaded too)
 * is left alone. Formulas are the standard derivatives; `tests/gradients_test.ts` checks each
 * against central finite differences.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";

type Grads = Record<string, () => tf.Tensor>;
type GradFn = (dy: tf.Tensor, saved: tf.Tensor[], attrs: tf.NamedAttrMap) => Grads;

function reg(
  kernelName: string,
  gradFunc: GradFn,
  opts: Omit<tf.GradConfig, "kernelName" | "gradFunc"> = {},
): void {
  if (tf.getGradient(kernelName) !== undefined) return;
  tf.registerGradient({
    kernelName,
    ...opts,
    gradFunc: gradFunc as unknown as tf.GradConfig["gradFunc"],
  });
}

/** Sum `dy` (broadcast result) back down to `shape` (numpy broadcasting rules). */
export function reduceToShape(dy: tf.Tensor, shape: readonly number[]): tf.Tensor {
  const out = dy.shape;
  const lead = out.length - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < out.length; i++) {
    const s = i < lead ? 1 : shape[i - lead]!;
    if (i < lead || (s === 1 && out[i] !== 1)) axes.push(i);
  }
  const r = axes.length > 0 ? tf.sum(dy, axes) : dy;
  return tf.reshape(r, shape as number[]);
}

const s0 = (saved: tf.Tensor[], i = 0): tf.Tensor => saved[i]!;
const unary = { inputsToSave: ["x"] };
const binary = { inputsToSave: ["a", "b"] };

reg("Add", (dy, [a, b]) => ({
  a: () => reduceToShape(dy, a!.shape),
  b: () => reduceToShape(dy, b!.shape),
}), binary);
reg("Sub", (dy, [a, b]) => ({
  a: () => reduceToShape(dy, a!.shape),
  b: () => reduceToShape(tf.neg(dy), b!.shape),
}), binary);
reg("Multiply", (dy, [a, b]) => ({
  a: () => reduceToShape(tf.mul(dy, tf.cast(b!, "float32")), a!.shape),
  b: () => reduceToShape(tf.mul(dy, tf.cast(a!, "float32")), b!.shape),
}), binary);
reg("RealDiv", (dy, [a, b]) => ({
  a: () => reduceToShape(tf.div(dy, b!), a!.shape),
  b: () => reduceToShape(tf.neg(tf.div(tf.mul(dy, a!), tf.square(b!))), b!.shape),
}), binary);
reg("SquaredDifference", (dy, [a, b]) => ({
  a: () => reduceToShape(tf.mul(dy, tf.mul(2, tf.sub(a!, b!))), a!.shape),
  b: () => reduceToShape(tf.mul(dy, tf.mul(2, tf.sub(b!, a!))), b!.shape),
}), binary);
reg("Neg", (dy) => ({ x: () => tf.neg(dy) }));
reg("Cast", (dy) => ({ x: () => tf.clone(dy) }));
reg("Identity", (dy) => ({ x: () => tf.clone(dy) }));
reg("Square", (dy, saved) => ({ x: () => tf.mul(dy, tf.mul(2, s0(saved))) }), unary);
reg("Abs", (dy, saved) => ({ x: () => tf.mul(dy, tf.sign(s0(saved))) }), unary);
reg("Exp", (dy, saved) => ({ x: () => tf.mul(dy, s0(saved)) }), { outputsToSave: [true] });
reg("Log", (dy, saved) => ({ x: () => tf.div(dy, s0(saved)) }), unary);
reg("Log1p", (dy, saved) => ({ x: () => tf.div(dy, tf.add(s0(saved), 1)) }), unary);
reg("Sqrt", (dy, saved) => ({ x: () => tf.div(dy, tf.mul(2, s0(saved))) }), {
  outputsToSave: [true],
});
reg("Rsqrt", (dy, saved) => ({
  // d/dx x^-1/2 = -1/2 x^-3/2
  x: () => tf.mul(dy, tf.mul(-0.5, tf.pow(s0(saved), -1.5))),
}), unary);
reg("Relu", (dy, saved) => ({
  x: () => tf.mul(dy, tf.cast(tf.greater(s0(saved), 0), "float32")),
}), unary);
reg("Sigmoid", (dy, saved) => {
  const y = s0(saved);
  return { x: () => tf.mul(dy, tf.mul(y, tf.sub(1, y))) };
}, { outputsToSave: [true] });
reg("Tanh", (dy, saved) => {
  const y = s0(saved);
  return { x: () => tf.mul(dy, tf.sub(1, tf.square(y))) };
}, { outputsToSave: [true] });
reg("Softmax", (dy, saved, attrs) => {
  const y = s0(saved);
  const dim = attrs.dim as number;
  return { logits: () => tf.mul(tf.sub(dy, tf.sum(tf.mul(dy, y), dim, true)), y) };
}, { outputsToSave: [true] });
reg("Reshape", (dy, saved) => ({ x: () => tf.reshape(dy, s0(saved).shape) }), unary);
reg("Transpose", (dy, _saved, attrs) => {
  const perm = attrs.perm as number[];
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return { x: () => tf.transpose(dy, inv) };
});
reg("Slice", (dy, saved, attrs) => {
  const x = s0(saved);
  // tf.slice keeps `begin` as the caller gave it: a number means "along axis 0" and a short
  // array leaves the trailing axes at 0 (tfjs slice_util.parseSliceParams).
  const b = attrs.begin as number | number[];
  const given = typeof b === "number" ? [b] : b;
  const begin = x.shape.map((_, i) => given[i] ?? 0);
  const pads = x.shape.map((d, i) => [begin[i]!, d - begin[i]! - dy.shape[i]!] as [number, number]);
  return { x: () => tf.pad(dy, pads) };
}, unary);

function reduceGrad(dy: tf.Tensor, x: tf.Tensor, axisAttr: unknown, mean: boolean): tf.Tensor {
  const rank = x.shape.length;
  const axes = axisAttr === undefined || axisAttr === null
    ? x.shape.map((_, i) => i)
    : (Array.isArray(axisAttr) ? axisAttr as number[] : [axisAttr as number]).map((a) =>
      a < 0 ? a + rank : a
    );
  const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  let count = 1;
  for (const a of axes) count *= x.shape[a]!;
  const g = tf.mul(tf.reshape(dy, kept), tf.ones(x.shape));
  return mean ? tf.div(g, count) : g;
}
reg(
  "Sum",
  (dy, saved, attrs) => ({ x: () => reduceGrad(dy, s0(saved), attrs.axis, false) }),
  unary,
);
reg(
  "Mean",
  (dy, saved, attrs) => ({ x: () => reduceGrad(dy, s0(saved), attrs.axis, true) }),
  unary,
);

reg("BatchMatMul", (dy, [a, b], attrs) => {
  const ta = attrs.transposeA as boolean;
  const tb = attrs.transposeB as boolean;
  const ra = a!.shape.length, rb = b!.shape.length;
  if (ra !== rb || a!.shape.slice(0, ra - 2).some((d, i) => d !== b!.shape[i])) {
    throw new Error("BatchMatMul gradient: batch broadcasting is unsupported");
  }
  // C = op(A) op(B)
  return {
    a: () => ta ? tf.matMul(b!, dy, tb, true) : tf.matMul(dy, b!, false, !tb),
    b: () => tb ? tf.matMul(dy, a!, true, ta) : tf.matMul(a!, dy, !ta, false),
  };
}, binary);

reg("Conv3D", (dy, [x, filter], attrs) => {
  const strides = attrs.strides as [number, number, number] | number;
  const pad = attrs.pad as "valid" | "same";
  const dil = attrs.dilations as [number, number, number] | number | undefined;
  if (dil !== undefined && [dil].flat().some((d) => d !== 1)) {
    throw new Error("Conv3D gradient: dilations > 1 unsupported");
  }
  return {
    x: () =>
      tf.conv3dTranspose(
        dy as tf.Tensor5D,
        filter as tf.Tensor5D,
        x!.shape as [number, number, number, number, number],
        strides,
        pad,
      ),
    filter: () =>
      tf.engine().runKernel("Conv3DBackpropFilterV2", { x: x!, dy }, {
        strides,
        pad,
        filterShape: filter!.shape,
      }) as tf.Tensor,
  };
}, { inputsToSave: ["x", "filter"] });
