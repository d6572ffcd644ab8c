/**
 * The Qwen-Image transformer module map as data (docs/model-families.md §2.2): every weight of
 * `QwenImageTransformer2DModel` (Qwen-Image and the Edit / Edit-Plus / Edit-2511 / Layered
 * variants, one transformer). The Qwen release checkpoint, ComfyUI and diffusers use the same
 * names, so each entry's diffusers name is its original name, 1:1; nothing is fused and no row
 * halves are swapped (`norm_out.linear` is (scale, shift) on both sides). RMSNorm weights carry a
 * `.weight`, like a linear's, so they are `linear` entries of their length.
 *
 * Widths: h hidden (3072), f ffn (4h = 12288), ctx Qwen2.5-VL width (3584), fq timestep-frequency
 * width (256), hd attention head width (128), in patchified latent channels (64), oc output
 * channels × patch² (64).
 */
import { ModuleTable, type TableModule } from '../table/module-table.ts';

const B = 'transformer_blocks.{i}';

const same = (group: 'block' | 'embedder' | 'final', name: string, shape: string[]): TableModule => ({ original: name, group, kind: 'linear', diffusers: name, shape });
const block = (name: string, shape: string[]): TableModule => same('block', `${B}.${name}`, shape);

export const QWEN_IMAGE_MODULES: readonly TableModule[] = [
  // modulation (SiLU + Linear): (shift, scale, gate) × 2 per stream
  block('img_mod.1', ['6h', 'h']),
  block('txt_mod.1', ['6h', 'h']),
  // joint attention: image stream to_*, text stream add_*_proj
  block('attn.to_q', ['h', 'h']),
  block('attn.to_k', ['h', 'h']),
  block('attn.to_v', ['h', 'h']),
  block('attn.add_q_proj', ['h', 'h']),
  block('attn.add_k_proj', ['h', 'h']),
  block('attn.add_v_proj', ['h', 'h']),
  block('attn.to_out.0', ['h', 'h']),
  block('attn.to_add_out', ['h', 'h']),
  block('attn.norm_q', ['hd']),
  block('attn.norm_k', ['hd']),
  block('attn.norm_added_q', ['hd']),
  block('attn.norm_added_k', ['hd']),
  block('img_mlp.net.0.proj', ['f', 'h']),
  block('img_mlp.net.2', ['h', 'f']),
  block('txt_mlp.net.0.proj', ['f', 'h']),
  block('txt_mlp.net.2', ['h', 'f']),
  same('embedder', 'img_in', ['h', 'in']),
  same('embedder', 'txt_norm', ['ctx']),
  same('embedder', 'txt_in', ['h', 'ctx']),
  same('embedder', 'time_text_embed.timestep_embedder.linear_1', ['h', 'fq']),
  same('embedder', 'time_text_embed.timestep_embedder.linear_2', ['h', 'h']),
  same('final', 'norm_out.linear', ['2h', 'h']),
  same('final', 'proj_out', ['oc', 'h']),
];

export const QWEN_IMAGE_TABLE = new ModuleTable(QWEN_IMAGE_MODULES);
