import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { faultOf, type Fault } from '../errors.ts';
import { canonicalRecipe, withoutUi } from './canonical.ts';
import { RunCache, cacheKey, fingerprintFile, type FileFingerprint } from './cache.ts';
import { describeValue, jsonSafe } from './describe.ts';
import { RunEventEmitter, type PlanInfo, type RunEventListener } from './events.ts';
import type { Provenance, RunContext } from './node.ts';
import { StagedOutputs } from './outputs.ts';
import type { Problem } from './problems.ts';
import type { NodeRegistry } from './registry.ts';
import { createPathResolver, type RootsConfig } from './roots.ts';
import { validateRecipe, type Plan, type PlannedNode } from './validate.ts';
import { LORAFLOW_VERSION } from './version.ts';

/**
 * The executor: validate everything, plan (prune, order, look up the cache), then run node by node.
 * Cancellation is cooperative through an AbortSignal, checked between nodes and in every progress
 * report, and passed to the library so long operations stop inside. Files are written through
 * staging (see outputs.ts): a run that fails or is cancelled leaves no output file; results of the
 * nodes that finished stay in the cache, so running again resumes where it stopped.
 */

export interface RunOptions {
  registry: NodeRegistry;
  /** `--set` values by exposed name. */
  overrides?: Readonly<Record<string, unknown>>;
  roots?: RootsConfig;
  /** Directory that relative roots and the default root resolve against (default: process.cwd()). */
  cwd?: string;
  signal?: AbortSignal;
  onEvent?: RunEventListener;
  /** Results shared between runs; without it, everything is freed when the run ends. */
  cache?: RunCache;
  runId?: string;
  /** Validate and plan only: report what would run, what is cached and what would be written. */
  dryRun?: boolean;
  /** Minimum time between two progress events of one node (default 100 ms; first and last always sent). */
  progressIntervalMs?: number;
  /** Where per-run temporary directories go (default: the OS temp dir). */
  tempRoot?: string;
}

export type RunStatus = 'success' | 'error' | 'cancelled' | 'invalid' | 'planned';

export interface RunError {
  nodeId?: string;
  nodeType?: string;
  errorName: string;
  /** The error's own `code`, when it has a string one (e.g. a file-format error code). */
  code?: string;
  /** Whose move it is: the user's input (exit 2) or a failed run (exit 1). */
  fault: Fault;
  message: string;
}

/** What a run ended with; JSON-safe (it crosses worker boundaries). */
export interface RunResult {
  runId: string;
  status: RunStatus;
  ms: number;
  problems?: Problem[];
  plan?: PlanInfo;
  /** Summaries of the target nodes' results. */
  outputs: Record<string, unknown>;
  /** Files the run wrote (final paths). */
  written: string[];
  /** Nodes that ran. */
  executed: string[];
  /** Nodes whose results came from the cache. */
  cached: string[];
  error?: RunError;
}

/** `RunResult` plus the values themselves, for in-process callers. Values stay usable while they are in the cache passed in. */
export interface RunOutcome extends RunResult {
  values: Record<string, Record<string, unknown>>;
}

function abortError(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  return r instanceof Error ? r : Object.assign(new Error('cancelled'), { name: 'AbortError' });
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw abortError(signal);
}

export async function runRecipe(recipe: unknown, options: RunOptions): Promise<RunOutcome> {
  const cache = options.cache;
  return cache ? cache.exclusive(() => runWithCache(recipe, options, cache, false)) : runWithCache(recipe, options, new RunCache(), true);
}

