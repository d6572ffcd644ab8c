/**
 * The header parser: one pass over the header bytes that checks the JSON grammar and builds the
 * compact tensor table directly, never a JS object per tensor (JSON.parse of a 100 MB header of a
 * million tensors peaks near a gigabyte). It accepts exactly the JSON that JSON.parse accepts and
 * then applies safetensors' `Metadata::validate` rules, reporting the same error as parsing with
 * JSON.parse and checking the resulting object would: a syntax error anywhere first, then a
 * duplicate name, then the first bad entry in the order `Object.entries` visits the parsed object
 * (array-index names ascending, then the others in file order), then offsets in data order.
 */
import { isUtf8 } from 'node:buffer';
import { DTYPE_BITS } from '../tensor/dtype.ts';
import { SafetensorsError, type SafetensorsErrorCode } from './errors.ts';
import { TensorTable, dtypeIndex } from './table.ts';

const QUOTE = 0x22;
const BSLASH = 0x5c;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACK = 0x5b;
const RBRACK = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;
const MINUS = 0x2d;

export interface ScannedHeader {
  /** Tensors in data order (sorted by offset). */
  table: TensorTable;
  metadata: Record<string, string> | undefined;
  /** Total bytes of the data buffer the header describes. */
  dataBytes: number;
}

class JsonSyntaxError extends Error {}

/** A list of non-negative safe integers (a shape, or data_offsets). */
function validCounts(list: NumberList): boolean {
  if (!list.onlyNumbers) return false;
  for (const x of list.values) if (!Number.isSafeInteger(x) || x < 0) return false;
  return true;
}

const isDigit = (c: number | undefined): boolean => c !== undefined && c >= 0x30 && c <= 0x39;
const isHex = (c: number | undefined): boolean => c !== undefined && ((c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66));

type TypedColumn = Float64Array | Uint32Array | Uint8Array;

/** A growable typed-array column (doubling); `a` holds `n` values, trimmed by the caller at the end. */
class Column<T extends TypedColumn> {
  n = 0;
  constructor(public a: T) {}
  push(v: number): void {
    if (this.n === this.a.length) {
      const b = new (this.a.constructor as new (length: number) => T)(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.n++] = v;
  }
}

/** A JSON array of numbers as the scanner saw it: the numbers, and whether anything else was in it. */
class NumberList {
  values: number[] = [];
  onlyNumbers = true;
  reset(): void {
    this.values.length = 0;
    this.onlyNumbers = true;
  }
}

interface Deferred {
  code: SafetensorsErrorCode;
  detail: string;
  tensor?: string;
}

/** A metadata value that is not a string (the kind is what the error message calls it). */
class NotAString {
  constructor(readonly kind: string) {}
}

const KEY_DTYPE = 1;
const KEY_SHAPE = 2;
const KEY_OFFSETS = 3;

/** Array-index property names, which `Object.entries` lists first, in ascending numeric order. */
function arrayIndex(name: string): number {
  const c = name.charCodeAt(0);
  if (c < 0x30 || c > 0x39 || name.length > 10 || (c === 0x30 && name.length > 1)) return -1;
  for (let i = 1; i < name.length; i++) {
    const d = name.charCodeAt(i);
    if (d < 0x30 || d > 0x39) return -1;
  }
  const v = Number(name);
  return v <= 4294967294 ? v : -1;
}

class Scanner {
  p = 0;
  /** Set by string(): whether the string just passed had an escape / a non-ASCII byte. */
  esc = false;
  hi = false;
  /** One bit per open container in skipValue: 1 for an object. */
  private kinds = new Uint32Array(64);
  readonly buf: Buffer;

  constructor(readonly b: Uint8Array) {
    this.buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  }

  fail(): never {
    const c = this.b[this.p];
    if (c === undefined) throw new JsonSyntaxError('unexpected end of the header');
    const shown = c >= 0x20 && c < 0x7f ? `"${String.fromCharCode(c)}"` : `byte 0x${c.toString(16).padStart(2, '0')}`;
    throw new JsonSyntaxError(`unexpected ${shown} at position ${this.p}`);
  }

  ws(): void {
    const b = this.b;
    let p = this.p;
    for (;;) {
      const c = b[p];
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) p++;
      else break;
    }
    this.p = p;
  }

