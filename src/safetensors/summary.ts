/**
 * What `loraflow inspect` reports about a safetensors file, computed from the header alone (pure:
 * no I/O, so the server's header inspection and the CLI share it, and a 24 GB file costs one read
 * of its header). Format detection plugs in as the optional `detection` field.
 */
import type { TensorInfo } from './header.ts';
import { DTYPE_NAMES, TensorTable } from './table.ts';

/** The facts a validated header gives (SafetensorsFile has exactly these). */
export interface HeaderFacts {
  path: string;
  fileSize: number;
  headerBytes: number;
  tensors: readonly TensorInfo[];
  /** The tensors in compact form; used instead of `tensors` when present (SafetensorsFile has it). */
  table?: TensorTable;
  metadata?: Readonly<Record<string, string>>;
}

/** Which tensors the summary lists: `limit` of them from `offset` (data order). Totals always cover every tensor. */
export interface SummaryWindow {
  offset?: number;
  limit?: number;
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
  /** Tensors in data order: every one, or the window asked for (`tensorsOffset`, at most the limit). */
  tensors: TensorSummary[];
  /** Index of the first listed tensor. */
  tensorsOffset: number;
  /** True when `tensors` lists fewer than `tensorCount`. */
  truncated: boolean;
  /** Which adapter/checkpoint layout the keys form; filled by format detection when available. */
  detection?: unknown;
}

export function summarizeSafetensors(facts: HeaderFacts, window: SummaryWindow = {}): SafetensorsSummary {
  // A SafetensorsFile's `tensors` would turn its table into an object per tensor: read the table.
  const table = facts.table ?? TensorTable.fromInfos(facts.tensors);
  const count = table.length;
  const perDtype = new Float64Array(DTYPE_NAMES.length * 3);
  const seenOrder: number[] = [];
  let parameters = 0;
  let dataBytes = 0;
  for (let i = 0; i < count; i++) {
    const numel = table.numel(i);
    const bytes = table.bytes(i);
    const d = table.dtypes[i]!;
    if (perDtype[d * 3] === 0) seenOrder.push(d);
    perDtype[d * 3]! += 1;
    perDtype[d * 3 + 1]! += numel;
    perDtype[d * 3 + 2]! += bytes;
    parameters += numel;
    dataBytes += bytes;
  }
  const totals: [string, DTypeTotals][] = seenOrder.map((d) => [DTYPE_NAMES[d]!, { tensors: perDtype[d * 3]!, parameters: perDtype[d * 3 + 1]!, bytes: perDtype[d * 3 + 2]! }]);
  const dtypes = Object.fromEntries(totals.sort((a, b) => b[1].bytes - a[1].bytes || b[1].tensors - a[1].tensors));
  const metadata = Object.fromEntries(Object.entries(facts.metadata ?? {}).map(([k, v]) => [k, expandJson(v)]));
  const offset = Math.min(count, Math.max(0, Math.floor(window.offset ?? 0)));
  const end = window.limit === undefined ? count : Math.min(count, offset + Math.max(0, Math.floor(window.limit)));
  const tensors: TensorSummary[] = [];
  for (let i = offset; i < end; i++) tensors.push({ name: table.name(i), dtype: table.dtype(i), shape: table.shape(i), bytes: table.bytes(i) });
  return {
    file: facts.path,
    fileBytes: facts.fileSize,
    headerBytes: facts.headerBytes,
    dataBytes,
    tensorCount: count,
    parameterCount: parameters,
    dtypes,
    metadata,
    tensors,
    tensorsOffset: offset,
    truncated: tensors.length < count,
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
    const from = s.tensorsOffset ?? 0;
    const which = from === 0 ? `the first ${s.tensors.length}` : `${s.tensors.length} from #${from}`;
    lines.push(s.truncated ? `tensor list (${which} of ${s.tensorCount}):` : 'tensor list:');
    for (const t of s.tensors) lines.push(`  ${t.name}  ${t.dtype} [${t.shape.join(', ')}]`);
    const after = s.tensorCount - from - s.tensors.length;
    if (s.truncated && after > 0) lines.push(`  … ${after} more (--limit N lists more, --json lists all)`);
  }
  return lines.join('\n');
}
