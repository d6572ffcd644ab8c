/**
 * The index of a sharded diffusers model folder (`diffusion_pytorch_model.safetensors.index.json`):
 * `{"metadata": {"total_size": N}, "weight_map": {tensor: shard file}}`, read strictly and written
 * as diffusers writes it (`json.dumps(index, indent=2, sort_keys=True) + "\n"`), so a folder
 * passed through unchanged gets the same bytes back.
 */
import { basename } from 'node:path';
import { CheckpointError } from './errors.ts';

export const WEIGHTS_NAME = 'diffusion_pytorch_model.safetensors';
export const INDEX_NAME = `${WEIGHTS_NAME}.index.json`;

/** diffusers' (huggingface_hub's) shard names: `diffusion_pytorch_model-00001-of-00003.safetensors`. */
export function shardName(i: number, n: number): string {
  const pad = (k: number) => String(k).padStart(5, '0');
  return `diffusion_pytorch_model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
}

export interface FolderIndex {
  weightMap: Map<string, string>;
  metadata?: Record<string, unknown>;
}

/** Parses and checks an index: every entry a tensor name to a plain file name inside the folder. */
export function parseIndex(path: string, text: string): FolderIndex {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError('BAD_INDEX', path, `not JSON (${(e as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new CheckpointError('BAD_INDEX', path, 'the index is not a JSON object');
  const { weight_map: map, metadata } = doc as { weight_map?: unknown; metadata?: unknown };
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new CheckpointError('BAD_INDEX', path, 'the index has no "weight_map" object');
  const weightMap = new Map<string, string>();
  for (const [tensor, file] of Object.entries(map as Record<string, unknown>)) {
    if (typeof file !== 'string' || file === '') throw new CheckpointError('BAD_INDEX', path, `weight_map names ${JSON.stringify(file)} as its shard, not a file name`, tensor);
    // a shard outside the folder would let an index read any file on the machine
    if (basename(file) !== file || file === '.' || file === '..' || file.includes('\\')) {
      throw new CheckpointError('BAD_INDEX', path, `weight_map names "${file}" as its shard: shards are plain file names inside the model folder`, tensor);
    }
    weightMap.set(tensor, file);
  }
  if (weightMap.size === 0) throw new CheckpointError('BAD_INDEX', path, 'weight_map is empty');
  if (metadata !== undefined && (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))) {
    throw new CheckpointError('BAD_INDEX', path, '"metadata" is not an object');
  }
  return { weightMap, metadata: metadata as Record<string, unknown> | undefined };
}

/** JSON with object keys sorted at every level and two-space indents, as Python's json.dumps(indent=2, sort_keys=True). */
function sortedJson(value: unknown, indent = ''): string {
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    const inner = `${indent}  `;
    return `[\n${value.map((v) => inner + sortedJson(v, inner)).join(',\n')}\n${indent}]`;
  }
  if (typeof value === 'object' && value !== null) {
    const keys = Object.keys(value).sort();
    if (keys.length === 0) return '{}';
    const inner = `${indent}  `;
    return `{\n${keys.map((k) => `${inner}${asciiJson(k)}: ${sortedJson((value as Record<string, unknown>)[k], inner)}`).join(',\n')}\n${indent}}`;
  }
  return typeof value === 'string' ? asciiJson(value) : JSON.stringify(value);
}

/** A JSON string with non-ASCII escaped, as Python's ensure_ascii does. */
function asciiJson(s: string): string {
  return JSON.stringify(s).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The index file's text: the input's own metadata kept, total_size set to the tensor bytes written. */
export function formatIndex(weightMap: ReadonlyMap<string, string>, totalSize: number, metadata: Readonly<Record<string, unknown>> = {}): string {
  return `${sortedJson({ metadata: { ...metadata, total_size: totalSize }, weight_map: Object.fromEntries(weightMap) })}\n`;
}
