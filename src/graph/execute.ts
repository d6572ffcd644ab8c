import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { faultOf, type Fault } from '../errors.ts';
import { canonicalRecipe, withoutUi } from './canonical.ts';
import { RunCache, type CacheEntry } from './cache.ts';
import { describeValue, jsonSafe } from './describe.ts';
import { RunEventEmitter, type PlanInfo, type RunEventListener } from './events.ts';
import type { Problem } from './problems.ts';
import type { NodeRegistry } from './registry.ts';
import { createPathResolver, type RootsConfig } from './roots.ts';
import { planRun, type RunPlan } from './run-plan.ts';
import { RunState, throwIfAborted } from './run-state.ts';
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

export async function runRecipe(recipe: unknown, options: RunOptions): Promise<RunOutcome> {
  const cache = options.cache;
  return cache ? cache.exclusive(() => runWithCache(recipe, options, cache, false)) : runWithCache(recipe, options, new RunCache(), true);
}

/** Runs one node: its inputs from the values so far, its outputs checked, summarized, and cached or kept for the commit. */
async function runNode(state: RunState, node: PlannedNode, run: RunPlan, cache: RunCache): Promise<void> {
  throwIfAborted(state.signal);
  state.current = node;
  const inputs: Record<string, unknown> = {};
  for (const [name, links] of Object.entries(node.inputs)) {
    const vals = links.map((l) => state.values.get(l.nodeId)![l.output]);
    inputs[name] = node.def.inputs[name]!.list ? vals : vals[0];
  }
  state.currentInputs = inputs;
  const { id } = node;
  state.events.emit({ type: 'node.start', nodeId: id, nodeType: node.def.type, title: node.title });
  const t0 = performance.now();
  const outputs = await node.def.run(state.context(node), inputs, node.params);
  for (const name of Object.keys(node.def.outputs)) {
    if (outputs?.[name] === undefined) {
      await state.takeDisposer(node, outputs)?.();
      throw new Error(`${node.def.type} returned no value for its output "${name}"`);
    }
  }
  const summary = jsonSafe(node.def.summarize ? node.def.summarize(outputs, node.params) : describeValue(outputs));
  state.values.set(id, outputs);
  state.summaries.set(id, summary);
  if (node.def.output) state.pendingOutputs.push({ id, node, outputs, summary });
  else keepOrDispose(state, run, cache, id, { nodeType: node.def.type, outputs, summary, written: [], dispose: state.takeDisposer(node, outputs) });
  state.executed.push(id);
  state.current = undefined;
  state.events.emit({ type: 'node.done', nodeId: id, nodeType: node.def.type, ms: Math.round(performance.now() - t0), summary });
  throwIfAborted(state.signal);
}

/** A node's result into the cache, or, for a volatile node, its disposer to the end of the run. */
function keepOrDispose(state: RunState, run: RunPlan, cache: RunCache, id: string, entry: CacheEntry): void {
  if (!run.volatile.has(id)) cache.set(run.keys.get(id)!, entry);
  else if (entry.dispose) state.toDispose.push(entry.dispose);
}

/** Moves the staged files to their final names, then caches the output nodes' results with what they wrote. */
async function commitRun(state: RunState, run: RunPlan, cache: RunCache): Promise<string[]> {
  const byNode = await state.staged.commit();
  for (const p of state.pendingOutputs.splice(0)) {
    keepOrDispose(state, run, cache, p.id, { nodeType: p.node.def.type, outputs: p.outputs, summary: p.summary, written: byNode.get(p.id) ?? [], dispose: state.takeDisposer(p.node, p.outputs) });
  }
  return [...byNode.values()].flat().map((f) => f.path);
}

/** Rolls the staged files back and reports the cancel or the error, naming the node that was running. */
async function failRun(state: RunState, e: unknown, done: string[], ms: number): Promise<{ status: RunStatus; error: RunError }> {
  await state.staged.rollback();
  for (const p of state.pendingOutputs.splice(0)) {
    const dispose = state.takeDisposer(p.node, p.outputs);
    if (dispose) state.toDispose.push(dispose);
  }
  state.releaseHeld();
  const { current, events } = state;
  if (state.signal.aborted) {
    events.emit({ type: 'run.cancelled', ms, ...(current ? { nodeId: current.id, nodeType: current.def.type } : {}), executed: done });
    return { status: 'cancelled', error: { nodeId: current?.id, nodeType: current?.def.type, errorName: 'AbortError', fault: 'failure', message: 'cancelled' } };
  }
  const err = e instanceof Error ? e : new Error(String(e));
  const code = (err as { code?: unknown }).code;
  const error: RunError = { nodeId: current?.id, nodeType: current?.def.type, errorName: err.name, ...(typeof code === 'string' ? { code } : {}), fault: faultOf(err), message: err.message };
  events.emit({
    type: 'run.error',
    ms,
    ...(current
      ? {
          nodeId: current.id,
          nodeType: current.def.type,
          title: current.title,
          inputs: jsonSafe(Object.fromEntries(Object.entries(state.currentInputs ?? {}).map(([k, v]) => [k, describeValue(v)]))) as Record<string, unknown>,
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
  return { status: 'error', error };
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
  const run = await planRun(plan, cache, runId);
  const { info } = run;
  if (options.dryRun) {
    events.emit({ type: 'run.plan', plan: info });
    if (ownCache) await cache.clear();
    return { ...base, status: 'planned', ms: ms(), plan: info };
  }

  events.emit({ type: 'run.start', plan: info });
  const provenance = { recipe: canonicalRecipe(withoutUi(plan.recipe)), overrides: plan.overrides, version: LORAFLOW_VERSION };
  const state = new RunState(runId, events, options.signal ?? new AbortController().signal, { resolvePath, progressIntervalMs: options.progressIntervalMs, tempRoot: options.tempRoot, provenance });
  for (const id of info.cached) {
    const hit = run.hits.get(id)!;
    state.values.set(id, hit.outputs);
    state.summaries.set(id, hit.summary);
    events.emit({ type: 'node.cached', nodeId: id, nodeType: hit.nodeType, summary: hit.summary });
  }

  let status: RunStatus = 'success';
  let error: RunError | undefined;
  let written: string[] = [];
  const targetSummaries = () => Object.fromEntries(plan.targets.map((t) => [t, state.summaries.get(t) ?? null]));
  try {
    for (const id of run.toRun) await runNode(state, plan.nodes.get(id)!, run, cache);
    written = await commitRun(state, run, cache);
    events.emit({ type: 'run.success', ms: ms(), outputs: targetSummaries(), written });
  } catch (e) {
    ({ status, error } = await failRun(state, e, [...info.cached, ...state.executed], ms()));
  } finally {
    if (state.tempDir) await rm(await state.tempDir, { recursive: true, force: true });
    for (const d of state.toDispose) await d();
    if (ownCache) await cache.clear();
    else await cache.retainOnly(new Set(run.keys.values()));
  }

  return {
    runId,
    status,
    ms: ms(),
    plan: info,
    outputs: status === 'success' ? targetSummaries() : {},
    written,
    executed: state.executed,
    cached: info.cached,
    values: Object.fromEntries(state.values),
    ...(error ? { error } : {}),
  };
}

export type { Plan };
