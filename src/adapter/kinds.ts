/**
 * What each adapter kind is, in one table: the tensors it carries, which factor's rows are the rank
 * a stored alpha is divided by, how many output rows its ΔW has, and how its Tucker cores fold away.
 * Readers, writers and the operations ask this table instead of spelling the kinds out again.
 */
import type { Adapter, AdapterKind, LoraAdapter } from './model.ts';
import type { LazyTensor } from '../tensor/lazy.ts';
import { foldLoha, foldLokr, plainLora } from './tucker.ts';
import { numel } from '../tensor/lazy.ts';
import { inputError, type LoraflowError } from '../errors.ts';

type Of<K extends AdapterKind> = Extract<Adapter, { kind: K }>;
type Shape = readonly number[];

interface KindSpec<K extends AdapterKind> {
  /** The adapter's tensor fields, in the order files store them. */
  tensors: readonly Exclude<keyof Of<K>, 'kind' | 'alpha' | 'scale'>[];
  /**
   * Fields whose first dimension is the rank (the first one present wins); empty when the scale is
   * not alpha / rank. LoKr: lokr_w2_b before lokr_w1_b, as ComfyUI and LyCORIS read it.
   */
  rankFrom: readonly string[];
  /** Output rows of ΔW. */
  rows(a: Of<K>): number;
  /** The same adapter without Tucker cores, exact up to f32 rounding. */
  fold(a: Of<K>, module: string): Of<K>;
}

const same = <A>(a: A) => a;

export const ADAPTER_KINDS: { readonly [K in AdapterKind]: KindSpec<K> } = {
  lora: { tensors: ['down', 'up', 'mid'], rankFrom: ['down'], rows: (a) => a.up.shape[0]!, fold: plainLora },
  loha: { tensors: ['w1a', 'w1b', 'w2a', 'w2b', 't1', 't2'], rankFrom: ['w1b'], rows: (a) => a.w1a.shape[0]!, fold: foldLoha },
  lokr: {
    tensors: ['w1', 'w1a', 'w1b', 'w2', 'w2a', 'w2b', 't2'],
    rankFrom: ['w2b', 'w1b'],
    rows: (a) => (a.w1 ?? a.w1a)!.shape[0]! * (a.w2 ?? a.w2a)!.shape[0]!,
    fold: foldLokr,
  },
  full: { tensors: ['diff'], rankFrom: [], rows: (a) => a.diff.shape[0] ?? 1, fold: same },
  set: { tensors: ['value'], rankFrom: [], rows: (a) => a.value.shape[0] ?? 1, fold: same },
};

function spec<K extends AdapterKind>(kind: K): KindSpec<K> {
  return ADAPTER_KINDS[kind] as KindSpec<K>;
}

/** The rank from factor shapes alone (a reader has shapes before it has tensors); `shapeOf` maps an adapter field to its shape. */
export function rankFromShapes(kind: AdapterKind, shapeOf: (field: string) => Shape | undefined): number | undefined {
  for (const field of spec(kind).rankFrom) {
    const s = shapeOf(field);
    if (s) return s[0];
  }
  return undefined;
}

/** The rank that a stored alpha is divided by, for the kinds whose scale is alpha / rank. */
export function adapterRank(adapter: Adapter): number | undefined {
  const fields = adapter as unknown as Record<string, { shape: Shape } | undefined>;
  return rankFromShapes(adapter.kind, (f) => fields[f]?.shape);
}

/** The tensors an adapter holds, in the order files store them. */
export function adapterTensors(adapter: Adapter): LazyTensor[] {
  const fields = adapter as unknown as Record<string, LazyTensor | undefined>;
  return spec(adapter.kind).tensors.map((f) => fields[f as string]).filter((t): t is LazyTensor => t !== undefined);
}

/** Output rows of an adapter's ΔW. */
export function adapterRows(adapter: Adapter): number {
  return spec(adapter.kind).rows(adapter as never);
}

/** The same adapter without Tucker cores (LoCon lora_mid, LoHa hada_t1/t2, LoKr lokr_t2); unchanged when it has none. */
export function withoutTucker<A extends Adapter>(adapter: A, module = 'adapter'): A {
  return spec(adapter.kind).fold(adapter as never, module) as A;
}

export function adapterShapeError(module: string, message: string): LoraflowError {
  return inputError('BAD_SHAPES', `${module}: ${message}`);
}

/** A LoRA's rows, rank and input width (conv weights flattened to [out, in·kh·kw]), checked for consistency. */
export function loraDims(adapter: LoraAdapter, module: string): { rows: number; rank: number; cols: number } {
  // a LoCon Tucker core folds into the down (same rank, conv kernel moves into the down)
  if (adapter.mid) return loraDims(plainLora(adapter, module), module);
  const rank = adapterRank(adapter) ?? 0;
  const rows = adapter.up.shape[0] ?? 0;
  if (adapter.down.shape.length < 2 || adapter.up.shape.length < 2 || rank === 0) {
    throw adapterShapeError(module, `down [${adapter.down.shape}] / up [${adapter.up.shape}] are not LoRA factors`);
  }
  if (numel(adapter.up.shape) !== rows * rank) {
    throw adapterShapeError(module, `up [${adapter.up.shape}] does not match the rank ${rank} of down [${adapter.down.shape}]`);
  }
  return { rows, rank, cols: numel(adapter.down.shape) / rank };
}
