/**
 * LoRA extraction: the difference between a fine-tuned checkpoint and its base, one tensor pair at
 * a time, each changed matrix factored by randomized SVD (fixed rank, or per module by retained
 * energy). Unchanged weights are skipped and counted; biases and other 1-D tensors become `full`
 * diffs when asked; every other difference is reported by name.
 */
import type { Architecture, AdapterSet, Component, Patch } from '../adapter/model.ts';
import { CanonicalView } from '../checkpoint/canonical.ts';
import { isPatchable } from '../checkpoint/encoding.ts';
import { ensureBackend } from '../tensor/backend.ts';
import type { DType } from '../tensor/dtype.ts';
import { memoryTensor, numel } from '../tensor/lazy.ts';
import { checkAborted, type OpContext } from '../adapter/context.ts';
import { checkRankChoice, factorizeDense, energyOf, overallError, type FitEnergy, type RankChoice } from './lowrank.ts';
import { seedFromName } from './seed.ts';
import { checkpointArchitecture } from '../formats/checkpoint-family.ts';
import { FAMILIES, familyOf } from '../formats/families.ts';
import { inputError, type LoraflowError } from '../errors.ts';
import { loraAsCheckpointProblem } from '../formats/not-a-checkpoint.ts';

export interface ExtractOptions extends RankChoice {
  base: string;
  tuned: string;
  /** Upper bound on the per-module rank when choosing by energy. */
  maxRank?: number;
  /** Keep differing biases and other 1-D tensors as `full` diffs. */
  keepBiases?: boolean;
  /** A weight whose largest |difference| is at most this counts as unchanged (default 0: bit-equal values). */
  minDiff?: number;
  ctx?: OpContext;
}

export interface ExtractedModule {
  key: string;
  shape: number[];
  rank: number;
  relError: number;
}

export interface ExtractReport {
  backend: string;
  architecture: Architecture;
  modules: ExtractedModule[];
  /** √(Σ discarded / Σ total) over the extracted matrices. */
  relError: number;
  /** Tensors identical in both files. */
  unchanged: number;
  /** Tensors that differ by at most minDiff: left out, by name. */
  belowMinDiff: string[];
  /** 1-D tensors kept as full diffs. */
  fullDiffs: string[];
  /** Differing tensors not in the LoRA, with why. */
  skipped: { key: string; reason: string }[];
}

export function extractError(message: string): LoraflowError {
  return inputError('EXTRACT', `extract: ${message}`);
}

/** Checkpoint key prefixes around the diffusion model's own names (ComfyUI full checkpoints). */
const MODEL_PREFIXES = ['model.diffusion_model.', 'diffusion_model.'];

/** Which model a checkpoint pair holds, from its (prefix-free) key names: the families' extraction signals, first match wins. */
const architectureKeys = (): { architecture: Architecture; component: Component; pattern: RegExp }[] =>
  FAMILIES.flatMap((f) => (f.checkpoint.extractionSignal ? [{ architecture: f.id, ...f.checkpoint.extractionSignal }] : []));

function prefixOf(file: CanonicalView): string {
  const names = file.tensors.map((t) => t.name);
  return MODEL_PREFIXES.find((p) => names.some((n) => n.startsWith(p))) ?? '';
}

function listNames(names: readonly string[], max = 10): string {
  return names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')} and ${names.length - max} more`;
}

