/**
 * How HunyuanVideo LoRAs and checkpoints are recognised (docs/model-families.md §6.4). HunyuanVideo
 * has FLUX.1's block names and widths: ComfyUI's spelling of its weights *is* FLUX.1's
 * (`double_blocks.N.img_attn.qkv`, `img_mod.lin`, `img_mlp.0`, `single_blocks.N.linear1` [7h, h],
 * `modulation.lin`), and so are its diffusers names. What HunyuanVideo alone has:
 *
 * - Tencent's spellings (musubi-tuner, diffusion-pipe): `img_attn_qkv` (dotted: kohya's underscores
 *   make FLUX.1's `img_attn.qkv` the same string), `img_mlp.fc1`, `img_mod.linear`,
 *   `modulation.linear`, `q_norm`, `time_in.mlp.0`;
 * - its embedders: `img_in.proj` (a Conv3d; FLUX.1's `img_in` is a Linear), the text token refiner
 *   (`txt_in.individual_token_refiner`, diffusers `context_embedder.token_refiner`);
 * - its depth: 20 double and 40 single blocks, where FLUX.1 has 19 and 38;
 * - musubi-tuner's metadata (`ss_base_model_version=hunyuan_video`, `modelspec.architecture=hunyuan-video/lora`).
 *
 * A file with only the names both share, within FLUX.1's depth and without that metadata, stays
 * FLUX.1: nothing in it tells the two apart.
 */
import type { CheckpointSignal, DetectionContext, DetectionRule, KeySignal, MetadataHint } from '../family.ts';

export const HUNYUAN_VIDEO_DOUBLE_BLOCKS = 20;
export const HUNYUAN_VIDEO_SINGLE_BLOCKS = 40;
/** FLUX.1's depth: a block index at or past these (and within HunyuanVideo's) says HunyuanVideo. */
const FLUX_DOUBLE_BLOCKS = 19;
const FLUX_SINGLE_BLOCKS = 38;

export const HUNYUAN_VIDEO_SIGNALS: readonly KeySignal[] = [
  { re: /(?:^|\.)double_blocks\.\d+\.(?:img|txt)_attn_(?:qkv|proj)\./, what: 'HunyuanVideo Tencent attention names (img_attn_qkv / img_attn_proj)' },
  {
    re: /(?:^|[._])(?:double_blocks[._]\d+[._](?:img|txt)_(?:mod[._]linear|mlp[._]fc[12]|attn_[qk]_norm)|single_blocks[._]\d+[._](?:modulation[._]linear|[qk]_norm))(?:[._]|$)/,
    what: 'HunyuanVideo Tencent block names (img_mlp.fc1 / img_mod.linear / modulation.linear / q_norm)',
  },
  {
    re: /(?:^|[._])(?:img_in[._]proj|(?:time|guidance)_in[._]mlp[._][02]|txt_in[._](?:individual_token_refiner|t_embedder|c_embedder|input_embedder))(?:[._]|$)/,
    what: 'HunyuanVideo embedders (img_in.proj, txt_in token refiner, time_in.mlp)',
  },
  { re: /(?:^|[._])context_embedder[._](?:token_refiner|proj_in|time_text_embed)[._]/, what: 'HunyuanVideo diffusers token refiner (context_embedder.token_refiner)' },
];

export const HUNYUAN_VIDEO_METADATA: readonly MetadataHint[] = [
  // musubi-tuner ARCHITECTURE_HUNYUAN_VIDEO_FULL (HunyuanVideo 1.5 is hunyuan_video_1_5, another model)
  { key: 'ss_base_model_version', re: /^hunyuan_video$/i },
  // musubi-tuner sai_model_spec ARCH_HUNYUAN_VIDEO + /lora
  { key: 'modelspec.architecture', re: /^hunyuan-video(?:\/|$)/i },
];

const DOUBLE = /(?:^|[._])(?:double_blocks|(?<!single_)transformer_blocks)[._](\d+)[._]/;
const SINGLE = /(?:^|[._])single_(?:transformer_)?blocks[._](\d+)[._]/;
/** Names of FLUX.1-style two-stream models (not a bare `transformer_blocks`, which SD3 and Qwen-Image have too). */
const TWO_STREAM = /(?:^|[._])(?:double_blocks|single_blocks|single_transformer_blocks)[._]\d+[._]/;

/** The deepest double and single block a key set names (-1: none). */
function depth(tensors: DetectionContext['tensors']): { double: number; single: number } {
  let double = -1;
  let single = -1;
  for (const t of tensors) {
    const d = DOUBLE.exec(t.name);
    if (d) double = Math.max(double, Number(d[1]));
    const s = SINGLE.exec(t.name);
    if (s) single = Math.max(single, Number(s[1]));
  }
  return { double, single };
}

