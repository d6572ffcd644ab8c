/**
 * One run in progress: the values and summaries of the nodes so far, the outputs waiting for the
 * commit, what to dispose at the end, and the node running now (so a failure names it). The
 * context a node runs with (progress throttled and cancellable, staged output paths, a private
 * temp directory, provenance) is made here too.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunEventEmitter } from './events.ts';
import type { Provenance, RunContext } from './node.ts';
import { StagedOutputs } from './outputs.ts';
import type { PathResolver } from './roots.ts';
import type { PlannedNode } from './validate.ts';

type Disposer = () => void | Promise<void>;

export function abortError(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  return r instanceof Error ? r : Object.assign(new Error('cancelled'), { name: 'AbortError' });
}

export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw abortError(signal);
}

export interface PendingOutput {
  id: string;
  node: PlannedNode;
  outputs: Record<string, unknown>;
  summary: unknown;
}

export class RunState {
  readonly values = new Map<string, Record<string, unknown>>();
  readonly summaries = new Map<string, unknown>();
  readonly executed: string[] = [];
  readonly staged = new StagedOutputs();
  readonly toDispose: Disposer[] = [];
  /** What each node's run registered with `onDispose`, until its outputs are cached or dropped. */
  private readonly held = new Map<string, Disposer[]>();
  /** Output nodes' results, cached only once their files are committed. */
  readonly pendingOutputs: PendingOutput[] = [];
  tempDir?: Promise<string>;
  current?: PlannedNode;
  currentInputs?: Record<string, unknown>;

  constructor(
    readonly runId: string,
    readonly events: RunEventEmitter,
    readonly signal: AbortSignal,
    private readonly env: { resolvePath: PathResolver; progressIntervalMs?: number; tempRoot?: string; provenance: Omit<Provenance, 'nodeId'> },
  ) {}

  context(node: PlannedNode): RunContext {
    const { signal, events, staged } = this;
    const { resolvePath } = this.env;
    let lastEmit = -Infinity;
    const interval = this.env.progressIntervalMs ?? 100;
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
      runId: this.runId,
      nodeId: node.id,
      nodeType: node.def.type,
      signal,
      progress,
      log,
      resolvePath,
      outputPath: (value, kind = 'output') => staged.stage(resolvePath(value, kind), node.id),
      tempDir: () => (this.tempDir ??= mkdtemp(join(this.env.tempRoot ?? tmpdir(), 'loraflow-run-'))),
      provenance: (): Provenance => ({ ...this.env.provenance, nodeId: node.id }),
      op: { signal, onProgress: progress, log },
      onDispose: (free) => {
        const list = this.held.get(node.id) ?? [];
        list.push(free);
        this.held.set(node.id, list);
      },
    };
  }

  /** Everything that frees one node's outputs (its definition's `dispose`, then what its run registered), handed over once. */
  takeDisposer(node: PlannedNode, outputs: Record<string, unknown>): Disposer | undefined {
    const frees = this.held.get(node.id) ?? [];
    this.held.delete(node.id);
    const { dispose } = node.def;
    if (dispose) frees.unshift(() => dispose(outputs));
    if (frees.length === 0) return undefined;
    return async () => {
      for (const free of frees) await free();
    };
  }

  /** What failed or unfinished nodes registered and nobody took: freed with the run. */
  releaseHeld(): void {
    for (const frees of this.held.values()) this.toDispose.push(...frees);
    this.held.clear();
  }
}
