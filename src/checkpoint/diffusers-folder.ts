/**
 * A diffusers model folder as a form: `transformer/` (or `unet/`) with
 * `diffusion_pytorch_model-0000N-of-0000M.safetensors` shards and their index, or one unsharded
 * `diffusion_pytorch_model.safetensors`. Opening reads the index and each shard's header (checked
 * against each other, so a missing shard or tensor is refused before anything runs); tensor data
 * is read from a shard only when asked, each shard opened on its first read. The writer stages a
 * whole folder beside the destination (shards, index, config.json) and renames it into place on
 * commit; abort removes it.
 */
import { copyFile, mkdir, open, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { SafetensorsFile } from '../safetensors/reader.ts';
import { SafetensorsWriter } from '../safetensors/writer.ts';
import { staged, stagingPathFor } from '../safetensors/staging.ts';
import { INDEX_NAME, WEIGHTS_NAME, formatIndex, parseIndex } from './diffusers-index.ts';
import { CheckpointError } from './errors.ts';
import type { CheckpointReader, CheckpointWriter, FolderFacts, OutputSpec, StoredTensor } from './form.ts';
import { readFully, rowRange } from './positioned-reader.ts';

/** Subfolders of a pipeline folder that hold its denoiser, in the order they are looked for. */
const MODEL_SUBFOLDERS = ['transformer', 'unet'];

interface Located extends StoredTensor {
  shard: string;
  position: number;
}

async function statOrUndefined(path: string) {
  return stat(path).catch(() => undefined);
}

/** Where a folder's weights are: its index, or its one weights file; a pipeline folder's `transformer/` or `unet/`. */
export async function locateModelFolder(path: string): Promise<{ folder: string; index?: string; single?: string } | undefined> {
  const st = await statOrUndefined(path);
  if (st?.isFile()) {
    if (path.endsWith('.index.json')) return { folder: dirname(path), index: path };
    // diffusers' own unsharded layout: the weights file beside its config.json
    if (basename(path) === WEIGHTS_NAME && (await statOrUndefined(join(dirname(path), 'config.json')))?.isFile()) return { folder: dirname(path), single: path };
    return undefined;
  }
  if (!st?.isDirectory()) return undefined;
  if ((await statOrUndefined(join(path, INDEX_NAME)))?.isFile()) return { folder: path, index: join(path, INDEX_NAME) };
  if ((await statOrUndefined(join(path, WEIGHTS_NAME)))?.isFile()) return { folder: path, single: join(path, WEIGHTS_NAME) };
  for (const sub of MODEL_SUBFOLDERS) {
    const found = (await statOrUndefined(join(path, sub)))?.isDirectory() ? await locateModelFolder(join(path, sub)) : undefined;
    if (found) return found;
  }
  return undefined;
}

export class DiffusersFolderReader implements CheckpointReader {
  readonly container = 'diffusers-folder' as const;
  private readonly byName: Map<string, Located>;
  private readonly handles = new Map<string, Promise<FileHandle>>();

  private constructor(
    readonly path: string,
    readonly dir: string,
    readonly tensors: readonly Located[],
    readonly folder: FolderFacts,
    readonly fileSize: number,
  ) {
    this.byName = new Map(tensors.map((t) => [t.name, t]));
  }

  static async open(path: string): Promise<DiffusersFolderReader> {
    const where = await locateModelFolder(path);
    if (!where) {
      throw new CheckpointError('NOT_A_MODEL_FOLDER', path, `not a diffusers model folder: no ${INDEX_NAME} or ${WEIGHTS_NAME} in it (nor in a ${MODEL_SUBFOLDERS.join('/ or ')}/ subfolder)`);
    }
    const shardTensors = new Map<string, string[]>();
    let indexMetadata: Record<string, unknown> | undefined;
    if (where.index) {
      const index = parseIndex(where.index, await readFile(where.index, 'utf8'));
      indexMetadata = index.metadata;
      for (const [tensor, file] of index.weightMap) shardTensors.set(file, [...(shardTensors.get(file) ?? []), tensor]);
    } else shardTensors.set(basename(where.single!), []);
    const tensors: Located[] = [];
    const shards: { file: string; tensors: string[]; metadata: Readonly<Record<string, string>> | undefined }[] = [];
    let fileSize = 0;
    const indexPath = where.index ?? where.single!;
    for (const file of [...shardTensors.keys()].sort()) {
      const shardPath = join(where.folder, file);
      const listed = shardTensors.get(file)!;
      const st = await statOrUndefined(shardPath);
      if (!st?.isFile()) throw new CheckpointError('MISSING_SHARD', indexPath, `the index puts this tensor in shard ${file}, but ${shardPath} ${st ? 'is not a file' : 'does not exist'}`, listed[0]);
      const header = await SafetensorsFile.open(shardPath);
      try {
        if (where.index) {
          const inShard = new Set(header.tensors.map((t) => t.name));
          const missing = listed.find((t) => !inShard.has(t));
          if (missing !== undefined) throw new CheckpointError('INDEX_MISMATCH', shardPath, `the index (${INDEX_NAME}) puts this tensor in this shard, but the shard does not hold it`, missing);
          const listedHere = new Set(listed);
          const extra = header.tensors.find((t) => !listedHere.has(t.name));
          if (extra) throw new CheckpointError('INDEX_MISMATCH', shardPath, `the shard holds this tensor but the index (${INDEX_NAME}) does not put it here`, extra.name);
        }
        for (const t of header.tensors) tensors.push({ name: t.name, shape: t.shape, dtype: t.dtype, byteLength: t.end - t.begin, shard: shardPath, position: header.dataStart + t.begin });
        shards.push({ file, tensors: header.tensors.map((t) => t.name), metadata: header.metadata });
        fileSize += header.fileSize;
      } finally {
        await header.close();
      }
    }
    const config = join(where.folder, 'config.json');
    const facts: FolderFacts = { shards, indexed: where.index !== undefined, indexMetadata, config: (await statOrUndefined(config))?.isFile() ? config : undefined };
    return new DiffusersFolderReader(path, where.folder, tensors, facts, fileSize);
  }

  get metadata(): Readonly<Record<string, string>> | undefined {
    return this.folder.shards[0]?.metadata;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): StoredTensor {
    const t = this.byName.get(name);
    if (!t) throw new CheckpointError('NO_SUCH_TENSOR', this.path, 'no tensor of this name in the folder', name);
    return t;
  }

  fileOf(name: string): string {
    return (this.info(name) as Located).shard;
  }

  async read(name: string, into?: Uint8Array, rowStart?: number, rows?: number): Promise<Uint8Array> {
    const t = this.info(name) as Located;
    const { offset, length } = rowRange(t.shard, t, rowStart, rows);
    const buf = into ?? new Uint8Array(length);
    if (buf.byteLength !== length) throw new RangeError(`${t.shard}: tensor "${name}": ${length} bytes to read into a buffer of ${buf.byteLength}`);
    let handle = this.handles.get(t.shard);
    if (!handle) {
      handle = open(t.shard, 'r');
      this.handles.set(t.shard, handle);
    }
    await readFully(await handle, buf, t.position + offset, t.shard, name);
    return buf;
  }

  async close(): Promise<void> {
    const handles = [...this.handles.values()];
    this.handles.clear();
    await Promise.allSettled(handles.map(async (h) => (await h).close()));
  }
}

export interface ShardPlan {
  file: string;
  /** Its tensors in the order they are written. */
  specs: readonly OutputSpec[];
  metadata: Record<string, string> | undefined;
}

/** Writes a folder shard by shard into a staging folder; `commit` adds the index and config.json and renames it into place. */
export class DiffusersFolderWriter implements CheckpointWriter {
  readonly order: readonly OutputSpec[];
  private current: SafetensorsWriter | undefined;
  private shard = 0;
  private written = 0;
  private count = 0;
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly staging: string,
    private readonly shards: readonly ShardPlan[],
    private readonly opts: { indexed: boolean; indexMetadata?: Readonly<Record<string, unknown>>; config?: string },
  ) {
    this.order = shards.flatMap((s) => s.specs);
  }

  static async create(path: string, shards: readonly ShardPlan[], opts: { indexed: boolean; indexMetadata?: Readonly<Record<string, unknown>>; config?: string }): Promise<DiffusersFolderWriter> {
    if (await statOrUndefined(path)) throw new CheckpointError('OUTPUT_EXISTS', path, 'the output folder already exists; a folder is never written over (remove it or name another)');
    if (!opts.indexed && shards.length !== 1) throw new Error('an unindexed folder has exactly one weights file');
    if (shards.some((s) => s.specs.length === 0)) throw new Error('every shard holds at least one tensor');
    const staging = stagingPathFor(path);
    try {
      await mkdir(staging);
    } catch (e) {
      staged(staging);
      throw new CheckpointError('WRITE_FAILED', path, `cannot create the output folder (${(e as Error).message})`);
    }
    return new DiffusersFolderWriter(path, staging, shards, opts);
  }

  async write(name: string, bytes: Uint8Array): Promise<void> {
    if (this.closed) throw new CheckpointError('WRITE_FAILED', this.path, 'write after the folder was committed or aborted', name);
    try {
      while (!this.current || this.current.pending === undefined) {
        if (this.current) await this.current.commit();
        const plan = this.shards[this.shard++];
        if (!plan) throw new CheckpointError('WRITE_FAILED', this.path, 'more tensors than the folder declares', name);
        this.current = await SafetensorsWriter.create(join(this.staging, plan.file), plan.specs, { metadata: plan.metadata, order: 'given' });
      }
      await this.current.write(name, bytes);
      this.written += bytes.byteLength;
      this.count++;
    } catch (e) {
      await this.abort();
      throw e;
    }
  }

  async commit(): Promise<void> {
    try {
      if (this.count !== this.order.length) throw new CheckpointError('WRITE_FAILED', this.path, 'commit before every tensor was written', this.order[this.count]?.name);
      await this.current?.commit();
      if (this.opts.indexed) {
        const map = new Map<string, string>();
        for (const s of this.shards) for (const t of s.specs) map.set(t.name, s.file);
        await writeFile(join(this.staging, INDEX_NAME), formatIndex(map, this.written, this.opts.indexMetadata));
      }
      if (this.opts.config) await copyFile(this.opts.config, join(this.staging, 'config.json'));
      this.closed = true;
      await rename(this.staging, this.path);
      staged(this.staging);
    } catch (e) {
      await this.abort();
      if (e instanceof CheckpointError) throw e;
      throw new CheckpointError('WRITE_FAILED', this.path, `write failed: ${(e as Error).message}; no output was left behind`);
    }
  }

  async abort(): Promise<void> {
    this.closed = true;
    await this.current?.abort().catch(() => undefined);
    await rm(this.staging, { recursive: true, force: true });
    staged(this.staging);
  }
}

/**
 * The file that stands for a model folder where only files can be named (recipe paths): its index,
 * or its one weights file; any other path as it is.
 */
export async function entryFile(path: string): Promise<string> {
  const st = await statOrUndefined(path);
  if (!st?.isDirectory()) return path;
  const where = await locateModelFolder(path);
  if (!where) throw new CheckpointError('NOT_A_MODEL_FOLDER', path, `a folder, but not a diffusers model folder: no ${INDEX_NAME} or ${WEIGHTS_NAME} in it (nor in a ${MODEL_SUBFOLDERS.join('/ or ')}/ subfolder)`);
  return where.index ?? where.single!;
}
