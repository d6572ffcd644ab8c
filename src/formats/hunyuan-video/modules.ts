/**
 * The HunyuanVideo (v1, 13B) transformer module map as data (docs/model-families.md §6.2). Canonical
 * names are ComfyUI's (`double_blocks.{i}.img_attn.qkv`, `img_mod.lin`, `img_mlp.0`, `modulation.lin`,
 * `time_in.in_layer`, …): the names ComfyUI's HunyuanVideo model holds (its loader renames Tencent's
 * keys to them, `comfy/supported_models.py HunyuanVideo.process_unet_state_dict`), which are FLUX.1's
 * names for the weights the two models share. Each entry carries its diffusers name(s)
 * (`_convert_hunyuan_video_lora_to_diffusers`): the fused qkv split into to_q / to_k / to_v (and
 * add_{q,k,v}_proj), the single blocks' linear1 into attn.to_q / to_k / to_v + proj_mlp (the rest),
 * the final adaLN's (shift, scale) halves swapped into norm_out.linear's (scale, shift).
 *
 * Tencent's own spellings (the release checkpoint, musubi-tuner, diffusion-pipe and its older
 * `diffusion_model.` files: `img_attn_qkv`, `img_attn_proj`, `img_mlp.fc1`, `img_mod.linear`,
 * `modulation.linear`, `time_in.mlp.0`, `q_norm`, …) are aliases onto the same weights, so those
 * files read too.
 *
 * Widths (each one a file's own shapes show, or mlp = 4h when none does): h hidden (3072), mlp the
 * MLP width (4h, also the token refiner's), in latent channels (16), pt / p the patch embedder's
 * kernel (1 × 2 × 2), time timestep-embedding width (256), vec CLIP-L pooled width (768), txt LLM
 * text width (4096), head attention head width (128), out the final layer's out channels × patch
 * (64).
 */
import { ModuleTable, entriesNamed, qkvParts, type TableAlias, type TableModule } from '../table/module-table.ts';
import { D, FLUX_MODULES, S, mlpRatio4 } from '../flux/modules.ts';

export type HunyuanVideoGroup = 'double' | 'single' | 'refiner' | 'embedder' | 'final';

export interface HunyuanVideoModule extends TableModule {
  group: HunyuanVideoGroup;
}

const R = 'txt_in.individual_token_refiner.blocks.{i}';
const RT = 'context_embedder.token_refiner.refiner_blocks.{i}';

export const HUNYUAN_VIDEO_MODULES: readonly HunyuanVideoModule[] = [
  // double-stream blocks (MMDoubleStreamBlock), stream by stream; single-stream blocks (MMSingleStreamBlock):
  // linear1 = q | k | v | mlp in, linear2 = attn out | mlp out. FLUX.1's weights, names and splits.
  ...entriesNamed(FLUX_MODULES, [
    ...['img', 'txt'].flatMap((s) => ['mod.lin', 'attn.qkv', 'attn.proj', 'attn.norm.query_norm', 'attn.norm.key_norm', 'mlp.0', 'mlp.2'].map((m) => `${D}.${s}_${m}`)),
    ...['linear1', 'linear2', 'modulation.lin', 'norm.query_norm', 'norm.key_norm'].map((m) => `${S}.${m}`),
  ]),
  // text token refiner (txt_in, 2 blocks): its LayerNorms carry weight and bias, so they are linear entries of their length
  { original: `${R}.norm1`, group: 'refiner', kind: 'linear', diffusers: `${RT}.norm1`, shape: ['h'] },
  { original: `${R}.self_attn.qkv`, group: 'refiner', kind: 'linear', diffusers: qkvParts(`${RT}.attn.to_q`, `${RT}.attn.to_k`, `${RT}.attn.to_v`), shape: ['3h', 'h'] },
  { original: `${R}.self_attn.proj`, group: 'refiner', kind: 'linear', diffusers: `${RT}.attn.to_out.0`, shape: ['h', 'h'] },
  { original: `${R}.norm2`, group: 'refiner', kind: 'linear', diffusers: `${RT}.norm2`, shape: ['h'] },
  { original: `${R}.mlp.0`, group: 'refiner', kind: 'linear', diffusers: `${RT}.ff.net.0.proj`, shape: ['mlp', 'h'] },
  { original: `${R}.mlp.2`, group: 'refiner', kind: 'linear', diffusers: `${RT}.ff.net.2`, shape: ['h', 'mlp'] },
  // the refiner's adaLN gives (gate_msa, gate_mlp) in both namings: no half swap
  { original: `${R}.adaLN_modulation.1`, group: 'refiner', kind: 'linear', diffusers: `${RT}.norm_out.linear`, shape: ['2h', 'h'] },
  // embedders; img_in.proj is a Conv3d (kernel pt × p × p)
  { original: 'img_in.proj', group: 'embedder', kind: 'linear', diffusers: 'x_embedder.proj', shape: ['h', 'in', 'pt', 'p', 'p'] },
  { original: 'txt_in.input_embedder', group: 'embedder', kind: 'linear', diffusers: 'context_embedder.proj_in', shape: ['h', 'txt'] },
  { original: 'txt_in.t_embedder.in_layer', group: 'embedder', kind: 'linear', diffusers: 'context_embedder.time_text_embed.timestep_embedder.linear_1', shape: ['h', 'time'] },
  { original: 'txt_in.t_embedder.out_layer', group: 'embedder', kind: 'linear', diffusers: 'context_embedder.time_text_embed.timestep_embedder.linear_2', shape: ['h', 'h'] },
  { original: 'txt_in.c_embedder.in_layer', group: 'embedder', kind: 'linear', diffusers: 'context_embedder.time_text_embed.text_embedder.linear_1', shape: ['h', 'txt'] },
  { original: 'txt_in.c_embedder.out_layer', group: 'embedder', kind: 'linear', diffusers: 'context_embedder.time_text_embed.text_embedder.linear_2', shape: ['h', 'h'] },
  ...entriesNamed(FLUX_MODULES, ['time_in', 'vector_in', 'guidance_in'].flatMap((m) => [`${m}.in_layer`, `${m}.out_layer`])),
  // final layer: Tencent / ComfyUI (shift, scale) ⇄ diffusers (scale, shift), as diffusers' checkpoint conversion swaps them
  { original: 'final_layer.linear', group: 'final', kind: 'linear', diffusers: 'proj_out', shape: ['out', 'h'] },
  ...entriesNamed(FLUX_MODULES, ['final_layer.adaLN_modulation.1']),
];

