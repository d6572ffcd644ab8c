/**
 * The diffusers/PEFT writer (ai-toolkit's layout): `transformer.<diffusers module>.lora_A/lora_B`,
 * no alpha (each module's scale folded into its factors). Fused BFL weights are split into their
 * diffusers parts (down chunked only when the up is verified block-diagonal); the final adaLN's
 * up gets its row halves swapped. PEFT holds plain LoRA (and DoRA per output row) only.
 */
import type { DType } from '../../tensor/dtype.ts';
import type { LazyTensor } from '../../tensor/lazy.ts';
import type { AdapterSet, LoraAdapter } from '../../adapter/model.ts';
import { LoraFormatError } from '../../adapter/errors.ts';
import { familyOf } from '../families.ts';
import { evalWidth, swapsHalvesAt } from '../table/module-table.ts';
import { fillIndex } from '../table/template.ts';
import { fuseLoraPieces, type LoraPiece } from '../fuse.ts';
import { splitLora, type SplitPart } from '../split.ts';
import { reshaped, scaledTensor, swapRowHalves } from '../../adapter/tensor-ops.ts';
import { PEFT_SUFFIX, peftModuleName } from './names.ts';
import { plainLora } from '../../adapter/tucker.ts';
import { foldScale } from './scale.ts';
import type { OutPlan, OutTensor } from './plan.ts';

const CANNOT: Record<string, string> = {
  loha: 'PEFT files hold lora_A/lora_B only, not LoHa (write kohya or comfyui)',
  lokr: 'PEFT files hold lora_A/lora_B only, not LoKr (write kohya or comfyui)',
  full: 'PEFT files hold lora_A/lora_B only, not full diffs (write comfyui)',
  set: 'PEFT files cannot replace a weight (write comfyui)',
};

interface Dest {
  name: string;
  rows: number;
  pieces: LoraPiece[];
}

