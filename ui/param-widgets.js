// Param JSON Schema → litegraph widget, and back. Every param gets a codec: which widget shows it,
// with which options, how a recipe value becomes a widget value (toWidget) and how the widget value
// becomes a recipe value (fromWidget; undefined = leave the param out, so its default applies).
// Widgets are always read and written by param name, never by position.

/** Zod writes ±MAX_SAFE_INTEGER for unbounded ints; a widget range that wide is no range. */
const HUGE = 1e15;

const finite = (x) => typeof x === 'number' && Number.isFinite(x) && Math.abs(x) < HUGE;

function decimalsOf(step) {
  const s = String(step);
  const i = s.indexOf('.');
  return i < 0 ? 0 : s.length - i - 1;
}

/** The inner schema when zod wrapped it (`anyOf: [X, {type:"null"}]`), else the schema itself. */
function unwrapNullable(schema) {
  const alts = schema.anyOf ?? schema.oneOf;
  if (!Array.isArray(alts)) return schema;
  const nonNull = alts.filter((a) => a.type !== 'null');
  return nonNull.length === 1 ? { ...schema, ...nonNull[0], anyOf: undefined, oneOf: undefined } : schema;
}

/** Parses text typed into a free-form widget according to the schema; '' means "not set". */
function parseLoose(text, schema) {
  const t = String(text ?? '').trim();
  if (t === '') return undefined;
  const alts = schema.anyOf ?? schema.oneOf ?? [schema];
  if (alts.some((a) => Array.isArray(a.enum) && a.enum.includes(t))) return t;
  try {
    const v = JSON.parse(t);
    return v;
  } catch {
    return t;
  }
}

function showLoose(value) {
  if (value === undefined || value === null) return '';
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/**
 * @param {string} name
 * @param {object} schema  the param's JSON Schema (zod output, io: 'input')
 * @param {boolean} required
 */
export function paramCodec(name, schema, required) {
  const s = unwrapNullable(schema);
  const hasDefault = Object.hasOwn(s, 'default');
  const unsettable = !required && !hasDefault;
  const path = s['x-path'];
  const base = { name, schema: s, hasDefault, default: s.default, required, description: s.description ?? '' };

  if (path) {
    // File params: a combo of the files in the kind's root (inputs) or free text (outputs).
    const combo = path.mode === 'read';
    return {
      ...base,
      kind: 'path',
      path,
      widget: combo ? 'combo' : 'text',
      options: combo ? { values: [''] } : {},
      initial: s.default ?? '',
      toWidget: (v) => (v === undefined || v === null ? '' : String(v)),
      fromWidget: (w) => (w === '' || w === undefined ? undefined : String(w)),
    };
  }
  if (Array.isArray(s.enum) && s.enum.every((e) => typeof e === 'string')) {
    const values = unsettable ? ['', ...s.enum] : [...s.enum];
    return {
      ...base,
      kind: 'enum',
      widget: 'combo',
      options: { values },
      initial: s.default ?? values[0],
      toWidget: (v) => (v === undefined ? (unsettable ? '' : s.default ?? values[0]) : String(v)),
      fromWidget: (w) => (w === '' ? undefined : w),
    };
  }
  if (s.type === 'boolean') {
    return {
      ...base,
      kind: 'boolean',
      widget: 'toggle',
      options: { on: 'on', off: 'off' },
      initial: s.default ?? false,
      toWidget: (v) => (v === undefined ? s.default ?? false : !!v),
      fromWidget: (w) => !!w,
    };
  }
  if ((s.type === 'number' || s.type === 'integer') && !unsettable) {
    const int = s.type === 'integer';
    const min = finite(s.minimum) ? s.minimum : finite(s.exclusiveMinimum) ? s.exclusiveMinimum + (int ? 1 : 0) : undefined;
    const max = finite(s.maximum) ? s.maximum : finite(s.exclusiveMaximum) ? s.exclusiveMaximum - (int ? 1 : 0) : undefined;
    const step = finite(s.multipleOf) ? s.multipleOf : int ? 1 : max !== undefined && min !== undefined && max - min <= 2 ? 0.01 : 0.1;
    const precision = int ? 0 : Math.max(decimalsOf(step), 2);
    // litegraph steps by options.step2 (and ×0.1 of the legacy `step`): give both consistently.
    const options = { precision, step2: step, step: step * 10, ...(min !== undefined ? { min } : {}), ...(max !== undefined ? { max } : {}) };
    const clamp = (x) => Math.min(max ?? Infinity, Math.max(min ?? -Infinity, x));
    return {
      ...base,
      kind: int ? 'integer' : 'number',
      widget: 'number',
      options,
      initial: s.default ?? min ?? 0,
      toWidget: (v) => (typeof v === 'number' ? v : s.default ?? min ?? 0),
      fromWidget: (w) => {
        const x = clamp(Number(w));
        return int ? Math.round(x) : Number(x.toFixed(Math.max(precision, 6)));
      },
    };
  }
  if (s.type === 'string' && !unsettable) {
    return {
      ...base,
      kind: 'string',
      widget: 'text',
      options: {},
      initial: s.default ?? '',
      toWidget: (v) => (v === undefined || v === null ? s.default ?? '' : String(v)),
      fromWidget: (w) => String(w ?? ''),
    };
  }
  // Optional numbers, unions, lists, objects: typed as text, read back by the schema ('' = unset).
  return {
    ...base,
    kind: 'loose',
    widget: 'text',
    options: {},
    initial: showLoose(s.default),
    toWidget: (v) => showLoose(v === undefined ? s.default : v),
    fromWidget: (w) => parseLoose(w, s),
  };
}

/** All codecs of a node definition, in the definition's param order. */
export function paramCodecs(def) {
  const props = def.paramsSchema?.properties ?? {};
  const required = new Set(def.paramsSchema?.required ?? []);
  const order = def.paramOrder ?? Object.keys(props);
  return order.filter((n) => props[n]).map((n) => paramCodec(n, props[n], required.has(n)));
}

/** Deep equality for JSON values (param vs default). */
export function sameJson(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}