/**
 * Marks the Tencent aliases: they are one model's spelling, not a layout, so the reader keeps the
 * layout the key's prefix says (musubi `lora_unet_` kohya, diffusion-pipe `transformer.` PEFT,
 * old `diffusion_model.` files ComfyUI's).
 */
export const TENCENT = 'tencent';

const tencent = (name: string, original: string): TableAlias => ({ name, original, layout: TENCENT });

/**
 * Tencent's names for the weights ComfyUI renames (`HunyuanVideo.process_unet_state_dict`, in
 * reverse), one per weight: the name a musubi-tuner kohya file spells (`lora_unet_` + these with
 * `.` → `_`). Weights both name alike (linear1, linear2, vector_in, final_layer, img_in.proj, the
 * refiner's norms and adaLN, txt_in.input_embedder) have none.
 */
export const HUNYUAN_VIDEO_TENCENT: readonly TableAlias[] = [
  ...(['img', 'txt'] as const).flatMap((s) => [
    tencent(`${D}.${s}_mod.linear`, `${D}.${s}_mod.lin`),
    tencent(`${D}.${s}_attn_qkv`, `${D}.${s}_attn.qkv`),
    tencent(`${D}.${s}_attn_proj`, `${D}.${s}_attn.proj`),
    tencent(`${D}.${s}_attn_q_norm`, `${D}.${s}_attn.norm.query_norm`),
    tencent(`${D}.${s}_attn_k_norm`, `${D}.${s}_attn.norm.key_norm`),
    tencent(`${D}.${s}_mlp.fc1`, `${D}.${s}_mlp.0`),
    tencent(`${D}.${s}_mlp.fc2`, `${D}.${s}_mlp.2`),
  ]),
  tencent(`${S}.modulation.linear`, `${S}.modulation.lin`),
  tencent(`${S}.q_norm`, `${S}.norm.query_norm`),
  tencent(`${S}.k_norm`, `${S}.norm.key_norm`),
  tencent(`${R}.self_attn_qkv`, `${R}.self_attn.qkv`),
  tencent(`${R}.self_attn_proj`, `${R}.self_attn.proj`),
  tencent(`${R}.mlp.fc1`, `${R}.mlp.0`),
  tencent(`${R}.mlp.fc2`, `${R}.mlp.2`),
  tencent('txt_in.t_embedder.mlp.0', 'txt_in.t_embedder.in_layer'),
  tencent('txt_in.t_embedder.mlp.2', 'txt_in.t_embedder.out_layer'),
  tencent('txt_in.c_embedder.linear_1', 'txt_in.c_embedder.in_layer'),
  tencent('txt_in.c_embedder.linear_2', 'txt_in.c_embedder.out_layer'),
  tencent('time_in.mlp.0', 'time_in.in_layer'),
  tencent('time_in.mlp.2', 'time_in.out_layer'),
  tencent('guidance_in.mlp.0', 'guidance_in.in_layer'),
  tencent('guidance_in.mlp.2', 'guidance_in.out_layer'),
];

/** The HunyuanVideo table: the single blocks' mlp width, when a file does not show it, is the mlp ratio 4 (`mlp_ratio=4`). */
export const HUNYUAN_VIDEO_TABLE = new ModuleTable(HUNYUAN_VIDEO_MODULES, { aliases: HUNYUAN_VIDEO_TENCENT, defaults: mlpRatio4('HunyuanVideo') });
