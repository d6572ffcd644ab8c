/**
 * The SD3 / SD3.5 MMDiT module map as data (docs/model-families.md §5.2): every LoRA-able weight of
 * SD3-medium, SD3.5-medium and SD3.5-large (-turbo) under its original name (the SAI single file,
 * ComfyUI, sd-scripts' `library/sd3_models.py`; kohya `lora_unet_` with `.` → `_`) and its diffusers
 * name (`SD3Transformer2DModel`, renamed by single_file_utils.py
 * `convert_sd3_transformer_checkpoint_to_diffusers`). The original fuses q | k | v in each
 * `attn.qkv`, diffusers splits them (`to_q/to_k/to_v` in the image stream and the dual attention,
 * `add_q_proj/add_k_proj/add_v_proj` in the context stream).
 *
 * What differs from block to block is data here, not code in readers:
 * - the last joint block is context-pre-only: its `context_block` has no `attn.proj` and no `mlp`
 *   (group `context_post`, one block short), and its `context_block.adaLN_modulation.1` is [2h, h]
 *   (shift, scale), which diffusers' `norm1_context.linear` (AdaLayerNormContinuous) holds as
 *   (scale, shift): a variant with the half swap; every other block's is [6h, h], unswapped;
 * - SD3.5-medium's dual-attention blocks (0…12) have an image-only self-attention `attn2` (group
 *   `dual`) and a [9h, h] `x_block.adaLN_modulation.1` (shift, scale, gate × 3, diffusers
 *   `SD35AdaLayerNormZeroX`), where the other blocks' is [6h, h].
 * QK norms (SD3.5; RMSNorm) carry a `.weight` in both namings, so they are `linear` entries of [hd].
 *
 * Widths: h hidden (64·depth: 1536 for 24 blocks, 2432 for 38), f mlp hidden (4h), hd head width
 * (64), c latent channels (16), p patch size (2; `x_embedder.proj` is a Conv2d [h, c, p, p]),
 * ctx T5/CLIP context width (4096), y pooled CLIP width (2048), fq timestep-frequency width (256),
 * oc output channels × patch² (64).
 */
import { ModuleTable, qkvParts, type TableModule } from '../table/module-table.ts';

export type Sd3Group = 'joint' | 'dual' | 'context_post' | 'embedder' | 'final';

export interface Sd3Module extends TableModule {
  group: Sd3Group;
}

const B = 'joint_blocks.{i}';
const D = 'transformer_blocks.{i}';

const at = (group: Sd3Group, original: string, diffusers: Sd3Module['diffusers'], shape: string[], extra: Partial<Sd3Module> = {}): Sd3Module => ({
  original,
  group,
  kind: 'linear',
  diffusers,
  shape,
  ...extra,
});

export const SD3_MODULES: readonly Sd3Module[] = [
  // image stream (x_block)
  at('joint', `${B}.x_block.attn.qkv`, qkvParts(`${D}.attn.to_q`, `${D}.attn.to_k`, `${D}.attn.to_v`), ['3h', 'h']),
  at('joint', `${B}.x_block.attn.proj`, `${D}.attn.to_out.0`, ['h', 'h']),
  at('joint', `${B}.x_block.attn.ln_q`, `${D}.attn.norm_q`, ['hd']),
  at('joint', `${B}.x_block.attn.ln_k`, `${D}.attn.norm_k`, ['hd']),
  at('joint', `${B}.x_block.mlp.fc1`, `${D}.ff.net.0.proj`, ['f', 'h']),
  at('joint', `${B}.x_block.mlp.fc2`, `${D}.ff.net.2`, ['h', 'f']),
  at('joint', `${B}.x_block.adaLN_modulation.1`, `${D}.norm1.linear`, ['6h', 'h'], { variants: [{ shape: ['9h', 'h'], blocks: { group: 'dual' } }] }),
  // SD3.5-medium dual attention (image-only self-attention)
  at('dual', `${B}.x_block.attn2.qkv`, qkvParts(`${D}.attn2.to_q`, `${D}.attn2.to_k`, `${D}.attn2.to_v`), ['3h', 'h']),
  at('dual', `${B}.x_block.attn2.proj`, `${D}.attn2.to_out.0`, ['h', 'h']),
  at('dual', `${B}.x_block.attn2.ln_q`, `${D}.attn2.norm_q`, ['hd']),
  at('dual', `${B}.x_block.attn2.ln_k`, `${D}.attn2.norm_k`, ['hd']),
  // context stream (context_block); the last block stops after its attention's qkv
  at('joint', `${B}.context_block.attn.qkv`, qkvParts(`${D}.attn.add_q_proj`, `${D}.attn.add_k_proj`, `${D}.attn.add_v_proj`), ['3h', 'h']),
  at('joint', `${B}.context_block.attn.ln_q`, `${D}.attn.norm_added_q`, ['hd']),
  at('joint', `${B}.context_block.attn.ln_k`, `${D}.attn.norm_added_k`, ['hd']),
  at('joint', `${B}.context_block.adaLN_modulation.1`, `${D}.norm1_context.linear`, ['6h', 'h'], { variants: [{ shape: ['2h', 'h'], swapHalves: true, blocks: 'last' }] }),
  at('context_post', `${B}.context_block.attn.proj`, `${D}.attn.to_add_out`, ['h', 'h']),
  at('context_post', `${B}.context_block.mlp.fc1`, `${D}.ff_context.net.0.proj`, ['f', 'h']),
  at('context_post', `${B}.context_block.mlp.fc2`, `${D}.ff_context.net.2`, ['h', 'f']),
  // embedders (sd-scripts trains them only with emb_dims)
  at('embedder', 'x_embedder.proj', 'pos_embed.proj', ['h', 'c', 'p', 'p']),
  at('embedder', 't_embedder.mlp.0', 'time_text_embed.timestep_embedder.linear_1', ['h', 'fq']),
  at('embedder', 't_embedder.mlp.2', 'time_text_embed.timestep_embedder.linear_2', ['h', 'h']),
  at('embedder', 'y_embedder.mlp.0', 'time_text_embed.text_embedder.linear_1', ['h', 'y']),
  at('embedder', 'y_embedder.mlp.2', 'time_text_embed.text_embedder.linear_2', ['h', 'h']),
  at('embedder', 'context_embedder', 'context_embedder', ['h', 'ctx']),
  // final layer: (shift, scale) ⇄ diffusers (scale, shift), as the base conversion's swap_scale_shift
  at('final', 'final_layer.linear', 'proj_out', ['oc', 'h']),
  at('final', 'final_layer.adaLN_modulation.1', 'norm_out.linear', ['2h', 'h'], { swapHalves: true }),
];

/** Every width a conversion needs shows in the file's own shapes (the qkv parts need only h), so no defaults. */
export const SD3_TABLE = new ModuleTable(SD3_MODULES);
