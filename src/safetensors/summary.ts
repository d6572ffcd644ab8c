/**
 * What `loraflow inspect` reports about a safetensors file, computed from the header alone (pure:
 * no I/O, so the server's header inspection and the CLI share it, and a 24 GB file costs one read
 * of its header). Format detection plugs in as the optional `detection` field.
 */
import type { TensorInfo } from './header.ts';

/** The facts a validated header gives (SafetensorsFile has exactly these). */
export interface HeaderFacts {
  path: string;
  fileSize: number;
  headerBytes: number;
  tensors: readonly TensorInfo[];
  metadata?: Readonly<Record<string, string>>;
}

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export interface DTypeTotals {
  tensors: number;
  parameters: number;
  bytes: number;
}

export interface TensorSummary {
  name: string;
  dtype: string;
  shape: number[];
  bytes: number;
}

export interface SafetensorsSummary {
  file: string;
  fileBytes: number;
  /** Length of the JSON header, padding included (the file starts with 8 more bytes giving it). */
  headerBytes: number;
  dataBytes: number;
  tensorCount: number;
  parameterCount: number;
  /** Per stored dtype, largest share first. */
  dtypes: Record<string, DTypeTotals>;
  /** `__metadata__` in file order; values holding a JSON object or array are expanded, others stay strings. */
  metadata: Record<string, JsonValue>;
  /** Tensors in data order. */
  tensors: TensorSummary[];
  /** Which adapter/checkpoint layout the keys form; filled by format detection when available. */
  detection?: unknown;
}

export function summarizeSafetensors(facts: HeaderFacts): SafetensorsSummary {
  const totals = new Map<string, DTypeTotals>();
  const tensors: TensorSummary[] = [];
  let parameters = 0;
  let dataBytes = 0;
  for (const t of facts.tensors) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const bytes = t.end - t.begin;
    const d = totals.get(t.dtype) ?? { tensors: 0, parameters: 0, bytes: 0 };
    d.tensors++;
    d.parameters += numel;
    d.bytes += bytes;
    totals.set(t.dtype, d);
    parameters += numel;
    dataBytes += bytes;
    tensors.push({ name: t.name, dtype: t.dtype, shape: [...t.shape], bytes });
  }
  const dtypes = Object.fromEntries([...totals].sort((a, b) => b[1].bytes - a[1].bytes || b[1].tensors - a[1].tensors));
  const metadata = Object.fromEntries(Object.entries(facts.metadata ?? {}).map(([k, v]) => [k, expandJson(v)]));
  return {
    file: facts.path,
    fileBytes: facts.fileSize,
    headerBytes: facts.headerBytes,
    dataBytes,
    tensorCount: tensors.length,
    parameterCount: parameters,
    dtypes,
    metadata,
    tensors,
  };
}

/** Metadata values that are JSON documents (recipes, workflows, training args) are shown as such. */
function expandJson(value: string): JsonValue {
  const first = value.trimStart()[0];
  if (first !== '{' && first !== '[') return value;
  try {
    return JSON.parse(value) as JsonValue;
  } catch {
    return value;
  }
}

export function formatBytes(n: number): string {
  const units = ['bytes', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${v.toFixed(2)} ${units[i]}`;
}

export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)} k`;
  return String(n);
}

function indent(text: string, by: string): string {
  return text.split('\n').map((l) => by + l).join('\n');
}

/** The human-readable report (the `--json` form is the summary object itself). */
export function formatSummary(s: SafetensorsSummary, options: { tensors?: boolean } = {}): string {
  const lines: string[] = [];
  const exact = (n: number) => n.toLocaleString('en-US');
  lines.push(`file:      ${s.file}`);
  lines.push(`size:      ${formatBytes(s.fileBytes)} (${exact(s.fileBytes)} bytes; header ${exact(s.headerBytes)} bytes)`);
  lines.push(`tensors:   ${s.tensorCount} (${formatCount(s.parameterCount)} parameters, ${formatBytes(s.dataBytes)} of data)`);
  lines.push('dtypes:');
  const dtypeRows = Object.entries(s.dtypes);
  if (dtypeRows.length === 0) lines.push('  (none)');
  for (const [dtype, t] of dtypeRows) {
    lines.push(`  ${dtype.padEnd(12)} ${String(t.tensors).padStart(6)} tensors  ${formatCount(t.parameters).padStart(9)} params  ${formatBytes(t.bytes).padStart(11)}`);
  }
  const meta = Object.entries(s.metadata);
  lines.push(`metadata:  ${meta.length === 0 ? '(none)' : `${meta.length} key${meta.length === 1 ? '' : 's'}`}`);
  for (const [k, v] of meta) {
    if (typeof v === 'string') lines.push(v.includes('\n') ? `  ${k}:\n${indent(v, '    ')}` : `  ${k}: ${v}`);
    else lines.push(`  ${k}:`, indent(JSON.stringify(v, null, 2), '    '));
  }
  if (s.detection !== undefined) {
    lines.push('detection:', indent(JSON.stringify(s.detection, null, 2), '  '));
  }
  if (options.tensors) {
    lines.push('tensor list:');
    for (const t of s.tensors) lines.push(`  ${t.name}  ${t.dtype} [${t.shape.join(', ')}]`);
  }
  return lines.join('\n');
}
