import { z } from 'zod';
import { isPortType } from './ports.ts';
import { parseSemver } from './semver.ts';

/**
 * Node definitions: what a node type accepts (typed input ports), produces (typed output ports) and
 * is configured by (named params, a zod object: defaults, ranges and descriptions in one place, exported
 * as JSON Schema for the editor). The engine treats values as opaque; node packages tell TypeScript
 * what each port type carries by augmenting `PortValueTypes`:
 *
 *   declare module '../src/graph/node.ts' { interface PortValueTypes { LORA: MyLoraValue } }
 */

export interface InputPort {
  readonly type: string | readonly string[];
  readonly description?: string;
  /** The node runs without it (a list input may then have no links at all). */
  readonly optional?: boolean;
  /** Accepts several links, in order (`"in": { "loras": ["a.lora", "b.lora"] }`). */
  readonly list?: boolean;
}

export interface OutputPort {
  readonly type: string;
  readonly description?: string;
}

/** Port base type → value type, filled in by node packages (module augmentation). */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface PortValueTypes {}

type BaseOf<T extends string> = T extends `${infer B}<${string}>` ? B : T;
type ValueOfType<T> = T extends string
  ? BaseOf<T> extends keyof PortValueTypes
    ? PortValueTypes[BaseOf<T>]
    : unknown
  : T extends readonly (infer U)[]
    ? ValueOfType<U>
    : unknown;

export type InputValues<I extends Record<string, InputPort>> = {
  [K in keyof I]: I[K] extends { list: true }
    ? ValueOfType<I[K]['type']>[]
    : I[K] extends { optional: true }
      ? ValueOfType<I[K]['type']> | undefined
      : ValueOfType<I[K]['type']>;
};

export type OutputValues<O extends Record<string, OutputPort>> = { [K in keyof O]: ValueOfType<O[K]['type']> };

/** The shape library operations accept (structurally the same as `OpContext` in src/adapter/context.ts). */
export interface OpContextLike {
  signal?: AbortSignal;
  onProgress?: (done: number, total: number, label?: string) => void;
  log?: (message: string) => void;
}

/** What a save node embeds in the files it writes, so the run can be reproduced from the file alone. */
export interface Provenance {
  /** The recipe as run, canonical, without its `ui` block. */
  recipe: unknown;
  /** `--set` values applied on top of it (by exposed name). */
  overrides: Record<string, unknown>;
  /** loraflow's version. */
  version: string;
  /** The node that wrote the file. */
  nodeId: string;
}

export interface RunContext {
  readonly runId: string;
  readonly nodeId: string;
  readonly nodeType: string;
  readonly signal: AbortSignal;
  /** Reports progress; throws when the run was cancelled, so long loops that report also stop. */
  progress(value: number, max: number, label?: string): void;
  log(message: string): void;
  /**
   * Resolves a file-path param against the model root configured for `kind` (`loras`,
   * `checkpoints`, `output`, …; the current directory when not configured). Throws when the path
   * would escape the root.
   */
  resolvePath(value: string, kind: string): string;
  /**
   * Where to write an output file named by a param. The file is moved to its final place (the
   * param resolved against the `output` root) only when the whole run succeeds, so a failed or
   * cancelled run leaves no output behind and never a half-finished set of outputs.
   */
  outputPath(value: string, kind?: string): Promise<string>;
  /** A directory private to this run, removed when the run ends. */
  tempDir(): Promise<string>;
  provenance(): Provenance;
  /** `{ signal, onProgress, log }` wired to this node, ready for library operations. */
  readonly op: OpContextLike;
  /**
   * Frees something this node's outputs hold (an open file) when they are dropped: when they leave
   * the cache, at the end of the run when they are not cached, or when the node fails.
   */
  onDispose(free: () => void | Promise<void>): void;
}

/** Rewrites a node's params and links from one major version to the next. */
export type NodeMigration = (node: { params: Record<string, unknown>; in: Record<string, string | string[]> }) => {
  params: Record<string, unknown>;
  in: Record<string, string | string[]>;
};