  expect(c: number): void {
    if (this.b[this.p] !== c) this.fail();
    this.p++;
  }

  /** At a '"': moves past the closing quote. */
  string(): void {
    const b = this.b;
    let p = this.p + 1;
    let esc = false;
    let hi = false;
    for (;;) {
      const c = b[p];
      if (c === QUOTE) break;
      if (c === undefined || c < 0x20) {
        this.p = p;
        this.fail();
      }
      if (c === BSLASH) {
        esc = true;
        const e = b[p + 1];
        if (e === 0x75) {
          for (let k = 2; k < 6; k++) {
            if (!isHex(b[p + k])) {
              this.p = p + k;
              this.fail();
            }
          }
          p += 6;
          continue;
        }
        if (e === QUOTE || e === BSLASH || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
          p += 2;
          continue;
        }
        this.p = p + 1;
        this.fail();
      }
      if (c >= 0x80) hi = true;
      p++;
    }
    this.esc = esc;
    this.hi = hi;
    this.p = p + 1;
  }

  /** The value of the string from the quote at `start` to the current position (just past its end). */
  decode(start: number): string {
    if (this.esc) return JSON.parse(this.buf.toString('utf8', start, this.p)) as string;
    return this.buf.toString(this.hi ? 'utf8' : 'latin1', start + 1, this.p - 1);
  }

  /** At a number's first character: moves past it, returns its value (exactly as JSON.parse reads it). */
  number(): number {
    const b = this.b;
    const s = this.p;
    let p = s;
    if (b[p] === MINUS) p++;
    const c = b[p];
    if (c === 0x30) p++;
    else if (c !== undefined && c >= 0x31 && c <= 0x39) {
      do p++;
      while (isDigit(b[p]));
    } else {
      this.p = p;
      this.fail();
    }
    let plain = b[s] !== MINUS;
    if (b[p] === 0x2e) {
      plain = false;
      p++;
      if (!isDigit(b[p])) {
        this.p = p;
        this.fail();
      }
      do p++;
      while (isDigit(b[p]));
    }
    if (b[p] === 0x65 || b[p] === 0x45) {
      plain = false;
      p++;
      if (b[p] === 0x2b || b[p] === MINUS) p++;
      if (!isDigit(b[p])) {
        this.p = p;
        this.fail();
      }
      do p++;
      while (isDigit(b[p]));
    }
    this.p = p;
    if (plain && p - s <= 15) {
      let v = 0;
      for (let k = s; k < p; k++) v = v * 10 + (b[k]! - 0x30);
      return v;
    }
    return Number(this.buf.toString('latin1', s, p));
  }

  private literal(word: string): void {
    for (let k = 0; k < word.length; k++) {
      if (this.b[this.p] !== word.charCodeAt(k)) this.fail();
      this.p++;
    }
  }

  /** A string, number or literal at the current position. */
  private scalar(): void {
    const c = this.b[this.p];
    if (c === QUOTE) this.string();
    else if (c === MINUS || isDigit(c)) this.number();
    else if (c === 0x74) this.literal('true');
    else if (c === 0x66) this.literal('false');
    else if (c === 0x6e) this.literal('null');
    else this.fail();
  }

  /** `"key" :` with the whitespace after the colon. */
  private memberKey(): void {
    if (this.b[this.p] !== QUOTE) this.fail();
    this.string();
    this.ws();
    this.expect(COLON);
  }

  private setKind(depth: number, object: boolean): void {
    const word = depth >>> 5;
    if (word >= this.kinds.length) {
      const k = new Uint32Array(this.kinds.length * 2);
      k.set(this.kinds);
      this.kinds = k;
    }
    if (object) this.kinds[word]! |= 1 << (depth & 31);
    else this.kinds[word]! &= ~(1 << (depth & 31));
  }

  private isObject(depth: number): boolean {
    return (this.kinds[depth >>> 5]! & (1 << (depth & 31))) !== 0;
  }

