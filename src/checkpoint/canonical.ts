/**
 * A checkpoint seen under its original (canonical) names, whatever its form: what a LoRA's
 * targets name (`double_blocks.0.img_attn.qkv.weight`, fused, halves in the original order), with
 * the values as the model has them. A diffusers-layout checkpoint's tensors are assembled from
 * their diffusers parts by row ranges (diffusers-names.ts); a scaled fp8 checkpoint's weights are
 * q · scale, its markers and scales hidden; a GGUF's block types are dequantized on read. Every
 * other tensor is itself. Reads go to the stored tensors a row range at a time.
 */
import type { Family } from '../formats/family.ts';
import { numel } from '../tensor/lazy.ts';
import { decodeStored, storedBytes } from './encoding.ts';
import { CheckpointError } from './errors.ts';
import type { CheckpointReader, StoredTensor } from './form.ts';
import { diffusersNamingOf, type DiffusersNaming, type RowMap } from './diffusers-names.ts';
import { openCheckpoint } from './open.ts';
import { decodeScaled, findScaledFp8, type ScaledFp8, type ScaledWeight } from './scaled-fp8.ts';
import type { Fp8DType } from '../tensor/fp8-round.ts';

export type Layout = 'original' | 'diffusers';

export interface CanonicalTensor extends StoredTensor {
  /** Rows of stored tensors it is made of, in its own row order. */
  readonly rows: readonly RowMap[];
  /** It is one stored tensor of the same name, whole. */
  readonly direct: boolean;
  /** Scaled fp8: the stored values times this weight's scale. */
  readonly scale?: ScaledWeight;
}

export class CanonicalView {
  readonly tensors: readonly CanonicalTensor[];
  private readonly byName: Map<string, CanonicalTensor>;

  private constructor(
    readonly reader: CheckpointReader,
    readonly layout: Layout,
    tensors: CanonicalTensor[],
    /** How a diffusers layout's names map onto the original ones (a family's module table, an SD UNet's renames). */
    readonly naming: DiffusersNaming | undefined,
    readonly scaled: ScaledFp8 | undefined,
  ) {
    this.tensors = tensors;
    this.byName = new Map(tensors.map((t) => [t.name, t]));
  }

  static async open(path: string): Promise<CanonicalView> {
    const reader = await openCheckpoint(path);
    try {
      return CanonicalView.of(reader);
    } catch (e) {
      await reader.close();
      throw e;
    }
  }

  /** The canonical view of an open reader (which it then owns: `close` closes it). */
  static of(reader: CheckpointReader): CanonicalView {
    const naming = diffusersNamingOf(reader.tensors);
    const scaled = findScaledFp8(reader.path, reader.tensors);
    if (!naming) {
      const tensors = reader.tensors
        .filter((t) => !scaled?.companions.has(t.name))
        .map((t) => ({ ...t, rows: [{ tensor: t.name, rowStart: 0, rows: t.shape[0] ?? 1, at: 0 }], direct: true, scale: scaled?.weights.get(t.name) }));
      return new CanonicalView(reader, 'original', tensors, undefined, scaled);
    }
    if (scaled) throw new CheckpointError('UNSUPPORTED_FORM', reader.path, `scaled fp8 tensors in diffusers layout (${scaled.markers[0] ?? [...scaled.weights.values()][0]!.scale}) are not supported`);
    const { assembled, other } = naming.originals(reader.path, reader.tensors, (n) => reader.fileOf(n));
    const first = new Map<string, number>(reader.tensors.map((t, i) => [t.name, i]));
    const made: CanonicalTensor[] = [
      ...assembled.map((a) => ({ name: a.name, shape: a.shape, dtype: a.dtype, byteLength: storedBytes(a.dtype, numel(a.shape)), rows: a.rows, direct: false })),
      ...other.map((t) => ({ ...t, rows: [{ tensor: t.name, rowStart: 0, rows: t.shape[0] ?? 1, at: 0 }], direct: true })),
    ];
    const clash = other.find((t) => assembled.some((a) => a.name === t.name));
    if (clash) throw new CheckpointError('BAD_PARTS', reader.fileOf(clash.name), 'is both an original name and one that diffusers tensors assemble into', clash.name);
    const firstRow = (t: CanonicalTensor) => Math.min(...t.rows.map((r) => first.get(r.tensor)!));
    made.sort((a, b) => firstRow(a) - firstRow(b));
    return new CanonicalView(reader, 'diffusers', made, naming, undefined);
  }

