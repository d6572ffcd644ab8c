/**
 * Module names → canonical targets. A module name is a key without its role suffix
 * (`lora_unet_double_blocks_0_img_attn_qkv`, `transformer.transformer_blocks.0.attn.to_k`, …).
 * The prefix says the layout and which naming follows; denoiser names are resolved by the model
 * family's own names, text-encoder names by the shared encoder tables, dotted or with `.` → `_`
 * as kohya, OneTrainer and LyCORIS spell them.
 */
import type { Component } from '../../adapter/model.ts';
import type { Family, TableEntry } from '../family.ts';
import type { PartRows } from '../table/module-table.ts';
import { fillIndex, templateRegex, type Spelling } from '../table/template.ts';
import { CLIP_MODULES, T5_MODULES, type TextEncoderModule } from '../text-encoders.ts';

/** The naming scheme of one key, by its prefix. `bfl` = bare BFL names (BFL control LoRAs, x-flux). */
export type Layout = 'kohya' | 'diffusers' | 'comfyui' | 'onetrainer' | 'lycoris' | 'xlabs' | 'bfl';

type Names = 'transformer' | 'clip' | 'clipg' | 't5' | 'te2';

interface Namespace {
  prefix: RegExp;
  layout: Layout;
  spelling: Spelling;
  names: Names;
  /** Component of the module when it is not a FLUX/text-encoder name we know (other architectures). */
  generic: 'denoiser' | Component;
}

const PEFT_WRAPPER = String.raw`(?:base_model\.model\.)?`;

/** Ordered: the first prefix that matches decides; the bare namespace comes last. */
const NAMESPACES: readonly Namespace[] = [
  { prefix: /^lora_unet_/, layout: 'kohya', spelling: 'underscore', names: 'transformer', generic: 'denoiser' },
  { prefix: /^lora_te1?_/, layout: 'kohya', spelling: 'underscore', names: 'clip', generic: 'clip_l' },
  { prefix: /^lora_te2_/, layout: 'kohya', spelling: 'underscore', names: 'te2', generic: 'clip_g' },
  { prefix: /^lora_te3_/, layout: 'kohya', spelling: 'underscore', names: 't5', generic: 't5' },
  { prefix: /^lora_transformer_/, layout: 'onetrainer', spelling: 'underscore', names: 'transformer', generic: 'denoiser' },
  { prefix: /^lycoris_/, layout: 'lycoris', spelling: 'underscore', names: 'transformer', generic: 'denoiser' },
  { prefix: new RegExp(`^transformer\\.${PEFT_WRAPPER}`), layout: 'diffusers', spelling: 'dotted', names: 'transformer', generic: 'denoiser' },
  { prefix: new RegExp(`^unet\\.${PEFT_WRAPPER}`), layout: 'diffusers', spelling: 'dotted', names: 'transformer', generic: 'denoiser' },
  { prefix: new RegExp(`^text_encoder\\.${PEFT_WRAPPER}`), layout: 'diffusers', spelling: 'dotted', names: 'clip', generic: 'clip_l' },
  { prefix: new RegExp(`^text_encoder_2\\.${PEFT_WRAPPER}`), layout: 'diffusers', spelling: 'dotted', names: 'te2', generic: 'clip_g' },
  { prefix: /^base_model\.model\./, layout: 'diffusers', spelling: 'dotted', names: 'transformer', generic: 'denoiser' },
  { prefix: /^diffusion_model\./, layout: 'comfyui', spelling: 'dotted', names: 'transformer', generic: 'denoiser' },
  { prefix: /^text_encoders\.clip_l\.transformer\./, layout: 'comfyui', spelling: 'dotted', names: 'clip', generic: 'clip_l' },
  { prefix: /^text_encoders\.clip_g\.transformer\./, layout: 'comfyui', spelling: 'dotted', names: 'clipg', generic: 'clip_g' },
  // SD2's OpenCLIP-H, its single text encoder (carried as clip_l)
  { prefix: /^text_encoders\.clip_h\.transformer\./, layout: 'comfyui', spelling: 'dotted', names: 'clip', generic: 'clip_l' },
  { prefix: /^text_encoders\.t5xxl\.transformer\./, layout: 'comfyui', spelling: 'dotted', names: 't5', generic: 't5' },
  { prefix: /^/, layout: 'bfl', spelling: 'dotted', names: 'transformer', generic: 'denoiser' },
];

