import { DTYPE_BITS } from '../tensor/dtype.ts';
import { SafetensorsError } from './errors.ts';

/** The reference implementation's MAX_HEADER_SIZE. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** Byte offsets relative to the start of the data buffer, end exclusive. */
  begin: number;
  end: number;
}

export interface ParsedHeader {
  /** Tensors in data order (sorted by offset). */
  tensors: TensorInfo[];
  metadata: Record<string, string> | undefined;
  /** Length of the JSON header (N), padding included. */
  headerBytes: number;
  /** Total bytes of the data buffer. */
  dataBytes: number;
}

/**
 * Validates a header exactly as the reference implementation (safetensors' `Metadata::validate`)
 * does, with one error code per rule so a broken file says what is wrong with it.
 */
export function parseHeader(file: string, headerBytes: Uint8Array, fileSize: number): ParsedHeader {
  if (headerBytes[0] !== 0x7b) {
    throw new SafetensorsError('HEADER_NOT_OBJECT', file, 'header does not start with "{" (not a safetensors file?)');
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw new SafetensorsError('HEADER_NOT_UTF8', file, 'header is not valid UTF-8');
  }
  const seen = new Set<string>();
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError('HEADER_NOT_JSON', file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new SafetensorsError('HEADER_NOT_OBJECT', file, 'header JSON is not an object');
  }
  // JSON.parse keeps the last of two equal keys; the spec forbids duplicates, so look for them in the text.
  for (const name of topLevelKeys(text)) {
    if (seen.has(name)) throw new SafetensorsError('DUPLICATE_NAME', file, 'tensor name appears twice in the header', name);
    seen.add(name);
  }

  let metadata: Record<string, string> | undefined;
  const tensors: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(file, entry);
      continue;
    }
    tensors.push(parseEntry(file, name, entry));
  }

  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (const t of tensors) {
    if (t.begin > expected) {
      throw new SafetensorsError('OFFSET_GAP', file, `data starts at ${t.begin} but the previous tensor ends at ${expected}: the buffer has a hole`, t.name);
    }
    if (t.begin < expected) {
      throw new SafetensorsError('OFFSET_OVERLAP', file, `data starts at ${t.begin}, inside the previous tensor (which ends at ${expected})`, t.name);
    }
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const bits = numel * DTYPE_BITS[t.dtype]!;
    if (!Number.isSafeInteger(bits)) throw new SafetensorsError('BAD_SHAPE', file, `shape [${t.shape}] has too many elements to address`, t.name);
    if (bits % 8 !== 0) throw new SafetensorsError('MISALIGNED', file, `${numel} × ${t.dtype} is not a whole number of bytes`, t.name);
    if (t.end - t.begin !== bits / 8) {
      throw new SafetensorsError('SIZE_MISMATCH', file, `shape [${t.shape}] of ${t.dtype} needs ${bits / 8} bytes but data_offsets give ${t.end - t.begin}`, t.name);
    }
    expected = t.end;
  }
  const total = 8 + headerBytes.byteLength + expected;
  if (total > fileSize) {
    const cut = tensors.find((t) => 8 + headerBytes.byteLength + t.end > fileSize)?.name;
    throw new SafetensorsError('FILE_TOO_SHORT', file, `file is ${fileSize} bytes but its header describes ${total} (truncated download?)`, cut);
  }
  if (total < fileSize) {
    throw new SafetensorsError('FILE_TOO_LONG', file, `file is ${fileSize} bytes but its header describes only ${total}: ${fileSize - total} trailing bytes are not indexed`);
  }
  return { tensors, metadata, headerBytes: headerBytes.byteLength, dataBytes: expected };
}

function parseMetadata(file: string, entry: unknown): Record<string, string> {
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
    throw new SafetensorsError('BAD_METADATA', file, '__metadata__ must be an object of strings');
  }
  const entries = Object.entries(entry);
  for (const [k, v] of entries) {
    if (typeof v !== 'string') {
      const kind = v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;
      throw new SafetensorsError('BAD_METADATA', file, `__metadata__ value for "${k}" is ${kind}, but every value must be a string`);
    }
  }
  // fromEntries defines keys as own properties, so even a key named "__proto__" survives.
  return Object.fromEntries(entries) as Record<string, string>;
}

function parseEntry(file: string, name: string, entry: unknown): TensorInfo {
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
    throw new SafetensorsError('BAD_ENTRY', file, 'entry is not an object with dtype, shape and data_offsets', name);
  }
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (typeof dtype !== 'string') throw new SafetensorsError('BAD_ENTRY', file, 'missing or non-string "dtype"', name);
  if (!Object.hasOwn(DTYPE_BITS, dtype)) throw new SafetensorsError('UNKNOWN_DTYPE', file, `unknown dtype "${dtype}"`, name);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new SafetensorsError('BAD_SHAPE', file, `shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`, name);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((d) => Number.isSafeInteger(d) && d >= 0) || offsets[1] < offsets[0]) {
    throw new SafetensorsError('BAD_OFFSETS', file, `data_offsets must be [begin, end] with 0 ≤ begin ≤ end, got ${JSON.stringify(offsets)}`, name);
  }
  return { name, dtype, shape: shape as number[], begin: offsets[0] as number, end: offsets[1] as number };
}

/** Names of the top-level keys in source order, duplicates included (JSON.parse hides them). */
function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let i = 0;
  let expectKey = false;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) keys.push(JSON.parse(text.slice(i, j + 1)) as string);
      expectKey = false;
      i = j + 1;
      continue;
    }
    if (c === '{' || c === '[') {
      depth++;
      expectKey = c === '{' && depth === 1;
    } else if (c === '}' || c === ']') depth--;
    else if (c === ',' && depth === 1) expectKey = true;
    i++;
  }
  return keys;
}
