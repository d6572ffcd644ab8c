/**
 * From grouped keys to patch specifications: which tensors form which adapter, on which target
 * weight and rows. Pure (names and shapes only): detection reports it, the reader fills it with
 * tensors. Row slices are computed from the module's own shapes (h = the fused weight's input width).
 */
import type { AdapterKind, Component, RowSlice } from '../../adapter/model.ts';
import type { Family, TableEntry } from '../family.ts';
import { LoraFormatError } from '../../adapter/errors.ts';
import { rankFromShapes } from '../../adapter/kinds.ts';
import type { KeyGroups, KeyInfo, ModuleKeys } from './group.ts';
import { isResolved, type Layout } from './resolve.ts';
import type { Role } from './roles.ts';
import { swapsHalvesAt, type PartRows } from '../table/module-table.ts';

export interface PatchSpec {
  component: Component;
  target: string;
  rows?: RowSlice;
  kind: AdapterKind;
  /** The tensors the adapter is built from, by role (alpha and DoRA included). */
  tensors: Partial<Record<Role, KeyInfo>>;
  source: { module: string; keys: string[] };
  layout: Layout;
  /** The file stores the row halves in the other order (diffusers `norm_out.linear`): swap on reading. */
  swapHalves: boolean;
  /** The family's module table entry of the target. */
  entry?: TableEntry;
  /** LoRA rank; LoHa/LoKr rank when the factors are decomposed. */
  rank?: number;
  /** A bias delta that passes a `lora_A.bias` through the up matrix (ΔB = scale · up @ a). */
  biasThroughUp?: boolean;
  doraAxis?: 'in' | 'out';
  /** Base weight must be zero-padded to this shape first (BFL control LoRA's wider `img_in`). */
  reshape?: readonly number[];
}

export interface PatchPlan {
  specs: PatchSpec[];
  /** Keys no spec consumed, by name. */
  unknownKeys: string[];
  /** Modules whose tensors do not fit together (their keys are in `unknownKeys` too). */
  problems: LoraFormatError[];
  /** Hidden width of the transformer as the file's shapes give it (undefined if nothing tells). */
  hidden?: number;
}

