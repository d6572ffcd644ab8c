/**
 * Rank resize: each LoRA module replaced by the optimal rank-k factors of its own up@down
 * (exact low-rank SVD, no dense ΔW), k fixed or chosen by retained energy. Strength is preserved:
 * the scale stays as it was and alpha becomes scale·k.
 */
import { patchKey, type AdapterSet, type LoraAdapter, type Patch } from '../adapter/model.ts';
import { ensureBackend } from '../tensor/backend.ts';
import { memoryTensor } from '../tensor/lazy.ts';
import { checkAborted, type OpContext } from '../adapter/context.ts';
import { loraDims } from '../adapter/kinds.ts';
import { plainLora } from '../adapter/tucker.ts';
import { checkRankChoice, energyOf, overallError, truncateProduct, type FitEnergy, type RankChoice } from './lowrank.ts';

export interface ResizeOptions extends RankChoice {
  ctx?: OpContext;
}

export interface ResizedModule {
  module: string;
  fromRank: number;
  toRank: number;
  relError: number;
}

export interface ResizeReport {
  backend: string;
  modules: ResizedModule[];
  /** √(Σ discarded / Σ total) over the resized modules. */
  relError: number;
  /** LoRA modules already at or below the target rank: kept bit-identical. */
  unchanged: string[];
  /** Non-LoRA patches (LoHa, LoKr, full, set), carried over unchanged. */
  passthrough: string[];
}

export async function resizeLora(set: AdapterSet, options: ResizeOptions): Promise<{ set: AdapterSet; report: ResizeReport }> {
  const { ctx } = options;
  checkRankChoice(options, 'resize', true);
  const report: ResizeReport = { backend: await ensureBackend(), modules: [], relError: 0, unchanged: [], passthrough: [] };
  ctx?.log?.(`resize to ${options.rank !== undefined ? `rank ${options.rank}` : ''}${options.rank !== undefined && options.energy !== undefined ? ', ' : ''}${options.energy !== undefined ? `energy ${options.energy}` : ''} on the ${report.backend} backend`);
  const fits: FitEnergy[] = [];
  const patches: Patch[] = [];
  for (const [i, patch] of set.patches.entries()) {
    checkAborted(ctx);
    ctx?.onProgress?.(i, set.patches.length, patch.source.module);
    // a LoCon Tucker core is folded into the down first (resizing the product it makes)
    const adapter = patch.adapter.kind === 'lora' ? plainLora(patch.adapter, patch.source.module) : patch.adapter;
    if (adapter.kind !== 'lora') {
      report.passthrough.push(patch.source.module);
      patches.push(patch);
      continue;
    }
    const { rows, rank, cols } = loraDims(adapter, patch.source.module);
    if (options.energy === undefined && rank <= options.rank!) {
      report.unchanged.push(patch.source.module);
      patches.push(patch);
      continue;
    }
    const fit = await truncateProduct(await adapter.up.f32(), await adapter.down.f32(), rows, rank, cols, { ...options, what: `resize: ${patch.source.module} (${adapter.down.origin})` });
    if (fit.k >= rank) {
      report.unchanged.push(patch.source.module);
      patches.push(patch);
      continue;
    }
    fits.push(energyOf(fit));
    const conv = adapter.down.shape.length === 4;
    const key = patchKey(patch);
    const resized: LoraAdapter = {
      kind: 'lora',
      down: memoryTensor(fit.down, [fit.k, ...adapter.down.shape.slice(1)], adapter.down.dtype, `resized ${key} down`),
      up: memoryTensor(fit.up, conv ? [rows, fit.k, 1, 1] : [rows, fit.k], adapter.up.dtype, `resized ${key} up`),
      alpha: adapter.scale * fit.k,
      scale: adapter.scale,
    };
    patches.push({ ...patch, adapter: resized });
    report.modules.push({ module: patch.source.module, fromRank: rank, toRank: fit.k, relError: fit.relError });
  }
  ctx?.onProgress?.(set.patches.length, set.patches.length);
  report.relError = overallError(fits);
  return { set: { ...set, patches }, report };
}
