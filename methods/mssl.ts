/**
 * MSSL: the multi-task baseline of Chen et al., MICCAI 2019 (MASSL paper, Sec. 2.1): the MASSL
 * network whose reconstruction decoder predicts the input image itself, `L_rec = mean((R - x)^2)`
 * (official code `Network_training_SSL_epoch_BraTS18.py`, mode 'rec', `network/ssl_3d_sep.py`
 * `MSSL_norm`). Same strategies and hyper-parameters as {@link massl} (`methods/massl.ts`);
 * `attentionGrad` and `weighted` have no effect here.
 * @module
 */
import type { MethodDefinition } from "./types.ts";
import { binaryOnly } from "./nn/method_base.ts";
import { MASSL_CHOICES, MASSL_DEFAULTS, MASSL_NOTES, type MasslHp, MasslMethod } from "./massl.ts";

/** Registry entry: MSSL (alternating by default; `strategy: "joint"` + `alpha` for MSSL(α)). */
export const mssl: MethodDefinition<MasslHp> = {
  id: "mssl",
  meta: {
    title: "MSSL",
    minTrainPatch: 32,
    paper: "Chen et al., MICCAI 2019 (MASSL)",
    referenceCode:
      "ShuaiChenBIGR/MASSL-segmentation-framework Network_training_SSL_epoch_BraTS18.py, " +
      "network/ssl_3d_sep.py (MSSL_norm)",
    role: "baseline",
    reconstructed: false,
    notes: MASSL_NOTES,
  },
  defaults: MASSL_DEFAULTS,
  choices: MASSL_CHOICES,
  create: (hp, ctx) => new MasslMethod(hp, binaryOnly("mssl", ctx), "image"),
};
