/**
 * How Z-Image LoRAs and checkpoints are recognised (docs/model-families.md §4.4). Its blocks are
 * `layers.N`, `noise_refiner.N` and `context_refiner.N` with an `attention` (`to_q/to_k/to_v/to_out.0`
 * in diffusers and musubi-tuner names, fused `qkv` / `out` in the original and ComfyUI names) and a
 * SwiGLU `feed_forward.w1/w2/w3`: no other registered family names a block module `attention` or
 * `feed_forward` (FLUX / SD3 / Qwen-Image / SD say `attn`, Wan `self_attn` / `ffn`), so these count
 * as its signals, in any prefix and in either spelling. Its `x_embedder` and `final_layer.*` are
 * FLUX.1 names too (FLUX's signals fire on them): the Z-Image blocks outweigh them.
 *
 * Lumina-Image-2.0 (ComfyUI's other `NextDiT`, not a loraflow family) has the same names; its
 * LoRAs would read as Z-Image ones **[code-reading]**.
 */
import type { CheckpointSignal, DetectionRule, KeySignal, MetadataHint } from '../family.ts';

/** A Z-Image block, any prefix, dotted or `.` → `_` (`lora_unet_layers_0_`, `diffusion_model.noise_refiner.1.`). */
const BLOCK = String.raw`(?:^|[._])(?:layers|noise_refiner|context_refiner)[._]\d+[._]`;
const END = String.raw`(?:[._]|$)`;

export const Z_IMAGE_SIGNALS: readonly KeySignal[] = [
  { re: new RegExp(`${BLOCK}attention[._](?:to_[qkv]|to_out[._]0|qkv|out)${END}`), what: 'Z-Image block attention (attention.to_q/to_k/to_v/to_out.0, or fused qkv / out)' },
  { re: new RegExp(`${BLOCK}feed_forward[._]w[123]${END}`), what: 'Z-Image SwiGLU feed_forward.w1 / w2 / w3 in blocks' },
  { re: new RegExp(`${BLOCK}(?:adaLN_modulation[._]0|attention[._](?:q_norm|k_norm|norm_q|norm_k)|(?:attention|ffn)_norm[12])${END}`), what: 'Z-Image block modulation / norms' },
  { re: new RegExp(String.raw`(?:^|[._])(?:cap_embedder[._][01]|t_embedder[._]mlp[._][02]|all_x_embedder[._]2-1|all_final_layer[._]2-1)${END}`), what: 'Z-Image embedders / final layer (cap_embedder, t_embedder, all_x_embedder, all_final_layer)' },
];

export const Z_IMAGE_METADATA: readonly MetadataHint[] = [
  // musubi-tuner z_image (dataset/architectures.py), ai-toolkit zimage (ZImageModel.arch)
  { key: 'ss_base_model_version', re: /^z[_-]?image/i },
  // musubi-tuner Z-Image/lora (utils/sai_model_spec.py ARCH_Z_IMAGE)
  { key: 'modelspec.architecture', re: /^z-image/i },
];

/** Names Z-Image shares with FLUX.1 (`x_embedder`, `final_layer.linear` / `.adaLN_modulation.1`, also inside `all_x_embedder` / `all_final_layer`): FLUX's signals count them. */
const SHARED_WITH_FLUX = /(?:^|[._])(?:x_embedder|final_layer)[._]/;

export const Z_IMAGE_RULES: readonly DetectionRule[] = [
  {
    // Z-Image block names outnumber the other transformer families' signals on keys it does not share with them, and no
    // UNet names are present; its signals never fire on FLUX.2 files, so FLUX.2's rule (9) never takes a Z-Image file
    order: 15,
    decide: (c) => {
      const n = c.count('z-image');
      if (n === 0 || c.denoiserKeys('unet') > 0) return undefined;
      const shared = c.tensors.filter((t) => SHARED_WITH_FLUX.test(t.name)).length;
      if (c.othersOfKind('z-image', 'transformer') - shared >= n) return undefined;
      return c.finish('z-image', c.metadataFamily && c.metadataFamily.family !== 'z-image' ? 0.8 : 1);
    },
  },
  {
    // only the names both share (an embedder / final-layer LoRA): the metadata's word, before FLUX.1 (10) takes it
    order: 8,
    decide: (c) => {
      if (c.metadataFamily?.family !== 'z-image' || c.tensors.length === 0 || !c.tensors.every((t) => SHARED_WITH_FLUX.test(t.name))) return undefined;
      c.evidence.push('only x_embedder / final_layer names, which FLUX.1 shares: Z-Image by its metadata');
      return c.finish('z-image', 0.9);
    },
  },
];

export const Z_IMAGE_CHECKPOINT_SIGNALS: readonly CheckpointSignal[] = [
  // ComfyUI's own test for its NextDiT family (model_detection.py: cap_embedder.1.weight)
  { re: /(?:^|\.)cap_embedder\.1\.weight$/, what: 'Z-Image caption embedder (cap_embedder.1)' },
  { re: /(?:^|\.)(?:layers|noise_refiner|context_refiner)\.\d+\.attention\.qkv\.weight$/, what: 'Z-Image fused block attention (layers.N.attention.qkv)' },
];
