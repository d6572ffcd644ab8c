/**
 * Deterministic LoRA files for tests, benchmarks and `loraflow samples`:
 *
 * - the real key lists in `flux-keys/` (ten FLUX LoRAs from the wild), filled with values at full
 *   width or with every non-rank width divided by a factor (ranks and 0-d alphas kept), so the
 *   same code paths run in milliseconds;
 * - sample LoRAs in each layout built from the FLUX module map (`writeSampleLora`), independent
 *   of loraflow's writers so they can check them.
 *
 * Values come from a PRNG seeded by (seed, key), so any tensor can be regenerated alone.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSafetensors, type TensorEntry } from '../safetensors/writer.ts';
import { encodeFromF32, type DType } from '../tensor/dtype.ts';
import { FLUX_ALIASES, FLUX_MODULES, type DimExpr, type FluxModule } from '../formats/flux/modules.ts';
import { fillIndex } from '../formats/table/template.ts';
import { FLUX } from '../formats/flux/family.ts';
import type { TableModule } from '../formats/table/module-table.ts';
import { CLIP_MODULES, TEXT_ENCODER_DIMS } from '../formats/text-encoders.ts';
import { parseRole, type Role } from '../formats/keys/roles.ts';
import { isResolved, resolveModule } from '../formats/keys/resolve.ts';
import type { AdapterSet, Patch } from '../adapter/model.ts';
import { fluxDims } from './flux-checkpoint.ts';
import { referenceDeltas, type TargetDelta } from './reference-delta.ts';

export const FIXTURE_NAMES = [
  'flux_control_lora_format',
  'flux_dora_onetrainer_format',
  'flux_lokr_bfl_format',
  'flux_lora_aitoolkit_format',
  'flux_lora_diffusers_base_model_format',
  'flux_lora_diffusers_format',
  'flux_lora_diffusers_no_proj_mlp_format',
  'flux_lora_kohya_format',
  'flux_lora_kohya_with_te1_format',
  'flux_lora_xlabs_format',
] as const;
export type FixtureName = (typeof FIXTURE_NAMES)[number];

export type KeyShapes = Record<string, number[]>;

/** The real key → shape list of one fixture (full FLUX widths). */
export function fixtureKeyShapes(name: FixtureName): KeyShapes {
  return JSON.parse(readFileSync(new URL(`./flux-keys/${name}.json`, import.meta.url), 'utf8')) as KeyShapes;
}

/** Which dimensions of a tensor are ranks (kept when widths shrink). */
function rankDims(role: Role | undefined): number[] {
  switch (role) {
    case 'down':
    case 'hada_w1_b':
    case 'hada_w2_b':
      return [0];
    case 'up':
    case 'hada_w1_a':
    case 'hada_w2_a':
      return [1];
    case 'mid':
      return [0, 1];
    default:
      return [];
  }
}

/**
 * Every width divided by `factor`; ranks, 0-d alphas and singleton dims are kept. LoKr kron
 * factors (synthetic, and split between w1 and w2 arbitrarily) shrink by at most 16 each, so
 * their product stays a few rows by a few hundred columns.
 */
export function scaleKeyShapes(shapes: KeyShapes, factor: number): KeyShapes {
  if (factor === 1) return structuredClone(shapes);
  const out: KeyShapes = {};
  for (const [key, shape] of Object.entries(shapes)) {
    const role = parseRole(key)?.role;
    const keep = rankDims(role);
    const f = role?.startsWith('lokr_') ? Math.min(factor, 16) : factor;
    out[key] = shape.map((d, i) => (keep.includes(i) || d % f !== 0 ? d : d / f));
  }
  return out;
}

