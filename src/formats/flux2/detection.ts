/**
 * How FLUX.2 LoRAs and checkpoints are recognised (docs/model-families.md §3.4). FLUX.2 keeps
 * FLUX.1's BFL block names (`double_blocks.N.{img,txt}_attn.{qkv,proj}`, `img_mlp.{0,2}`,
 * `single_blocks.N.linear{1,2}`), so FLUX.1's signals fire on FLUX.2 files too. What FLUX.2 alone
 * has: the shared modulations (`double_stream_modulation_img/_txt`, `single_stream_modulation`) and
 * its diffusers names (`ff.linear_in`, `attn.to_qkv_mlp_proj`, the single blocks' `attn.to_out`,
 * `time_guidance_embed`). A file with only the names both share is told by its shapes: FLUX.2's
 * SwiGLU mlp makes `img_mlp.0` 6h × h (FLUX.1 4h), `img_mlp.2` h × 3h (4h), `linear1` 9h × h (7h),
 * `linear2` h × 4h (5h); klein-4B has FLUX.1's hidden width, so only these ratios separate them.
 */
import type { CheckpointSignal, DetectionContext, DetectionRule, KeySignal, MetadataHint } from '../family.ts';

export const FLUX2_SIGNALS: readonly KeySignal[] = [
  { re: /(?:^|[._])(?:double_stream_modulation_(?:img|txt)|single_stream_modulation)[._]/, what: 'FLUX.2 shared modulations (double_stream_modulation_img/_txt, single_stream_modulation)' },
  { re: /(?:^|[._])transformer_blocks[._]\d+[._]ff(?:_context)?[._]linear_(?:in|out)(?:[._]|$)/, what: 'FLUX.2 diffusers SwiGLU mlp (ff.linear_in / linear_out)' },
  { re: /(?:^|[._])single_transformer_blocks[._]\d+[._]attn[._](?:to_qkv_mlp_proj|to_out(?![._]0(?:[._]|$)))/, what: 'FLUX.2 diffusers single blocks (attn.to_qkv_mlp_proj, attn.to_out)' },
  { re: /(?:^|[._])time_guidance_embed[._]/, what: 'FLUX.2 diffusers time_guidance_embed' },
];

export const FLUX2_METADATA: readonly MetadataHint[] = [
  // musubi-tuner flux_2_dev / flux_2_klein_4b / flux_2_klein_9b; ai-toolkit flux2 / flux2_klein_4b / flux2_klein_9b
  { key: 'ss_base_model_version', re: /^flux[._-]?2/i },
  // musubi-tuner Flux.2-dev/lora, Flux.2-klein-4b/lora, Flux.2-klein-9b/lora
  { key: 'modelspec.architecture', re: /^flux[._-]?2/i },
];

/** BFL modules whose shape ratio differs between FLUX.2 and FLUX.1: [FLUX.2, FLUX.1] ratio of the long side to the short. */
const RATIOS: readonly { re: RegExp; long: 'out' | 'in'; flux2: number; flux1: number; what: string }[] = [
  { re: /(?:^|[._])double_blocks[._]\d+[._](?:img|txt)_mlp[._]0$/, long: 'out', flux2: 6, flux1: 4, what: 'img_mlp.0 out = 6 × in (SwiGLU)' },
  { re: /(?:^|[._])double_blocks[._]\d+[._](?:img|txt)_mlp[._]2$/, long: 'in', flux2: 3, flux1: 4, what: 'img_mlp.2 in = 3 × out' },
  { re: /(?:^|[._])single_blocks[._]\d+[._]linear1$/, long: 'out', flux2: 9, flux1: 7, what: 'linear1 out = 9 × in' },
  { re: /(?:^|[._])single_blocks[._]\d+[._]linear2$/, long: 'in', flux2: 4, flux1: 5, what: 'linear2 in = 4 × out' },
];

const FACTOR = /^(.*?)[._](lora_down|lora_A|lora_up|lora_B|lokr_w[12](?:_[ab])?)(?:[._]default)?(?:[._]weight)?$/;