  /** Checks and passes over any JSON value (leading whitespace included), without building it. Iterative: nesting depth costs one bit a level. */
  skipValue(): void {
    const b = this.b;
    let depth = 0;
    for (;;) {
      this.ws();
      const c = b[this.p];
      if (c === LBRACE || c === LBRACK) {
        this.p++;
        this.ws();
        if (b[this.p] === (c === LBRACE ? RBRACE : RBRACK)) this.p++;
        else {
          this.setKind(depth++, c === LBRACE);
          if (c === LBRACE) this.memberKey();
          continue;
        }
      } else this.scalar();
      for (;;) {
        if (depth === 0) return;
        this.ws();
        const obj = this.isObject(depth - 1);
        const d = b[this.p];
        if (d === COMMA) {
          this.p++;
          if (obj) {
            this.ws();
            this.memberKey();
          }
          break;
        }
        if (d !== (obj ? RBRACE : RBRACK)) this.fail();
        this.p++;
        depth--;
      }
    }
  }

  /** At '[' of a list expected to hold numbers: reads it into `into`. */
  numberList(into: NumberList): void {
    into.reset();
    const b = this.b;
    this.p++;
    this.ws();
    if (b[this.p] === RBRACK) {
      this.p++;
      return;
    }
    for (;;) {
      this.ws();
      const c = b[this.p];
      if (c === MINUS || isDigit(c)) into.values.push(this.number());
      else {
        into.onlyNumbers = false;
        this.skipValue();
      }
      this.ws();
      const d = b[this.p];
      if (d === COMMA) this.p++;
      else if (d === RBRACK) {
        this.p++;
        return;
      } else this.fail();
    }
  }

  /** Which entry key the string just passed is (0 for any other). */
  entryKey(start: number): number {
    const b = this.b;
    const len = this.p - start - 2;
    if (this.esc) {
      const k = this.decode(start);
      return k === 'dtype' ? KEY_DTYPE : k === 'shape' ? KEY_SHAPE : k === 'data_offsets' ? KEY_OFFSETS : 0;
    }
    const s = start + 1;
    if (len === 5) {
      if (b[s] === 0x64 && b[s + 1] === 0x74 && b[s + 2] === 0x79 && b[s + 3] === 0x70 && b[s + 4] === 0x65) return KEY_DTYPE;
      if (b[s] === 0x73 && b[s + 1] === 0x68 && b[s + 2] === 0x61 && b[s + 3] === 0x70 && b[s + 4] === 0x65) return KEY_SHAPE;
      return 0;
    }
    if (len === 12 && this.buf.toString('latin1', s, s + 12) === 'data_offsets') return KEY_OFFSETS;
    return 0;
  }
}

/** JSON.parse's value of the source text [start, end), for error messages. */
function sourceValue(s: Scanner, range: [number, number] | undefined): unknown {
  return range ? JSON.parse(s.buf.toString('utf8', range[0], range[1])) : undefined;
}

/**
 * At a '{': reads each member's key (`key` runs just after its closing quote, where the scanner
 * knows the string) and its value (`value` parses it), then moves past the '}'.
 */
function eachMember<K>(s: Scanner, key: (start: number) => K, value: (key: K) => void): void {
  const b = s.b;
  s.p++;
  s.ws();
  if (b[s.p] === RBRACE) {
    s.p++;
    return;
  }
  for (;;) {
    if (b[s.p] !== QUOTE) s.fail();
    const k = s.p;
    s.string();
    const read = key(k);
    s.ws();
    s.expect(COLON);
    s.ws();
    value(read);
    s.ws();
    const c = b[s.p];
    if (c === COMMA) {
      s.p++;
      s.ws();
    } else if (c === RBRACE) {
      s.p++;
      return;
    } else s.fail();
  }
}

/** The fields of one entry as scanned; like JSON.parse, the last of repeated keys wins. */
interface EntryFields {
  dtype?: string;
  dtypeIsString: boolean;
  shapeRange?: [number, number];
  shapeIsList: boolean;
  offsetsRange?: [number, number];
  offsetsIsList: boolean;
}

/**
 * What the scan collects: the valid entries as columns, in file order (any invalid one fails the
 * header, so the first error by the reference validator's order is kept instead), and the metadata.
 */
class HeaderCollector {
  readonly names: string[] = [];
  readonly dtypes = new Column(new Uint8Array(1024));
  readonly begins = new Column(new Float64Array(1024));
  readonly ends = new Column(new Float64Array(1024));
  readonly shapeStarts = new Column(new Uint32Array(1024));
  readonly dims = new Column(new Float64Array(1024));
  /** Array index of each valid entry's name, -1 for other names. */
  readonly indexKeys: number[] = [];
  anyIndexKey = false;
  metadata: Record<string, string> | undefined;
  private firstIndexed: { index: number; error: Deferred } | undefined;
  private firstNamed: Deferred | undefined;
  private readonly shape = new NumberList();
  private readonly offsets = new NumberList();

