/**
 * diffusers saves the PEFT LoraConfig beside the tensors (`lora_adapter_metadata`, a JSON object
 * with keys such as `transformer.r`, `transformer.lora_alpha`, `transformer.alpha_pattern`), so a
 * PEFT file without `.alpha` keys can still have a scale other than 1 (diffusers' loader passes it
 * back to `LoraConfig`, so rank and alpha need not be inferred).
 */

export interface PeftAlphas {
  /** Per component prefix (`transformer`, `text_encoder`, …). */
  byComponent: Map<string, { alpha?: number; pattern: [RegExp, number][]; rslora: boolean }>;
  alpha: number | undefined;
  useRslora: boolean;
}

export function parsePeftMetadata(metadata: Readonly<Record<string, string>>): PeftAlphas | undefined {
  const raw = metadata.lora_adapter_metadata;
  if (!raw) return undefined;
  let obj: Record<string, unknown>;
  try {
    obj = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const byComponent = new Map<string, { alpha?: number; pattern: [RegExp, number][]; rslora: boolean }>();
  for (const [key, value] of Object.entries(obj)) {
    const m = /^(.+)\.(lora_alpha|alpha_pattern|use_rslora)$/.exec(key);
    if (!m) continue;
    const entry = byComponent.get(m[1]!) ?? { pattern: [], rslora: false };
    if (m[2] === 'lora_alpha' && typeof value === 'number') entry.alpha = value;
    if (m[2] === 'use_rslora') entry.rslora = value === true;
    if (m[2] === 'alpha_pattern' && value && typeof value === 'object') {
      for (const [pat, a] of Object.entries(value as Record<string, unknown>)) {
        if (typeof a !== 'number') continue;
        // PEFT matches a pattern as a suffix of the module path
        try {
          entry.pattern.push([new RegExp(`(^|\\.)(${pat})$`), a]);
        } catch {
          entry.pattern.push([new RegExp(`(^|\\.)${pat.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`), a]);
        }
      }
    }
    byComponent.set(m[1]!, entry);
  }
  if (byComponent.size === 0) return undefined;
  const first = [...byComponent.values()][0]!;
  return { byComponent, alpha: first.alpha, useRslora: first.rslora };
}

/**
 * The alpha to store for one PEFT module so that alpha / rank is PEFT's scaling
 * (lora_alpha / r, or lora_alpha / √r with rsLoRA). Undefined when the metadata says nothing.
 */
export function peftAlphaFor(peft: PeftAlphas, module: string, rank: number): number | undefined {
  const m = /^(transformer|unet|text_encoder(?:_2)?)\.(?:base_model\.model\.)?(.+)$/.exec(module);
  const component = m?.[1] ?? 'transformer';
  const path = m?.[2] ?? module.replace(/^base_model\.model\./, '');
  const entry = peft.byComponent.get(component);
  if (!entry) return undefined;
  const alpha = entry.pattern.find(([re]) => re.test(path))?.[1] ?? entry.alpha;
  if (alpha === undefined) return undefined;
  return entry.rslora ? alpha * Math.sqrt(rank) : alpha;
}
