/**
 * Deterministic SD1.5 / SD2 / SDXL LoRA files in every layout loraflow reads, built from the UNet
 * and text-encoder tables (real module names and block counts, widths divided by `factor`, shapes
 * matching `writeSdCheckpoint` at the same factor) and written by their own naming rules here, so
 * they check loraflow's readers and writers rather than repeat them:
 *
 *  - kohya: SD1/SD2 diffusers UNet names (`lora_unet_down_blocks_…`, `lora_te_`), SDXL sgm names
 *    (`lora_unet_input_blocks_…`, `lora_te1_`/`lora_te2_`); `kohya-diffusers`: SDXL with diffusers
 *    UNet names (what diffusers' convert_state_dict_to_kohya writes);
 *  - diffusers: PEFT `unet.` / `text_encoder.` / `text_encoder_2.` with lora_A/lora_B;
 *  - diffusers-old: attention processors (`attn1.processor.to_q_lora.down.weight`), text encoder
 *    `self_attn.to_q_lora`, `mlp.fc1.lora_linear_layer`;
 *  - comfyui: `diffusion_model.` + LDM names, `text_encoders.clip_l|clip_h|clip_g.transformer.`;
 *  - lycoris: standalone `lycoris_` + diffusers names (UNet only).
 *
 * Adapters: LoRA, LoCon on the ResNet/sampler convs (3×3, optionally Tucker `lora_mid`), LoHa,
 * LoKr, and DoRA magnitudes (LyCORIS `dora_scale` [1, in] or PEFT `lora_magnitude_vector` [out]).
 */
import { CLIP_MODULES } from '../formats/text-encoders.ts';
import { fillIndex } from '../formats/table/template.ts';
import { SD_TEXT_ENCODERS } from '../formats/sd/text-encoders.ts';
import { sdUnetModules, type SdArchitecture, type UnetModule } from '../formats/sd/unet.ts';
import type { DType } from '../tensor/dtype.ts';
import { writeKeyShapes, type KeyShapes } from './lora-fixtures.ts';
import { scaledShape, scaledWidth } from './sd-checkpoint.ts';

export type SdLoraLayout = 'kohya' | 'kohya-diffusers' | 'diffusers' | 'diffusers-old' | 'comfyui' | 'lycoris';
export const SD_LORA_LAYOUTS: readonly SdLoraLayout[] = ['kohya', 'kohya-diffusers', 'diffusers', 'diffusers-old', 'comfyui', 'lycoris'];

/** Which UNet modules a trainer targets: attention q/k/v/out (diffusers scripts), every Linear in the transformers (kohya), plus the ResNet and sampler convs (LoCon). */
export type SdTargets = 'attention' | 'transformer' | 'locon';

export interface SdLoraOptions {
  arch: SdArchitecture;
  layout: SdLoraLayout;
  algo?: 'lora' | 'loha' | 'lokr';
  targets?: SdTargets;
  /**
   * 3×3 convs as Tucker: LoCon down [r, in, 1, 1], lora_mid [r, r, 3, 3], up [out, r, 1, 1];
   * LoHa hada_t1/t2 [r, r, 3, 3] with hada_w*_a [r, out], hada_w*_b [r, in]; LoKr lokr_t2 with lokr_w2_a [r, out/a], lokr_w2_b [r, in/b].
   */
  tucker?: boolean;
  /** Text-encoder modules (default: true where the layout has them). */
  textEncoders?: boolean;
  /** Only the first n layers of each text encoder (a smaller file). */
  teLayers?: number;
  /**
   * DoRA magnitudes: linear modules per input column (LyCORIS `dora_scale` [1, in]) or per output row
   * (PEFT `lora_magnitude_vector` [out]); LyCORIS conv modules too, 3×3 per output channel
   * ([out, 1, 1, 1], wd_on_out) and 1×1 per input channel ([1, in, 1, 1]).
   */
  dora?: boolean;
  rank?: number;
  /** Rank of the 3×3 convs (sd-scripts conv_dim; default `rank`). */
  convRank?: number;
  /** Width divisor shared with `writeSdCheckpoint` (default 64). */
  factor?: number;
  seed?: number;
  dtype?: DType;
  /** Alpha from the rank (layouts that store alphas); default rank / 2. */
  alpha?: (module: string, rank: number) => number;
  /** Keep only UNet modules whose LDM path matches (a smaller file). */
  only?: RegExp;
  metadata?: Record<string, string>;
}

interface LayoutNaming {
  unet: (m: UnetModule, arch: SdArchitecture) => string | undefined;
  te: Partial<Record<'clip_l' | 'clip_g', string>> | ((arch: SdArchitecture) => Partial<Record<'clip_l' | 'clip_g', string>>);
  underscore: boolean;
  suffix: { down: string; up: string; mid?: string; alpha?: string; dora?: string };
}

