/**
 * One checkpoint file (or folder) through applyToBase, as a pipeline: while output tensor i is
 * computed (in row chunks, on the compute pool), tensor i+1 is being read and tensor i−1 written.
 * Memory holds about two inputs and two outputs of the largest tensor, whatever the file size.
 * Each output tensor is read as the row ranges of the input it comes from (src/checkpoint: itself,
 * or the parts of a split or fused weight), so changing the layout costs no extra pass.
 *
 * Weights with only LoRA patches take the fast path: ΔW per row chunk from stacked factors, added
 * and encoded in one pass. Weights with DoRA, replacements or other adapter kinds are decoded
 * whole and patched in f32 (apply-tensor.ts), then encoded the same way. Values stored in an
 * encoding of their own (GGUF block types, scaled fp8) are decoded, patched and encoded again in
 * the same row-chunk tasks on the pool (ggml's reference quantizers; a new fp8 scale, from the
 * row maxima of a first pass), or whole in f32 when patched densely.
 */
import type { CheckpointWriter } from '../checkpoint/form.ts';
import { blockSize, decodeStored, encodeStored, isPlain, storedBytes } from '../checkpoint/encoding.ts';
import type { OutputPlan, OutputTensor } from '../checkpoint/output-plan.ts';
import { chooseScales, decodeScaled, encodeScaled } from '../checkpoint/scaled-fp8.ts';
import { decodeToF32 } from '../tensor/dtype.ts';
import type { Fp8DType } from '../tensor/fp8-round.ts';
import { numel } from '../tensor/lazy.ts';
import type { FilePlan, PlannedPatch } from './apply-plan.ts';
import { patchWeight } from './apply-tensor.ts';
import type { ChunkCounts, ChunkTask, DeltaGroup } from './chunk-task.ts';
import { countNonFinite, countNonFiniteStored } from '../tensor/finite.ts';
import type { ComputePool } from './compute-pool.ts';
import { checkAborted, type OpContext } from '../adapter/context.ts';
import { readFactorPart, stackFactors } from './factors.ts';
import { countOutOfRange, encodeValues } from '../tensor/fused-codec.ts';
import { matrixOf } from './geometry.ts';
import { seedFromName } from './seed.ts';
import { changeNorm2, groupsNorm2, storedNorm2, type TensorChange } from './change-norms.ts';

/**
 * Values per chunk task: 4 Mi (on a product backend its ΔW is 16 MiB of f32, under the allocator's
 * 32 MiB mmap threshold, so buffers are reused), 1 Mi on more than two threads, whose working sets add up.
 */
const chunkElements = (threads: number) => (threads > 2 ? 1 << 20 : 1 << 22);

