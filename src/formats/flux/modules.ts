/**
 * The FLUX.1 transformer module map as data: every LoRA-able BFL weight, its diffusers/PEFT name(s)
 * and, for fused weights, the row span each diffusers part covers (the BFL ⇄ diffusers tables of
 * sd-scripts `flux_utils.BFL_TO_DIFFUSERS_MAP`, ComfyUI `flux_to_diffusers` and diffusers
 * `convert_flux_to_diffusers.py`, which agree). The kohya (`lora_unet_…`), OneTrainer (`lora_transformer_…`) and LyCORIS (`lycoris_…`)
 * spellings are these names with `.` → `_`, derived in `resolve.ts`, not repeated here.
 *
 * Row spans are written in units of h, the hidden width, which readers and writers take from the
 * file's own shapes (the input width of the fused weight), never from FLUX.1's numbers, so
 * scaled-down fixtures, Flex (fewer double blocks) and Chroma (no modulation) use the same table.
 */

import { ModuleTable, qkvParts, type TableAlias, type TableModule, type TableOptions } from '../table/module-table.ts';

export type FluxGroup = 'double' | 'single' | 'embedder' | 'final';

/**
 * Width names in FLUX's shapes (used only to build sample files; conversion never needs them):
 * h hidden, mlp = 4h, in = latent channels, ctx = T5 width, vec = CLIP pooled width,
 * time = timestep embedding width, head = attention head width.
 */
export type DimExpr = 'h' | '2h' | '3h' | '6h' | 'mlp' | 'h+mlp' | '3h+mlp' | 'in' | 'ctx' | 'vec' | 'time' | 'head';

export interface FluxModule extends TableModule {
  group: FluxGroup;
  shape: readonly DimExpr[];
}

/** Block containers, BFL and diffusers: FLUX.2 and HunyuanVideo name their blocks the same. */
export const D = 'double_blocks.{i}';
export const DT = 'transformer_blocks.{i}';
export const S = 'single_blocks.{i}';
export const ST = 'single_transformer_blocks.{i}';

