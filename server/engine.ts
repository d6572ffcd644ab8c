import { pathToFileURL } from 'node:url';
import {
  GraphWorker, NodeRegistry, createPathResolver, formatProblems, nodeDefinitionsJson, rootsFor, validateRecipe,
  type NodeDefinitionJson, type Problem, type RootsConfig, type RunEvent, type RunResult,
} from '../src/graph/index.ts';
import { ApiError } from './errors.ts';
import type { EventInput } from './event-hub.ts';
import type { Executor, RunOutcome } from './run-queue.ts';

/** The node package loraflow ships; tests point the server at their own. */
export const DEFAULT_NODES_MODULE = new URL('../nodes/index.ts', import.meta.url).href;

export interface EngineOptions {
  /** Module exporting `registry` (a NodeRegistry): a file path or URL. */
  nodesModule?: string | URL;
  /** `--root NAME=DIR`, as the CLI's `run` takes them. */
  roots: RootsConfig;
  /** What relative roots, and kinds with no root, resolve against. */
  cwd: string;
  /** Given to the node package's `setup` in the worker (e.g. the compute backend). */
  backend?: string;
}

function toUrl(m: string | URL): string {
  if (m instanceof URL) return m.href;
  return /^[a-z]+:/i.test(m) ? m : pathToFileURL(m).href;
}

/**
 * The server's one door into the graph engine: node definitions, validation with the same per-node
 * report the CLI prints, and execution in a worker thread (the same `GraphWorker` the CLI can use,
 * so a run in the editor and `loraflow run` take one code path). The worker lives as long as the
 * server, so its result cache makes re-runs of an edited graph fast; if it dies, the next run gets
 * a fresh one.
 */
export class Engine {
  private worker?: GraphWorker;
  private readonly resolvePath;

  private constructor(
    readonly registry: NodeRegistry,
    private readonly nodesModule: string,
    readonly roots: RootsConfig,
    readonly cwd: string,
    private readonly backend?: string,
  ) {
    this.resolvePath = createPathResolver(roots, cwd);
  }

  static async load(opts: EngineOptions): Promise<Engine> {
    const url = toUrl(opts.nodesModule ?? DEFAULT_NODES_MODULE);
    const mod = (await import(url)) as { registry?: unknown };
    if (!(mod.registry instanceof NodeRegistry)) throw new Error(`${url} does not export a NodeRegistry named "registry"`);
    return new Engine(mod.registry, url, opts.roots, opts.cwd, opts.backend);
  }

  nodeDefinitions(): Record<string, NodeDefinitionJson> {
    return nodeDefinitionsJson(this.registry.list());
  }

  /**
   * Every root the editor may browse: the configured ones plus each kind a node's file param uses,
   * resolved exactly as the engine resolves that kind (an unconfigured kind means the working dir).
   */
  browseRoots(): Record<string, string> {
    const kinds = new Set(Object.keys(this.roots));
    for (const def of this.registry.list()) for (const p of def.pathParams) kinds.add(p.kind);
    return Object.fromEntries([...kinds].sort().map((k) => [k, rootsFor(this.roots, k, this.cwd)[0]!]));
  }

  /** Problems (empty when the recipe can run): unknown types, bad params, links, cycles, paths, files. */
  validate(recipe: unknown, overrides: Record<string, unknown> = {}, checkFiles = true): Problem[] {
    const r = validateRecipe(recipe, this.registry, { overrides, resolvePath: this.resolvePath, checkFiles });
    return r.ok ? [] : r.problems;
  }

  /** Throws the 400 that POST /api/runs answers for an invalid recipe: the CLI's report, plus each problem as data. */
  assertValid(recipe: unknown, overrides: Record<string, unknown>): void {
    const problems = this.validate(recipe, overrides);
    if (problems.length > 0) throw new ApiError(400, 'invalid_recipe', formatProblems(problems), { problems });
  }

  /** The executor the run queue drives: one run at a time in the worker, events forwarded as they come. */
  readonly execute: Executor = async (runId, job, emit, signal) => {
    this.worker ??= new GraphWorker({ nodesModule: this.nodesModule, setup: this.backend ? { backend: this.backend } : undefined });
    const worker = this.worker;
    const handle = worker.run(job.recipe, { runId, overrides: job.overrides, roots: this.roots, cwd: this.cwd, signal, onEvent: (e) => emit(forwardEvent(e)) });
    const result = await handle.result;
    if (result.error?.errorName === 'WorkerError') {
      // The thread is gone (crash, out of memory): drop it so the next run starts a new one.
      if (this.worker === worker) this.worker = undefined;
      void worker.close();
    }
    return outcomeOf(result);
  };

  async close(): Promise<void> {
    await this.worker?.close();
    this.worker = undefined;
  }
}

/**
 * Engine events keep every field; their per-run `seq` becomes `runSeq` because the server numbers
 * all events of all runs in one sequence (that is what `/ws?since=N` replays from).
 */
export function forwardEvent(e: RunEvent): EventInput {
  const { seq, ...rest } = e;
  return { ...rest, runSeq: seq };
}

export function outcomeOf(r: RunResult): RunOutcome {
  const result = { outputs: r.outputs, written: r.written, executed: r.executed, cached: r.cached, plan: r.plan, ms: r.ms };
  if (r.status === 'success') return { status: 'success', result };
  if (r.status === 'cancelled') return { status: 'cancelled', result };
  if (r.status === 'invalid') {
    const problems = r.problems ?? [];
    return { status: 'error', result, error: { message: formatProblems(problems), errorName: 'RecipeInvalid', problems } };
  }
  return { status: 'error', result, error: { message: r.error?.message ?? `run ended with status ${r.status}`, ...r.error } };
}