/** Shape votes of a key set: modules whose [out, in] ratio is FLUX.2's or FLUX.1's, with one example of each. */
export function flux2ShapeVotes(tensors: DetectionContext['tensors']): { flux2: number; flux1: number; example?: string } {
  const dims = new Map<string, { out?: number; in?: number; lokr: Record<string, readonly number[]> }>();
  for (const t of tensors) {
    const m = FACTOR.exec(t.name);
    if (!m || !RATIOS.some((r) => r.re.test(m[1]!))) continue;
    const d = dims.get(m[1]!) ?? { lokr: {} };
    dims.set(m[1]!, d);
    const role = m[2]!;
    if ((role === 'lora_down' || role === 'lora_A') && t.shape.length === 2) d.in = t.shape[1];
    else if ((role === 'lora_up' || role === 'lora_B') && t.shape.length === 2) d.out = t.shape[0];
    else if (role.startsWith('lokr_') && t.shape.length === 2) d.lokr[role] = t.shape;
  }
  let flux2 = 0;
  let flux1 = 0;
  let example: string | undefined;
  for (const [module, d] of dims) {
    // LoKr: ΔW = w1 ⊗ w2, each factor whole or a low-rank pair (_a [out, r], _b [r, in])
    const k = d.lokr;
    const side = (w: 'w1' | 'w2', i: 0 | 1) => k[`lokr_${w}`]?.[i] ?? k[`lokr_${w}_${i === 0 ? 'a' : 'b'}`]?.[i];
    const [o1, i1, o2, i2] = [side('w1', 0), side('w1', 1), side('w2', 0), side('w2', 1)];
    if (o1 && i1 && o2 && i2) {
      d.out = o1 * o2;
      d.in = i1 * i2;
    }
    if (!d.out || !d.in) continue;
    const r = RATIOS.find((x) => x.re.test(module))!;
    const ratio = r.long === 'out' ? d.out / d.in : d.in / d.out;
    if (ratio === r.flux2) {
      flux2++;
      example ??= `${module} [${d.out}, ${d.in}]: ${r.what}`;
    } else if (ratio === r.flux1) flux1++;
  }
  return { flux2, flux1, example };
}

export const FLUX2_RULES: readonly DetectionRule[] = [
  {
    // before FLUX.1's order-10 rule, which would take every file with BFL block names
    order: 9,
    decide: (c) => {
      if (c.denoiserKeys('unet') > 0) return undefined;
      const meta = c.metadataFamily?.family;
      const metaConfidence = (sure: number) => (meta && meta !== 'flux2' ? 0.8 : sure);
      // FLUX.2-only names, and no FLUX.2-contradicting shapes
      const votes = flux2ShapeVotes(c.tensors);
      if (c.count('flux2') > 0 && votes.flux1 <= votes.flux2) return c.finish('flux2', metaConfidence(1));
      if (c.count('flux') === 0) return undefined;
      // only names FLUX.1 shares: the mlp / single-block shape ratios
      if (votes.flux2 > votes.flux1) {
        c.evidence.push(`FLUX.2 shapes on names FLUX.1 shares (${votes.flux2} modules, e.g. ${votes.example}; FLUX.1's mlp is 4h)`);
        return c.finish('flux2', metaConfidence(0.95));
      }
      // no shape tells (attention only, LoKr without shapes): the metadata's word
      if (votes.flux1 === 0 && meta === 'flux2' && c.othersOfKind('flux2', 'transformer') === c.count('flux')) {
        c.evidence.push('block names FLUX.1 and FLUX.2 share, no shape that tells them apart: FLUX.2 by its metadata');
        return c.finish('flux2', 0.9);
      }
      return undefined;
    },
  },
];

export const FLUX2_CHECKPOINT_SIGNALS: readonly CheckpointSignal[] = [
  { re: /(?:^|\.)(?:double_stream_modulation_(?:img|txt)|single_stream_modulation)\.(?:lin|linear)\.weight$/, what: 'FLUX.2 shared modulations' },
  { re: /(?:^|\.)single_transformer_blocks\.\d+\.attn\.to_qkv_mlp_proj\.weight$/, what: 'FLUX.2 diffusers single blocks (to_qkv_mlp_proj)' },
];