export interface ResolvedModule {
  layout: Layout;
  component: Component;
  /** Target module path (the family's canonical name, Hugging Face for text encoders), without `.weight`. */
  module: string;
  kind: 'linear' | 'norm';
  /** Rows of the target covered, in units of the hidden width (diffusers parts of fused weights). */
  part?: PartRows;
  /** The canonical and this naming order the row halves differently (FLUX final adaLN ⇄ `norm_out.linear`). */
  swapHalves?: boolean;
  /** The family's module table entry. */
  entry?: TableEntry;
}

export interface UnresolvedModule {
  layout: Layout;
  /** Component it would belong to; `denoiser` = the diffusion model, named by the architecture. */
  generic: 'denoiser' | Component;
  /** The module path after the prefix, as spelled in the file. */
  rest: string;
}

interface Matcher {
  re: RegExp;
  make: (index: number | undefined) => Omit<ResolvedModule, 'layout'>;
  /** Overrides the namespace's layout (OneTrainer's T5 `lora_te2_`). */
  layout?: Layout;
}

const index = (m: RegExpExecArray) => (m[1] === undefined ? undefined : Number(m[1]));

function encoderMatchers(mods: readonly TextEncoderModule[], component: Component, spelling: Spelling, layout?: Layout): Matcher[] {
  return mods.map((mod) => ({
    re: templateRegex(mod.path, spelling),
    layout,
    make: (i) => ({ component, module: fillIndex(mod.path, i), kind: 'linear' as const }),
  }));
}

const MATCHERS: Record<`${Exclude<Names, 'transformer'>}:${Spelling}`, Matcher[]> = {
  'clip:dotted': encoderMatchers(CLIP_MODULES, 'clip_l', 'dotted'),
  'clip:underscore': encoderMatchers(CLIP_MODULES, 'clip_l', 'underscore'),
  'clipg:dotted': encoderMatchers(CLIP_MODULES, 'clip_g', 'dotted'),
  'clipg:underscore': encoderMatchers(CLIP_MODULES, 'clip_g', 'underscore'),
  't5:dotted': encoderMatchers(T5_MODULES, 't5', 'dotted'),
  't5:underscore': encoderMatchers(T5_MODULES, 't5', 'underscore'),
  // second text encoder: T5 for FLUX (OneTrainer `lora_te2_`, diffusers `text_encoder_2.`), CLIP-G for SDXL
  'te2:dotted': [...encoderMatchers(T5_MODULES, 't5', 'dotted'), ...encoderMatchers(CLIP_MODULES, 'clip_g', 'dotted')],
  'te2:underscore': [...encoderMatchers(T5_MODULES, 't5', 'underscore', 'onetrainer'), ...encoderMatchers(CLIP_MODULES, 'clip_g', 'underscore')],
};

/** The layout a module name is spelled in and, when it names a known module, its canonical target. */
export function resolveModule(name: string, family?: Family): ResolvedModule | UnresolvedModule {
  const ns = NAMESPACES.find((n) => n.prefix.test(name))!;
  let rest = name.replace(ns.prefix, '');
  // some kohya-style writers leave a trailing `_` on the module name (`…_attn_qkv_.alpha`)
  if (ns.spelling === 'underscore') rest = rest.replace(/_+$/, '');
  if (ns.names === 'transformer') {
    const hit = family?.resolveDenoiser?.(rest, ns.spelling);
    if (hit) {
      const layout = (hit.layout as Layout | undefined) ?? (ns.layout === 'bfl' && hit.diffusersName ? 'diffusers' : ns.layout);
      return { layout, component: family!.denoiser, module: hit.module, kind: hit.kind, part: hit.part, swapHalves: hit.swapHalves, entry: hit.entry };
    }
    return { layout: ns.layout, generic: ns.generic, rest };
  }
  for (const m of MATCHERS[`${ns.names}:${ns.spelling}`]) {
    const hit = m.re.exec(rest);
    if (hit) return { layout: m.layout ?? ns.layout, ...m.make(index(hit)) };
  }
  // dotted text-encoder names (ComfyUI `text_encoders.*`, diffusers `text_encoder.*`) are already HF paths
  if (ns.spelling === 'dotted' && ns.names !== 'te2' && rest.length > 0) {
    return { layout: ns.layout, component: ns.generic as Component, module: rest, kind: 'linear' };
  }
  return { layout: ns.layout, generic: ns.generic, rest };
}

export function isResolved(r: ResolvedModule | UnresolvedModule): r is ResolvedModule {
  return 'module' in r;
}