  constructor(private readonly s: Scanner) {}

  /** The error the reference validator reports first: Object.entries order, array-index names ascending first. */
  get firstError(): Deferred | undefined {
    return this.firstIndexed?.error ?? this.firstNamed;
  }

  private defer(name: string, error: Deferred): void {
    const index = arrayIndex(name);
    if (index >= 0) {
      if (!this.firstIndexed || index < this.firstIndexed.index) this.firstIndexed = { index, error };
    } else this.firstNamed ??= error;
  }

  /** One tensor entry's value. */
  entry(name: string): void {
    const s = this.s;
    if (s.b[s.p] !== LBRACE) {
      this.defer(name, { code: 'BAD_ENTRY', detail: 'entry is not an object with dtype, shape and data_offsets', tensor: name });
      s.skipValue();
      return;
    }
    this.add(name, this.fields());
  }

  /** The fields of the entry being scanned: one object, reset per entry (a header may hold millions). */
  private readonly f: EntryFields = { dtypeIsString: false, shapeIsList: false, offsetsIsList: false };
  private readonly entryKey = (k: number): number => this.s.entryKey(k);
  private readonly entryField = (key: number): void => {
    const { s, f } = this;
    const b = s.b;
    const v = s.p;
    if (key === KEY_DTYPE) {
      f.dtypeIsString = b[v] === QUOTE;
      if (f.dtypeIsString) {
        s.string();
        f.dtype = s.decode(v);
      } else s.skipValue();
    } else if (key === KEY_SHAPE) {
      f.shapeIsList = b[v] === LBRACK;
      if (f.shapeIsList) s.numberList(this.shape);
      else s.skipValue();
      f.shapeRange = [v, s.p];
    } else if (key === KEY_OFFSETS) {
      f.offsetsIsList = b[v] === LBRACK;
      if (f.offsetsIsList) s.numberList(this.offsets);
      else s.skipValue();
      f.offsetsRange = [v, s.p];
    } else s.skipValue();
  };

  private fields(): EntryFields {
    const f = this.f;
    f.dtype = f.shapeRange = f.offsetsRange = undefined;
    f.dtypeIsString = f.shapeIsList = f.offsetsIsList = false;
    eachMember(this.s, this.entryKey, this.entryField);
    return f;
  }

  /** The checks of the reference validator, in its order; then the entry joins the columns. */
  private add(name: string, f: EntryFields): void {
    const s = this.s;
    if (!f.dtypeIsString) return this.defer(name, { code: 'BAD_ENTRY', detail: 'missing or non-string "dtype"', tensor: name });
    const d = dtypeIndex(f.dtype!);
    if (d === undefined) return this.defer(name, { code: 'UNKNOWN_DTYPE', detail: `unknown dtype "${f.dtype}"`, tensor: name });
    if (!f.shapeRange || !f.shapeIsList || !validCounts(this.shape)) {
      return this.defer(name, { code: 'BAD_SHAPE', detail: `shape must be a list of non-negative integers, got ${JSON.stringify(sourceValue(s, f.shapeRange))}`, tensor: name });
    }
    const o = this.offsets.values;
    if (!f.offsetsRange || !f.offsetsIsList || o.length !== 2 || !validCounts(this.offsets) || o[1]! < o[0]!) {
      return this.defer(name, { code: 'BAD_OFFSETS', detail: `data_offsets must be [begin, end] with 0 ≤ begin ≤ end, got ${JSON.stringify(sourceValue(s, f.offsetsRange))}`, tensor: name });
    }
    if (this.firstError) return; // the header fails anyway: stop collecting
    this.names.push(name);
    this.dtypes.push(d);
    this.begins.push(o[0]!);
    this.ends.push(o[1]!);
    this.shapeStarts.push(this.dims.n);
    for (const x of this.shape.values) this.dims.push(x);
    const index = arrayIndex(name);
    this.indexKeys.push(index);
    if (index >= 0) this.anyIndexKey = true;
  }