/** Pairs every base tensor with its tuned twin by model name; anything unpaired or misshapen is an error. */
function pairKeys(base: CanonicalView, tuned: CanonicalView): { name: string; baseKey: string; tunedKey: string }[] {
  const bp = prefixOf(base);
  const tp = prefixOf(tuned);
  const strip = (prefix: string, key: string) => (prefix && key.startsWith(prefix) ? key.slice(prefix.length) : key);
  const tunedByName = new Map(tuned.tensors.map((t) => [strip(tp, t.name), t]));
  const pairs = [];
  const onlyBase: string[] = [];
  const shapes: string[] = [];
  for (const t of base.tensors) {
    const name = strip(bp, t.name);
    const twin = tunedByName.get(name);
    if (!twin) {
      onlyBase.push(t.name);
      continue;
    }
    tunedByName.delete(name);
    if (t.shape.join() !== twin.shape.join()) shapes.push(`${t.name} [${t.shape}] vs ${twin.name} [${twin.shape}]`);
    pairs.push({ name, baseKey: t.name, tunedKey: twin.name });
  }
  const onlyTuned = [...tunedByName.values()].map((t) => t.name);
  const problems = [
    onlyBase.length ? `${onlyBase.length} tensors only in ${base.path}: ${listNames(onlyBase)}` : '',
    onlyTuned.length ? `${onlyTuned.length} tensors only in ${tuned.path}: ${listNames(onlyTuned)}` : '',
    shapes.length ? `${shapes.length} tensors with different shapes: ${listNames(shapes)}` : '',
  ].filter(Boolean);
  if (problems.length) throw extractError(`the checkpoints do not match: ${problems.join('; ')}`);
  return pairs;
}

