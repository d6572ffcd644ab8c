/**
 * Small JSON-safe descriptions of arbitrary values, for events and error reports: primitives as
 * they are, arrays and typed arrays by length, objects by their primitive fields. Node packages
 * give better summaries through `summarize`; this is the fallback the engine can always apply.
 */

const MAX_FIELDS = 12;
const MAX_STRING = 300;

function short(s: string): string {
  return s.length > MAX_STRING ? `${s.slice(0, MAX_STRING)}…` : s;
}

export function describeValue(v: unknown, depth = 0): unknown {
  if (v === null || v === undefined) return v ?? null;
  if (typeof v === 'string') return short(v);
  if (typeof v === 'number' || typeof v === 'boolean') return v;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'function') return '[function]';
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}[${(v as unknown as { length?: number }).length ?? v.byteLength}]`;
  if (Array.isArray(v)) return depth > 0 ? `${v.length} items` : v.slice(0, MAX_FIELDS).map((x) => describeValue(x, depth + 1));
  if (typeof v === 'object') {
    if (depth > 1) return '{…}';
    const out: Record<string, unknown> = {};
    let n = 0;
    for (const [k, x] of Object.entries(v)) {
      if (typeof x === 'function') continue;
      if (n++ >= MAX_FIELDS) break;
      out[k] = describeValue(x, depth + 1);
    }
    return out;
  }
  return String(v);
}

/** A deep copy that survives JSON (and structured clone): drops functions, stringifies bigints and typed arrays. */
export function jsonSafe(v: unknown): unknown {
  try {
    const text = JSON.stringify(v, (_k, x: unknown) => {
      if (typeof x === 'bigint') return x.toString();
      if (ArrayBuffer.isView(x)) return `${x.constructor.name}[${x.byteLength} bytes]`;
      return x;
    });
    return text === undefined ? null : JSON.parse(text);
  } catch {
    return describeValue(v);
  }
}
