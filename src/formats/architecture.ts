/**
 * Which model a LoRA was made for, from its whole key set (and metadata as a tie-breaker). Every
 * registered family contributes key signals, metadata hints and decision rules; this runs them:
 * signals are counted over all keys, then the rules of all families by order, first answer wins.
 */
import type { ArchitectureGuess, DetectionContext, DetectionRule, Family } from './family.ts';
import { FAMILIES } from './families.ts';
import type { KeyInfo } from './keys/group.ts';

export type { ArchitectureGuess };

/** Metadata keys in the order they are believed (sd-scripts' own key first). */
const METADATA_KEYS = ['ss_base_model_version', 'modelspec.architecture'];

function metadataFamily(metadata: Readonly<Record<string, string>> | undefined): { family: string; evidence: string } | undefined {
  for (const key of METADATA_KEYS) {
    const v = metadata?.[key];
    if (v === undefined) continue;
    const f = FAMILIES.find((fam) => fam.detection.metadata.some((h) => h.key === key && h.re.test(v)));
    if (f) return { family: f.id, evidence: `metadata ${key}=${v}` };
  }
  return undefined;
}

/** Between the families' rules: the metadata names the family when no key did. */
const METADATA_RULE: DetectionRule = { order: 50, decide: (c) => (c.metadataFamily ? c.finish(c.metadataFamily.family, 0.7) : undefined) };

let ordered: readonly DetectionRule[] | undefined;

/** The rules of all families by order, each once (members of one family group share theirs); built on first use. */
function rules(): readonly DetectionRule[] {
  ordered ??= [...new Set([...FAMILIES.flatMap((f) => f.detection.rules ?? []), METADATA_RULE])].sort((a, b) => a.order - b.order);
  return ordered;
}

export function guessArchitecture(tensors: readonly KeyInfo[], metadata?: Readonly<Record<string, string>>): ArchitectureGuess {
  const counts = new Map<string, number>();
  const evidence: string[] = [];
  const seen = new Set<string>();
  for (const t of tensors) {
    for (const f of FAMILIES) {
      for (const s of f.detection.signals) {
        if (!s.re.test(t.name)) continue;
        counts.set(f.id, (counts.get(f.id) ?? 0) + 1);
        if (!seen.has(s.what)) {
          seen.add(s.what);
          evidence.push(`${s.what} (e.g. ${t.name})`);
        }
      }
    }
  }
  const meta = metadataFamily(metadata);
  if (meta) evidence.push(meta.evidence);
  const denoiserNames = (kind: Family['denoiser']) => [...new Set(FAMILIES.filter((f) => f.denoiser === kind).flatMap((f) => (f.detection.denoiserNames ? [f.detection.denoiserNames] : [])))];
  const count = (id: string) => counts.get(id) ?? 0;
  const ctx: DetectionContext = {
    tensors,
    metadata,
    count,
    top: [...counts].sort((a, b) => b[1] - a[1])[0]?.[0],
    metadataFamily: meta,
    denoiserKeys: (kind) => {
      const res = denoiserNames(kind);
      return res.length === 0 ? 0 : tensors.filter((t) => res.some((re) => re.test(t.name))).length;
    },
    othersOfKind: (id, kind) => FAMILIES.filter((f) => f.id !== id && f.denoiser === kind).reduce((s, f) => s + count(f.id), 0),
    evidence,
    finish: (architecture, confidence) => ({ architecture, confidence, evidence }),
  };
  for (const rule of rules()) {
    const guess = rule.decide(ctx);
    if (guess) return guess;
  }
  return ctx.finish('unknown', 0);
}