export interface NodeProblemSpec {
  param?: string;
  input?: string;
  message: string;
}

type AnyParams = z.ZodObject;

export interface NodeSpec<I extends Record<string, InputPort>, O extends Record<string, OutputPort>, P extends AnyParams> {
  /** Stable id stored in recipes; never renamed. */
  type: string;
  /** Semver of the node's interface (ports and params); a major bump needs a migration. */
  v: string;
  title: string;
  category: string;
  description: string;
  inputs: I;
  outputs: O;
  params: P;
  /** Writes files: an execution root when a recipe names no `outputs`. */
  output?: boolean;
  /** Default true. False: never reused from the cache, and neither is anything downstream. */
  cacheable?: boolean;
  /** Keyed by the major version migrated *from* (1 → 2 is `migrate[1]`). */
  migrate?: Readonly<Record<number, NodeMigration>>;
  /** Cross-field checks run at validation time, with the number of links on each input. */
  check?(params: z.output<P>, links: { [K in keyof I]: number }): NodeProblemSpec[];
  run(ctx: RunContext, inputs: InputValues<I>, params: z.output<P>): Promise<OutputValues<O>>;
  /** A small JSON-safe description of the result for events and logs. */
  summarize?(outputs: OutputValues<O>, params: z.output<P>): unknown;
  /** Frees what the outputs hold (open files) when they leave the cache. */
  dispose?(outputs: OutputValues<O>): void | Promise<void>;
}

export interface PathParamInfo {
  name: string;
  kind: string;
  mode: 'read' | 'write';
  optional: boolean;
}

/** A node definition with its types erased, as the registry and engine see it. */
export interface NodeDefinition {
  readonly type: string;
  readonly v: string;
  readonly title: string;
  readonly category: string;
  readonly description: string;
  readonly inputs: Readonly<Record<string, InputPort>>;
  readonly outputs: Readonly<Record<string, OutputPort>>;
  readonly params: z.ZodObject;
  readonly output: boolean;
  readonly cacheable: boolean;
  readonly migrate: Readonly<Record<number, NodeMigration>>;
  /** Params that name files, with the model root they resolve against. */
  readonly pathParams: readonly PathParamInfo[];
  readonly paramOrder: readonly string[];
  check?(params: Record<string, unknown>, links: Record<string, number>): NodeProblemSpec[];
  run(ctx: RunContext, inputs: Record<string, unknown>, params: Record<string, unknown>): Promise<Record<string, unknown>>;
  summarize?(outputs: Record<string, unknown>, params: Record<string, unknown>): unknown;
  dispose?(outputs: Record<string, unknown>): void | Promise<void>;
}

const PATH_META = 'x-path';
const NODE_TYPE = /^[a-z][a-z0-9]*(?:[-.][a-z0-9]+)*$/;
const PORT_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A param naming a file, resolved against the model root `kind`; `write` params are outputs. */
export function pathParam(kind: string, mode: 'read' | 'write', description: string): z.ZodString {
  return z.string().min(1).describe(description).meta({ [PATH_META]: { kind, mode } });
}

function unwrap(schema: z.ZodType): { inner: z.ZodType; optional: boolean } {
  let s = schema;
  let optional = false;
  for (;;) {
    const def = s._zod.def as { type: string; innerType?: z.ZodType };
    if ((def.type === 'optional' || def.type === 'default' || def.type === 'nullable' || def.type === 'prefault') && def.innerType) {
      if (def.type !== 'nullable') optional = true;
      s = def.innerType;
    } else return { inner: s, optional };
  }
}

function pathParamsOf(params: z.ZodObject): PathParamInfo[] {
  const out: PathParamInfo[] = [];
  for (const [name, schema] of Object.entries(params.shape)) {
    const { inner, optional } = unwrap(schema as z.ZodType);
    const meta = (inner.meta() ?? (schema as z.ZodType).meta()) as Record<string, unknown> | undefined;
    const p = meta?.[PATH_META] as { kind: string; mode: 'read' | 'write' } | undefined;
    if (p) out.push({ name, kind: p.kind, mode: p.mode, optional });
  }
  return out;
}