/** Shared-name modules whose [out, in] ratio is fixed in HunyuanVideo (and FLUX.1): linear1 7h × h, img_mlp.0 4h × h. */
const RATIOS: readonly { re: RegExp; ratio: number }[] = [
  { re: /(?:^|[._])single_blocks[._]\d+[._]linear1$/, ratio: 7 },
  { re: /(?:^|[._])double_blocks[._]\d+[._](?:img|txt)_mlp[._]0$/, ratio: 4 },
];
const FACTOR = /^(.*?)[._](lora_down|lora_A|lora_up|lora_B)(?:[._]default)?[._]weight$/;

/** A shared-name module whose shapes are not HunyuanVideo's (FLUX.2's SwiGLU widths), or undefined. */
function foreignShape(tensors: DetectionContext['tensors']): string | undefined {
  const dims = new Map<string, { out?: number; in?: number }>();
  for (const t of tensors) {
    const m = FACTOR.exec(t.name);
    if (!m || t.shape.length !== 2 || !RATIOS.some((r) => r.re.test(m[1]!))) continue;
    const d = dims.get(m[1]!) ?? {};
    dims.set(m[1]!, d);
    if (m[2] === 'lora_down' || m[2] === 'lora_A') d.in = t.shape[1];
    else d.out = t.shape[0];
  }
  for (const [module, d] of dims) {
    const r = RATIOS.find((x) => x.re.test(module))!;
    if (d.out && d.in && d.out !== r.ratio * d.in) return module;
  }
  return undefined;
}

export const HUNYUAN_VIDEO_RULES: readonly DetectionRule[] = [
  {
    // before FLUX.2's (9) and FLUX.1's (10) rules, which would take every file with BFL block names
    order: 8,
    decide: (c) => {
      if (c.denoiserKeys('unet') > 0) return undefined;
      const { double, single } = depth(c.tensors);
      // deeper than HunyuanVideo (v1): some other model's blocks (a FLUX-like model with more of them)
      if (double >= HUNYUAN_VIDEO_DOUBLE_BLOCKS || single >= HUNYUAN_VIDEO_SINGLE_BLOCKS) return undefined;
      const meta = c.metadataFamily?.family;
      if (c.count('hunyuan-video') > 0) return c.finish('hunyuan-video', meta && meta !== 'hunyuan-video' ? 0.8 : 1);
      // only names FLUX.1 shares: its depth, or musubi-tuner's metadata, when no other family's names or shapes contradict
      if (c.othersOfKind('hunyuan-video', 'transformer') > c.count('flux') || foreignShape(c.tensors)) return undefined;
      if (c.tensors.some((t) => TWO_STREAM.test(t.name)) && (double >= FLUX_DOUBLE_BLOCKS || single >= FLUX_SINGLE_BLOCKS)) {
        c.evidence.push(
          `block names FLUX.1 shares, up to double block ${double} / single block ${single}: HunyuanVideo's depth (20 double, 40 single; FLUX.1 has ${FLUX_DOUBLE_BLOCKS} / ${FLUX_SINGLE_BLOCKS})`,
        );
        return c.finish('hunyuan-video', meta && meta !== 'hunyuan-video' ? 0.7 : 0.9);
      }
      // (diffusers' double blocks alone are transformer_blocks, as SD3's and Qwen-Image's are: the metadata's word settles them too)
      if (meta === 'hunyuan-video' && (double >= 0 || single >= 0)) {
        c.evidence.push('block names FLUX.1 shares, within FLUX.1\'s depth: HunyuanVideo by its metadata');
        return c.finish('hunyuan-video', 0.9);
      }
      return undefined;
    },
  },
];

export const HUNYUAN_VIDEO_CHECKPOINT_SIGNALS: readonly CheckpointSignal[] = [
  { re: /(?:^|\.)img_in\.proj\.weight$/, what: 'HunyuanVideo 3-D patch embedder (img_in.proj, a Conv3d)' },
  { re: /(?:^|\.)txt_in\.individual_token_refiner\.blocks\.\d+\./, what: 'HunyuanVideo text token refiner (txt_in.individual_token_refiner)' },
  { re: /(?:^|\.)double_blocks\.\d+\.img_attn_qkv\.weight$/, what: 'HunyuanVideo Tencent block names (img_attn_qkv)' },
];

/** Checkpoint names (prefix removed) only a HunyuanVideo pair has, for extraction. */
export const HUNYUAN_VIDEO_EXTRACTION = /^(?:img_in\.proj\.|txt_in\.individual_token_refiner\.|double_blocks\.\d+\.(?:img|txt)_attn_qkv\.)/;
