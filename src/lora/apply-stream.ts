/**
 * One checkpoint file through applyToBase, as a pipeline: while tensor i is computed (in row
 * chunks, on the compute pool), tensor i+1 is being read and tensor i−1 written. Memory holds
 * about two inputs and two outputs of the largest tensor, whatever the file size.
 *
 * Weights with only LoRA patches take the fast path: ΔW per row chunk from stacked factors, added
 * and encoded in one pass. Weights with DoRA, replacements or other adapter kinds are decoded
 * whole and patched in f32 (apply-tensor.ts), then encoded the same way.
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { SafetensorsWriter } from '../safetensors/writer.ts';
import type { TensorInfo } from '../safetensors/reader.ts';
import { decodeToF32, dtypeBytes, type DType } from '../tensor/dtype.ts';
import type { FilePlan, PlannedPatch } from './apply-plan.ts';
import { patchWeight } from './apply-tensor.ts';
import type { ChunkCounts, ChunkTask, DeltaGroup } from './chunk-task.ts';
import { countNonFiniteStored } from '../tensor/finite.ts';
import type { ComputePool } from './compute-pool.ts';
import { checkAborted, type OpContext } from './context.ts';
import { readFactorPart, stackFactors } from './factors.ts';
import { countOutOfRange, encodeValues } from './fused-codec.ts';
import { matrixOf } from './geometry.ts';
import { seedFromName } from './seed.ts';

/**
 * Values per chunk task: 4 Mi (on a product backend its ΔW is 16 MiB of f32, under the allocator's
 * 32 MiB mmap threshold, so buffers are reused), 1 Mi on more than two threads, whose working sets add up.
 */
const chunkElements = (threads: number) => (threads > 2 ? 1 << 20 : 1 << 22);

export interface StreamOptions {
  pool: ComputePool;
  /** Output dtype per tensor, in file order. */
  outDtypes: readonly DType[];
  stochasticFp8: boolean;
  ctx?: OpContext;
  /** Called after each tensor is handed to the writer. */
  onTensor: (name: string) => void;
}

export interface StreamCounts {
  patched: number;
  converted: number;
  copied: number;
  outOfRange: number;
  /** Written tensors (patched or converted) holding NaN or ±Inf, by name, with how many. */
  nonFinite: { tensor: string; count: number }[];
  bytes: number;
  modules: number;
}

function isFastPath(planned: readonly PlannedPatch[]): boolean {
  return planned.every((p) => p.patch.adapter.kind === 'lora' && !p.patch.adapter.mid && !p.patch.dora);
}

/**
 * Reused buffers for whole tensors. Allocating a fresh buffer per tensor costs a page fault per
 * 4 KiB on first touch (the allocator maps large blocks anew each time), which made a plain
 * read-and-write copy five times slower than cp; a few buffers of the largest tensor's size,
 * reused in turn, avoid that. They are SharedArrayBuffers even without workers: Node reads into
 * and writes from shared memory about twice as fast as from an ordinary ArrayBuffer (measured on
 * this project's VM: a 4.3 GB read-and-write copy took 2.8–3.5 s against 4.8–6.4 s).
 */
class BufferRing {
  private readonly buffers: SharedArrayBuffer[] = [];
  constructor(private readonly count: number, private readonly capacity: number) {}

  /** A view of `length` bytes of buffer `i mod count`. */
  view(i: number, length: number): Uint8Array {
    const k = i % this.count;
    this.buffers[k] ??= new SharedArrayBuffer(this.capacity);
    return new Uint8Array(this.buffers[k]!, 0, length);
  }
}

/** Fills `buf` with the bytes of one tensor (positional reads). */
async function readTensor(handle: FileHandle, dataStart: number, info: TensorInfo, buf: Uint8Array, path: string): Promise<Uint8Array> {
  const length = buf.byteLength;
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(buf, done, Math.min(1 << 30, length - done), dataStart + info.begin + done);
    if (bytesRead === 0) throw new Error(`${path}: unexpected end of file in tensor ${info.name}`);
    done += bytesRead;
  }
  return buf;
}

function sharedCopy(values: Float32Array, shared: boolean): Float32Array {
  if (!shared) return values;
  const out = new Float32Array(new SharedArrayBuffer(values.byteLength));
  out.set(values);
  return out;
}

/**
 * The LoRA patches of one weight stacked into groups over disjoint row ranges (weights and scales
 * folded into the ups): patches whose rows overlap share a group, so every ΔW row comes from one
 * product and each output value is rounded once.
 */
async function deltaGroups(planned: readonly PlannedPatch[], cols: number, shared: boolean): Promise<DeltaGroup[]> {
  const clusters: { rowStart: number; end: number; patches: PlannedPatch[] }[] = [];
  for (const p of [...planned].sort((a, b) => a.rowStart - b.rowStart)) {
    const last = clusters.at(-1);
    if (last && p.rowStart < last.end) {
      last.end = Math.max(last.end, p.rowStart + p.rowLen);
      last.patches.push(p);
    } else clusters.push({ rowStart: p.rowStart, end: p.rowStart + p.rowLen, patches: [p] });
  }
  return Promise.all(
    clusters.map(async ({ rowStart, end, patches }) => {
      const parts = await Promise.all(patches.map((p) => readFactorPart(p.patch, p.weight, rowStart)));
      const s = stackFactors(parts, end - rowStart, cols);
      return { rowStart, rows: end - rowStart, rank: s.rank, up: sharedCopy(s.up, shared), down: sharedCopy(s.down, shared) };
    }),
  );
}