/** Checks a definition's declarations once, when the node package loads, so mistakes surface early. */
export function defineNode<const I extends Record<string, InputPort>, const O extends Record<string, OutputPort>, P extends AnyParams>(
  spec: NodeSpec<I, O, P>,
): NodeDefinition {
  const where = `node type "${spec.type}"`;
  if (!NODE_TYPE.test(spec.type)) throw new Error(`${where}: type must be lower-case words joined by - or . (e.g. merge-loras)`);
  if (!parseSemver(spec.v)) throw new Error(`${where}: v "${spec.v}" is not a major.minor.patch version`);
  for (const [name, port] of [...Object.entries(spec.inputs), ...Object.entries(spec.outputs)]) {
    if (!PORT_NAME.test(name)) throw new Error(`${where}: port name "${name}" must be an identifier`);
    const types = typeof port.type === 'string' ? [port.type] : port.type;
    for (const t of types) if (!isPortType(t)) throw new Error(`${where}: port "${name}" has bad type "${t}" (expected NAME or NAME<refinement>)`);
  }
  for (const name of Object.keys(spec.params.shape)) {
    if (!PORT_NAME.test(name)) throw new Error(`${where}: param name "${name}" must be an identifier`);
  }
  return {
    type: spec.type,
    v: spec.v,
    title: spec.title,
    category: spec.category,
    description: spec.description,
    inputs: spec.inputs,
    outputs: spec.outputs,
    // Unknown params are errors (a typo must not be silently ignored).
    params: spec.params.strict(),
    output: spec.output ?? false,
    cacheable: spec.cacheable ?? true,
    migrate: spec.migrate ?? {},
    pathParams: pathParamsOf(spec.params),
    paramOrder: Object.keys(spec.params.shape),
    check: spec.check as NodeDefinition['check'],
    run: spec.run as unknown as NodeDefinition['run'],
    summarize: spec.summarize as NodeDefinition['summarize'],
    dispose: spec.dispose as NodeDefinition['dispose'],
  };
}

/** One definition as the editor and `loraflow nodes --json` see it. */
export interface NodeDefinitionJson {
  type: string;
  v: string;
  title: string;
  category: string;
  description: string;
  inputs: Record<string, { type: string | readonly string[]; description?: string; optional: boolean; list: boolean }>;
  outputs: Record<string, { type: string; description?: string }>;
  output: boolean;
  cacheable: boolean;
  paramsSchema: Record<string, unknown>;
  paramOrder: string[];
}

export function nodeDefinitionJson(def: NodeDefinition): NodeDefinitionJson {
  return {
    type: def.type,
    v: def.v,
    title: def.title,
    category: def.category,
    description: def.description,
    inputs: Object.fromEntries(
      Object.entries(def.inputs).map(([k, p]) => [k, { type: p.type, ...(p.description ? { description: p.description } : {}), optional: !!p.optional, list: !!p.list }]),
    ),
    outputs: Object.fromEntries(Object.entries(def.outputs).map(([k, p]) => [k, { type: p.type, ...(p.description ? { description: p.description } : {}) }])),
    output: def.output,
    cacheable: def.cacheable,
    paramsSchema: z.toJSONSchema(def.params, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>,
    paramOrder: [...def.paramOrder],
  };
}

/** Every definition, keyed by type (the `/api/node-defs` payload). */
export function nodeDefinitionsJson(defs: Iterable<NodeDefinition>): Record<string, NodeDefinitionJson> {
  const out: Record<string, NodeDefinitionJson> = {};
  for (const d of [...defs].sort((a, b) => a.type.localeCompare(b.type))) out[d.type] = nodeDefinitionJson(d);
  return out;
}
