/**
 * The Stable Diffusion UNets as data: one config per family (widths, depths, context; from sd-scripts)
 * and, built from it, every weight-bearing module with its LDM/sgm name (the canonical target, as
 * `model.diffusion_model.` checkpoints name it), its diffusers name and its weight shape. The walk
 * below follows the LDM `UNetModel` constructor, so block numbering, skip-connection widths and
 * the diffusers ⇄ LDM pairing (`comfy/utils.py unet_to_diffusers`) come out of one place.
 */

export type SdArchitecture = 'sd1' | 'sd2' | 'sdxl';
export const SD_ARCHITECTURES: readonly SdArchitecture[] = ['sd1', 'sd2', 'sdxl'];

export function isSdArchitecture(a: string): a is SdArchitecture {
  return (SD_ARCHITECTURES as readonly string[]).includes(a);
}

export interface UnetConfig {
  /** `model_channels`: width of level 0. */
  channels: number;
  /** Width of level i = channels · channelMult[i]. */
  channelMult: readonly number[];
  numResBlocks: number;
  /** Transformer blocks per attention at each level (0 = no attention there). */
  depth: readonly number[];
  middleDepth: number;
  /** Cross-attention context width (text-encoder hidden size). */
  context: number;
  /** `proj_in`/`proj_out` are Linear (SD2, SDXL) rather than 1×1 convs (SD1). */
  linearProjection: boolean;
  latentChannels: number;
  /** SDXL's size/crop conditioning input to `label_emb` (pooled CLIP-G + 6 × 256 Fourier features). */
  admChannels?: number;
}

/** sd-scripts library/original_unet.py (SD1, SD2: context 1024, linear projection) and sdxl_original_unet.py. */
export const UNET_CONFIGS: Readonly<Record<SdArchitecture, UnetConfig>> = {
  sd1: { channels: 320, channelMult: [1, 2, 4, 4], numResBlocks: 2, depth: [1, 1, 1, 0], middleDepth: 1, context: 768, linearProjection: false, latentChannels: 4 },
  sd2: { channels: 320, channelMult: [1, 2, 4, 4], numResBlocks: 2, depth: [1, 1, 1, 0], middleDepth: 1, context: 1024, linearProjection: true, latentChannels: 4 },
  sdxl: { channels: 320, channelMult: [1, 2, 4], numResBlocks: 2, depth: [0, 2, 10], middleDepth: 10, context: 2048, linearProjection: true, latentChannels: 4, admChannels: 2816 },
};

/** `linear` and `conv` carry a LoRA; `norm` modules (GroupNorm / LayerNorm) only full diffs. */
export type UnetModuleKind = 'linear' | 'conv' | 'norm';

export interface UnetModule {
  /** LDM/sgm module path (`input_blocks.4.1.transformer_blocks.0.attn1.to_q`). */
  ldm: string;
  /** diffusers module path (`down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q`). */
  diffusers: string;
  kind: UnetModuleKind;
  /** Weight shape at full width: [out, in] or [out, in, kh, kw]; [C] for norms. */
  shape: readonly number[];
  bias: boolean;
}

const linear = (ldm: string, diffusers: string, out: number, inp: number, bias = true): UnetModule => ({ ldm, diffusers, kind: 'linear', shape: [out, inp], bias });
const conv = (ldm: string, diffusers: string, out: number, inp: number, k: number): UnetModule => ({ ldm, diffusers, kind: 'conv', shape: [out, inp, k, k], bias: true });
const norm = (ldm: string, diffusers: string, c: number): UnetModule => ({ ldm, diffusers, kind: 'norm', shape: [c], bias: true });

/** ResBlock internals, LDM ⇄ diffusers (`UNET_MAP_RESNET`). */
function resBlock(ldm: string, diffusers: string, inp: number, out: number, embed: number): UnetModule[] {
  const mods = [
    norm(`${ldm}.in_layers.0`, `${diffusers}.norm1`, inp),
    conv(`${ldm}.in_layers.2`, `${diffusers}.conv1`, out, inp, 3),
    linear(`${ldm}.emb_layers.1`, `${diffusers}.time_emb_proj`, out, embed),
    norm(`${ldm}.out_layers.0`, `${diffusers}.norm2`, out),
    conv(`${ldm}.out_layers.3`, `${diffusers}.conv2`, out, out, 3),
  ];
  if (inp !== out) mods.push(conv(`${ldm}.skip_connection`, `${diffusers}.conv_shortcut`, out, inp, 1));
  return mods;
}

