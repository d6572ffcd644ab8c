/**
 * ‖W‖_F of the base weights LoRAs change, for strength relative to the base: each weight is found
 * exactly as an apply would find it (apply-plan.ts: the key prefixes, the family's checkpoint
 * locator, every patch checked against the header), then read once and reduced to per-row sums of
 * squares, so any set of row slices costs nothing more.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AdapterSet, Patch } from '../adapter/model.ts';
import { planApply, type FilePlan } from './apply-plan.ts';
import { matrixOf } from './geometry.ts';
import type { BaseNorm2 } from './block-strength.ts';
import { LoraflowError } from '../errors.ts';

export interface BaseNorms {
  norm2: BaseNorm2;
  close(): Promise<void>;
}

/** Opens `base` for the patches of `sets`; throws (naming module and weight) when a patch does not fit it. */
export async function openBaseNorms(base: string, sets: readonly AdapterSet[]): Promise<BaseNorms> {
  // planApply checks outputs too: a name that is never written (nothing is created here)
  let plan;
  try {
    plan = await planApply({ base, out: join(tmpdir(), `loraflow-base-norms-${process.pid}-unused.safetensors`), loras: sets.map((set) => ({ set, weight: 1 })), ignoreTextEncoders: true });
  } catch (e) {
    if (e instanceof LoraflowError) throw new LoraflowError(e.fault, e.code, `strength relative to ${base}: ${e.message.replace(/^apply: /, '')}`);
    throw e;
  }
  // a patch's place in the base, found by its source (a located patch is a copy with the same source)
  const where = new Map<Patch['source'], { file: FilePlan; key: string; rowStart: number; rowLen: number }>();
  for (const file of plan.files)
    for (const [key, list] of file.byKey) for (const p of list) where.set(p.patch.source, { file, key, rowStart: p.rowStart, rowLen: p.rowLen });
  const rowSums = new Map<string, Promise<Float64Array>>();
  const rowsOf = (file: FilePlan, key: string) => {
    const id = `${file.role}:${key}`;
    let sums = rowSums.get(id);
    if (!sums) {
      sums = file.file.readF32(key).then((w) => {
        const { rows, cols } = matrixOf(file.file.info(key).shape);
        const out = new Float64Array(rows);
        for (let r = 0; r < rows; r++) {
          let s = 0;
          for (let j = r * cols, end = j + cols; j < end; j++) s += w[j]! * w[j]!;
          out[r] = s;
        }
        return out;
      });
      rowSums.set(id, sums);
    }
    return sums;
  };
  return {
    async norm2(_set, patches) {
      const places = patches.map((p) => where.get(p.source));
      const first = places.find((p) => p !== undefined);
      if (!first) return undefined;
      const sums = await rowsOf(first.file, first.key);
      // the union of the rows the patches cover: each base row counted once
      const covered = new Uint8Array(sums.length);
      for (const p of places) if (p && p.key === first.key) covered.fill(1, p.rowStart, p.rowStart + p.rowLen);
      let s = 0;
      for (let r = 0; r < sums.length; r++) if (covered[r]) s += sums[r]!;
      return s;
    },
    async close() {
      rowSums.clear();
      await Promise.all(plan.files.map((f) => f.file.close()));
    },
  };
}