const KOHYA_SUFFIX = { down: 'lora_down.weight', up: 'lora_up.weight', mid: 'lora_mid.weight', alpha: 'alpha', dora: 'dora_scale' };
const us = (s: string) => s.replaceAll('.', '_');
const kohyaTe = (arch: SdArchitecture) => (arch === 'sdxl' ? { clip_l: 'lora_te1_', clip_g: 'lora_te2_' } : { clip_l: 'lora_te_' });

/** The old attention-processor name of a diffusers attention module (`attn1.to_q` → `attn1.processor.to_q_lora`). */
function processorName(diffusers: string): string | undefined {
  const m = /^(.*\.attn[12])\.(to_[qkv]|to_out\.0)$/.exec(diffusers);
  if (!m) return undefined;
  return `${m[1]}.processor.${m[2] === 'to_out.0' ? 'to_out' : m[2]}_lora`;
}

const NAMING: Record<SdLoraLayout, LayoutNaming> = {
  kohya: { unet: (m, arch) => `lora_unet_${us(arch === 'sdxl' ? m.ldm : m.diffusers)}`, te: kohyaTe, underscore: true, suffix: KOHYA_SUFFIX },
  'kohya-diffusers': { unet: (m) => `lora_unet_${us(m.diffusers)}`, te: kohyaTe, underscore: true, suffix: KOHYA_SUFFIX },
  diffusers: {
    unet: (m) => `unet.${m.diffusers}`,
    te: { clip_l: 'text_encoder.', clip_g: 'text_encoder_2.' },
    underscore: false,
    suffix: { down: 'lora_A.weight', up: 'lora_B.weight', dora: 'lora_magnitude_vector' },
  },
  'diffusers-old': {
    unet: (m) => {
      const p = processorName(m.diffusers);
      return p && `unet.${p}`;
    },
    te: { clip_l: 'text_encoder.', clip_g: 'text_encoder_2.' },
    underscore: false,
    suffix: { down: 'down.weight', up: 'up.weight' },
  },
  comfyui: {
    unet: (m) => `diffusion_model.${m.ldm}`,
    te: (arch) => (arch === 'sd2' ? { clip_l: 'text_encoders.clip_h.transformer.' } : { clip_l: 'text_encoders.clip_l.transformer.', clip_g: 'text_encoders.clip_g.transformer.' }),
    underscore: false,
    suffix: { down: 'lora_down.weight', up: 'lora_up.weight', mid: 'lora_mid.weight', dora: 'dora_scale' },
  },
  lycoris: { unet: (m) => `lycoris_${us(m.diffusers)}`, te: {}, underscore: true, suffix: KOHYA_SUFFIX },
};

/** Inside a SpatialTransformer (sd-scripts' `Transformer2DModel` target): its blocks and projections. */
const IN_TRANSFORMER = /\.(?:transformer_blocks\.\d+\.|proj_in$|proj_out$)/;
const ATTENTION = /\.attn[12]\.(?:to_[qkv]|to_out\.0)$/;
const LOCON = /(?:\.in_layers\.2|\.out_layers\.3|\.emb_layers\.1|\.skip_connection|\.0\.op|\.conv)$/;

function selected(m: UnetModule, targets: SdTargets): boolean {
  if (m.kind === 'norm') return false;
  const inTransformer = IN_TRANSFORMER.test(m.ldm);
  if (targets === 'attention') return inTransformer && ATTENTION.test(m.ldm);
  if (inTransformer) return true;
  return targets === 'locon' && /^(?:input_blocks|middle_block|output_blocks)\./.test(m.ldm) && LOCON.test(m.ldm);
}

/** The text-encoder module paths of a layout (old diffusers: attention as `to_q_lora`, mlp in `lora_linear_layer`). */
function textEncoderModule(path: string, layout: SdLoraLayout): string {
  if (layout !== 'diffusers-old') return path;
  const attn = /^(.*\.self_attn)\.([qkv]|out)_proj$/.exec(path);
  if (attn) return `${attn[1]}.to_${attn[2]}_lora`;
  return `${path}.lora_linear_layer`;
}

const smallestDivisor = (n: number) => {
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return d;
  return n;
};

