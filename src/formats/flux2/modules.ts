/**
 * The FLUX.2 transformer module map as data (docs/model-families.md §3.2): every LoRA-able BFL
 * weight of FLUX.2-dev and FLUX.2-klein (4B / 9B), its diffusers name(s) (diffusers
 * `Flux2Transformer2DModel`, renamed by `convert_flux2_transformer_checkpoint_to_diffusers`) and,
 * where BFL fuses what diffusers splits (the double blocks' `qkv`), the row span each diffusers
 * part covers. Where diffusers keeps the fusion too, the entry is 1:1: the SwiGLU in-projections
 * (`img_mlp.0` ⇄ `ff.linear_in`, gate and up halves in one weight in both namings) and the single
 * blocks' `linear1` ⇄ `attn.to_qkv_mlp_proj` (q | k | v | SwiGLU in one weight in both).
 *
 * Unlike FLUX.1, the modulation is shared: one `double_stream_modulation_img` /
 * `double_stream_modulation_txt` for all double blocks and one `single_stream_modulation` for all
 * single blocks, no per-block `img_mod` / `modulation`; there are no biases anywhere.
 *
 * Widths (each one a file's own shapes show: a weight's whole side or the one unknown term):
 * h hidden (dev 6144, klein-9B 4096, klein-4B 3072), mlp the SwiGLU hidden width (3h; the input
 * of `img_mlp.2`, `linear2`'s input beyond h), ff the fused SwiGLU in-projection (2·mlp = 6h; the
 * output of `img_mlp.0`, `linear1`'s output beyond 3h), in packed latent channels (128), ctx text
 * width (`txt_in` input: 15360 / 12288 / 7680), time timestep-embedding width (256), head
 * attention head width (128).
 */
import { ModuleTable, entriesNamed, type TableModule } from '../table/module-table.ts';
import { D, DT, FLUX_MODULES, S, ST } from '../flux/modules.ts';

export type Flux2Group = 'double' | 'single' | 'modulation' | 'embedder' | 'final';

export interface Flux2Module extends TableModule {
  group: Flux2Group;
}

export const FLUX2_MODULES: readonly Flux2Module[] = [
  // double-stream blocks: attention (qkv fused in BFL, split in diffusers: FLUX.1's), SwiGLU mlp, QK norms (FLUX.1's)
  ...entriesNamed(FLUX_MODULES, ['img_attn.qkv', 'txt_attn.qkv', 'img_attn.proj', 'txt_attn.proj'].map((m) => `${D}.${m}`)),
  { original: `${D}.img_mlp.0`, group: 'double', kind: 'linear', diffusers: `${DT}.ff.linear_in`, shape: ['ff', 'h'] },
  { original: `${D}.img_mlp.2`, group: 'double', kind: 'linear', diffusers: `${DT}.ff.linear_out`, shape: ['h', 'mlp'] },
  { original: `${D}.txt_mlp.0`, group: 'double', kind: 'linear', diffusers: `${DT}.ff_context.linear_in`, shape: ['ff', 'h'] },
  { original: `${D}.txt_mlp.2`, group: 'double', kind: 'linear', diffusers: `${DT}.ff_context.linear_out`, shape: ['h', 'mlp'] },
  ...entriesNamed(FLUX_MODULES, ['img', 'txt'].flatMap((s) => [`${D}.${s}_attn.norm.query_norm`, `${D}.${s}_attn.norm.key_norm`])),
  // single-stream blocks: linear1 = q | k | v | SwiGLU in, fused in both namings; linear2 = attn out | mlp out
  { original: `${S}.linear1`, group: 'single', kind: 'linear', diffusers: `${ST}.attn.to_qkv_mlp_proj`, shape: ['3h+ff', 'h'] },
  { original: `${S}.linear2`, group: 'single', kind: 'linear', diffusers: `${ST}.attn.to_out`, shape: ['h', 'h+mlp'] },
  ...entriesNamed(FLUX_MODULES, [`${S}.norm.query_norm`, `${S}.norm.key_norm`]),
  // shared modulations (one per stream kind, for all blocks of that kind)
  { original: 'double_stream_modulation_img.lin', group: 'modulation', kind: 'linear', diffusers: 'double_stream_modulation_img.linear', shape: ['6h', 'h'] },
  { original: 'double_stream_modulation_txt.lin', group: 'modulation', kind: 'linear', diffusers: 'double_stream_modulation_txt.linear', shape: ['6h', 'h'] },
  { original: 'single_stream_modulation.lin', group: 'modulation', kind: 'linear', diffusers: 'single_stream_modulation.linear', shape: ['3h', 'h'] },
  // embedders (guidance_in: dev only)
  ...entriesNamed(FLUX_MODULES, ['img_in', 'txt_in']),
  { original: 'time_in.in_layer', group: 'embedder', kind: 'linear', diffusers: 'time_guidance_embed.timestep_embedder.linear_1', shape: ['h', 'time'] },
  { original: 'time_in.out_layer', group: 'embedder', kind: 'linear', diffusers: 'time_guidance_embed.timestep_embedder.linear_2', shape: ['h', 'h'] },
  { original: 'guidance_in.in_layer', group: 'embedder', kind: 'linear', diffusers: 'time_guidance_embed.guidance_embedder.linear_1', shape: ['h', 'time'] },
  { original: 'guidance_in.out_layer', group: 'embedder', kind: 'linear', diffusers: 'time_guidance_embed.guidance_embedder.linear_2', shape: ['h', 'h'] },
  // final layer: BFL (shift, scale) ⇄ diffusers (scale, shift), as the base conversion swaps them
  ...entriesNamed(FLUX_MODULES, ['final_layer.linear', 'final_layer.adaLN_modulation.1']),
];

/** Every width shows in a file's own shapes (the qkv parts need only h), so no defaults. */
export const FLUX2_TABLE = new ModuleTable(FLUX2_MODULES);