  /** The `__metadata__` value: an object of strings. */
  metadataValue(): void {
    const s = this.s;
    if (s.b[s.p] !== LBRACE) {
      this.defer('__metadata__', { code: 'BAD_METADATA', detail: '__metadata__ must be an object of strings' });
      s.skipValue();
      return;
    }
    const entries = Object.entries(this.metadataObject());
    for (const [k, v] of entries) {
      if (v instanceof NotAString) {
        this.defer('__metadata__', { code: 'BAD_METADATA', detail: `__metadata__ value for "${k}" is ${v.kind}, but every value must be a string` });
        return;
      }
    }
    // fromEntries defines keys as own properties, so even a key named "__proto__" survives.
    this.metadata = Object.fromEntries(entries) as Record<string, string>;
  }

  /** Built as JSON.parse builds it (own properties, array-index keys first, last value wins), to be checked in Object.entries order. */
  private metadataObject(): Record<string, string | NotAString> {
    const s = this.s;
    const obj: Record<string, string | NotAString> = {};
    const set = (k: string, v: string | NotAString) => Object.defineProperty(obj, k, { value: v, writable: true, enumerable: true, configurable: true });
    eachMember(
      s,
      (k) => s.decode(k),
      (key) => {
        const v = s.p;
        const c = s.b[v];
        if (c === QUOTE) {
          s.string();
          set(key, s.decode(v));
        } else {
          set(key, new NotAString(c === 0x6e ? 'null' : c === LBRACK ? 'an array' : c === LBRACE ? 'object' : c === 0x74 || c === 0x66 ? 'boolean' : 'number'));
          s.skipValue();
        }
      },
    );
    return obj;
  }
}

/** The whole header object; the first repeated tensor name, if any. */
function scanTopLevel(s: Scanner, h: HeaderCollector): string | undefined {
  const seen = new Set<string>();
  let duplicate: string | undefined;
  s.p = 0;
  eachMember(
    s,
    (k) => s.decode(k),
    (name) => {
      if (seen.has(name)) duplicate ??= name;
      else seen.add(name);
      if (name === '__metadata__') h.metadataValue();
      else h.entry(name);
    },
  );
  s.ws();
  if (s.p !== s.b.length) s.fail();
  return duplicate;
}

/** The collected entries as a table in data order: by (begin, end); ties keep the order Object.entries would list the names in. */
function dataOrderTable(h: HeaderCollector): TensorTable {
  const count = h.names.length;
  h.shapeStarts.push(h.dims.n);
  let order: Uint32Array | undefined;
  const bs = h.begins.a;
  const es = h.ends.a;
  if (h.anyIndexKey) {
    const indexed: number[] = [];
    const named: number[] = [];
    for (let i = 0; i < count; i++) (h.indexKeys[i]! >= 0 ? indexed : named).push(i);
    indexed.sort((x, y) => h.indexKeys[x]! - h.indexKeys[y]!);
    order = Uint32Array.from([...indexed, ...named]);
  }
  const at = (k: number) => (order ? order[k]! : k);
  let sorted = true;
  for (let k = 1; k < count && sorted; k++) {
    const x = at(k - 1);
    const y = at(k);
    if (bs[x]! > bs[y]! || (bs[x] === bs[y] && es[x]! > es[y]!)) sorted = false;
  }
  if (!sorted) {
    const idx = Array.from({ length: count }, (_, k) => at(k));
    idx.sort((x, y) => bs[x]! - bs[y]! || es[x]! - es[y]!); // stable
    order = Uint32Array.from(idx);
  }
  if (order) return permute(h.names, h.dtypes.a, bs, es, h.shapeStarts.a, h.dims.a, order);
  return new TensorTable({
    names: h.names,
    dtypes: h.dtypes.a.slice(0, count),
    begins: bs.slice(0, count),
    ends: es.slice(0, count),
    shapeStarts: h.shapeStarts.a.slice(0, count + 1),
    dims: h.dims.a.slice(0, h.dims.n),
  });
}

/**
 * Parses and validates a header. `fileSize` is the size of the whole file (8 + header + data);
 * undefined checks the header against the data size it declares itself (an upload of the header
 * alone).
 */