async function runWithCache(recipe: unknown, options: RunOptions, cache: RunCache, ownCache: boolean): Promise<RunOutcome> {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  const runId = options.runId ?? randomUUID();
  const events = new RunEventEmitter(runId, options.onEvent);
  const resolvePath = createPathResolver(options.roots ?? {}, options.cwd ?? process.cwd());
  const base = { runId, outputs: {}, written: [], executed: [], cached: [], values: {} };

  const validated = validateRecipe(recipe, options.registry, { overrides: options.overrides, resolvePath });
  if (!validated.ok) {
    events.emit({ type: 'run.invalid', problems: validated.problems });
    return { ...base, status: 'invalid', ms: ms(), problems: validated.problems };
  }
  const plan = validated.plan;

  // Keys, cache hits, and which nodes actually need to run.
  const keys = new Map<string, string>();
  const volatile = new Set<string>();
  for (const id of plan.order) {
    const node = plan.nodes.get(id)!;
    const reads: (FileFingerprint | { path: string; missing: true })[] = [];
    for (const p of node.paths) if (p.mode === 'read') reads.push((await fingerprintFile(p.resolved)) ?? { path: p.resolved, missing: true });
    const links = Object.values(node.inputs).flat();
    if (!node.def.cacheable || links.some((l) => volatile.has(l.nodeId))) volatile.add(id);
    keys.set(
      id,
      cacheKey({
        type: node.def.type,
        v: node.def.v,
        params: node.params,
        inputs: Object.fromEntries(Object.entries(node.inputs).map(([name, ls]) => [name, ls.map((l) => `${keys.get(l.nodeId)}:${l.output}`)])),
        paths: node.paths.map((p) => ({ name: p.name, resolved: p.resolved })),
        reads,
        nonce: volatile.has(id) ? runId : undefined,
      }),
    );
  }
  const hits = new Map<string, Awaited<ReturnType<RunCache['lookup']>>>();
  for (const id of plan.order) {
    if (volatile.has(id)) continue;
    const hit = await cache.lookup(keys.get(id)!);
    if (hit) hits.set(id, hit);
  }
  const consumers = new Map<string, string[]>();
  for (const id of plan.order) for (const l of Object.values(plan.nodes.get(id)!.inputs).flat()) consumers.set(l.nodeId, [...(consumers.get(l.nodeId) ?? []), id]);
  const needed = new Set<string>();
  for (const id of [...plan.order].reverse()) {
    if (plan.targets.includes(id) || (consumers.get(id) ?? []).some((c) => needed.has(c) && !hits.has(c))) needed.add(id);
  }
  const toRun = plan.order.filter((id) => needed.has(id) && !hits.has(id));
  const info: PlanInfo = {
    order: plan.order,
    targets: plan.targets,
    cached: plan.order.filter((id) => hits.has(id)),
    run: toRun,
    skipped: plan.order.filter((id) => !needed.has(id) && !hits.has(id)),
    writes: toRun.flatMap((id) => plan.nodes.get(id)!.paths.filter((p) => p.mode === 'write').map((p) => p.resolved)),
    migrations: plan.migrations,
  };
  if (options.dryRun) {
    events.emit({ type: 'run.plan', plan: info });
    if (ownCache) await cache.clear();
    return { ...base, status: 'planned', ms: ms(), plan: info };
  }

  events.emit({ type: 'run.start', plan: info });
  const values = new Map<string, Record<string, unknown>>();
  const summaries = new Map<string, unknown>();
  const executed: string[] = [];
  for (const id of info.cached) {
    const hit = hits.get(id)!;
    values.set(id, hit.outputs);
    summaries.set(id, hit.summary);
    events.emit({ type: 'node.cached', nodeId: id, nodeType: hit.nodeType, summary: hit.summary });
  }

  const signal = options.signal ?? new AbortController().signal;
  const staged = new StagedOutputs();
  const toDispose: (() => void | Promise<void>)[] = [];
  const pendingOutputs: { id: string; node: PlannedNode; outputs: Record<string, unknown>; summary: unknown }[] = [];
  let tempDir: Promise<string> | undefined;
  let current: PlannedNode | undefined;
  let currentInputs: Record<string, unknown> | undefined;
  const provenanceBase = { recipe: canonicalRecipe(withoutUi(plan.recipe)), overrides: plan.overrides, version: LORAFLOW_VERSION };

  const makeContext = (node: PlannedNode): RunContext => {
    let lastEmit = -Infinity;
    const interval = options.progressIntervalMs ?? 100;
    const at = { nodeId: node.id, nodeType: node.def.type };
    const progress = (value: number, max: number, label?: string): void => {
      throwIfAborted(signal);
      const now = performance.now();
      if (value <= 0 || value >= max || now - lastEmit >= interval) {
        lastEmit = now;
        events.emit({ type: 'node.progress', ...at, value, max, ...(label !== undefined ? { label } : {}) });
      }
    };
    const log = (message: string): void => void events.emit({ type: 'node.log', ...at, message });
    return {
      runId,
      nodeId: node.id,
      nodeType: node.def.type,
      signal,
      progress,
      log,
      resolvePath,
      outputPath: (value, kind = 'output') => staged.stage(resolvePath(value, kind), node.id),
      tempDir: () => (tempDir ??= mkdtemp(join(options.tempRoot ?? tmpdir(), 'loraflow-run-'))),
      provenance: (): Provenance => ({ ...provenanceBase, nodeId: node.id }),
      op: { signal, onProgress: progress, log },
    };
  };

  let status: RunStatus = 'success';
  let error: RunError | undefined;
  let written: string[] = [];
  try {
    for (const id of toRun) {
      throwIfAborted(signal);
      const node = plan.nodes.get(id)!;
      current = node;
      const inputs: Record<string, unknown> = {};
      for (const [name, links] of Object.entries(node.inputs)) {
        const vals = links.map((l) => values.get(l.nodeId)![l.output]);
        inputs[name] = node.def.inputs[name]!.list ? vals : vals[0];
      }
      currentInputs = inputs;
      events.emit({ type: 'node.start', nodeId: id, nodeType: node.def.type, title: node.title });
      const t0 = performance.now();
      const outputs = await node.def.run(makeContext(node), inputs, node.params);
      const dispose = node.def.dispose ? () => node.def.dispose!(outputs) : undefined;
      for (const name of Object.keys(node.def.outputs)) {
        if (outputs?.[name] === undefined) {
          if (dispose) await dispose();
          throw new Error(`${node.def.type} returned no value for its output "${name}"`);
        }
      }
      const summary = jsonSafe(node.def.summarize ? node.def.summarize(outputs, node.params) : describeValue(outputs));
      values.set(id, outputs);
      summaries.set(id, summary);
      if (node.def.output) pendingOutputs.push({ id, node, outputs, summary });
      else if (volatile.has(id)) {
        if (dispose) toDispose.push(dispose);
      } else cache.set(keys.get(id)!, { nodeType: node.def.type, outputs, summary, written: [], dispose });
      executed.push(id);
      current = undefined;
      events.emit({ type: 'node.done', nodeId: id, nodeType: node.def.type, ms: Math.round(performance.now() - t0), summary });
      throwIfAborted(signal);
    }
    const byNode = await staged.commit();
    written = [...byNode.values()].flat().map((f) => f.path);
    for (const p of pendingOutputs.splice(0)) {
      const dispose = p.node.def.dispose ? () => p.node.def.dispose!(p.outputs) : undefined;
      if (volatile.has(p.id)) {
        if (dispose) toDispose.push(dispose);
      } else cache.set(keys.get(p.id)!, { nodeType: p.node.def.type, outputs: p.outputs, summary: p.summary, written: byNode.get(p.id) ?? [], dispose });
    }
    events.emit({ type: 'run.success', ms: ms(), outputs: Object.fromEntries(plan.targets.map((t) => [t, summaries.get(t) ?? null])), written });
  } catch (e) {
    await staged.rollback();
    for (const p of pendingOutputs.splice(0)) if (p.node.def.dispose) toDispose.push(() => p.node.def.dispose!(p.outputs));
    const done = [...info.cached, ...executed];
    if (signal.aborted) {
      status = 'cancelled';
      error = { nodeId: current?.id, nodeType: current?.def.type, errorName: 'AbortError', fault: 'failure', message: 'cancelled' };
      events.emit({ type: 'run.cancelled', ms: ms(), ...(current ? { nodeId: current.id, nodeType: current.def.type } : {}), executed: done });
    } else {
      status = 'error';
      const err = e instanceof Error ? e : new Error(String(e));
      const code = (err as { code?: unknown }).code;
      error = { nodeId: current?.id, nodeType: current?.def.type, errorName: err.name, ...(typeof code === 'string' ? { code } : {}), fault: faultOf(err), message: err.message };
      events.emit({
        type: 'run.error',
        ms: ms(),
        ...(current
          ? {
              nodeId: current.id,
              nodeType: current.def.type,
              title: current.title,
              inputs: jsonSafe(Object.fromEntries(Object.entries(currentInputs ?? {}).map(([k, v]) => [k, describeValue(v)]))) as Record<string, unknown>,
              params: jsonSafe(current.params) as Record<string, unknown>,
            }
          : {}),
        errorName: err.name,
        ...(typeof code === 'string' ? { code } : {}),
        fault: error.fault,
        message: err.message,
        stack: err.stack,
        executed: done,
      });
    }
  } finally {
    if (tempDir) await rm(await tempDir, { recursive: true, force: true });
    for (const d of toDispose) await d();
    if (ownCache) await cache.clear();
    else await cache.retainOnly(new Set(keys.values()));
  }

  const valueRecord: Record<string, Record<string, unknown>> = {};
  for (const [id, v] of values) valueRecord[id] = v;
  return {
    runId,
    status,
    ms: ms(),
    plan: info,
    outputs: status === 'success' ? Object.fromEntries(plan.targets.map((t) => [t, summaries.get(t) ?? null])) : {},
    written,
    executed,
    cached: info.cached,
    values: valueRecord,
    ...(error ? { error } : {}),
  };
}

export type { Plan };
