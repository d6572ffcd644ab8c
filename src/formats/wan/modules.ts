/**
 * The Wan 2.1 / 2.2 transformer module map as data (docs/model-families.md §1.2): every weight of
 * `WanModel` under its original name (official repo = ComfyUI = diffusion-pipe, musubi-tuner with
 * `.` → `_`) and its diffusers name. No Wan weight is fused, so every part is 1:1. Norms carry a
 * `.weight` (and LayerNorms a `.bias`), like a linear's, so they are `linear` entries of shape [h].
 *
 * Widths: h hidden (1536 / 3072 / 5120), f ffn, ctx umT5 width (4096), fq time-frequency width (256),
 * c CLIP image width (1280, Wan 2.1 I2V), in patch-embedding input, oc output channels × patch (64 / 192).
 */
import { ModuleTable, type TableModule } from '../table/module-table.ts';

const B = 'blocks.{i}';
const D = 'blocks.{i}';

const block = (original: string, diffusers: string, shape: string[]): TableModule => ({ original: `${B}.${original}`, group: 'block', kind: 'linear', diffusers: `${D}.${diffusers}`, shape });
const outer = (group: 'embedder' | 'final', original: string, diffusers: string, shape: string[]): TableModule => ({ original, group, kind: 'linear', diffusers, shape });

export const WAN_MODULES: readonly TableModule[] = [
  block('self_attn.q', 'attn1.to_q', ['h', 'h']),
  block('self_attn.k', 'attn1.to_k', ['h', 'h']),
  block('self_attn.v', 'attn1.to_v', ['h', 'h']),
  block('self_attn.o', 'attn1.to_out.0', ['h', 'h']),
  block('self_attn.norm_q', 'attn1.norm_q', ['h']),
  block('self_attn.norm_k', 'attn1.norm_k', ['h']),
  // the affine cross-attention LayerNorm is norm3 in the original and norm2 in diffusers (their norm1/norm3 have no weights)
  block('norm3', 'norm2', ['h']),
  block('cross_attn.q', 'attn2.to_q', ['h', 'h']),
  block('cross_attn.k', 'attn2.to_k', ['h', 'h']),
  block('cross_attn.v', 'attn2.to_v', ['h', 'h']),
  block('cross_attn.o', 'attn2.to_out.0', ['h', 'h']),
  block('cross_attn.norm_q', 'attn2.norm_q', ['h']),
  block('cross_attn.norm_k', 'attn2.norm_k', ['h']),
  // Wan 2.1 I2V / FLF2V: cross-attention to the CLIP image tokens
  block('cross_attn.k_img', 'attn2.add_k_proj', ['h', 'h']),
  block('cross_attn.v_img', 'attn2.add_v_proj', ['h', 'h']),
  block('cross_attn.norm_k_img', 'attn2.norm_added_k', ['h']),
  block('ffn.0', 'ffn.net.0.proj', ['f', 'h']),
  block('ffn.2', 'ffn.net.2', ['h', 'f']),
  outer('embedder', 'text_embedding.0', 'condition_embedder.text_embedder.linear_1', ['h', 'ctx']),
  outer('embedder', 'text_embedding.2', 'condition_embedder.text_embedder.linear_2', ['h', 'h']),
  outer('embedder', 'time_embedding.0', 'condition_embedder.time_embedder.linear_1', ['h', 'fq']),
  outer('embedder', 'time_embedding.2', 'condition_embedder.time_embedder.linear_2', ['h', 'h']),
  outer('embedder', 'time_projection.1', 'condition_embedder.time_proj', ['6h', 'h']),
  outer('embedder', 'img_emb.proj.0', 'condition_embedder.image_embedder.norm1', ['c']),
  outer('embedder', 'img_emb.proj.1', 'condition_embedder.image_embedder.ff.net.0.proj', ['c', 'c']),
  outer('embedder', 'img_emb.proj.3', 'condition_embedder.image_embedder.ff.net.2', ['h', 'c']),
  outer('embedder', 'img_emb.proj.4', 'condition_embedder.image_embedder.norm2', ['h']),
  outer('final', 'head.head', 'proj_out', ['oc', 'h']),
];

export const WAN_TABLE = new ModuleTable(WAN_MODULES);
