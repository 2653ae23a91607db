/**
 * The reference training curve the backend tests compare: 20 SGD steps (momentum 0.9, weight
 * decay 1e-4, lr 0.01) of a 2-filter V-Net on a fixed random 2 x 32^3 batch (40 % foreground),
 * dropout off; the loss and `tf.memory().numTensors` after each step, on the active backend.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { Rng } from "../methods/nn/rng.ts";
import { VNet } from "../methods/nn/vnet.ts";
import { ceDiceLoss } from "../methods/nn/losses.ts";
import { disposeGrads, lossAndGrads, Sgd } from "../methods/nn/optim.ts";

/** Losses and tensor counts of the 20 steps (values read with `data()`: any backend). */
export async function vnetCurve(): Promise<{ losses: number[]; tensors: number[] }> {
  const rng = new Rng(11);
  const net = new VNet({ inChannels: 1, nFilters: 2 }, rng);
  const opt = new Sgd(net.params, { momentum: 0.9, weightDecay: 1e-4 });
  const n = 2 * 32 ** 3;
  const x = tf.tensor5d(rng.fillNormal(new Float32Array(n)), [2, 32, 32, 32, 1]);
  const lab = tf.tensor4d(
    Int32Array.from({ length: n }, () => (rng.uniform() < 0.4 ? 1 : 0)),
    [2, 32, 32, 32],
    "int32",
  );
  const losses: number[] = [], tensors: number[] = [];
  for (let i = 0; i < 20; i++) {
    const { value, grads } = lossAndGrads(() => {
      const [logits] = net.forward(x, { training: true, dropout: false });
      return ceDiceLoss(logits!, lab).loss;
    }, net.params);
    opt.step(grads, 0.01);
    disposeGrads(grads);
    losses.push((await value.data())[0]!);
    value.dispose();
    tensors.push(tf.memory().numTensors);
  }
  tf.dispose([x, lab]);
  net.dispose();
  opt.dispose();
  return { losses, tensors };
}