/** mulberry32 seeded by FNV-1a of (seed, key): one independent stream per tensor. */
export function keyedRandom(key: string, seed: number): () => number {
  let h = 0x811c9dc5 ^ Math.imul(seed | 0, 0x9e3779b9);
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  let a = h >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

export interface FillOptions {
  seed?: number;
  /** Storage dtype of every tensor but alphas (default F32). */
  dtype?: DType;
  /** Storage dtype of alphas (default: `dtype`); sd-scripts tools also write I64. */
  alphaDtype?: DType;
  /** Alpha of a module from its rank (default rank / 2, i.e. scale 0.5: a power of two). */
  alpha?: (module: string, rank: number) => number;
  /** Multiplies every up (for layouts without alpha that carry a scale). */
  upScale?: number;
  /**
   * Zero the off-diagonal blocks of fused qkv / linear1 ups (as split_qkv training and split→fused
   * conversion produce), so readers and writers meet the sparse case. Columns are split into as
   * many near-equal groups as the weight has parts.
   */
  blockDiagonal?: boolean | ((module: string) => boolean);
  metadata?: Record<string, string>;
}

interface Filled {
  shapes: KeyShapes;
  values(key: string): Float32Array;
  dtypeOf(key: string): DType;
}

/** Rows of each fused part (q, k, v[, mlp]) of a fused FLUX up, from the module's input width. */
function fusedPartRows(mod: TableModule, out: number, h: number): [number, number][] | undefined {
  if (typeof mod.diffusers === 'string') return undefined;
  return mod.diffusers.map((p) => [p.rows.start * h, p.rows.len === 'rest' ? out - p.rows.start * h : p.rows.len * h]);
}

type ModuleIndex = Map<string, Map<Role, string>>;

function indexModules(shapes: KeyShapes): ModuleIndex {
  const index: ModuleIndex = new Map();
  for (const key of Object.keys(shapes)) {
    const p = parseRole(key);
    if (!p) continue;
    const m = index.get(p.module) ?? new Map<Role, string>();
    m.set(p.role, key);
    index.set(p.module, m);
  }
  return index;
}

function blockDiagonalMask(module: string, upKey: string, shapes: KeyShapes, index: ModuleIndex): ((row: number, col: number) => boolean) | undefined {
  const r = resolveModule(module, FLUX);
  if (!isResolved(r) || !r.entry || r.part) return undefined;
  const downKey = index.get(module)?.get('down');
  if (!downKey) return undefined;
  const key = upKey;
  const [out, rank] = shapes[key] as [number, number];
  const parts = fusedPartRows(r.entry.module, out, shapes[downKey]![1]!);
  if (!parts) return undefined;
  const n = parts.length;
  const colPart = (c: number) => Math.floor((c * n) / rank);
  const rowPart = (row: number) => parts.findIndex(([s, len]) => row >= s && row < s + len);
  return (row, col) => rowPart(row) === colPart(col);
}

function filler(shapes: KeyShapes, opts: FillOptions): Filled {
  const seed = opts.seed ?? 0;
  const index = indexModules(shapes);
  const dtype = opts.dtype ?? 'F32';
  return {
    shapes,
    dtypeOf: (key) => (parseRole(key)?.role === 'alpha' ? opts.alphaDtype ?? dtype : dtype),
    values(key) {
      const shape = shapes[key]!;
      const n = shape.reduce((a, b) => a * b, 1);
      const parsed = parseRole(key);
      const role = parsed?.role;
      const rnd = keyedRandom(key, seed);
      const out = new Float32Array(n);
      if (role === 'alpha') {
        const roles = index.get(parsed!.module);
        const rankKey = roles?.get('down') ?? roles?.get('hada_w1_b') ?? roles?.get('lokr_w2_b') ?? roles?.get('lokr_w1_b');
        const rank = rankKey ? shapes[rankKey]![0]! : 1;
        out.fill((opts.alpha ?? ((_, r) => r / 2))(parsed!.module, rank));
        return out;
      }
      const sym = (amp: number, center = 0) => {
        for (let i = 0; i < n; i++) out[i] = center + amp * (2 * rnd() - 1);
      };
      switch (role) {
        case 'down':
          sym(1 / Math.sqrt(shape[shape.length - 1]!));
          break;
        case 'up': {
          sym(0.1 * (opts.upScale ?? 1));
          const bd = typeof opts.blockDiagonal === 'function' ? opts.blockDiagonal(parsed!.module) : opts.blockDiagonal;
          const mask = bd ? blockDiagonalMask(parsed!.module, key, shapes, index) : undefined;
          if (mask) {
            const cols = shape[1]!;
            for (let i = 0; i < n; i++) if (!mask(Math.floor(i / cols), i % cols)) out[i] = 0;
          }
          break;
        }
        case 'dora':
        case 'magnitude':
        case 'set':
          sym(0.1, 1);
          break;
        case 'up_bias':
        case 'diff':
        case 'diff_b':
          sym(0.01);
          break;
        default:
          sym(0.1);
      }
      return out;
    },
  };
}

/** Writes a key → shape list as a safetensors file of deterministic values. */
export async function writeKeyShapes(path: string, shapes: KeyShapes, opts: FillOptions = {}): Promise<void> {
  const f = filler(shapes, opts);
  const entries: TensorEntry[] = Object.entries(shapes).map(([name, shape]) => ({
    name,
    dtype: f.dtypeOf(name),
    shape,
    data: async () => encodeFromF32(f.values(name), f.dtypeOf(name)),
  }));
  await writeSafetensors(path, entries, { metadata: opts.metadata, order: 'given' });
}

export interface FixtureOptions extends FillOptions {
  /** Width divisor (1 = the real FLUX widths); default 64. */
  factor?: number;
}

/** Writes one of the real key lists, filled, to `path`. */
export async function writeFixture(name: FixtureName, path: string, opts: FixtureOptions = {}): Promise<KeyShapes> {
  const shapes = scaleKeyShapes(fixtureKeyShapes(name), opts.factor ?? 64);
  await writeKeyShapes(path, shapes, opts);
  return shapes;
}

export async function fixtureDir(prefix = 'loraflow-fixtures-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

// ---------------------------------------------------------------------------------------------
// Sample LoRAs built from the module map

export type SampleFormat = 'aitoolkit' | 'diffusers' | 'kohya' | 'comfyui' | 'onetrainer' | 'xlabs';

export interface SampleLoraOptions {
  format: SampleFormat;
  rank?: number;
  /** Per-module scale (alpha / rank); layouts without alpha carry it in the ups. Default 1. */
  scale?: number;
  seed?: number;
  /** Width divisor shared with `writeFluxCheckpoint`'s `scale` (default 64). */
  factor?: number;
  /** Number of double / single blocks covered (from block 0; default all of FLUX.1: 19 / 38). */
  blocks?: { double?: number; single?: number };
  /** Also patch the CLIP-L text encoder (kohya `lora_te1_`, diffusers `text_encoder.`, ComfyUI `text_encoders.clip_l.transformer.`). */
  textEncoder?: boolean;
  dtype?: DType;
  metadata?: Record<string, string>;
}

function dimValue(expr: DimExpr, factor: number): number {
  const d = fluxDims(factor);
  const table: Record<DimExpr, number> = {
    h: d.hidden, '2h': 2 * d.hidden, '3h': 3 * d.hidden, '6h': 6 * d.hidden, mlp: d.mlp, 'h+mlp': d.hidden + d.mlp,
    '3h+mlp': 3 * d.hidden + d.mlp, in: d.inChannels, ctx: d.contextDim, vec: d.vecDim, time: d.timeDim, head: d.headDim,
  };
  return table[expr];
}

type Naming = { prefix: string; underscore: boolean; names: 'bfl' | 'diffusers'; down: string; up: string; alpha: boolean };

const NAMING: Record<Exclude<SampleFormat, 'xlabs'>, Naming> = {
  kohya: { prefix: 'lora_unet_', underscore: true, names: 'bfl', down: 'lora_down.weight', up: 'lora_up.weight', alpha: true },
  comfyui: { prefix: 'diffusion_model.', underscore: false, names: 'bfl', down: 'lora_down.weight', up: 'lora_up.weight', alpha: false },
  diffusers: { prefix: 'transformer.', underscore: false, names: 'diffusers', down: 'lora_A.weight', up: 'lora_B.weight', alpha: false },
  aitoolkit: { prefix: 'transformer.', underscore: false, names: 'diffusers', down: 'lora_A.weight', up: 'lora_B.weight', alpha: false },
  onetrainer: { prefix: 'lora_transformer_', underscore: true, names: 'diffusers', down: 'lora_down.weight', up: 'lora_up.weight', alpha: true },
};

const TE_PREFIX: Record<Exclude<SampleFormat, 'xlabs'>, { prefix: string; underscore: boolean }> = {
  kohya: { prefix: 'lora_te1_', underscore: true },
  onetrainer: { prefix: 'lora_te1_', underscore: true },
  comfyui: { prefix: 'text_encoders.clip_l.transformer.', underscore: false },
  diffusers: { prefix: 'text_encoder.', underscore: false },
  aitoolkit: { prefix: 'text_encoder.', underscore: false },
};

/**
 * Key → shape of a sample LoRA: the default modules each trainer targets, the Linears of the 19
 * double and 38 single blocks (kohya: 304 fused modules; diffusers/ai-toolkit: 494 split ones,
 * 14 per double and 6 per single block; x-flux: qkv and proj of each stream, 152).
 */
export function sampleKeyShapes(opts: SampleLoraOptions): KeyShapes {
  const rank = opts.rank ?? 4;
  const factor = opts.factor ?? 64;
  const nDouble = opts.blocks?.double ?? 19;
  const nSingle = opts.blocks?.single ?? 38;
  const dim = (e: DimExpr) => dimValue(e, factor);
  const out: KeyShapes = {};
  const blockCount = (m: FluxModule) => (m.group === 'double' ? nDouble : nSingle);
  if (opts.format === 'xlabs') {
    const h = dim('h');
    for (const a of FLUX_ALIASES.filter((x) => x.layout === 'xlabs')) {
      const target = FLUX_MODULES.find((m) => m.original === a.original)!;
      const rows = a.rows ? (a.rows.len as number) * h : dim(target.shape[0]!);
      for (let i = 0; i < blockCount(target); i++) {
        const name = fillIndex(a.name, i);
        out[`${name}.down.weight`] = [rank, dim(target.shape[1]!)];
        out[`${name}.up.weight`] = [rows, rank];
      }
    }
    return out;
  }
  const n = NAMING[opts.format];
  const spell = (name: string, underscore: boolean) => (underscore ? name.replaceAll('.', '_') : name);
  const add = (module: string, rows: number, cols: number, underscore = n.underscore, prefix = n.prefix) => {
    const base = prefix + spell(module, underscore);
    out[`${base}.${n.down}`] = [rank, cols];
    out[`${base}.${n.up}`] = [rows, rank];
    if (n.alpha) out[`${base}.alpha`] = [];
  };
  for (const m of FLUX_MODULES) {
    if (m.kind !== 'linear' || (m.group !== 'double' && m.group !== 'single')) continue;
    for (let i = 0; i < blockCount(m); i++) {
      const cols = dim(m.shape[1]!);
      if (n.names === 'bfl' || typeof m.diffusers === 'string') {
        add(fillIndex(n.names === 'bfl' ? m.original : (m.diffusers as string), i), dim(m.shape[0]!), cols);
        continue;
      }
      const total = dim(m.shape[0]!);
      const h = dim('h');
      for (const p of m.diffusers) add(fillIndex(p.diffusers, i), p.rows.len === 'rest' ? total - p.rows.start * h : p.rows.len * h, cols);
    }
  }
  if (opts.textEncoder) {
    const te = TEXT_ENCODER_DIMS.clip_l;
    const tp = TE_PREFIX[opts.format];
    const w = (e: 'd' | 'ff') => (e === 'd' ? te.d : te.ff) / factor;
    for (const m of CLIP_MODULES) for (let i = 0; i < te.layers; i++) add(fillIndex(m.path, i), w(m.shape[0]!), w(m.shape[1]!), tp.underscore, tp.prefix);
  }
  return out;
}

/** Metadata the real trainers write, so samples look like their files. */
function sampleMetadata(opts: SampleLoraOptions, rank: number, alpha: number): Record<string, string> {
  switch (opts.format) {
    case 'kohya':
      return { ss_network_module: 'networks.lora_flux', ss_network_dim: String(rank), ss_network_alpha: String(alpha), ss_base_model_version: 'flux1', 'modelspec.architecture': 'flux-1-dev/lora' };
    case 'aitoolkit':
      return { software: JSON.stringify({ name: 'ai-toolkit', repo: 'https://github.com/ostris/ai-toolkit' }), ss_base_model_version: 'flux.1', format: 'pt' };
    case 'diffusers':
      return { format: 'pt' };
    default:
      return {};
  }
}

/** Writes a sample FLUX LoRA in one trainer's layout (deterministic; shapes match `writeFluxCheckpoint` at the same factor). */
export async function writeSampleLora(path: string, opts: SampleLoraOptions): Promise<KeyShapes> {
  const shapes = sampleKeyShapes(opts);
  const rank = opts.rank ?? 4;
  const scale = opts.scale ?? 1;
  const withAlpha = opts.format !== 'xlabs' && NAMING[opts.format].alpha;
  await writeKeyShapes(path, shapes, {
    seed: opts.seed,
    dtype: opts.dtype,
    alpha: (_, r) => scale * r,
    upScale: withAlpha ? 1 : scale,
    metadata: { ...sampleMetadata(opts, rank, scale * rank), ...opts.metadata },
  });
  return shapes;
}

// ---------------------------------------------------------------------------------------------
// Comparing what two sets do to a base model

/**
 * Delta equivalence of two adapter sets (dense f64 ΔW per base weight, via `referenceDeltas`),
 * where a weight one set leaves alone or patches in fewer rows must be all zero in the other
 * (a fused file stores explicit zero rows for parts a split file simply lacks). Also compares DoRA
 * magnitudes per target row range and `reshape` requests, which ΔW does not show.
 */
export async function compareSets(expected: Pick<AdapterSet, 'patches'> | ExpectedDeltas, actual: Pick<AdapterSet, 'patches'>): Promise<{ maxRelError: number; worst: string }> {
  const exp = 'deltas' in expected ? expected : await expectedDeltas(expected);
  const e = exp.deltas;
  const a = await referenceDeltas(actual);
  let maxRel = 0;
  let worst = '';
  const zero = (d: TargetDelta | undefined) => (d ? d.data : new Float64Array(0));
  for (const key of new Set([...e.keys(), ...a.keys()])) {
    const x = e.get(key);
    const y = a.get(key);
    const cols = (x ?? y)!.cols;
    if (x && y && x.cols !== y.cols) throw new Error(`delta for ${key}: ${y.cols} columns but expected ${x.cols}`);
    if (x && y && x.replace !== y.replace) throw new Error(`delta for ${key}: replacement in one set, addition in the other`);
    const xd = zero(x);
    const yd = zero(y);
    let scale = 0;
    let diff = 0;
    for (let i = 0; i < Math.max(xd.length, yd.length); i++) {
      const u = xd[i] ?? 0;
      const v = yd[i] ?? 0;
      scale = Math.max(scale, Math.abs(u));
      diff = Math.max(diff, Math.abs(u - v));
    }
    if (scale === 0 && diff > 0) throw new Error(`delta for ${key}: expected no change, got up to ${diff}`);
    const rel = scale === 0 ? 0 : diff / scale;
    if (rel > maxRel || worst === '') {
      maxRel = Math.max(maxRel, rel);
      worst = `${key} (${cols} cols)`;
    }
  }
  const doraE = exp.dora;
  const doraA = await doraRows(actual.patches);
  for (const key of new Set([...doraE.keys(), ...doraA.keys()])) {
    const x = doraE.get(key);
    const y = doraA.get(key);
    if (!x || !y) throw new Error(`DoRA magnitude for ${key} is ${x ? 'missing from the result' : 'unexpected in the result'}`);
    if (x.axis !== y.axis) throw new Error(`DoRA magnitude for ${key}: axis ${y.axis}, expected ${x.axis}`);
    if (x.values.length !== y.values.length || x.values.some((v, i) => v !== y.values[i])) throw new Error(`DoRA magnitude for ${key} differs`);
  }
  if (reshapes(actual) !== exp.reshapes) throw new Error(`reshape requests differ: ${reshapes(actual)} vs ${exp.reshapes}`);
  return { maxRelError: maxRel, worst };
}

const reshapes = (s: Pick<AdapterSet, 'patches'>) => JSON.stringify(s.patches.filter((p) => p.reshape).map((p) => [p.target, p.reshape]).sort());

/** What `compareSets` compares against, computed once for a set that is compared many times. */
export interface ExpectedDeltas {
  deltas: Map<string, TargetDelta>;
  dora: Map<string, { axis: string; values: number[] }>;
  reshapes: string;
}

export async function expectedDeltas(set: Pick<AdapterSet, 'patches'>): Promise<ExpectedDeltas> {
  return { deltas: await referenceDeltas(set), dora: await doraRows(set.patches), reshapes: reshapes(set) };
}

/** DoRA magnitudes per target, per output row (joined over row slices) or per input column. */
async function doraRows(patches: readonly Patch[]): Promise<Map<string, { axis: string; values: number[] }>> {
  const out = new Map<string, { axis: string; values: number[] }>();
  const sorted = [...patches].filter((p) => p.dora).sort((x, y) => (x.rows?.[0] ?? 0) - (y.rows?.[0] ?? 0));
  for (const p of sorted) {
    const key = `${p.component}:${p.target}${p.dora!.axis === 'in' && p.rows ? `[${p.rows[0]}]` : ''}`;
    const entry = out.get(key) ?? { axis: p.dora!.axis, values: [] };
    entry.values.push(...(await p.dora!.magnitude.f32()));
    out.set(key, entry);
  }
  return out;
}
