/**
 * The FLUX.1 transformer module map as data: every LoRA-able BFL weight, its diffusers/PEFT name(s)
 * and, for fused weights, the row span each diffusers part covers (research/lora-formats.md §2,
 * Appendix D). The kohya (`lora_unet_…`), OneTrainer (`lora_transformer_…`) and LyCORIS (`lycoris_…`)
 * spellings are these names with `.` → `_`, derived in `resolve.ts`, not repeated here.
 *
 * Row spans are written in units of h, the hidden width, which readers and writers take from the
 * file's own shapes (the input width of the fused weight), never from FLUX.1's numbers, so
 * scaled-down fixtures, Flex (fewer double blocks) and Chroma (no modulation) use the same table.
 */

export type FluxGroup = 'double' | 'single' | 'embedder' | 'final';

/** Rows of a fused weight covered by one diffusers part: `start` and `len` in units of h; `rest` = to the end. */
export interface PartRows {
  start: number;
  len: number | 'rest';
}

export interface FluxPart {
  diffusers: string;
  rows: PartRows;
}

/**
 * Shape expressions in FLUX hyper-parameters (used only to build sample files; conversion never
 * needs them): h hidden, mlp = 4h, in = latent channels, ctx = T5 width, vec = CLIP pooled width,
 * time = timestep embedding width, head = attention head width.
 */
export type DimExpr = 'h' | '2h' | '3h' | '6h' | 'mlp' | 'h+mlp' | '3h+mlp' | 'in' | 'ctx' | 'vec' | 'time' | 'head';

export interface FluxModule {
  /** BFL module path; `{i}` is the block index. */
  bfl: string;
  group: FluxGroup;
  /** `linear`: a `.weight` (+ `.bias`); `norm`: an RMSNorm `scale` (diffusers calls it `weight`). */
  kind: 'linear' | 'norm';
  /** The diffusers module (1:1), or the parts of a fused BFL weight. */
  diffusers: string | readonly FluxPart[];
  /** BFL stores (shift, scale), diffusers (scale, shift): the row halves are swapped between the two. */
  swapHalves?: boolean;
  /** `[out, in]` of the base weight (`[len]` for norms). */
  shape: readonly DimExpr[];
}

const qkvParts = (q: string, k: string, v: string): FluxPart[] => [
  { diffusers: q, rows: { start: 0, len: 1 } },
  { diffusers: k, rows: { start: 1, len: 1 } },
  { diffusers: v, rows: { start: 2, len: 1 } },
];

const D = 'double_blocks.{i}';
const DT = 'transformer_blocks.{i}';
const S = 'single_blocks.{i}';
const ST = 'single_transformer_blocks.{i}';

