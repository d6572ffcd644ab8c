/**
 * The parts of an all-in-one checkpoint by key prefix: ComfyUI's full checkpoints
 * (`model.diffusion_model.`, `text_encoders.clip_l.` / `.clip_g.` / `.t5xxl.`, `vae.`) and the SD
 * single-file layout (`cond_stage_model.`, `conditioner.embedders.`, `first_stage_model.`). Apply
 * patches the denoiser and the text encoders in place (apply-plan.ts finds them by these
 * prefixes) and copies everything else, the VAE among it, byte for byte.
 */
export type Part = 'denoiser' | 'clip_l' | 'clip_g' | 't5' | 'text_encoder' | 'vae' | 'other';

/** Longest prefixes first: the first that matches names the part. */
const PARTS: readonly { prefix: string; part: Part }[] = [
  { prefix: 'model.diffusion_model.', part: 'denoiser' },
  { prefix: 'text_encoders.clip_l.', part: 'clip_l' },
  { prefix: 'text_encoders.clip_g.', part: 'clip_g' },
  { prefix: 'text_encoders.t5xxl.', part: 't5' },
  { prefix: 'cond_stage_model.', part: 'text_encoder' },
  { prefix: 'conditioner.embedders.', part: 'text_encoder' },
  { prefix: 'first_stage_model.', part: 'vae' },
  { prefix: 'vae.', part: 'vae' },
];

export function partOf(name: string): Part {
  return PARTS.find((p) => name.startsWith(p.prefix))?.part ?? 'other';
}

/** Tensors per part, for a file with more than the denoiser (undefined for a bare model). */
export function partsOf(names: readonly string[]): Partial<Record<Part, number>> | undefined {
  const counts: Partial<Record<Part, number>> = {};
  for (const n of names) {
    const p = partOf(n);
    counts[p] = (counts[p] ?? 0) + 1;
  }
  const known = Object.keys(counts).filter((p) => p !== 'other');
  return known.length > 1 || (known.length === 1 && known[0] !== 'denoiser') ? counts : undefined;
}
