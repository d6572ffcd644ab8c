/**
 * The Z-Image (Turbo) transformer module map as data (docs/model-families.md §4.2): every weight of
 * `ZImageTransformer2DModel` under its original name (the Tongyi-MAI single file = ComfyUI's
 * Lumina2 `NextDiT` = diffusion-pipe) and its diffusers name, as
 * `single_file_utils.py convert_z_image_transformer_checkpoint_to_diffusers` renames them: the
 * fused `attention.qkv` splits into `to_q` / `to_k` / `to_v` (`torch.chunk(…, 3)`, h rows each),
 * `attention.out` ⇄ `attention.to_out.0`, `q_norm` / `k_norm` ⇄ `norm_q` / `norm_k`, and the
 * patch-size-keyed ModuleDicts `all_x_embedder."2-1"` / `all_final_layer."2-1"` (patch 2, frame
 * patch 1) ⇄ `x_embedder` / `final_layer`. Nothing swaps row halves: the final adaLN is scale only.
 *
 * Three block kinds share one inner layout: `layers.{i}` (30), `noise_refiner.{i}` (2, on the image
 * tokens, with modulation) and `context_refiner.{i}` (2, on the caption tokens, without
 * `adaLN_modulation`). RMSNorm weights carry a `.weight`, like a linear's, so they are `linear`
 * entries of their length.
 *
 * Widths: h hidden (3840), f SwiGLU hidden (int(h / 3 · 8) = 10240), hd attention head width (128),
 * ad adaLN conditioning width (min(h, 256): t_embedder's output, every adaLN's input), fq timestep
 * frequencies (256, t_embedder's input), tm t_embedder's middle width (1024), ctx caption feature
 * width (Qwen3-4B, 2560), in patchified latent channels (2·2·1·16 = 64; x_embedder's input and
 * final_layer.linear's output).
 */
import { ModuleTable, qkvParts, type TableModule } from '../table/module-table.ts';

export type ZImageGroup = 'layer' | 'noise_refiner' | 'context_refiner' | 'embedder' | 'final';

/** Block containers and their table group, in the order the forward pass runs them. */
export const Z_IMAGE_BLOCK_KINDS: readonly { container: string; group: ZImageGroup; modulation: boolean }[] = [
  { container: 'noise_refiner', group: 'noise_refiner', modulation: true },
  { container: 'context_refiner', group: 'context_refiner', modulation: false },
  { container: 'layers', group: 'layer', modulation: true },
];

const same = (group: ZImageGroup, name: string, shape: string[]): TableModule => ({ original: name, group, kind: 'linear', diffusers: name, shape });

function blockModules(container: string, group: ZImageGroup, modulation: boolean): TableModule[] {
  const B = `${container}.{i}`;
  const inner = (name: string, shape: string[]) => same(group, `${B}.${name}`, shape);
  return [
    { original: `${B}.attention.qkv`, group, kind: 'linear', diffusers: qkvParts(`${B}.attention.to_q`, `${B}.attention.to_k`, `${B}.attention.to_v`), shape: ['3h', 'h'] },
    { original: `${B}.attention.out`, group, kind: 'linear', diffusers: `${B}.attention.to_out.0`, shape: ['h', 'h'] },
    { original: `${B}.attention.q_norm`, group, kind: 'linear', diffusers: `${B}.attention.norm_q`, shape: ['hd'] },
    { original: `${B}.attention.k_norm`, group, kind: 'linear', diffusers: `${B}.attention.norm_k`, shape: ['hd'] },
    // SwiGLU: w2(silu(w1 x) · w3 x)
    inner('feed_forward.w1', ['f', 'h']),
    inner('feed_forward.w2', ['h', 'f']),
    inner('feed_forward.w3', ['f', 'h']),
    inner('attention_norm1', ['h']),
    inner('ffn_norm1', ['h']),
    inner('attention_norm2', ['h']),
    inner('ffn_norm2', ['h']),
    // (scale_msa, gate_msa, scale_mlp, gate_mlp); the context refiner has no modulation
    ...(modulation ? [inner('adaLN_modulation.0', ['4h', 'ad'])] : []),
  ];
}

export const Z_IMAGE_MODULES: readonly TableModule[] = [
  ...Z_IMAGE_BLOCK_KINDS.flatMap((k) => blockModules(k.container, k.group, k.modulation)),
  { original: 'x_embedder', group: 'embedder', kind: 'linear', diffusers: 'all_x_embedder.2-1', shape: ['h', 'in'] },
  same('embedder', 't_embedder.mlp.0', ['tm', 'fq']),
  same('embedder', 't_embedder.mlp.2', ['ad', 'tm']),
  same('embedder', 'cap_embedder.0', ['ctx']),
  same('embedder', 'cap_embedder.1', ['h', 'ctx']),
  { original: 'final_layer.linear', group: 'final', kind: 'linear', diffusers: 'all_final_layer.2-1.linear', shape: ['in', 'h'] },
  { original: 'final_layer.adaLN_modulation.1', group: 'final', kind: 'linear', diffusers: 'all_final_layer.2-1.adaLN_modulation.1', shape: ['h', 'ad'] },
];

/** Every width shows in a file's own shapes (the qkv parts need only h), so no defaults. */
export const Z_IMAGE_TABLE = new ModuleTable(Z_IMAGE_MODULES);