/** Key → shape of one SD LoRA. */
export function sdLoraKeyShapes(opts: SdLoraOptions): KeyShapes {
  const factor = opts.factor ?? 64;
  const rank = opts.rank ?? 4;
  const convRank = opts.convRank ?? rank;
  const algo = opts.algo ?? 'lora';
  const naming = NAMING[opts.layout];
  const targets: SdTargets = opts.layout === 'diffusers-old' ? 'attention' : (opts.targets ?? 'transformer');
  const out: KeyShapes = {};
  const add = (module: string, shape: readonly number[], linear: boolean) => {
    const [rows, cols, ...kernel] = shape as number[];
    const conv = kernel.length > 0;
    const k3 = conv && kernel.some((x) => x > 1);
    const r = k3 ? convRank : rank;
    const flatIn = cols! * kernel.reduce((a, b) => a * b, 1);
    const s = naming.suffix;
    const tucker = k3 && opts.tucker;
    if (algo === 'loha') {
      for (const i of [1, 2]) {
        out[`${module}.hada_w${i}_a`] = tucker ? [r, rows!] : [rows!, r];
        out[`${module}.hada_w${i}_b`] = [r, tucker ? cols! : flatIn];
        if (tucker) out[`${module}.hada_t${i}`] = [r, r, ...kernel];
      }
    } else if (algo === 'lokr') {
      const a = smallestDivisor(rows!);
      const b = smallestDivisor(tucker ? cols! : flatIn);
      out[`${module}.lokr_w1`] = [a, b];
      out[`${module}.lokr_w2_a`] = tucker ? [r, rows! / a] : [rows! / a, r];
      out[`${module}.lokr_w2_b`] = [r, (tucker ? cols! : flatIn) / b];
      if (tucker) out[`${module}.lokr_t2`] = [r, r, ...kernel];
    } else if (tucker && s.mid) {
      out[`${module}.${s.down}`] = [r, cols!, 1, 1];
      out[`${module}.${s.mid}`] = [r, r, ...kernel];
      out[`${module}.${s.up}`] = [rows!, r, 1, 1];
    } else {
      out[`${module}.${s.down}`] = conv ? [r, cols!, ...kernel] : [r, cols!];
      out[`${module}.${s.up}`] = conv ? [rows!, r, 1, 1] : [rows!, r];
    }
    if (s.alpha) out[`${module}.${s.alpha}`] = [];
    if (opts.dora && s.dora === 'dora_scale' && algo === 'lora') out[`${module}.dora_scale`] = !conv ? [1, cols!] : k3 ? [rows!, 1, 1, 1] : [1, cols!, 1, 1];
    else if (opts.dora && s.dora && linear) out[`${module}.${s.dora}`] = [rows!];
  };

  for (const m of sdUnetModules(opts.arch)) {
    if (!selected(m, targets) || (opts.only && !opts.only.test(m.ldm))) continue;
    const name = naming.unet(m, opts.arch);
    if (name) add(name, scaledShape(m.shape, factor), m.kind === 'linear');
  }
  const te = typeof naming.te === 'function' ? naming.te(opts.arch) : naming.te;
  if (opts.textEncoders ?? true) {
    for (const enc of SD_TEXT_ENCODERS[opts.arch]) {
      const prefix = te[enc.component];
      if (prefix === undefined) continue;
      const w = (e: 'd' | 'ff') => scaledWidth(e === 'd' ? enc.d : enc.ff, factor);
      for (let i = 0; i < Math.min(enc.layers, opts.teLayers ?? enc.layers); i++) {
        for (const mod of CLIP_MODULES) {
          if (targets === 'attention' && !/self_attn/.test(mod.path) && opts.layout !== 'diffusers-old') continue;
          const path = textEncoderModule(fillIndex(mod.path, i), opts.layout);
          add(prefix + (naming.underscore ? us(path) : path), [w(mod.shape[0]!), w(mod.shape[1]!)], true);
        }
      }
    }
  }
  return out;
}

/** Metadata the real trainers write. */
function sampleMetadata(opts: SdLoraOptions, rank: number): Record<string, string> {
  const base = { sd1: 'sd_v1', sd2: 'sd_v2', sdxl: 'sdxl_base_v1-0' }[opts.arch];
  switch (opts.layout) {
    case 'kohya':
    case 'lycoris':
      return { ss_network_module: opts.algo && opts.algo !== 'lora' ? 'lycoris.kohya' : 'networks.lora', ss_network_dim: String(rank), ss_base_model_version: base, ...(opts.arch === 'sd2' ? { ss_v2: 'True' } : {}) };
    case 'diffusers':
      return { format: 'pt' };
    default:
      return {};
  }
}

/** Writes one SD LoRA (deterministic; shapes match `writeSdCheckpoint` at the same factor). */
export async function writeSdLora(path: string, opts: SdLoraOptions): Promise<KeyShapes> {
  const shapes = sdLoraKeyShapes(opts);
  await writeKeyShapes(path, shapes, {
    seed: opts.seed,
    dtype: opts.dtype,
    alpha: opts.alpha,
    metadata: { ...sampleMetadata(opts, opts.rank ?? 4), ...opts.metadata },
  });
  return shapes;
}