export interface StreamOptions {
  pool: ComputePool;
  /** Patches per output tensor, in output coordinates (apply-layout.ts). */
  patches: ReadonlyMap<string, readonly PlannedPatch[]>;
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
  /** ‖W‖ and ‖ΔW‖ of every patched tensor (change-norms.ts), for "what an apply changed". */
  changes: TensorChange[];
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

/**
 * One reused Float32Array in shared memory (workers compute into it without copies), grown when a
 * larger tensor comes: for values decoded from an encoding of their own.
 */
class FloatScratch {
  private buffer = new Float32Array(new SharedArrayBuffer(0));
  take(count: number): Float32Array {
    if (this.buffer.length < count) this.buffer = new Float32Array(new SharedArrayBuffer(count * 4));
    return this.buffer.subarray(0, count);
  }
}

function bytesOf(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

function sumOfSquares(values: Float32Array): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i]! * values[i]!;
  return s;
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

/** What a chunk task adds beyond the bytes (chunk-task.ts): scales of a scaled fp8 tensor (one, or one per row), norms, row maxima. */
interface ChunkExtras {
  inScale?: Float32Array;
  outScale?: Float32Array;
  norms?: boolean;
  amax?: boolean;
}

/** A per-row scale's rows [r0, r0 + n) (a copy: it is posted to a worker); a single scale as it is. */
const scaleRows = (scale: Float32Array | undefined, r0: number, n: number) => (scale && scale.length > 1 ? scale.slice(r0, r0 + n) : scale);

/**
 * base + ΔW (or a plain conversion when `groups` is empty) in row chunks on the pool, in any stored
 * encoding: rows of a ggml block type are whole blocks (else the tensor is one task). Counts are
 * summed, Σ base² too, and the row maxima come back in row order.
 */
async function chunked(input: Uint8Array, shape: readonly number[], inDtype: string, outDtype: string, groups: DeltaGroup[], pool: ComputePool, seed: number | undefined, output: Uint8Array, extras: ChunkExtras = {}): Promise<ChunkCounts> {
  const { rows, cols } = matrixOf(shape);
  const inRow = storedBytes(inDtype, cols);
  const outRow = storedBytes(outDtype, cols);
  const whole = cols % blockSize(inDtype) !== 0 || cols % blockSize(outDtype) !== 0;
  const step = whole ? Math.max(1, rows) : Math.max(1, Math.floor(chunkElements(pool.threads) / Math.max(1, cols)));
  const tasks: ChunkTask[] = [];
  for (let r0 = 0; r0 < rows; r0 += step) {
    const n = Math.min(step, rows - r0);
    tasks.push({
      input: whole ? input : input.subarray(r0 * inRow, (r0 + n) * inRow),
      inDtype,
      output: whole ? output : output.subarray(r0 * outRow, (r0 + n) * outRow),
      outDtype,
      cols,
      rowStart: r0,
      rows: n,
      groups,
      stochasticSeed: seed,
      inScale: scaleRows(extras.inScale, r0, n),
      outScale: scaleRows(extras.outScale, r0, n),
      norms: extras.norms,
      amax: extras.amax,
    });
  }
  const results = await pool.runAll(tasks);
  const amax = extras.amax ? new Float32Array(rows) : undefined;
  results.forEach((c, k) => amax?.set(c.amax!, tasks[k]!.rowStart));
  return {
    outOfRange: results.reduce((a, c) => a + c.outOfRange, 0),
    nonFinite: results.reduce((a, c) => a + c.nonFinite, 0),
    base2: extras.norms ? results.reduce((a, c) => a + c.base2!, 0) : undefined,
    amax,
  };
}

/** What one output tensor came to. */
interface Computed {
  bytes: Uint8Array;
  outOfRange: number;
  nonFinite: number;
  change?: { base2: number; change2: number };
  /** The stored bytes of its new fp8 scale (a scaled output). */
  scale?: Uint8Array;
}

/** Reads, patches, encodes and writes every output tensor of `output`, in its order. */
/**
 * One output file's tensors through the pipeline: reused buffers (three inputs — current, next
 * being read, previous still being written when it was copied through — and two outputs), the
 * read of a tensor's pieces, and the computation of each tensor by the cheapest path that is exact.
 */
class FilePipeline {
  readonly counts: StreamCounts = { patched: 0, converted: 0, copied: 0, outOfRange: 0, nonFinite: [], bytes: 0, modules: 0, changes: [] };
  private readonly view: FilePlan['file'];
  private readonly shared: boolean;
  private readonly inputs: BufferRing;
  private readonly outputs: BufferRing;
  private readonly decoded = new FloatScratch();
  private readonly result = new FloatScratch();
  /** New scales of scaled-fp8 weights, written where the scale tensors come. */
  private readonly scales = new Map<string, Uint8Array>();

  constructor(file: FilePlan, private readonly output: OutputPlan, private readonly opts: StreamOptions) {
    this.view = file.file;
    this.shared = opts.pool.threads > 0;
    this.inputs = new BufferRing(3, Math.max(0, ...output.tensors.map((t) => this.inBytes(t))));
    this.outputs = new BufferRing(2, Math.max(0, ...output.tensors.map((t) => this.outBytes(t))));
  }

  private inBytes(t: OutputTensor): number {
    return t.kind === 'values' ? storedBytes(t.inDtype, numel(t.shape)) : t.kind === 'copy' ? this.view.reader.info(t.of!).byteLength : 0;
  }

  private outBytes(t: OutputTensor): number {
    return t.kind === 'values' ? storedBytes(t.dtype, numel(t.shape)) : 0;
  }