export function scanHeader(file: string, bytes: Uint8Array, fileSize?: number): ScannedHeader {
  if (bytes[0] !== LBRACE) {
    throw new SafetensorsError('HEADER_NOT_OBJECT', file, 'header does not start with "{" (not a safetensors file?)');
  }
  if (!isUtf8(bytes)) throw new SafetensorsError('HEADER_NOT_UTF8', file, 'header is not valid UTF-8');
  const s = new Scanner(bytes);
  const h = new HeaderCollector(s);
  let duplicate: string | undefined;
  try {
    duplicate = scanTopLevel(s, h);
  } catch (e) {
    if (e instanceof JsonSyntaxError) throw new SafetensorsError('HEADER_NOT_JSON', file, `header is not valid JSON (${e.message})`);
    throw e;
  }
  if (duplicate !== undefined) throw new SafetensorsError('DUPLICATE_NAME', file, 'tensor name appears twice in the header', duplicate);
  const first = h.firstError;
  if (first) throw new SafetensorsError(first.code, file, first.detail, first.tensor);
  const table = dataOrderTable(h);
  const dataBytes = checkOffsets(file, table, bytes.byteLength, fileSize);
  return { table, metadata: h.metadata, dataBytes };
}

function permute(names: string[], dtypes: Uint8Array, begins: Float64Array, ends: Float64Array, starts: Uint32Array, dims: Float64Array, order: Uint32Array): TensorTable {
  const n = order.length;
  const out = {
    names: new Array<string>(n),
    dtypes: new Uint8Array(n),
    begins: new Float64Array(n),
    ends: new Float64Array(n),
    shapeStarts: new Uint32Array(n + 1),
    dims: new Float64Array(starts[n]!),
  };
  let d = 0;
  for (let k = 0; k < n; k++) {
    const i = order[k]!;
    out.names[k] = names[i]!;
    out.dtypes[k] = dtypes[i]!;
    out.begins[k] = begins[i]!;
    out.ends[k] = ends[i]!;
    out.shapeStarts[k] = d;
    for (let j = starts[i]!; j < starts[i + 1]!; j++) out.dims[d++] = dims[j]!;
  }
  out.shapeStarts[n] = d;
  return new TensorTable(out);
}

/** Contiguity, sizes and the file length, tensor by tensor in data order; returns the data size. */
function checkOffsets(file: string, t: TensorTable, headerBytes: number, fileSize: number | undefined): number {
  let expected = 0;
  for (let i = 0; i < t.length; i++) {
    const begin = t.begins[i]!;
    const end = t.ends[i]!;
    if (begin > expected) {
      throw new SafetensorsError('OFFSET_GAP', file, `data starts at ${begin} but the previous tensor ends at ${expected}: the buffer has a hole`, t.name(i));
    }
    if (begin < expected) {
      throw new SafetensorsError('OFFSET_OVERLAP', file, `data starts at ${begin}, inside the previous tensor (which ends at ${expected})`, t.name(i));
    }
    const dtype = t.dtype(i);
    const numel = t.numel(i);
    const bits = numel * DTYPE_BITS[dtype]!;
    if (!Number.isSafeInteger(bits)) throw new SafetensorsError('BAD_SHAPE', file, `shape [${t.shape(i)}] has too many elements to address`, t.name(i));
    if (bits % 8 !== 0) throw new SafetensorsError('MISALIGNED', file, `${numel} × ${dtype} is not a whole number of bytes`, t.name(i));
    if (end - begin !== bits / 8) {
      throw new SafetensorsError('SIZE_MISMATCH', file, `shape [${t.shape(i)}] of ${dtype} needs ${bits / 8} bytes but data_offsets give ${end - begin}`, t.name(i));
    }
    expected = end;
  }
  if (fileSize === undefined) return expected;
  const total = 8 + headerBytes + expected;
  if (total > fileSize) {
    let cut: string | undefined;
    for (let i = 0; i < t.length && cut === undefined; i++) if (8 + headerBytes + t.ends[i]! > fileSize) cut = t.name(i);
    throw new SafetensorsError('FILE_TOO_SHORT', file, `file is ${fileSize} bytes but its header describes ${total} (truncated download?)`, cut);
  }
  if (total < fileSize) {
    throw new SafetensorsError('FILE_TOO_LONG', file, `file is ${fileSize} bytes but its header describes only ${total}: ${fileSize - total} trailing bytes are not indexed`);
  }
  return expected;
}