  /** The family whose diffusers names a diffusers-layout view was read with. */
  get family(): Family | undefined {
    return this.naming?.family;
  }

  get path(): string {
    return this.reader.path;
  }

  get metadata(): Readonly<Record<string, string>> | undefined {
    return this.reader.metadata;
  }

  get fileSize(): number {
    return this.reader.fileSize;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): CanonicalTensor {
    const t = this.byName.get(name);
    if (!t) throw new CheckpointError('NO_SUCH_TENSOR', this.path, 'no tensor of this name in the checkpoint', name);
    return t;
  }

  /** Bytes of one stored row of a canonical tensor (its stored tensors share the dtype and width). */
  rowBytes(t: CanonicalTensor): number {
    const rows = t.shape[0] ?? 1;
    return rows === 0 ? 0 : t.byteLength / rows;
  }

  /**
   * Stored bytes of rows [rowStart, rowStart + rows) of a canonical tensor (all of it when
   * omitted), gathered from its stored tensors, into `into` when given.
   */
  async readStored(name: string, into?: Uint8Array, rowStart = 0, rows?: number): Promise<Uint8Array> {
    const t = this.info(name);
    const count = rows ?? (t.shape[0] ?? 1) - rowStart;
    const per = this.rowBytes(t);
    const buf = into ?? new Uint8Array(rows === undefined && rowStart === 0 ? t.byteLength : count * per);
    if (t.direct && rowStart === 0 && rows === undefined) return this.reader.read(t.rows[0]!.tensor, buf);
    const end = rowStart + count;
    await Promise.all(
      t.rows.map((r) => {
        const lo = Math.max(rowStart, r.at);
        const hi = Math.min(end, r.at + r.rows);
        if (lo >= hi) return undefined;
        return this.reader.read(r.tensor, buf.subarray((lo - rowStart) * per, (hi - rowStart) * per), r.rowStart + (lo - r.at), hi - lo);
      }),
    );
    return buf;
  }

  /** The scale values of a scaled weight (one, or one per row). */
  async scaleOf(t: CanonicalTensor): Promise<Float32Array | undefined> {
    if (!t.scale) return undefined;
    const info = this.reader.info(t.scale.scale);
    const bytes = await this.reader.read(t.scale.scale);
    return decodeStored(info.dtype, bytes, new Float32Array(numel(info.shape)));
  }

  /** A canonical tensor's stored bytes (from readStored) decoded to the values the model has (dequantized, scaled). */
  async decode(t: CanonicalTensor, bytes: Uint8Array, out: Float32Array): Promise<Float32Array> {
    const scale = await this.scaleOf(t);
    if (scale) return decodeScaled(bytes, t.dtype as Fp8DType, scale, t.shape[0] ?? 1, out);
    return decodeStored(t.dtype, bytes, out);
  }

  /** A canonical tensor's values as the model has them (dequantized, scaled), into `out` when given. */
  async readF32(name: string, out?: Float32Array): Promise<Float32Array> {
    const t = this.info(name);
    const n = numel(t.shape);
    if (out && out.length !== n) throw new RangeError(`${this.path}: tensor "${name}" has ${n} values, the output buffer ${out.length}`);
    return this.decode(t, await this.readStored(name), out ?? new Float32Array(n));
  }

  async close(): Promise<void> {
    await this.reader.close();
  }
}