interface Place {
  component: Component;
  module: string;
  kind: 'linear' | 'norm';
  part?: PartRows;
  swapHalves: boolean;
  entry?: TableEntry;
  layout: Layout;
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Where a module lands: the family places it; without a family (or its names) the target keeps the file's module path. */
function placeOf(mod: ModuleKeys, family: Family | undefined): Place | undefined {
  const r = mod.resolved;
  if (family?.place) {
    const p = family.place(r);
    return p && { ...p, swapHalves: p.swapHalves ?? false, layout: r.layout };
  }
  if (isResolved(r) && r.component !== 'transformer' && r.component !== 'unet') {
    return { component: r.component, module: r.module, kind: r.kind, swapHalves: false, layout: r.layout };
  }
  return generic(mod, family);
}

function generic(mod: ModuleKeys, family: Family | undefined): Place {
  const r = mod.resolved;
  const rest = isResolved(r) ? mod.name : r.rest;
  const g = isResolved(r) ? 'denoiser' : r.generic;
  const component: Component = g === 'denoiser' ? (family?.denoiser ?? 'transformer') : g;
  return { component, module: rest, kind: 'linear', swapHalves: false, layout: r.layout };
}

/** [out, in] of an adapter's ΔW from its factor shapes. */
export function adapterDims(kind: AdapterKind, t: Partial<Record<Role, KeyInfo>>): { out: number; in?: number } {
  switch (kind) {
    case 'lora':
      return { out: t.up!.shape[0]!, in: numel(t.down!.shape) / t.down!.shape[0]! };
    case 'loha':
      return { out: t.hada_w1_a!.shape[0]!, in: t.hada_w1_b!.shape[1] };
    case 'lokr': {
      const w1 = [t.lokr_w1?.shape[0] ?? t.lokr_w1_a!.shape[0]!, t.lokr_w1?.shape[1] ?? t.lokr_w1_b!.shape[1]!];
      const w2 = [t.lokr_w2?.shape[0] ?? t.lokr_w2_a!.shape[0]!, t.lokr_w2?.shape[1] ?? t.lokr_w2_b!.shape[1]!];
      return { out: w1[0]! * w2[0]!, in: w1[1]! * w2[1]! };
    }
    case 'full': {
      if (t.down_bias) return { out: t.up!.shape[0]! };
      const s = (t.diff ?? t.diff_b ?? t.up_bias)!.shape;
      return { out: s[0] ?? 1, in: s.length > 1 ? numel(s) / s[0]! : undefined };
    }
    case 'set':
      return { out: t.set!.shape[0] ?? 1 };
  }
}

/** The first adapter a module's keys form, with the roles it consumes. */
function primaryAdapter(keys: Map<Role, KeyInfo>): { kind: 'lora' | 'loha' | 'lokr'; roles: Role[] } | undefined {
  const has = (r: Role) => keys.has(r);
  if (has('down') && has('up')) return { kind: 'lora', roles: ['down', 'up', 'mid'] };
  if (has('hada_w1_a') && has('hada_w1_b') && has('hada_w2_a') && has('hada_w2_b')) {
    return { kind: 'loha', roles: ['hada_w1_a', 'hada_w1_b', 'hada_w2_a', 'hada_w2_b', 'hada_t1', 'hada_t2'] };
  }
  if ((has('lokr_w1') || (has('lokr_w1_a') && has('lokr_w1_b'))) && (has('lokr_w2') || (has('lokr_w2_a') && has('lokr_w2_b')))) {
    return { kind: 'lokr', roles: ['lokr_w1', 'lokr_w1_a', 'lokr_w1_b', 'lokr_w2', 'lokr_w2_a', 'lokr_w2_b', 'lokr_t2'] };
  }
  return undefined;
}

/** The key role of each adapter field a rank is read from (the adapter layer names fields; files name roles). */
const RANK_ROLES: Partial<Record<AdapterKind, Record<string, Role>>> = {
  lora: { down: 'down' },
  loha: { w1b: 'hada_w1_b' },
  lokr: { w1b: 'lokr_w1_b', w2b: 'lokr_w2_b' },
};

function rankOf(kind: AdapterKind, t: Partial<Record<Role, KeyInfo>>): number | undefined {
  const roles = RANK_ROLES[kind];
  return rankFromShapes(kind, (field) => (roles?.[field] ? t[roles[field]]?.shape : undefined));
}

function doraAxis(stored: readonly number[], dims: { out: number; in?: number }, module: string): 'in' | 'out' {
  // PEFT lora_magnitude_vector [out]; LyCORIS dora_scale [out, 1] (wd_on_out) or [1, in], conv modules with singleton kernel dims
  const shape = stored.length > 2 && stored.slice(2).every((d) => d === 1) ? stored.slice(0, 2) : stored;
  if (shape.length === 2 && shape[1] === 1 && shape[0] === dims.out) return 'out';
  if (shape.length === 2 && shape[0] === 1 && shape[1] === dims.in) return 'in';
  if (shape.length === 1 && shape[0] === dims.out) return 'out';
  throw new LoraFormatError('BAD_SHAPES', `${module}: DoRA magnitude of shape [${shape}] fits neither the ${dims.out} output rows nor the ${dims.in} input columns`, module);
}

/** Hidden width from any table module whose input is the hidden state (its down's input width). */
function inferHidden(groups: KeyGroups): number | undefined {
  for (const m of groups.modules) {
    const r = m.resolved;
    if (!isResolved(r) || !r.entry || r.entry.module.shape[1] !== 'h') continue;
    const w = m.keys.get('down') ?? m.keys.get('diff');
    if (w && w.shape.length === 2) return w.shape[1];
  }
  return undefined;
}

function rowsOf(place: Place, dims: { out: number; in?: number }, hidden: number | undefined, isWeight: boolean, module: string): RowSlice | undefined {
  const part = place.part;
  if (!part) return undefined;
  // a part of a fused weight whose input is the hidden state (FLUX q, k, v, mlp) tells h by its input width
  let h = isWeight && place.entry?.module.shape[1] === 'h' ? dims.in : undefined;
  if (h === undefined && typeof part.len === 'number') h = dims.out / part.len;
  h ??= hidden;
  if (h === undefined || !Number.isInteger(h) || h <= 0) {
    throw new LoraFormatError('BAD_SHAPES', `${module}: cannot tell the hidden width needed to place this part of ${place.module}`, module);
  }
  if (typeof part.len === 'number' && dims.out !== part.len * h) {
    throw new LoraFormatError('BAD_SHAPES', `${module}: ${dims.out} output rows, but this part of ${place.module} has ${part.len}×${h}`, module);
  }
  return [part.start * h, typeof part.len === 'number' ? part.len * h : dims.out];
}

export function planPatches(groups: KeyGroups, family: Family | undefined, opts: { control?: boolean } = {}): PatchPlan {
  const specs: PatchSpec[] = [];
  const unknownKeys = [...groups.unparsed];
  const problems: LoraFormatError[] = [];
  const hidden = inferHidden(groups);
  for (const mod of groups.modules) {
    const place = placeOf(mod, family);
    if (!place) {
      unknownKeys.push(...[...mod.keys.values()].map((k) => k.name));
      continue;
    }
    const before = specs.length;
    try {
      planModule(mod, place, hidden, specs, unknownKeys, { control: opts.control ? family?.controlReshape : undefined });
    } catch (e) {
      if (!(e instanceof LoraFormatError)) throw e;
      specs.length = before;
      problems.push(e);
      unknownKeys.push(...[...mod.keys.values()].map((k) => k.name));
    }
  }
  return { specs, unknownKeys, problems, hidden };
}

/** `control`: the module a control LoRA widens (its base weight is zero-padded to the LoRA's shape). */
function planModule(mod: ModuleKeys, place: Place, hidden: number | undefined, specs: PatchSpec[], unknownKeys: string[], opts: { control?: string }): void {
  const used = new Set<Role>();
  const take = (roles: readonly Role[]) => {
    const t: Partial<Record<Role, KeyInfo>> = {};
    for (const r of roles) {
      const k = mod.keys.get(r);
      if (k) {
        t[r] = k;
        used.add(r);
      }
    }
    return t;
  };
  const weightTarget = place.kind === 'norm' ? `${place.module}.scale` : `${place.module}.weight`;
  const biasTarget = `${place.module}.bias`;
  const push = (kind: AdapterKind, target: string, tensors: Partial<Record<Role, KeyInfo>>, extra: Partial<PatchSpec> = {}) => {
    const isWeight = target === weightTarget;
    const dims = adapterDims(kind, tensors);
    // a table weight with shape variants swaps by its row count (SD3's last context adaLN [2h, h], not the [6h, h] of the others)
    const swapHalves = place.swapHalves && (!place.entry || swapsHalvesAt(place.entry.module, dims.out, isWeight ? dims.in : undefined, hidden));
    if (swapHalves && dims.out % 2 !== 0) {
      throw new LoraFormatError('BAD_SHAPES', `${mod.name}: ${dims.out} rows cannot be split into (scale, shift) halves`, mod.name);
    }
    specs.push({
      component: place.component,
      target,
      rows: place.kind === 'norm' ? undefined : rowsOf(place, dims, hidden, isWeight, mod.name),
      kind,
      tensors,
      source: { module: mod.name, keys: Object.values(tensors).map((k) => k!.name) },
      layout: place.layout,
      swapHalves,
      entry: place.entry,
      rank: rankOf(kind, tensors),
      ...extra,
    });
  };

  const primary = place.kind === 'linear' ? primaryAdapter(mod.keys) : undefined;
  if (!primary && place.kind === 'linear') checkComplete(mod);
  if (primary) {
    const tensors = take([...primary.roles, 'alpha']);
    const dims = adapterDims(primary.kind, tensors);
    if (primary.kind === 'lora') checkLoraShapes(tensors, mod.name);
    const magnitude = take(['dora', 'magnitude']);
    const dora = magnitude.dora ?? magnitude.magnitude;
    if (magnitude.dora && magnitude.magnitude) used.delete('magnitude');
    if (dora) tensors[magnitude.dora ? 'dora' : 'magnitude'] = dora;
    const alpha = tensors.alpha;
    if (alpha && numel(alpha.shape) !== 1) {
      throw new LoraFormatError('BAD_SHAPES', `${mod.name}: alpha has shape [${alpha.shape}], expected a single value`, mod.name);
    }
    const reshapeKey = take(['reshape']).reshape;
    if (reshapeKey) tensors.reshape = reshapeKey;
    const reshape = opts.control && place.entry?.module.original === opts.control && primary.kind === 'lora' ? [dims.out, dims.in!] : undefined;
    push(primary.kind, weightTarget, tensors, { doraAxis: dora ? doraAxis(dora.shape, dims, mod.name) : undefined, reshape });
    const downBias = mod.keys.get('down_bias');
    if (downBias && primary.kind === 'lora') {
      used.add('down_bias');
      push('full', biasTarget, { up: tensors.up, down_bias: downBias, ...(alpha ? { alpha } : {}) }, { biasThroughUp: true, rank: undefined });
    }
  }
  const upBias = mod.keys.get('up_bias');
  if (upBias && place.kind === 'linear') push('full', biasTarget, take(['up_bias']));
  if (mod.keys.has('diff')) {
    const t = take(['diff']);
    push('full', weightTarget, t);
  }
  if (mod.keys.has('diff_b') && place.kind === 'linear') push('full', biasTarget, take(['diff_b']));
  if (mod.keys.has('set')) push('set', weightTarget, take(['set']));
  for (const [role, k] of mod.keys) if (!used.has(role)) unknownKeys.push(k.name);
}

/** The factor sets a module may hold, and what each needs to be complete. */
const FACTOR_SETS: readonly { kind: string; roles: readonly Role[]; complete: (has: (r: Role) => boolean) => boolean }[] = [
  { kind: 'LoRA', roles: ['down', 'up', 'mid', 'down_bias'], complete: (has) => has('down') && has('up') },
  { kind: 'LoHa', roles: ['hada_w1_a', 'hada_w1_b', 'hada_w2_a', 'hada_w2_b', 'hada_t1', 'hada_t2'], complete: (has) => ['hada_w1_a', 'hada_w1_b', 'hada_w2_a', 'hada_w2_b'].every((r) => has(r as Role)) },
  {
    kind: 'LoKr',
    roles: ['lokr_w1', 'lokr_w1_a', 'lokr_w1_b', 'lokr_w2', 'lokr_w2_a', 'lokr_w2_b', 'lokr_t2'],
    complete: (has) => (has('lokr_w1') || (has('lokr_w1_a') && has('lokr_w1_b'))) && (has('lokr_w2') || (has('lokr_w2_a') && has('lokr_w2_b'))),
  },
];

/** What a role is called in messages (the spellings differ by trainer). */
const ROLE_LABEL: Partial<Record<Role, string>> = {
  down: 'down factor (lora_down / lora_A)',
  up: 'up factor (lora_up / lora_B)',
  mid: 'Tucker core (lora_mid)',
  down_bias: 'lora_A bias',
};

/**
 * A module holding part of a factor set and no complete adapter (a lora_down without its lora_up,
 * three of LoHa's four factors) is half an adapter: it changes nothing usable, so it is an error
 * naming the module and what is missing, not a key quietly left over.
 */
function checkComplete(mod: ModuleKeys): void {
  const has = (r: Role) => mod.keys.has(r);
  for (const set of FACTOR_SETS) {
    const present = set.roles.filter(has);
    if (present.length === 0 || set.complete(has)) continue;
    const needed = set.kind === 'LoRA' ? (['down', 'up'] as Role[]) : set.kind === 'LoHa' ? (['hada_w1_a', 'hada_w1_b', 'hada_w2_a', 'hada_w2_b'] as Role[]) : undefined;
    const missing = needed ? needed.filter((r) => !has(r)).map((r) => ROLE_LABEL[r] ?? r) : ['lokr_w1 (or lokr_w1_a + lokr_w1_b) and lokr_w2 (or lokr_w2_a + lokr_w2_b)'];
    const keys = present.map((r) => mod.keys.get(r)!.name);
    throw new LoraFormatError(
      'INCOMPLETE',
      `${mod.name}: incomplete ${set.kind} module: it has ${keys.join(', ')} but no ${missing.join(' and no ')}, so it changes nothing usable`,
      mod.name,
    );
  }
}

function checkLoraShapes(t: Partial<Record<Role, KeyInfo>>, module: string): void {
  const down = t.down!.shape;
  const up = t.up!.shape;
  // linear: down [r, in], up [out, r]; conv: down [r, in, kh, kw], up [out, r, 1, 1]
  if (down.length !== 2 && down.length !== 4) {
    throw new LoraFormatError('BAD_SHAPES', `${module}: down ${t.down!.name} has shape [${down}] (${down.length}-D); a LoRA down is [rank, in] (linear) or [rank, in, kh, kw] (conv)`, module);
  }
  if ((up.length !== 2 && up.length !== 4) || (up.length === 4 && (up[2] !== 1 || up[3] !== 1))) {
    throw new LoraFormatError('BAD_SHAPES', `${module}: up ${t.up!.name} has shape [${up}] (${up.length}-D); a LoRA up is [out, rank] (linear) or [out, rank, 1, 1] (conv)`, module);
  }
  if (up[1] !== down[0]) {
    throw new LoraFormatError('BAD_SHAPES', `${module}: down [${down}] and up [${up}] do not form a LoRA (rank ${down[0]} vs ${up[1]})`, module);
  }
}