/** base + ΔW (or a plain dtype conversion when `groups` is empty) in row chunks on the pool. */
async function chunked(input: Uint8Array, info: TensorInfo, outDtype: DType, groups: DeltaGroup[], pool: ComputePool, seed: number | undefined, output: Uint8Array): Promise<ChunkCounts> {
  const { rows, cols } = matrixOf(info.shape);
  const inPer = dtypeBytes(info.dtype as DType);
  const outPer = dtypeBytes(outDtype);
  const step = Math.max(1, Math.floor(chunkElements(pool.threads) / Math.max(1, cols)));
  const tasks: ChunkTask[] = [];
  for (let r0 = 0; r0 < rows; r0 += step) {
    const n = Math.min(step, rows - r0);
    tasks.push({
      input: input.subarray(r0 * cols * inPer, (r0 + n) * cols * inPer),
      inDtype: info.dtype as DType,
      output: output.subarray(r0 * cols * outPer, (r0 + n) * cols * outPer),
      outDtype,
      cols,
      rowStart: r0,
      rows: n,
      groups,
      stochasticSeed: seed,
    });
  }
  return (await pool.runAll(tasks)).reduce((a, b) => ({ outOfRange: a.outOfRange + b.outOfRange, nonFinite: a.nonFinite + b.nonFinite }), { outOfRange: 0, nonFinite: 0 });
}

/** Reads, patches, encodes and writes every tensor of `file`, in file order. */
export async function streamFile(file: FilePlan, writer: SafetensorsWriter, opts: StreamOptions): Promise<StreamCounts> {
  const counts: StreamCounts = { patched: 0, converted: 0, copied: 0, outOfRange: 0, nonFinite: [], bytes: 0, modules: 0 };
  const tensors = file.file.tensors;
  const shared = opts.pool.threads > 0;
  const outBytes = (i: number) => (tensors[i]!.end - tensors[i]!.begin) / dtypeBytes(tensors[i]!.dtype as DType) * dtypeBytes(opts.outDtypes[i]!);
  // Three inputs (current, next being read, previous still being written when it was copied
  // through) and two outputs (current, previous being written).
  const inputs = new BufferRing(3, Math.max(0, ...tensors.map((t) => t.end - t.begin)));
  const outputs = new BufferRing(2, Math.max(0, ...tensors.map((_, i) => outBytes(i))));
  const handle = await open(file.in, 'r');
  const load = (i: number) => readTensor(handle, file.file.dataStart, tensors[i]!, inputs.view(i, tensors[i]!.end - tensors[i]!.begin), file.in);
  let next: Promise<Uint8Array> | undefined = tensors.length ? load(0) : undefined;
  let writing: Promise<void> = Promise.resolve();
  try {
    for (const [i, info] of tensors.entries()) {
      checkAborted(opts.ctx);
      const input = await next!;
      next = i + 1 < tensors.length ? load(i + 1) : undefined;
      const out = opts.outDtypes[i]!;
      const planned = file.byKey.get(info.name);
      const seed = opts.stochasticFp8 ? seedFromName(info.name) : undefined;
      let bytes: Uint8Array;
      let nonFinite = 0;
      if (!planned && out === info.dtype) {
        bytes = input;
        counts.copied++;
      } else if (!planned || isFastPath(planned)) {
        const groups = planned ? await deltaGroups(planned, matrixOf(info.shape).cols, shared) : [];
        bytes = outputs.view(i, outBytes(i));
        const c = await chunked(input, info, out, groups, opts.pool, seed, bytes);
        counts.outOfRange += c.outOfRange;
        nonFinite = c.nonFinite;
      } else {
        const w = decodeToF32(input, info.dtype as DType);
        await patchWeight(w, matrixOf(info.shape).cols, planned);
        counts.outOfRange += countOutOfRange(w, out);
        bytes = encodeValues(w, out, { stochasticSeed: seed });
        nonFinite = countNonFiniteStored(bytes, out);
      }
      if (nonFinite > 0) counts.nonFinite.push({ tensor: info.name, count: nonFinite });
      if (planned) {
        counts.patched++;
        counts.modules += planned.length;
      } else if (out !== info.dtype) counts.converted++;
      await writing;
      writing = writer.write(info.name, bytes);
      counts.bytes += bytes.byteLength;
      opts.onTensor(info.name);
    }
    await writing;
  } finally {
    // Let in-flight reads and writes settle before the handle closes (their errors are already reported or moot).
    await Promise.allSettled([next, writing]);
    await handle.close();
  }
  return counts;
}