export const FLUX_MODULES: readonly FluxModule[] = [
  // double-stream blocks (§2.3)
  { bfl: `${D}.img_mod.lin`, group: 'double', kind: 'linear', diffusers: `${DT}.norm1.linear`, shape: ['6h', 'h'] },
  { bfl: `${D}.txt_mod.lin`, group: 'double', kind: 'linear', diffusers: `${DT}.norm1_context.linear`, shape: ['6h', 'h'] },
  { bfl: `${D}.img_attn.qkv`, group: 'double', kind: 'linear', diffusers: qkvParts(`${DT}.attn.to_q`, `${DT}.attn.to_k`, `${DT}.attn.to_v`), shape: ['3h', 'h'] },
  { bfl: `${D}.txt_attn.qkv`, group: 'double', kind: 'linear', diffusers: qkvParts(`${DT}.attn.add_q_proj`, `${DT}.attn.add_k_proj`, `${DT}.attn.add_v_proj`), shape: ['3h', 'h'] },
  { bfl: `${D}.img_attn.proj`, group: 'double', kind: 'linear', diffusers: `${DT}.attn.to_out.0`, shape: ['h', 'h'] },
  { bfl: `${D}.txt_attn.proj`, group: 'double', kind: 'linear', diffusers: `${DT}.attn.to_add_out`, shape: ['h', 'h'] },
  { bfl: `${D}.img_mlp.0`, group: 'double', kind: 'linear', diffusers: `${DT}.ff.net.0.proj`, shape: ['mlp', 'h'] },
  { bfl: `${D}.img_mlp.2`, group: 'double', kind: 'linear', diffusers: `${DT}.ff.net.2`, shape: ['h', 'mlp'] },
  { bfl: `${D}.txt_mlp.0`, group: 'double', kind: 'linear', diffusers: `${DT}.ff_context.net.0.proj`, shape: ['mlp', 'h'] },
  { bfl: `${D}.txt_mlp.2`, group: 'double', kind: 'linear', diffusers: `${DT}.ff_context.net.2`, shape: ['h', 'mlp'] },
  { bfl: `${D}.img_attn.norm.query_norm`, group: 'double', kind: 'norm', diffusers: `${DT}.attn.norm_q`, shape: ['head'] },
  { bfl: `${D}.img_attn.norm.key_norm`, group: 'double', kind: 'norm', diffusers: `${DT}.attn.norm_k`, shape: ['head'] },
  { bfl: `${D}.txt_attn.norm.query_norm`, group: 'double', kind: 'norm', diffusers: `${DT}.attn.norm_added_q`, shape: ['head'] },
  { bfl: `${D}.txt_attn.norm.key_norm`, group: 'double', kind: 'norm', diffusers: `${DT}.attn.norm_added_k`, shape: ['head'] },
  // single-stream blocks (§2.4): linear1 = q | k | v | mlp
  {
    bfl: `${S}.linear1`, group: 'single', kind: 'linear',
    diffusers: [...qkvParts(`${ST}.attn.to_q`, `${ST}.attn.to_k`, `${ST}.attn.to_v`), { diffusers: `${ST}.proj_mlp`, rows: { start: 3, len: 'rest' } }],
    shape: ['3h+mlp', 'h'],
  },
  { bfl: `${S}.linear2`, group: 'single', kind: 'linear', diffusers: `${ST}.proj_out`, shape: ['h', 'h+mlp'] },
  { bfl: `${S}.modulation.lin`, group: 'single', kind: 'linear', diffusers: `${ST}.norm.linear`, shape: ['3h', 'h'] },
  { bfl: `${S}.norm.query_norm`, group: 'single', kind: 'norm', diffusers: `${ST}.attn.norm_q`, shape: ['head'] },
  { bfl: `${S}.norm.key_norm`, group: 'single', kind: 'norm', diffusers: `${ST}.attn.norm_k`, shape: ['head'] },
  // embedders (§2.2)
  { bfl: 'img_in', group: 'embedder', kind: 'linear', diffusers: 'x_embedder', shape: ['h', 'in'] },
  { bfl: 'txt_in', group: 'embedder', kind: 'linear', diffusers: 'context_embedder', shape: ['h', 'ctx'] },
  { bfl: 'time_in.in_layer', group: 'embedder', kind: 'linear', diffusers: 'time_text_embed.timestep_embedder.linear_1', shape: ['h', 'time'] },
  { bfl: 'time_in.out_layer', group: 'embedder', kind: 'linear', diffusers: 'time_text_embed.timestep_embedder.linear_2', shape: ['h', 'h'] },
  { bfl: 'vector_in.in_layer', group: 'embedder', kind: 'linear', diffusers: 'time_text_embed.text_embedder.linear_1', shape: ['h', 'vec'] },
  { bfl: 'vector_in.out_layer', group: 'embedder', kind: 'linear', diffusers: 'time_text_embed.text_embedder.linear_2', shape: ['h', 'h'] },
  { bfl: 'guidance_in.in_layer', group: 'embedder', kind: 'linear', diffusers: 'time_text_embed.guidance_embedder.linear_1', shape: ['h', 'time'] },
  { bfl: 'guidance_in.out_layer', group: 'embedder', kind: 'linear', diffusers: 'time_text_embed.guidance_embedder.linear_2', shape: ['h', 'h'] },
  // final layer: diffusers `proj_out` (top level) is BFL `final_layer.linear`, not a single block's `proj_out`
  { bfl: 'final_layer.linear', group: 'final', kind: 'linear', diffusers: 'proj_out', shape: ['in', 'h'] },
  { bfl: 'final_layer.adaLN_modulation.1', group: 'final', kind: 'linear', diffusers: 'norm_out.linear', swapHalves: true, shape: ['2h', 'h'] },
];

/** Modules that exist only as LoRA names (XLabs x-flux processors, ComfyUI's USO qkv name), mapped onto BFL weights. */
export interface FluxAlias {
  /** Dotted name with `{i}`. */
  name: string;
  /** The BFL module it patches. */
  bfl: string;
  rows?: PartRows;
  layout: 'xlabs' | 'comfyui';
}

export const FLUX_ALIASES: readonly FluxAlias[] = [
  { name: `${D}.processor.qkv_lora1`, bfl: `${D}.img_attn.qkv`, layout: 'xlabs' },
  { name: `${D}.processor.qkv_lora2`, bfl: `${D}.txt_attn.qkv`, layout: 'xlabs' },
  { name: `${D}.processor.proj_lora1`, bfl: `${D}.img_attn.proj`, layout: 'xlabs' },
  { name: `${D}.processor.proj_lora2`, bfl: `${D}.txt_attn.proj`, layout: 'xlabs' },
  // x-flux's single-block qkv LoRA is added to the q, k, v rows of linear1 only, not to the mlp rows
  { name: `${S}.processor.qkv_lora`, bfl: `${S}.linear1`, rows: { start: 0, len: 3 }, layout: 'xlabs' },
  { name: `${S}.processor.proj_lora`, bfl: `${S}.linear2`, layout: 'xlabs' },
  { name: `${S}.linear1_qkv`, bfl: `${S}.linear1`, rows: { start: 0, len: 3 }, layout: 'comfyui' },
];

/** The BFL module of a given template, by its BFL path template. */
export function fluxModuleByBfl(template: string): FluxModule {
  const m = FLUX_MODULES.find((x) => x.bfl === template);
  if (!m) throw new Error(`no FLUX module ${template}`);
  return m;
}

/** Fills `{i}` in a template. */
export function fillIndex(template: string, index: number | undefined): string {
  return index === undefined ? template : template.replace('{i}', String(index));
}
