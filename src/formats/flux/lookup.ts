/**
 * From a canonical target (`double_blocks.3.img_attn.qkv.weight`) back to its FLUX module table
 * entry and block index, and the widths a set's own shapes give (hidden, mlp).
 */
import type { LoraAdapter, Patch } from '../model.ts';
import { FLUX_MODULES, type DimExpr, type FluxModule } from './modules.ts';

export interface FluxTarget {
  module: FluxModule;
  block?: number;
  /** The module path (target without `.weight` / `.bias` / `.scale`). */
  path: string;
  param: 'weight' | 'bias' | 'scale';
}

const TARGETS = FLUX_MODULES.map((m) => ({
  m,
  re: new RegExp(`^${m.bfl.replace(/\./g, '\\.').replace('{i}', '(\\d+)')}\\.(weight|bias|scale)$`),
}));

export function fluxTarget(target: string): FluxTarget | undefined {
  for (const { m, re } of TARGETS) {
    const hit = re.exec(target);
    if (!hit) continue;
    const hasIndex = m.bfl.includes('{i}');
    return {
      module: m,
      block: hasIndex ? Number(hit[1]) : undefined,
      path: target.slice(0, target.lastIndexOf('.')),
      param: hit[hasIndex ? 2 : 1] as FluxTarget['param'],
    };
  }
  return undefined;
}

export interface SetDims {
  hidden?: number;
  mlp?: number;
  /** The mlp width was not in the file and FLUX's mlp_ratio (4) was assumed. */
  mlpAssumed: boolean;
}

/** Output rows and input width of a patch's ΔW from its factor shapes (LoRA only; others report undefined). */
function loraShape(a: LoraAdapter): [number, number] {
  return [a.up.shape[0]!, a.down.shape[1]!];
}

/** hidden and mlp widths from whatever modules the set patches (never FLUX.1's numbers). */
export function inferDims(patches: readonly Patch[]): SetDims {
  let hidden: number | undefined;
  let mlp: number | undefined;
  for (const p of patches) {
    if (p.component !== 'transformer' || p.adapter.kind !== 'lora') continue;
    const t = fluxTarget(p.target);
    if (!t || t.param !== 'weight') continue;
    const [out, inp] = loraShape(p.adapter);
    const [outExpr, inExpr] = t.module.shape;
    if (inExpr === 'h') hidden ??= inp;
    if (outExpr === 'mlp' && !p.rows) mlp ??= out;
    if (inExpr === 'mlp') mlp ??= inp;
  }
  for (const p of patches) {
    if (hidden === undefined || mlp !== undefined || p.adapter.kind !== 'lora') continue;
    const t = fluxTarget(p.target);
    if (!t || t.param !== 'weight') continue;
    const [out, inp] = loraShape(p.adapter);
    if (t.module.shape[1] === 'h+mlp') mlp = inp - hidden;
    else if (t.module.shape[0] === '3h+mlp' && !p.rows) mlp = out - 3 * hidden;
    else if (t.module.shape[0] === '3h+mlp' && p.rows && p.rows[0] === 3 * hidden) mlp = out;
  }
  if (hidden !== undefined && mlp === undefined) return { hidden, mlp: 4 * hidden, mlpAssumed: true };
  return { hidden, mlp, mlpAssumed: false };
}

/** Value of an output-row expression with the set's widths; undefined when it needs a width the set lacks. */
export function rowsOf(expr: DimExpr, dims: SetDims): number | undefined {
  const h = dims.hidden;
  const mlp = dims.mlp;
  if (h === undefined) return undefined;
  const table: Partial<Record<DimExpr, number | undefined>> = {
    h, '2h': 2 * h, '3h': 3 * h, '6h': 6 * h, mlp, 'h+mlp': mlp === undefined ? undefined : h + mlp, '3h+mlp': mlp === undefined ? undefined : 3 * h + mlp,
  };
  return table[expr];
}