export async function planSplit(set: AdapterSet, dtype: DType | undefined): Promise<OutPlan> {
  const family = familyOf(set.architecture);
  const table = family?.table;
  const dims = table?.inferDims(set.patches, family!.denoiser);
  const dests = new Map<string, Dest>();
  let chunked = 0;
  let copied = 0;
  const add = (name: string, rows: number, piece: LoraPiece) => {
    const d = dests.get(name) ?? { name, rows, pieces: [] };
    d.pieces.push(piece);
    dests.set(name, d);
  };

  for (const p of set.patches) {
    const where = `${p.target} (${p.source.module})`;
    if (p.adapter.kind !== 'lora') throw new LoraFormatError('INEXPRESSIBLE', `${where}: ${CANNOT[p.adapter.kind]}`, p.source.module);
    if (p.reshape) throw new LoraFormatError('INEXPRESSIBLE', `${where}: needs the base weight widened to [${p.reshape}] (BFL control LoRA), which PEFT files cannot say (write comfyui)`, p.source.module);
    if (p.dora?.axis === 'in') {
      throw new LoraFormatError('INEXPRESSIBLE', `${where}: DoRA magnitude per input column (LyCORIS/OneTrainer dora_scale [1, in]); PEFT's lora_magnitude_vector is per output row (write kohya or comfyui)`, p.source.module);
    }
    // PEFT has no Tucker core: a LoCon lora_mid is folded into the down
    const a = plainLora(p.adapter, p.source.module);
    const path = p.target.slice(0, p.target.lastIndexOf('.'));
    // a component without a module table (text encoders, a UNet) has the same module in both namings
    if (!table || p.component !== family!.denoiser) {
      add(peftModuleName(p.component, path, set.architecture), a.up.shape[0]!, { down: a.down, up: a.up, scale: a.scale, row: 0, dora: p.dora, module: p.source.module });
      continue;
    }
    const t = table.target(p.target);
    if (!t || t.param !== 'weight') throw new LoraFormatError('INEXPRESSIBLE', `${where}: not a ${family!.label} weight diffusers has a name for`, p.source.module);
    const m = t.module;
    if (typeof m.diffusers === 'string') {
      if (p.rows) throw new LoraFormatError('INEXPRESSIBLE', `${where}: a row slice of ${path}, which diffusers does not split`, p.source.module);
      const swap = swapsHalvesAt(m, a.up.shape[0]!, a.down.shape[1], dims?.values.h);
      const up = swap ? swapRowHalves(a.up) : a.up;
      const dora = p.dora && swap ? { axis: p.dora.axis, magnitude: swapRowHalves(reshaped(p.dora.magnitude, [a.up.shape[0]!])) } : p.dora;
      add(peftModuleName(p.component, fillIndex(m.diffusers, t.block), set.architecture), a.up.shape[0]!, { down: a.down, up, scale: a.scale, row: 0, dora, module: p.source.module });
      continue;
    }
    const h = a.down.shape[1]!;
    const start = p.rows?.[0] ?? 0;
    const total = p.rows ? Math.max(evalWidth(m.shape[0]!, dims!.values) ?? 0, start + a.up.shape[0]!) : a.up.shape[0]!;
    const parts: SplitPart[] = m.diffusers.map((x) => ({
      name: peftModuleName(p.component, fillIndex(x.diffusers, t.block), set.architecture),
      start: x.rows.start * h,
      len: x.rows.len === 'rest' ? total - x.rows.start * h : x.rows.len * h,
    }));
    const split = await splitLora(a as LoraAdapter, start, parts, { module: p.source.module, dora: p.dora });
    if (split.chunked) chunked++;
    else if (split.pieces.length > 1) copied++;
    for (const s of split.pieces) add(s.part.name, s.part.len, { down: s.down, up: s.up, scale: s.scale, row: 0, dora: s.dora, module: p.source.module });
  }

  const out: OutTensor[] = [];
  const ranks: number[] = [];
  let rounded = 0;
  const roundedTo = new Set<string>();
  for (const d of dests.values()) {
    const fused = await fuseLoraPieces(d.pieces, d.rows, { name: d.name, dtype });
    if (fused.dora && d.pieces.length > 1) {
      throw new LoraFormatError('INEXPRESSIBLE', `${d.name}: several LoRAs with DoRA on one module`, d.pieces[0]!.module);
    }
    const target = dtype ?? (fused.down.dtype === fused.up.dtype ? fused.down.dtype : 'F32');
    const folded = foldScale(fused.down, fused.up, fused.scale, target);
    if (folded.rounded && target !== 'F32' && target !== 'F64') {
      rounded++;
      roundedTo.add(target);
    }
    out.push({ name: `${d.name}.${PEFT_SUFFIX.down}`, tensor: folded.down });
    out.push({ name: `${d.name}.${PEFT_SUFFIX.up}`, tensor: folded.up });
    if (fused.dora) out.push({ name: `${d.name}.${PEFT_SUFFIX.magnitude}`, tensor: cast(reshaped(fused.dora.magnitude, [d.rows]), dtype) });
    ranks.push(fused.rank);
  }
  const notes: string[] = [];
  if (chunked > 0) notes.push(`${chunked} fused modules had a block-diagonal up: their downs were divided between the parts (rank per part = rank / parts)`);
  if (copied > 0) notes.push(`${copied} fused modules were split by copying the down to each part (their ups are not block-diagonal)`);
  if (rounded > 0) notes.push(`${rounded} modules' scales are not powers of two: folding them into the factors rounded them to ${[...roundedTo].join('/')} (use --dtype f32 to keep them exact)`);
  const assumed = table && dims && table.assumedNote(dims, set.patches);
  if (assumed) notes.push(assumed);
  return { tensors: out, notes, modules: dests.size, ranks, alphas: ranks };
}

function cast(t: LazyTensor, dtype: DType | undefined): LazyTensor {
  return dtype ? scaledTensor(t, 1, dtype) : t;
}