/** Why an extraction came out empty: the checkpoints are identical, or every difference was left out. */
export function nothingExtracted(base: Pick<CanonicalView, 'path'>, tuned: Pick<CanonicalView, 'path'>, pairs: number, report: ExtractReport): string {
  if (report.unchanged === pairs) {
    return `${tuned.path} and ${base.path} are identical (all ${pairs} tensors hold the same values): there is no difference to extract, so no LoRA was written`;
  }
  const parts = [
    `${report.unchanged} tensors identical`,
    report.belowMinDiff.length ? `${report.belowMinDiff.length} differing by at most minDiff (${listNames(report.belowMinDiff, 5)})` : '',
    report.skipped.length ? `${report.skipped.length} left out (${report.skipped.slice(0, 5).map((s) => `${s.key}: ${s.reason}`).join('; ')}${report.skipped.length > 5 ? '; …' : ''})` : '',
  ].filter(Boolean);
  return `nothing to extract from ${tuned.path} − ${base.path}: of ${pairs} tensor pairs, ${parts.join(', ')}`;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/**
 * One Float32Array reused for every tensor, grown when a larger one comes: a fresh array per
 * tensor costs a page fault per 4 KiB on first touch, which on virtual machines takes longer than
 * decoding into memory touched before.
 */
function reusedFloats(): (count: number) => Float32Array {
  let buffer = new Float32Array(0);
  return (count) => (buffer.length >= count ? buffer : (buffer = new Float32Array(count))).subarray(0, count);
}

/** LoRA factors are stored at the base's precision, except that fp8 would ruin them. */
function factorDtype(dtype: DType): DType {
  return dtype === 'F32' || dtype === 'F16' || dtype === 'BF16' ? dtype : 'BF16';
}

export async function extractLora(options: ExtractOptions): Promise<{ set: AdapterSet; report: ExtractReport }> {
  const { minDiff = 0 } = options;
  checkRankChoice(options, 'extract', true);
  if (options.maxRank !== undefined && (!Number.isInteger(options.maxRank) || options.maxRank < 1)) {
    throw extractError(`maxRank must be a positive integer, got ${options.maxRank}`);
  }
  if (!(minDiff >= 0)) throw extractError(`minDiff must be ≥ 0, got ${minDiff}`);
  const base = await CanonicalView.open(options.base);
  try {
    const tuned = await CanonicalView.open(options.tuned);
    try {
      return await extractPairs(base, tuned, options, minDiff);
    } finally {
      await tuned.close();
    }
  } finally {
    await base.close();
  }
}

interface Extraction {
  base: CanonicalView;
  tuned: CanonicalView;
  options: ExtractOptions;
  minDiff: number;
  component: Component;
  report: ExtractReport;
  patches: Patch[];
  fits: FitEnergy[];
  diffBuffer: ReturnType<typeof reusedFloats>;
  baseBuffer: ReturnType<typeof reusedFloats>;
}

/** One tensor pair: unchanged (bytes first), skipped, below minDiff, factored to a LoRA, or kept as a full diff. */
async function extractPair(x: Extraction, { name, baseKey, tunedKey }: { name: string; baseKey: string; tunedKey: string }): Promise<void> {
  const { base, tuned, options, report } = x;
  const bi = base.info(baseKey);
  const ti = tuned.info(tunedKey);
  const [bBytes, tBytes] = await Promise.all([base.readStored(baseKey), tuned.readStored(tunedKey)]);
  // the same stored bytes are the same values, unless a scale (scaled fp8) multiplies them
  if (bi.dtype === ti.dtype && !bi.scale && !ti.scale && bytesEqual(bBytes, tBytes)) {
    report.unchanged++;
    return;
  }
  if (!isPatchable(bi.dtype) || !isPatchable(ti.dtype)) {
    report.skipped.push({ key: name, reason: `${bi.dtype}/${ti.dtype} tensors differ but are not floating point` });
    return;
  }
  const count = numel(ti.shape);
  const diff = await tuned.decode(ti, tBytes, x.diffBuffer(count));
  const b = await base.decode(bi, bBytes, x.baseBuffer(count));
  let maxAbs = 0;
  for (let j = 0; j < diff.length; j++) {
    const d = diff[j]! - b[j]!;
    diff[j] = d;
    const a = Math.abs(d);
    if (a > maxAbs) maxAbs = a;
  }
  if (maxAbs <= x.minDiff) {
    if (maxAbs === 0) report.unchanged++;
    else report.belowMinDiff.push(name);
    return;
  }
  const shape = [...bi.shape];
  const dtype = factorDtype(bi.dtype as DType);
  const source = { module: name, keys: [baseKey, tunedKey] };
  const { component } = x;
  if (shape.length === 2 || shape.length === 4) {
    const m = shape[0]!;
    const n = diff.length / m;
    const fit = await factorizeDense(diff, m, n, { rank: options.rank, energy: options.energy, maxRank: options.maxRank, seed: seedFromName(name), what: `extract: ${tunedKey} (${tuned.path}) − ${baseKey} (${base.path})` });
    x.fits.push(energyOf(fit));
    const conv = shape.length === 4;
    x.patches.push({
      component,
      target: name,
      adapter: {
        kind: 'lora',
        down: memoryTensor(fit.down, [fit.k, ...shape.slice(1)], dtype, `extracted ${name} down`),
        up: memoryTensor(fit.up, conv ? [m, fit.k, 1, 1] : [m, fit.k], dtype, `extracted ${name} up`),
        alpha: fit.k,
        scale: 1,
      },
      source,
    });
    report.modules.push({ key: name, shape, rank: fit.k, relError: fit.relError });
  } else if (options.keepBiases) {
    x.patches.push({ component, target: name, adapter: { kind: 'full', diff: memoryTensor(diff.slice(), shape, dtype, `extracted ${name} diff`) }, source });
    report.fullDiffs.push(name);
  } else {
    report.skipped.push({ key: name, reason: `${shape.length}-D tensor differs (max |Δ| ${maxAbs.toExponential(2)}); keepBiases keeps it as a full diff` });
  }
}

/** What the extraction's set says of itself: skips, an empty result, full diffs or dropped biases, an unrecognised base. */
function extractionNotes(x: Extraction, pairs: number, recognised: boolean): string[] {
  const { report } = x;
  const notes = report.skipped.map((s) => `not extracted: ${s.key}: ${s.reason}`);
  if (x.patches.length === 0) notes.unshift(nothingExtracted(x.base, x.tuned, pairs, report));
  const droppedBiases = report.skipped.filter((s) => s.reason.includes('keepBiases')).length;
  if (report.fullDiffs.length > 0) {
    notes.push(
      `${report.fullDiffs.length} changed 1-D tensor${report.fullDiffs.length === 1 ? '' : 's'} (biases, norm scales) kept as full diffs (written as .diff_b / .diff keys): ` +
        'ComfyUI applies them, but diffusers and sd-scripts load the LoRA without them and say nothing; keepBiases false (loraflow extract --biases drop) leaves them out',
    );
  } else if (droppedBiases > 0) {
    notes.push(`${droppedBiases} changed 1-D tensor${droppedBiases === 1 ? '' : 's'} (biases, norm scales) left out (keepBiases false / --biases drop): the LoRA does not reproduce those changes`);
  }
  if (!recognised) notes.push('the base checkpoint is not a model loraflow recognises by its key names; targets are the checkpoint names without prefix');
  return notes;
}

async function extractPairs(base: CanonicalView, tuned: CanonicalView, options: ExtractOptions, minDiff: number) {
  const { ctx } = options;
  for (const [file, what] of [[base, 'base checkpoint'], [tuned, 'fine-tuned checkpoint']] as const) {
    const lora = loraAsCheckpointProblem(file.path, file.tensors.map((t) => t.name), what);
    if (lora) throw extractError(lora);
  }
  const pairs = pairKeys(base, tuned);
  const arch = architectureKeys().find((a) => pairs.some((p) => a.pattern.test(p.name)));
  const report: ExtractReport = {
    backend: await ensureBackend(), architecture: arch?.architecture ?? 'unknown', modules: [], relError: 0, unchanged: 0, belowMinDiff: [], fullDiffs: [], skipped: [],
  };
  const x: Extraction = { base, tuned, options, minDiff, component: arch?.component ?? 'transformer', report, patches: [], fits: [], diffBuffer: reusedFloats(), baseBuffer: reusedFloats() };
  ctx?.log?.(`extract (${options.rank !== undefined ? `rank ${options.rank}` : `energy ${options.energy}`}) from ${pairs.length} tensor pairs of a ${report.architecture} checkpoint on the ${report.backend} backend`);
  for (const [i, pair] of pairs.entries()) {
    checkAborted(ctx);
    ctx?.onProgress?.(i, pairs.length, pair.name);
    await extractPair(x, pair);
  }
  ctx?.onProgress?.(pairs.length, pairs.length);
  // some families' checkpoints keep text encoders under their own key names (SD's OpenCLIP fused
  // in_proj among them); a LoRA names every patch by its canonical target
  const family = familyOf(checkpointArchitecture(base.tensors).architecture);
  const canonicalize = family?.checkpoint.canonicalExtraction;
  if (canonicalize) {
    const shapes = new Map(pairs.map((p) => [p.name, base.info(p.baseKey).shape]));
    const canonical = canonicalize(x.patches, (name) => shapes.get(name)!);
    x.patches.splice(0, x.patches.length, ...canonical.patches);
    report.skipped.push(...canonical.skipped);
    report.architecture = family.id;
  }
  report.relError = overallError(x.fits);
  // identical checkpoints are an input mistake; an extraction emptied by minDiff or skips says why in
  // its notes (the extract-lora node refuses to pass such an empty LoRA on)
  if (x.patches.length === 0 && report.unchanged === pairs.length) throw extractError(nothingExtracted(base, tuned, pairs.length, report));
  const notes = extractionNotes(x, pairs.length, Boolean(arch || canonicalize));
  const set: AdapterSet = { architecture: report.architecture, format: 'extracted', patches: x.patches, metadata: {}, unknownKeys: [], notes };
  for (const n of notes.filter((n) => !n.startsWith('not extracted: '))) ctx?.log?.(n);
  ctx?.log?.(`extracted ${report.modules.length} matrices (relative error ${report.relError.toExponential(2)}), ${report.unchanged} unchanged, ${report.fullDiffs.length} full diffs, ${report.skipped.length} skipped`);
  return { set, report };
}