/** SpatialTransformer: names inside are the same in both namings. */
function spatialTransformer(ldm: string, diffusers: string, c: number, depth: number, cfg: UnetConfig): UnetModule[] {
  const same = (suffix: string) => [`${ldm}.${suffix}`, `${diffusers}.${suffix}`] as const;
  const proj = (suffix: string) => (cfg.linearProjection ? linear(...same(suffix), c, c) : conv(...same(suffix), c, c, 1));
  const mods = [norm(...same('norm'), c), proj('proj_in')];
  for (let t = 0; t < depth; t++) {
    const b = `transformer_blocks.${t}`;
    mods.push(
      norm(...same(`${b}.norm1`), c),
      linear(...same(`${b}.attn1.to_q`), c, c, false),
      linear(...same(`${b}.attn1.to_k`), c, c, false),
      linear(...same(`${b}.attn1.to_v`), c, c, false),
      linear(...same(`${b}.attn1.to_out.0`), c, c),
      norm(...same(`${b}.norm2`), c),
      linear(...same(`${b}.attn2.to_q`), c, c, false),
      linear(...same(`${b}.attn2.to_k`), c, cfg.context, false),
      linear(...same(`${b}.attn2.to_v`), c, cfg.context, false),
      linear(...same(`${b}.attn2.to_out.0`), c, c),
      norm(...same(`${b}.norm3`), c),
      linear(...same(`${b}.ff.net.0.proj`), 8 * c, c),
      linear(...same(`${b}.ff.net.2`), c, 4 * c),
    );
  }
  mods.push(proj('proj_out'));
  return mods;
}

/** Every module of the UNet, in LDM checkpoint order. */
export function unetModules(cfg: UnetConfig): UnetModule[] {
  const embed = 4 * cfg.channels;
  const levels = cfg.channelMult.length;
  const per = cfg.numResBlocks + 1;
  const mods: UnetModule[] = [
    linear('time_embed.0', 'time_embedding.linear_1', embed, cfg.channels),
    linear('time_embed.2', 'time_embedding.linear_2', embed, embed),
  ];
  if (cfg.admChannels) mods.push(linear('label_emb.0.0', 'add_embedding.linear_1', embed, cfg.admChannels), linear('label_emb.0.2', 'add_embedding.linear_2', embed, embed));
  mods.push(conv('input_blocks.0.0', 'conv_in', cfg.channels, cfg.latentChannels, 3));

  let ch = cfg.channels;
  const skips = [ch];
  for (let level = 0; level < levels; level++) {
    const out = cfg.channels * cfg.channelMult[level]!;
    for (let r = 0; r < cfg.numResBlocks; r++) {
      const n = 1 + level * per + r;
      mods.push(...resBlock(`input_blocks.${n}.0`, `down_blocks.${level}.resnets.${r}`, ch, out, embed));
      ch = out;
      if (cfg.depth[level]! > 0) mods.push(...spatialTransformer(`input_blocks.${n}.1`, `down_blocks.${level}.attentions.${r}`, ch, cfg.depth[level]!, cfg));
      skips.push(ch);
    }
    if (level < levels - 1) {
      mods.push(conv(`input_blocks.${(level + 1) * per}.0.op`, `down_blocks.${level}.downsamplers.0.conv`, ch, ch, 3));
      skips.push(ch);
    }
  }

  mods.push(
    ...resBlock('middle_block.0', 'mid_block.resnets.0', ch, ch, embed),
    ...spatialTransformer('middle_block.1', 'mid_block.attentions.0', ch, cfg.middleDepth, cfg),
    ...resBlock('middle_block.2', 'mid_block.resnets.1', ch, ch, embed),
  );

  for (let up = 0; up < levels; up++) {
    const level = levels - 1 - up;
    const out = cfg.channels * cfg.channelMult[level]!;
    for (let r = 0; r <= cfg.numResBlocks; r++) {
      const n = up * per + r;
      mods.push(...resBlock(`output_blocks.${n}.0`, `up_blocks.${up}.resnets.${r}`, ch + skips.pop()!, out, embed));
      ch = out;
      let sub = 1;
      if (cfg.depth[level]! > 0) {
        mods.push(...spatialTransformer(`output_blocks.${n}.1`, `up_blocks.${up}.attentions.${r}`, ch, cfg.depth[level]!, cfg));
        sub = 2;
      }
      if (level > 0 && r === cfg.numResBlocks) mods.push(conv(`output_blocks.${n}.${sub}.conv`, `up_blocks.${up}.upsamplers.0.conv`, ch, ch, 3));
    }
  }
  mods.push(norm('out.0', 'conv_norm_out', ch), conv('out.2', 'conv_out', cfg.latentChannels, ch, 3));
  return mods;
}

const cache = new Map<SdArchitecture, UnetModule[]>();

/** The module list of one family (built once). */
export function sdUnetModules(arch: SdArchitecture): readonly UnetModule[] {
  let mods = cache.get(arch);
  if (!mods) {
    mods = unetModules(UNET_CONFIGS[arch]);
    cache.set(arch, mods);
  }
  return mods;
}