export const FLUX_MODULES: readonly FluxModule[] = [
  // double-stream blocks (§2.3)
  { original: `${D}.img_mod.lin`, group: 'double', kind: 'linear', diffusers: `${DT}.norm1.linear`, shape: ['6h', 'h'] },
  { original: `${D}.txt_mod.lin`, group: 'double', kind: 'linear', diffusers: `${DT}.norm1_context.linear`, shape: ['6h', 'h'] },
  { original: `${D}.img_attn.qkv`, group: 'double', kind: 'linear', diffusers: qkvParts(`${DT}.attn.to_q`, `${DT}.attn.to_k`, `${DT}.attn.to_v`), shape: ['3h', 'h'] },
  { original: `${D}.txt_attn.qkv`, group: 'double', kind: 'linear', diffusers: qkvParts(`${DT}.attn.add_q_proj`, `${DT}.attn.add_k_proj`, `${DT}.attn.add_v_proj`), shape: ['3h', 'h'] },
  { original: `${D}.img_attn.proj`, group: 'double', kind: 'linear', diffusers: `${DT}.attn.to_out.0`, shape: ['h', 'h'] },
  { original: `${D}.txt_attn.proj`, group: 'double', kind: 'linear', diffusers: `${DT}.attn.to_add_out`, shape: ['h', 'h'] },
  { original: `${D}.img_mlp.0`, group: 'double', kind: 'linear', diffusers: `${DT}.ff.net.0.proj`, shape: ['mlp', 'h'] },
  { original: `${D}.img_mlp.2`, group: 'double', kind: 'linear', diffusers: `${DT}.ff.net.2`, shape: ['h', 'mlp'] },
  { original: `${D}.txt_mlp.0`, group: 'double', kind: 'linear', diffusers: `${DT}.ff_context.net.0.proj`, shape: ['mlp', 'h'] },
  { original: `${D}.txt_mlp.2`, group: 'double', kind: 'linear', diffusers: `${DT}.ff_context.net.2`, shape: ['h', 'mlp'] },
  { original: `${D}.img_attn.norm.query_norm`, group: 'double', kind: 'norm', diffusers: `${DT}.attn.norm_q`, shape: ['head'] },
  { original: `${D}.img_attn.norm.key_norm`, group: 'double', kind: 'norm', diffusers: `${DT}.attn.norm_k`, shape: ['head'] },
  { original: `${D}.txt_attn.norm.query_norm`, group: 'double', kind: 'norm', diffusers: `${DT}.attn.norm_added_q`, shape: ['head'] },
  { original: `${D}.txt_attn.norm.key_norm`, group: 'double', kind: 'norm', diffusers: `${DT}.attn.norm_added_k`, shape: ['head'] },
  // single-stream blocks (§2.4): linear1 = q | k | v | mlp
  {
    original: `${S}.linear1`, group: 'single', kind: 'linear',
    diffusers: [...qkvParts(`${ST}.attn.to_q`, `${ST}.attn.to_k`, `${ST}.attn.to_v`), { diffusers: `${ST}.proj_mlp`, rows: { start: 3, len: 'rest' } }],
    shape: ['3h+mlp', 'h'],
  },
  { original: `${S}.linear2`, group: 'single', kind: 'linear', diffusers: `${ST}.proj_out`, shape: ['h', 'h+mlp'] },
  { original: `${S}.modulation.lin`, group: 'single', kind: 'linear', diffusers: `${ST}.norm.linear`, shape: ['3h', 'h'] },
  { original: `${S}.norm.query_norm`, group: 'single', kind: 'norm', diffusers: `${ST}.attn.norm_q`, shape: ['head'] },
  { original: `${S}.norm.key_norm`, group: 'single', kind: 'norm', diffusers: `${ST}.attn.norm_k`, shape: ['head'] },
  // embedders (§2.2)
  { original: 'img_in', group: 'embedder', kind: 'linear', diffusers: 'x_embedder', shape: ['h', 'in'] },
  { original: 'txt_in', group: 'embedder', kind: 'linear', diffusers: 'context_embedder', shape: ['h', 'ctx'] },
  { original: 'time_in.in_layer', group: 'embedder', kind: 'linear', diffusers: 'time_text_embed.timestep_embedder.linear_1', shape: ['h', 'time'] },
  { original: 'time_in.out_layer', group: 'embedder', kind: 'linear', diffusers: 'time_text_embed.timestep_embedder.linear_2', shape: ['h', 'h'] },
  { original: 'vector_in.in_layer', group: 'embedder', kind: 'linear', diffusers: 'time_text_embed.text_embedder.linear_1', shape: ['h', 'vec'] },
  { original: 'vector_in.out_layer', group: 'embedder', kind: 'linear', diffusers: 'time_text_embed.text_embedder.linear_2', shape: ['h', 'h'] },
  { original: 'guidance_in.in_layer', group: 'embedder', kind: 'linear', diffusers: 'time_text_embed.guidance_embedder.linear_1', shape: ['h', 'time'] },
  { original: 'guidance_in.out_layer', group: 'embedder', kind: 'linear', diffusers: 'time_text_embed.guidance_embedder.linear_2', shape: ['h', 'h'] },
  // final layer: diffusers `proj_out` (top level) is BFL `final_layer.linear`, not a single block's `proj_out`
  { original: 'final_layer.linear', group: 'final', kind: 'linear', diffusers: 'proj_out', shape: ['in', 'h'] },
  { original: 'final_layer.adaLN_modulation.1', group: 'final', kind: 'linear', diffusers: 'norm_out.linear', swapHalves: true, shape: ['2h', 'h'] },
];

/** Modules that exist only as LoRA names (XLabs x-flux processors, ComfyUI's USO qkv name), mapped onto BFL weights. */
export const FLUX_ALIASES: readonly TableAlias[] = [
  { name: `${D}.processor.qkv_lora1`, original: `${D}.img_attn.qkv`, layout: 'xlabs' },
  { name: `${D}.processor.qkv_lora2`, original: `${D}.txt_attn.qkv`, layout: 'xlabs' },
  { name: `${D}.processor.proj_lora1`, original: `${D}.img_attn.proj`, layout: 'xlabs' },
  { name: `${D}.processor.proj_lora2`, original: `${D}.txt_attn.proj`, layout: 'xlabs' },
  // x-flux's single-block qkv LoRA is added to the q, k, v rows of linear1 only, not to the mlp rows
  { name: `${S}.processor.qkv_lora`, original: `${S}.linear1`, rows: { start: 0, len: 3 }, layout: 'xlabs' },
  { name: `${S}.processor.proj_lora`, original: `${S}.linear2`, layout: 'xlabs' },
  { name: `${S}.linear1_qkv`, original: `${S}.linear1`, rows: { start: 0, len: 3 }, layout: 'comfyui' },
];

/** The single blocks' mlp width, when a file does not show it: `model`'s mlp ratio 4 (FLUX.1's, HunyuanVideo's). */
export function mlpRatio4(model: string): NonNullable<TableOptions['defaults']> {
  return {
    mlp: {
      from: (v) => (v.h === undefined ? undefined : 4 * v.h),
      note: (v) => `single-block mlp width not in the file; ${model}'s mlp ratio 4 assumed (${v.mlp} rows)`,
    },
  };
}

/** The FLUX.1 table: single blocks' mlp width, when a file does not show it, is FLUX's mlp ratio 4. */
export const FLUX_TABLE = new ModuleTable(FLUX_MODULES, { aliases: FLUX_ALIASES, defaults: mlpRatio4('FLUX') });