  /** The stored bytes of output tensor i: a copy, or its pieces (row ranges of canonical weights) in place. */
  async load(i: number): Promise<Uint8Array> {
    const { view } = this;
    const t = this.output.tensors[i]!;
    const buf = this.inputs.view(i, this.inBytes(t));
    if (t.kind === 'copy') return view.reader.read(t.of!, buf);
    if (t.kind === 'scale') return buf;
    if (t.pieces.length === 1) {
      const [p] = t.pieces;
      return view.readStored(p!.canonical, buf, p!.canonRow, p!.canonRow === 0 && p!.rows === (view.info(p!.canonical).shape[0] ?? 1) ? undefined : p!.rows);
    }
    const rowBytes = buf.byteLength / (t.shape[0] ?? 1);
    await Promise.all(t.pieces.map((p) => view.readStored(p.canonical, buf.subarray(p.at * rowBytes, (p.at + p.rows) * rowBytes), p.canonRow, p.rows)));
    return buf;
  }

  /**
   * Values stored in an encoding of their own (GGUF block types, scaled fp8, or converted to
   * another dtype), patched by LoRA factors or not: decoded, patched and encoded again on the pool,
   * a row chunk at a time, straight into the output buffer. A scaled output's new scale comes from
   * the patched values' largest magnitude, so those are computed to f32 first (with the row maxima
   * in the same pass), then divided by the stored scale and rounded.
   */
  private async viaF32(i: number, t: OutputTensor, input: Uint8Array, planned: readonly PlannedPatch[] | undefined, seed: number | undefined): Promise<Computed> {
    if (planned && !isFastPath(planned)) return this.denseViaF32(t, input, planned, seed);
    const { pool } = this.opts;
    const cols = matrixOf(t.shape).cols;
    const groups = planned ? await deltaGroups(planned, cols, this.shared) : [];
    const inScale = t.scaleIn ? await this.view.scaleOf(this.view.info(t.pieces[0]!.canonical)) : undefined;
    const extras = { inScale, norms: planned !== undefined };
    const change = (c: ChunkCounts) => (planned ? { base2: c.base2!, change2: groupsNorm2(groups, cols) } : undefined);
    const bytes = this.outputs.view(i, this.outBytes(t));
    if (!t.scaleOut) {
      const c = await chunked(input, t.shape, t.inDtype, t.dtype, groups, pool, seed, bytes, extras);
      return { bytes, outOfRange: c.outOfRange, nonFinite: c.nonFinite, change: change(c) };
    }
    const w = this.result.take(numel(t.shape));
    const c = await chunked(input, t.shape, t.inDtype, 'F32', groups, pool, undefined, bytesOf(w), { ...extras, amax: true });
    const s = chooseScales(c.amax!, t.scaleOut.weight, t.scaleOut.fp8);
    await chunked(bytesOf(w), t.shape, 'F32', t.scaleOut.fp8, [], pool, seed, bytes, { outScale: s.scales });
    return { bytes, outOfRange: 0, nonFinite: c.nonFinite, change: change(c), scale: s.scale };
  }

  /** Values stored in an encoding of their own, patched densely (DoRA, replacements, other kinds): decoded whole to f32, patched, encoded again. */
  private async denseViaF32(t: OutputTensor, input: Uint8Array, planned: readonly PlannedPatch[], seed: number | undefined): Promise<Computed> {
    const n = numel(t.shape);
    const { rows, cols } = matrixOf(t.shape);
    const base = this.decoded.take(n);
    const scale = t.scaleIn ? await this.view.scaleOf(this.view.info(t.pieces[0]!.canonical)) : undefined;
    if (scale) decodeScaled(input, t.inDtype as Fp8DType, scale, rows, base);
    else decodeStored(t.inDtype, input, base);
    const w = this.result.take(n);
    w.set(base);
    await patchWeight(w, cols, planned);
    const change = { base2: sumOfSquares(base), change2: changeNorm2(w, bytesOf(base), 'F32') };
    if (t.scaleOut) {
      const nonFinite = countNonFinite(w);
      const e = encodeScaled(w, rows, t.scaleOut.weight, t.scaleOut.fp8, seed, { inPlace: true });
      return { bytes: e.bytes, outOfRange: 0, nonFinite, change, scale: e.scale };
    }
    if (isPlain(t.dtype)) {
      const bytes = encodeValues(w, t.dtype, { stochasticSeed: seed });
      return { bytes, outOfRange: countOutOfRange(w, t.dtype), nonFinite: countNonFiniteStored(bytes, t.dtype), change };
    }
    return { bytes: encodeStored(t.dtype, w), outOfRange: 0, nonFinite: countNonFinite(w), change };
  }

  /** Output tensor i from its input bytes: copied, re-encoded, or patched (fast low-rank path on the pool, else in f32). */
  async compute(i: number, t: OutputTensor, input: Uint8Array, planned: readonly PlannedPatch[] | undefined): Promise<Computed> {
    const seed = this.opts.stochasticFp8 ? seedFromName(t.name) : undefined;
    if (t.kind === 'scale') return { bytes: this.scales.get(t.of!) ?? (await this.view.reader.read(t.name)), outOfRange: 0, nonFinite: 0 };
    if (t.kind === 'copy' || (!planned && t.dtype === t.inDtype && (!t.scaleIn || this.output.scaled))) {
      this.counts.copied++;
      return { bytes: input, outOfRange: 0, nonFinite: 0 };
    }
    if (!isPlain(t.inDtype) || !isPlain(t.dtype) || t.scaleIn || t.scaleOut) {
      const done = await this.viaF32(i, t, input, planned, seed);
      if (done.scale) this.scales.set(t.name, done.scale);
      return done;
    }
    if (!planned || isFastPath(planned)) {
      const cols = matrixOf(t.shape).cols;
      const groups = planned ? await deltaGroups(planned, cols, this.shared) : [];
      const bytes = this.outputs.view(i, this.outBytes(t));
      // ‖W‖ of a bf16 / f32 base is taken here while the pool computes (the base bytes are only
      // read); other dtypes are decoded by the tasks anyway, which sum it on the way
      const inTasks = planned !== undefined && t.inDtype !== 'BF16' && t.inDtype !== 'F32';
      const pending = chunked(input, t.shape, t.inDtype, t.dtype, groups, this.opts.pool, seed, bytes, { norms: inTasks });
      const base2 = planned && !inTasks ? storedNorm2(input, t.inDtype) : 0;
      const c = await pending;
      const change = planned ? { base2: inTasks ? c.base2! : base2, change2: groupsNorm2(groups, cols) } : undefined;
      return { bytes, outOfRange: c.outOfRange, nonFinite: c.nonFinite, change };
    }
    const w = decodeToF32(input, t.inDtype);
    const base2 = storedNorm2(input, t.inDtype);
    await patchWeight(w, matrixOf(t.shape).cols, planned);
    const change = { base2, change2: changeNorm2(w, input, t.inDtype) };
    const bytes = encodeValues(w, t.dtype, { stochasticSeed: seed });
    return { bytes, outOfRange: countOutOfRange(w, t.dtype), nonFinite: countNonFiniteStored(bytes, t.dtype), change };
  }

  /** What one written tensor adds to the counts. */
  tally(t: OutputTensor, input: Uint8Array, planned: readonly PlannedPatch[] | undefined, done: Computed): void {
    const { counts } = this;
    counts.outOfRange += done.outOfRange;
    if (done.nonFinite > 0) counts.nonFinite.push({ tensor: t.name, count: done.nonFinite });
    if (planned) {
      counts.patched++;
      counts.modules += planned.length;
      const { component, target } = planned[0]!.patch;
      if (done.change) counts.changes.push({ tensor: t.name, component, target, baseNorm: Math.sqrt(done.change.base2), changeNorm: Math.sqrt(done.change.change2) });
    } else if (t.kind === 'values' && done.bytes !== input) counts.converted++;
    counts.bytes += done.bytes.byteLength;
  }
}

export async function streamFile(file: FilePlan, output: OutputPlan, writer: CheckpointWriter, opts: StreamOptions): Promise<StreamCounts> {
  const pipeline = new FilePipeline(file, output, opts);
  const tensors = output.tensors;
  let next: Promise<Uint8Array> | undefined = tensors.length ? pipeline.load(0) : undefined;
  let writing: Promise<void> = Promise.resolve();
  try {
    for (const [i, t] of tensors.entries()) {
      checkAborted(opts.ctx);
      const input = await next!;
      next = i + 1 < tensors.length ? pipeline.load(i + 1) : undefined;
      const planned = t.kind === 'values' ? opts.patches.get(t.name) : undefined;
      const done = await pipeline.compute(i, t, input, planned);
      pipeline.tally(t, input, planned, done);
      await writing;
      writing = writer.write(t.name, done.bytes);
      opts.onTensor(t.name);
    }
    await writing;
  } finally {
    // Let in-flight reads and writes settle (their errors are already reported or moot).
    await Promise.allSettled([next, writing]);
  }
  return pipeline.counts;
}
